// @ts-check
'use strict'
// A helper of store.test.js, run as a child process (child_process.fork) or a
// worker thread: it opens the parent's database and either records the uses
// of a plan (mode 'uses') or inserts, deletes and rewrites patterns until it
// is told to stop (mode 'churn'). Protocol, over IPC or parentPort:
//   parent -> { type: 'job', job }     child -> { type: 'ready' }   (opened)
//   parent -> { type: 'go' }           child -> { type: 'done', ... } (uses)
//                                      child -> { type: 'started' }, then on
//   parent -> { type: 'stop' }         child -> { type: 'stopped', ops } (churn)
// Problems are reported in the messages, never thrown, so the parent can
// show them all.

const { parentPort } = require('node:worker_threads')
const { PatternCache } = require('../index.js')
const { rng } = require('./helpers.js')

/**
 * One step of a 'uses' plan: a single use (`expect`: what recordUsage must
 * resolve with) or a batch for recordUsages.
 * @typedef {{ k: 'u', id: string, success?: boolean, at: number, expect: boolean } | { k: 'b', entries: import('../index').UsageEntry[] }} PlanOp
 */
/**
 * @typedef {{ mode: 'uses', dbPath: string, plan: PlanOp[], checkEvery: number, config?: import('../index').PatternCacheConfig }
 *   | { mode: 'churn', dbPath: string, dim: number, churnIds: string[], stableIds: string[], domains: string[], seed: number }} Job
 */

/** @param {unknown} msg */
function send(msg) {
  return new Promise((resolve) => {
    if (parentPort) {
      parentPort.postMessage(msg)
      resolve(undefined)
    } else if (process.send) {
      process.send(msg, undefined, {}, () => resolve(undefined))
    } else {
      throw new Error('store-worker.js runs under child_process.fork or a Worker')
    }
  })
}

/** The next message of this type. @param {string} type @returns {Promise<any>} */
function receive(type) {
  const port = /** @type {NodeJS.EventEmitter} */ (parentPort ?? process)
  return new Promise((resolve) => {
    /** @param {any} msg */
    const onMessage = (msg) => {
      if (msg && msg.type === type) {
        port.off('message', onMessage)
        resolve(msg)
      }
    }
    port.on('message', onMessage)
  })
}

/** @param {PatternCache} cache @param {Extract<Job, { mode: 'uses' }>} job */
async function runUses(cache, job) {
  /** @type {string[]} */
  const problems = []
  let n = 0
  for (const op of job.plan) {
    n++
    try {
      if (op.k === 'u') {
        const check = job.checkEvery > 0 && n % job.checkEvery === 0 && op.expect
        const before = check ? await cache.loadPattern(op.id) : null
        /** @type {import('../index').UsageOutcome} */
        const outcome = { at: op.at }
        if (op.success !== undefined) outcome.success = op.success
        const got = await cache.recordUsage(op.id, outcome)
        if (got !== op.expect) problems.push(`recordUsage(${JSON.stringify(op.id)}) resolved ${got}, expected ${op.expect}`)
        if (check && before) {
          // Read-your-writes under contention: this use is in the next read,
          // whatever other writers did meanwhile.
          const after = await cache.loadPattern(op.id)
          if (!after) problems.push(`${op.id} vanished`)
          else {
            if (after.usageCount < before.usageCount + 1) problems.push(`${op.id}: usageCount ${before.usageCount} -> ${after.usageCount} after my use`)
            if (op.success && after.successCount < before.successCount + 1) problems.push(`${op.id}: successCount ${before.successCount} -> ${after.successCount} after my success`)
            if (after.lastUsed === undefined || after.lastUsed < op.at) problems.push(`${op.id}: lastUsed ${after.lastUsed} < my at ${op.at}`)
          }
        }
      } else {
        await cache.recordUsages(op.entries)
      }
    } catch (e) {
      problems.push(`op ${n} (${op.k}) failed: ${/** @type {any} */ (e).code} ${/** @type {Error} */ (e).message}`)
    }
  }
  const m = cache.getMetrics()
  await send({ type: 'done', problems, ops: n, tier: m.tier, rebuilds: m.cacheRebuildCount })
}

/** @param {PatternCache} cache @param {Extract<Job, { mode: 'churn' }>} job */
async function runChurn(cache, job) {
  const r = rng(job.seed)
  const pick = /** @type {<T>(xs: readonly T[]) => T} */ ((xs) => xs[Math.floor(r() * xs.length)])
  /** @type {Set<string>} */
  const present = new Set()
  /** @type {string[]} */
  const problems = []
  let stop = false
  const stopped = receive('stop').then(() => (stop = true))
  let ops = 0
  while (!stop) {
    const roll = r()
    try {
      if (roll < 0.4 || present.size === 0) {
        const id = pick(job.churnIds)
        await cache.storePattern({
          id,
          type: 'unit',
          domain: pick(job.domains),
          content: `churn ${ops}`,
          embedding: Array.from({ length: job.dim }, () => r() - 0.5),
        })
        present.add(id)
      } else if (roll < 0.7) {
        const id = pick([...present])
        if (!(await cache.deletePattern(id))) problems.push(`deletePattern(${id}) found nothing`)
        present.delete(id)
      } else if (roll < 0.85) {
        const id = pick(job.stableIds)
        if (!(await cache.recordUsage(id, { success: r() < 0.5, at: 1_800_000_000_000 + ops }))) problems.push(`recordUsage(${id}) found nothing`)
      } else {
        // A stable pattern rewritten whole (INSERT OR REPLACE): it must not
        // look absent to a reader in the meantime.
        const id = pick(job.stableIds)
        const p = await cache.loadPattern(id)
        if (!p) problems.push(`stable ${id} missing`)
        else await cache.storePattern({ ...p, content: `rewritten ${ops}` })
      }
    } catch (e) {
      problems.push(`churn op ${ops} failed: ${/** @type {any} */ (e).code} ${/** @type {Error} */ (e).message}`)
    }
    ops++
    if (ops === 20) await send({ type: 'started' })
    // Lets the 'stop' message in even if a call resolved synchronously.
    await new Promise((resolve) => setImmediate(resolve))
  }
  await stopped
  await send({ type: 'stopped', ops, problems })
}

async function main() {
  const { job } = /** @type {{ job: Job }} */ (await receive('job'))
  const config = job.mode === 'uses' ? job.config ?? {} : { checkInterval: 0 }
  const cache = await PatternCache.open({ ...config, dbPath: job.dbPath })
  const go = receive('go') // listening before saying ready: a message without a listener is lost
  await send({ type: 'ready' })
  await go
  if (job.mode === 'uses') await runUses(cache, job)
  else await runChurn(cache, job)
  await cache.shutdown()
  if (!parentPort && process.connected) process.disconnect()
}

main().catch(async (e) => {
  await send({ type: 'error', message: String(e && e.stack ? e.stack : e) })
  process.exitCode = 1
  if (!parentPort && process.connected) process.disconnect()
})

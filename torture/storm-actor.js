// @ts-check
'use strict'
// One actor of torture/storm.js, run as a child process (fork) or a worker
// thread: for `seconds`, mixed reads, writes (storePattern / storePatterns /
// deletePattern on its own ids, storePattern on shared ids), markStale and
// rebuildCache on one database. It records what it committed (its last
// write per id) and every error, and reports them to its parent.

const { isMainThread, parentPort, workerData } = require('node:worker_threads')
const { PatternCache } = require('../index.js')
const lib = require('./lib.js')

/**
 * @typedef {{ dbPath: string, actor: string, seconds: number, dim: number, basePatterns: number, ownIds: number, sharedIds: number, seed: number }} ActorConfig
 * @typedef {{
 *   actor: string,
 *   ops: number, reads: number, commits: number, rebuilds: number, markStales: number,
 *   errors: Record<string, number>, errorSamples: string[],
 *   ownReadMismatches: number, ownReadSamples: string[], wrongReads: number,
 *   own: Record<string, string | null>, shared: Record<string, string>, uncertain: string[],
 *   sharedUncertain: Record<string, string[]>,
 * }} ActorReport
 */

/** @param {number} n */
const ownId = (/** @type {string} */ actor, n) => `${actor}-own-${String(n).padStart(4, '0')}`
/** @param {number} n */
const sharedId = (n) => `shared-${String(n).padStart(3, '0')}`

/**
 * @param {ActorConfig} cfg
 * @returns {Promise<ActorReport>}
 */
async function act(cfg) {
  const random = lib.rng(cfg.seed)
  const pick = (/** @type {number} */ n) => Math.floor(random() * n)
  /** @type {ActorReport} */
  const rep = {
    actor: cfg.actor,
    ops: 0,
    reads: 0,
    commits: 0,
    rebuilds: 0,
    markStales: 0,
    errors: {},
    errorSamples: [],
    ownReadMismatches: 0,
    ownReadSamples: [],
    wrongReads: 0,
    own: {},
    shared: {},
    uncertain: [],
    sharedUncertain: {},
  }
  /** Own ids whose last write failed: committed or not is unknown to the caller. */
  const uncertain = new Set()
  /** @param {unknown} e @param {string} what */
  const failed = (e, what) => {
    const code = lib.codeOf(e)
    rep.errors[code] = (rep.errors[code] ?? 0) + 1
    if (rep.errorSamples.length < 10) rep.errorSamples.push(`${what}: [${code}] ${e instanceof Error ? e.message : String(e)}`)
  }
  /** @param {string} what */
  const wrongRead = (what) => {
    rep.wrongReads++
    if (rep.ownReadSamples.length < 5) rep.ownReadSamples.push(what)
  }
  let seq = 0
  /** @param {string} id */
  const next = (id) => {
    seq++
    return lib.makePattern(id, seq, cfg.dim, `${cfg.actor}:${seq}`)
  }

  const cache = await PatternCache.open({ dbPath: cfg.dbPath })
  const deadline = Date.now() + cfg.seconds * 1000
  while (Date.now() < deadline) {
    rep.ops++
    const roll = random()
    try {
      if (roll < 0.2) {
        // Read one of its own ids: must show its own last write at once.
        rep.reads++
        const id = ownId(cfg.actor, pick(cfg.ownIds))
        const p = await cache.loadPattern(id)
        const want = rep.own[id]
        if (want !== undefined && !uncertain.has(id) && (p === null ? null : p.content) !== want) {
          rep.ownReadMismatches++
          if (rep.ownReadSamples.length < 5) rep.ownReadSamples.push(`${id}: read ${p === null ? 'null' : JSON.stringify(p.content)}, last wrote ${JSON.stringify(want)}`)
        }
      } else if (roll < 0.35) {
        // A seeded pattern nobody writes: must come back exactly as seeded.
        rep.reads++
        const n = pick(cfg.basePatterns)
        const p = await cache.loadPattern(lib.baseId(n))
        const want = lib.makePattern(lib.baseId(n), n, cfg.dim)
        if (!p || p.content !== want.content || p.embedding[cfg.dim - 1] !== want.embedding[cfg.dim - 1]) wrongRead(`${want.id} read as ${p ? JSON.stringify(p.content) : 'null'}`)
      } else if (roll < 0.45) {
        rep.reads++
        const domain = lib.DOMAINS[pick(lib.DOMAINS.length)]
        const ps = await cache.loadPatternsByDomain(domain)
        if (ps.some((p) => p.domain !== domain)) wrongRead(`loadPatternsByDomain('${domain}') returned another domain`)
      } else if (roll < 0.5) {
        rep.reads++
        const ps = await cache.query({ type: 'unit', limit: 50 })
        if (ps.length > 50 || ps.some((p) => p.type !== 'unit')) wrongRead('query({ type: unit, limit: 50 }) returned a wrong pattern')
      } else if (roll < 0.65) {
        const id = ownId(cfg.actor, pick(cfg.ownIds))
        const p = next(id)
        try {
          await cache.storePattern(p)
        } catch (e) {
          uncertain.add(id)
          throw e
        }
        uncertain.delete(id)
        rep.own[id] = p.content
        rep.commits++
      } else if (roll < 0.75) {
        // A batch: a few own ids and sometimes a shared one.
        const ids = new Set(Array.from({ length: 5 }, () => ownId(cfg.actor, pick(cfg.ownIds))))
        if (random() < 0.3) ids.add(sharedId(pick(cfg.sharedIds)))
        const batch = [...ids].map(next)
        try {
          await cache.storePatterns(batch)
        } catch (e) {
          for (const p of batch) {
            if (p.id.startsWith('shared-')) (rep.sharedUncertain[p.id] ??= []).push(p.content)
            else uncertain.add(p.id)
          }
          throw e
        }
        for (const p of batch) {
          uncertain.delete(p.id)
          if (p.id.startsWith('shared-')) rep.shared[p.id] = p.content
          else rep.own[p.id] = p.content
        }
        rep.commits++
      } else if (roll < 0.83) {
        const id = ownId(cfg.actor, pick(cfg.ownIds))
        try {
          await cache.deletePattern(id)
        } catch (e) {
          uncertain.add(id)
          throw e
        }
        uncertain.delete(id)
        rep.own[id] = null
        rep.commits++
      } else if (roll < 0.93) {
        const id = sharedId(pick(cfg.sharedIds))
        const p = next(id)
        try {
          await cache.storePattern(p)
        } catch (e) {
          ;(rep.sharedUncertain[id] ??= []).push(p.content)
          throw e
        }
        rep.shared[id] = p.content
        rep.commits++
      } else if (roll < 0.98) {
        rep.markStales++
        cache.markStale({ trigger: 'manual', requiresRebuild: random() < 0.5 })
      } else {
        rep.rebuilds++
        const r = await cache.rebuildCache()
        if (!r.success) {
          const code = /^\[([A-Z_]+)\]/.exec(r.error ?? '')?.[1] ?? 'NO_CODE'
          failed(Object.assign(new Error(r.error), { code }), 'rebuildCache')
        }
      }
    } catch (e) {
      failed(e, `op ${rep.ops}`)
    }
  }
  await cache.shutdown()
  rep.uncertain = [...uncertain]
  return rep
}

if (!isMainThread && parentPort) {
  const port = parentPort
  act(/** @type {ActorConfig} */ (workerData)).then(
    (r) => port.postMessage(r),
    (e) => {
      throw e
    },
  )
} else if (require.main === module && process.send) {
  const send = process.send.bind(process)
  process.once('message', (cfg) => {
    act(/** @type {ActorConfig} */ (cfg)).then(
      (r) => send(r, () => process.disconnect()),
      (e) => {
        console.error(e)
        process.exit(3)
      },
    )
  })
}

module.exports = { act, ownId, sharedId }

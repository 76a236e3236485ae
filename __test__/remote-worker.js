// @ts-check
'use strict'
// A helper of remote.test.js, and the module of what it shares with it.
//
// As a module: `answers(cache, spec)`, every read of a replica that the
// convergence checks compare (loadPattern of every id, the index lists,
// query, listPatterns pages, getStats, agent configs, searchSimilar), as
// plain JSON-able data; and the typedefs of the remote API.
//
// As a child process (child_process.fork), it opens a replica of a remote and
// runs a job. Protocol, over IPC:
//   parent -> { type: 'job', job }   child -> { type: 'opened', sizes }   (the replica is open)
//   mode 'ops':
//     parent -> { type: 'go' }       child -> { type: 'done', results }   (every phase run)
//     parent -> { type: 'sync', spec } child -> { type: 'answers', sync, answers, metrics } (syncRemote, then answers)
//   mode 'sync': right after 'opened', syncRemote; child -> { type: 'synced', result } or { type: 'done', results } on error
//   parent -> { type: 'exit' }       the child shuts the replica down and exits
// A failed call is reported in `results` ({ ok: false, code, message }),
// never thrown, so the parent can check codes and messages.

const fs = require('node:fs')
const { PatternCache } = require('../index.js')
const { DOMAINS, TYPES, FRAMEWORKS } = require('./helpers.js')

/** @typedef {import('../index').TestPattern} TestPattern */
/** @typedef {import('../index').StoredPattern} StoredPattern */
/** @typedef {import('../index').AgentConfigEntry} AgentConfigEntry */
/** @typedef {import('../index').UsageEntry} UsageEntry */

/** What syncRemote() resolves with. @typedef {{ fromGeneration: number, toGeneration: number, rowsApplied: number, duration: number }} SyncResult */
/** getMetrics().remote. @typedef {{ generation: number, remoteGeneration: number, lag: number, lastSyncAt: number, connected: boolean }} RemoteMetrics */
/** The options of `remote`. @typedef {import('../index').RemoteConfig} RemoteOptions */
/**
 * The remote events (CacheEvent gains them).
 * @typedef {{ type: 'remote_synced', fromGeneration: number, toGeneration: number, rowsApplied: number } | { type: 'remote_unavailable', error: string }} RemoteEvent
 */
/** A PatternCache opened with `remote`. @typedef {PatternCache & { syncRemote(): Promise<SyncResult> }} RemoteCache */

/**
 * PatternCache.open with `remote` (typed loosely, so that this file checks
 * whatever index.d.ts says of `remote` yet).
 * @param {import('../index').PatternCacheConfig & { remote?: RemoteOptions }} config
 * @returns {Promise<RemoteCache>}
 */
function openRemote(config) {
  return /** @type {Promise<RemoteCache>} */ (/** @type {unknown} */ (PatternCache.open(/** @type {any} */ (config))))
}

/** getMetrics().remote (undefined without remote). @param {PatternCache} cache @returns {RemoteMetrics | undefined} */
function remoteMetrics(cache) {
  return /** @type {any} */ (cache.getMetrics()).remote
}

/** A returned pattern as plain data (embedding as number[]). @param {StoredPattern | null} p */
function plainPattern(p) {
  if (p === null) return null
  if (!(p.embedding instanceof Float32Array)) throw new Error(`embedding of ${p.id} is not a Float32Array`)
  return { ...p, embedding: Array.from(p.embedding) }
}

/**
 * What `answers` reads.
 * @typedef {object} AnswerSpec
 * @property {string[]} ids loadPattern / loadPatterns of each (absent ones included)
 * @property {string[]} agentIds loadAgentConfig of each
 * @property {number[][]} vectors searchSimilar queries (of the bank's dimension)
 * @property {number} [pageSize] listPatterns page size (default 7)
 * @property {boolean} [light] only the lists, stats, configs, pages and searches (large banks)
 */

/**
 * Every read the convergence checks compare, as plain data.
 * @param {PatternCache} cache @param {AnswerSpec} spec
 */
async function answers(cache, spec) {
  const pageSize = spec.pageSize ?? 7
  /** @type {Record<string, unknown>} */
  const out = {}
  if (!spec.light) {
    /** @type {unknown[]} */
    const loaded = []
    for (const id of spec.ids) loaded.push(plainPattern(await cache.loadPattern(id)))
    out.loadPattern = loaded
    out.loadPatterns = (await cache.loadPatterns(spec.ids)).map(plainPattern)
    /** @type {Record<string, unknown>} */
    const byDomain = {}
    for (const d of DOMAINS) byDomain[d] = (await cache.loadPatternsByDomain(d)).map(plainPattern)
    out.byDomain = byDomain
    /** @type {Record<string, unknown>} */
    const byType = {}
    for (const t of TYPES) byType[t] = (await cache.loadPatternsByType(t)).map(plainPattern)
    out.byType = byType
    /** @type {Record<string, unknown>} */
    const byFramework = {}
    for (const f of [...FRAMEWORKS, 'unknown']) byFramework[f] = (await cache.loadPatternsByFramework(f)).map(plainPattern)
    out.byFramework = byFramework
    /** @type {unknown[]} */
    const queries = []
    for (const filter of [{ domain: 'auth', type: 'unit' }, { framework: 'jest', limit: 5 }, { domain: 'payments', framework: 'unknown' }, { type: 'e2e', limit: 0 }]) queries.push((await cache.query(filter)).map(plainPattern))
    out.queries = queries
  }
  out.all = (await cache.query({})).map(plainPattern)
  // listPatterns: every page's patterns (cursors are opaque: not compared).
  for (const [key, filter] of /** @type {Array<[string, import('../index').PatternFilter]>} */ ([
    ['pages', {}],
    ['pagesAuth', { domain: 'auth' }],
  ])) {
    /** @type {unknown[]} */
    const pages = []
    /** @type {string | undefined} */
    let cursor
    for (let n = 0; ; n++) {
      /** @type {import('../index').PatternPageRequest} */
      const req = { ...filter, limit: pageSize }
      if (cursor !== undefined) req.cursor = cursor
      const page = await cache.listPatterns(req)
      pages.push(page.patterns.map((p) => (spec.light ? p.id : plainPattern(p))))
      if (!page.cursor) break
      cursor = page.cursor
      if (n > 1_000_000) throw new Error('paging does not end')
    }
    out[key] = pages
  }
  out.stats = await cache.getStats()
  out.listAgentConfigs = await cache.listAgentConfigs()
  /** @type {unknown[]} */
  const configs = []
  for (const a of spec.agentIds) configs.push(await cache.loadAgentConfig(a))
  out.loadAgentConfig = configs
  /** @type {unknown[]} */
  const search = []
  for (const v of spec.vectors) {
    for (const options of /** @type {import('../index').PatternSearchOptions[]} */ ([{ k: 10 }, { k: 5, domain: 'auth' }, { k: 7, metric: 'euclidean' }, { k: 6, metric: 'dot', type: 'unit' }, { k: 5, useMMR: true, mmrLambda: 0.7 }])) {
      const results = await cache.searchSimilar(v, options)
      search.push(results.map((r) => ({ id: r.pattern.id, score: r.score, pattern: spec.light ? undefined : plainPattern(r.pattern) })))
    }
  }
  out.search = search
  return JSON.parse(JSON.stringify(out))
}

/**
 * One call of a job.
 * @typedef {{ k: 'store', p: TestPattern, check?: boolean } | { k: 'storeMany', ps: TestPattern[] } | { k: 'delete', id: string }
 *   | { k: 'use', id: string, success?: boolean, at: number } | { k: 'uses', entries: UsageEntry[] }
 *   | { k: 'config', c: AgentConfigEntry } | { k: 'deleteConfig', id: string } | { k: 'sync' }} Op
 */
/** @typedef {{ ok: true, value: unknown, generation?: number } | { ok: false, code: string, message: string, text: string }} OpResult */
/**
 * @typedef {{ mode: 'ops', dbPath: string, cachePath: string, remote: RemoteOptions, phases: Op[][] }
 *   | { mode: 'sync', dbPath: string, cachePath: string, remote: RemoteOptions }} Job
 */

/**
 * Runs one op; a store with `check` is read back at once (read-your-writes:
 * for ids no one else writes), a mismatch reported as a failure.
 * @param {RemoteCache} cache @param {Op} op @returns {Promise<OpResult>}
 */
async function runOp(cache, op) {
  try {
    /** @type {unknown} */
    let value
    switch (op.k) {
      case 'store':
        value = await cache.storePattern(op.p)
        if (op.check) {
          const got = await cache.loadPattern(op.p.id)
          if (!got || got.content !== op.p.content) throw Object.assign(new Error(`read-your-writes: ${op.p.id} read back as ${got && got.content}`), { code: 'TEST_READ_BACK' })
        }
        break
      case 'storeMany':
        value = await cache.storePatterns(op.ps)
        break
      case 'delete':
        value = await cache.deletePattern(op.id)
        break
      case 'use':
        value = await cache.recordUsage(op.id, op.success === undefined ? { at: op.at } : { at: op.at, success: op.success })
        break
      case 'uses':
        value = await cache.recordUsages(op.entries)
        break
      case 'config':
        value = await cache.storeAgentConfig(op.c)
        break
      case 'deleteConfig':
        value = await cache.deleteAgentConfig(op.id)
        break
      case 'sync':
        value = await cache.syncRemote()
        break
    }
    return { ok: true, value: value === undefined ? null : value, generation: remoteMetrics(cache)?.generation }
  } catch (e) {
    const err = /** @type {Error & { code?: string }} */ (e)
    return { ok: false, code: String(err.code), message: String(err.message), text: `${String(err)} ${err.stack ?? ''} ${require('node:util').inspect(err)}` }
  }
}

/** @param {unknown} msg @returns {Promise<void>} */
function send(msg) {
  return new Promise((resolve) => {
    if (!process.send) throw new Error('remote-worker.js runs under child_process.fork')
    process.send(msg, undefined, {}, () => resolve())
  })
}

/** The next message of this type. @param {string} type @returns {Promise<any>} */
function receive(type) {
  return new Promise((resolve) => {
    /** @param {any} msg */
    const onMessage = (msg) => {
      if (msg && msg.type === type) {
        process.off('message', onMessage)
        resolve(msg)
      }
    }
    process.on('message', onMessage)
  })
}

/** Sizes of the database and its WAL. @param {string} dbPath */
function sizes(dbPath) {
  const size = (/** @type {string} */ f) => {
    try {
      return fs.statSync(f).size
    } catch {
      return 0
    }
  }
  return { db: size(dbPath), wal: size(`${dbPath}-wal`) }
}

async function main() {
  const { job } = /** @type {{ job: Job }} */ (await receive('job'))
  /** @type {unknown[]} */
  const events = []
  const exit = receive('exit')
  const go = receive('go')
  const syncAsked = receive('sync')
  const cache = await openRemote({ dbPath: job.dbPath, cachePath: job.cachePath, remote: job.remote, onEvent: (e) => events.push(e) })
  await send({ type: 'opened', sizes: sizes(job.dbPath) })
  if (job.mode === 'sync') {
    const r = await runOp(cache, { k: 'sync' })
    await send(r.ok ? { type: 'synced', result: r.value } : { type: 'done', results: [r] })
  } else {
    await go
    /** @type {OpResult[][]} */
    const results = []
    for (const phase of job.phases) results.push(await Promise.all(phase.map((op) => runOp(cache, op))))
    await send({ type: 'done', results, events })
    const { spec } = await syncAsked
    const sync = await runOp(cache, { k: 'sync' })
    await send({ type: 'answers', sync, answers: sync.ok ? await answers(cache, spec) : null, metrics: cache.getMetrics(), events })
  }
  await exit
  await cache.shutdown()
  if (process.connected) process.disconnect()
}

if (require.main === module) {
  main().catch(async (e) => {
    await send({ type: 'error', message: String(e && e.stack ? e.stack : e) })
    process.exitCode = 1
    if (process.connected) process.disconnect()
  })
}

module.exports = { answers, plainPattern, openRemote, remoteMetrics, runOp }

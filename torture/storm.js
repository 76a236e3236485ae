// @ts-check
'use strict'
// A storm on one database: 8 child processes and 8 worker threads for N
// seconds, each doing mixed reads, writes (storePattern / storePatterns /
// deletePattern on its own ids, plus shared ids every actor writes),
// markStale and rebuildCache (torture/storm-actor.js). A long-lived
// instance in this process (checkInterval 0) reads all along. Afterwards:
//   - commits, and errors by code (DB_BUSY must never reach a caller);
//   - lost writes: each actor's last committed write of each of its own ids
//     is what SQLite holds (content, or absent after a delete); each shared
//     id holds the last committed write of one of the actors;
//   - reads of its own writes that did not see them (read-your-writes);
//   - PRAGMA integrity_check (python3's sqlite3);
//   - reads that disagree with SQLite: query({}) from the long-lived
//     instance and from a fresh cache-enabled one against `enabled: false`.
//
//   node torture/storm.js [--seconds 5] [--processes 8] [--threads 8]

const path = require('node:path')
const { fork } = require('node:child_process')
const { Worker } = require('node:worker_threads')
const { PatternCache } = require('../index.js')
const lib = require('./lib.js')

/** @typedef {import('./storm-actor.js').ActorConfig} ActorConfig */
/** @typedef {import('./storm-actor.js').ActorReport} ActorReport */

const DEFAULTS = { seconds: 5, processes: 8, threads: 8, basePatterns: 2000, dim: 32, ownIds: 60, sharedIds: 20, seed: 3 }
const ACTOR = path.join(__dirname, 'storm-actor.js')

/** @param {ActorConfig} cfg @returns {Promise<ActorReport>} */
function inProcess(cfg) {
  return new Promise((resolve, reject) => {
    const child = fork(ACTOR, [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
    /** @type {ActorReport | undefined} */
    let report
    child.on('message', (m) => (report = /** @type {ActorReport} */ (m)))
    child.on('error', reject)
    child.on('exit', (code, signal) => (report ? resolve(report) : reject(new Error(`actor ${cfg.actor} exited (${code ?? signal}) without a report`))))
    child.send(cfg)
  })
}

/** @param {ActorConfig} cfg @returns {Promise<ActorReport>} */
function inThread(cfg) {
  return new Promise((resolve, reject) => {
    const w = new Worker(ACTOR, { workerData: cfg })
    /** @type {ActorReport | undefined} */
    let report
    w.on('message', (m) => (report = /** @type {ActorReport} */ (m)))
    w.on('error', reject)
    w.on('exit', (code) => (report ? resolve(report) : reject(new Error(`actor ${cfg.actor} exited (${code}) without a report`))))
  })
}

/**
 * Patterns that differ between two full reads (missing, extra, or unequal).
 * @param {import('../index').StoredPattern[]} got @param {import('../index').StoredPattern[]} truth
 */
function disagreements(got, truth) {
  const want = new Map(truth.map((p) => [p.id, JSON.stringify(lib.plain(p))]))
  let n = 0
  /** @type {string[]} */
  const samples = []
  const seen = new Set()
  for (const p of got) {
    seen.add(p.id)
    if (want.get(p.id) !== JSON.stringify(lib.plain(p))) {
      n++
      if (samples.length < 5) samples.push(want.has(p.id) ? `${p.id} differs` : `${p.id} is not in SQLite`)
    }
  }
  for (const id of want.keys()) {
    if (!seen.has(id)) {
      n++
      if (samples.length < 5) samples.push(`${id} missing`)
    }
  }
  const ordered = got.every((p, i) => i === 0 || Buffer.compare(Buffer.from(got[i - 1].id), Buffer.from(p.id)) < 0)
  if (!ordered) {
    n++
    samples.push('not in id order')
  }
  return { n, samples }
}

/**
 * @param {Partial<typeof DEFAULTS>} [given]
 * @returns {Promise<import('./lib.js').Result>}
 */
async function run(given = {}) {
  const opts = { ...DEFAULTS, ...given }
  const started = Date.now()
  const dir = lib.tempDir('storm')
  const dbPath = path.join(dir, 'patterns.db')
  await lib.seed(dbPath, opts.basePatterns, opts.dim)

  // A long-lived reader in this process, checking the database before every read.
  const observer = await PatternCache.open({ dbPath, checkInterval: 0 })
  let storming = true
  let observerReads = 0
  /** @type {Record<string, number>} */
  const observerErrors = {}
  const observing = (async () => {
    for (let i = 0; storming; i++) {
      try {
        if (i % 2) await observer.loadPatternsByDomain(lib.DOMAINS[i % lib.DOMAINS.length])
        else await observer.loadPattern(lib.baseId(i % opts.basePatterns))
        observerReads++
      } catch (e) {
        const code = lib.codeOf(e)
        observerErrors[code] = (observerErrors[code] ?? 0) + 1
      }
      await new Promise((resolve) => setImmediate(resolve)) // let the actors' messages in
    }
  })()

  /** @param {string} actor @param {number} n @returns {ActorConfig} */
  const config = (actor, n) => ({ dbPath, actor, seconds: opts.seconds, dim: opts.dim, basePatterns: opts.basePatterns, ownIds: opts.ownIds, sharedIds: opts.sharedIds, seed: opts.seed * 1000 + n })
  const reports = await Promise.all([
    ...Array.from({ length: opts.processes }, (_, n) => inProcess(config(`p${n}`, n))),
    ...Array.from({ length: opts.threads }, (_, n) => inThread(config(`t${n}`, 100 + n))),
  ])
  storming = false
  await observing

  // The truth, from SQLite.
  const truth = await lib.sqlitePatterns(dbPath)
  const byId = new Map(truth.map((p) => [p.id, p]))
  let lost = 0
  let uncertain = 0
  /** @type {string[]} */
  const lostSamples = []
  /** @type {Map<string, Set<string>>} */
  const sharedCandidates = new Map()
  for (const r of reports) {
    const unsure = new Set(r.uncertain)
    for (const [id, content] of Object.entries(r.own)) {
      if (unsure.has(id)) {
        uncertain++
        continue
      }
      const p = byId.get(id)
      const ok = content === null ? p === undefined : p !== undefined && p.content === content
      if (!ok) {
        lost++
        if (lostSamples.length < 10) lostSamples.push(`${id}: SQLite has ${p ? JSON.stringify(p.content) : 'nothing'}, ${r.actor} last committed ${JSON.stringify(content)}`)
      }
    }
    for (const [id, content] of Object.entries(r.shared)) {
      const set = sharedCandidates.get(id) ?? new Set()
      set.add(content)
      for (const c of r.sharedUncertain[id] ?? []) set.add(c)
      sharedCandidates.set(id, set)
    }
  }
  for (const [id, candidates] of sharedCandidates) {
    const p = byId.get(id)
    if (!p || !candidates.has(p.content)) {
      lost++
      if (lostSamples.length < 10) lostSamples.push(`shared ${id}: SQLite has ${p ? JSON.stringify(p.content) : 'nothing'}, not any actor's last write`)
    }
  }

  const fromObserver = disagreements(await observer.query({}), truth)
  const observerMetrics = observer.getMetrics()
  await observer.shutdown()
  const fresh = await PatternCache.open({ dbPath })
  const fromFresh = disagreements(await fresh.query({}), truth)
  const freshMetrics = fresh.getMetrics()
  await fresh.shutdown()
  const integrity = lib.integrityCheck(dbPath)

  /** @type {Record<string, number>} */
  const errors = {}
  for (const r of reports) for (const [code, n] of Object.entries(r.errors)) errors[code] = (errors[code] ?? 0) + n
  for (const [code, n] of Object.entries(observerErrors)) errors[code] = (errors[code] ?? 0) + n
  const busy = errors.DB_BUSY ?? 0
  const otherErrors = Object.entries(errors).filter(([c]) => c !== 'DB_BUSY').reduce((a, [, n]) => a + n, 0)
  const sum = (/** @type {(r: ActorReport) => number} */ f) => reports.reduce((a, r) => a + f(r), 0)
  const ownMismatches = sum((r) => r.ownReadMismatches)
  const wrongReads = sum((r) => r.wrongReads)
  const readDisagreements = fromObserver.n + fromFresh.n
  const corruptions = observerMetrics.cacheCorruptionCount + freshMetrics.cacheCorruptionCount

  return lib.result({
    name: 'storm',
    title: `${opts.processes} processes + ${opts.threads} worker threads on one database`,
    config: opts,
    started,
    figures: [
      { name: 'actors', value: reports.length },
      { name: 'operations', value: sum((r) => r.ops) },
      { name: 'total commits (resolved writes)', value: sum((r) => r.commits) },
      { name: 'reads (actors + the long-lived reader)', value: sum((r) => r.reads) + observerReads },
      { name: 'rebuildCache() calls / markStale() calls', value: `${sum((r) => r.rebuilds)} / ${sum((r) => r.markStales)}` },
      lib.target('errors with code DB_BUSY reaching callers', busy, '0', busy === 0),
      lib.target('other errors reaching callers', otherErrors, '0', otherErrors === 0),
      lib.target('lost writes (an actor\'s last committed write per id not what SQLite holds)', lost, '0', lost === 0),
      { name: 'ids whose last write failed (outcome unknown to the caller, not checked)', value: uncertain },
      lib.target('reads of an actor\'s own id that did not show its last write', ownMismatches, '0', ownMismatches === 0),
      lib.target('reads during the storm that returned a wrong pattern (seeded patterns nobody writes, index queries)', wrongReads, '0', wrongReads === 0),
      lib.target('PRAGMA integrity_check', integrity, 'ok', integrity === 'ok'),
      lib.target('reads that disagree with SQLite (query({}) from a long-lived and a fresh cache-enabled instance)', readDisagreements, '0', readDisagreements === 0),
      lib.target('cache corruptions counted by those instances', corruptions, '0', corruptions === 0),
    ],
    notes: [
      ...Object.entries(errors).map(([code, n]) => `errors ${code}: ${n}`),
      ...reports.flatMap((r) => r.errorSamples.map((s) => `${r.actor} ${s}`)).slice(0, 10),
      ...reports.flatMap((r) => r.ownReadSamples.map((s) => `${r.actor} read ${s}`)).slice(0, 10),
      ...lostSamples,
      ...fromObserver.samples.map((s) => `long-lived instance: ${s}`),
      ...fromFresh.samples.map((s) => `fresh instance: ${s}`),
      `patterns at the end: ${truth.length}; long-lived instance tier at the end: ${observerMetrics.tier}`,
    ],
  })
}

if (require.main === module) lib.main(() => run(lib.options(DEFAULTS)))

module.exports = { run, DEFAULTS }

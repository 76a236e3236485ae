'use strict'
// One process of the usage burst (lib/usage-group.js): its own store on the
// shared database, its share of the uses, and reads throughout.
//   forked: node usage-burst.js <pattern-cache | better-sqlite3> <dbPath>
//
// Messages (IPC):
//   parent -> { type: 'plan', uses: [[id, success, at]...], ids, filters, checkInterval }
//   child  -> { type: 'ready', openMs }              opened, nothing read or written yet
//   parent -> { type: 'go' }                         starts the uses and the reads
//   child  -> { type: 'done', ... }                  its last use was answered (reads go on)
//   parent -> { type: 'verify', expected: [[id, usageCount, successCount, lastUsed]...] }
//   child  -> { type: 'verified', ... }              reads stopped, the used patterns read back; then it exits
//
// The writer awaits one use after another and times each (pattern-cache:
// `await cache.recordUsage(id, { success, at })`; better-sqlite3: the UPDATE,
// synchronous). The reader does one read every millisecond (a timer, so the
// two interleave on the event loop): 16 of 20 loadPattern(random id), 3 query
// (domain + type, limit 10), 1 listPatterns page (domain, 100, following the
// cursor). pattern-cache's getMetrics().cacheMisses (reads answered by SQLite)
// is sampled at go, at go + checkInterval, every 50 ms, at the end of the
// reads, and after the read-back.

const { performance } = require('node:perf_hooks')
const { setImmediate: immediate } = require('node:timers/promises')

const [contender, dbPath] = process.argv.slice(2)
const now = () => performance.timeOrigin + performance.now() // ms, comparable across processes
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))
const send = (message) => new Promise((resolve, reject) => process.send(message, (e) => (e ? reject(e) : resolve())))
const next = (type) =>
  new Promise((resolve) => {
    const on = (m) => {
      if (m && m.type === type) {
        process.off('message', on)
        resolve(m)
      }
    }
    process.on('message', on)
  })

/** The store under test: { use(id, success, at) -> Promise<boolean> | boolean, reads, misses(), rebuilds(), readBack(ids), close() }. */
async function openStore(plan) {
  if (contender === 'pattern-cache') {
    const { PatternCache } = require('../..')
    const events = []
    const cache = await PatternCache.open({ dbPath, onEvent: (e) => events.push({ ...e, at: now() }) })
    return {
      use: (id, success, at) => cache.recordUsage(id, { success, at }),
      get: (id) => cache.loadPattern(id),
      query: (f) => cache.query({ ...f, limit: 10 }),
      page: (domain, cursor) => cache.listPatterns({ domain, limit: 100, ...(cursor === undefined ? {} : { cursor }) }),
      readBack: (ids) => cache.loadPatterns(ids),
      misses: () => cache.getMetrics().cacheMisses,
      metrics: () => cache.getMetrics(),
      events,
      close: () => cache.shutdown(),
    }
  }
  if (contender === 'better-sqlite3') {
    const Database = require('better-sqlite3')
    const { COLUMNS, SELECT_ONE, rowToPattern } = require('../lib/rows')
    const db = new Database(dbPath, { fileMustExist: true })
    db.pragma('journal_mode = WAL')
    db.pragma('busy_timeout = 5000')
    const update = db.prepare(
      'UPDATE patterns SET usage_count = usage_count + 1, success_count = success_count + ?, last_used = max(coalesce(last_used, ?), ?) WHERE id = ?',
    )
    const one = db.prepare(SELECT_ONE)
    const query = db.prepare(`SELECT ${COLUMNS} FROM patterns WHERE domain = ? AND type = ? ORDER BY id LIMIT 10`)
    // one more than the page, to know whether another follows (as listPatterns does)
    const first = db.prepare(`SELECT ${COLUMNS} FROM patterns WHERE domain = ? ORDER BY id LIMIT 101`)
    const after = db.prepare(`SELECT ${COLUMNS} FROM patterns WHERE domain = ? AND id > ? ORDER BY id LIMIT 101`)
    return {
      use: (id, success, at) => update.run(success ? 1 : 0, at, at, id).changes === 1,
      get: (id) => {
        const row = one.get(id)
        return row ? rowToPattern(row) : null
      },
      query: (f) => query.all(f.domain, f.type).map(rowToPattern),
      page: (domain, cursor) => {
        const rows = cursor === undefined ? first.all(domain) : after.all(domain, cursor)
        const more = rows.length > 100
        const patterns = rows.slice(0, 100).map(rowToPattern)
        return { patterns, cursor: more ? patterns[99].id : undefined }
      },
      readBack: null,
      misses: () => null,
      metrics: () => null,
      events: [],
      close: async () => db.close(),
    }
  }
  throw new Error(`usage-burst: unknown contender ${contender}`)
}

async function main() {
  const plan = await next('plan')
  const openStarted = performance.now()
  const store = await openStore(plan)
  const openMs = performance.now() - openStarted
  const openedAt = now()
  const missesAtOpen = store.misses()
  const go = next('go')
  await send({ type: 'ready', openMs })
  await go
  const goAt = now()
  const cpuAtGo = process.cpuUsage() // every thread of this process
  const misses = { open: missesAtOpen, go: store.misses(), firstInterval: null, readsEnd: null, verify: null }
  const timeline = [] // [ms since go, cacheMisses] every 50 ms
  const firstInterval = setTimeout(() => (misses.firstInterval = store.misses()), plan.checkInterval)
  const sampler = store.misses() === null ? null : setInterval(() => timeline.push([now() - goAt, store.misses()]), 50)

  // the reader: one read per millisecond until told to stop
  const reads = { get: 0, query: 0, page: 0, missing: 0, errors: 0, firstError: null, byWindow: { firstInterval: 0, after: 0 } }
  const readLatency = []
  let reading = true
  let cursor
  let pageDomain = 0
  const reader = (async () => {
    let i = 0
    let random = (plan.seed >>> 0) || 1
    const rand = (n) => {
      random ^= random << 13
      random ^= random >>> 17
      random ^= random << 5
      return (random >>> 0) % n
    }
    while (reading) {
      const k = i++ % 20
      const t = performance.now()
      try {
        if (k < 16) {
          if ((await store.get(plan.ids[rand(plan.ids.length)])) === null) reads.missing++
          reads.get++
        } else if (k < 19) {
          const f = plan.filters[rand(plan.filters.length)]
          if ((await store.query(f)).length === 0) reads.missing++
          reads.query++
        } else {
          const page = await store.page(plan.domains[pageDomain], cursor)
          if (page.patterns.length === 0) reads.missing++
          cursor = page.cursor
          if (cursor === undefined) pageDomain = (pageDomain + 1) % plan.domains.length
          reads.page++
        }
      } catch (e) {
        reads.errors++
        reads.firstError ||= `${e.code || ''} ${e.message}`
      }
      readLatency.push(performance.now() - t)
      reads.byWindow[now() - goAt < plan.checkInterval ? 'firstInterval' : 'after']++
      await sleep(1)
    }
  })()

  // the writer: every use awaited, one after another
  const latency = []
  let acked = 0
  let ackedSuccess = 0
  let notFound = 0
  let errors = 0
  let firstError = null
  const acknowledged = [] // per use: 1 acknowledged, 0 not
  const started = now()
  for (const [id, success, at] of plan.uses) {
    const t = performance.now()
    let ok = false
    try {
      ok = await store.use(id, success, at)
      if (!ok) notFound++ // resolved false: no such pattern (never expected here)
    } catch (e) {
      errors++
      firstError ||= `${e.code || ''} ${e.message}`
    }
    latency.push(performance.now() - t)
    acknowledged.push(ok ? 1 : 0)
    if (ok) {
      acked++
      if (success) ackedSuccess++
    }
    if (contender === 'better-sqlite3') await immediate() // let the reader in, as an awaited native call does
  }
  const ended = now()
  const cpu = process.cpuUsage(cpuAtGo)
  const cpuMs = (cpu.user + cpu.system) / 1000
  const verify = next('verify')
  await send({ type: 'done', startedAt: started, endedAt: ended, goAt, openedAt, cpuMs, latency, acked, ackedSuccess, notFound, errors, firstError, acknowledged })

  const { expected } = await verify
  reading = false
  await reader
  clearTimeout(firstInterval)
  if (sampler) clearInterval(sampler)
  misses.readsEnd = store.misses()
  if (misses.firstInterval === null) misses.firstInterval = misses.readsEnd // the reads ended within the first interval
  const readsEndAt = now()

  // the used patterns read back, against the database's counters
  let readBack = null
  if (store.readBack) {
    const got = await store.readBack(expected.map((e) => e[0]))
    let wrong = 0
    let absent = 0
    const examples = []
    got.forEach((p, i) => {
      const [id, usageCount, successCount, lastUsed] = expected[i]
      if (!p) return absent++
      if (p.usageCount !== usageCount || p.successCount !== successCount || (p.lastUsed ?? null) !== lastUsed) {
        wrong++
        if (examples.length < 3) examples.push({ id, got: [p.usageCount, p.successCount, p.lastUsed ?? null], want: [usageCount, successCount, lastUsed] })
      }
    })
    readBack = { patterns: expected.length, wrong, absent, examples }
  }
  misses.verify = store.misses()
  const metrics = store.metrics()
  await send({
    type: 'verified',
    misses,
    timeline,
    reads,
    readLatency,
    readsEndAt,
    readBack,
    events: store.events,
    metrics: metrics && { tier: metrics.tier, cacheHits: metrics.cacheHits, cacheMisses: metrics.cacheMisses, cacheRebuildCount: metrics.cacheRebuildCount, cacheUnavailableReason: metrics.cacheUnavailableReason },
  })
  await store.close()
  process.disconnect()
}

main().catch(async (e) => {
  try {
    await send({ type: 'error', message: e && e.stack ? e.stack : String(e) })
  } catch {}
  process.exit(1)
})

'use strict'
// The remote group: the shared PostgreSQL bank (`PatternCache.open({ dbPath,
// remote: { url } })`), against a real server started for the group by the
// tests' harness (__test__/postgres.js: initdb + pg_ctl in a temp directory,
// 127.0.0.1, fsync, synchronous_commit and full_page_writes off) and stopped
// at its end. It runs only where PostgreSQL is installed; elsewhere it records
// why not (postgres.skipReason()).
//
// Initial sync: a bank of 100,000 x 768 (BENCH_QUICK: 10,000 x 768; the
// seeded patterns of lib/dataset.js: random unit float32 embeddings, 100-500
// bytes of content, small JSON metadata) loaded through the API (a writer
// replica, `storePatterns` in batches of 1,000; its throughput reported). Then
// 3 rounds (each starting with another contender, after one untimed run of
// each COPY that also counts its bytes):
//   pattern-cache  a fresh replica directory, PatternCache.open({ dbPath, remote: { url },
//                  backgroundRebuild: false }) (untimed), then `await syncRemote()` timed:
//                  one pass, one local transaction. The replica's background syncer would
//                  race it for that first pass (it runs one right after connecting), so
//                  while timed this benchmark holds `<db>.syncer-lock` (flock(1)): the
//                  syncer waits for the role and the timed call does the whole sync.
//                  Then rebuildCache() and a first loadPattern served by tier 1.
//   COPY binary    psql -X -q -c "COPY (SELECT <every column> FROM pattern_cache.patterns
//                  WHERE generation > 0 ORDER BY generation, id) TO STDOUT WITH (FORMAT binary)"
//                  > /dev/null, spawn to exit: the floor (the same rows, read the same way)
//   COPY text      the same in the text format (info)
// Target: sync / binary COPY <= 3x (medians).
//
// Commit to visible: two replicas A and B (their own directories, each its
// own syncer) on a second bank of 1,000 patterns; N times (after 5 untimed,
// each after a random pause: 0-50 ms with NOTIFY, 0-pollInterval when polling)
// one pattern stored on A: t0 just before `a.storePattern(p)`, t1 when
// `b.loadPattern(id)` first returns it (polled in a loop yielding with
// setImmediate), and when A's write resolved. With NOTIFY (listen: true,
// pollInterval 60,000) and polling only (listen: false, pollInterval 250).
//
// Writes: one replica on that bank; `await a.storePattern(p)` (a new
// 768-dim pattern) and `await a.recordUsage(id, { success: true })`, awaited
// one after another, against the pg client's INSERT of the same row (id,
// embedding bytea, content, metadata) into a plain table and an
// `UPDATE ... SET n = n + 1`, one autocommit statement per awaited query,
// alternating with pattern-cache's call, on the same server.

const fs = require('node:fs')
const path = require('node:path')
const { spawn, execFileSync } = require('node:child_process')
const { performance } = require('node:perf_hooks')
const { generate, rng, DIM } = require('./dataset')
const { percentile, sleep, collect } = require('./measure')
// The tests' event recorder: one copy for tests and benchmark.
const { eventLog } = require('../../__test__/helpers.js')

const DATA_ROOT = path.join(__dirname, '..', 'data')
const HARNESS = path.join(__dirname, '..', '..', '__test__', 'postgres.js')
const LOAD_BATCH = 1000
const SYNC_RUNS = 3
const LATENCY_BANK = 1000
const LATENCY_WARMUP = 5
const WRITE_WARMUP = 20
const GUARD_MS = 70000 // a failure guard only: NOTIFY mode polls every 60 s
const COLUMNS =
  'id, generation, deleted, type, domain, framework, content, embedding, coverage, flakiness_score, verdict, created_at, last_used, usage_count, success_count, metadata'
const COPY_SQL = (format) =>
  `COPY (SELECT ${COLUMNS} FROM pattern_cache.patterns WHERE generation > 0 ORDER BY generation, id) TO STDOUT${format === 'binary' ? ' WITH (FORMAT binary)' : ''}`
const MODES = [
  { name: 'NOTIFY', remote: { listen: true, pollInterval: 60000 }, what: 'listen: true, pollInterval: 60000 (woken by NOTIFY)' },
  { name: 'polling', remote: { listen: false, pollInterval: 250 }, what: 'listen: false, pollInterval: 250 (polling only)' },
]

const CONTENDERS = {
  sync: {
    title: 'pattern-cache syncRemote() (fresh replica)',
    description:
      'a fresh replica directory, `PatternCache.open({ dbPath, remote: { url }, backgroundRebuild: false })` (not timed), then `await cache.syncRemote()`: one pass (keyset pages of 1,000 by (generation, id), fetched and validated on a thread beside the apply) into one SQLite transaction; the replica\'s syncer kept from racing it for that pass by holding `<db>.syncer-lock` while timed.',
  },
  'copy-binary': {
    title: 'psql COPY ... TO STDOUT (FORMAT binary) > /dev/null',
    description: '`psql -X -q -c "COPY (SELECT <the 16 columns> FROM pattern_cache.patterns WHERE generation > 0 ORDER BY generation, id) TO STDOUT WITH (FORMAT binary)" > /dev/null`, spawn to exit: the same rows in the same order, read and sent, nothing applied (the floor).',
  },
  'copy-text': {
    title: 'psql COPY ... TO STDOUT (text) > /dev/null',
    description: 'the same in COPY\'s text format (bytea as hex: twice the bytes), info only.',
  },
  store: { title: 'pattern-cache storePattern', description: '`await a.storePattern(p)`: one 768-dim pattern, a new id each time.' },
  insert: {
    title: 'pg INSERT (autocommit)',
    description: '`INSERT INTO bench_plain (id, embedding, content, metadata) VALUES ($1, $2, $3, $4)` (embedding as bytea of LE float32, metadata as JSON text), one awaited `client.query` per row, a named (prepared) statement, autocommit.',
  },
  use: { title: 'pattern-cache recordUsage', description: '`await a.recordUsage(id, { success: true })` of a pattern stored above.' },
  update: { title: 'pg UPDATE (autocommit)', description: '`UPDATE bench_plain SET n = n + 1 WHERE id = $1`, one awaited named statement per use.' },
}

const summary = (xs) => ({ median: percentile(xs, 0.5), p99: percentile(xs, 0.99), max: xs.reduce((a, b) => Math.max(a, b), 0), min: xs.reduce((a, b) => Math.min(a, b), Infinity), runs: xs.length })
const fmtMs = (ms) => (ms === undefined || Number.isNaN(ms) ? '-' : ms < 1 ? `${(ms * 1000).toFixed(0)} µs` : ms < 1000 ? `${ms.toFixed(2)} ms` : `${(ms / 1000).toFixed(2)} s`)
const fmtN = (n) => n.toLocaleString('en-US')
const immediate = () => new Promise((resolve) => setImmediate(resolve))

/** The patterns of lib/dataset.js's generator, `count` of them, with ids `${prefix}NNNNNN`. */
function* patterns(count, prefix) {
  let i = 0
  for (const batch of generate(count)) for (const p of batch) yield prefix ? { ...p, id: `${prefix}${String(i++).padStart(6, '0')}` } : p
}

/** Bytes of a pattern as the API is given it (content, embedding, metadata JSON). */
const payloadBytes = (p) => Buffer.byteLength(p.content) + p.embedding.length * 4 + Buffer.byteLength(JSON.stringify(p.metadata))

/** psql: beside initdb (Debian keeps them in /usr/lib/postgresql/<v>/bin), else on PATH. */
function psqlPath(postgres) {
  const bins = postgres.binaries()
  try {
    const beside = path.join(path.dirname(fs.realpathSync(bins.initdb)), 'psql')
    if (fs.existsSync(beside)) return beside
  } catch {}
  return 'psql'
}

/** psql's environment for a database of the server: the password in PGPASSWORD (not argv). */
function psqlEnv(server, database) {
  const env = { ...process.env, LC_ALL: 'C', LANG: 'C' }
  for (const key of Object.keys(env)) if (key.startsWith('PG')) delete env[key]
  return { ...env, PGHOST: '127.0.0.1', PGPORT: String(server.port), PGUSER: server.user, PGPASSWORD: server.password, PGDATABASE: database }
}

/** Runs `psql -X -q -c sql` (stdout to /dev/null, or counted), resolving { ms, bytes } from spawn to exit. */
function psql(bin, env, sql, { count = false } = {}) {
  return new Promise((resolve, reject) => {
    const devNull = count ? null : fs.openSync('/dev/null', 'w')
    const started = performance.now()
    const child = spawn(bin, ['-X', '-q', '-c', sql], { env, stdio: ['ignore', count ? 'pipe' : devNull, 'pipe'] })
    let bytes = 0
    let stderr = ''
    if (count) child.stdout.on('data', (d) => (bytes += d.length))
    child.stderr.on('data', (d) => (stderr += d))
    child.on('error', (e) => {
      if (devNull !== null) fs.closeSync(devNull)
      reject(e)
    })
    child.on('close', (code, signal) => {
      const ms = performance.now() - started
      if (devNull !== null) fs.closeSync(devNull)
      if (code !== 0) return reject(new Error(`psql exited ${signal || code}: ${stderr.trim().split('\n').slice(-2).join(' / ')}`))
      resolve({ ms, bytes: count ? bytes : undefined })
    })
  })
}

/**
 * Holds `<dbPath>.syncer-lock` (flock(1), the same flock(2) lock the addon's
 * syncer takes) until release(): while held, the replica's background syncer
 * waits for the role, so syncRemote() alone syncs. The holder also ends when
 * this process does (its stdin closes).
 */
async function holdSyncerRole(dbPath) {
  const child = spawn('flock', ['-n', `${dbPath}.syncer-lock`, '-c', 'echo held; exec cat > /dev/null'], { stdio: ['pipe', 'pipe', 'pipe'] })
  const exited = new Promise((resolve) => child.on('close', resolve))
  await new Promise((resolve, reject) => {
    let out = ''
    child.stdout.on('data', (d) => {
      out += d
      if (out.includes('held')) resolve()
    })
    child.on('error', reject)
    exited.then((code) => reject(new Error(`flock exited ${code} before holding the lock`)))
  })
  return {
    release: async () => {
      child.stdin.end()
      await exited
    },
  }
}

const hasFlock = () => {
  try {
    execFileSync('flock', ['--version'], { stdio: 'ignore' })
    return true
  } catch {
    return false
  }
}

/**
 * CPU seconds of this server's processes so far: the postmaster (its own and
 * its reaped backends') and its live children. They are not this process's
 * children (pg_ctl daemonizes the server), so lib/load.js would count them as
 * other processes' load.
 */
function serverCpuSeconds(server) {
  const stat = (pid) => {
    const s = fs.readFileSync(`/proc/${pid}/stat`, 'utf8')
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ')
    return { ppid: Number(f[1]), ticks: Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14]) }
  }
  try {
    const pid = Number(fs.readFileSync(path.join(server.dataDir, 'postmaster.pid'), 'utf8').split('\n')[0])
    let ticks = stat(pid).ticks
    for (const name of fs.readdirSync('/proc')) {
      if (!/^\d+$/.test(name)) continue
      try {
        const s = stat(name)
        if (s.ppid === pid) ticks += s.ticks
      } catch {}
    }
    return ticks / 100 // USER_HZ
  } catch {
    return null
  }
}

/** CPU seconds so far of this process (all its threads) and of its reaped children (psql), and of the server. */
function cpuNow(server) {
  let children = NaN
  try {
    const s = fs.readFileSync('/proc/self/stat', 'utf8')
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ')
    children = (Number(f[13]) + Number(f[14])) / 100
  } catch {}
  const u = process.cpuUsage()
  return { self: (u.user + u.system) / 1e6, children, server: serverCpuSeconds(server) ?? NaN }
}
const cpuSince = (a, b) => ({ self: b.self - a.self, children: b.children - a.children, server: b.server - a.server })

/**
 * An onEvent listener per instance over the tests' event recorder
 * (__test__/helpers.js eventLog), also collecting into `all` tagged with the
 * instance; wait(type) resolves at the next (or at once after a past) one.
 */
function instanceLog(tag, all) {
  const log = eventLog()
  const onEvent = (e) => {
    log.onEvent(e)
    all.push({ tag, ...e })
  }
  const wait = (type, timeoutMs = 60000) =>
    log.waitEvent((e) => e.type === type, timeoutMs, `${tag}: a ${type} event`, () => log.events.some((e) => e.type === type))
  return { onEvent, events: log.events, wait }
}

function samePattern(got, want, what) {
  if (!got) throw new Error(`${what}: ${want.id} not found`)
  if (got.content !== want.content || got.domain !== want.domain || JSON.stringify(got.metadata) !== JSON.stringify(want.metadata)) throw new Error(`${what}: ${want.id} differs`)
  if (got.embedding.length !== want.embedding.length) throw new Error(`${what}: ${want.id}.embedding length`)
  for (let i = 0; i < want.embedding.length; i++) if (got.embedding[i] !== want.embedding[i]) throw new Error(`${what}: ${want.id}.embedding[${i}]`)
}

const dirSize = (dir) => {
  let n = 0
  for (const f of fs.readdirSync(dir)) n += fs.statSync(path.join(dir, f)).size
  return n
}

/** The bank of `size` x 768 loaded through a writer replica; then the initial sync against COPY. */
async function measureSync(ctx, env) {
  const { log } = ctx
  const { server, results, tmp, PatternCache, events, psqlBin } = env
  const size = results.size
  const bank = await server.createDatabase('bank')
  const url = server.url(bank)

  log(`\n== loading the bank: ${fmtN(size)} x ${DIM} through storePatterns (batches of ${fmtN(LOAD_BATCH)}, one writer replica)`)
  const writerLog = instanceLog('writer', events)
  const writer = await PatternCache.open({ dbPath: path.join(tmp, 'writer', 'patterns.db'), remote: { url }, backgroundRebuild: false, onEvent: writerLog.onEvent })
  const batchMs = []
  let bytes = 0
  let first = null
  let last = null
  try {
    let batch = []
    const flush = async () => {
      const started = performance.now()
      await writer.storePatterns(batch)
      batchMs.push(performance.now() - started)
      batch = []
    }
    for (const p of patterns(size)) {
      first ||= p
      last = p
      bytes += payloadBytes(p)
      batch.push(p)
      if (batch.length === LOAD_BATCH) await flush()
    }
    if (batch.length) await flush()
    results.writerRemote = writer.getMetrics().remote
  } finally {
    await writer.shutdown()
  }
  const loadMs = batchMs.reduce((a, b) => a + b, 0)
  const [bankRow] = await server.query(
    `SELECT count(*)::int AS n, max(generation)::int AS g, pg_total_relation_size('pattern_cache.patterns')::bigint AS size FROM pattern_cache.patterns`,
    [],
    bank,
  )
  if (bankRow.n !== size) throw new Error(`the bank holds ${bankRow.n} patterns, not ${size}`)
  results.load = {
    patterns: size,
    batches: batchMs.length,
    batchSize: LOAD_BATCH,
    ms: loadMs,
    perSecond: size / (loadMs / 1000),
    payloadBytes: bytes,
    batch: summary(batchMs),
    generation: bankRow.g,
    tableBytes: Number(bankRow.size),
  }
  log(
    `    ${fmtN(size)} patterns in ${fmtMs(loadMs)} (${fmtN(Math.round(results.load.perSecond))} patterns/s, ${(bytes / 2 ** 20 / (loadMs / 1000)).toFixed(1)} MiB/s of payload); ` +
      `a batch: median ${fmtMs(results.load.batch.median)}, p99 ${fmtMs(results.load.batch.p99)}; bank at generation ${bankRow.g}, table + TOAST + indexes ${(results.load.tableBytes / 2 ** 20).toFixed(0)} MiB`,
  )

  log(`\n== initial sync of ${fmtN(size)} x ${DIM} into a fresh replica, against psql COPY of the same rows (${SYNC_RUNS} rounds)`)
  const copyEnv = psqlEnv(server, bank)
  const copy = { binary: { ms: [], cpu: [], bytes: 0 }, text: { ms: [], cpu: [], bytes: 0 } }
  // untimed, warming the server's caches; the bytes each sends
  for (const format of ['binary', 'text']) {
    const r = await psql(psqlBin, copyEnv, COPY_SQL(format), { count: true })
    copy[format].bytes = r.bytes
    log(`    (untimed) COPY ${format}: ${(r.bytes / 2 ** 20).toFixed(1)} MiB in ${fmtMs(r.ms)}`)
  }
  const flock = hasFlock()
  if (!flock) results.notes.push('flock(1) is not installed: the fresh replicas\' syncers were not held off, so a background pass may have raced syncRemote() (rowsApplied shows whether it did)')
  const syncRuns = []
  const steps = {
    sync: async (round) => {
      const dir = path.join(tmp, `replica-${round}`)
      fs.rmSync(dir, { recursive: true, force: true })
      fs.mkdirSync(dir, { recursive: true })
      const dbPath = path.join(dir, 'patterns.db')
      const holder = flock ? await holdSyncerRole(dbPath) : null
      const replicaLog = instanceLog(`replica-${round}`, events)
      let cache = null
      try {
        collect()
        let started = performance.now()
        cache = await PatternCache.open({ dbPath, remote: { url }, backgroundRebuild: false, onEvent: replicaLog.onEvent })
        const openMs = performance.now() - started
        const cpu0 = cpuNow(server)
        started = performance.now()
        const r = await cache.syncRemote()
        const ms = performance.now() - started
        const cpu = cpuSince(cpu0, cpuNow(server))
        const afterSync = cache.getMetrics()
        // the first read served by tier 1: the cache file rebuilt from the synced replica
        started = performance.now()
        const built = await cache.rebuildCache()
        const rebuildWallMs = performance.now() - started
        const got = await cache.loadPattern(first.id)
        const firstReadMs = performance.now() - started
        const m = cache.getMetrics()
        samePattern(got, first, 'after the sync')
        samePattern(await cache.loadPattern(last.id), last, 'after the sync')
        if (!built.success) throw new Error(`rebuildCache after the sync failed: ${built.error}`)
        if (m.tier !== 'cache') throw new Error(`after rebuildCache the replica serves from ${m.tier} (${m.cacheUnavailableReason || ''})`)
        const run = {
          round,
          ms,
          duration: r.duration,
          fromGeneration: r.fromGeneration,
          toGeneration: r.toGeneration,
          rowsApplied: r.rowsApplied,
          cpu,
          openMs,
          tierAfterSync: afterSync.tier,
          remoteAfterSync: afterSync.remote,
          rebuildMs: built.duration,
          rebuildWallMs,
          firstReadMs,
          patternCount: built.patternCount,
          cacheFileSize: built.cacheFileSize,
          replicaBytes: 0,
          syncerEvents: replicaLog.events.filter((e) => e.type === 'remote_synced').length,
        }
        syncRuns.push(run)
        log(
          `    syncRemote() round ${round + 1}: ${fmtMs(ms)} (its duration ${fmtMs(r.duration)}; generation ${r.fromGeneration} -> ${r.toGeneration}, ${fmtN(r.rowsApplied)} rows; CPU: this process ${cpu.self.toFixed(2)} s, the server ${cpu.server.toFixed(2)} s); ` +
            `then rebuildCache() ${fmtMs(built.duration)}, first tier-1 read ${fmtMs(firstReadMs)} after the sync (tier before the rebuild: ${afterSync.tier})`,
        )
        if (r.rowsApplied !== size || r.fromGeneration !== 0 || r.toGeneration !== results.load.generation) {
          results.notes.push(`initial sync round ${round + 1}: syncRemote() applied ${r.rowsApplied} rows, generation ${r.fromGeneration} -> ${r.toGeneration} (expected ${size}, 0 -> ${results.load.generation})`)
        }
        await cache.shutdown()
        cache = null
        run.replicaBytes = dirSize(dir)
      } finally {
        if (cache) await cache.shutdown().catch(() => {})
        if (holder) await holder.release()
        fs.rmSync(dir, { recursive: true, force: true })
      }
    },
    binary: async (round) => {
      const cpu0 = cpuNow(server)
      const r = await psql(psqlBin, copyEnv, COPY_SQL('binary'))
      copy.binary.ms.push(r.ms)
      copy.binary.cpu.push(cpuSince(cpu0, cpuNow(server)))
      log(`    COPY binary round ${round + 1}: ${fmtMs(r.ms)}`)
    },
    text: async (round) => {
      const cpu0 = cpuNow(server)
      const r = await psql(psqlBin, copyEnv, COPY_SQL('text'))
      copy.text.ms.push(r.ms)
      copy.text.cpu.push(cpuSince(cpu0, cpuNow(server)))
      log(`    COPY text round ${round + 1}: ${fmtMs(r.ms)}`)
    },
  }
  const order = Object.keys(steps)
  for (let round = 0; round < SYNC_RUNS; round++) {
    for (let k = 0; k < order.length; k++) await steps[order[(round + k) % order.length]](round)
  }
  const median = (key) => percentile(syncRuns.map((r) => r[key]), 0.5)
  results.sync = {
    runs: syncRuns,
    ms: summary(syncRuns.map((r) => r.ms)),
    duration: median('duration'),
    openMs: median('openMs'),
    rebuildMs: median('rebuildMs'),
    firstReadMs: median('firstReadMs'),
    replicaBytes: median('replicaBytes'),
    cpu: { self: percentile(syncRuns.map((r) => r.cpu.self), 0.5), server: percentile(syncRuns.map((r) => r.cpu.server), 0.5) },
    cacheFileSize: median('cacheFileSize'),
    heldSyncer: flock,
  }
  const cpuOf = (runs) => ({ psql: percentile(runs.map((c) => c.children), 0.5), server: percentile(runs.map((c) => c.server), 0.5) })
  results.copy = {
    binary: { ...summary(copy.binary.ms), bytes: copy.binary.bytes, cpu: cpuOf(copy.binary.cpu) },
    text: { ...summary(copy.text.ms), bytes: copy.text.bytes, cpu: cpuOf(copy.text.cpu) },
  }
  log(
    `    median: syncRemote() ${fmtMs(results.sync.ms.median)}, COPY binary ${fmtMs(results.copy.binary.median)} (${(results.sync.ms.median / results.copy.binary.median).toFixed(2)}x), ` +
      `COPY text ${fmtMs(results.copy.text.median)} (${(results.sync.ms.median / results.copy.text.median).toFixed(2)}x)`,
  )
}

/** A second bank of LATENCY_BANK patterns, for the latency and write measures. */
async function latencyBank(env) {
  const { server, tmp, PatternCache, events } = env
  const db = await server.createDatabase('latency')
  const url = server.url(db)
  const seeder = await PatternCache.open({ dbPath: path.join(tmp, 'seeder', 'patterns.db'), remote: { url }, enabled: false, onEvent: instanceLog('seeder', events).onEvent })
  try {
    await seeder.storePatterns([...patterns(LATENCY_BANK)])
  } finally {
    await seeder.shutdown()
  }
  return { db, url }
}

/** A replica on `url` with `remote` options, opened and caught up by its own syncer's first pass. */
async function openReplica(env, url, dir, remote, tag) {
  const { PatternCache, events, tmp } = env
  const log = instanceLog(tag, events)
  const cache = await PatternCache.open({ dbPath: path.join(tmp, dir, 'patterns.db'), remote: { url, ...remote }, onEvent: log.onEvent })
  // The syncer's pass right after it connects (and LISTENs) moves the empty replica: then it is listening.
  await log.wait('remote_synced', 60000)
  return { cache, log }
}

/** Commit on A to visible on B, in both modes. */
async function measureLatency(ctx, env, bank) {
  const { log, quick } = ctx
  const { results } = env
  const n = quick ? 30 : 100
  const random = rng(20260404)
  log(`\n== commit on one replica to visible on another: ${n} writes of one pattern (after ${LATENCY_WARMUP} untimed), a bank of ${fmtN(LATENCY_BANK)}`)
  for (const mode of MODES) {
    const source = patterns(n + LATENCY_WARMUP, `latency-${mode.name.toLowerCase()}-`)
    const a = await openReplica(env, bank.url, `latency-${mode.name}-a`, mode.remote, `A (${mode.name})`)
    const b = await openReplica(env, bank.url, `latency-${mode.name}-b`, mode.remote, `B (${mode.name})`)
    // B sees a write at its next pass: a pause drawn over a whole poll interval, so that the
    // next write does not start in the same phase of B's poll timer each time
    const pauseMax = mode.remote.listen ? 50 : mode.remote.pollInterval
    try {
      await sleep(500) // the replicas' first cache-file builds settle
      const visible = []
      const write = []
      let polls = 0
      for (let i = 0; i < n + LATENCY_WARMUP; i++) {
        const p = source.next().value
        await sleep(random() * pauseMax) // writes not in step with the poll timer
        const t0 = performance.now()
        let tw = NaN
        let failed = null
        const w = a.cache.storePattern(p).then(
          () => (tw = performance.now()),
          (e) => (failed = e),
        )
        let t1
        for (;;) {
          polls++
          if (await b.cache.loadPattern(p.id)) {
            t1 = performance.now()
            break
          }
          if (failed) throw failed
          if (performance.now() - t0 > GUARD_MS) throw new Error(`B did not see ${p.id} within ${GUARD_MS / 1000} s (${mode.name})`)
          await immediate()
        }
        await w
        if (failed) throw failed
        if (i >= LATENCY_WARMUP) {
          visible.push(t1 - t0)
          write.push(tw - t0)
        }
      }
      const out = {
        mode: mode.name,
        what: mode.what,
        n,
        pauseMax,
        visible: summary(visible),
        write: summary(write),
        // B saw the write before A's own call resolved
        beforeWrite: visible.filter((v, i) => v < write[i]).length,
        polls,
        bMetrics: b.cache.getMetrics().remote,
        bSynced: b.log.events.filter((e) => e.type === 'remote_synced').length,
        unavailable: [...a.log.events, ...b.log.events].filter((e) => e.type === 'remote_unavailable').length,
      }
      results.latency.push(out)
      log(
        `    ${mode.name} (${mode.what}): visible on B p50 ${fmtMs(out.visible.median)} p99 ${fmtMs(out.visible.p99)} max ${fmtMs(out.visible.max)}; ` +
          `A's storePattern p50 ${fmtMs(out.write.median)} p99 ${fmtMs(out.write.p99)}; B's remote_synced events ${out.bSynced}`,
      )
    } finally {
      await a.cache.shutdown()
      await b.cache.shutdown()
    }
  }
}

/** pattern-cache's writes against a plain INSERT / UPDATE from the pg client, alternating. */
async function measureWrites(ctx, env, bank) {
  const { log, quick } = ctx
  const { server, results } = env
  const n = quick ? 50 : 200
  log(`\n== writes: ${n} awaited storePattern / recordUsage against the pg client's INSERT / UPDATE (after ${WRITE_WARMUP} untimed each, alternating)`)
  const a = await openReplica(env, bank.url, 'writes-a', {}, 'A (writes)')
  try {
    await server.withClient(bank.db, async (client) => {
      await client.query('CREATE TABLE bench_plain (id text PRIMARY KEY, embedding bytea, content text, metadata text, n integer NOT NULL DEFAULT 0)')
      const insert = 'INSERT INTO bench_plain (id, embedding, content, metadata) VALUES ($1, $2, $3, $4)'
      const update = 'UPDATE bench_plain SET n = n + 1 WHERE id = $1'
      const total = n + WRITE_WARMUP
      const pcPatterns = [...patterns(total, 'write-')].map((p) => ({ ...p, usageCount: 0, successCount: 0 }))
      const pgRows = [...patterns(total, 'plain-')].map((p) => [p.id, Buffer.from(p.embedding.buffer, p.embedding.byteOffset, p.embedding.byteLength), p.content, JSON.stringify(p.metadata)])
      const t = { store: [], insert: [], use: [], update: [] }
      const timed = async (key, i, fn) => {
        const started = performance.now()
        await fn()
        if (i >= WRITE_WARMUP) t[key].push(performance.now() - started)
      }
      for (let i = 0; i < total; i++) {
        const pc = () => timed('store', i, () => a.cache.storePattern(pcPatterns[i]))
        const pg = () => timed('insert', i, () => client.query({ name: 'bench-insert', text: insert, values: pgRows[i] }))
        if (i % 2) await pg(), await pc()
        else await pc(), await pg()
      }
      let notUsed = 0
      for (let i = 0; i < total; i++) {
        const pc = () =>
          timed('use', i, async () => {
            if (!(await a.cache.recordUsage(pcPatterns[i].id, { success: true }))) notUsed++
          })
        const pg = () =>
          timed('update', i, async () => {
            if ((await client.query({ name: 'bench-update', text: update, values: [pgRows[i][0]] })).rowCount !== 1) throw new Error('UPDATE changed no row')
          })
        if (i % 2) await pg(), await pc()
        else await pc(), await pg()
      }
      if (notUsed) throw new Error(`recordUsage resolved false ${notUsed} times`)
      const [{ n: rows }] = await client.query(`SELECT count(*)::int AS n FROM pattern_cache.patterns WHERE id LIKE 'write-%' AND usage_count = 1 AND success_count = 1`).then((r) => r.rows)
      if (rows !== total) throw new Error(`the bank holds ${rows} of the ${total} written patterns with one use`)
      results.writes = { n, store: summary(t.store), insert: summary(t.insert), use: summary(t.use), update: summary(t.update) }
    })
    const w = results.writes
    log(`    storePattern p50 ${fmtMs(w.store.median)} p99 ${fmtMs(w.store.p99)} vs INSERT p50 ${fmtMs(w.insert.median)} p99 ${fmtMs(w.insert.p99)} (${(w.store.median / w.insert.median).toFixed(1)}x, ${(w.store.p99 / w.insert.p99).toFixed(1)}x)`)
    log(`    recordUsage  p50 ${fmtMs(w.use.median)} p99 ${fmtMs(w.use.p99)} vs UPDATE p50 ${fmtMs(w.update.median)} p99 ${fmtMs(w.update.p99)} (${(w.use.median / w.update.median).toFixed(1)}x, ${(w.use.p99 / w.update.p99).toFixed(1)}x)`)
  } finally {
    await a.cache.shutdown()
  }
}

/** Runs the remote group: start a server, the three measures, stop it. */
async function measureRemote(ctx) {
  const { log, attempt, quick } = ctx
  const size = quick ? 10000 : 100000
  const results = {
    quick,
    size,
    dim: DIM,
    skipped: null,
    versions: {},
    load: null,
    sync: null,
    copy: null,
    latency: [],
    writes: null,
    contenders: CONTENDERS,
    modes: MODES,
    config: { loadBatch: LOAD_BATCH, syncRuns: SYNC_RUNS, latencyBank: LATENCY_BANK, latencyWarmup: LATENCY_WARMUP, writeWarmup: WRITE_WARMUP },
    serverCpuSeconds: null,
    events: { unavailable: 0, examples: [] },
    notes: [],
  }
  ctx.results.remote = results
  const postgres = require(HARNESS)
  if (!postgres.available()) {
    results.skipped = postgres.skipReason() || 'PostgreSQL is not installed (no initdb/pg_ctl/postgres on PATH or in /usr/lib/postgresql/*/bin)'
    log(`\n== remote: not run: ${results.skipped}`)
    return results
  }
  try {
    require.resolve('pg', { paths: [path.dirname(HARNESS)] })
  } catch {
    results.skipped = 'the `pg` client is not installed (a devDependency of the package: npm install)'
    log(`\n== remote: not run: ${results.skipped}`)
    return results
  }
  const { PatternCache } = require('../..')
  const tmp = path.join(DATA_ROOT, 'remote-run')
  fs.rmSync(tmp, { recursive: true, force: true })
  fs.mkdirSync(tmp, { recursive: true })
  const events = []
  let server = null
  try {
    await attempt('the remote group (starting PostgreSQL)', async () => {
      log(`\n== remote: starting PostgreSQL (${postgres.binaries().postgres})`)
      server = await postgres.start()
      const [{ v }] = await server.query("SELECT current_setting('server_version') AS v")
      const psqlBin = psqlPath(postgres)
      results.versions = {
        PostgreSQL: v,
        psql: execFileSync(psqlBin, ['--version'], { encoding: 'utf8' }).trim(),
        pg: require(require.resolve('pg/package.json', { paths: [path.dirname(HARNESS)] })).version,
      }
      results.server = { settings: 'fsync=off, synchronous_commit=off, full_page_writes=off, max_connections=200', psql: psqlBin }
      log(`    PostgreSQL ${v} on 127.0.0.1:${server.port}; ${results.versions.psql}; pg ${results.versions.pg}`)
      const env = { server, results, tmp, PatternCache, events, psqlBin }
      await attempt(`remote initial sync at ${fmtN(size)} x ${DIM}`, () => measureSync(ctx, env))
      let bank = null
      await attempt('remote: the latency bank', async () => (bank = await latencyBank(env)))
      if (bank) {
        await attempt('remote commit-to-visible latency', () => measureLatency(ctx, env, bank))
        await attempt('remote write latency against a plain INSERT', () => measureWrites(ctx, env, bank))
      }
    })
  } finally {
    if (server) {
      results.serverCpuSeconds = serverCpuSeconds(server)
      await server.stop()
      log(`    PostgreSQL stopped (its processes used ${results.serverCpuSeconds === null ? 'an unknown amount of' : `${results.serverCpuSeconds.toFixed(1)} s of`} CPU)`)
    }
    fs.rmSync(tmp, { recursive: true, force: true })
    const unavailable = events.filter((e) => e.type === 'remote_unavailable')
    results.events = { unavailable: unavailable.length, examples: unavailable.slice(0, 3).map((e) => `${e.tag}: ${e.error}`) }
    if (unavailable.length) results.notes.push(`remote_unavailable events during the group: ${unavailable.length} (${results.events.examples.join('; ')})`)
    ctx.results.notes.push(...results.notes.map((n) => `remote: ${n}`))
  }
  return results
}

module.exports = { measureRemote, CONTENDERS, MODES, COPY_SQL, SYNC_RUNS }

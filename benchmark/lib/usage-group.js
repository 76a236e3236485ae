'use strict'
// The usage group: pattern use counters under a burst from many processes, and
// the memory of `pattern-cache export` on the largest data set.
//
// Burst: 10,000 uses of 5,000 distinct patterns (each used twice, in a seeded
// order, dealt round-robin to 8 child processes, so the two uses of a pattern
// mostly come from different processes) on a 20,000 x 384 data set (seeded once
// through storePatterns, reused; each run works on a fresh copy of it). Each
// process (child/usage-burst.js) opens its own store on that copy, waits until
// all are open, then awaits its 1,250 uses one after another while it reads
// (one read per millisecond: loadPattern, query, listPatterns), and keeps
// reading for one checkInterval after the last process is done; then reads
// every used pattern back and compares it with the database. Contenders:
//   pattern-cache    PatternCache.open({ dbPath }) (default options: checkInterval 1000 ms),
//                    await cache.recordUsage(id, { success, at })
//   better-sqlite3   the same UPDATE on a copy of the same database file
//                    (WAL, busy_timeout 5000), and the same reads as SELECTs
// Then the database is compared with the uses each process saw acknowledged:
// usage_count and success_count increments, and last_used = max.
//
// Export: `node bin/pattern-cache.js export --db <db> --out <file>` on the
// search group's 100,000 x 768 set (BENCH_QUICK: 10,000 x 384), its RSS
// sampled every 20 ms (/proc/<pid>/status) and its peak (resourceUsage().maxRSS
// at exit, child/max-rss.js) against the peak of a process that only loads the
// package and opens the store the same way (child/export-baseline.js).

const fs = require('node:fs')
const path = require('node:path')
const { fork, spawn } = require('node:child_process')
const { performance } = require('node:perf_hooks')
const Database = require('better-sqlite3')
const { rng, shuffle } = require('./dataset')
const { SETS, DOMAINS, generate, ensureSearchDataset } = require('./search-data')
const { percentile, sleep } = require('./measure')
const { SELECT_ALL, rowToPattern } = require('./rows')

const DATA_ROOT = path.join(__dirname, '..', 'data')
const GENERATOR_VERSION = 1
const SEED = 20260303
const BATCH = 5000
const CHECK_INTERVAL = 1000 // PatternCache's default checkInterval (ms): the children open with default options
/** The burst: its data set and its uses. */
const BURST = { count: 20000, dim: 384, uses: 10000, distinct: 5000, processes: 8, successRate: 0.7 }
BURST.name = `${BURST.count.toLocaleString('en-US')} x ${BURST.dim}`
/** The uses' `at` values start here (the seeded lastUsed values lie around it, so max() goes both ways). */
const AT0 = Date.UTC(2026, 5, 1)
const EXPORT_RUNS = 2
const SAMPLE_MS = 20
const TYPES = ['unit', 'integration', 'e2e', 'contract', 'snapshot'] // search-data's

const CONTENDERS = {
  'pattern-cache': {
    title: 'pattern-cache',
    description:
      '`PatternCache.open({ dbPath })` in each process (default options: checkInterval 1000 ms), `await cache.recordUsage(id, { success, at })`; reads `loadPattern`, `query`, `listPatterns`.',
  },
  'better-sqlite3': {
    title: 'better-sqlite3 UPDATE',
    description:
      'better-sqlite3 on a copy of the same database file (WAL, busy_timeout 5000) in each process: `UPDATE patterns SET usage_count = usage_count + 1, success_count = success_count + ?, last_used = max(coalesce(last_used, ?), ?) WHERE id = ?` (synchronous; the schema\'s triggers fire as for pattern-cache); reads as SELECTs by id, domain + type, and a keyset page by domain.',
  },
}

const idOf = (i) => `pattern-${String(i).padStart(6, '0')}`

/** The burst's data set: search-data's clustered patterns of 20,000 x 384, with counters, seeded once and reused. */
async function ensureUsageDataset(log) {
  const dir = path.join(DATA_ROOT, `usage-${BURST.count}x${BURST.dim}`)
  const dbPath = path.join(dir, 'patterns.db')
  const manifestPath = path.join(dir, 'manifest.json')
  const want = { generator: GENERATOR_VERSION, seed: SEED, count: BURST.count, dim: BURST.dim }
  let have = null
  try {
    have = JSON.parse(fs.readFileSync(manifestPath, 'utf8'))
  } catch {}
  let seedMs = have?.seedMs
  if (!have || JSON.stringify({ ...have, seedMs: undefined }) !== JSON.stringify(want) || !fs.existsSync(dbPath)) {
    log(`generating ${BURST.name} patterns for the usage burst into ${path.relative(process.cwd(), dir)}/ ...`)
    const started = Date.now()
    fs.rmSync(dir, { recursive: true, force: true })
    fs.mkdirSync(dir, { recursive: true })
    const { PatternCache } = require('../..')
    const cache = await PatternCache.open({ dbPath, enabled: false })
    const random = rng(SEED)
    for (const batch of generate({ count: BURST.count, dim: BURST.dim })) {
      await cache.storePatterns(
        batch.map((p) => {
          const usageCount = Math.floor(random() * 50)
          const lastUsed = random() < 0.1 ? undefined : AT0 - 5000 + Math.floor(random() * 15000)
          return { ...p, usageCount, successCount: Math.floor(usageCount * random()), ...(lastUsed === undefined ? {} : { lastUsed }) }
        }),
      )
    }
    await cache.shutdown()
    const db = new Database(dbPath)
    db.pragma('wal_checkpoint(TRUNCATE)')
    db.close()
    seedMs = Date.now() - started
    fs.writeFileSync(manifestPath, JSON.stringify({ ...want, seedMs }, null, 2) + '\n')
    log(`  done in ${(seedMs / 1000).toFixed(1)} s`)
  }
  return { ...BURST, dir, dbPath, seedMs }
}

/** The uses, deterministically: [[id, success, at]...] in order, and the distinct ids. */
function usePlan() {
  const random = rng(SEED * 7)
  const ids = shuffle(Array.from({ length: BURST.count }, (_, i) => idOf(i)), random).slice(0, BURST.distinct)
  const order = shuffle([...ids, ...ids], random)
  const uses = order.map((id, i) => [id, random() < BURST.successRate, AT0 + i])
  return { ids, uses }
}

/** usage_count, success_count, last_used of every pattern: Map id -> [u, s, l]. */
function readCounters(dbPath) {
  const db = new Database(dbPath, { readonly: true, fileMustExist: true })
  try {
    const out = new Map()
    for (const r of db.prepare('SELECT id, usage_count, success_count, last_used FROM patterns').raw().iterate()) out.set(r[0], [r[1], r[2], r[3]])
    return out
  } finally {
    db.close()
  }
}

/** A forked child with its messages as promises: child.next(type). */
function forkChild(file, args) {
  const proc = fork(file, args, { stdio: ['ignore', 'inherit', 'pipe', 'ipc'] })
  let stderr = ''
  proc.stderr.on('data', (d) => (stderr += d))
  const waiting = new Map()
  const arrived = new Map()
  let failure = null
  const fail = (e) => {
    failure ||= e
    for (const w of waiting.values()) w.reject(failure)
    waiting.clear()
  }
  proc.on('message', (m) => {
    if (m.type === 'error') return fail(new Error(`child: ${m.message}`))
    const w = waiting.get(m.type)
    if (w) {
      waiting.delete(m.type)
      w.resolve(m)
    } else arrived.set(m.type, m)
  })
  const exited = new Promise((resolve) => proc.on('exit', (code, signal) => resolve({ code, signal })))
  exited.then(({ code, signal }) => {
    if (waiting.size) fail(new Error(`child exited (${signal || code}) while awaited: ${stderr.trim().split('\n').slice(-3).join(' / ')}`))
  })
  return {
    proc,
    exited,
    send: (m) => proc.send(m),
    next(type, timeoutMs = 180000) {
      if (failure) return Promise.reject(failure)
      if (arrived.has(type)) {
        const m = arrived.get(type)
        arrived.delete(type)
        return Promise.resolve(m)
      }
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          waiting.delete(type)
          reject(new Error(`child sent no ${type} within ${timeoutMs / 1000} s`))
        }, timeoutMs)
        waiting.set(type, {
          resolve: (m) => (clearTimeout(timer), resolve(m)),
          reject: (e) => (clearTimeout(timer), reject(e)),
        })
      })
    },
    kill: () => proc.kill('SIGKILL'),
  }
}

const summary = (xs) => ({ median: percentile(xs, 0.5), p99: percentile(xs, 0.99), max: xs.reduce((a, b) => Math.max(a, b), 0), runs: xs.length })
const sum = (xs) => xs.reduce((a, b) => a + b, 0)

/** One contender's burst on a fresh copy of the data set. */
async function burst(name, ds, plan, log) {
  const dir = path.join(ds.dir, `run-${name}`)
  fs.rmSync(dir, { recursive: true, force: true })
  fs.mkdirSync(dir, { recursive: true })
  const dbPath = path.join(dir, 'patterns.db')
  fs.copyFileSync(ds.dbPath, dbPath)
  if (name === 'pattern-cache') {
    // the cache file, built before the burst (as a long-running store would have one)
    const { PatternCache } = require('../..')
    const cache = await PatternCache.open({ dbPath })
    await cache.shutdown()
  }
  const before = readCounters(dbPath)
  const shares = Array.from({ length: ds.processes }, (_, p) => plan.uses.filter((_, i) => i % ds.processes === p))
  const filters = DOMAINS.flatMap((domain) => TYPES.map((type) => ({ domain, type })))
  const allIds = Array.from({ length: ds.count }, (_, i) => idOf(i))
  const file = path.join(__dirname, '..', 'child', 'usage-burst.js')
  const children = shares.map(() => forkChild(file, [name, dbPath]))
  try {
    children.forEach((c, p) => c.send({ type: 'plan', uses: shares[p], ids: allIds, filters, domains: DOMAINS, checkInterval: CHECK_INTERVAL, seed: SEED + p }))
    const ready = await Promise.all(children.map((c) => c.next('ready')))
    const goAt = performance.timeOrigin + performance.now()
    children.forEach((c) => c.send({ type: 'go' }))
    const done = await Promise.all(children.map((c) => c.next('done')))
    const allDone = performance.timeOrigin + performance.now()
    await sleep(CHECK_INTERVAL + 250) // every process reads for one more checkInterval after the last use
    const truth = readCounters(dbPath)
    const expected = plan.ids.map((id) => [id, ...truth.get(id)])
    children.forEach((c) => c.send({ type: 'verify', expected }))
    const verified = await Promise.all(children.map((c) => c.next('verified')))
    const exits = await Promise.all(children.map((c) => c.exited))
    const badExit = exits.find((e) => e.code !== 0)
    if (badExit) throw new Error(`a ${name} process exited ${badExit.signal || badExit.code}`)

    // the database after, against what the processes saw acknowledged
    const after = readCounters(dbPath)
    const want = new Map(plan.ids.map((id) => [id, [...before.get(id)]]))
    done.forEach((d, p) => {
      shares[p].forEach(([id, success, at], k) => {
        if (!d.acknowledged[k]) return
        const w = want.get(id)
        w[0]++
        if (success) w[1]++
        w[2] = w[2] === null ? at : Math.max(w[2], at)
      })
    })
    let usageDelta = 0
    let successDelta = 0
    for (const [id, [u, s]] of after) {
      const [u0, s0] = before.get(id)
      usageDelta += u - u0
      successDelta += s - s0
    }
    let wrongUsage = 0
    let wrongSuccess = 0
    let wrongLastUsed = 0
    for (const [id, [u, s, l]] of want) {
      const [ua, sa, la] = after.get(id)
      if (ua !== u) wrongUsage++
      if (sa !== s) wrongSuccess++
      if (la !== l) wrongLastUsed++
    }
    const acked = sum(done.map((d) => d.acked))
    const ackedSuccess = sum(done.map((d) => d.ackedSuccess))
    const latency = done.flatMap((d) => d.latency)

    // reads answered by SQLite (pattern-cache): per process, around its first checkInterval after go
    const isPc = name === 'pattern-cache'
    const misses = isPc
      ? {
          beforeGo: sum(verified.map((v) => v.misses.go - v.misses.open)),
          firstInterval: sum(verified.map((v) => v.misses.firstInterval - v.misses.go)),
          after: sum(verified.map((v) => v.misses.readsEnd - v.misses.firstInterval)),
          readBack: sum(verified.map((v) => v.misses.verify - v.misses.readsEnd)),
          lastAtMs: Math.max(
            -1,
            ...verified.map((v) => {
              let last = -1
              for (let i = 1; i < v.timeline.length; i++) if (v.timeline[i][1] > v.timeline[i - 1][1]) last = v.timeline[i][0]
              if (v.timeline.length && v.timeline[0][1] > v.misses.go) last = Math.max(last, v.timeline[0][0])
              return last
            }),
          ),
        }
      : null
    const reasons = {}
    const rebuildsBy = { beforeGo: 0, burst: 0, readBack: 0 }
    verified.forEach((v, p) => {
      for (const e of v.events.filter((e) => e.type === 'rebuild_started')) {
        reasons[e.reason] = (reasons[e.reason] || 0) + 1
        rebuildsBy[e.at < done[p].goAt ? 'beforeGo' : e.at <= v.readsEndAt ? 'burst' : 'readBack']++
      }
    })
    const reads = verified.map((v) => v.reads)
    const out = {
      contender: name,
      processes: ds.processes,
      uses: plan.uses.length,
      distinct: plan.ids.length,
      acked,
      ackedSuccess,
      notFound: sum(done.map((d) => d.notFound)),
      errors: sum(done.map((d) => d.errors)),
      firstError: done.map((d) => d.firstError).find(Boolean) || null,
      usageDelta,
      successDelta,
      lostUses: acked - usageDelta,
      lostSuccesses: ackedSuccess - successDelta,
      wrongUsage,
      wrongSuccess,
      wrongLastUsed,
      latency: summary(latency),
      wallMs: Math.max(...done.map((d) => d.endedAt)) - Math.min(...done.map((d) => d.startedAt)),
      goToAllDoneMs: allDone - goAt,
      cpuMs: sum(done.map((d) => d.cpuMs)),
      openMs: summary(ready.map((r) => r.openMs)),
      reads: {
        get: sum(reads.map((r) => r.get)),
        query: sum(reads.map((r) => r.query)),
        page: sum(reads.map((r) => r.page)),
        missing: sum(reads.map((r) => r.missing)),
        errors: sum(reads.map((r) => r.errors)),
        firstError: reads.map((r) => r.firstError).find(Boolean) || null,
        firstInterval: sum(reads.map((r) => r.byWindow.firstInterval)),
        after: sum(reads.map((r) => r.byWindow.after)),
        latency: summary(verified.flatMap((v) => v.readLatency)),
      },
      misses,
      rebuilds: { started: sum(Object.values(rebuildsBy)), ...rebuildsBy, reasons },
      cacheRebuildCount: isPc ? sum(verified.map((v) => v.metrics.cacheRebuildCount)) : null,
      tiers: isPc ? verified.map((v) => v.metrics.tier) : null,
      readBack: isPc
        ? {
            processes: verified.length,
            patterns: plan.ids.length,
            wrong: sum(verified.map((v) => v.readBack.wrong)),
            absent: sum(verified.map((v) => v.readBack.absent)),
            examples: verified.flatMap((v) => v.readBack.examples).slice(0, 3),
          }
        : null,
    }
    log(
      `    ${name}: ${acked.toLocaleString('en-US')} uses acknowledged, lost ${out.lostUses} (successCount ${out.lostSuccesses}), ` +
        `awaited use median ${fmtMs(out.latency.median)} p99 ${fmtMs(out.latency.p99)} max ${fmtMs(out.latency.max)}, burst ${fmtMs(out.wallMs)}` +
        (isPc ? `; SQLite reads ${misses.firstInterval} in the first checkInterval, ${misses.after + misses.readBack} after; rebuilds started ${out.rebuilds.started}` : ''),
    )
    return out
  } finally {
    for (const c of children) if (c.proc.exitCode === null && c.proc.signalCode === null) c.kill()
    fs.rmSync(dir, { recursive: true, force: true })
  }
}

const fmtMs = (ms) => (ms < 1 ? `${(ms * 1000).toFixed(0)} µs` : ms < 1000 ? `${ms.toFixed(2)} ms` : `${(ms / 1000).toFixed(2)} s`)

/** Peak RSS (bytes) of `node -r max-rss.js <args>`, with VmRSS sampled every 20 ms; and its wall time. */
function runMeasured(args, { tmp }) {
  return new Promise((resolve, reject) => {
    const out = path.join(tmp, `maxrss-${process.pid}-${Date.now()}.json`)
    const started = performance.now()
    const child = spawn(process.execPath, ['-r', path.join(__dirname, '..', 'child', 'max-rss.js'), ...args], {
      stdio: ['ignore', 'ignore', 'pipe'],
      env: { ...process.env, PC_BENCH_MAXRSS_OUT: out },
    })
    let stderr = ''
    child.stderr.on('data', (d) => (stderr += d))
    const samples = [] // [ms since spawn, VmRSS, RssAnon, RssFile (bytes)]
    let hwm = 0
    const kb = (status, name) => {
      const m = new RegExp(`${name}:\\s+(\\d+) kB`).exec(status)
      return m ? Number(m[1]) * 1024 : NaN
    }
    const sample = () => {
      try {
        const status = fs.readFileSync(`/proc/${child.pid}/status`, 'utf8')
        const rss = kb(status, 'VmRSS')
        if (!Number.isNaN(rss)) samples.push([performance.now() - started, rss, kb(status, 'RssAnon'), kb(status, 'RssFile')])
        hwm = Math.max(hwm, kb(status, 'VmHWM') || 0)
      } catch {}
    }
    const timer = setInterval(sample, SAMPLE_MS)
    sample()
    child.on('error', reject)
    child.on('exit', (code, signal) => {
      const wallMs = performance.now() - started
      clearInterval(timer)
      let atExit = {}
      try {
        atExit = JSON.parse(fs.readFileSync(out, 'utf8'))
        fs.rmSync(out, { force: true })
      } catch {}
      if (code !== 0) return reject(new Error(`${args.slice(0, 2).join(' ')} exited ${signal || code}: ${stderr.trim().split('\n').slice(-3).join(' / ')}`))
      const peak = (k) => samples.reduce((a, s) => Math.max(a, s[k] || 0), 0)
      resolve({
        wallMs,
        maxRss: atExit.maxRssBytes ?? NaN,
        atExit: { rss: atExit.rss, rssAnon: atExit.rssAnon, rssFile: atExit.rssFile },
        sampledPeak: peak(1),
        sampledPeakAnon: peak(2),
        sampledPeakFile: peak(3),
        hwm,
        samples: samples.length,
        stderr: stderr.trim(),
      })
    })
  })
}

/**
 * Lines and bytes of the export's output, and whether its first line is the database's
 * first pattern (by id): its content, counters and every embedding number (as float32).
 */
async function checkOutput(file, dim, dbPath) {
  const bytes = fs.statSync(file).size
  let lines = 0
  let first = ''
  let last = 0
  for await (const chunk of fs.createReadStream(file, { highWaterMark: 1 << 22 })) {
    if (first.length < 1 << 20 && !first.includes('\n')) first += chunk.toString('utf8', 0, Math.min(chunk.length, 1 << 20))
    for (let i = chunk.indexOf(10); i >= 0; i = chunk.indexOf(10, i + 1)) lines++
    last = chunk[chunk.length - 1]
  }
  const line = JSON.parse(first.slice(0, first.indexOf('\n')))
  const db = new Database(dbPath, { readonly: true, fileMustExist: true })
  const want = rowToPattern(db.prepare(`${SELECT_ALL} LIMIT 1`).get())
  db.close()
  const ok =
    line.kind === 'pattern' &&
    line.id === want.id &&
    line.content === want.content &&
    line.usageCount === want.usageCount &&
    Array.isArray(line.embedding) &&
    line.embedding.length === dim &&
    line.embedding.every((x, i) => Math.fround(x) === want.embedding[i]) &&
    last === 10
  return { bytes, lines, firstLineOk: ok }
}

async function measureExport(set, results, { log }) {
  const ds = await ensureSearchDataset(set, log)
  // one open first, so a schema migration of an older database is not part of the export
  const { PatternCache } = require('../..')
  await (await PatternCache.open({ dbPath: ds.dbPath, backgroundRebuild: false, enabled: false })).shutdown()
  const tmp = path.join(DATA_ROOT, 'usage-export')
  fs.rmSync(tmp, { recursive: true, force: true })
  fs.mkdirSync(tmp, { recursive: true })
  const outFile = path.join(tmp, 'export.jsonl')
  try {
    const base = []
    for (let i = 0; i < 3; i++) base.push(await runMeasured([path.join(__dirname, '..', 'child', 'export-baseline.js'), ds.dbPath], { tmp }))
    const baselines = base.map((b) => b.maxRss)
    const baseline = percentile(baselines, 0.5)
    const baselineAnon = percentile(base.map((b) => b.atExit.rssAnon), 0.5)
    const baselineFile = percentile(base.map((b) => b.atExit.rssFile), 0.5)
    log(`  export baseline (require the package + open the store): peak RSS ${(baseline / 2 ** 20).toFixed(1)} MiB (median of ${baselines.length}; at exit anonymous ${(baselineAnon / 2 ** 20).toFixed(1)} MiB, file-backed ${(baselineFile / 2 ** 20).toFixed(1)} MiB)`)
    const runs = []
    const bin = path.join(__dirname, '..', '..', 'bin', 'pattern-cache.js')
    for (let r = 0; r < (results.quick ? 1 : EXPORT_RUNS); r++) {
      fs.rmSync(outFile, { force: true })
      const m = await runMeasured([bin, 'export', '--db', ds.dbPath, '--out', outFile], { tmp })
      const o = await checkOutput(outFile, set.dim, ds.dbPath)
      const run = { ...m, ...o, growth: m.maxRss - baseline }
      delete run.stderr
      runs.push(run)
      log(
        `    export run ${r + 1}: ${fmtMs(m.wallMs)}, ${(o.bytes / 2 ** 20).toFixed(0)} MiB, ${o.lines.toLocaleString('en-US')} lines; ` +
          `peak RSS ${(m.maxRss / 2 ** 20).toFixed(1)} MiB (sampled ${(m.sampledPeak / 2 ** 20).toFixed(1)}: anonymous ${(m.sampledPeakAnon / 2 ** 20).toFixed(1)}, file-backed ${(m.sampledPeakFile / 2 ** 20).toFixed(1)}), growth ${(run.growth / 2 ** 20).toFixed(1)} MiB`,
      )
      fs.rmSync(outFile, { force: true })
    }
    results.export = {
      set: set.name,
      count: set.count,
      dim: set.dim,
      baseline,
      baselines,
      baselineAnon,
      baselineFile,
      runs,
      growth: Math.max(...runs.map((r) => r.growth)),
      wallMs: percentile(runs.map((r) => r.wallMs), 0.5),
      bytes: runs[runs.length - 1].bytes,
      lines: runs[runs.length - 1].lines,
      outputOk: runs.every((r) => r.firstLineOk && r.lines === set.count), // the search data sets hold no agent configs
    }
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true })
  }
}

/** Runs the usage group: the burst for both contenders, then the export. */
async function measureUsage(ctx) {
  const { log, attempt, quick } = ctx
  const results = { burst: [], export: null, dataset: null, quick, checkInterval: CHECK_INTERVAL, plan: null, contenders: CONTENDERS, sampleMs: SAMPLE_MS }
  ctx.results.usage = results
  await attempt('usage burst', async () => {
    log(`\n== usage burst: ${BURST.uses.toLocaleString('en-US')} uses of ${BURST.distinct.toLocaleString('en-US')} patterns from ${BURST.processes} processes, reads throughout (${BURST.name})`)
    const ds = await ensureUsageDataset(log)
    const plan = usePlan()
    results.dataset = { name: ds.name, count: ds.count, dim: ds.dim, seedMs: ds.seedMs }
    results.plan = { uses: plan.uses.length, distinct: plan.ids.length, processes: ds.processes, successes: plan.uses.filter((u) => u[1]).length }
    for (const name of Object.keys(CONTENDERS)) {
      await attempt(`usage burst of ${name}`, async () => results.burst.push(await burst(name, ds, plan, log)))
    }
  })
  const set = quick ? SETS.find((s) => s.count <= 10000) : SETS[0]
  await attempt(`pattern-cache export at ${set.name}`, async () => {
    log(`\n== pattern-cache export, ${set.name} (peak RSS over a process that only opens the store)`)
    await measureExport(set, results, ctx)
  })
  return results
}

module.exports = { measureUsage, BURST, CONTENDERS, EXPORT_RUNS }

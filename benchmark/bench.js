'use strict'
// The benchmark suite: `npm run bench` from the repository root.
// BENCH_QUICK=1: only the 10,000-pattern sizes and fewer iterations (for development);
// its report goes to benchmark/data/RESULTS.quick.md instead of benchmark/RESULTS.md.
// --only <group>[,<group>...] (or BENCH_ONLY=...): only those groups of measures, of
// open, reads, memory, rebuild, cold, search, usage, remote; the report goes to
// benchmark/data/RESULTS.only-<groups>.md, and a full (not quick) search, usage or remote
// group also replaces its own section of benchmark/RESULTS.md.
//
// Measures (see lib/targets.js for the targets and README.md for the method):
//   open to ready: a first open in a fresh process, then a second open in that process
//   (child/open.js); memory growth after open (fresh child processes);
//   loadPattern hit, loadPatternsByDomain (100 / 1,000), loadPatternsByFramework (a fifth
//   of the patterns), tier 2 loadPattern (tinybench);
//   rebuildCache() and the event-loop stall during it; a fresh process's require + open + query;
//   similarity search (lib/search-group.js): searchSimilar against brute-force and ANN libraries;
//   use counters (lib/usage-group.js): a burst of recordUsage from 8 processes with reads
//   throughout, against better-sqlite3's UPDATE; the RSS of `pattern-cache export` at 100,000 x 768;
//   a shared bank (lib/remote-group.js, where PostgreSQL is installed): the initial sync of
//   100,000 x 768 against psql's COPY, commit-to-visible latency between two replicas (NOTIFY,
//   polling), storePattern / recordUsage against a plain INSERT / UPDATE.
// After each group: this process's RSS and V8 heap (after a full GC). Besides RESULTS.md,
// every run draws its targets in an SVG (lib/chart.js): benchmark/results.svg.

const assert = require('node:assert/strict')
const fs = require('node:fs')
const path = require('node:path')
const { spawnSync } = require('node:child_process')
const { performance } = require('node:perf_hooks')
const Database = require('better-sqlite3')
const { ensureDataset } = require('./lib/dataset')
const { collect, percentile, summary, micro, stallTracker, sleep } = require('./lib/measure')
const { machine, versions } = require('./lib/machine')
const { evaluate } = require('./lib/targets')
const { consoleReport, writeMarkdown, fmtTime, fmtBytes, searchSection, spliceSearchSection, usageSection, spliceUsageSection, remoteSection, spliceRemoteSection } = require('./lib/report')
const chart = require('./lib/chart')
const { measureSearch } = require('./lib/search-group')
const { measureUsage } = require('./lib/usage-group')
const { measureRemote } = require('./lib/remote-group')
const { SELECT_ONE, rowToPattern } = require('./lib/rows')
const load = require('./lib/load')

const QUICK = process.env.BENCH_QUICK === '1'
const SIZES = QUICK ? [10000] : [10000, 100000]
const COLD_SIZE = 1000
const CONFIG = QUICK
  ? { openRuns: 10, openWarmup: 2, microTime: 300, microWarmup: 100, memoryRuns: 2, rebuildRuns: 3, coldRuns: 10, coldWarmup: 2,
      searchTime: 300, searchWarmup: 50, searchIterations: 20, firstRuns: 3 }
  : { openRuns: 20, openWarmup: 2, microTime: 2000, microWarmup: 300, memoryRuns: 3, rebuildRuns: 5, coldRuns: 30, coldWarmup: 3,
      searchTime: 2000, searchWarmup: 200, searchIterations: 50, firstRuns: 5 }

const GROUPS = ['open', 'reads', 'memory', 'rebuild', 'cold', 'search', 'usage', 'remote']
/** Groups with a section of their own in RESULTS.md (spliced in place by --only runs). */
const SECTIONS = ['search', 'usage', 'remote']
/** The groups asked for with --only a,b (or --only=a,b, or BENCH_ONLY=a,b); null: all. */
function onlyGroups() {
  const argv = process.argv.slice(2)
  let value = process.env.BENCH_ONLY || null
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--only') value = argv[++i]
    else if (argv[i].startsWith('--only=')) value = argv[i].slice('--only='.length)
    else {
      console.error(`bench.js: unknown argument ${argv[i]} (usage: node benchmark/bench.js [--only ${GROUPS.join(',')}])`)
      process.exit(2)
    }
  }
  if (value === null) return null
  const groups = value.split(',').map((g) => g.trim()).filter(Boolean)
  const unknown = groups.filter((g) => !GROUPS.includes(g))
  if (!groups.length || unknown.length) {
    console.error(`bench.js: --only takes some of ${GROUPS.join(', ')} (got ${value})`)
    process.exit(2)
  }
  return GROUPS.filter((g) => groups.includes(g))
}
const ONLY = onlyGroups()
const runs = (g) => !ONLY || ONLY.includes(g)

const CONTENDERS = Object.fromEntries(
  ['pattern-cache', 'pattern-cache-tier2', 'reference', 'js-map', 'msgpackr', 'better-sqlite3', 'lmdb'].map((name) => [
    name,
    require(`./contenders/${name}`),
  ]),
)
// The JS Map floor as it was before (metadata not cloned): its hit, measured beside the floor, without a target.
const SHARED_FLOOR = 'js-map-shared'
const TITLES = {
  ...Object.fromEntries(Object.entries(CONTENDERS).map(([n, c]) => [n, c.title])),
  [SHARED_FLOOR]: 'JS Map, metadata shared (the floor before)',
  'node -e 0': 'node -e 0 (bare)',
}
const DESCRIPTIONS = {
  ...Object.fromEntries(Object.entries(CONTENDERS).map(([n, c]) => [n, c.description])),
  [SHARED_FLOOR]: 'the JS Map floor without `structuredClone(metadata)`: `{ ...p, embedding: new Float32Array(p.embedding) }`, every answer sharing the stored metadata object (the floor of runs before the metadata was cloned); its hit only, no target.',
}

const OPEN = ['pattern-cache', 'reference', 'msgpackr', 'lmdb', 'better-sqlite3']
/**
 * No second open for these at these sizes: they read and decode the whole file again (about 1 s
 * each at 100,000, as their 10,000 second opens show), which would add a minute to the group.
 */
const FIRST_ONLY = { 100000: ['reference', 'msgpackr'] }
const READ = ['pattern-cache', 'js-map', 'reference', 'msgpackr', 'lmdb', 'better-sqlite3', 'pattern-cache-tier2']
/** Who lists a whole framework (a fifth of the patterns): the reference takes ~0.7 s per 20,000-pattern list, so not it. */
const LIST_BIG = ['pattern-cache', 'js-map', 'msgpackr', 'better-sqlite3', 'pattern-cache-tier2']
const MEMORY = ['pattern-cache', 'reference', 'msgpackr', 'js-map', 'lmdb', 'better-sqlite3']
const REBUILD = ['pattern-cache', 'reference']
const COLD = ['pattern-cache', 'reference']

const MEASURE = {
  open: 'open to ready (first open, fresh process)',
  second: 'second open (same process, after shutdown)',
  firstRead: 'first loadPattern after the first open',
  hit: 'loadPattern (hit)',
  domain100: 'loadPatternsByDomain (100)',
  domain1000: 'loadPatternsByDomain (1,000)',
  framework: 'loadPatternsByFramework (a fifth)',
  rebuild: 'rebuildCache()',
  cold: 'fresh process: require + open + domain query',
}

const results = {
  quick: QUICK,
  sizes: SIZES,
  timings: [],
  memory: [],
  rebuild: [],
  idleStall: { stallMs: NaN },
  load: [],
  processMemory: [],
  /** patterns: how many loadPatternsByFramework returns at that size. */
  listCounts: {},
  notes: [],
  descriptions: DESCRIPTIONS,
}

const log = (...args) => console.log(...args)
const record = (measure, size, contender, stats) => {
  results.timings.push({ measure, size, contender, ...stats })
  const what = measure === MEASURE.open || measure === MEASURE.rebuild || measure === MEASURE.cold ? '' : ` ${measure}`
  log(`    ${contender}${what}`.padEnd(60) + `median ${fmtTime(stats.median).padStart(10)}   p99 ${fmtTime(stats.p99).padStart(10)}   (${stats.runs} runs)`)
}

/** Runs one group of measures; a failure becomes a note in the report instead of ending the run. */
async function attempt(what, fn) {
  try {
    await fn()
  } catch (e) {
    const message = `could not measure ${what}: ${e && e.message ? e.message : e}`
    results.notes.push(message)
    console.error(`  ! ${message}`)
    if (process.env.BENCH_DEBUG) console.error(e)
  }
}

/** Waits (at most a minute) until other processes use less than a fifth of a core. */
async function waitForQuiet() {
  const started = Date.now()
  let said = false
  for (;;) {
    const before = load.snapshot()
    await sleep(1000)
    const used = load.between(before, load.snapshot())
    if (!used || used.otherCores < 0.2) return
    if (Date.now() - started > 60000) return log('  ! still busy after a minute: measuring anyway')
    if (!said) log(`  (other processes use ${used.otherCores.toFixed(2)} cores: waiting up to a minute for them)`)
    said = true
  }
}

/**
 * This process's memory now, after a full GC (gc() is always there: lib/measure.js exposes it):
 * process.memoryUsage() and, on Linux, the resident set split into anonymous and file-backed
 * pages (/proc/self/status: RssAnon, RssFile; mapped cache files count as file-backed).
 */
function processMemory(label) {
  collect()
  const m = process.memoryUsage()
  const row = { group: label, rss: m.rss, heapUsed: m.heapUsed, heapTotal: m.heapTotal, external: m.external, arrayBuffers: m.arrayBuffers }
  try {
    const status = fs.readFileSync('/proc/self/status', 'utf8')
    for (const [key, name] of [['rssAnon', 'RssAnon'], ['rssFile', 'RssFile']]) {
      const found = new RegExp(`${name}:\\s+(\\d+) kB`).exec(status)
      if (found) row[key] = Number(found[1]) * 1024
    }
  } catch {}
  results.processMemory.push(row)
  log(`  (this process after ${label}: RSS ${fmtBytes(row.rss)}${row.rssFile !== undefined ? ` (${fmtBytes(row.rssAnon)} anonymous, ${fmtBytes(row.rssFile)} file-backed)` : ''}, V8 heap used ${fmtBytes(row.heapUsed)})`)
}

/**
 * Runs one measure group, recording how much CPU other processes took meanwhile, and this process's memory after it.
 * elsewhere(): CPU seconds the group itself caused in processes that are not this process's children
 * (the remote group's PostgreSQL server, daemonized by pg_ctl), not counted as other processes' load.
 */
async function group(name, fn, { elsewhere } = {}) {
  await waitForQuiet()
  const before = load.snapshot()
  await fn()
  const used = load.between(before, load.snapshot())
  const own = elsewhere ? elsewhere() : 0
  if (used && own > 0) {
    used.ownElsewhereSeconds = own
    used.otherCpuSeconds = Math.max(0, used.otherCpuSeconds - own)
    used.otherCores = used.seconds > 0 ? used.otherCpuSeconds / used.seconds : 0
  }
  if (used) {
    results.load.push({ group: name, ...used })
    if (used.otherCores > 0.1) log(`  ! other processes used ${used.otherCores.toFixed(2)} cores on average during ${name}`)
  }
  processMemory(name)
}

// What SQLite says, to compare every contender's answers with before measuring it.
function truthOf(ds) {
  const db = new Database(ds.dbPath, { readonly: true, fileMustExist: true })
  const one = db.prepare(SELECT_ONE)
  const patterns = ds.hotIds.slice(0, 20).map((id) => rowToPattern(one.get(id)))
  const domainIds = {}
  for (const domain of [ds.smallDomain, ds.largeDomain].filter(Boolean)) {
    domainIds[domain] = db.prepare('SELECT id FROM patterns WHERE domain = ? ORDER BY id').pluck().all(domain)
  }
  const frameworkIds = { [ds.listFramework]: db.prepare('SELECT id FROM patterns WHERE framework = ? ORDER BY id').pluck().all(ds.listFramework) }
  db.close()
  return { patterns, domainIds, frameworkIds }
}

function samePattern(name, got, want) {
  assert.ok(got, `${name}: ${want.id} not found`)
  for (const key of ['id', 'type', 'domain', 'framework', 'content', 'verdict', 'createdAt', 'usageCount', 'successCount']) {
    assert.equal(got[key], want[key], `${name}: ${want.id}.${key}`)
  }
  assert.deepEqual(got.metadata, want.metadata, `${name}: ${want.id}.metadata`)
  assert.equal(got.embedding.length, want.embedding.length, `${name}: ${want.id}.embedding length`)
  for (let i = 0; i < want.embedding.length; i++) {
    if (Math.fround(got.embedding[i]) !== want.embedding[i]) assert.fail(`${name}: ${want.id}.embedding[${i}]`)
  }
}

async function checkAnswers(name, store, truth) {
  const got = []
  for (const want of truth.patterns) got.push(await store.get(want.id))
  // Compared after all reads, so an answer that shares memory with a later read would show.
  truth.patterns.forEach((want, i) => samePattern(name, got[i], want))
  assert.equal(await store.get('no-such-pattern'), null, `${name}: a missing id`)
  if (store.byDomain) {
    for (const [domain, ids] of Object.entries(truth.domainIds)) {
      const patterns = await store.byDomain(domain)
      assert.deepEqual(patterns.map((p) => p.id), ids, `${name}: domain ${domain}`)
    }
  }
  if (store.byFramework) {
    for (const [framework, ids] of Object.entries(truth.frameworkIds)) {
      const patterns = await store.byFramework(framework)
      assert.deepEqual(patterns.map((p) => p.id), ids, `${name}: framework ${framework}`)
      // every pattern of a list checked, not just its ids (one list only: the largest)
      const want = new Map(truth.patterns.map((p) => [p.id, p]))
      for (const p of patterns) if (want.has(p.id)) samePattern(`${name} (framework list)`, p, want.get(p.id))
    }
  }
}

/** pattern-cache must be serving from the tier we mean to measure, without rebuilding. */
function checkTier(name, store) {
  if (!store.cache) return
  const m = store.cache.getMetrics()
  const want = name === 'pattern-cache-tier2' ? 'sqlite' : 'cache'
  if (m.tier !== want) throw new Error(`${name} serves from ${m.tier}, not ${want} (${m.cacheUnavailableReason || ''})`)
  if (m.cacheRebuildCount !== 0) throw new Error(`${name} rebuilt its cache ${m.cacheRebuildCount} times while measured`)
}

async function prepare(ds, names) {
  for (const name of names) {
    const started = performance.now()
    await CONTENDERS[name].prepare(ds)
    const ms = performance.now() - started
    if (ms > 1000) log(`  prepared ${name} in ${(ms / 1000).toFixed(1)} s`)
  }
}

/**
 * Open to ready, first and second: each run is a fresh process (child/open.js) that loads the
 * contender's modules, times its first open (to ready: pattern-cache's first read is then
 * checked to come from tier 1), closes it and times a second open of the same unchanged files.
 * Every contender the same way, in rounds (each round starting with another contender), after
 * untimed rounds that warm the page cache.
 */
async function measureOpen(ds) {
  log(`\n== ${MEASURE.open}, then ${MEASURE.second}, ${ds.count.toLocaleString('en-US')} patterns (warm page cache, a fresh process per run)`)
  const child = path.join(__dirname, 'child', 'open.js')
  const samples = Object.fromEntries(OPEN.map((n) => [n, { first: [], second: [], firstRead: [] }]))
  const failed = new Set()
  const firstOnly = FIRST_ONLY[ds.count] || []
  const spawnOpen = (name) => {
    if (failed.has(name)) return null
    const args = ['--expose-gc', child, name, String(ds.count), ...(firstOnly.includes(name) ? ['first-only'] : [])]
    const r = spawnSync(process.execPath, args, { encoding: 'utf8' })
    try {
      if (r.status !== 0) throw new Error(`child exited ${r.status}: ${(r.stderr || '').trim().split('\n').slice(0, 2).join(' ')}`)
      return JSON.parse(r.stdout.trim().split('\n').pop())
    } catch (e) {
      failed.add(name)
      const message = `could not measure ${MEASURE.open} of ${name} at ${ds.count}: ${e.message}`
      results.notes.push(message)
      console.error(`  ! ${message}`)
      return null
    }
  }
  for (let i = 0; i < CONFIG.openWarmup; i++) OPEN.forEach(spawnOpen)
  for (let i = 0; i < CONFIG.openRuns; i++) {
    for (let k = 0; k < OPEN.length; k++) {
      const name = OPEN[(i + k) % OPEN.length]
      const got = spawnOpen(name)
      if (!got) continue
      for (const key of ['first', 'second', 'firstRead']) if (got[key] !== undefined) samples[name][key].push(got[key])
    }
  }
  for (const name of OPEN) if (!failed.has(name)) record(MEASURE.open, ds.count, name, summary(samples[name].first))
  for (const name of OPEN) if (!failed.has(name) && !firstOnly.includes(name)) record(MEASURE.second, ds.count, name, summary(samples[name].second))
  if (!failed.has('pattern-cache')) record(MEASURE.firstRead, ds.count, 'pattern-cache', summary(samples['pattern-cache'].firstRead))
}

async function measureReads(ds) {
  log(`\n== reads, ${ds.count.toLocaleString('en-US')} patterns (tinybench, every call awaited)`)
  const truth = truthOf(ds)
  const ids = ds.hotIds
  const frameworkCount = truth.frameworkIds[ds.listFramework].length
  results.listCounts[ds.count] = frameworkCount
  for (const name of READ) {
    await attempt(`reads of ${name} at ${ds.count}`, async () => {
      let store = await CONTENDERS[name].open(ds)
      try {
        await checkAnswers(name, store, truth)
        for (const id of ids) await store.get(id) // every hot id read once before timing
        let i = 0
        const tasks = {
          [MEASURE.hit]: async () => {
            if ((await store.get(ids[i++ % ids.length])) === null) throw new Error('miss')
          },
        }
        if (store.byDomain) {
          tasks[MEASURE.domain100] = async () => {
            if ((await store.byDomain(ds.smallDomain)).length !== 100) throw new Error('wrong count')
          }
          if (ds.largeDomain) {
            tasks[MEASURE.domain1000] = async () => {
              if ((await store.byDomain(ds.largeDomain)).length !== 1000) throw new Error('wrong count')
            }
          }
        }
        if (store.getShared) {
          tasks[SHARED_FLOOR] = async () => {
            if ((await store.getShared(ids[i++ % ids.length])) === null) throw new Error('miss')
          }
        }
        const out = await micro(tasks, { time: CONFIG.microTime, warmupTime: CONFIG.microWarmup })
        // A list of a fifth of the patterns takes 10-200 ms: at least 16 samples (after 4) instead of 64 (after 32).
        if (store.byFramework && LIST_BIG.includes(name)) {
          Object.assign(out, await micro({
            [MEASURE.framework]: async () => {
              if ((await store.byFramework(ds.listFramework)).length !== frameworkCount) throw new Error('wrong count')
            },
          }, { time: CONFIG.microTime, warmupTime: CONFIG.microWarmup, iterations: 16, warmupIterations: 4 }))
        }
        checkTier(name, store)
        for (const [measure, stats] of Object.entries(out)) {
          if (measure === SHARED_FLOOR) record(MEASURE.hit, ds.count, SHARED_FLOOR, stats)
          else record(measure, ds.count, name, stats)
        }
      } finally {
        await store.close()
        store = null
        collect()
      }
    })
  }
}

async function measureMemory(ds) {
  log(`\n== memory growth after open, ${ds.count.toLocaleString('en-US')} patterns (a fresh process per run)`)
  const child = path.join(__dirname, 'child', 'memory.js')
  for (const name of MEMORY) {
    await attempt(`memory of ${name} at ${ds.count}`, async () => {
      const runs = []
      for (let i = 0; i < CONFIG.memoryRuns; i++) {
        const r = spawnSync(process.execPath, ['--expose-gc', child, name, String(ds.count)], { encoding: 'utf8' })
        if (r.status !== 0) throw new Error(`child exited ${r.status}: ${r.stderr.trim().split('\n').pop()}`)
        runs.push(JSON.parse(r.stdout.trim().split('\n').pop()))
      }
      const median = (key) => percentile(runs.map((r) => r[key]), 0.5)
      const m = { size: ds.count, contender: name, runs: runs.length }
      for (const key of ['rss', 'heapUsed', 'external', 'arrayBuffers']) m[key] = median(key)
      results.memory.push(m)
      log(`    ${name.padEnd(20)} RSS +${(m.rss / 2 ** 20).toFixed(1)} MiB   JS heap +${(m.heapUsed / 2 ** 20).toFixed(1)} MiB`)
    })
  }
}

async function measureRebuild(ds) {
  log(`\n== rebuild, ${ds.count.toLocaleString('en-US')} patterns`)
  let idle = stallTracker()
  await sleep(1000)
  results.idleStall = idle.stop()
  log(`    idle event loop: longest stall ${results.idleStall.stallMs.toFixed(2)} ms`)
  for (const name of REBUILD) {
    await attempt(`rebuild of ${name} at ${ds.count}`, async () => {
      const rebuilder = await CONTENDERS[name].rebuilder(ds)
      try {
        await rebuilder.rebuild() // untimed
        const times = []
        const stalls = []
        const histograms = []
        for (let i = 0; i < CONFIG.rebuildRuns; i++) {
          collect()
          await sleep(20)
          const tracker = stallTracker()
          const started = performance.now()
          await rebuilder.rebuild()
          times.push(performance.now() - started)
          const s = tracker.stop()
          stalls.push(s.stallMs)
          if (s.histogramMaxMs !== null) histograms.push(s.histogramMaxMs)
        }
        const stats = summary(times)
        record(MEASURE.rebuild, ds.count, name, stats)
        const medianRun = times.indexOf([...times].sort((a, b) => a - b)[Math.floor(times.length / 2)])
        results.rebuild.push({
          size: ds.count,
          contender: name,
          ...stats,
          stallMax: Math.max(...stalls),
          stallMedian: stalls[medianRun],
          histogramMax: histograms.length ? Math.max(...histograms) : undefined,
        })
        log(`    ${name}: longest event-loop stall ${Math.max(...stalls).toFixed(2)} ms (of ${stalls.map((s) => s.toFixed(1)).join(', ')})`)
      } finally {
        await rebuilder.close()
        collect()
      }
    })
  }
}

async function measureColdStart(ds) {
  log(`\n== ${MEASURE.cold}, ${ds.count.toLocaleString('en-US')}-pattern cache (spawn to exit)`)
  const child = path.join(__dirname, 'child', 'cold-start.js')
  const variants = { 'node -e 0': ['-e', '0'] }
  for (const name of COLD) variants[name] = [child, name, ds.dir, ds.smallDomain, '100']
  const spawnTimed = (name) => {
    const started = performance.now()
    const r = spawnSync(process.execPath, variants[name], { stdio: ['ignore', 'ignore', 'pipe'], encoding: 'utf8' })
    const ms = performance.now() - started
    if (r.status !== 0) throw new Error(`${name} exited ${r.status}: ${r.stderr.trim()}`)
    return ms
  }
  await attempt(MEASURE.cold, async () => {
    const names = Object.keys(variants)
    const samples = Object.fromEntries(names.map((n) => [n, []]))
    for (let i = 0; i < CONFIG.coldWarmup; i++) names.forEach(spawnTimed)
    for (let i = 0; i < CONFIG.coldRuns; i++) {
      // alternate, starting with a different one each round
      for (let k = 0; k < names.length; k++) {
        const name = names[(i + k) % names.length]
        samples[name].push(spawnTimed(name))
      }
    }
    for (const name of names) record(MEASURE.cold, ds.count, name, summary(samples[name]))
  })
}

async function main() {
  const started = performance.now()
  const versionsAtStart = versions()
  log(`pattern-cache benchmark${QUICK ? ' (BENCH_QUICK=1)' : ''}${ONLY ? ` (only ${ONLY.join(', ')})` : ''}: sizes ${SIZES.map((n) => n.toLocaleString('en-US')).join(', ')}`)
  processMemory('loading the modules (start)')
  const classic = GROUPS.filter((g) => !SECTIONS.includes(g)).some(runs)
  if (classic) {
    const datasets = []
    for (const size of SIZES) datasets.push(await ensureDataset(size, log))
    const largest = datasets[datasets.length - 1]

    for (const ds of datasets) {
      const n = ds.count.toLocaleString('en-US')
      if (!runs('open') && !runs('reads') && ds !== largest) continue
      log(`\npreparing contenders' files for ${n} patterns`)
      await prepare(ds, Object.keys(CONTENDERS))
      if (runs('open')) await group(`open (first and second), ${n}`, () => measureOpen(ds))
      if (runs('reads')) await group(`reads, ${n}`, () => measureReads(ds))
    }
    const n = largest.count.toLocaleString('en-US')
    if (runs('memory')) await group(`memory, ${n}`, () => measureMemory(largest))
    if (runs('rebuild')) await group(`rebuild, ${n}`, () => measureRebuild(largest))
    if (runs('cold')) {
      const coldData = await ensureDataset(COLD_SIZE, log)
      await prepare(coldData, COLD)
      await group(MEASURE.cold, () => measureColdStart(coldData))
    }
  }
  if (runs('search')) {
    await group('similarity search', () =>
      measureSearch({ log, attempt, config: CONFIG, quick: QUICK, results, checkTier, fmtTime }),
    )
  }
  if (runs('usage')) {
    await group('use counters and export', () => measureUsage({ log, attempt, quick: QUICK, results }))
  }
  if (runs('remote')) {
    await group('shared bank (PostgreSQL)', () => measureRemote({ log, attempt, quick: QUICK, results }), {
      elsewhere: () => (results.remote && results.remote.serverCpuSeconds) || 0,
    })
  }

  results.finishedAt = new Date().toISOString()
  results.durationMs = performance.now() - started
  const busy = results.load.filter((l) => l.otherCores > 0.1)
  if (busy.length) {
    results.notes.push(
      `other processes (or the kernel) competed for the ${require('node:os').availableParallelism()} cores during ${busy.map((l) => `${l.group} (${l.otherCores.toFixed(2)} cores on average)`).join(', ')}: ` +
        'times measured then are pessimistic, and event-loop stalls may be the scheduler\'s rather than the contender\'s',
    )
  }
  if (results.idleStall.stallMs > 5) results.notes.push(`the idle event loop itself stalled ${results.idleStall.stallMs.toFixed(1)} ms once (timer jitter of this machine)`)
  const targets = evaluate(results, { groups: ONLY })
  const context = { machine: machine(), versions: versions(), config: CONFIG }
  const built = 'pattern-cache addon built'
  if (versionsAtStart[built] !== context.versions[built]) {
    results.notes.push(
      `the addon was rebuilt during the run (${versionsAtStart[built]}, commit ${versionsAtStart['pattern-cache commit']} -> ${context.versions[built]}, commit ${context.versions['pattern-cache commit']}): ` +
        'this process kept the addon it loaded at the start; child processes started after the change (memory, fresh process, the usage burst and export) loaded the new one',
    )
  }
  log(consoleReport(results, targets, TITLES))
  if (ONLY) return writeOnly(targets, context, versionsAtStart)
  const out = QUICK ? path.join(__dirname, 'data', 'RESULTS.quick.md') : path.join(__dirname, 'RESULTS.md')
  writeMarkdown(out, results, targets, TITLES, context)
  fs.writeFileSync(path.join(__dirname, 'data', QUICK ? 'results.quick.json' : 'results.json'), JSON.stringify({ ...results, targets, ...context }, null, 2))
  log(`wrote ${path.relative(process.cwd(), out)} (${(results.durationMs / 60000).toFixed(1)} minutes)`)
  const picture = QUICK ? path.join(__dirname, 'data', 'results.quick.svg') : path.join(__dirname, 'results.svg')
  chart.write(picture, { rows: targets, runs: [runOf(GROUPS, context)] })
  log(`wrote ${path.relative(process.cwd(), picture)}`)
}

/** What the picture says about when (and by what) the groups of its bars were measured. */
function runOf(groups, context) {
  const command = ONLY ? `${QUICK ? 'BENCH_QUICK=1 ' : ''}node benchmark/bench.js --only ${ONLY.join(',')}` : `${QUICK ? 'BENCH_QUICK=1 ' : ''}npm run bench`
  return { groups, at: results.finishedAt, command, commit: context.versions['pattern-cache commit'], machine: `${context.machine.cpu}, ${context.machine.cores} cores` }
}

/**
 * The report of a run of some groups only: benchmark/data/RESULTS.only-<groups>.md (+ .json);
 * a full (not quick) search, usage or remote group also replaces its own section of
 * benchmark/RESULTS.md, leaving the rest of that file (the last full run's) as it was.
 */
function writeOnly(targets, context, measured) {
  const tag = `only-${ONLY.join('-')}${QUICK ? '.quick' : ''}`
  const command = `${QUICK ? 'BENCH_QUICK=1 ' : ''}node benchmark/bench.js --only ${ONLY.join(',')}`
  const out = path.join(__dirname, 'data', `RESULTS.${tag}.md`)
  fs.mkdirSync(path.dirname(out), { recursive: true })
  const separate = { command, measured }
  const sections = {
    search: () => searchSection(results, context, { targets: targets.filter((t) => t.measure.startsWith('searchSimilar')), separate }),
    usage: () => usageSection(results, context, { targets: targets.filter((t) => t.measure.startsWith('usage burst') || t.measure.startsWith('pattern-cache export')), separate }),
    remote: () => remoteSection(results, context, { targets: targets.filter((t) => t.group === 'remote'), separate }),
  }
  if (ONLY.length === 1 && sections[ONLY[0]]) {
    fs.writeFileSync(out, `# pattern-cache benchmark results: ${command}\n\n${sections[ONLY[0]]()}`)
  } else {
    writeMarkdown(out, results, targets, TITLES, context)
  }
  fs.writeFileSync(path.join(__dirname, 'data', `results.${tag}.json`), JSON.stringify({ ...results, targets, ...context }, null, 2))
  log(`wrote ${path.relative(process.cwd(), out)} (${(results.durationMs / 60000).toFixed(1)} minutes)`)
  // The picture of this run's groups; and (not quick) benchmark/results.svg with their bars replaced.
  const mine = targets.filter((t) => ONLY.includes(t.group))
  const run = runOf(ONLY, context)
  const own = path.join(__dirname, 'data', `results.${tag}.svg`)
  chart.write(own, { rows: mine, runs: [run] })
  log(`wrote ${path.relative(process.cwd(), own)}`)
  // a remote group that did not run (no PostgreSQL here) keeps its last measured bars
  const replaced = ONLY.filter((g) => !(g === 'remote' && results.remote && results.remote.skipped))
  if (!QUICK && replaced.length) {
    const picture = path.join(__dirname, 'results.svg')
    const rows = mine.filter((t) => replaced.includes(t.group))
    chart.write(picture, chart.merge(chart.read(picture), { rows, runs: [runOf(replaced, context)] }, replaced))
    log(`replaced the bars of ${replaced.join(', ')} in ${path.relative(process.cwd(), picture)}`)
  }
  if (QUICK) return
  const main = path.join(__dirname, 'RESULTS.md')
  if (runs('search') && results.search && results.search.timings.length) {
    spliceSearchSection(main, sections.search())
    log(`replaced the similarity-search section of ${path.relative(process.cwd(), main)}`)
  }
  if (runs('usage') && results.usage && (results.usage.burst.length || results.usage.export)) {
    spliceUsageSection(main, sections.usage())
    log(`replaced the use counters and export section of ${path.relative(process.cwd(), main)}`)
  }
  // a group that did not run (no PostgreSQL here) leaves the last measured section as it was
  const remote = results.remote
  if (runs('remote') && remote && !remote.skipped && (remote.sync || remote.latency.length || remote.writes)) {
    spliceRemoteSection(main, sections.remote())
    log(`replaced the shared bank (PostgreSQL) section of ${path.relative(process.cwd(), main)}`)
  }
}

main().catch((e) => {
  console.error(e)
  process.exit(1)
})

// @ts-check
'use strict'
// Open / loadPattern / loadPatternsByDomain / rebuildCache / shutdown, N
// times in one process. Reports RSS growth from cycle 100 (or a third of
// the run when shorter) to the end, after global.gc(), and the counts of
// open file descriptors (/proc/self/fd) and threads (/proc/self/task)
// against a baseline taken after the first cycle (the shared background
// runtime and libuv's thread pool are created once, by then). Run node with
// --expose-gc (without it, the flag is turned on at run time).
// V8 grows its young generation by itself once allocation is steady (its
// committed heap goes from ~8 to ~20 MB at a point that depends on the
// allocation rate), a one-time step in RSS that has nothing to do with the
// package; the long run fixes the semi-space size so that the RSS figure
// measures the package (the figures also show V8's committed heap, and the
// RSS growth net of it).
//
//   node --expose-gc --min-semi-space-size=1 --max-semi-space-size=1 torture/leak-soak.js [--cycles 300] [--patterns 1000] [--dim 64]

const fs = require('node:fs')
const path = require('node:path')
const { PatternCache } = require('../index.js')
const lib = require('./lib.js')

const DEFAULTS = { cycles: 300, patterns: 1000, dim: 64, seed: 5 }

const count = (/** @type {string} */ dir) => {
  try {
    return fs.readdirSync(dir).length
  } catch {
    return -1 // not Linux
  }
}
const fds = () => count('/proc/self/fd')
/** Anonymous resident memory (MB): the heap of V8 and of the addon, not mapped files. */
const rssAnon = () => {
  try {
    const line = fs.readFileSync('/proc/self/status', 'utf8').split('\n').find((l) => l.startsWith('RssAnon:'))
    return line ? (parseInt(line.slice(8), 10) / 1024).toFixed(1) : '?'
  } catch {
    return '?'
  }
}
const threads = () => count('/proc/self/task')

/**
 * @param {Partial<typeof DEFAULTS>} [given]
 * @returns {Promise<import('./lib.js').Result>}
 */
async function run(given = {}) {
  const opts = { ...DEFAULTS, ...given }
  const started = Date.now()
  const hasGc = lib.gcFunction() !== null
  const dir = lib.tempDir('leak-soak')
  const dbPath = path.join(dir, 'patterns.db')
  await lib.seed(dbPath, opts.patterns, opts.dim)
  const random = lib.rng(opts.seed)
  const mark = Math.min(100, Math.max(1, Math.floor(opts.cycles / 3)))

  /** @type {{ fds: number, threads: number }} */
  let baseline = { fds: 0, threads: 0 }
  const beforeAll = { fds: fds(), threads: threads() }
  let rssAtMark = 0
  let heapAtMark = 0
  let wrong = 0
  let failedRebuilds = 0
  /** @type {number[]} */
  const rssSamples = []
  /** @type {string[]} */
  const heapSamples = []
  for (let cycle = 1; cycle <= opts.cycles; cycle++) {
    const cache = await PatternCache.open({ dbPath })
    const n = Math.floor(random() * opts.patterns)
    const p = await cache.loadPattern(lib.baseId(n))
    if (!p || p.id !== lib.baseId(n)) wrong++
    const domain = lib.DOMAINS[n % lib.DOMAINS.length]
    const ps = await cache.loadPatternsByDomain(domain)
    if (ps.length === 0 || ps.some((q) => q.domain !== domain)) wrong++
    const r = await cache.rebuildCache()
    if (!r.success) failedRebuilds++
    await cache.shutdown()
    if (cycle === 1) {
      await lib.collect()
      baseline = { fds: fds(), threads: threads() }
    }
    if (cycle === mark) {
      await lib.collect()
      rssAtMark = process.memoryUsage().rss
      heapAtMark = process.memoryUsage().heapTotal
    }
    if (cycle % Math.max(1, Math.floor(opts.cycles / 20)) === 0) {
      await lib.collect()
      const m = process.memoryUsage()
      rssSamples.push(m.rss)
      heapSamples.push(`${(m.heapUsed / 1048576).toFixed(1)}/${(m.heapTotal / 1048576).toFixed(1)}/${(m.external / 1048576).toFixed(1)}/${rssAnon()}`)
    }
  }
  await lib.collect()
  const rssEnd = process.memoryUsage().rss
  const heapEnd = process.memoryUsage().heapTotal
  const netGrowth = rssAtMark ? (rssEnd - heapEnd - (rssAtMark - heapAtMark)) / rssAtMark : 0
  const after = { fds: fds(), threads: threads() }
  const growth = rssAtMark ? (rssEnd - rssAtMark) / rssAtMark : 0
  const pct = `${(growth * 100).toFixed(2)}% (${(rssAtMark / 1048576).toFixed(1)} MB at cycle ${mark} -> ${(rssEnd / 1048576).toFixed(1)} MB at cycle ${opts.cycles})`

  return lib.result({
    name: 'leak-soak',
    title: 'open / load / rebuild / shutdown cycles in one process',
    config: { ...opts, exposeGc: hasGc },
    started,
    figures: [
      { name: 'cycles', value: opts.cycles },
      hasGc
        ? lib.target(`RSS growth from cycle ${mark} to the end (after gc)`, pct, '< 10%', growth < 0.1)
        : lib.target('RSS growth (needs node --expose-gc)', 'not measured', '< 10%', false),
      { name: "V8's committed heap at that cycle / at the end (MB; V8 sizes it itself, e.g. growing its young generation)", value: `${(heapAtMark / 1048576).toFixed(1)} / ${(heapEnd / 1048576).toFixed(1)}` },
      { name: "RSS growth less the growth of V8's committed heap", value: `${(netGrowth * 100).toFixed(2)}%` },
      lib.target('file descriptors: before the first open / after cycle 1 / at the end', `${beforeAll.fds} / ${baseline.fds} / ${after.fds}`, 'end <= after cycle 1', after.fds <= baseline.fds),
      lib.target('threads: before the first open / after cycle 1 / at the end', `${beforeAll.threads} / ${baseline.threads} / ${after.threads}`, 'end <= after cycle 1', after.threads <= baseline.threads),
      lib.target('wrong reads or failed rebuilds', wrong + failedRebuilds, '0', wrong + failedRebuilds === 0),
    ],
    notes: [
      `RSS (MB) every ${Math.max(1, Math.floor(opts.cycles / 20))} cycles: ${rssSamples.map((r) => (r / 1048576).toFixed(1)).join(' ')}`,
      `JS heap used / heap committed / external / RssAnon (MB) at the same points: ${heapSamples.join(' ')}`,
    ],
  })
}

if (require.main === module) lib.main(() => run(lib.options(DEFAULTS)))

module.exports = { run, DEFAULTS }

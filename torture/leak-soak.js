// @ts-check
'use strict'
// Open / loadPattern / loadPatternsByDomain / rebuildCache / shutdown, N
// times in one process. Reports RSS growth from cycle 100 (or a third of
// the run when shorter) to the end, after global.gc(), and the counts of
// open file descriptors (/proc/self/fd) and threads (/proc/self/task)
// against a baseline taken after the first cycle (the shared background
// runtime and libuv's thread pool are created once, by then). Run node with
// --expose-gc (without it the RSS figure is reported as not measured).
//
//   node --expose-gc torture/leak-soak.js [--cycles 300] [--patterns 1000] [--dim 64]

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
const threads = () => count('/proc/self/task')

/**
 * @param {Partial<typeof DEFAULTS>} [given]
 * @returns {Promise<import('./lib.js').Result>}
 */
async function run(given = {}) {
  const opts = { ...DEFAULTS, ...given }
  const started = Date.now()
  const hasGc = typeof (/** @type {any} */ (globalThis).gc) === 'function'
  const dir = lib.tempDir('leak-soak')
  const dbPath = path.join(dir, 'patterns.db')
  await lib.seed(dbPath, opts.patterns, opts.dim)
  const random = lib.rng(opts.seed)
  const mark = Math.min(100, Math.max(1, Math.floor(opts.cycles / 3)))

  /** @type {{ fds: number, threads: number }} */
  let baseline = { fds: 0, threads: 0 }
  const beforeAll = { fds: fds(), threads: threads() }
  let rssAtMark = 0
  let wrong = 0
  let failedRebuilds = 0
  /** @type {number[]} */
  const rssSamples = []
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
    }
    if (cycle % Math.max(1, Math.floor(opts.cycles / 20)) === 0) {
      await lib.collect()
      rssSamples.push(process.memoryUsage().rss)
    }
  }
  await lib.collect()
  const rssEnd = process.memoryUsage().rss
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
      lib.target('file descriptors: before the first open / after cycle 1 / at the end', `${beforeAll.fds} / ${baseline.fds} / ${after.fds}`, 'end <= after cycle 1', after.fds <= baseline.fds),
      lib.target('threads: before the first open / after cycle 1 / at the end', `${beforeAll.threads} / ${baseline.threads} / ${after.threads}`, 'end <= after cycle 1', after.threads <= baseline.threads),
      lib.target('wrong reads or failed rebuilds', wrong + failedRebuilds, '0', wrong + failedRebuilds === 0),
    ],
    notes: [`RSS (MB) every ${Math.max(1, Math.floor(opts.cycles / 20))} cycles: ${rssSamples.map((r) => (r / 1048576).toFixed(1)).join(' ')}`],
  })
}

if (require.main === module) lib.main(() => run(lib.options(DEFAULTS)))

module.exports = { run, DEFAULTS }

// @ts-check
'use strict'
// SIGKILL in the middle of rebuildCache(), over and over. A child opens a
// 3,000-pattern, 256-dimension database and rebuilds its cache in a loop; it
// prints `rebuild_started` on its first rebuild_started event, and the parent
// kills it after a random delay (so kills land at every step of a build:
// writing the temp file, fsync, backup, rename). After each kill the parent
// opens the cache: it must be readable (no corruption counted, served from
// tier 'cache', verify() passes, a sampled pattern is right), and after that
// open plus one rebuild no temp file may be left beside it.
//
//   node torture/kill-rebuild.js [--kills 20] [--patterns 3000] [--dim 256] [--max-delay-ms 40]
//   (the long run: --kills 2000)

const path = require('node:path')
const { PatternCache } = require('../index.js')
const lib = require('./lib.js')

const DEFAULTS = { kills: 20, patterns: 3000, dim: 256, maxDelayMs: 40, seed: 1 }

/** @param {string} dbPath */
async function child(dbPath) {
  let signalled = false
  const cache = await PatternCache.open({
    dbPath,
    backgroundRebuild: false,
    onEvent: (e) => {
      if (e.type === 'rebuild_started' && !signalled) {
        signalled = true
        process.stdout.write('rebuild_started\n') // a pipe: written synchronously
      }
    },
  })
  for (;;) {
    const r = await cache.rebuildCache()
    if (!r.success) throw new Error(`rebuild failed: ${r.error}`)
  }
}

/**
 * @param {Partial<typeof DEFAULTS>} [given]
 * @returns {Promise<import('./lib.js').Result>}
 */
async function run(given = {}) {
  const opts = { ...DEFAULTS, ...given }
  const started = Date.now()
  const dir = lib.tempDir('kill-rebuild')
  const dbPath = path.join(dir, 'patterns.db')
  const cachePath = lib.defaultCachePath(dbPath)
  await lib.seed(dbPath, opts.patterns, opts.dim)
  const random = lib.rng(opts.seed)

  let kills = 0
  let unreadable = 0
  let tempsLeft = 0
  let killedMidWrite = 0
  let unexpectedExits = 0
  let rebuildFailures = 0
  let wrongSamples = 0
  /** @type {string[]} */
  const problems = []
  for (let k = 0; k < opts.kills; k++) {
    /** @type {() => void} */
    let onStarted = () => {}
    const rebuilding = new Promise((resolve) => (onStarted = () => resolve(undefined)))
    const proc = lib.spawnNode(__filename, ['--child', dbPath], { onLine: (l) => l === 'rebuild_started' && onStarted() })
    const first = await Promise.race([rebuilding.then(() => 'started'), proc.exited.then(() => 'exited')])
    if (first === 'exited') {
      unexpectedExits++
      problems.push(`kill ${k}: the child exited before its first rebuild`)
      continue
    }
    await lib.randomDelay(opts.maxDelayMs, random)
    proc.child.kill('SIGKILL')
    const exit = await proc.exited
    if (exit.signal !== 'SIGKILL') {
      unexpectedExits++
      problems.push(`kill ${k}: the child ended with code ${exit.code} before the kill`)
    } else {
      kills++
    }
    if (lib.tempFiles(cachePath).length > 0) killedMidWrite++

    // The next user of the cache.
    /** @type {string[]} */
    const corruptions = []
    const cache = await PatternCache.open({
      dbPath,
      backgroundRebuild: false,
      onEvent: (e) => {
        if (e.type === 'corruption_detected') corruptions.push(e.detail)
      },
    })
    const m = cache.getMetrics()
    /** @type {string[]} */
    const wrong = []
    if (m.cacheCorruptionCount !== 0) wrong.push(`cacheCorruptionCount ${m.cacheCorruptionCount} (${corruptions.join('; ')})`)
    if (m.tier !== 'cache') wrong.push(`tier ${m.tier} (${m.cacheUnavailableReason})`)
    try {
      const n = await cache.verify()
      if (n !== opts.patterns) wrong.push(`verify() counted ${n} patterns`)
    } catch (e) {
      wrong.push(`verify() failed: ${lib.codeOf(e)} ${e instanceof Error ? e.message : e}`)
    }
    const n = Math.floor(random() * opts.patterns)
    const got = lib.plain(await cache.loadPattern(lib.baseId(n)))
    const want = lib.makePattern(lib.baseId(n), n, opts.dim)
    if (!got || got.content !== want.content || got.embedding.length !== opts.dim || got.embedding[0] !== want.embedding[0]) {
      wrongSamples++
      wrong.push(`pattern ${lib.baseId(n)} read wrong`)
    }
    if (wrong.length) {
      unreadable++
      problems.push(`kill ${k}: ${wrong.join(', ')}`)
    }
    const rebuilt = await cache.rebuildCache()
    if (!rebuilt.success) {
      rebuildFailures++
      problems.push(`kill ${k}: rebuild after the kill failed: ${rebuilt.error}`)
    }
    await cache.shutdown()
    const temps = lib.tempFiles(cachePath)
    tempsLeft += temps.length
    if (temps.length) problems.push(`kill ${k}: temp files left: ${temps.join(', ')}`)
    if ((k + 1) % 100 === 0) console.log(`   ${k + 1} kills, ${unreadable} unreadable, ${tempsLeft} temp files left`)
  }

  // The whole file and the database, once more at the end.
  const final = await PatternCache.open({ dbPath, backgroundRebuild: false })
  const all = await final.query({})
  await final.shutdown()
  let wrongAtEnd = 0
  all.forEach((p, i) => {
    const want = lib.makePattern(lib.baseId(i), i, opts.dim)
    if (p.id !== want.id || p.content !== want.content) wrongAtEnd++
  })
  if (all.length !== opts.patterns) wrongAtEnd += Math.abs(all.length - opts.patterns)
  const integrity = lib.integrityCheck(dbPath)

  return lib.result({
    name: 'kill-rebuild',
    title: 'SIGKILL in the middle of rebuildCache()',
    config: opts,
    started,
    figures: [
      { name: 'kills', value: kills },
      { name: 'kills that left a temp file behind (landed while the new file was being written)', value: killedMidWrite },
      lib.target('caches unreadable afterwards (corruption counted, tier not cache, verify() failed or a wrong pattern)', unreadable, '0', unreadable === 0),
      lib.target('temp files left after the next open + rebuild', tempsLeft, '0', tempsLeft === 0),
      lib.target('rebuilds after a kill that failed', rebuildFailures, '0', rebuildFailures === 0),
      lib.target('children that ended before the kill', unexpectedExits, '0', unexpectedExits === 0),
      lib.target('patterns wrong in the final full read', wrongAtEnd + wrongSamples, '0', wrongAtEnd + wrongSamples === 0),
      lib.target('PRAGMA integrity_check at the end', integrity, 'ok', integrity === 'ok'),
    ],
    notes: problems.slice(0, 20),
  })
}

if (require.main === module) {
  if (process.argv[2] === '--child') {
    child(process.argv[3]).catch((e) => {
      console.error(e)
      process.exit(3)
    })
  } else {
    lib.main(() => run(lib.options(DEFAULTS)))
  }
}

module.exports = { run, DEFAULTS }

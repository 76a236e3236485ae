// @ts-check
'use strict'
// SIGKILL a writer at random times: every write whose promise resolved must
// be in the database afterwards. A child stores patterns one `await
// storePattern` at a time and prints each id after its promise resolved
// (stdout is a pipe: written synchronously, so a printed id survives the
// kill); the parent kills it after a random delay, then reads every printed
// id from SQLite (`enabled: false`). Repeated on the same database.
//
//   node torture/kill-writes.js [--rounds 20] [--max-delay-ms 300] [--dim 64]

const path = require('node:path')
const { PatternCache } = require('../index.js')
const lib = require('./lib.js')

const DEFAULTS = { rounds: 20, maxDelayMs: 300, dim: 64, basePatterns: 500, seed: 2 }

/** @param {string} dbPath @param {string} prefix @param {number} dim */
async function child(dbPath, prefix, dim) {
  // The cache stays enabled: background rebuilds run under the writes, as in real use.
  const cache = await PatternCache.open({ dbPath })
  process.stdout.write('ready\n')
  for (let n = 0; ; n++) {
    const id = `${prefix}-${n}`
    await cache.storePattern(lib.makePattern(id, n, dim, id))
    process.stdout.write(`${id}\n`)
  }
}

/**
 * @param {Partial<typeof DEFAULTS>} [given]
 * @returns {Promise<import('./lib.js').Result>}
 */
async function run(given = {}) {
  const opts = { ...DEFAULTS, ...given }
  const started = Date.now()
  const dir = lib.tempDir('kill-writes')
  const dbPath = path.join(dir, 'patterns.db')
  await lib.seed(dbPath, opts.basePatterns, opts.dim)
  const random = lib.rng(opts.seed)

  let acknowledged = 0
  let lost = 0
  let wrongContent = 0
  let inFlightPresent = 0
  let unexpectedExits = 0
  /** @type {string[]} */
  const problems = []
  for (let round = 0; round < opts.rounds; round++) {
    const prefix = `r${round}`
    /** @type {() => void} */
    let onReady = () => {}
    const ready = new Promise((resolve) => (onReady = () => resolve(undefined)))
    const proc = lib.spawnNode(__filename, ['--child', dbPath, prefix, String(opts.dim)], { onLine: (l) => l === 'ready' && onReady() })
    const first = await Promise.race([ready.then(() => 'ready'), proc.exited.then(() => 'exited')])
    if (first === 'ready') {
      await lib.randomDelay(opts.maxDelayMs, random)
      proc.child.kill('SIGKILL')
    }
    const exit = await proc.exited
    if (exit.signal !== 'SIGKILL') {
      unexpectedExits++
      problems.push(`round ${round}: the writer ended with code ${exit.code} before the kill`)
    }
    const ids = exit.lines.filter((l) => l.startsWith(`${prefix}-`))
    acknowledged += ids.length

    const direct = await PatternCache.open({ dbPath, enabled: false })
    const found = await direct.loadPatterns(ids)
    found.forEach((p, i) => {
      if (p === null) {
        lost++
        if (problems.length < 20) problems.push(`round ${round}: acknowledged ${ids[i]} is missing`)
      } else if (!p.content.endsWith(` ${ids[i]}`)) {
        wrongContent++
      }
    })
    // The write in flight at the kill: committed or not, both are fine.
    if ((await direct.loadPattern(`${prefix}-${ids.length}`)) !== null) inFlightPresent++
    await direct.shutdown()
  }
  const integrity = lib.integrityCheck(dbPath)

  return lib.result({
    name: 'kill-writes',
    title: 'SIGKILL a writer at random times: acknowledged writes survive',
    config: opts,
    started,
    figures: [
      { name: 'rounds (one SIGKILL each)', value: opts.rounds },
      { name: 'writes acknowledged (promise resolved, id printed) before the kills', value: acknowledged },
      { name: 'writes in flight at the kill that had committed anyway', value: inFlightPresent },
      lib.target('resolved writes lost', lost, '0', lost === 0),
      lib.target('resolved writes with wrong content', wrongContent, '0', wrongContent === 0),
      lib.target('writers that ended before the kill', unexpectedExits, '0', unexpectedExits === 0),
      lib.target('PRAGMA integrity_check at the end', integrity, 'ok', integrity === 'ok'),
    ],
    notes: problems,
  })
}

if (require.main === module) {
  if (process.argv[2] === '--child') {
    child(process.argv[3], process.argv[4], Number(process.argv[5])).catch((e) => {
      console.error(e)
      process.exit(3)
    })
  } else {
    lib.main(() => run(lib.options(DEFAULTS)))
  }
}

module.exports = { run, DEFAULTS }

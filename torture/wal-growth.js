// @ts-check
'use strict'
// Does the WAL stay bounded? A long-lived reader process holds two
// PatternCache instances open (cache-enabled with checkInterval 0, so every
// read first reads the database; and `enabled: false`) and reads without
// pause, while this process writes N batches through a cache-enabled
// instance (whose background rebuilds read the whole database too). After
// each commit it samples `<db>-wal`: the file's size (a high-water mark:
// SQLite reuses the file from its start after a checkpoint, it never
// shrinks it while the database is open), the frames in use (mxFrame in the
// wal-index header, `<db>-shm`) and the checkpoint sequence in the WAL
// header (it advances each time the WAL restarts from its beginning).
// Phases (each starting from a closed database, so a fresh WAL):
//   1. writer + continuous reader;
//   2. the reader gone: the writer alone;
//   3. (no target) a read transaction held open all along (python3's
//      sqlite3: BEGIN; SELECT ...), to show what a long reader does
//      (half as many batches, at most 200).
//
//   node torture/wal-growth.js [--batches 100] [--batch-size 50] [--dim 256]

const fs = require('node:fs')
const path = require('node:path')
const { fork, spawn } = require('node:child_process')
const { PatternCache } = require('../index.js')
const lib = require('./lib.js')

const DEFAULTS = { batches: 100, batchSize: 50, dim: 256, basePatterns: 2000, pool: 4000, seed: 4 }
/** SQLite's default wal_autocheckpoint, in pages. */
const AUTOCHECKPOINT = 1000
const BOUND_PAGES = 4 * AUTOCHECKPOINT

/** The reader process: reads continuously until told to stop. @param {string} dbPath @param {number} basePatterns */
async function reader(dbPath, basePatterns) {
  const send = /** @type {(m: unknown) => void} */ (process.send?.bind(process))
  const cached = await PatternCache.open({ dbPath, checkInterval: 0 })
  const direct = await PatternCache.open({ dbPath, enabled: false })
  let stop = false
  process.once('message', () => (stop = true))
  let reads = 0
  let errors = 0
  for (let i = 0; !stop; i++) {
    try {
      const id = lib.baseId((i * 7919) % basePatterns)
      switch (i % 4) {
        case 0:
          await cached.loadPattern(id)
          break
        case 1:
          await direct.loadPattern(id)
          break
        case 2:
          await cached.loadPatternsByDomain(lib.DOMAINS[i % lib.DOMAINS.length])
          break
        default:
          await direct.query({ domain: lib.DOMAINS[i % lib.DOMAINS.length], limit: 20 })
      }
      reads++
    } catch {
      errors++
    }
    if (i === 0) send('ready')
    if (i % 16 === 0) await new Promise((resolve) => setImmediate(resolve)) // let the stop message in
  }
  await cached.shutdown()
  await direct.shutdown()
  send({ reads, errors })
  process.disconnect()
}

/**
 * Samples the WAL: file size, frames in use, checkpoint sequence, page size.
 * @param {string} dbPath
 */
function sampleWal(dbPath) {
  const out = { fileBytes: 0, frames: 0, checkpointSeq: -1, pageSize: 4096 }
  try {
    const fd = fs.openSync(`${dbPath}-wal`, 'r')
    try {
      out.fileBytes = fs.fstatSync(fd).size
      const h = Buffer.alloc(32)
      if (fs.readSync(fd, h, 0, 32, 0) === 32) {
        out.pageSize = h.readUInt32BE(8)
        out.checkpointSeq = h.readUInt32BE(12)
      }
    } finally {
      fs.closeSync(fd)
    }
    const shm = fs.openSync(`${dbPath}-shm`, 'r')
    try {
      const h = Buffer.alloc(48)
      if (fs.readSync(shm, h, 0, 48, 0) === 48) out.frames = h.readUInt32LE(16) // mxFrame, native (little-endian here)
    } finally {
      fs.closeSync(shm)
    }
  } catch {
    // no WAL yet
  }
  return out
}

/**
 * Writes `batches` batches through a cache-enabled instance, sampling the WAL after each commit.
 * @param {string} dbPath @param {typeof DEFAULTS} opts @param {number} batches @param {number} offset
 */
async function writePhase(dbPath, opts, batches, offset) {
  const writer = await PatternCache.open({ dbPath })
  let peakFileBytes = 0
  let peakFrames = 0
  let framesWritten = 0
  let lastFrames = sampleWal(dbPath).frames
  const seqs = new Set()
  let pageSize = 4096
  for (let b = 0; b < batches; b++) {
    const batch = []
    for (let k = 0; k < opts.batchSize; k++) {
      const n = (offset + b * opts.batchSize + k) % opts.pool
      batch.push(lib.makePattern(`w-${String(n).padStart(6, '0')}`, n + b, opts.dim, `batch ${offset + b}`))
    }
    await writer.storePatterns(batch)
    const s = sampleWal(dbPath)
    peakFileBytes = Math.max(peakFileBytes, s.fileBytes)
    peakFrames = Math.max(peakFrames, s.frames)
    framesWritten += s.frames >= lastFrames ? s.frames - lastFrames : s.frames
    lastFrames = s.frames
    seqs.add(s.checkpointSeq)
    pageSize = s.pageSize
  }
  await writer.shutdown()
  return { peakFileBytes, peakFrames, framesWritten, restarts: seqs.size - 1, pageSize }
}

/**
 * @param {Partial<typeof DEFAULTS>} [given]
 * @returns {Promise<import('./lib.js').Result>}
 */
async function run(given = {}) {
  const opts = { ...DEFAULTS, ...given }
  const started = Date.now()
  const dir = lib.tempDir('wal-growth')
  const dbPath = path.join(dir, 'patterns.db')
  await lib.seed(dbPath, opts.basePatterns, opts.dim)

  // Phase 1: a continuous reader in another process.
  const child = fork(__filename, ['--reader', dbPath, String(opts.basePatterns)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
  /** @type {Array<(m: unknown) => void>} */
  const waiting = []
  child.on('message', (m) => waiting.shift()?.(m))
  const message = () => new Promise((resolve) => waiting.push(resolve))
  const exited = new Promise((resolve) => child.on('exit', resolve))
  await message() // 'ready'
  const withReader = await writePhase(dbPath, opts, opts.batches, 0)
  const stats = message()
  child.send('stop')
  const readerStats = /** @type {{ reads: number, errors: number }} */ (await stats)
  await exited

  // Phase 2: the reader is gone (and every connection closed: a fresh WAL).
  const alone = await writePhase(dbPath, opts, opts.batches, opts.batches)

  // Phase 3: a read transaction held open for the whole phase.
  const holder = spawn(
    'python3',
    [
      '-c',
      [
        'import sqlite3, sys',
        'c = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)',
        "c.execute('BEGIN')",
        "c.execute('SELECT count(*) FROM patterns').fetchone()",
        "print('held', flush=True)",
        'sys.stdin.read()',
        "c.execute('COMMIT')",
      ].join('\n'),
      dbPath,
    ],
    { stdio: ['pipe', 'pipe', 'inherit'] },
  )
  const holderOut = /** @type {import('node:stream').Readable} */ (holder.stdout)
  await new Promise((resolve) => holderOut.once('data', resolve))
  const pinnedBatches = Math.max(1, Math.min(200, Math.floor(opts.batches / 2)))
  const pinned = await writePhase(dbPath, opts, pinnedBatches, 2 * opts.batches)
  const holderExit = new Promise((resolve) => holder.on('exit', resolve))
  const holderIn = /** @type {import('node:stream').Writable} */ (holder.stdin)
  holderIn.end()
  await holderExit

  const walLeft = fs.existsSync(`${dbPath}-wal`) ? fs.statSync(`${dbPath}-wal`).size : 0
  const integrity = lib.integrityCheck(dbPath)
  const frameBytes = withReader.pageSize + 24
  const mb = (/** @type {number} */ b) => `${(b / 1048576).toFixed(2)} MB`
  const pages = (/** @type {{ peakFrames: number, peakFileBytes: number }} */ p) => `${p.peakFrames} pages in use (${mb(p.peakFrames * frameBytes)}); file ${mb(p.peakFileBytes)}`

  return lib.result({
    name: 'wal-growth',
    title: 'WAL size with a long-lived reader',
    config: opts,
    started,
    figures: [
      { name: 'pages written to the WAL per phase (writer + reader / writer alone)', value: `${withReader.framesWritten} / ${alone.framesWritten}` },
      { name: 'reads by the long-lived reader during phase 1 (errors)', value: `${readerStats.reads} (${readerStats.errors})` },
      lib.target('peak WAL with the long-lived reader', pages(withReader), `<= ${BOUND_PAGES} pages (4x wal_autocheckpoint)`, withReader.peakFrames <= BOUND_PAGES && withReader.peakFileBytes <= BOUND_PAGES * frameBytes + 32),
      { name: 'WAL restarts from its beginning with the reader (checkpoint sequence advances)', value: withReader.restarts },
      lib.target('peak WAL after the reader is gone', pages(alone), `<= ${BOUND_PAGES} pages`, alone.peakFrames <= BOUND_PAGES && alone.peakFileBytes <= BOUND_PAGES * frameBytes + 32),
      { name: 'WAL restarts, writer alone', value: alone.restarts },
      { name: `peak WAL with a read transaction held open (python3), ${pinnedBatches} batches, no target`, value: pages(pinned) },
      { name: 'WAL restarts while that read transaction was open', value: pinned.restarts },
      { name: 'WAL file left after every connection closed (bytes)', value: walLeft },
      lib.target('PRAGMA integrity_check at the end', integrity, 'ok', integrity === 'ok'),
    ],
    notes: [
      `page size ${withReader.pageSize}; SQLite's default wal_autocheckpoint is ${AUTOCHECKPOINT} pages`,
    ],
  })
}

if (require.main === module) {
  if (process.argv[2] === '--reader') {
    reader(process.argv[3], Number(process.argv[4])).catch((e) => {
      console.error(e)
      process.exit(3)
    })
  } else {
    lib.main(() => run(lib.options(DEFAULTS)))
  }
}

module.exports = { run, DEFAULTS, sampleWal }

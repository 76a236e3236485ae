// @ts-check
'use strict'
// A corrupted, truncated, foreign, empty or other-version cache file never
// changes what a read returns: the loader serves SQLite, counts it in the
// metrics, reports it as an event, and rebuilds the file.

const { test } = require('node:test')
const assert = require('node:assert/strict')
const fs = require('node:fs')
const path = require('node:path')
const { PatternCache } = require('../index.js')
const { generatePatterns, keepAliveUntil, Model, plain, tempDir } = require('./helpers.js')

const HEADER_LEN = 512

/** A database with patterns and a valid cache file; returns its paths and model. */
async function setup(/** @type {string} */ name) {
  const dir = tempDir(`corrupt-${name}`)
  const dbPath = path.join(dir, 'patterns.db')
  const patterns = generatePatterns(300, { seed: 3 })
  const cache = await PatternCache.open({ dbPath })
  await cache.storePatterns(patterns)
  assert.equal((await cache.rebuildCache()).success, true)
  await cache.shutdown()
  const model = new Model()
  model.store(patterns)
  return { dbPath, cachePath: path.join(dir, 'patterns.v2.pcache'), model }
}

/** Opens with an event log; resolves the events seen up to the first rebuild end. */
async function openLogged(/** @type {string} */ dbPath) {
  /** @type {import('../index').CacheEvent[]} */
  const events = []
  /** @type {(v?: unknown) => void} */
  let rebuilt = () => {}
  const settled = new Promise((resolve) => (rebuilt = resolve))
  const cache = await PatternCache.open({
    dbPath,
    onEvent: (e) => {
      events.push(e)
      if (e.type === 'rebuild_finished' || e.type === 'rebuild_failed') rebuilt()
    },
  })
  return { cache, events, settled }
}

/** Every read gives the model's answer. */
async function assertCorrect(/** @type {PatternCache} */ cache, /** @type {Model} */ model) {
  for (const id of ['pat-000010', 'pat-000299', '\u{1f600}-emoji', 'absent']) {
    assert.deepEqual(plain(await cache.loadPattern(id)), model.get(id), id)
  }
  assert.deepEqual((await cache.query({})).map(plain), model.query({}))
  assert.deepEqual((await cache.loadPatternsByDomain('auth')).map(plain), model.query({ domain: 'auth' }))
}

/** @type {Array<[string, (bytes: Buffer) => Buffer, 'corruption' | 'version_mismatch']>} */
const atOpen = [
  ['flipped header byte', (b) => flip(b, 60), 'corruption'],
  ['flipped byte in the index sections', (b) => flip(b, b.length - 20), 'corruption'],
  ['truncated by one byte', (b) => b.subarray(0, b.length - 1), 'corruption'],
  ['truncated inside the header', (b) => b.subarray(0, 100), 'corruption'],
  ['truncated at the end of the header', (b) => b.subarray(0, HEADER_LEN), 'corruption'],
  ['trailing garbage', (b) => Buffer.concat([b, Buffer.from('garbage')]), 'corruption'],
  ['empty', () => Buffer.alloc(0), 'corruption'],
  ['foreign (a PNG signature and noise)', (b) => Buffer.concat([Buffer.from('\x89PNG\r\n\x1a\n', 'latin1'), Buffer.alloc(b.length, 7)]), 'corruption'],
  ['other major version', (b) => withMajor(b, 3), 'version_mismatch'],
  ['format 1 (embeddings inside records)', (b) => withMajor(b, 1), 'version_mismatch'],
  ['old major version', (b) => withMajor(b, 0), 'version_mismatch'],
]

/** @param {Buffer} b @param {number} at */
function flip(b, at) {
  const c = Buffer.from(b)
  c[at] ^= 0x40
  return c
}

/** @param {Buffer} b @param {number} major */
function withMajor(b, major) {
  const c = Buffer.from(b)
  c.writeUInt16LE(major, 8)
  return c
}

for (const [name, mutate, reason] of atOpen) {
  test(`at open: ${name} -> correct data, counted, rebuilt`, async () => {
    const { dbPath, cachePath, model } = await setup(name.replace(/\W+/g, '-'))
    fs.writeFileSync(cachePath, mutate(fs.readFileSync(cachePath)))
    const { cache, events, settled } = await openLogged(dbPath)
    const m = cache.getMetrics()
    assert.equal(m.cacheCorruptionCount, reason === 'corruption' ? 1 : 0)
    assert.equal(m.cacheRebuildCount, 1)
    assert.equal(m.tier, 'cache', 'the rebuilt file serves')
    await assertCorrect(cache, model)
    await cache.shutdown()
    await keepAliveUntil(settled) // events arrive asynchronously
    assert.ok(events.some((e) => e.type === 'corruption_detected'), JSON.stringify(events))
    assert.ok(events.some((e) => e.type === 'rebuild_started' && e.reason === reason), JSON.stringify(events))
  })
}

test('a corrupt record is caught when first read: SQLite answers, then a rebuild replaces the file', async () => {
  const { dbPath, cachePath, model } = await setup('record')
  const bytes = fs.readFileSync(cachePath)
  // Records start right after the header; damage the first record's content.
  fs.writeFileSync(cachePath, flip(bytes, HEADER_LEN + 40))
  const { cache, events, settled } = await openLogged(dbPath)
  assert.equal(cache.getMetrics().tier, 'cache', 'the header and index sections are intact')
  const firstId = model.query({})[0].id
  assert.deepEqual(plain(await cache.loadPattern(firstId)), model.get(firstId))
  const m = cache.getMetrics()
  assert.equal(m.cacheCorruptionCount, 1)
  assert.equal(m.cacheMisses, 1)
  await keepAliveUntil(settled)
  assert.ok(events.some((e) => e.type === 'fallback'))
  assert.ok(events.some((e) => e.type === 'rebuild_started' && e.reason === 'corruption'))
  assert.equal(cache.getMetrics().tier, 'cache', 'the rebuilt file serves again')
  await assertCorrect(cache, model)
  await cache.shutdown()
})

test('an unwritable cache location: every read still correct, the reason in the metrics', async () => {
  const { dbPath, model } = await setup('unwritable')
  const blocker = path.join(path.dirname(dbPath), 'not-a-dir')
  fs.writeFileSync(blocker, 'a file where a directory should be')
  const cache = await PatternCache.open({ dbPath, cachePath: path.join(blocker, 'c.pcache') })
  const m = cache.getMetrics()
  assert.equal(m.tier, 'sqlite')
  assert.match(m.cacheUnavailableReason ?? '', /IO_ERROR/)
  await assertCorrect(cache, model)
  const built = await cache.rebuildCache()
  assert.equal(built.success, false)
  assert.match(built.error ?? '', /IO_ERROR/)
  await cache.shutdown()
})

test('the previous file is kept as .bak and no temp file is left', async () => {
  const { dbPath, cachePath } = await setup('bak')
  const dir = path.dirname(cachePath)
  fs.writeFileSync(path.join(dir, 'patterns.v2.pcache.tmp-crashed'), 'left by a writer that died')
  const cache = await PatternCache.open({ dbPath })
  const before = fs.readFileSync(cachePath)
  await cache.rebuildCache()
  assert.deepEqual(fs.readFileSync(cachePath + '.bak'), before)
  assert.deepEqual(fs.readdirSync(dir).filter((f) => f.includes('.tmp-')), [])
  await cache.shutdown()
})

test('inspect() and verify() report the file on disk as it is', async () => {
  const { dbPath, cachePath } = await setup('inspect')
  const cache = await PatternCache.open({ dbPath, backgroundRebuild: false })
  const fresh = await cache.inspect()
  assert.equal(fresh.fileState, 'valid')
  assert.equal(fresh.fileGeneration, fresh.dbGeneration)
  assert.equal(fresh.sameDatabase, true)
  assert.equal(fresh.filePatternCount, 300)
  assert.equal(fresh.formatVersion, '2.0.0')
  assert.equal(await cache.verify(), 300)

  await cache.storePattern({ id: 'new', type: 't', domain: 'd', content: 'c', embedding: new Float32Array(16) })
  const stale = await cache.inspect()
  assert.ok(/** @type {number} */ (stale.fileGeneration) < stale.dbGeneration, 'the file is behind the database')
  assert.equal(stale.dbPatternCount, 301)

  // Damage one record: open-time checks pass, a full verify does not.
  fs.writeFileSync(cachePath, flip(fs.readFileSync(cachePath), HEADER_LEN + 40))
  await assert.rejects(cache.verify(), (/** @type {any} */ e) => e.code === 'CACHE_CORRUPT')
  fs.writeFileSync(cachePath, 'not a cache file')
  assert.equal((await cache.inspect()).fileState, 'invalid')
  fs.rmSync(cachePath)
  assert.equal((await cache.inspect()).fileState, 'missing')
  await cache.shutdown()
})

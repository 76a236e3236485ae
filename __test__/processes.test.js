// @ts-check
'use strict'
// Many processes and threads on one cache: one rebuild for a stale file,
// correct data everywhere, prompt exits, and clean ends mid-rebuild.

const { test } = require('node:test')
const assert = require('node:assert/strict')
const fs = require('node:fs')
const path = require('node:path')
const { spawn } = require('node:child_process')
const { Worker } = require('node:worker_threads')
const { PatternCache } = require('../index.js')
const { generatePatterns, Model, plain, tempDir } = require('./helpers.js')

const ROOT = path.resolve(__dirname, '..')

/** Runs a Node script; resolves with its exit code, signal and stdout. @param {string} script @param {string} cwd */
function run(script, cwd) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['-e', script], { cwd, stdio: ['ignore', 'pipe', 'inherit'] })
    let out = ''
    child.stdout.setEncoding('utf8') // decodes characters split across chunks
    child.stdout.on('data', (d) => (out += d))
    child.on('error', reject)
    child.on('close', (code, signal) => resolve({ code, signal, out })) // after stdout is drained
  })
}

test('8 processes open a stale cache at once: exactly one rebuilds, all serve correct data', async () => {
  const dir = tempDir('exclusion')
  const dbPath = path.join(dir, 'p.db')
  const patterns = generatePatterns(2000, { dim: 64 })
  const seed = await PatternCache.open({ dbPath })
  await seed.storePatterns(patterns.slice(0, 1500))
  await seed.rebuildCache()
  await seed.shutdown()
  // Make the file stale: write behind its back, with the cache disabled.
  const writer = await PatternCache.open({ dbPath, enabled: false })
  await writer.storePatterns(patterns.slice(1500))
  await writer.shutdown()
  const model = new Model()
  model.store(patterns)
  const expected = model.query({})

  const script = `
    const { PatternCache } = require(${JSON.stringify(ROOT)})
    PatternCache.open({ dbPath: ${JSON.stringify(dbPath)}, backgroundRebuild: false }).then(async (c) => {
      const all = (await c.query({})).map((p) => ({ ...p, embedding: Array.from(p.embedding) }))
      const m = c.getMetrics()
      console.log(JSON.stringify({ rebuilds: m.cacheRebuildCount, tier: m.tier, misses: m.cacheMisses, all }))
      await c.shutdown()
    })`
  const results = await Promise.all(Array.from({ length: 8 }, () => run(script, dir)))
  let rebuilds = 0
  for (const r of /** @type {Array<{ code: number, out: string }>} */ (results)) {
    assert.equal(r.code, 0)
    const got = JSON.parse(r.out)
    rebuilds += got.rebuilds
    assert.equal(got.tier, 'cache')
    assert.equal(got.misses, 0)
    assert.ok(got.all.length === expected.length)
    assert.deepEqual(got.all, expected)
  }
  assert.equal(rebuilds, 1, 'one process wrote the file; the others waited and adopted it')
})

test('worker threads and instances in one process share the cache and see each other', async () => {
  const dir = tempDir('threads')
  const dbPath = path.join(dir, 'p.db')
  const main = await PatternCache.open({ dbPath, checkInterval: 0 })
  await main.storePatterns(generatePatterns(100, { dim: 8 }))
  const code = `
    const { parentPort, workerData } = require('node:worker_threads')
    const { PatternCache } = require(${JSON.stringify(ROOT)})
    PatternCache.open({ dbPath: workerData.dbPath, checkInterval: 0 }).then(async (c) => {
      await c.storePattern({ id: 'from-worker-' + workerData.n, type: 'unit', domain: 'threads', content: 'w', embedding: new Float32Array(8) })
      const seen = (await c.loadPatternsByDomain('threads')).length
      await c.shutdown()
      parentPort.postMessage(seen)
    })`
  const seen = await Promise.all(
    Array.from({ length: 4 }, (_, n) => {
      const w = new Worker(code, { eval: true, workerData: { dbPath, n } })
      return new Promise((resolve, reject) => {
        w.once('message', resolve)
        w.once('error', reject)
      })
    }),
  )
  for (const n of seen) assert.ok(/** @type {number} */ (n) >= 1)
  assert.equal((await main.loadPatternsByDomain('threads')).length, 4)
  const second = await PatternCache.open({ dbPath })
  assert.equal((await second.loadPatternsByDomain('threads')).length, 4)
  await second.shutdown()
  await main.shutdown()
})

test('a process that never calls shutdown() exits promptly after its last work', async () => {
  const dir = tempDir('prompt-exit')
  const script = `
    const { PatternCache } = require(${JSON.stringify(ROOT)})
    PatternCache.open({ dbPath: 'p.db', onEvent: () => {}, maxAge: 60000 }).then(async (c) => {
      await c.storePatterns(Array.from({ length: 50 }, (_, i) => ({ id: 'p' + i, type: 't', domain: 'd', content: 'x', embedding: [i] })))
      c.markStale({ trigger: 'manual', requiresRebuild: false }) // a rebuild pending in the background
      await c.loadPattern('p1')
      console.log(Date.now())
    })`
  const r = /** @type {{ code: number, out: string }} */ (await run(script, dir))
  const exitedAfter = Date.now() - Number(r.out.trim())
  assert.equal(r.code, 0)
  // Reported, and bounded only loosely (a hang guard, not a benchmark): the
  // requirement is 1 s; see the note on the issue for measured figures.
  console.log(`# exited ${exitedAfter} ms after its last work`)
  assert.ok(exitedAfter < 5000, `${exitedAfter} ms`)
})

test('terminating a worker in the middle of a rebuild ends cleanly, the cache stays valid', async () => {
  const dir = tempDir('terminate')
  const dbPath = path.join(dir, 'p.db')
  const seed = await PatternCache.open({ dbPath })
  const patterns = generatePatterns(3000, { dim: 256 })
  await seed.storePatterns(patterns)
  await seed.rebuildCache()
  await seed.shutdown()
  const code = `
    const { parentPort, workerData } = require('node:worker_threads')
    const { PatternCache } = require(${JSON.stringify(ROOT)})
    PatternCache.open({
      dbPath: workerData.dbPath,
      onEvent: (e) => { if (e.type === 'rebuild_started' && e.reason === 'manual') parentPort.postMessage('rebuilding') },
    }).then((c) => c.rebuildCache())`
  const iterations = process.env.CI ? 25 : 10
  for (let i = 0; i < iterations; i++) {
    const w = new Worker(code, { eval: true, workerData: { dbPath } })
    await new Promise((resolve, reject) => {
      w.once('message', resolve)
      w.once('error', reject)
    })
    const exitCode = await w.terminate()
    assert.equal(exitCode, 1, 'terminated')
  }
  const after = await PatternCache.open({ dbPath })
  assert.equal(after.getMetrics().tier, 'cache')
  assert.equal(after.getMetrics().cacheCorruptionCount, 0)
  const model = new Model()
  model.store(patterns)
  assert.deepEqual((await after.query({ limit: 50 })).map(plain), model.query({ limit: 50 }))
  await after.shutdown()
})

test('process.exit() in the middle of a rebuild: no abort, the old file still serves, temp files cleaned', async () => {
  const dir = tempDir('exit-mid-rebuild')
  const dbPath = path.join(dir, 'p.db')
  const seed = await PatternCache.open({ dbPath })
  await seed.storePatterns(generatePatterns(3000, { dim: 256 }))
  await seed.rebuildCache()
  await seed.shutdown()
  const script = `
    const { PatternCache } = require(${JSON.stringify(ROOT)})
    PatternCache.open({
      dbPath: ${JSON.stringify(dbPath)},
      onEvent: (e) => { if (e.type === 'rebuild_started' && e.reason === 'manual') process.exit(0) },
    }).then((c) => c.rebuildCache())`
  for (let i = 0; i < 5; i++) {
    const r = /** @type {{ code: number, signal: string | null }} */ (await run(script, dir))
    assert.equal(r.signal, null)
    assert.equal(r.code, 0)
  }
  const after = await PatternCache.open({ dbPath })
  assert.equal(after.getMetrics().tier, 'cache')
  assert.equal(after.getMetrics().cacheCorruptionCount, 0)
  await after.rebuildCache()
  assert.deepEqual(fs.readdirSync(dir).filter((f) => f.includes('.tmp-')), [])
  await after.shutdown()
})

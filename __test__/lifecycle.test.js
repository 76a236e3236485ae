// @ts-check
'use strict'
// Opening, defaults, events, shutdown and CLOSED, process exit.

const { test } = require('node:test')
const assert = require('node:assert/strict')
const fs = require('node:fs')
const path = require('node:path')
const { execFileSync, spawnSync } = require('node:child_process')
const { PatternCache } = require('../index.js')
const { eventLog, generatePatterns, keepAliveUntil, tempDir } = require('./helpers.js')

test('defaults: .pattern-cache/patterns.db under the current directory, the cache beside it', async () => {
  const dir = tempDir('defaults')
  const script = `
    const { PatternCache } = require(${JSON.stringify(path.resolve(__dirname, '..'))})
    PatternCache.open().then(async (c) => {
      await c.storePattern({ id: 'a', type: 't', domain: 'd', content: 'x', embedding: [1] })
      await c.rebuildCache()
      await c.shutdown()
    })`
  execFileSync(process.execPath, ['-e', script], { cwd: dir })
  const files = fs.readdirSync(path.join(dir, '.pattern-cache')).sort()
  assert.ok(files.includes('patterns.db'), files.join())
  assert.ok(files.includes('patterns.v2.pcache'), files.join())
})

test('stored patterns come back with defaults filled; createdAt kept on re-store', async () => {
  const dir = tempDir('defaults-filled')
  const cache = await PatternCache.open({ dbPath: path.join(dir, 'p.db') })
  const before = Date.now()
  await cache.storePattern({ id: 'p', type: 'unit', domain: 'auth', content: 'c', embedding: [0.5, 0.25] })
  const p = await cache.loadPattern('p')
  assert.ok(p)
  assert.equal(p.framework, 'unknown')
  assert.equal(p.verdict, 'unknown')
  assert.ok(p.embedding instanceof Float32Array)
  assert.deepEqual(Array.from(p.embedding), [0.5, 0.25])
  assert.ok(p.createdAt >= before && p.createdAt <= Date.now())
  assert.equal(p.usageCount, 0)
  assert.equal('coverage' in p, false, 'absent optional fields stay absent')
  await cache.storePattern({ id: 'p', type: 'unit', domain: 'auth', content: 'changed', embedding: [1, 2] })
  const again = await cache.loadPattern('p')
  assert.equal(again?.content, 'changed')
  assert.equal(again?.createdAt, p.createdAt)
  await cache.shutdown()
})

test('events: a fresh cache reports its startup build', async () => {
  const dir = tempDir('events')
  /** @type {import('../index').CacheEvent[]} */
  const events = []
  /** @type {(v?: unknown) => void} */
  let finished = () => {}
  const done = new Promise((resolve) => (finished = resolve))
  const cache = await PatternCache.open({
    dbPath: path.join(dir, 'p.db'),
    onEvent: (e) => {
      events.push(e)
      if (e.type === 'rebuild_finished') finished()
    },
  })
  await keepAliveUntil(done)
  assert.deepEqual(events[0], { type: 'rebuild_started', reason: 'startup' })
  const fin = events.find((e) => e.type === 'rebuild_finished')
  assert.ok(fin && fin.type === 'rebuild_finished' && fin.patternCount === 0 && fin.cacheFileSize > 0)
  await cache.shutdown()
})

test('a listener that throws does not break the cache', async () => {
  const dir = tempDir('throwing-listener')
  /** @type {string[]} */
  const warnings = []
  /** @type {(v?: unknown) => void} */
  let warned = () => {}
  const gotWarning = new Promise((resolve) => (warned = resolve))
  const onWarning = (/** @type {Error} */ w) => {
    warnings.push(w.message)
    warned()
  }
  process.on('warning', onWarning)
  const cache = await PatternCache.open({
    dbPath: path.join(dir, 'p.db'),
    onEvent: () => {
      throw new Error('listener bug')
    },
  })
  await cache.storePattern({ id: 'a', type: 't', domain: 'd', content: 'x', embedding: [1] })
  assert.equal((await cache.loadPattern('a'))?.id, 'a')
  await keepAliveUntil(gotWarning)
  process.off('warning', onWarning)
  assert.match(warnings[0], /listener bug/)
  await cache.shutdown()
})

test('shutdown: idempotent; every later call fails with CLOSED; asyncDispose shuts down', async () => {
  const dir = tempDir('closed')
  const cache = await PatternCache.open({ dbPath: path.join(dir, 'p.db') })
  await cache.storePatterns(generatePatterns(5, { dim: 4 }))
  assert.equal(cache.closed, false)
  await cache.shutdown()
  await cache.shutdown()
  assert.equal(cache.closed, true)
  const isClosed = (/** @type {any} */ e) => e.code === 'CLOSED'
  const [p] = generatePatterns(1, { dim: 4 })
  for (const call of [
    () => cache.loadPattern('pat-000001'),
    () => cache.loadPatterns(['a']),
    () => cache.loadPatternsByDomain('auth'),
    () => cache.loadPatternsByType('unit'),
    () => cache.loadPatternsByFramework('jest'),
    () => cache.query({}),
    () => cache.storePattern(p),
    () => cache.storePatterns([p]),
    () => cache.deletePattern('a'),
    () => cache.loadAgentConfig('a'),
    () => cache.storeAgentConfig({ agentId: 'a', type: 't', configJson: '1', version: '1', updatedAt: 1 }),
    () => cache.rebuildCache(),
  ]) {
    await assert.rejects(call(), isClosed)
  }
  assert.throws(() => cache.getMetrics(), isClosed)
  assert.throws(() => cache.markStale({ trigger: 'manual', requiresRebuild: false }), isClosed)

  const other = await PatternCache.open({ dbPath: path.join(dir, 'p.db') })
  await other[Symbol.asyncDispose]()
  assert.equal(other.closed, true)
})

test('markStale sends reads to SQLite until a rebuild; requiresRebuild rebuilds', async () => {
  const dir = tempDir('mark-stale')
  const log = eventLog()
  const cache = await PatternCache.open({ dbPath: path.join(dir, 'p.db'), onEvent: log.onEvent })
  await cache.storePatterns(generatePatterns(20, { dim: 4 }))
  await cache.rebuildCache()
  assert.equal(cache.getMetrics().tier, 'cache')
  cache.markStale({ trigger: 'pattern_stored', requiresRebuild: false })
  // Synchronously after markStale: the file is out of service (the rebuild it
  // scheduled waits for the burst to settle).
  assert.equal(cache.getMetrics().tier, 'sqlite')
  assert.equal((await cache.loadPattern('pat-000010'))?.id, 'pat-000010')
  const started = log.next((e) => e.type === 'rebuild_started' && e.reason === 'config_updated')
  const finished = log.next((e) => e.type === 'rebuild_finished')
  cache.markStale({ trigger: 'config_updated', requiresRebuild: true })
  await started
  await finished
  assert.equal(cache.getMetrics().tier, 'cache')
  await cache.shutdown()
})

test('a process that never calls shutdown() exits normally', () => {
  const dir = tempDir('no-shutdown')
  const script = `
    const { PatternCache } = require(${JSON.stringify(path.resolve(__dirname, '..'))})
    PatternCache.open({ dbPath: 'p.db', onEvent: () => {} }).then(async (c) => {
      await c.storePattern({ id: 'a', type: 't', domain: 'd', content: 'x', embedding: [1] })
      c.markStale({ trigger: 'manual', requiresRebuild: true })
      console.log((await c.loadPattern('a')).id)
    })`
  const out = execFileSync(process.execPath, ['-e', script], { cwd: dir, timeout: 30_000 })
  assert.equal(out.toString().trim(), 'a')
})

test('silent by default; DEBUG=pattern-cache* logs from JavaScript and from the addon', () => {
  const dir = tempDir('debug-logs')
  const script = `
    const { PatternCache } = require(${JSON.stringify(path.resolve(__dirname, '..'))})
    PatternCache.open({ dbPath: 'p.db' }).then(async (c) => {
      await c.storePattern({ id: 'a', type: 't', domain: 'd', content: 'x', embedding: [1] })
      await c.rebuildCache()
      await c.shutdown()
    })`
  const quiet = spawnSync(process.execPath, ['-e', script], { cwd: dir, encoding: 'utf8', env: { ...process.env, DEBUG: '' } })
  assert.equal(quiet.status, 0)
  assert.equal(quiet.stderr, '')
  assert.equal(quiet.stdout, '')
  const loud = spawnSync(process.execPath, ['-e', script], { cwd: dir, encoding: 'utf8', env: { ...process.env, DEBUG: 'pattern-cache*' } })
  assert.equal(loud.status, 0)
  assert.match(loud.stderr, /pattern-cache open/)
  assert.match(loud.stderr, /pattern-cache:native open db=/)
  assert.match(loud.stderr, /pattern-cache:native pattern_stored -> generation/)
})

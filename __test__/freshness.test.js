// @ts-check
'use strict'
// Background rebuilds: TTL, every invalidation trigger, coalescing of bursts,
// reads served from tier 1 while a rebuild is pending, and another process's
// writes showing up. Tests wait for events, never for time, except where the
// contract itself is about time (checkInterval, maxAge).

const { test } = require('node:test')
const assert = require('node:assert/strict')
const path = require('node:path')
const { execFileSync } = require('node:child_process')
const { PatternCache } = require('../index.js')
const { eventLog, generatePatterns, Model, plain, tempDir } = require('./helpers.js')

const ROOT = path.resolve(__dirname, '..')

/** @param {string} name @param {import('../index').PatternCacheConfig} [config] */
async function openWithLog(name, config = {}) {
  const dir = tempDir(name)
  const log = eventLog()
  const dbPath = path.join(dir, 'p.db')
  const cache = await PatternCache.open({ dbPath, onEvent: log.onEvent, ...config })
  return { cache, log, dbPath, dir }
}

test('TTL: a file at 80% of maxAge is rebuilt in the background (ttl_expired)', async () => {
  const { cache, log } = await openWithLog('ttl', { maxAge: 400 })
  await cache.storePatterns(generatePatterns(10, { dim: 4 }))
  const started = log.next((e) => e.type === 'rebuild_started' && e.reason === 'ttl_expired')
  const finished = started.then(() => log.next((e) => e.type === 'rebuild_finished'))
  await started
  await finished
  assert.equal(cache.getMetrics().tier, 'cache')
  assert.equal(cache.getMetrics().patternCount, 10)
  await cache.shutdown()
})

test('writes raise pattern_stored, pattern_deleted and config_updated rebuilds by themselves', async () => {
  const { cache, log } = await openWithLog('triggers')
  for (const [trigger, write] of /** @type {Array<[string, () => Promise<unknown>]>} */ ([
    ['pattern_stored', () => cache.storePattern(generatePatterns(1, { dim: 4 })[0])],
    ['pattern_deleted', () => cache.deletePattern('\uff5a-fullwidth')],
    ['config_updated', () => cache.storeAgentConfig({ agentId: 'a', type: 't', configJson: '{}', version: '1', updatedAt: 1 })],
  ])) {
    const started = log.next((e) => e.type === 'rebuild_started' && e.reason === trigger)
    const finished = started.then(() => log.next((e) => e.type === 'rebuild_finished'))
    await write()
    await finished
    assert.equal(cache.getMetrics().tier, 'cache', trigger)
  }
  assert.equal(await cache.loadPattern('\uff5a-fullwidth'), null)
  assert.equal((await cache.loadAgentConfig('a'))?.agentId, 'a')
  await cache.shutdown()
})

test('markStale: manual with requiresRebuild rebuilds now; without, in the background', async () => {
  const { cache, log } = await openWithLog('mark-stale-triggers')
  for (const requiresRebuild of [true, false]) {
    const started = log.next((e) => e.type === 'rebuild_started' && e.reason === 'manual')
    const finished = started.then(() => log.next((e) => e.type === 'rebuild_finished'))
    cache.markStale({ trigger: 'manual', requiresRebuild })
    await finished
    assert.equal(cache.getMetrics().tier, 'cache')
  }
  await cache.shutdown()
})

test('a burst of 1,000 writes coalesces into few rebuilds (one per 500 ms of burst at most), and reads stay on tier 1 throughout', async () => {
  const { cache, log } = await openWithLog('coalesce')
  const patterns = generatePatterns(1000, { dim: 4 })
  const model = new Model()
  const before = cache.getMetrics().cacheRebuildCount
  const burstStarted = performance.now()
  for (const p of patterns) {
    await cache.storePattern(p)
    model.store([p])
    // Read-your-writes on every write, from the cache file amended by the change log.
    assert.deepEqual(plain(await cache.loadPattern(p.id)), model.get(p.id))
  }
  const burstMs = performance.now() - burstStarted
  await log.next((e) => e.type === 'rebuild_finished' && e.patternCount === 1000)
  const rebuilds = log.events.filter((e) => e.type === 'rebuild_started' && e.reason === 'pattern_stored').length
  // A rebuild waits for 50 ms without writes, but never more than 500 ms: so
  // a burst gives at most one rebuild per 500 ms of it, plus the last one
  // (the bound follows the burst's length, so a slow machine does not fail it).
  const most = 2 + Math.floor(burstMs / 500)
  assert.ok(rebuilds >= 1 && rebuilds <= most, `${rebuilds} rebuilds in a burst of ${burstMs.toFixed(0)} ms (at most ${most})`)
  assert.equal(cache.getMetrics().cacheRebuildCount - before, rebuilds)
  const m = cache.getMetrics()
  assert.equal(m.cacheMisses, 0, 'no read went to SQLite')
  assert.deepEqual((await cache.query({})).map(plain), model.query({}))
  await cache.shutdown()
})

test('while a rebuild is pending, index queries merge the change log with the file, in id order', async () => {
  const { cache } = await openWithLog('merge', { backgroundRebuild: false })
  const patterns = generatePatterns(200, { dim: 4 })
  await cache.storePatterns(patterns)
  await cache.rebuildCache()
  const model = new Model()
  model.store(patterns)
  // Changes the file does not have: new ids between old ones, updates that
  // move patterns across domains, deletions.
  const added = generatePatterns(30, { dim: 4, seed: 9, prefix: 'pat-000050x' })
  const moved = patterns.slice(60, 70).map((p) => ({ ...p, domain: 'auth', type: 'e2e', content: 'moved' }))
  await cache.storePatterns([...added, ...moved])
  model.store([...added, ...moved])
  for (const p of patterns.slice(100, 110)) {
    await cache.deletePattern(p.id)
    model.byId.delete(p.id)
  }
  for (const f of [{}, { domain: 'auth' }, { type: 'e2e' }, { domain: 'auth', type: 'e2e' }, { framework: 'jest', limit: 7 }, { limit: 3 }]) {
    assert.deepEqual((await cache.query(f)).map(plain), model.query(f), JSON.stringify(f))
  }
  assert.deepEqual((await cache.loadPatternsByDomain('auth')).map(plain), model.query({ domain: 'auth' }))
  const m = cache.getMetrics()
  assert.equal(m.tier, 'cache')
  assert.equal(m.cacheMisses, 0)
  await cache.shutdown()
})

test('backgroundRebuild: false — only rebuildCache() rebuilds', async () => {
  const { cache, log } = await openWithLog('no-background', { backgroundRebuild: false, maxAge: 50 })
  await cache.storePatterns(generatePatterns(20, { dim: 4 }))
  cache.markStale({ trigger: 'manual', requiresRebuild: true })
  // Time is the contract here: with background rebuilds on, maxAge 50 would
  // have rebuilt (ttl_expired, pattern_stored, manual) within this window.
  await new Promise((resolve) => setTimeout(resolve, 300))
  const finished = log.next((e) => e.type === 'rebuild_finished')
  const built = await cache.rebuildCache()
  await finished
  assert.equal(built.success, true)
  const reasons = log.events.filter((e) => e.type === 'rebuild_started').map((e) => 'reason' in e && e.reason)
  assert.deepEqual(reasons, ['startup', 'manual'])
  await cache.shutdown()
})

test("another process's writes show on the next read (checkInterval: 0) and after checkInterval", async () => {
  for (const checkInterval of [0, 150]) {
    const { cache, dbPath } = await openWithLog(`cross-${checkInterval}`, { checkInterval })
    await cache.storePatterns(generatePatterns(20, { dim: 4 }))
    assert.equal(await cache.loadPattern('from-child'), null)
    const script = `
      const { PatternCache } = require(${JSON.stringify(ROOT)})
      PatternCache.open({ dbPath: ${JSON.stringify(dbPath)}, backgroundRebuild: false }).then(async (c) => {
        await c.storePattern({ id: 'from-child', type: 'unit', domain: 'auth', content: 'child', embedding: [1, 2, 3, 4] })
        await c.deletePattern('pat-000010')
        await c.shutdown()
      })`
    execFileSync(process.execPath, ['-e', script])
    // The contract is about time here: a check happens at most every checkInterval.
    if (checkInterval) await new Promise((resolve) => setTimeout(resolve, checkInterval + 50))
    assert.equal((await cache.loadPattern('from-child'))?.content, 'child', `checkInterval ${checkInterval}`)
    assert.equal(await cache.loadPattern('pat-000010'), null)
    assert.ok((await cache.loadPatternsByDomain('auth')).some((p) => p.id === 'from-child'))
    await cache.shutdown()
  }
})

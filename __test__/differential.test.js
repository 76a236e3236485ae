// @ts-check
'use strict'
// Every query gives identical results from tier 1 (the cache file), from
// tier 2 (cache disabled, SQLite only) and from a plain in-memory model.

const { test, before, after } = require('node:test')
const assert = require('node:assert/strict')
const path = require('node:path')
const { PatternCache } = require('../index.js')
const { generatePatterns, Model, plain, tempDir, DOMAINS, TYPES, FRAMEWORKS } = require('./helpers.js')

const COUNT = 3000
const dir = tempDir('differential')
const dbPath = path.join(dir, 'patterns.db')
const model = new Model()
/** @type {PatternCache} */ let tier1
/** @type {PatternCache} */ let tier2

before(async () => {
  const patterns = generatePatterns(COUNT, { seed: 7, dim: 32 })
  const writer = await PatternCache.open({ dbPath, enabled: false })
  // Several batches, the last overwriting some earlier ids.
  await writer.storePatterns(patterns.slice(0, 2000))
  await writer.storePatterns(patterns.slice(2000))
  const rewritten = generatePatterns(100, { seed: 99, dim: 32 }).map((p, i) => ({ ...p, id: patterns[i * 7].id }))
  await writer.storePatterns(rewritten)
  await writer.shutdown()
  model.store(patterns)
  model.store(rewritten)

  tier1 = await PatternCache.open({ dbPath })
  tier2 = await PatternCache.open({ dbPath, enabled: false })
})

after(async () => {
  await tier1.shutdown()
  await tier2.shutdown()
})

/** @param {import('../index').StoredPattern[]} ps */
const plainAll = (ps) => ps.map(plain)

test('the cache tier is the one answering', () => {
  const m = tier1.getMetrics()
  assert.equal(m.tier, 'cache')
  assert.equal(m.patternCount, COUNT)
  assert.equal(tier2.getMetrics().tier, 'sqlite')
})

test('loadPattern: every id, plus missing ones', async () => {
  for (const id of [...model.byId.keys(), 'missing', 'pat-999999']) {
    const [a, b] = await Promise.all([tier1.loadPattern(id), tier2.loadPattern(id)])
    assert.deepEqual(plain(a), model.get(id), `tier 1, id ${id}`)
    assert.deepEqual(plain(b), model.get(id), `tier 2, id ${id}`)
  }
})

test('loadPatterns keeps the order asked for, with nulls', async () => {
  const ids = ['pat-000010', 'nope', '\u{1f600}-emoji', 'pat-000003', 'pat-000010']
  const expected = ids.map((id) => model.get(id))
  assert.deepEqual((await tier1.loadPatterns(ids)).map(plain), expected)
  assert.deepEqual((await tier2.loadPatterns(ids)).map(plain), expected)
  assert.deepEqual(await tier1.loadPatterns([]), [])
})

test('by domain, type and framework, ordered by UTF-8 bytes', async () => {
  const cases = [
    ...DOMAINS.map((d) => /** @type {const} */ (['loadPatternsByDomain', { domain: d }, d])),
    ...TYPES.map((t) => /** @type {const} */ (['loadPatternsByType', { type: t }, t])),
    ...[...FRAMEWORKS, 'unknown'].map((f) => /** @type {const} */ (['loadPatternsByFramework', { framework: f }, f])),
    /** @type {const} */ (['loadPatternsByDomain', { domain: 'no-such-domain' }, 'no-such-domain']),
  ]
  for (const [method, filter, name] of cases) {
    const expected = model.query(filter)
    const [a, b] = await Promise.all([tier1[method](name), tier2[method](name)])
    assert.deepEqual(plainAll(a), expected, `tier 1 ${method}(${name})`)
    assert.deepEqual(plainAll(b), expected, `tier 2 ${method}(${name})`)
  }
})

test('query: every combination of fields, with and without limit', async () => {
  /** @type {Array<import('../index').PatternFilter>} */
  const filters = [{}, { limit: 0 }, { limit: 5 }]
  for (const domain of [undefined, ...DOMAINS.slice(0, 4)]) {
    for (const type of [undefined, 'unit', 'e2e']) {
      for (const framework of [undefined, 'jest', 'unknown']) {
        for (const limit of [undefined, 3]) {
          /** @type {import('../index').PatternFilter} */
          const f = {}
          if (domain !== undefined) f.domain = domain
          if (type !== undefined) f.type = type
          if (framework !== undefined) f.framework = framework
          if (limit !== undefined) f.limit = limit
          filters.push(f)
        }
      }
    }
  }
  for (const f of filters) {
    const expected = model.query(f)
    assert.deepEqual(plainAll(await tier1.query(f)), expected, `tier 1 ${JSON.stringify(f)}`)
    assert.deepEqual(plainAll(await tier2.query(f)), expected, `tier 2 ${JSON.stringify(f)}`)
  }
})

test('the reads above were cache hits on tier 1 and SQLite reads on tier 2', () => {
  const m1 = tier1.getMetrics()
  assert.equal(m1.cacheMisses, 0)
  assert.ok(m1.cacheHits > COUNT)
  assert.equal(m1.cacheHitRate, 1)
  const m2 = tier2.getMetrics()
  assert.equal(m2.cacheHits, 0)
  assert.ok(m2.cacheMisses > COUNT)
})

test('read-your-writes: a write is visible at once, then the rebuild serves it from the cache', async () => {
  const [p] = generatePatterns(1, { seed: 5, dim: 32, prefix: 'new' })
  await tier1.storePattern(p)
  model.store([p])
  assert.deepEqual(plain(await tier1.loadPattern(p.id)), model.get(p.id))
  assert.deepEqual(plainAll(await tier1.loadPatternsByDomain(p.domain)), model.query({ domain: p.domain }))
  assert.equal(await tier1.deletePattern(p.id), true)
  model.byId.delete(p.id)
  assert.equal(await tier1.loadPattern(p.id), null)
  assert.equal(await tier1.deletePattern(p.id), false)

  const built = await tier1.rebuildCache()
  assert.equal(built.success, true)
  assert.equal(built.patternCount, COUNT)
  assert.equal(tier1.getMetrics().tier, 'cache')
  const hits = tier1.getMetrics().cacheHits
  assert.deepEqual(plainAll(await tier1.query({})), model.query({}))
  assert.equal(tier1.getMetrics().cacheHits, hits + 1)
})

test('agent configs round trip on both tiers', async () => {
  const entry = { agentId: 'agent-1', type: 'planner', configJson: '{"depth": 3, "tools": ["a"]}', version: '1.2.0', updatedAt: 1_760_000_000_000 }
  await tier1.storeAgentConfig(entry)
  assert.deepEqual(await tier1.loadAgentConfig('agent-1'), entry)
  assert.deepEqual(await tier2.loadAgentConfig('agent-1'), entry)
  await tier1.rebuildCache()
  assert.deepEqual(await tier1.loadAgentConfig('agent-1'), entry)
  assert.equal(await tier1.loadAgentConfig('agent-2'), null)
  assert.equal(tier1.getMetrics().tier, 'cache')
})

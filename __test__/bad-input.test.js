// @ts-check
'use strict'
// Each kind of bad input is rejected with its stable code and changes
// nothing: the database afterwards holds exactly what it held before.

const { test, before, after } = require('node:test')
const assert = require('node:assert/strict')
const path = require('node:path')
const { PatternCache, PatternCacheError, ERROR_CODES } = require('../index.js')
const { generatePatterns, plain, tempDir } = require('./helpers.js')

const dir = tempDir('bad-input')
const dbPath = path.join(dir, 'patterns.db')
/** @type {PatternCache} */ let cache
/** @type {unknown} */ let snapshot

/** Everything the database holds, from SQLite itself. */
async function contents() {
  const direct = await PatternCache.open({ dbPath, enabled: false })
  try {
    return {
      patterns: (await direct.query({})).map(plain),
      config: await direct.loadAgentConfig('agent'),
    }
  } finally {
    await direct.shutdown()
  }
}

before(async () => {
  cache = await PatternCache.open({ dbPath })
  await cache.storePatterns(generatePatterns(50, { dim: 8 }))
  await cache.storeAgentConfig({ agentId: 'agent', type: 't', configJson: '{}', version: '1', updatedAt: 1 })
  snapshot = await contents()
})

after(() => cache.shutdown())

/** @param {Promise<unknown>} promise @param {string} code @param {string} what */
async function rejectsWith(promise, code, what) {
  await assert.rejects(promise, (/** @type {unknown} */ e) => {
    assert.ok(e instanceof Error, `${what}: an Error`)
    const { code: got } = /** @type {Error & { code: import('../index').ErrorCode }} */ (e)
    assert.equal(got, code, `${what}: ${e.message}`)
    assert.ok(ERROR_CODES.includes(got))
    return true
  })
}

const valid = () => ({ id: 'new-one', type: 'unit', domain: 'auth', content: 'c', embedding: [1, 2, 3, 4, 5, 6, 7, 8] })
/** @type {Array<[string, (p: Record<string, any>) => unknown]>} */
const badPatterns = [
  ['not an object', () => 'pattern'],
  ['null', () => null],
  ['an array', () => [valid()]],
  ['id missing', (p) => ({ ...p, id: undefined })],
  ['id empty', (p) => ({ ...p, id: '' })],
  ['id a number', (p) => ({ ...p, id: 42 })],
  ['id with NUL', (p) => ({ ...p, id: 'a\0b' })],
  ['id too long', (p) => ({ ...p, id: 'x'.repeat(2000) })],
  ['id with a lone surrogate (would be stored as U+FFFD)', (p) => ({ ...p, id: 'lone-\ud800' })],
  ['domain with a lone surrogate', (p) => ({ ...p, domain: 'd\udc00' })],
  ['type missing', (p) => ({ ...p, type: undefined })],
  ['domain empty', (p) => ({ ...p, domain: '' })],
  ['framework empty', (p) => ({ ...p, framework: '' })],
  ['framework a number', (p) => ({ ...p, framework: 1 })],
  ['content a number', (p) => ({ ...p, content: 7 })],
  ['content over 1 MiB', (p) => ({ ...p, content: 'x'.repeat((1 << 20) + 1) })],
  ['embedding a string', (p) => ({ ...p, embedding: 'abc' })],
  ['embedding a Float64Array', (p) => ({ ...p, embedding: new Float64Array(8) })],
  ['embedding empty', (p) => ({ ...p, embedding: [] })],
  ['embedding with NaN', (p) => ({ ...p, embedding: [1, 2, 3, NaN, 5, 6, 7, 8] })],
  ['embedding with Infinity', (p) => ({ ...p, embedding: Float32Array.from([1, 2, 3, Infinity, 5, 6, 7, 8]) })],
  ['embedding beyond f32 range', (p) => ({ ...p, embedding: [1e39, 2, 3, 4, 5, 6, 7, 8] })],
  ['embedding with a string element', (p) => ({ ...p, embedding: [1, '2', 3, 4, 5, 6, 7, 8] })],
  ['embedding of another dimension', (p) => ({ ...p, embedding: [1, 2, 3] })],
  ['embedding of 1,000,000 dimensions', (p) => ({ ...p, embedding: new Float32Array(1_000_000) })],
  ['coverage above 1', (p) => ({ ...p, coverage: 1.5 })],
  ['coverage NaN', (p) => ({ ...p, coverage: NaN })],
  ['coverage a string', (p) => ({ ...p, coverage: '0.5' })],
  ['flakinessScore negative', (p) => ({ ...p, flakinessScore: -0.1 })],
  ['verdict unknown word', (p) => ({ ...p, verdict: 'great' })],
  ['createdAt fractional', (p) => ({ ...p, createdAt: 1.5 })],
  ['createdAt negative', (p) => ({ ...p, createdAt: -1 })],
  ['lastUsed Infinity', (p) => ({ ...p, lastUsed: Infinity })],
  ['usageCount negative', (p) => ({ ...p, usageCount: -1 })],
  ['successCount above 2^53', (p) => ({ ...p, successCount: 2 ** 60 })],
  ['metadata an array', (p) => ({ ...p, metadata: [1] })],
  ['metadata a string', (p) => ({ ...p, metadata: '{}' })],
  ['metadata with a cycle', (p) => {
    /** @type {Record<string, unknown>} */
    const m = {}
    m.self = m
    return { ...p, metadata: m }
  }],
  ['metadata with a BigInt', (p) => ({ ...p, metadata: { n: 10n } })],
  ['metadata over 256 KiB', (p) => ({ ...p, metadata: { s: 'x'.repeat(300_000) } })],
]

test('storePattern: each bad pattern -> INVALID_PATTERN, nothing written', async () => {
  for (const [what, make] of badPatterns) {
    await rejectsWith(cache.storePattern(/** @type {any} */ (make(valid()))), 'INVALID_PATTERN', what)
  }
  assert.deepEqual(await contents(), snapshot)
})

test('storePatterns: one bad pattern in a batch of 100 writes none of them', async () => {
  for (const [what, make] of badPatterns.slice(3)) {
    const batch = generatePatterns(100, { dim: 8, prefix: 'batch' })
    batch[57] = /** @type {any} */ (make(batch[57]))
    await rejectsWith(cache.storePatterns(batch), 'INVALID_PATTERN', `batch with ${what}`)
  }
  const dup = generatePatterns(3, { dim: 8, prefix: 'dup' })
  await rejectsWith(cache.storePatterns([...dup, dup[1]]), 'INVALID_PATTERN', 'repeated id')
  await rejectsWith(cache.storePatterns(/** @type {any} */ ('x')), 'INVALID_PATTERN', 'not an array')
  assert.deepEqual(await contents(), snapshot)
})

test('storeAgentConfig: bad entries -> INVALID_AGENT_CONFIG, nothing written', async () => {
  const ok = { agentId: 'agent', type: 't', configJson: '{"changed":true}', version: '2', updatedAt: 5 }
  /** @type {Array<[string, unknown]>} */
  const cases = [
    ['not an object', 7],
    ['agentId empty', { ...ok, agentId: '' }],
    ['agentId missing', { ...ok, agentId: undefined }],
    ['configJson not JSON', { ...ok, configJson: '{nope' }],
    ['configJson an object', { ...ok, configJson: { a: 1 } }],
    ['updatedAt NaN', { ...ok, updatedAt: NaN }],
    ['updatedAt a string', { ...ok, updatedAt: '5' }],
    ['version empty', { ...ok, version: '' }],
  ]
  for (const [what, entry] of cases) {
    await rejectsWith(cache.storeAgentConfig(/** @type {any} */ (entry)), 'INVALID_AGENT_CONFIG', what)
  }
  assert.deepEqual(await contents(), snapshot)
})

test('reads and other calls: bad arguments -> INVALID_ARGUMENT', async () => {
  const c = /** @type {any} */ (cache)
  /** @type {Array<[string, () => Promise<unknown>]>} */
  const cases = [
    ['loadPattern(number)', () => c.loadPattern(5)],
    ["loadPattern('')", () => c.loadPattern('')],
    ['loadPatterns(string)', () => c.loadPatterns('x')],
    ['loadPatterns([1])', () => c.loadPatterns([1])],
    ['loadPatternsByDomain(undefined)', () => c.loadPatternsByDomain()],
    ["loadPatternsByType('')", () => c.loadPatternsByType('')],
    ['query(null)', () => c.query(null)],
    ['query({limit: -1})', () => c.query({ limit: -1 })],
    ['query({limit: 1.5})', () => c.query({ limit: 1.5 })],
    ['query({domain: 5})', () => c.query({ domain: 5 })],
    ['deletePattern({})', () => c.deletePattern({})],
    ["loadAgentConfig('')", () => c.loadAgentConfig('')],
    ['open({maxAge: -1})', () => PatternCache.open({ maxAge: -1 })],
    ['open({maxAge: NaN})', () => PatternCache.open({ maxAge: NaN })],
    ['open({checkInterval: "1"})', () => PatternCache.open(/** @type {any} */ ({ checkInterval: '1' }))],
    ['open({dbPath: 5})', () => PatternCache.open(/** @type {any} */ ({ dbPath: 5 }))],
    ["open('x')", () => PatternCache.open(/** @type {any} */ ('x'))],
    ['open({onEvent: 1})', () => PatternCache.open(/** @type {any} */ ({ onEvent: 1 }))],
    ["loadPattern('\\ud800') (a lone surrogate)", () => c.loadPattern('lone-\ud800')],
    ['open({cachePath: <db>-wal}) (would overwrite the WAL)', () => PatternCache.open({ dbPath, cachePath: `${dbPath}-wal` })],
    ['open({dbPath: <cache>.bak}) (a rebuild would replace it)', () => PatternCache.open({ dbPath: `${dbPath}.pcache.bak`, cachePath: `${dbPath}.pcache` })],
  ]
  for (const [what, call] of cases) await rejectsWith(call(), 'INVALID_ARGUMENT', what)
  for (const event of [null, { trigger: 'nope', requiresRebuild: true }, { trigger: 'manual' }, { trigger: 'manual', requiresRebuild: true, timestamp: 'x' }]) {
    assert.throws(() => c.markStale(event), (/** @type {any} */ e) => e.code === 'INVALID_ARGUMENT' && e instanceof PatternCacheError)
  }
  assert.deepEqual(await contents(), snapshot)
})

test('SQL-looking and unusual strings are data, stored and returned verbatim', async () => {
  const odd = ["x'); DROP TABLE patterns; --", 'Robert"); DELETE FROM agent_configs; --', '%_\\*?', '🧪 δοκιμή']
  const patterns = odd.map((s, i) => ({ id: s, type: s, domain: s, framework: s, content: s, embedding: [i, 1, 2, 3, 4, 5, 6, 7] }))
  await cache.storePatterns(patterns)
  for (const s of odd) {
    const got = await cache.loadPattern(s)
    assert.equal(got?.content, s)
    assert.deepEqual((await cache.query({ domain: s, type: s, framework: s })).map((p) => p.id), [s])
  }
  for (const s of odd) assert.equal(await cache.deletePattern(s), true)
  assert.deepEqual(await contents(), snapshot)
})

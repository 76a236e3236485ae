// @ts-check
'use strict'
// One embedding rule for patterns and search queries: a number[] element is
// taken when it is a number whose float32 is finite (NaN, ±Infinity and a
// number a Float32Array would round to ±Infinity are refused; one that rounds
// to the largest float32 is taken). Both paths apply it in the JavaScript
// layer, with their own code: INVALID_PATTERN for a pattern, INVALID_ARGUMENT
// for a query, and the same message after the path's name.

const { test, before, after } = require('node:test')
const assert = require('node:assert/strict')
const path = require('node:path')
const { PatternCache, PatternCacheError } = require('../index.js')
const { tempDir } = require('./helpers.js')

/** The largest float32. */
const FLOAT32_MAX = 3.4028234663852886e38
/** The smallest number a Float32Array turns into Infinity (2^128 - 2^103). */
const TO_INFINITY = 2 ** 128 - 2 ** 103
/** The number just below it: rounds to FLOAT32_MAX. */
const JUST_BELOW = 3.4028235677973362e38

/** @type {PatternCache} */ let cache

before(async () => {
  cache = await PatternCache.open({ dbPath: path.join(tempDir('embedding'), 'patterns.db') })
  await cache.storePattern({ id: 'base', type: 't', domain: 'd', content: 'c', embedding: [1, 0, 0, 0] })
})

after(() => cache.shutdown())

/** A vector of the database's dimension (4) with `x` at index 2. @param {number} x */
const withValue = (x) => [0.5, 1, x, 0.25]

/**
 * The JavaScript layer's refusal: a PatternCacheError with `code`, naming index 2 and the value.
 * @param {Promise<unknown>} promise @param {string} code @param {string} prefix @param {number} x
 */
async function refused(promise, code, prefix, x) {
  await assert.rejects(promise, (/** @type {any} */ e) => {
    assert.ok(e instanceof PatternCacheError, `${prefix} ${x}: refused in JavaScript (${e && e.message})`)
    assert.equal(e.code, code)
    assert.equal(e.message, `${prefix}[2] is ${x}, not a finite float32`)
    return true
  })
}

for (const x of [1e39, -1e39, NaN, Infinity, -Infinity, TO_INFINITY, -TO_INFINITY, 1e300]) {
  test(`${x} is refused as a pattern's embedding value and as a query's`, async () => {
    assert.ok(!Number.isFinite(Math.fround(x)), 'the premise: its float32 is not finite')
    await refused(cache.storePattern({ id: 'bad', type: 't', domain: 'd', content: 'c', embedding: withValue(x) }), 'INVALID_PATTERN', "pattern 'bad'.embedding", x)
    await refused(cache.storePatterns([{ id: 'bad', type: 't', domain: 'd', content: 'c', embedding: withValue(x) }]), 'INVALID_PATTERN', "patterns[0] 'bad'.embedding", x)
    await refused(cache.searchSimilar(withValue(x)), 'INVALID_ARGUMENT', 'searchSimilar: embedding', x)
    await refused(cache.searchSimilar(withValue(x), { metric: 'dot' }), 'INVALID_ARGUMENT', 'searchSimilar: embedding', x)
    assert.equal(await cache.loadPattern('bad'), null, 'nothing written')
  })
}

test('a Float32Array with NaN or ±Infinity is refused on both paths too (by the addon), with the same codes', async () => {
  for (const x of [NaN, Infinity, -Infinity]) {
    const embedding = Float32Array.from(withValue(x))
    await assert.rejects(cache.storePattern({ id: 'bad', type: 't', domain: 'd', content: 'c', embedding }), { code: 'INVALID_PATTERN' })
    await assert.rejects(cache.searchSimilar(embedding), { code: 'INVALID_ARGUMENT' })
  }
  assert.equal(await cache.loadPattern('bad'), null)
})

test('the float32 range itself is taken on both paths: ±FLOAT32_MAX and numbers that round to it', async () => {
  for (const [i, x] of [FLOAT32_MAX, -FLOAT32_MAX, 3.4028235e38, JUST_BELOW, -JUST_BELOW].entries()) {
    assert.equal(Math.abs(Math.fround(x)), FLOAT32_MAX, `the premise: ${x} rounds to ±FLOAT32_MAX`)
    const id = `edge-${i}`
    await cache.storePattern({ id, type: 't', domain: 'edge', content: 'c', embedding: withValue(x) })
    const stored = await cache.loadPattern(id)
    assert.ok(stored)
    assert.deepEqual(Array.from(stored.embedding), Array.from(Float32Array.from(withValue(x))), `${x} stored as its float32`)
    const hits = await cache.searchSimilar(withValue(x), { domain: 'edge', k: 10 })
    assert.ok(hits.some((h) => h.pattern.id === id), `a query with ${x} finds the pattern stored with it`)
  }
})

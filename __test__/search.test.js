// @ts-check
'use strict'
// searchSimilar against a float64 brute-force model (search-model.js), and
// between the tiers: the same database served from the cache file (tier 1)
// and from SQLite (tier 2, enabled: false) gives the same ids in the same
// order, each score within 1e-4 of the model's. Covers exact ties (UTF-8 id
// order), zero vectors, rare filter combinations, k beyond the matches,
// thresholds, all metrics, MMR, fresh writes and deletes (an amended cache
// file), other processes' writes, a corrupt cache file, bad input and an
// empty database. Data is random with fixed seeds.

const { test, before, after } = require('node:test')
const assert = require('node:assert/strict')
const fs = require('node:fs')
const path = require('node:path')
const { execFileSync } = require('node:child_process')
const { PatternCache, ERROR_CODES } = require('../index.js')
const { eventLog, generatePatterns, Model, plain, rng, tempDir, byteOrder, DOMAINS, TYPES, FRAMEWORKS } = require('./helpers.js')
const { checkSearch, modelSearch, rankedMatches, thresholdsIn, cosine, norm, fmt } = require('./search-model.js')

const ROOT = path.resolve(__dirname, '..')
const DIM = 32
const METRIC_NAMES = /** @type {const} */ (['cosine', 'dot', 'euclidean'])

/** @typedef {import('./search-model.js').SearchOptions} SearchOptions */
/** @typedef {import('../index').TestPattern} TestPattern */

/** A seeded vector source. @param {number} seed */
function vectors(seed) {
  const r = rng(seed)
  return (/** @type {number} */ dim = DIM, scale = 1) => Float32Array.from({ length: dim }, () => (r() * 2 - 1) * scale)
}

/** @param {Float32Array} v @param {number} f */
const scaled = (v, f) => v.map((x) => x * f)

/** @param {string} id @param {Float32Array | number[]} embedding @param {Partial<TestPattern>} [fields] @returns {TestPattern} */
function pattern(id, embedding, fields = {}) {
  return { id, type: 'unit', domain: 'auth', framework: 'jest', content: `content of ${id}`, embedding, createdAt: 1_700_000_000_000, ...fields }
}

/** The cache's answer for comparison across tiers and calls. @param {any[]} results */
const summary = (results) => results.map((r) => ({ id: r.pattern.id, score: r.score, pattern: plain(r.pattern) }))

/**
 * Searches both instances, checks each against the model and the two against each other.
 * @param {PatternCache[]} caches @param {Model} model @param {Float32Array | number[]} query @param {SearchOptions} [opts] @param {string} [label]
 */
async function checkBoth(caches, model, query, opts, label = '') {
  const answers = await Promise.all(caches.map((c) => c.searchSimilar(query, opts)))
  answers.forEach((got, i) => checkSearch(got, model, query, opts, `${label} [instance ${i}]`))
  for (let i = 1; i < answers.length; i++) {
    assert.deepEqual(
      answers[i].map((/** @type {any} */ r) => r.pattern.id),
      answers[0].map((/** @type {any} */ r) => r.pattern.id),
      `${label} ${JSON.stringify(opts)}: instance ${i} and instance 0 disagree\n  0: ${fmt(answers[0])}\n  ${i}: ${fmt(answers[i])}`,
    )
  }
  return answers[0]
}

/** Rejects (never throws) with this code. @param {() => Promise<unknown>} call @param {string} code @param {string} what */
async function rejectsWith(call, code, what) {
  /** @type {Promise<unknown>} */
  let promise
  try {
    promise = call()
  } catch (e) {
    assert.fail(`${what}: threw synchronously instead of rejecting: ${/** @type {Error} */ (e).message}`)
  }
  assert.ok(promise instanceof Promise, `${what}: did not return a promise`)
  await assert.rejects(promise, (/** @type {unknown} */ e) => {
    assert.ok(e instanceof Error, `${what}: not an Error: ${e}`)
    const got = /** @type {Error & { code: import('../index').ErrorCode }} */ (e).code
    assert.equal(got, code, `${what}: code ${got}: ${e.message}`)
    assert.ok(ERROR_CODES.includes(got))
    return true
  }, `${what}: resolved instead of rejecting`)
}

/**
 * Waits (on events, no sleeping) until the log holds an event matching pred.
 * @param {ReturnType<typeof eventLog>} log @param {(e: import('../index').CacheEvent) => boolean} pred
 */
async function eventually(log, pred) {
  if (!log.events.some(pred)) await log.next(pred)
}

// ---------------------------------------------------------------------------
// Database A: 2,000 patterns x 32 dimensions, with planted ties, zero vectors
// and rare filter combinations. Opened on both tiers for most tests.

const dirA = tempDir('search')
const dbA = path.join(dirA, 'patterns.db')
const modelA = new Model()
const vecA = vectors(4242)
/** The embedding shared by the duplicates. */
const V1 = vecA()
/** The embedding shared by a second group of duplicates, spread over domains. */
const V2 = vecA()
// UTF-8 order: Z < a < zz < é < U+E000 < U+FF5A < U+1F600; JavaScript's sort() puts U+1F600 (a surrogate pair) before U+E000 and U+FF5A.
const DUP_IDS = ['dup-\u{1f600}', 'dup-\uff5a', 'dup-\ue000', 'dup-é', 'dup-zz', 'dup-a', 'dup-Z']
const TWIN_IDS = ['twin-\u{1f600}', 'twin-\uff5a', 'twin-a', 'twin-\u{10400}']
const ZERO_IDS = ['zero-\u{1f600}', 'zero-\uff5a', 'zero-a', 'zero-b']
/** @type {PatternCache} */ let tier1
/** @type {PatternCache} */ let tier2
const log1 = eventLog()

/** The planted patterns of database A. */
function plantedA() {
  const zero = new Float32Array(DIM)
  return [
    // Exact duplicates of V1 in one filter cell (auth/unit/jest), and copies scaled by 2 and 1/2 (exact cosine ties, distinct dot and distance).
    ...DUP_IDS.map((id) => pattern(id, V1.slice())),
    pattern('scaled-x2', scaled(V1, 2)),
    pattern('scaled-half', Array.from(scaled(V1, 0.5))),
    // Duplicates of V2 in different cells.
    ...TWIN_IDS.map((id, i) => pattern(id, Array.from(V2), { domain: DOMAINS[i], type: TYPES[i], framework: FRAMEWORKS[i] })),
    // Zero vectors: in auth/unit/jest, in other cells, and without a framework.
    pattern(ZERO_IDS[0], zero.slice()),
    pattern(ZERO_IDS[1], zero.slice()),
    pattern(ZERO_IDS[2], Array.from(zero), { domain: 'payments', type: 'e2e', framework: 'vitest' }),
    pattern(ZERO_IDS[3], zero.slice(), { domain: 'payments', type: 'e2e', framework: undefined }),
    // Rare cells: rare/unit/jest has 1, rare/e2e/vitest 3, rare/e2e/(unknown) 2 (one zero); rare/unit/mocha none.
    pattern('rare-one', vecA(), { domain: 'rare', type: 'unit', framework: 'jest' }),
    pattern('rare-few-1', vecA(), { domain: 'rare', type: 'e2e', framework: 'vitest' }),
    pattern('rare-few-2', vecA(), { domain: 'rare', type: 'e2e', framework: 'vitest' }),
    pattern('rare-few-\u{1f600}', vecA(), { domain: 'rare', type: 'e2e', framework: 'vitest' }),
    pattern('rare-nofw', vecA(), { domain: 'rare', type: 'e2e', framework: undefined }),
    pattern('rare-nofw-zero', zero.slice(), { domain: 'rare', type: 'e2e', framework: undefined }),
    pattern('rare-mocha-other-type', vecA(), { domain: 'rare', type: 'contract', framework: 'mocha' }),
  ]
}

/** Filters of every kind, with the cells of database A that match 0, 1 and a few patterns. */
function filtersA() {
  /** @type {SearchOptions[]} */
  const filters = [
    {},
    { domain: 'auth' },
    { type: 'e2e' },
    { framework: 'unknown' },
    { domain: '検索', type: 'unit' },
    { domain: 'домен', framework: 'cypress' },
    { domain: 'auth', type: 'unit', framework: 'jest' },
    { domain: 'rare' },
    { domain: 'rare', type: 'unit', framework: 'jest' },
    { domain: 'rare', type: 'e2e', framework: 'vitest' },
    { domain: 'rare', type: 'e2e', framework: 'unknown' },
    { domain: 'rare', type: 'unit', framework: 'mocha' },
    { domain: 'no-such-domain' },
    { type: 'no-such-type', framework: 'jest' },
  ]
  // Cells of the random data with 0, 1 and 2..4 patterns (each field existing on its own).
  const counts = new Map()
  for (const p of modelA.byId.values()) {
    const key = JSON.stringify([p.domain, p.type, p.framework])
    counts.set(key, (counts.get(key) ?? 0) + 1)
  }
  const want = { 0: 2, 1: 2, few: 2 }
  for (const domain of DOMAINS) {
    for (const type of TYPES) {
      for (const framework of [...FRAMEWORKS, 'unknown']) {
        const n = counts.get(JSON.stringify([domain, type, framework])) ?? 0
        const bucket = n === 0 ? 0 : n === 1 ? 1 : n <= 4 ? 'few' : null
        if (bucket !== null && want[bucket] > 0) {
          want[bucket]--
          filters.push({ domain, type, framework })
        }
      }
    }
  }
  assert.deepEqual(want, { 0: 0, 1: 0, few: 0 }, 'the random data has cells of 0, 1 and a few patterns')
  return filters
}

/** Queries against database A: random, at the duplicates, opposite them, at a stored pattern, large. */
function queriesA() {
  const v = vectors(777)
  const noise = v()
  return {
    'random 1': v(),
    'random 2': v(),
    'random 3': v(),
    'V1 exactly': V1,
    'V1 + noise': V1.map((x, i) => x + 0.05 * noise[i]),
    '-V1': scaled(V1, -1),
    'V2 exactly': V2,
    'large (x3)': v(DIM, 3),
  }
}

before(async () => {
  const base = generatePatterns(1950, { seed: 11, dim: DIM })
  const planted = plantedA()
  const rewritten = generatePatterns(60, { seed: 12, dim: DIM }).map((p, i) => ({ ...p, id: base[i * 31].id }))
  const writer = await PatternCache.open({ dbPath: dbA, enabled: false })
  await writer.storePatterns(base.slice(0, 1000))
  await writer.storePatterns([...base.slice(1000), ...planted])
  await writer.storePatterns(rewritten) // updates: new embeddings, domains and types
  await writer.shutdown()
  modelA.store(base)
  modelA.store(planted)
  modelA.store(rewritten)

  tier1 = await PatternCache.open({ dbPath: dbA, onEvent: log1.onEvent })
  tier2 = await PatternCache.open({ dbPath: dbA, enabled: false })
})

after(async () => {
  await tier1.shutdown()
  await tier2.shutdown()
})

test('setup: tier 1 is the cache file, tier 2 SQLite, and the planted data is meaningful', () => {
  assert.equal(typeof PatternCache.prototype.searchSimilar, 'function')
  assert.equal(tier1.getMetrics().tier, 'cache')
  assert.equal(tier1.getMetrics().patternCount, modelA.byId.size)
  assert.equal(tier2.getMetrics().tier, 'sqlite')
  // The id orders differ: otherwise the tie tests would not tell UTF-8 from UTF-16 order.
  const bytes = [...DUP_IDS].sort(byteOrder)
  const js = [...DUP_IDS].sort()
  assert.notDeepEqual(bytes, js)
  assert.deepEqual(bytes, ['dup-Z', 'dup-a', 'dup-zz', 'dup-é', 'dup-\ue000', 'dup-\uff5a', 'dup-\u{1f600}'])
})

test('defaults: k 10, metric cosine, mmrLambda 0.5', async () => {
  const q = queriesA()['random 1']
  for (const c of [tier1, tier2]) {
    const plainDefault = summary(await c.searchSimilar(q))
    assert.equal(plainDefault.length, 10)
    assert.deepEqual(plainDefault, summary(await c.searchSimilar(q, {})))
    assert.deepEqual(plainDefault, summary(await c.searchSimilar(q, { k: 10, metric: 'cosine' })))
    assert.deepEqual(plainDefault, summary(await c.searchSimilar(q, { useMMR: false, mmrLambda: 0.9 })))
    const mmrDefault = summary(await c.searchSimilar(q, { useMMR: true }))
    assert.deepEqual(mmrDefault, summary(await c.searchSimilar(q, { useMMR: true, mmrLambda: 0.5, k: 10, metric: 'cosine' })))
    checkSearch(await c.searchSimilar(q), modelA, q, {}, 'default')
    checkSearch(await c.searchSimilar(q, { useMMR: true }), modelA, q, { useMMR: true }, 'default MMR')
  }
})

test('all three metrics x every filter kind x k: both tiers equal the model', async () => {
  const filters = filtersA()
  let searches = 0
  for (const [name, q] of Object.entries(queriesA())) {
    for (const metric of METRIC_NAMES) {
      for (const filter of filters) {
        for (const k of [undefined, 1, 7, 1000]) {
          /** @type {SearchOptions} */
          const opts = { ...filter, metric }
          if (k !== undefined) opts.k = k
          await checkBoth([tier1, tier2], modelA, q, opts, `query ${name}`)
          searches++
        }
      }
    }
  }
  assert.ok(searches > 1000)
})

test('exact ties: duplicate embeddings come in UTF-8 byte order of their ids, on both tiers', async () => {
  const cell = { domain: 'auth', type: 'unit', framework: 'jest' }
  const dupsInByteOrder = [...DUP_IDS].sort(byteOrder)
  // Cosine at V1: the 7 duplicates and both scaled copies tie at 1 (scaling by a power of two is exact).
  const cosineTies = [...DUP_IDS, 'scaled-x2', 'scaled-half'].sort(byteOrder)
  for (const c of [tier1, tier2]) {
    const got = await c.searchSimilar(V1, { ...cell, k: 9 })
    assert.deepEqual(got.map((r) => r.pattern.id), cosineTies)
    for (const r of got) assert.ok(Math.abs(r.score - 1) <= 1e-4, `${r.pattern.id}: ${r.score}`)
    // Without the filter the same 9 lead.
    assert.deepEqual((await c.searchSimilar(V1, { k: 9 })).map((r) => r.pattern.id), cosineTies)
    // Dot: 2|V1|^2, then the duplicates (|V1|^2) by id; the half copy is further down.
    const dotIds = (await c.searchSimilar(V1, { ...cell, k: 8, metric: 'dot' })).map((r) => r.pattern.id)
    assert.deepEqual(dotIds, ['scaled-x2', ...dupsInByteOrder])
    // Euclidean: the duplicates at distance 0, by id, then the half copy at |V1|/2.
    const euc = await c.searchSimilar(V1, { ...cell, k: 8, metric: 'euclidean' })
    assert.deepEqual(euc.map((r) => r.pattern.id), [...dupsInByteOrder, 'scaled-half'])
    for (const r of euc.slice(0, 7)) assert.ok(Math.abs(r.score) <= 1e-4)
    assert.ok(Math.abs(euc[7].score - norm(Array.from(V1)) / 2) <= 1e-4)
    // Opposite the duplicates, under cosine, with every cell match: they come last, still in id order.
    const all = await c.searchSimilar(scaled(V1, -1), { ...cell, k: 1000 })
    assert.deepEqual(all.slice(-9).map((r) => r.pattern.id), cosineTies)
    // Twins of V2 across cells.
    assert.deepEqual((await c.searchSimilar(V2, { k: 4 })).map((r) => r.pattern.id), [...TWIN_IDS].sort(byteOrder))
    // A zero query under dot: every score is 0, so the first k ids in byte order, across the whole store.
    const zeroDot = await c.searchSimilar(new Float32Array(DIM), { metric: 'dot', k: 50 })
    assert.deepEqual(zeroDot.map((r) => r.pattern.id), [...modelA.byId.keys()].sort(byteOrder).slice(0, 50))
    for (const r of zeroDot) assert.equal(Math.abs(r.score), 0)
    checkSearch(zeroDot, modelA, new Float32Array(DIM), { metric: 'dot', k: 50 }, 'zero query, dot')
  }
  // Under a zero query, euclidean distances are the norms: the zero vectors first, by id.
  const zeroEuc = await checkBoth([tier1, tier2], modelA, new Float32Array(DIM), { metric: 'euclidean', k: 20 }, 'zero query, euclidean')
  assert.deepEqual(zeroEuc.slice(0, 5).map((/** @type {any} */ r) => r.pattern.id), [...ZERO_IDS, 'rare-nofw-zero'].sort(byteOrder))
})

test('zero stored vectors have cosine 0 with everything (and dot 0, distance |q|)', async () => {
  const q = queriesA()['random 2']
  const cell = { domain: 'auth', type: 'unit', framework: 'jest' }
  for (const c of [tier1, tier2]) {
    const all = await c.searchSimilar(q, { ...cell, k: 1000 })
    const zeros = all.filter((r) => r.pattern.id.startsWith('zero-'))
    assert.deepEqual(zeros.map((r) => r.pattern.id), ['zero-\uff5a', 'zero-\u{1f600}'])
    for (const r of zeros) assert.ok(Math.abs(r.score) <= 1e-4 && Number.isFinite(r.score), `${r.pattern.id}: ${r.score}`)
    // They sit between the positive and the negative cosines, adjacent.
    const at = all.findIndex((r) => r.pattern.id.startsWith('zero-'))
    assert.ok(all.slice(0, at).every((r) => r.score >= 0) && all.slice(at + 2).every((r) => r.score <= 0))
    // The cell of nothing but a zero vector and one other.
    const rare = await c.searchSimilar(q, { domain: 'rare', type: 'e2e', framework: 'unknown', k: 5 })
    assert.equal(rare.length, 2)
    const z = rare.find((r) => r.pattern.id === 'rare-nofw-zero')
    assert.ok(z && Math.abs(z.score) <= 1e-4)
    const dotZero = (await c.searchSimilar(q, { domain: 'payments', type: 'e2e', framework: 'unknown', metric: 'dot', k: 1000 })).find((r) => r.pattern.id === 'zero-b')
    assert.ok(dotZero && Math.abs(dotZero.score) <= 1e-4)
    const eucZero = (await c.searchSimilar(q, { domain: 'payments', type: 'e2e', framework: 'vitest', metric: 'euclidean', k: 1000 })).find((r) => r.pattern.id === 'zero-a')
    assert.ok(eucZero && Math.abs(eucZero.score - norm(Array.from(q))) <= 1e-4)
  }
  for (const metric of METRIC_NAMES) {
    for (const useMMR of [false, true]) {
      await checkBoth([tier1, tier2], modelA, q, { domain: 'payments', type: 'e2e', metric, useMMR, k: 1000 }, 'zero vectors')
    }
  }
})

test('rare filter combinations: 0, 1 and a few matches; k beyond the matches returns them all', async () => {
  const q = queriesA()['random 3']
  for (const c of [tier1, tier2]) {
    assert.deepEqual(await c.searchSimilar(q, { domain: 'rare', type: 'unit', framework: 'mocha' }), [])
    assert.deepEqual(await c.searchSimilar(q, { domain: 'no-such-domain', k: 1000 }), [])
    assert.deepEqual(await c.searchSimilar(q, { domain: 'rare', type: 'unit', framework: 'mocha', useMMR: true }), [])
    const one = await c.searchSimilar(q, { domain: 'rare', type: 'unit', framework: 'jest', k: 1000 })
    assert.deepEqual(one.map((r) => r.pattern.id), ['rare-one'])
    assert.ok(Math.abs(one[0].score - cosine(Array.from(q), modelA.byId.get('rare-one')?.embedding ?? [])) <= 1e-4)
    const few = await c.searchSimilar(q, { domain: 'rare', type: 'e2e', framework: 'vitest', k: 10 })
    assert.deepEqual(few.map((r) => r.pattern.id).sort(byteOrder), ['rare-few-1', 'rare-few-2', 'rare-few-\u{1f600}'])
    assert.equal((await c.searchSimilar(q, { domain: 'rare', k: 1000 })).length, 7)
    // Filters apply before ranking: k results whenever k patterns match.
    for (const domain of DOMAINS) {
      const n = modelA.query({ domain, type: 'e2e' }).length
      assert.equal((await c.searchSimilar(q, { domain, type: 'e2e', k: 1000 })).length, n, domain)
      assert.equal((await c.searchSimilar(q, { domain, type: 'e2e', k: 5 })).length, Math.min(5, n), domain)
    }
    assert.equal((await c.searchSimilar(q, { k: 1000 })).length, 1000)
  }
  for (const metric of METRIC_NAMES) {
    for (const filter of filtersA().filter((f) => f.domain === 'rare' || f.framework !== undefined)) {
      for (const useMMR of [false, true]) {
        await checkBoth([tier1, tier2], modelA, q, { ...filter, metric, useMMR, k: 1000 }, 'rare')
      }
    }
  }
})

test('thresholds: cosine and dot keep score >= threshold, euclidean distance <= threshold', async () => {
  const queries = queriesA()
  for (const [name, q] of Object.entries(queries)) {
    for (const metric of METRIC_NAMES) {
      for (const filter of [{}, { domain: 'auth' }, { domain: 'auth', type: 'unit', framework: 'jest' }, { type: 'property', framework: 'unknown' }]) {
        const all = rankedMatches(modelA, q, { ...filter, metric })
        const higher = metric !== 'euclidean'
        const ts = thresholdsIn(all, [0, 0.01, 0.1, 0.5, 0.9])
        // One that nothing passes, one that everything passes.
        ts.push(higher ? all[0].score + 1 : all[0].score / 2)
        ts.push(higher ? /** @type {any} */ (all.at(-1)).score - 1 : /** @type {any} */ (all.at(-1)).score + 1)
        for (const threshold of ts) {
          for (const k of [undefined, 5, 1000]) {
            /** @type {SearchOptions} */
            const opts = { ...filter, metric, threshold }
            if (k !== undefined) opts.k = k
            const got = await checkBoth([tier1, tier2], modelA, q, opts, `threshold, query ${name}`)
            for (const r of got) assert.ok(higher ? r.score >= threshold : r.score <= threshold, `${metric} ${threshold}: ${r.score}`)
          }
          await checkBoth([tier1, tier2], modelA, q, { ...filter, metric, threshold, useMMR: true, k: 8 }, `threshold MMR, query ${name}`)
        }
      }
    }
  }
  // At V1, cosine threshold 0.999 keeps exactly the 9 tied copies (k results whenever k pass).
  for (const c of [tier1, tier2]) {
    const got = await c.searchSimilar(V1, { threshold: 0.999, k: 1000 })
    assert.deepEqual(got.map((r) => r.pattern.id), [...DUP_IDS, 'scaled-x2', 'scaled-half'].sort(byteOrder))
    assert.deepEqual((await c.searchSimilar(V1, { threshold: 0.001, metric: 'euclidean', k: 1000 })).map((r) => r.pattern.id), [...DUP_IDS].sort(byteOrder))
  }
})

test('MMR with lambda 0, 0.25, 0.5, 1 on every metric: both tiers equal the model', async () => {
  const queries = queriesA()
  // A query equal to a stored vector makes lambda 0.5 tie every candidate at 0 after the first pick
  // (cos(q, p) - cos(p, first) = 0) up to rounding: left out at 0.5, kept at the other lambdas.
  const atStored = new Set(['V1 exactly', 'V2 exactly', '-V1'])
  for (const [name, q] of Object.entries(queries)) {
    for (const metric of METRIC_NAMES) {
      for (const mmrLambda of [0, 0.25, 0.5, 1]) {
        if (mmrLambda === 0.5 && atStored.has(name)) continue
        for (const filter of [{}, { domain: 'auth' }, { domain: 'auth', type: 'unit', framework: 'jest' }, { domain: 'rare' }, { type: 'e2e', framework: 'unknown' }]) {
          for (const k of [1, 5, 12, 40]) {
            await checkBoth([tier1, tier2], modelA, q, { ...filter, metric, useMMR: true, mmrLambda, k }, `MMR, query ${name}`)
          }
        }
      }
    }
  }
})

test('MMR: lambda 1 under cosine is the plain ranking; duplicates are pushed back at lambda 0.5', async () => {
  const q = queriesA()['V1 + noise']
  for (const c of [tier1, tier2]) {
    for (const k of [1, 10, 30]) {
      const plainIds = (await c.searchSimilar(q, { k })).map((r) => r.pattern.id)
      assert.deepEqual((await c.searchSimilar(q, { k, useMMR: true, mmrLambda: 1 })).map((r) => r.pattern.id), plainIds)
    }
    // Plain ranking: the 9 copies of V1 lead. MMR at 0.5: the first pick is one of them, and the next picks
    // are not copies (a copy has objective 0.5 cos(q, V1) - 0.5 <= 0 while an unrelated pattern scores higher).
    const plainTop = (await c.searchSimilar(q, { k: 9 })).map((r) => r.pattern.id)
    assert.deepEqual(plainTop.sort(byteOrder), [...DUP_IDS, 'scaled-x2', 'scaled-half'].sort(byteOrder))
    const diverse = await c.searchSimilar(q, { k: 5, useMMR: true })
    const copies = new Set([...DUP_IDS, 'scaled-x2', 'scaled-half'])
    assert.ok(copies.has(diverse[0].pattern.id))
    assert.ok(diverse.slice(1).every((r) => !copies.has(r.pattern.id)), diverse.map((r) => r.pattern.id).join(', '))
    // Each result's score is still the metric's score.
    for (const r of diverse) assert.ok(Math.abs(r.score - cosine(Array.from(q), r.pattern.embedding)) <= 1e-4)
    const dotMMR = await c.searchSimilar(q, { k: 5, useMMR: true, metric: 'dot' })
    for (const r of dotMMR) assert.ok(Math.abs(r.score - Array.from(q).reduce((s, x, i) => s + x * r.pattern.embedding[i], 0)) <= 1e-4)
    // Lambda 0: relevance has no weight; the first pick is the smallest id of the 3k candidates.
    const zeroLambda = await c.searchSimilar(q, { k: 4, useMMR: true, mmrLambda: 0 })
    const cands = modelSearch(modelA, q, { k: 12 }).map((m) => m.id)
    assert.equal(zeroLambda[0].pattern.id, [...cands].sort(byteOrder)[0])
  }
})

test('MMR, lambda 0: every candidate ties at 0 for the first pick (whatever the sign of its relevance), so the smallest id', async () => {
  const dir = tempDir('search-mmr0')
  const dbPath = path.join(dir, 'p.db')
  const w = await PatternCache.open({ dbPath })
  // Relevance to [1, 0.1]: a -0.995, b 0.995, c 0.0995. With lambda 0: a (tie at 0, smallest id), then
  // b (redundancy with a: -1, objective 1) before c (redundancy 0, objective 0).
  await w.storePatterns([pattern('a', [-1, 0]), pattern('b', [1, 0]), pattern('c', [0, 1])])
  const t1 = await PatternCache.open({ dbPath })
  const t2 = await PatternCache.open({ dbPath, enabled: false })
  for (const [tier, c] of /** @type {const} */ ([['tier 1', t1], ['tier 2', t2]])) {
    const got = (await c.searchSimilar([1, 0.1], { useMMR: true, mmrLambda: 0, k: 3 })).map((r) => r.pattern.id)
    assert.deepEqual(got, ['a', 'b', 'c'], tier)
  }
  await Promise.all([w.shutdown(), t1.shutdown(), t2.shutdown()])
})

test('number[] input gives what Float32Array input gives, and the query is not modified', async () => {
  const queries = queriesA()
  for (const q of [queries['random 1'], queries['V1 exactly'], queries['large (x3)']]) {
    const copy = q.slice()
    for (const opts of [{}, { metric: 'dot', k: 30 }, { metric: 'euclidean', domain: 'auth' }, { useMMR: true, mmrLambda: 0.3, k: 7 }, { threshold: 0.2, k: 1000 }]) {
      for (const c of [tier1, tier2]) {
        const a = summary(await c.searchSimilar(q, /** @type {SearchOptions} */ (opts)))
        const b = summary(await c.searchSimilar(Array.from(q), /** @type {SearchOptions} */ (opts)))
        assert.deepEqual(b, a, JSON.stringify(opts))
      }
    }
    assert.deepEqual(q, copy)
  }
})

test('concurrent searches on both tiers give the answers of sequential ones', async () => {
  const v = vectors(99)
  const jobs = Array.from({ length: 40 }, (_, i) => ({ q: v(), opts: /** @type {SearchOptions} */ ({ metric: METRIC_NAMES[i % 3], k: 1 + (i % 17), useMMR: i % 4 === 0, domain: i % 5 === 0 ? 'auth' : undefined }) }))
  const answers = await Promise.all(jobs.flatMap(({ q, opts }) => [tier1.searchSimilar(q, opts), tier2.searchSimilar(q, opts)]))
  jobs.forEach(({ q, opts }, i) => {
    checkSearch(answers[2 * i], modelA, q, opts, `concurrent ${i} tier 1`)
    checkSearch(answers[2 * i + 1], modelA, q, opts, `concurrent ${i} tier 2`)
  })
})

test('bad input rejects with INVALID_ARGUMENT on both tiers, and nothing changes', async () => {
  const q = queriesA()['random 1']
  const before = await tier2.inspect()
  const expected = summary(await tier1.searchSimilar(q, { k: 20 }))
  const withNaN = Array.from(q)
  withNaN[5] = NaN
  const f32Inf = q.slice()
  f32Inf[0] = Infinity
  const negInf = Array.from(q)
  negInf[31] = -Infinity
  /** @type {Array<[string, unknown, unknown]>} */
  const cases = [
    ['31 dimensions', q.slice(0, 31), undefined],
    ['33 dimensions', [...q, 0.5], undefined],
    ['33 dimensions (Float32Array)', Float32Array.from([...q, 0.5]), undefined],
    ['no dimensions', [], undefined],
    ['NaN in number[]', withNaN, undefined],
    ['Infinity in Float32Array', f32Inf, undefined],
    ['-Infinity in number[]', negInf, { metric: 'dot' }],
    ['NaN under euclidean', withNaN, { metric: 'euclidean' }],
    ['zero query, default metric', new Float32Array(DIM), undefined],
    ['zero query, cosine', new Array(DIM).fill(0), { metric: 'cosine' }],
    ['zero query, cosine, MMR', new Float32Array(DIM), { useMMR: true }],
    ['zero query, cosine, filter matching nothing', new Float32Array(DIM), { domain: 'no-such-domain' }],
    ['k 0', q, { k: 0 }],
    ['k -1', q, { k: -1 }],
    ['k 1001', q, { k: 1001 }],
    ['k 2.5', q, { k: 2.5 }],
    ['k NaN', q, { k: NaN }],
    ['k Infinity', q, { k: Infinity }],
    ['k a string', q, { k: '10' }],
    ['mmrLambda -0.01', q, { useMMR: true, mmrLambda: -0.01 }],
    ['mmrLambda 1.01', q, { useMMR: true, mmrLambda: 1.01 }],
    ['mmrLambda NaN', q, { useMMR: true, mmrLambda: NaN }],
    ['metric manhattan', q, { metric: 'manhattan' }],
    ['metric Cosine', q, { metric: 'Cosine' }],
    ['metric empty', q, { metric: '' }],
    ['embedding null', null, undefined],
    ['embedding a string', 'abc', undefined],
    ['embedding with a string element', [...Array.from(q).slice(0, 31), '1'], undefined],
    ['domain a number', q, { domain: 5 }],
    // Also documented in docs/api.md:
    ['embedding a Float64Array', new Float64Array(q), undefined],
    ['a value beyond float32 (1e39)', [1e39, ...Array.from(q).slice(1)], undefined],
    ['threshold NaN', q, { threshold: NaN }],
    ['threshold Infinity', q, { threshold: Infinity, metric: 'euclidean' }],
    ['mmrLambda 2 without useMMR', q, { mmrLambda: 2 }],
    ['options a string', q, 'fast'],
    ['domain empty', q, { domain: '' }],
    ['type over 256 bytes', q, { type: 'x'.repeat(257) }],
  ]
  for (const [what, embedding, opts] of cases) {
    for (const [tier, c] of /** @type {const} */ ([['tier 1', tier1], ['tier 2', tier2]])) {
      await rejectsWith(() => c.searchSimilar(/** @type {any} */ (embedding), /** @type {any} */ (opts)), 'INVALID_ARGUMENT', `${tier}: ${what}`)
    }
  }
  // The boundaries are accepted.
  for (const c of [tier1, tier2]) {
    assert.equal((await c.searchSimilar(q, { k: 1 })).length, 1)
    assert.equal((await c.searchSimilar(q, { k: 1000 })).length, 1000)
    assert.equal((await c.searchSimilar(q, { useMMR: true, mmrLambda: 0, k: 3 })).length, 3)
    assert.equal((await c.searchSimilar(q, { useMMR: true, mmrLambda: 1, k: 3 })).length, 3)
    assert.equal((await c.searchSimilar(new Float32Array(DIM), { metric: 'euclidean', k: 3 })).length, 3)
  }
  const afterwards = await tier2.inspect()
  assert.equal(afterwards.dbGeneration, before.dbGeneration)
  assert.equal(afterwards.dbPatternCount, before.dbPatternCount)
  assert.deepEqual(summary(await tier1.searchSimilar(q, { k: 20 })), expected)
  assert.deepEqual(summary(await tier2.searchSimilar(q, { k: 20 })), expected)
  assert.equal(tier1.getMetrics().tier, 'cache')
})

test('tier 1 answered every search above from the cache file: no fallback, no miss', () => {
  const m = tier1.getMetrics()
  assert.equal(m.tier, 'cache')
  assert.equal(m.cacheMisses, 0, 'tier 1 went to SQLite')
  assert.equal(m.cacheCorruptionCount, 0)
  assert.deepEqual(log1.events.filter((e) => e.type === 'fallback' || e.type === 'corruption_detected'), [])
})

// ---------------------------------------------------------------------------
// Other databases.

test('384 dimensions: all metrics, filters, thresholds and MMR on both tiers', async () => {
  const dir = tempDir('search-384')
  const dbPath = path.join(dir, 'p.db')
  const v = vectors(384)
  const model = new Model()
  const base = generatePatterns(300, { seed: 38, dim: 384, prefix: 'wide' })
  const dup = v(384)
  const extra = [
    ...['wide-dup-\u{1f600}', 'wide-dup-\uff5a', 'wide-dup-é', 'wide-dup-A'].map((id) => pattern(id, dup.slice())),
    pattern('wide-zero', new Float32Array(384)),
    pattern('wide-zero-\u{1f600}', new Float32Array(384), { domain: 'payments' }),
  ]
  const writer = await PatternCache.open({ dbPath, enabled: false })
  await writer.storePatterns([...base, ...extra])
  await writer.shutdown()
  model.store([...base, ...extra])
  const t1 = await PatternCache.open({ dbPath })
  const t2 = await PatternCache.open({ dbPath, enabled: false })
  assert.equal(t1.getMetrics().tier, 'cache')
  const queries = [v(384), v(384), dup, dup.map((x) => x + 0.01 * (Math.sin(x * 1000)))]
  for (const [qi, q] of queries.entries()) {
    for (const metric of METRIC_NAMES) {
      for (const filter of [{}, { domain: 'auth' }, { type: 'unit', framework: 'jest' }, { domain: 'payments', framework: 'unknown' }]) {
        for (const k of [undefined, 25, 1000]) {
          /** @type {SearchOptions} */
          const opts = { ...filter, metric }
          if (k !== undefined) opts.k = k
          await checkBoth([t1, t2], model, q, opts, `384 query ${qi}`)
        }
        const all = rankedMatches(model, q, { ...filter, metric })
        for (const threshold of thresholdsIn(all, [0.05, 0.5])) {
          await checkBoth([t1, t2], model, q, { ...filter, metric, threshold, k: 1000 }, `384 threshold, query ${qi}`)
        }
        for (const mmrLambda of [0, 0.5, 1]) {
          if (mmrLambda === 0.5 && qi === 2) continue // a stored vector as query: see the MMR test above
          for (const k of [5, 20]) await checkBoth([t1, t2], model, q, { ...filter, metric, useMMR: true, mmrLambda, k }, `384 MMR, query ${qi}`)
        }
      }
    }
  }
  for (const c of [t1, t2]) {
    assert.deepEqual((await c.searchSimilar(dup, { k: 4 })).map((r) => r.pattern.id), ['wide-dup-A', 'wide-dup-é', 'wide-dup-\uff5a', 'wide-dup-\u{1f600}'])
    await rejectsWith(() => c.searchSimilar(new Float32Array(DIM).fill(1)), 'INVALID_ARGUMENT', '32 dimensions against a 384 database')
  }
  assert.equal(t1.getMetrics().cacheMisses, 0)
  await t1.shutdown()
  await t2.shutdown()
})

test('an empty database gives [] on both tiers, whatever the options', async () => {
  const dir = tempDir('search-empty')
  const dbPath = path.join(dir, 'p.db')
  const t1 = await PatternCache.open({ dbPath })
  const t2 = await PatternCache.open({ dbPath, enabled: false })
  /** @type {SearchOptions[]} */
  const options = [{}, { k: 1000 }, { metric: 'dot' }, { metric: 'euclidean', threshold: 5 }, { useMMR: true, mmrLambda: 0.2 }, { domain: 'auth', type: 'unit', framework: 'jest' }]
  for (const c of [t1, t2]) {
    for (const q of [[1, 2, 3], Float32Array.from([0.5, -0.5, 0.25, 1]), new Float32Array(384).fill(0.1)]) {
      for (const opts of options) assert.deepEqual(await c.searchSimilar(q, opts), [], JSON.stringify(opts))
    }
  }
  // Emptied by deletes: still [].
  await t1.storePatterns([pattern('only-1', [1, 0, 0, 0]), pattern('only-2', [0, 1, 0, 0])])
  assert.equal((await t1.searchSimilar([1, 1, 0, 0])).length, 2)
  assert.equal((await t2.searchSimilar([1, 1, 0, 0])).length, 2)
  await t1.deletePattern('only-1')
  await t1.deletePattern('only-2')
  for (const c of [t1, t2]) {
    for (const opts of options) assert.deepEqual(await c.searchSimilar([1, 1, 0, 0], opts), [], JSON.stringify(opts))
  }
  await t1.rebuildCache()
  assert.deepEqual(await t1.searchSimilar([1, 1, 0, 0]), [])
  await t1.shutdown()
  await t2.shutdown()
})

test("fresh writes and deletes through the instance are visible at once (the file amended from the change log)", async () => {
  const dir = tempDir('search-fresh')
  const dbPath = path.join(dir, 'p.db')
  const v = vectors(31)
  const model = new Model()
  const base = generatePatterns(400, { seed: 21, dim: DIM, prefix: 'c' })
  const w = await PatternCache.open({ dbPath, backgroundRebuild: false, checkInterval: 0 })
  const t2 = await PatternCache.open({ dbPath, enabled: false, checkInterval: 0 })
  await w.storePatterns(base)
  model.store(base)
  assert.equal((await w.rebuildCache()).success, true)
  const q = v()
  const qNeighbour = q.map((x, i) => x + 0.02 * Math.cos(i))
  /** Checks the instance that wrote and a SQLite-only instance against the model. @param {string} step */
  const checkAll = async (step) => {
    for (const query of [q, qNeighbour, v()]) {
      for (const metric of METRIC_NAMES) {
        for (const opts of [{ metric }, { metric, k: 1000 }, { metric, domain: 'auth' }, { metric, domain: 'auth', type: 'unit', framework: 'jest', k: 1000 }, { metric, useMMR: true, mmrLambda: 0.3, k: 6 }]) {
          await checkBoth([w, t2], model, query, /** @type {SearchOptions} */ (opts), step)
        }
      }
    }
  }
  await checkAll('before any write')

  // A new pattern at the query: first at once.
  const fresh = pattern('c-new', q.slice())
  await w.storePattern(fresh)
  model.store([fresh])
  const stale = await w.inspect()
  assert.ok(/** @type {number} */ (stale.fileGeneration) < stale.dbGeneration, 'the cache file is behind: reads are amended')
  assert.equal((await w.searchSimilar(q, { k: 1 }))[0].pattern.id, 'c-new')
  assert.equal(w.getMetrics().tier, 'cache', 'served from the amended file')
  await checkAll('after storing c-new')

  // Update the best existing match: a new embedding (opposite the query) and another cell.
  const top = modelSearch(model, q, { k: 2 })[1].id
  const old = /** @type {TestPattern} */ (base.find((p) => p.id === top))
  const newDomain = old.domain === 'payments' ? 'billing' : 'payments'
  const moved = { ...old, embedding: scaled(q, -1), domain: newDomain, type: 'e2e' }
  await w.storePattern(moved)
  model.store([moved])
  for (const c of [w, t2]) {
    const all = await c.searchSimilar(q, { k: 1000 })
    assert.equal(all.at(-1)?.pattern.id, top, 'the updated embedding is scored: now the worst')
    assert.equal((await c.searchSimilar(scaled(q, -1), { k: 1 }))[0].pattern.id, top)
    assert.ok(!(await c.searchSimilar(q, { domain: old.domain, k: 1000 })).some((r) => r.pattern.id === top), 'not in its old domain any more')
    assert.equal((await c.searchSimilar(scaled(q, -1), { domain: newDomain, type: 'e2e', k: 1 }))[0].pattern.id, top)
  }
  await checkAll('after updating the best match')

  // Delete the new pattern: it never comes back, under any query or option.
  assert.equal(await w.deletePattern('c-new'), true)
  model.byId.delete('c-new')
  for (const c of [w, t2]) {
    for (const opts of [{ k: 1000 }, { k: 1000, metric: 'euclidean' }, { k: 1000, metric: 'dot' }, { k: 50, useMMR: true }, { domain: 'auth', k: 1000 }]) {
      assert.ok(!(await c.searchSimilar(q, /** @type {SearchOptions} */ (opts))).some((r) => r.pattern.id === 'c-new'), JSON.stringify(opts))
    }
  }
  await checkAll('after deleting c-new')

  // Duplicates of the query under ids in the wrong JavaScript order; a delete and a re-store of an old id.
  const twins = ['c-dup-\u{1f600}', 'c-dup-\uff5a', 'c-dup-a'].map((id) => pattern(id, q.slice()))
  await w.storePatterns(twins)
  model.store(twins)
  for (const c of [w, t2]) assert.deepEqual((await c.searchSimilar(q, { k: 3 })).map((r) => r.pattern.id), ['c-dup-a', 'c-dup-\uff5a', 'c-dup-\u{1f600}'])
  await w.deletePattern(base[5].id)
  model.byId.delete(base[5].id)
  const back = { ...base[6], embedding: v() }
  await w.deletePattern(back.id)
  await w.storePattern(back)
  model.store([back])
  await checkAll('after duplicates, a delete, a delete then re-store')

  // A batch: 50 new, 30 updated embeddings, and deletes.
  const batchNew = generatePatterns(50, { seed: 22, dim: DIM, prefix: 'c-batch' })
  const batchUpdated = base.slice(100, 130).map((p) => ({ ...p, embedding: v() }))
  await w.storePatterns([...batchNew, ...batchUpdated])
  model.store([...batchNew, ...batchUpdated])
  for (const p of base.slice(200, 210)) {
    await w.deletePattern(p.id)
    model.byId.delete(p.id)
  }
  await checkAll('after a batch')
  assert.equal(w.getMetrics().tier, 'cache')
  assert.equal(w.getMetrics().cacheMisses, 0, 'the amended file answered, not SQLite')

  // The rebuild changes nothing; the deleted stay deleted.
  assert.equal((await w.rebuildCache()).success, true)
  const current = await w.inspect()
  assert.equal(current.fileGeneration, current.dbGeneration)
  await checkAll('after the rebuild')

  // Past 4,096 changed keys: reads go to SQLite until the rebuild, still the same answers.
  const bulk = generatePatterns(4200, { seed: 23, dim: DIM, prefix: 'c-bulk' })
  await w.storePatterns(bulk)
  model.store(bulk)
  for (const metric of METRIC_NAMES) {
    for (const opts of [{ metric }, { metric, k: 200 }, { metric, domain: 'auth', type: 'unit' }, { metric, useMMR: true, k: 8 }]) {
      await checkBoth([w, t2], model, q, /** @type {SearchOptions} */ (opts), 'past 4,096 changes')
    }
  }
  assert.equal((await w.rebuildCache()).success, true)
  await checkBoth([w, t2], model, q, { k: 100 }, 'past 4,096 changes, rebuilt')
  await w.shutdown()
  await t2.shutdown()
})

test('with background rebuilds: right after a write and after the rebuild lands', async () => {
  const dir = tempDir('search-background')
  const dbPath = path.join(dir, 'p.db')
  const v = vectors(41)
  const model = new Model()
  const base = generatePatterns(300, { seed: 41, dim: DIM, prefix: 'b' })
  const log = eventLog()
  const c = await PatternCache.open({ dbPath, onEvent: log.onEvent })
  await c.storePatterns(base)
  model.store(base)
  await eventually(log, (e) => e.type === 'rebuild_finished' && e.patternCount === base.length)
  const q = v()
  await checkBoth([c], model, q, { k: 20 }, 'rebuilt')
  const finished = log.next((e) => e.type === 'rebuild_finished' && e.patternCount === base.length)
  const top = modelSearch(model, q, { k: 1 })[0].id
  await c.deletePattern(top)
  model.byId.delete(top)
  const atQ = pattern('b-at-q', q.slice())
  await c.storePattern(atQ)
  model.store([atQ])
  for (const metric of METRIC_NAMES) await checkBoth([c], model, q, { metric, k: 20 }, 'rebuild pending')
  await finished
  assert.equal(c.getMetrics().tier, 'cache')
  for (const metric of METRIC_NAMES) {
    const got = await checkBoth([c], model, q, { metric, k: 1000 }, 'rebuild landed')
    assert.ok(!got.some((/** @type {any} */ r) => r.pattern.id === top), 'a deleted pattern never comes back')
  }
  await c.shutdown()
})

test("another process's and another instance's writes are seen at the next search (checkInterval: 0)", async () => {
  const dir = tempDir('search-cross')
  const dbPath = path.join(dir, 'p.db')
  const v = vectors(51)
  const model = new Model()
  const base = generatePatterns(300, { seed: 51, dim: DIM, prefix: 'x' })
  const t1 = await PatternCache.open({ dbPath, checkInterval: 0 })
  const t2 = await PatternCache.open({ dbPath, enabled: false, checkInterval: 0 })
  await t1.storePatterns(base)
  model.store(base)
  await t1.rebuildCache()
  const q = v()
  await checkBoth([t1, t2], model, q, { k: 10 }, 'before')
  const [first, second] = modelSearch(model, q, { k: 2 }).map((m) => m.id)

  // A child process: a new pattern at the query, the second best moved opposite it, the best deleted.
  const script = `
    const { PatternCache } = require(${JSON.stringify(ROOT)})
    PatternCache.open({ dbPath: ${JSON.stringify(dbPath)}, backgroundRebuild: false }).then(async (c) => {
      const p = ${JSON.stringify(base.find((p) => p.id === second))}
      await c.storePattern({ id: 'from-child', type: 'unit', domain: 'auth', framework: 'jest', content: 'child', embedding: ${JSON.stringify(Array.from(q))}, createdAt: 5 })
      await c.storePattern({ ...p, embedding: ${JSON.stringify(Array.from(q, (x) => -x))} })
      await c.deletePattern(${JSON.stringify(first)})
      await c.shutdown()
    })`
  execFileSync(process.execPath, ['-e', script])
  model.store([pattern('from-child', q.slice(), { content: 'child', createdAt: 5 })])
  model.store([{ .../** @type {any} */ (base.find((p) => p.id === second)), embedding: Array.from(q, (x) => -x) }])
  model.byId.delete(first)
  for (const c of [t1, t2]) {
    const got = await c.searchSimilar(q, { k: 1000 })
    assert.equal(got[0].pattern.id, 'from-child')
    assert.equal(got.at(-1)?.pattern.id, second)
    assert.ok(!got.some((r) => r.pattern.id === first))
  }
  for (const metric of METRIC_NAMES) {
    for (const opts of [{ metric }, { metric, domain: 'auth', k: 1000 }, { metric, useMMR: true, k: 5, mmrLambda: 0.7 }]) {
      await checkBoth([t1, t2], model, q, /** @type {SearchOptions} */ (opts), 'after the child process')
    }
  }

  // Another instance in this process (its own connection and cache).
  const other = await PatternCache.open({ dbPath, backgroundRebuild: false })
  const near = pattern('from-other-instance', q.map((x, i) => x + (i === 0 ? 1e-3 : 0)))
  await other.storePattern(near)
  await other.deletePattern('from-child')
  model.store([near])
  model.byId.delete('from-child')
  for (const c of [t1, t2]) assert.equal((await c.searchSimilar(q, { k: 1 }))[0].pattern.id, 'from-other-instance')
  for (const metric of METRIC_NAMES) await checkBoth([t1, t2, other], model, q, { metric, k: 30 }, 'after another instance')
  await other.shutdown()
  await t1.shutdown()
  await t2.shutdown()
})

// ---------------------------------------------------------------------------
// A corrupt cache file never changes an answer.

/** A database of 300 patterns with a current cache file, and a query whose answers the corruption targets. */
async function corruptSetup(/** @type {string} */ name) {
  const dir = tempDir(`search-corrupt-${name}`)
  const dbPath = path.join(dir, 'patterns.db')
  const patterns = generatePatterns(300, { seed: 61, dim: DIM, prefix: 'k' })
  const c = await PatternCache.open({ dbPath })
  await c.storePatterns(patterns)
  assert.equal((await c.rebuildCache()).success, true)
  const { cachePath } = await c.inspect()
  await c.shutdown()
  const model = new Model()
  model.store(patterns)
  const q = vectors(62)()
  // Every pattern any of the checked searches returns, so that each is damaged.
  const targets = new Set()
  for (const metric of METRIC_NAMES) for (const m of modelSearch(model, q, { metric, k: 15 })) targets.add(m.id)
  for (const m of modelSearch(model, q, { useMMR: true, k: 10 })) targets.add(m.id)
  return { dbPath, cachePath, model, q, targets: [...targets] }
}

/**
 * The offsets of every copy of the targets' embeddings in the file (as float32 little-endian),
 * wherever the format keeps them (records, or a region of vectors).
 * @param {Buffer} bytes @param {Model} model @param {string[]} ids
 */
function embeddingCopies(bytes, model, ids) {
  /** @type {number[]} */
  const at = []
  for (const id of ids) {
    const needle = Buffer.from(Float32Array.from(/** @type {any} */ (model.get(id)).embedding).buffer)
    for (let i = bytes.indexOf(needle); i >= 0; i = bytes.indexOf(needle, i + 1)) at.push(i)
  }
  return at
}

/** Multiplies components 0, 7 and 20 by 4 (flips an exponent bit): still finite, another vector. @param {Buffer} bytes @param {number[]} offsets */
function damage(bytes, offsets) {
  for (const o of offsets) for (const j of [0, 7, 20]) bytes[o + 4 * j + 3] ^= 0x01
}

/** @param {PatternCache[]} caches @param {Model} model @param {Float32Array} q @param {string} label */
async function checkCorrupt(caches, model, q, label) {
  for (const metric of METRIC_NAMES) {
    for (const opts of [{ metric, k: 15 }, { metric, k: 1000 }, { metric, domain: 'auth', k: 1000 }]) {
      await checkBoth(caches, model, q, /** @type {SearchOptions} */ (opts), label)
    }
  }
  await checkBoth(caches, model, q, { useMMR: true, k: 10 }, `${label} MMR`)
}

test('corrupt cache file on disk before open: the answers are the model\'s (SQLite), the damage is detected', async () => {
  const { dbPath, cachePath, model, q, targets } = await corruptSetup('before-open')
  const bytes = fs.readFileSync(cachePath)
  const copies = embeddingCopies(bytes, model, targets)
  assert.ok(copies.length >= targets.length, `found ${copies.length} copies of ${targets.length} embeddings`)
  damage(bytes, copies)
  fs.writeFileSync(cachePath, bytes)
  const log = eventLog()
  const c = await PatternCache.open({ dbPath, onEvent: log.onEvent, checkInterval: 0 })
  await checkCorrupt([c], model, q, 'corrupt before open')
  await eventually(log, (e) => e.type === 'corruption_detected')
  assert.ok(c.getMetrics().cacheCorruptionCount >= 1)
  await eventually(log, (e) => e.type === 'rebuild_finished')
  await checkCorrupt([c], model, q, 'corrupt before open, rebuilt')
  await c.shutdown()
})

test('corrupt cache file in place after open, before the first search: the answers are the model\'s', async () => {
  const { dbPath, cachePath, model, q, targets } = await corruptSetup('in-place')
  const log = eventLog()
  const c = await PatternCache.open({ dbPath, onEvent: log.onEvent, checkInterval: 0, backgroundRebuild: false })
  assert.equal(c.getMetrics().tier, 'cache')
  // Damaged in place (same inode, so the instance's map sees it), as a second writer would.
  const copies = embeddingCopies(fs.readFileSync(cachePath), model, targets)
  assert.ok(copies.length >= targets.length)
  const fd = fs.openSync(cachePath, 'r+')
  try {
    for (const o of copies) {
      for (const j of [0, 7, 20]) {
        const b = Buffer.alloc(1)
        fs.readSync(fd, b, 0, 1, o + 4 * j + 3)
        b[0] ^= 0x01
        fs.writeSync(fd, b, 0, 1, o + 4 * j + 3)
      }
    }
  } finally {
    fs.closeSync(fd)
  }
  await checkCorrupt([c], model, q, 'corrupt in place after open')
  assert.ok(c.getMetrics().cacheCorruptionCount >= 1, 'the damage was detected')
  // A second instance opened on the damaged file answers the same.
  const second = await PatternCache.open({ dbPath, checkInterval: 0 })
  await checkCorrupt([second, c], model, q, 'second instance on the damaged file')
  await second.shutdown()
  await c.shutdown()
})

test('a corrupt cache file swapped in after open (a new file, as another process would write): the answers are the model\'s', async () => {
  const { dbPath, cachePath, model, q, targets } = await corruptSetup('swapped')
  const log = eventLog()
  const c = await PatternCache.open({ dbPath, onEvent: log.onEvent, checkInterval: 0 })
  await checkCorrupt([c], model, q, 'intact')
  const bytes = fs.readFileSync(cachePath)
  damage(bytes, embeddingCopies(bytes, model, targets))
  const tmp = `${cachePath}.tmp-test01`
  fs.writeFileSync(tmp, bytes)
  const later = new Date(Date.now() + 2000)
  fs.utimesSync(tmp, later, later)
  fs.renameSync(tmp, cachePath)
  await checkCorrupt([c], model, q, 'corrupt file swapped in')
  const second = await PatternCache.open({ dbPath, checkInterval: 0, backgroundRebuild: false })
  await checkCorrupt([second], model, q, 'a second instance opened on it')
  assert.ok(second.getMetrics().cacheCorruptionCount >= 1, 'the second instance detected the damage')
  await second.shutdown()
  await c.shutdown()
})

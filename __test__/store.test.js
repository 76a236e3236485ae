// @ts-check
'use strict'
// The store API: recordUsage, recordUsages, getStats, listPatterns,
// listAgentConfigs, deleteAgentConfig. Differential: tier 1 (the cache file,
// also while it is behind and amended by the change log), tier 2 (enabled:
// false) and a plain JavaScript model give the same answers, over random data
// from fixed seeds with ids whose UTF-8 byte order differs from JavaScript's.
// Then the concurrency contract: exact counts from 4 processes and 2 worker
// threads recording uses of 200 shared patterns at once; paging while another
// process inserts and deletes; a burst of 5,000 uses (and a batch) that must neither send
// reads to SQLite nor rebuild per use; read-your-writes on every read path;
// bad input (nothing changes); CLOSED. Waits are on events and messages; the
// only sleeps are where the contract is about time (checkInterval).

const { test } = require('node:test')
const assert = require('node:assert/strict')
const path = require('node:path')
const fs = require('node:fs')
const { fork, execFileSync } = require('node:child_process')
const { Worker } = require('node:worker_threads')
const { PatternCache, ERROR_CODES } = require('../index.js')
const { eventLog, generatePatterns, Model, plain, rng, tempDir, byteOrder, DOMAINS, TYPES, FRAMEWORKS, mailbox } = require('./helpers.js')

const ROOT = path.resolve(__dirname, '..')
const WORKER = path.join(__dirname, 'store-worker.js')
const DIM = 8

/** @typedef {import('../index').TestPattern} TestPattern */
/** @typedef {import('../index').StoredPattern} StoredPattern */
/** @typedef {import('../index').AgentConfigEntry} AgentConfigEntry */
/** @typedef {import('../index').PatternStats} PatternStats */
/** @typedef {import('../index').PatternFilter} PatternFilter */
/** @typedef {import('../index').UsageOutcome} UsageOutcome */
/** @typedef {import('../index').UsageEntry} UsageEntry */
/** @typedef {import('./store-worker.js').PlanOp} PlanOp */
/** @typedef {import('./store-worker.js').Job} Job */

// First characters whose UTF-8 order differs from JavaScript's UTF-16 order:
// U+E000 and U+FF5A sort before U+1F600 and U+10348 in UTF-8, after them in
// UTF-16 (surrogates are 0xD800..0xDFFF).
const PREFIXES = ['a', 'Z', 'é', 'ß', '\uff5a', '\u{1f600}', '日本', '\u{10348}', 'z', '~', 'ÿ', '\ue000']
/** @param {string} tag @param {number} i */
const idFor = (tag, i) => `${PREFIXES[i % PREFIXES.length]}-${tag}-${String(i).padStart(5, '0')}`

/** `count` generated patterns (helpers.js) with non-ASCII ids. @param {number} count @param {{ seed?: number, tag?: string }} [o] @returns {TestPattern[]} */
function makePatterns(count, { seed = 1, tag = 'p' } = {}) {
  return generatePatterns(count, { seed, dim: DIM, prefix: tag }).map((p, i) => ({ ...p, id: idFor(tag, i) }))
}

// One temp directory for the file (helpers.js removes it at exit), a subdirectory per database.
const TMP = tempDir('store')
/** @param {string} name */
const subdir = (name) => fs.mkdtempSync(path.join(TMP, `${name}-`))
/** @param {number} ms */
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))
/** Yields to the event loop (a cache hit resolves without leaving the microtask queue). */
const tick = () => new Promise((resolve) => setImmediate(resolve))

/** The model of the store: patterns (helpers.js's Model), uses, counts and agent configs. */
class StoreModel extends Model {
  constructor() {
    super()
    /** @type {Map<string, AgentConfigEntry>} */
    this.configs = new Map()
  }
  /** One use; false (nothing changes) for an unknown id. @param {string} id @param {{ success?: boolean, at: number }} o */
  use(id, o) {
    const p = this.byId.get(id)
    if (!p) return false
    p.usageCount += 1
    if (o.success === true) p.successCount += 1
    p.lastUsed = p.lastUsed === undefined ? o.at : Math.max(p.lastUsed, o.at)
    return true
  }
  /** @returns {PatternStats} */
  stats() {
    /** @type {PatternStats} */
    const s = { patternCount: this.byId.size, dimension: this.byId.size ? DIM : 0, byDomain: {}, byType: {}, byFramework: {}, byVerdict: { success: 0, failure: 0, flaky: 0, unknown: 0 }, agentConfigCount: this.configs.size }
    for (const p of this.byId.values()) {
      s.byDomain[p.domain] = (s.byDomain[p.domain] ?? 0) + 1
      s.byType[p.type] = (s.byType[p.type] ?? 0) + 1
      s.byFramework[p.framework] = (s.byFramework[p.framework] ?? 0) + 1
      s.byVerdict[/** @type {import('../index').Verdict} */ (p.verdict)] += 1
    }
    return s
  }
  listConfigs() {
    return [...this.configs.values()].sort((a, b) => byteOrder(a.agentId, b.agentId))
  }
}

/** Rejects (never throws) with this code. @param {() => Promise<unknown>} call @param {string} code @param {string} what @returns {Promise<Error>} */
async function rejectsWith(call, code, what) {
  /** @type {Promise<unknown>} */
  let promise
  try {
    promise = call()
  } catch (e) {
    assert.fail(`${what}: threw synchronously instead of rejecting: ${/** @type {Error} */ (e).message}`)
  }
  assert.ok(promise instanceof Promise, `${what}: did not return a promise`)
  /** @type {Error | undefined} */
  let error
  await assert.rejects(
    promise,
    (/** @type {unknown} */ e) => {
      assert.ok(e instanceof Error, `${what}: not an Error: ${e}`)
      const got = /** @type {Error & { code: import('../index').ErrorCode }} */ (e).code
      assert.equal(got, code, `${what}: code ${got}: ${e.message}`)
      assert.ok(ERROR_CODES.includes(got))
      error = e
      return true
    },
    `${what}: resolved instead of rejecting`,
  )
  return /** @type {Error} */ (error)
}

/**
 * Pages through listPatterns; returns the patterns in the order received.
 * `strict` (nothing writes meanwhile): every page but the last is full, no
 * page is empty unless nothing matches, the cursor is a string.
 * @param {PatternCache} cache @param {PatternFilter} filter @param {number | undefined} limit @param {{ strict?: boolean, label?: string }} [o]
 */
async function pageAll(cache, filter, limit, { strict = true, label = '' } = {}) {
  /** @type {StoredPattern[]} */
  const out = []
  /** @type {string | undefined} */
  let cursor
  let pages = 0
  for (;;) {
    /** @type {import('../index').PatternPageRequest} */
    const req = { ...filter }
    if (limit !== undefined) req.limit = limit
    if (cursor !== undefined) req.cursor = cursor
    const page = await cache.listPatterns(req)
    pages++
    assert.ok(Array.isArray(page.patterns), `${label}: patterns is an array`)
    const size = limit ?? 1000
    assert.ok(page.patterns.length <= size, `${label}: page ${pages} has ${page.patterns.length} > ${size}`)
    out.push(...page.patterns)
    if (page.cursor === undefined || page.cursor === null) {
      assert.equal(page.cursor, undefined, `${label}: the last page has no cursor (absent, not null)`)
      if (strict && pages > 1) assert.ok(page.patterns.length > 0, `${label}: the last page (${pages}) is empty: the one before it should have had no cursor`)
      return { patterns: out, pages }
    }
    assert.equal(typeof page.cursor, 'string', `${label}: cursor is a string`)
    if (strict) assert.equal(page.patterns.length, size, `${label}: page ${pages} before the last is full`)
    assert.ok(pages < 1_000_000, 'paging ends')
    cursor = page.cursor
  }
}

/** @param {StoredPattern[]} ps */
const plainAll = (ps) => ps.map(plain)

/** getStats, listAgentConfigs and loadAgentConfig of every config on every instance equal the model. @param {PatternCache[]} caches @param {string[]} names @param {StoreModel} model @param {string} label */
async function checkStatsAndConfigs(caches, names, model, label) {
  const stats = model.stats()
  const configs = model.listConfigs()
  for (const [i, c] of caches.entries()) {
    assert.deepEqual(await c.getStats(), stats, `${label}: getStats on ${names[i]}`)
    assert.deepEqual(await c.listAgentConfigs(), configs, `${label}: listAgentConfigs on ${names[i]}`)
  }
}

/** Full paging on every instance equals the model's query. @param {PatternCache[]} caches @param {string[]} names @param {StoreModel} model @param {PatternFilter} filter @param {number | undefined} limit @param {string} label */
async function checkPaging(caches, names, model, filter, limit, label) {
  const expected = model.query(filter)
  for (const [i, c] of caches.entries()) {
    const got = await pageAll(c, filter, limit, { label: `${label} ${names[i]} ${JSON.stringify({ ...filter, limit })}` })
    assert.deepEqual(plainAll(got.patterns), expected, `${label}: listPatterns ${JSON.stringify({ ...filter, limit })} on ${names[i]}`)
  }
}

/** Everything the database holds, read from SQLite by a fresh instance, with its generation. @param {string} dbPath @param {string[]} [agentIds] */
async function snapshot(dbPath, agentIds = []) {
  const direct = await PatternCache.open({ dbPath, enabled: false })
  try {
    return {
      patterns: plainAll(await direct.query({})),
      configs: await Promise.all(agentIds.map((a) => direct.loadAgentConfig(a))),
      stats: await direct.getStats(),
      generation: (await direct.inspect()).dbGeneration,
    }
  } finally {
    await direct.shutdown()
  }
}

/**
 * Starts store-worker.js in a child process (fork) or a worker thread with a
 * job; `next(type)` resolves with the next message of that type.
 * @param {Job} job @param {{ thread?: boolean }} [o]
 */
function startHelper(job, { thread = false } = {}) {
  const child = thread ? new Worker(WORKER) : fork(WORKER, [], { execArgv: [], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
  const emitter = /** @type {NodeJS.EventEmitter} */ (/** @type {unknown} */ (child))
  const box = mailbox(emitter, 'store-worker.js')
  const exited = box.exited.then((e) => e.code)
  /** @param {unknown} m */
  const post = (m) => (thread ? /** @type {Worker} */ (child).postMessage(m) : /** @type {import('node:child_process').ChildProcess} */ (child).send(/** @type {any} */ (m)))
  post({ type: 'job', job })
  return {
    post,
    exited,
    /** @param {string} type @returns {Promise<any>} */
    next: (type) => box.next(type),
  }
}

// ---------------------------------------------------------------------------

test('the ids used here sort differently in UTF-8 and in UTF-16 (sanity of the data)', () => {
  const ids = makePatterns(100).map((p) => p.id)
  assert.notDeepEqual([...ids].sort(), [...ids].sort(byteOrder))
})

test('recordUsage: counts, success, lastUsed = max(lastUsed, at), at defaults to now, false for an unknown id; both tiers', async () => {
  for (const enabled of [true, false]) {
    const dir = subdir(`usage-${enabled}`)
    const dbPath = path.join(dir, 'p.db')
    const base = { type: 'unit', domain: 'auth', content: 'c', embedding: [1, 2, 3, 4, 5, 6, 7, 8], createdAt: 1_700_000_000_000 }
    /** @type {TestPattern[]} */
    const patterns = [
      { ...base, id: 'never-used-é' },
      { ...base, id: 'used-\u{1f600}', lastUsed: 1000, usageCount: 7, successCount: 3, verdict: 'flaky', metadata: { k: 1 } },
      { ...base, id: 'zero-\uff5a' },
    ]
    const model = new StoreModel()
    model.store(patterns)
    const seeder = await PatternCache.open({ dbPath, enabled: false })
    await seeder.storePatterns(patterns)
    await seeder.shutdown()
    // Tier 1 with the file kept behind: every answer below is the file amended in memory.
    const cache = await PatternCache.open({ dbPath, enabled, backgroundRebuild: false })
    const tier = enabled ? 'tier 1' : 'tier 2'
    const misses = cache.getMetrics().cacheMisses
    const check = async (/** @type {string} */ id, /** @type {string} */ what) => {
      assert.deepEqual(plain(await cache.loadPattern(id)), model.get(id), `${tier}: ${what}`)
    }

    // No outcome, and {}: a use, no success, lastUsed = now.
    for (const [id, outcome] of /** @type {Array<[string, UsageOutcome | undefined]>} */ ([
      ['never-used-é', undefined],
      ['zero-\uff5a', {}],
    ])) {
      const t0 = Date.now()
      assert.strictEqual(await cache.recordUsage(id, outcome), true)
      const t1 = Date.now()
      const got = await cache.loadPattern(id)
      assert.ok(got && got.lastUsed !== undefined && got.lastUsed >= t0 && got.lastUsed <= t1, `${tier}: lastUsed ${got?.lastUsed} is now (${t0}..${t1})`)
      assert.ok(Number.isInteger(got.lastUsed))
      model.use(id, { at: got.lastUsed })
      await check(id, `default outcome ${JSON.stringify(outcome)}`)
    }
    // at below lastUsed: lastUsed stays; success counts.
    assert.strictEqual(await cache.recordUsage('used-\u{1f600}', { success: true, at: 5 }), true)
    model.use('used-\u{1f600}', { success: true, at: 5 })
    await check('used-\u{1f600}', 'at below lastUsed, success')
    assert.equal(model.get('used-\u{1f600}')?.lastUsed, 1000)
    // at equal, then above; success false counts a use only.
    assert.strictEqual(await cache.recordUsage('used-\u{1f600}', { at: 1000 }), true)
    model.use('used-\u{1f600}', { at: 1000 })
    assert.strictEqual(await cache.recordUsage('used-\u{1f600}', { success: false, at: 2000 }), true)
    model.use('used-\u{1f600}', { success: false, at: 2000 })
    await check('used-\u{1f600}', 'at equal, then above, success false')
    assert.deepEqual(
      { u: model.get('used-\u{1f600}')?.usageCount, s: model.get('used-\u{1f600}')?.successCount, l: model.get('used-\u{1f600}')?.lastUsed },
      { u: 10, s: 4, l: 2000 },
    )
    // at 0 is a valid time.
    const [fresh] = makePatterns(1, { seed: 3, tag: 'at0' })
    const at0 = { ...fresh, lastUsed: undefined, usageCount: undefined, successCount: undefined }
    await cache.storePattern(at0)
    model.store([at0])
    assert.strictEqual(await cache.recordUsage(at0.id, { at: 0, success: true }), true)
    model.use(at0.id, { at: 0, success: true })
    await check(at0.id, 'at 0')
    assert.equal((await cache.loadPattern(at0.id))?.lastUsed, 0)

    // An unknown id: false, and nothing changes, not even the generation.
    const before = await snapshot(dbPath)
    for (const id of ['missing', 'used-\u{1f600}x', 'USED-\u{1f600}', '\u{1f600}']) {
      assert.strictEqual(await cache.recordUsage(id, { success: true, at: 5 }), false, `${tier}: unknown ${id}`)
      assert.equal(await cache.loadPattern(id), null)
    }
    assert.deepEqual(await snapshot(dbPath), before, `${tier}: an unknown id changed something`)
    // A deleted id is unknown.
    assert.equal(await cache.deletePattern(at0.id), true)
    model.byId.delete(at0.id)
    assert.strictEqual(await cache.recordUsage(at0.id), false)
    for (const p of patterns) await check(p.id, 'at the end')
    assert.deepEqual(await cache.getStats(), model.stats())
    if (enabled) {
      const m = cache.getMetrics()
      assert.equal(m.tier, 'cache', 'tier 1 stays on the cache file (amended)')
      assert.equal(m.cacheMisses, misses, 'no read went to SQLite')
    }
    await cache.shutdown()
  }
})

test('recordUsages: one transaction, repeated ids count each time, [] writes nothing, an unknown id rejects naming it and nothing is written', async () => {
  for (const enabled of [true, false]) {
    const dir = subdir(`usages-${enabled}`)
    const dbPath = path.join(dir, 'p.db')
    const patterns = makePatterns(300, { seed: 17 })
    const model = new StoreModel()
    model.store(patterns)
    const cache = await PatternCache.open({ dbPath, enabled, backgroundRebuild: false })
    await cache.storePatterns(patterns)
    if (enabled) await cache.rebuildCache()
    const tier = enabled ? 'tier 1' : 'tier 2'
    const r = rng(99)
    const a = patterns[0].id
    const b = patterns[5].id // U+1F600

    // Repeats: each entry is one use.
    /** @type {UsageEntry[]} */
    const entries = [{ id: a }, { id: a, success: true, at: 1_900_000_000_000 }, { id: b, success: false, at: 3 }, { id: a, success: true, at: 1_800_000_000_000 }]
    const t0 = Date.now()
    assert.strictEqual(await cache.recordUsages(entries), undefined)
    const t1 = Date.now()
    // The first entry's at was now; the later ones' max wins anyway.
    model.use(a, { at: t0 })
    for (const e of entries.slice(1)) model.use(e.id, { success: e.success, at: /** @type {number} */ (e.at) })
    assert.ok(t1 < 1_900_000_000_000)
    for (const id of [a, b]) assert.deepEqual(plain(await cache.loadPattern(id)), model.get(id), `${tier}: ${id} after repeats`)
    assert.equal(model.get(a)?.usageCount, (patterns[0].usageCount ?? 0) + 3)

    // A large batch.
    /** @type {UsageEntry[]} */
    const big = Array.from({ length: 5000 }, (_, i) => {
      /** @type {UsageEntry} */
      const e = { id: patterns[Math.floor(r() * patterns.length)].id, at: 1_749_990_000_000 + Math.floor(r() * 20_000_000) }
      if (i % 3) e.success = r() < 0.5
      return e
    })
    await cache.recordUsages(big)
    for (const e of big) model.use(e.id, { success: e.success, at: /** @type {number} */ (e.at) })
    assert.deepEqual(plainAll(await cache.query({})), model.query({}), `${tier}: after 5,000 entries`)

    // [] and an unknown id: nothing written.
    const before = await snapshot(dbPath)
    await cache.recordUsages([])
    for (const missing of ['nope-\u{1f600}', 'pat-000001']) {
      const batch = big.slice(0, 100).map((e) => ({ ...e }))
      batch[57] = { id: missing, success: true, at: 1 }
      const err = await rejectsWith(() => cache.recordUsages(batch), 'INVALID_ARGUMENT', `${tier}: unknown id ${missing}`)
      assert.ok(err.message.includes(missing), `${tier}: the message names the unknown id ${missing}: ${err.message}`)
    }
    // The unknown id last, after valid entries.
    await rejectsWith(() => cache.recordUsages([{ id: a, success: true }, { id: 'last-missing' }]), 'INVALID_ARGUMENT', `${tier}: unknown id last`)
    assert.deepEqual(await snapshot(dbPath), before, `${tier}: a rejected batch wrote something`)
    assert.deepEqual(plainAll(await cache.query({})), model.query({}))
    if (enabled) assert.equal(cache.getMetrics().cacheMisses, 0, 'tier 1: no read went to SQLite')
    await cache.shutdown()
  }
})

test('getStats: an empty store, after writes, after every pattern and config is deleted; both tiers agree with the model', async () => {
  const dir = subdir('stats')
  const dbPath = path.join(dir, 'p.db')
  const t1 = await PatternCache.open({ dbPath, checkInterval: 0, backgroundRebuild: false })
  const t2 = await PatternCache.open({ dbPath, enabled: false })
  const caches = [t1, t2]
  const names = ['tier 1', 'tier 2']
  const model = new StoreModel()
  const empty = { patternCount: 0, dimension: 0, byDomain: {}, byType: {}, byFramework: {}, byVerdict: { success: 0, failure: 0, flaky: 0, unknown: 0 }, agentConfigCount: 0 }
  assert.deepEqual(model.stats(), empty)
  await checkStatsAndConfigs(caches, names, model, 'empty')
  for (const page of [await t1.listPatterns(), await t2.listPatterns({ limit: 1 })]) {
    assert.deepEqual(page.patterns, [])
    assert.equal(page.cursor, undefined)
  }

  const patterns = makePatterns(500, { seed: 23 })
  // Only some verdicts: the others must still be there, as 0.
  for (const p of patterns) if (p.verdict === 'flaky' || p.verdict === 'failure') p.verdict = 'success'
  await t1.storePatterns(patterns)
  model.store(patterns)
  /** @type {AgentConfigEntry} */
  const config = { agentId: 'agent-é', type: 'planner', configJson: '{"a":1}', version: '1', updatedAt: 5 }
  await t2.storeAgentConfig(config)
  model.configs.set(config.agentId, config)
  assert.equal(model.stats().byVerdict.flaky, 0)
  await checkStatsAndConfigs(caches, names, model, 'after writes')
  await t1.rebuildCache()
  await checkStatsAndConfigs(caches, names, model, 'after a rebuild')

  for (const [i, p] of patterns.entries()) {
    assert.equal(await caches[i % 2].deletePattern(p.id), true)
    model.byId.delete(p.id)
    if (i % 97 === 0) await checkStatsAndConfigs(caches, names, model, `after ${i + 1} deletes`)
  }
  await checkStatsAndConfigs(caches, names, model, 'every pattern deleted (dimension 0 again)')
  assert.equal(await t1.deleteAgentConfig(config.agentId), true)
  model.configs.delete(config.agentId)
  await checkStatsAndConfigs(caches, names, model, 'config deleted')
  for (const c of caches) assert.deepEqual(await c.getStats(), empty)
  await t1.rebuildCache()
  assert.deepEqual(await t1.getStats(), empty, 'tier 1 rebuilt from an empty database')
  assert.equal(t1.getMetrics().cacheMisses, 0)
  await t1.shutdown()
  await t2.shutdown()
})

test('listPatterns: default page of 1,000, sizes 1..10,000, no cursor on the last page, filters, keyset by id; both tiers', async () => {
  const dir = subdir('paging')
  const dbPath = path.join(dir, 'p.db')
  const patterns = makePatterns(2500, { seed: 5 })
  const seeder = await PatternCache.open({ dbPath, enabled: false })
  await seeder.storePatterns(patterns)
  await seeder.shutdown()
  const model = new StoreModel()
  model.store(patterns)
  const t1 = await PatternCache.open({ dbPath, backgroundRebuild: false })
  const t2 = await PatternCache.open({ dbPath, enabled: false })
  const caches = [t1, t2]
  const names = ['tier 1', 'tier 2']
  const all = model.query({})

  for (const [i, c] of caches.entries()) {
    const tier = names[i]
    const first = await c.listPatterns()
    assert.deepEqual(plainAll(first.patterns), all.slice(0, 1000), `${tier}: the default page is the first 1,000 by id`)
    assert.equal(typeof first.cursor, 'string')
    assert.deepEqual(plainAll((await c.listPatterns({})).patterns), all.slice(0, 1000))
    const second = await c.listPatterns({ cursor: first.cursor })
    assert.deepEqual(plainAll(second.patterns), all.slice(1000, 2000), `${tier}: the second default page`)
    const third = await c.listPatterns({ cursor: second.cursor })
    assert.deepEqual(plainAll(third.patterns), all.slice(2000), `${tier}: the last page`)
    assert.equal(third.cursor, undefined, `${tier}: no cursor after the last page`)
    // A cursor is a position, not state: used again, it gives the same page.
    assert.deepEqual(plainAll((await c.listPatterns({ cursor: first.cursor })).patterns), all.slice(1000, 2000))

    const whole = await c.listPatterns({ limit: 10_000 })
    assert.deepEqual(plainAll(whole.patterns), all)
    assert.equal(whole.cursor, undefined)
    const exact = await c.listPatterns({ limit: 2500 })
    assert.equal(exact.patterns.length, 2500)
    assert.equal(exact.cursor, undefined, `${tier}: a page that ends exactly at the last pattern has no cursor`)
    const ones = []
    /** @type {string | undefined} */
    let cursor
    for (let k = 0; k < 3; k++) {
      /** @type {import('../index').PatternPageRequest} */
      const req = { limit: 1 }
      if (cursor !== undefined) req.cursor = cursor
      const page = await c.listPatterns(req)
      ones.push(...page.patterns.map((p) => p.id))
      cursor = page.cursor
    }
    assert.deepEqual(ones, all.slice(0, 3).map((p) => p.id), `${tier}: pages of 1`)
  }
  await checkPaging(caches, names, model, {}, 500, 'exact multiple')
  await checkPaging(caches, names, model, {}, 2499, 'one left over')
  await checkPaging(caches, names, model, {}, 10_000, 'one page')
  await checkPaging(caches, names, model, {}, 37, 'small pages')
  for (const domain of DOMAINS) await checkPaging(caches, names, model, { domain }, 29, 'domain')
  for (const type of TYPES) await checkPaging(caches, names, model, { type }, 101, 'type')
  for (const framework of [...FRAMEWORKS, 'unknown']) await checkPaging(caches, names, model, { framework }, undefined, 'framework')
  await checkPaging(caches, names, model, { domain: '検索', type: 'unit', framework: 'jest' }, 2, 'three fields')
  await checkPaging(caches, names, model, { domain: 'домен', framework: 'unknown' }, 3, 'two fields')
  for (const c of caches) {
    const none = await c.listPatterns({ domain: 'no-such-domain', limit: 5 })
    assert.deepEqual(none.patterns, [])
    assert.equal(none.cursor, undefined)
  }

  // Keyset by id: ids deleted or added around a cursor do not disturb the next page.
  const page1 = await t1.listPatterns({ limit: 1000 })
  await t1.deletePattern(all[999].id) // the cursor's own id
  await t1.deletePattern(all[1000].id) // the next page's first
  const before = { ...patterns[0], id: `${all[998].id}+` } // before the cursor: not on the next page
  assert.ok(byteOrder(before.id, all[998].id) > 0 && byteOrder(before.id, all[999].id) < 0)
  await t1.storePattern(before)
  for (const id of [all[999].id, all[1000].id]) model.byId.delete(id)
  model.store([before])
  for (const [i, c] of caches.entries()) {
    const next = await c.listPatterns({ limit: 1000, cursor: page1.cursor })
    assert.equal(next.patterns[0]?.id, all[1001].id, `${names[i]}: the page after a deleted cursor id starts after it`)
    assert.deepEqual(plainAll(next.patterns), model.query({}).filter((p) => byteOrder(p.id, all[999].id) > 0).slice(0, 1000))
  }
  await checkPaging(caches, names, model, {}, 333, 'after the changes (tier 1 amended)')
  assert.equal(t1.getMetrics().tier, 'cache')
  assert.equal(t1.getMetrics().cacheMisses, 0, 'every page came from the cache file')
  await t1.shutdown()
  await t2.shutdown()
})

test('agent configs: listAgentConfigs in byte order, deleteAgentConfig true then false, both tiers, config_updated rebuild', async () => {
  const dir = subdir('configs')
  const dbPath = path.join(dir, 'p.db')
  const t1 = await PatternCache.open({ dbPath, checkInterval: 0 })
  const t2 = await PatternCache.open({ dbPath, enabled: false })
  const caches = [t1, t2]
  const names = ['tier 1', 'tier 2']
  const model = new StoreModel()
  await t1.storePatterns(makePatterns(20, { seed: 2 }))
  model.store(makePatterns(20, { seed: 2 }))
  const ids = ['agent-\u{1f600}', 'agent-\uff5a', 'agent-\ue000', 'agent-é', 'agent-a', 'Agent', 'agent-10', 'agent-9', 'x', '\u{10348}']
  assert.notDeepEqual([...ids].sort(), [...ids].sort(byteOrder))
  for (const [i, agentId] of ids.entries()) {
    /** @type {AgentConfigEntry} */
    const entry = { agentId, type: i % 2 ? 'planner' : 'executor', configJson: JSON.stringify({ i, tools: ['a', 'b'].slice(0, i % 3) }), version: `1.${i}.0`, updatedAt: 1_760_000_000_000 + i }
    await caches[i % 2].storeAgentConfig(entry)
    model.configs.set(agentId, entry)
  }
  await checkStatsAndConfigs(caches, names, model, 'stored')
  await t1.rebuildCache()
  await checkStatsAndConfigs(caches, names, model, 'rebuilt')
  // Replace one, delete some on either tier.
  /** @type {AgentConfigEntry} */
  const replaced = { agentId: 'agent-é', type: 'critic', configJson: '[1, 2]', version: '2.0.0', updatedAt: 1 }
  await t2.storeAgentConfig(replaced)
  model.configs.set(replaced.agentId, replaced)
  await checkStatsAndConfigs(caches, names, model, 'replaced')
  for (const [i, agentId] of ['agent-\uff5a', 'Agent', 'agent-é', 'x'].entries()) {
    assert.strictEqual(await caches[i % 2].deleteAgentConfig(agentId), true, `delete ${agentId}`)
    model.configs.delete(agentId)
    for (const c of caches) {
      assert.equal(await c.loadAgentConfig(agentId), null, `${agentId} gone`)
      assert.strictEqual(await c.deleteAgentConfig(agentId), false, `${agentId} deleted again`)
    }
    await checkStatsAndConfigs(caches, names, model, `deleted ${agentId}`)
  }
  for (const c of caches) assert.strictEqual(await c.deleteAgentConfig('never-was'), false)
  await t1.rebuildCache()
  await checkStatsAndConfigs(caches, names, model, 'rebuilt after deletes')
  for (const agentId of model.configs.keys()) assert.equal(await t1.deleteAgentConfig(agentId), true)
  model.configs.clear()
  await checkStatsAndConfigs(caches, names, model, 'all deleted')
  assert.deepEqual(await t1.listAgentConfigs(), [])
  await t1.shutdown()
  await t2.shutdown()

  // A delete is a config_updated invalidation, like a store: with nothing
  // else pending (one instance, its startup build done), it starts a rebuild.
  const quiet = eventLog()
  const t3 = await PatternCache.open({ dbPath, onEvent: quiet.onEvent })
  /** @type {AgentConfigEntry} */
  const last = { agentId: 'agent-last-\u{1f600}', type: 't', configJson: 'null', version: '1', updatedAt: 2 }
  const stored = quiet.next((e) => e.type === 'rebuild_started' && e.reason === 'config_updated').then(() => quiet.next((e) => e.type === 'rebuild_finished'))
  await t3.storeAgentConfig(last)
  await stored
  const deleted = quiet.next((e) => e.type === 'rebuild_started' && e.reason === 'config_updated').then(() => quiet.next((e) => e.type === 'rebuild_finished'))
  assert.strictEqual(await t3.deleteAgentConfig(last.agentId), true)
  await deleted
  assert.deepEqual(await t3.listAgentConfigs(), [])
  assert.equal(t3.getMetrics().tier, 'cache')
  await t3.shutdown()
})

test('differential: 150 random steps of stores, deletes, uses, batches and configs from three instances; tier 1 behind (amended), tier 1 live, tier 2 and the model agree', async () => {
  const dir = subdir('store-diff')
  const dbPath = path.join(dir, 'p.db')
  const seedPatterns = makePatterns(600, { seed: 11 })
  const seeder = await PatternCache.open({ dbPath, enabled: false })
  await seeder.storePatterns(seedPatterns)
  await seeder.shutdown()
  const model = new StoreModel()
  model.store(seedPatterns)
  // Its own cache file, never rebuilt in the background: behind by every step, amended.
  const behind = await PatternCache.open({ dbPath, cachePath: path.join(dir, 'behind.pcache'), checkInterval: 0, backgroundRebuild: false })
  const live = await PatternCache.open({ dbPath, checkInterval: 0 })
  const sqlite = await PatternCache.open({ dbPath, enabled: false })
  const caches = [behind, live, sqlite]
  const names = ['tier 1 (behind)', 'tier 1 (live)', 'tier 2']
  const r = rng(2024)
  const pick = /** @type {<T>(xs: readonly T[]) => T} */ ((xs) => xs[Math.floor(r() * xs.length)])
  const knownId = () => pick([...model.byId.keys()])
  /** @returns {{ success?: boolean, at: number }} */
  const outcome = () => {
    /** @type {{ success?: boolean, at: number }} */
    const o = { at: r() < 0.05 ? 0 : 1_749_999_000_000 + Math.floor(r() * 2_000_000) }
    const s = r()
    if (s < 0.4) o.success = true
    else if (s < 0.6) o.success = false
    return o
  }
  const AGENTS = ['agent-\u{1f600}', 'agent-\uff5a', 'agent-é', 'agent-a', 'Agent', '\ue000-agent', 'b']
  let fresh = 0
  const counts = { use: 0, batch: 0, store: 0, delete: 0, config: 0, unconfig: 0 }
  for (let step = 0; step < 150; step++) {
    const w = Math.floor(r() * 3)
    const writer = caches[w]
    const roll = r()
    const label = `step ${step} (writer ${names[w]})`
    /** @type {string[]} */
    let touched = []
    if (roll < 0.3) {
      counts.use++
      const id = r() < 0.9 ? knownId() : `missing-${step}-\u{1f600}`
      const o = outcome()
      assert.strictEqual(await writer.recordUsage(id, o), model.use(id, o), `${label}: recordUsage(${id})`)
      touched = [id]
    } else if (roll < 0.45) {
      counts.batch++
      const entries = Array.from({ length: 1 + Math.floor(r() * 30) }, () => ({ id: knownId(), ...outcome() }))
      await writer.recordUsages(entries)
      for (const e of entries) model.use(e.id, e)
      touched = entries.map((e) => e.id)
    } else if (roll < 0.6) {
      counts.store++
      const added = makePatterns(1 + Math.floor(r() * 8), { seed: 1000 + step, tag: `n${step}` })
      const replaced = makePatterns(1 + Math.floor(r() * 3), { seed: 2000 + step, tag: 'r' }).map((p) => ({ ...p, id: knownId() }))
      const batch = [...added, ...replaced.filter((p, i) => replaced.findIndex((q) => q.id === p.id) === i)]
      await writer.storePatterns(batch)
      model.store(batch)
      fresh += added.length
      touched = batch.map((p) => p.id)
    } else if (roll < 0.72) {
      counts.delete++
      const id = r() < 0.85 ? knownId() : `gone-${step}`
      assert.strictEqual(await writer.deletePattern(id), model.byId.delete(id), `${label}: deletePattern(${id})`)
      touched = [id]
    } else if (roll < 0.87) {
      counts.config++
      /** @type {AgentConfigEntry} */
      const entry = { agentId: pick(AGENTS), type: pick(['planner', 'critic']), configJson: JSON.stringify({ step }), version: `0.${step}`, updatedAt: 1_760_000_000_000 + step }
      await writer.storeAgentConfig(entry)
      model.configs.set(entry.agentId, entry)
    } else {
      counts.unconfig++
      const agentId = pick(AGENTS)
      assert.strictEqual(await writer.deleteAgentConfig(agentId), model.configs.delete(agentId), `${label}: deleteAgentConfig(${agentId})`)
      for (const c of caches) assert.equal(await c.loadAgentConfig(agentId), null)
    }
    // Every instance's next read: the touched patterns, the counts, the configs.
    for (const id of new Set(touched)) {
      for (const [i, c] of caches.entries()) assert.deepEqual(plain(await c.loadPattern(id)), model.get(id), `${label}: loadPattern(${id}) on ${names[i]}`)
    }
    await checkStatsAndConfigs(caches, names, model, label)
    if (step % 10 === 9) {
      /** @type {PatternFilter} */
      const filter = pick([{}, { domain: pick(DOMAINS) }, { type: pick(TYPES) }, { framework: pick([...FRAMEWORKS, 'unknown']) }, { domain: pick(DOMAINS), type: pick(TYPES) }])
      await checkPaging(caches, names, model, filter, pick([1, 2, 7, 50, 199, 1000, undefined]), label)
    }
  }
  assert.ok(Object.values(counts).every((n) => n > 5), `every kind of step ran: ${JSON.stringify(counts)}`)
  assert.ok(fresh > 0)
  const m = behind.getMetrics()
  assert.equal(m.tier, 'cache', 'the file that is behind still answers (amended)')
  assert.equal(m.cacheMisses, 0, 'no read of the instance that is behind went to SQLite')
  assert.equal(m.cacheRebuildCount, 1, 'only the build at open')
  // Then rebuilt: the same answers from the new file.
  assert.equal((await behind.rebuildCache()).success, true)
  await checkStatsAndConfigs(caches, names, model, 'after the rebuild')
  await checkPaging(caches, names, model, {}, 64, 'after the rebuild')
  for (const c of caches) assert.deepEqual(plainAll(await c.query({})), model.query({}))
  for (const c of caches) await c.shutdown()
})

test("visibility: after recordUsage/recordUsages the writer's next read has the counts, on every read path and both tiers; another process's uses within checkInterval", async () => {
  for (const enabled of [true, false]) {
    const tier = enabled ? 'tier 1' : 'tier 2'
    const dir = subdir(`visible-${enabled}`)
    const dbPath = path.join(dir, 'p.db')
    const patterns = makePatterns(300, { seed: 41 })
    const seeder = await PatternCache.open({ dbPath, enabled: false })
    await seeder.storePatterns(patterns)
    await seeder.shutdown()
    const model = new StoreModel()
    model.store(patterns)
    // A long checkInterval: only this instance's own writes can explain what it sees.
    const cache = await PatternCache.open({ dbPath, enabled, backgroundRebuild: false, checkInterval: 60_000 })
    const misses = cache.getMetrics().cacheMisses
    const r = rng(7)

    /** Every read path shows the model's version of these patterns. @param {string[]} ids @param {string} what */
    const checkAll = async (ids, what) => {
      for (const id of ids) {
        const want = model.get(id)
        assert.ok(want)
        const label = `${tier}, ${what}, ${id}`
        assert.deepEqual(plain(await cache.loadPattern(id)), want, `${label}: loadPattern`)
        assert.deepEqual((await cache.loadPatterns([id, 'missing', id])).map(plain), [want, null, want], `${label}: loadPatterns`)
        assert.deepEqual(plainAll(await cache.query({ domain: want.domain })), model.query({ domain: want.domain }), `${label}: query by domain`)
        assert.deepEqual(plainAll(await cache.query({ type: want.type, framework: want.framework })), model.query({ type: want.type, framework: want.framework }), `${label}: query`)
        assert.deepEqual(plainAll(await cache.loadPatternsByDomain(want.domain)), model.query({ domain: want.domain }), `${label}: loadPatternsByDomain`)
        assert.deepEqual(plainAll(await cache.loadPatternsByType(want.type)), model.query({ type: want.type }), `${label}: loadPatternsByType`)
        assert.deepEqual(plainAll(await cache.loadPatternsByFramework(want.framework)), model.query({ framework: want.framework }), `${label}: loadPatternsByFramework`)
        const page = await cache.listPatterns({ domain: want.domain, limit: 10_000 })
        assert.deepEqual(plainAll(page.patterns), model.query({ domain: want.domain }), `${label}: listPatterns`)
        const like = await cache.searchSimilar(Float32Array.from(want.embedding), { k: 1000, domain: want.domain })
        assert.equal(like.length, model.query({ domain: want.domain }).length, `${label}: searchSimilar returns every match`)
        const found = like.find((x) => x.pattern.id === id)
        assert.ok(found, `${label}: searchSimilar finds it`)
        for (const x of like) assert.deepEqual(plain(x.pattern), model.get(x.pattern.id), `${label}: searchSimilar's pattern ${x.pattern.id}`)
      }
    }

    for (let k = 0; k < 6; k++) {
      const id = patterns[Math.floor(r() * patterns.length)].id
      const o = { success: k % 2 === 0, at: 1_760_000_000_000 + k }
      assert.strictEqual(await cache.recordUsage(id, o), true)
      model.use(id, o)
      await checkAll([id], `after recordUsage #${k}`)
    }
    const entries = Array.from({ length: 20 }, (_, k) => ({ id: patterns[(k * 13) % patterns.length].id, success: k % 3 === 0, at: 1_770_000_000_000 - k }))
    await cache.recordUsages(entries)
    for (const e of entries) model.use(e.id, e)
    await checkAll([...new Set(entries.map((e) => e.id))].slice(0, 5), 'after recordUsages')
    assert.deepEqual(plainAll(await cache.query({})), model.query({}))
    if (enabled) {
      const m = cache.getMetrics()
      assert.equal(m.tier, 'cache', `${tier}: counter changes are served from the file amended in memory`)
      assert.equal(m.cacheMisses, misses, `${tier}: no read went to SQLite`)
      assert.equal(m.cacheRebuildCount, 1, `${tier}: nothing rebuilt the file`)
    }
    await cache.shutdown()

    // Another process's uses: at once with checkInterval 0, after checkInterval otherwise.
    for (const checkInterval of [0, 150]) {
      const reader = await PatternCache.open({ dbPath, enabled, checkInterval })
      const id = patterns[checkInterval ? 2 : 3].id
      const seen = await reader.loadPattern(id) // the reader has looked before the child writes
      assert.deepEqual(plain(seen), model.get(id))
      const script = `
        const { PatternCache } = require(${JSON.stringify(ROOT)})
        PatternCache.open({ dbPath: ${JSON.stringify(dbPath)}, backgroundRebuild: false }).then(async (c) => {
          for (let i = 0; i < 3; i++) await c.recordUsage(${JSON.stringify(id)}, { success: i > 0, at: 1_780_000_000_000 + i })
          await c.recordUsages([{ id: ${JSON.stringify(id)}, at: 5 }])
          await c.shutdown()
        })`
      execFileSync(process.execPath, ['-e', script])
      for (let i = 0; i < 3; i++) model.use(id, { success: i > 0, at: 1_780_000_000_000 + i })
      model.use(id, { at: 5 })
      // The contract is about time here: a check happens at most every checkInterval.
      if (checkInterval) await sleep(checkInterval + 50)
      assert.deepEqual(plain(await reader.loadPattern(id)), model.get(id), `${tier}, checkInterval ${checkInterval}: the other process's uses`)
      const p = /** @type {Record<string, any>} */ (model.get(id))
      assert.deepEqual(plainAll((await reader.listPatterns({ domain: p.domain, limit: 10_000 })).patterns), model.query({ domain: p.domain }))
      await reader.shutdown()
    }
  }
})

test("burst: 5,000 uses of 5,000 distinct patterns (past the change log's 4,096 keys), then a batch: reads stay on tier 1 (no cache miss), a few rebuilds, not one per use", async () => {
  const dir = subdir('usage-burst')
  const dbPath = path.join(dir, 'p.db')
  const COUNT = 5000
  const patterns = makePatterns(COUNT, { seed: 61 })
  const seeder = await PatternCache.open({ dbPath, enabled: false })
  await seeder.storePatterns(patterns)
  await seeder.shutdown()
  const model = new StoreModel()
  model.store(patterns)
  const log = eventLog()
  const checkInterval = 20
  const cache = await PatternCache.open({ dbPath, checkInterval, onEvent: log.onEvent })
  assert.equal(cache.getMetrics().tier, 'cache')
  await cache.loadPattern(patterns[0].id)
  // The contract is about time here: misses are counted after the first checkInterval.
  await sleep(2 * checkInterval)
  await cache.loadPattern(patterns[0].id)
  const misses0 = cache.getMetrics().cacheMisses
  const events0 = log.events.length
  const r = rng(8)
  const order = patterns.map((p) => p.id).sort(() => r() - 0.5)
  const started = Date.now()
  /** @type {string[]} */
  const wrongTier = []
  /** @param {number} i @param {string} id */
  const checkReads = async (i, id) => {
    const p = /** @type {Record<string, any>} */ (model.get(id))
    assert.deepEqual(plainAll(await cache.query({ domain: p.domain })), model.query({ domain: p.domain }), `use ${i}: query`)
    assert.deepEqual(plainAll((await cache.listPatterns({ type: p.type, limit: 10_000 })).patterns), model.query({ type: p.type }), `use ${i}: listPatterns`)
    assert.deepEqual(await cache.getStats(), model.stats(), `use ${i}: getStats`)
  }
  for (const [i, id] of order.entries()) {
    /** @type {{ success?: boolean, at: number }} */
    const o = { at: 1_760_000_000_000 + i }
    if (i % 2) o.success = i % 4 === 1
    assert.strictEqual(await cache.recordUsage(id, o), true)
    model.use(id, o)
    // Which tier answers reads right now: the file (amended), also between a write and the next read.
    const afterWrite = cache.getMetrics()
    if (afterWrite.tier !== 'cache') wrongTier.push(`use ${i}: ${afterWrite.tier} (${afterWrite.cacheUnavailableReason})`)
    if (i % 3 === 0 || (i >= 4090 && i <= 4100)) {
      assert.deepEqual(plain(await cache.loadPattern(id)), model.get(id), `use ${i}: read-your-writes`)
      assert.equal(cache.getMetrics().tier, 'cache', `use ${i}: tier after a read`)
    }
    if (i % 1000 === 0 || i === 4096) await checkReads(i, id)
  }
  const singles = Date.now() - started
  // A whole test run's worth in one batch, every pattern once or twice.
  /** @type {UsageEntry[]} */
  const entries = order.flatMap((id, i) => (i % 5 ? [{ id, success: true, at: 1_770_000_000_000 + i }] : [{ id }, { id, at: 1 }]))
  const t0 = Date.now()
  await cache.recordUsages(entries)
  const t1 = Date.now()
  for (const e of entries) model.use(e.id, { success: e.success, at: e.at ?? t0 })
  // Entries without `at` were used "now": lastUsed is the time of the batch.
  for (const got of await cache.query({})) {
    const want = /** @type {Record<string, any>} */ (model.get(got.id))
    if (want.lastUsed === t0) {
      assert.ok(got.lastUsed !== undefined && got.lastUsed >= t0 && got.lastUsed <= t1, `${got.id}: lastUsed ${got.lastUsed} is the batch's now (${t0}..${t1})`)
      want.lastUsed = got.lastUsed
    }
  }
  for (const id of order.slice(0, 50)) assert.deepEqual(plain(await cache.loadPattern(id)), model.get(id), `${id} after the batch`)
  await checkReads(-1, order[1])
  const elapsed = Date.now() - started
  assert.deepEqual(
    plainAll(await cache.query({})).map((p) => [p?.id, p?.usageCount, p?.successCount]),
    model.query({}).map((p) => [p.id, p.usageCount, p.successCount]),
  )
  const m = cache.getMetrics()
  const rebuilds = log.events.slice(events0).filter((e) => e.type === 'rebuild_started')
  console.log(`# ${COUNT} uses in ${singles} ms, then a batch of ${entries.length}: ${rebuilds.length} rebuilds started (${rebuilds.map((e) => 'reason' in e && e.reason).join(', ')}), cacheMisses ${m.cacheMisses - misses0}`)
  assert.equal(m.cacheMisses - misses0, 0, 'no read went to SQLite during the burst')
  assert.equal(m.tier, 'cache')
  // Bursts coalesce: at most one rebuild per debounce window (50 ms quiet, at most 500 ms), and one queued.
  const allowed = Math.max(4, Math.ceil(elapsed / 500) + 2)
  assert.ok(rebuilds.length <= allowed, `${rebuilds.length} rebuilds for ${COUNT} uses in ${elapsed} ms (at most ${allowed})`)
  assert.deepEqual(wrongTier.slice(0, 3), [], `getMetrics().tier right after recordUsage resolved (before the next read), ${wrongTier.length} of ${COUNT} times; every read was served from the file`)
  await cache.shutdown()
})

test('4 processes and 2 worker threads record uses of 200 shared patterns at once: exact totals, monotonic reads meanwhile', async () => {
  const dir = subdir('usage-processes')
  const dbPath = path.join(dir, 'p.db')
  const SHARED = 200
  const shared = makePatterns(SHARED, { seed: 31, tag: 'mp' })
  const seeder = await PatternCache.open({ dbPath })
  await seeder.storePatterns(shared)
  await seeder.rebuildCache()
  await seeder.shutdown()
  const model = new StoreModel()
  model.store(shared)
  const initialStats = model.stats()
  const initialUses = shared.reduce((n, p) => n + (p.usageCount ?? 0), 0)

  /** @param {number} seed @param {number} singles @param {number} batches @returns {PlanOp[]} */
  const planFor = (seed, singles, batches) => {
    const r = rng(seed)
    const id = () => shared[Math.floor(r() * SHARED)].id
    const at = () => 1_749_999_500_000 + Math.floor(r() * 1_000_000) // around the initial lastUsed values
    /** @type {PlanOp[]} */
    const plan = []
    const batchEvery = Math.floor(singles / (batches + 1))
    for (let i = 0; i < singles; i++) {
      /** @type {PlanOp} */
      const op = { k: 'u', id: id(), at: at(), expect: true }
      const s = r()
      if (s < 0.45) op.success = true
      else if (s < 0.7) op.success = false
      plan.push(op)
      if (i % 50 === 25) plan.push({ k: 'u', id: `absent-${seed}-${i}-\u{1f600}`, success: true, at: at(), expect: false })
      if (batches && i % batchEvery === batchEvery - 1 && plan.filter((o) => o.k === 'b').length < batches) {
        plan.push({ k: 'b', entries: Array.from({ length: 20 }, (_, j) => (j % 2 ? { id: id(), success: r() < 0.5, at: at() } : { id: id(), at: at() })) })
      }
    }
    return plan
  }
  /** @type {Array<{ thread: boolean, plan: PlanOp[], config: import('../index').PatternCacheConfig }>} */
  const jobs = [
    { thread: false, plan: planFor(1, 500, 5), config: {} },
    { thread: false, plan: planFor(2, 500, 5), config: {} },
    { thread: false, plan: planFor(3, 500, 5), config: { checkInterval: 0 } },
    { thread: false, plan: planFor(4, 500, 5), config: { enabled: false } },
    { thread: true, plan: planFor(5, 250, 2), config: { checkInterval: 0 } },
    { thread: true, plan: planFor(6, 250, 2), config: { enabled: false } },
  ]
  let totalUses = 0
  for (const { plan } of jobs) {
    for (const op of plan) {
      if (op.k === 'u') {
        if (op.expect) totalUses++
        model.use(op.id, { success: op.success, at: op.at })
      } else {
        totalUses += op.entries.length
        for (const e of op.entries) model.use(e.id, { success: e.success, at: /** @type {number} */ (e.at) })
      }
    }
  }
  assert.equal(jobs.filter((j) => !j.thread).reduce((n, j) => n + j.plan.filter((o) => o.k === 'u' && o.expect).length, 0), 4 * 500)

  const checkInterval = 50
  const reader = await PatternCache.open({ dbPath, checkInterval })
  const helpers = jobs.map(({ thread, plan, config }) => startHelper({ mode: 'uses', dbPath, plan, checkEvery: 5, config }, { thread }))
  await Promise.all(helpers.map((h) => h.next('ready')))
  let running = true
  const finished = Promise.all(helpers.map((h) => h.next('done'))).finally(() => (running = false))
  for (const h of helpers) h.post({ type: 'go' })

  // The parent reads while they write: counts never go back, the stats never change.
  /** @type {Map<string, { u: number, s: number, l: number }>} */
  const seen = new Map()
  let reads = 0
  while (running) {
    const id = shared[(reads * 7) % SHARED].id
    const p = await reader.loadPattern(id)
    assert.ok(p, `${id} is there`)
    const last = seen.get(id)
    const now = { u: p.usageCount, s: p.successCount, l: p.lastUsed ?? -1 }
    if (last) assert.ok(now.u >= last.u && now.s >= last.s && now.l >= last.l, `${id} went back: ${JSON.stringify(last)} -> ${JSON.stringify(now)}`)
    seen.set(id, now)
    if (reads % 40 === 0) assert.deepEqual(await reader.getStats(), initialStats, 'uses change no count of getStats')
    if (reads % 150 === 0) {
      const all = await pageAll(reader, {}, 64, { label: 'paging during the uses' })
      assert.deepEqual(all.patterns.map((x) => x.id), model.query({}).map((x) => x.id))
    }
    reads++
    await tick()
  }
  const results = await finished
  const codes = await Promise.all(helpers.map((h) => h.exited))
  for (const [i, res] of results.entries()) {
    assert.deepEqual(res.problems, [], `helper ${i} (${jobs[i].thread ? 'thread' : 'process'}) saw problems`)
    assert.equal(res.ops, jobs[i].plan.length)
  }
  assert.deepEqual(codes, [0, 0, 0, 0, 0, 0], 'every helper exited cleanly')
  assert.equal(reader.getMetrics().cacheMisses, 0, "the reader served other processes' uses from the file amended by the change log")
  const rm = reader.getMetrics()
  console.log(`# parent read ${reads} times while 6 helpers recorded ${totalUses} uses; the reader: tier ${rm.tier}, ${rm.cacheHits} hits, ${rm.cacheMisses} misses, ${rm.cacheRebuildCount} rebuilds`)

  // The contract is about time here: the reader sees other processes' commits within checkInterval.
  await sleep(checkInterval + 50)
  const want = model.query({})
  assert.equal(want.reduce((n, p) => n + p.usageCount, 0), initialUses + totalUses, 'the model holds every use')
  const direct = await PatternCache.open({ dbPath, enabled: false })
  const fresh = await PatternCache.open({ dbPath })
  for (const [name, c] of /** @type {Array<[string, PatternCache]>} */ ([['the reader', reader], ['tier 2', direct], ['a new instance', fresh]])) {
    const got = plainAll(await c.query({}))
    const sum = got.reduce((n, p) => n + /** @type {number} */ (p?.usageCount), 0)
    assert.equal(sum, initialUses + totalUses, `${name}: total usageCount (lost or doubled uses?)`)
    assert.deepEqual(got, want, `${name}: every pattern's usageCount, successCount and lastUsed`)
    assert.deepEqual(plainAll((await pageAll(c, {}, 30)).patterns), want, `${name}: listPatterns`)
    assert.deepEqual(await c.getStats(), initialStats, `${name}: getStats`)
  }
  await reader.shutdown()
  await direct.shutdown()
  await fresh.shutdown()
})

test('paging while another process inserts, deletes and rewrites: no id twice, byte order, every id that existed throughout', async () => {
  const dir = subdir('paging-churn')
  const dbPath = path.join(dir, 'p.db')
  const STABLE = 1200
  const stable = makePatterns(STABLE, { seed: 71, tag: 's' })
  const stableIds = stable.map((p) => p.id)
  // Churn ids sit right after stable ones (and before the first, after the last), so a cursor lands among them.
  const churnIds = [...stableIds.filter((_, i) => i % 3 === 0).map((id) => `${id}+c`), '!-first', '\u{10fffd}-last']
  const seeder = await PatternCache.open({ dbPath })
  await seeder.storePatterns(stable)
  await seeder.rebuildCache()
  await seeder.shutdown()
  const stableById = new Map(stable.map((p) => [p.id, p]))
  const allowed = new Set([...stableIds, ...churnIds])

  const t1 = await PatternCache.open({ dbPath, checkInterval: 0 })
  const t2 = await PatternCache.open({ dbPath, enabled: false })
  const child = startHelper({ mode: 'churn', dbPath, dim: DIM, churnIds, stableIds, domains: ['auth', '検索', 'payments', 'домен'], seed: 5 })
  await child.next('ready')
  child.post({ type: 'go' })
  await child.next('started')

  /** @type {Array<[string, PatternCache, PatternFilter, number]>} */
  const passes = [
    ['tier 1', t1, {}, 7],
    ['tier 2', t2, {}, 11],
    ['tier 1', t1, { domain: 'auth' }, 3],
    ['tier 2', t2, { domain: '検索' }, 2],
    ['tier 1', t1, { type: 'unit' }, 5],
    ['tier 1', t1, {}, 50],
  ]
  let churnSeen = 0
  for (const [name, cache, filter, limit] of passes) {
    const label = `${name} ${JSON.stringify(filter)} limit ${limit}`
    const { patterns, pages } = await pageAll(cache, filter, limit, { strict: false, label })
    const ids = patterns.map((p) => p.id)
    for (let i = 1; i < ids.length; i++) {
      assert.ok(byteOrder(ids[i - 1], ids[i]) < 0, `${label}: ${JSON.stringify(ids[i - 1])} then ${JSON.stringify(ids[i])}: ${byteOrder(ids[i - 1], ids[i]) === 0 ? 'twice' : 'out of byte order'}`)
    }
    for (const p of patterns) {
      assert.ok(allowed.has(p.id), `${label}: ${p.id} was never stored`)
      if (filter.domain) assert.equal(p.domain, filter.domain, `${label}: ${p.id} matches the filter`)
      if (filter.type) assert.equal(p.type, filter.type, `${label}: ${p.id} matches the filter`)
    }
    const got = new Set(ids)
    const missing = stable.filter((p) => (!filter.domain || p.domain === filter.domain) && (!filter.type || p.type === filter.type) && !got.has(p.id))
    assert.deepEqual(missing.map((p) => p.id), [], `${label}: ids that existed throughout were skipped`)
    for (const p of patterns) {
      const s = stableById.get(p.id)
      if (s) assert.deepEqual([p.domain, p.type], [s.domain, s.type], `${label}: ${p.id} kept its fields`)
    }
    churnSeen += ids.filter((id) => !stableById.has(id)).length
    console.log(`# ${label}: ${pages} pages, ${ids.length} ids`)
  }
  child.post({ type: 'stop' })
  const stopped = await child.next('stopped')
  assert.equal(await child.exited, 0)
  assert.deepEqual(stopped.problems, [])
  console.log(`# the child made ${stopped.ops} writes while the parent paged; ${churnSeen} churned ids were seen`)
  assert.ok(stopped.ops > 40, `the child kept writing during the paging (${stopped.ops} writes)`)
  // Quiet again: both tiers page to the same contents.
  const now = plainAll(await t2.query({}))
  assert.deepEqual(plainAll((await pageAll(t1, {}, 97)).patterns), now)
  assert.deepEqual(plainAll((await pageAll(t2, {}, 97)).patterns), now)
  await t1.shutdown()
  await t2.shutdown()
})

test('bad input: each rejects with INVALID_ARGUMENT (never throws), and nothing changes', async () => {
  const dir = subdir('store-bad-input')
  const dbPath = path.join(dir, 'p.db')
  const patterns = makePatterns(120, { seed: 13 })
  const t1 = await PatternCache.open({ dbPath })
  const t2 = await PatternCache.open({ dbPath, enabled: false })
  await t1.storePatterns(patterns)
  await t1.storeAgentConfig({ agentId: 'agent', type: 't', configJson: '{}', version: '1', updatedAt: 1 })
  await t1.rebuildCache()
  const known = patterns[5].id
  const before = await snapshot(dbPath, ['agent'])
  const ok = patterns.slice(0, 10).map((p) => ({ id: p.id, success: true, at: 1_790_000_000_000 }))
  /** @param {unknown} bad */
  const withEntry = (bad) => /** @type {any} */ ([...ok.slice(0, 3), bad, ...ok.slice(3)])
  const page1 = await t1.listPatterns({ limit: 10 })
  assert.ok(page1.cursor)
  const any = /** @type {(v: unknown) => any} */ ((v) => v)

  /** @type {Array<[string, (c: PatternCache) => Promise<unknown>]>} */
  const bad = [
    // recordUsage: the id
    ['recordUsage id a number', (c) => c.recordUsage(any(42), { success: true })],
    ['recordUsage id undefined', (c) => c.recordUsage(any(undefined))],
    ['recordUsage id null', (c) => c.recordUsage(any(null))],
    ['recordUsage id an object', (c) => c.recordUsage(any({ id: known }))],
    ['recordUsage id with a lone surrogate', (c) => c.recordUsage('lone-\ud800', { success: true })],
    // the outcome
    ['recordUsage outcome a string', (c) => c.recordUsage(known, any('success'))],
    ['recordUsage outcome a number', (c) => c.recordUsage(known, any(5))],
    ['recordUsage outcome true', (c) => c.recordUsage(known, any(true))],
    ['recordUsage outcome an array', (c) => c.recordUsage(known, any([true]))],
    ['recordUsage at negative', (c) => c.recordUsage(known, { at: -1 })],
    ['recordUsage at fractional', (c) => c.recordUsage(known, { at: 1.5 })],
    ['recordUsage at NaN', (c) => c.recordUsage(known, { at: NaN })],
    ['recordUsage at Infinity', (c) => c.recordUsage(known, { at: Infinity })],
    ['recordUsage at -Infinity', (c) => c.recordUsage(known, { at: -Infinity })],
    ['recordUsage at 2^53 (not a safe integer)', (c) => c.recordUsage(known, { at: 2 ** 53 })],
    ['recordUsage at 1e300', (c) => c.recordUsage(known, { at: 1e300 })],
    ['recordUsage at a string', (c) => c.recordUsage(known, { at: any('5') })],
    ['recordUsage at a BigInt', (c) => c.recordUsage(known, { at: any(5n) })],
    ['recordUsage at a Date', (c) => c.recordUsage(known, { at: any(new Date(5)) })],
    ['recordUsage success a string', (c) => c.recordUsage(known, { success: any('true') })],
    ['recordUsage success 1', (c) => c.recordUsage(known, { success: any(1) })],
    ['recordUsage success 0 (with a good at)', (c) => c.recordUsage(known, { success: any(0), at: 5 })],
    // recordUsages
    ['recordUsages undefined', (c) => c.recordUsages(any(undefined))],
    ['recordUsages null', (c) => c.recordUsages(any(null))],
    ['recordUsages a string', (c) => c.recordUsages(any('entries'))],
    ['recordUsages an object', (c) => c.recordUsages(any({ 0: ok[0], length: 1 }))],
    ['recordUsages one entry null', (c) => c.recordUsages(withEntry(null))],
    ['recordUsages one entry a string', (c) => c.recordUsages(withEntry(known))],
    ['recordUsages one entry a number', (c) => c.recordUsages(withEntry(7))],
    ['recordUsages one entry an array', (c) => c.recordUsages(withEntry([known]))],
    ['recordUsages one entry without id', (c) => c.recordUsages(withEntry({ success: true }))],
    ['recordUsages one id a number', (c) => c.recordUsages(withEntry({ id: 42 }))],
    ['recordUsages one id with a lone surrogate', (c) => c.recordUsages(withEntry({ id: 'x\udc00' }))],
    ['recordUsages one at negative', (c) => c.recordUsages(withEntry({ id: known, at: -5 }))],
    ['recordUsages one at fractional', (c) => c.recordUsages(withEntry({ id: known, at: 0.5 }))],
    ['recordUsages one at NaN', (c) => c.recordUsages(withEntry({ id: known, at: NaN }))],
    ['recordUsages one at a string', (c) => c.recordUsages(withEntry({ id: known, at: '1' }))],
    ['recordUsages one success a string', (c) => c.recordUsages(withEntry({ id: known, success: 'yes' }))],
    ['recordUsages one unknown id', (c) => c.recordUsages(withEntry({ id: 'no-such-\u{1f600}' }))],
    // listPatterns
    ['listPatterns request a string', (c) => c.listPatterns(any('auth'))],
    ['listPatterns request a number', (c) => c.listPatterns(any(5))],
    ['listPatterns request an array', (c) => c.listPatterns(any([]))],
    ['listPatterns limit 0', (c) => c.listPatterns({ limit: 0 })],
    ['listPatterns limit -1', (c) => c.listPatterns({ limit: -1 })],
    ['listPatterns limit 10,001', (c) => c.listPatterns({ limit: 10_001 })],
    ['listPatterns limit 1e9', (c) => c.listPatterns({ limit: 1e9 })],
    ['listPatterns limit 1.5', (c) => c.listPatterns({ limit: 1.5 })],
    ['listPatterns limit NaN', (c) => c.listPatterns({ limit: NaN })],
    ['listPatterns limit Infinity', (c) => c.listPatterns({ limit: Infinity })],
    ['listPatterns limit a string', (c) => c.listPatterns({ limit: any('10') })],
    ['listPatterns cursor a number', (c) => c.listPatterns({ cursor: any(42) })],
    ['listPatterns cursor an object', (c) => c.listPatterns({ cursor: any({}) })],
    ['listPatterns cursor true', (c) => c.listPatterns({ cursor: any(true) })],
    ['listPatterns cursor an array', (c) => c.listPatterns({ cursor: any([page1.cursor]) })],
    ['listPatterns cursor "garbage"', (c) => c.listPatterns({ cursor: 'garbage' })],
    ['listPatterns cursor "not a cursor!"', (c) => c.listPatterns({ cursor: 'not a cursor!' })],
    ['listPatterns cursor "%%%"', (c) => c.listPatterns({ cursor: '%%%' })],
    ['listPatterns cursor "AAAA"', (c) => c.listPatterns({ cursor: 'AAAA' })],
    ['listPatterns cursor an emoji', (c) => c.listPatterns({ cursor: '\u{1f600}' })],
    ['listPatterns cursor with a lone surrogate', (c) => c.listPatterns({ cursor: 'x\ud800' })],
    ['listPatterns cursor an id', (c) => c.listPatterns({ cursor: known })],
    ['listPatterns good cursor, limit 0', (c) => c.listPatterns({ cursor: page1.cursor, limit: 0 })],
    ['listPatterns domain a number', (c) => c.listPatterns({ domain: any(5) })],
    ['listPatterns type an object', (c) => c.listPatterns({ type: any({}) })],
    ['listPatterns framework false', (c) => c.listPatterns({ framework: any(false) })],
    ['listPatterns domain with a lone surrogate', (c) => c.listPatterns({ domain: 'd\udc00' })],
    // deleteAgentConfig
    ['deleteAgentConfig a number', (c) => c.deleteAgentConfig(any(42))],
    ['deleteAgentConfig undefined', (c) => c.deleteAgentConfig(any(undefined))],
    ['deleteAgentConfig null', (c) => c.deleteAgentConfig(any(null))],
    ['deleteAgentConfig an object', (c) => c.deleteAgentConfig(any({ agentId: 'agent' }))],
    ['deleteAgentConfig with a lone surrogate', (c) => c.deleteAgentConfig('agent\ud800')],
  ]
  for (const [i, c] of [t1, t2].entries()) {
    for (const [what, call] of bad) await rejectsWith(() => call(c), 'INVALID_ARGUMENT', `${i ? 'tier 2' : 'tier 1'}: ${what}`)
    // Ids no pattern can have: either an unknown id (false) or a bad one; never a change.
    for (const id of ['', 'a\0b', 'x'.repeat(2000)]) {
      const got = await c.recordUsage(id, { success: true }).catch((/** @type {any} */ e) => e.code)
      assert.ok(got === false || got === 'INVALID_ARGUMENT', `recordUsage(${JSON.stringify(id.slice(0, 10))}): ${got}`)
    }
  }
  assert.deepEqual(await snapshot(dbPath, ['agent']), before, 'bad input changed the database')
  // And the good cursor still works, on both.
  for (const c of [t1, t2]) assert.equal((await c.listPatterns({ limit: 10, cursor: page1.cursor })).patterns[0]?.id, before.patterns[10]?.id)
  await t1.shutdown()
  await t2.shutdown()
})

test('after shutdown every store call rejects with CLOSED and writes nothing', async () => {
  const dir = subdir('store-closed')
  const dbPath = path.join(dir, 'p.db')
  /** @type {string[]} */
  const wrong = []
  for (const enabled of [true, false]) {
    const cache = await PatternCache.open({ dbPath, enabled })
    const patterns = makePatterns(5, { seed: 3 })
    await cache.storePatterns(patterns)
    await cache.storeAgentConfig({ agentId: 'agent', type: 't', configJson: '{}', version: '1', updatedAt: 1 })
    const page = await cache.listPatterns({ limit: 2 })
    const before = await snapshot(dbPath, ['agent'])
    await cache.shutdown()
    const id = patterns[0].id
    /** @type {Array<[string, () => Promise<unknown>]>} */
    const calls = [
      ['recordUsage', () => cache.recordUsage(id)],
      ['recordUsage with an outcome', () => cache.recordUsage(id, { success: true, at: 5 })],
      ['recordUsages', () => cache.recordUsages([{ id }, { id, success: true }])],
      ['recordUsages []', () => cache.recordUsages([])],
      ['getStats', () => cache.getStats()],
      ['listPatterns', () => cache.listPatterns()],
      ['listPatterns with a cursor', () => cache.listPatterns({ limit: 2, cursor: page.cursor })],
      ['listAgentConfigs', () => cache.listAgentConfigs()],
      ['deleteAgentConfig', () => cache.deleteAgentConfig('agent')],
    ]
    for (const [what, call] of calls) {
      await rejectsWith(call, 'CLOSED', `${enabled ? 'tier 1' : 'tier 2'}: ${what}`).catch((/** @type {Error} */ e) => wrong.push(e.message))
    }
    assert.deepEqual(await snapshot(dbPath, ['agent']), before, 'a call after shutdown changed the database')
  }
  assert.deepEqual(wrong, [], 'calls after shutdown that did not reject with CLOSED')
})

// @ts-check
'use strict'
// Every field of TestPattern, AgentConfigEntry and PatternCacheConfig (and
// every read argument) wrong in type, range or size, plus values that look
// odd but are valid data (SQL-looking strings, limits exactly at their
// bound), which must be accepted and come back exactly. Each case is run
// against a database with content; afterwards the database must hold
// exactly what it held before (the full query({}) from SQLite and the raw
// agent_configs table), apart from what an accepted case wrote.
// Odd paths (dbPath/cachePath) each run against a scratch database held
// open by a writer, as a live application would.
//
//   node torture/bad-input.js

const fs = require('node:fs')
const path = require('node:path')
const { spawn } = require('node:child_process')
const { PatternCache } = require('../index.js')
const lib = require('./lib.js')

/** @typedef {import('../index').TestPattern} TestPattern */
/** @typedef {'reject' | 'accept' | 'either'} Expect */
/**
 * @typedef {{
 *   name: string,
 *   expect: Expect,
 *   codes?: string[],
 *   call: (cache: PatternCache) => unknown,
 *   writes?: { patterns?: string[], configs?: string[] },
 *   check?: (cache: PatternCache, value: unknown) => Promise<string | null>,
 *   paths?: (scratch: string) => import('../index').PatternCacheConfig,
 * }} Case
 */

const DIM = 8
const KB = 1024
const MB = 1024 * KB
const SQL = ["x'; DROP TABLE patterns; --", "' OR '1'='1", 'Robert"); DELETE FROM agent_configs; --', '1; UPDATE patterns SET content = NULL']

/** A valid new pattern. @param {string} [id] @returns {Record<string, any>} */
const valid = (id = 'bad-input-new') => ({ ...lib.makePattern(id, 7, DIM), embedding: Array.from(lib.makePattern(id, 7, DIM).embedding) })
/** A valid new agent config. @param {string} [agentId] @returns {Record<string, any>} */
const validConfig = (agentId = 'agent-new') => ({ agentId, type: 'planner', configJson: '{"a":1}', version: '1.0.0', updatedAt: 1_700_000_000_000 })

/** A cycle, for metadata. */
function cyclic() {
  /** @type {Record<string, unknown>} */
  const o = { a: 1 }
  o.self = o
  return o
}

/**
 * Stored pattern equals what was given (the fields the caller set).
 * @param {PatternCache} cache @param {Record<string, any>} p
 */
async function roundTrips(cache, p) {
  for (const tier of ['cache', 'sqlite']) {
    const direct = tier === 'cache' ? null : await PatternCache.open({ dbPath: /** @type {string} */ (current.dbPath), enabled: false })
    const got = await (direct ?? cache).loadPattern(p.id)
    if (direct) await direct.shutdown()
    if (!got) return `${tier}: ${JSON.stringify(p.id).slice(0, 40)} not found`
    for (const key of ['id', 'type', 'domain', 'content', 'framework', 'verdict', 'coverage', 'flakinessScore', 'createdAt', 'lastUsed', 'usageCount', 'successCount']) {
      if (p[key] !== undefined && p[key] !== null && /** @type {any} */ (got)[key] !== p[key]) return `${tier}: ${key} came back as ${JSON.stringify(/** @type {any} */ (got)[key]).slice(0, 60)}`
    }
    if (p.metadata !== undefined && p.metadata !== null && canonical(got.metadata) !== canonical(JSON.parse(JSON.stringify(p.metadata)))) return `${tier}: metadata came back as ${JSON.stringify(got.metadata).slice(0, 60)}`
    if (got.embedding.length !== p.embedding.length) return `${tier}: embedding length ${got.embedding.length}`
  }
  return null
}

/** JSON with object keys sorted (the store keeps metadata as canonical JSON). @param {unknown} v @returns {string} */
function canonical(v) {
  return JSON.stringify(v, (_, x) => (x && typeof x === 'object' && !Array.isArray(x) ? Object.fromEntries(Object.entries(x).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) : x))
}

/** The database in use by the cases (set by run()). @type {{ dbPath?: string }} */
const current = {}

/**
 * A pattern case: `mutate` turns a valid pattern into the input.
 * @param {string} name @param {(p: Record<string, any>) => unknown} mutate @param {Expect} expect
 * @returns {Case}
 */
function pattern(name, mutate, expect) {
  const input = mutate(valid(`bad-input-${name.replace(/[^a-z0-9]+/gi, '-')}`))
  const id = input && typeof input === 'object' && 'id' in input && typeof input.id === 'string' ? input.id : undefined
  return {
    name: `TestPattern ${name}`,
    expect,
    codes: ['INVALID_PATTERN'],
    call: (c) => c.storePattern(/** @type {TestPattern} */ (input)),
    writes: { patterns: id === undefined ? [] : [id] },
    check: (c) => roundTrips(c, /** @type {Record<string, any>} */ (input)),
  }
}

/**
 * A config case.
 * @param {string} name @param {(c: Record<string, any>) => unknown} mutate @param {Expect} expect
 * @returns {Case}
 */
function config(name, mutate, expect) {
  const input = mutate(validConfig(`agent-${name.replace(/[^a-z0-9]+/gi, '-')}`))
  const id = input && typeof input === 'object' && 'agentId' in input && typeof input.agentId === 'string' ? input.agentId : undefined
  return {
    name: `AgentConfigEntry ${name}`,
    expect,
    codes: ['INVALID_AGENT_CONFIG'],
    call: (c) => c.storeAgentConfig(/** @type {import('../index').AgentConfigEntry} */ (input)),
    writes: { configs: id === undefined ? [] : [id] },
    check: async (c) => {
      const i = /** @type {Record<string, any>} */ (input)
      const got = await c.loadAgentConfig(i.agentId)
      if (!got) return 'not found'
      for (const key of ['agentId', 'type', 'configJson', 'version', 'updatedAt']) {
        if (/** @type {any} */ (got)[key] !== i[key]) return `${key} came back as ${JSON.stringify(/** @type {any} */ (got)[key]).slice(0, 60)}`
      }
      return null
    },
  }
}

/**
 * A read (or markStale) argument case: never writes.
 * @param {string} name @param {(c: PatternCache) => unknown} call @param {Expect} expect
 * @param {((c: PatternCache, value: unknown) => Promise<string | null>)} [check]
 * @returns {Case}
 */
function read(name, call, expect, check) {
  return { name, expect, codes: ['INVALID_ARGUMENT'], call, ...(check ? { check } : {}) }
}

/**
 * An open() option case on the main database.
 * @param {string} name @param {Record<string, unknown>} cfg @param {Expect} expect
 * @returns {Case}
 */
function option(name, cfg, expect) {
  return {
    name: `PatternCacheConfig ${name}`,
    expect,
    codes: ['INVALID_ARGUMENT'],
    call: async () => {
      const c = await PatternCache.open(/** @type {any} */ ({ dbPath: current.dbPath, ...cfg }))
      await c.shutdown()
    },
  }
}

/**
 * An odd path, on a scratch database held open by a writer.
 * @param {string} name @param {(scratch: string) => import('../index').PatternCacheConfig} paths @param {Expect} expect @param {string[]} codes
 * @returns {Case}
 */
function oddPath(name, paths, expect, codes) {
  return { name: `path: ${name}`, expect, codes, call: () => undefined, paths }
}

/** @returns {Case[]} */
function cases() {
  const numbers = /** @type {Array<[string, unknown]>} */ ([
    ['NaN', NaN],
    ['Infinity', Infinity],
    ['-Infinity', -Infinity],
    ['-1', -1],
    ['1e300', 1e300],
    ['a string', '0.5'],
    ['a boolean', true],
    ['an object', {}],
  ])
  /** @type {Case[]} */
  const all = []
  // TestPattern: the whole value.
  for (const [n, v] of /** @type {Array<[string, unknown]>} */ ([['null', null], ['a string', 'pattern'], ['an array', []], ['a number', 42], ['undefined', undefined]])) {
    all.push(pattern(`is ${n}`, () => v, 'reject'))
  }
  // Keys: id, type, domain, framework.
  for (const [key, max] of /** @type {Array<[string, number]>} */ ([['id', 1024], ['type', 256], ['domain', 256], ['framework', 256]])) {
    all.push(pattern(`${key} empty`, (p) => ({ ...p, [key]: '' }), 'reject'))
    all.push(pattern(`${key} a number`, (p) => ({ ...p, [key]: 42 }), 'reject'))
    all.push(pattern(`${key} an object`, (p) => ({ ...p, [key]: { toString: () => 'x' } }), 'reject'))
    all.push(pattern(`${key} with NUL`, (p) => ({ ...p, [key]: 'a\0b' }), 'reject'))
    all.push(pattern(`${key} ${max + 1} bytes`, (p) => ({ ...p, [key]: 'k'.repeat(max + 1) }), 'reject'))
    all.push(pattern(`${key} ${max + 2} bytes of 2-byte characters`, (p) => ({ ...p, [key]: 'é'.repeat(max / 2 + 1) }), 'reject'))
    all.push(pattern(`${key} exactly ${max} bytes`, (p) => ({ ...p, [key]: key === 'id' ? `i${'d'.repeat(max - 1)}` : 'k'.repeat(max) }), 'accept'))
    SQL.forEach((s, i) => all.push(pattern(`${key} SQL-looking ${i}`, (p) => ({ ...p, [key]: key === 'id' ? `${s} ${i}` : s }), 'accept')))
  }
  for (const key of ['id', 'type', 'domain', 'content']) {
    all.push(pattern(`${key} missing`, (p) => ({ ...p, [key]: undefined }), 'reject'))
    all.push(pattern(`${key} null`, (p) => ({ ...p, [key]: null }), 'reject'))
  }
  all.push(pattern('framework null (absent)', (p) => ({ ...p, framework: null }), 'accept'))
  // Not valid Unicode: stored as U+FFFD it would no longer be the id given (and collide with others).
  all.push(pattern('id a lone surrogate', (p) => ({ ...p, id: 'lone-\ud800' }), 'reject'))
  all.push(pattern('domain a lone surrogate', (p) => ({ ...p, domain: 'lone-\udc00' }), 'reject'))
  // content
  all.push(pattern('content 10 MB', (p) => ({ ...p, content: 'c'.repeat(10 * MB) }), 'reject'))
  all.push(pattern('content 1 MiB + 1 byte', (p) => ({ ...p, content: 'c'.repeat(MB + 1) }), 'reject'))
  all.push(pattern('content exactly 1 MiB', (p) => ({ ...p, content: 'c'.repeat(MB) }), 'accept'))
  all.push(pattern('content empty', (p) => ({ ...p, content: '' }), 'accept'))
  all.push(pattern('content with NUL and control characters', (p) => ({ ...p, content: 'a\0b\u0001\u007f\r\n' }), 'accept'))
  all.push(pattern('content a number', (p) => ({ ...p, content: 42 }), 'reject'))
  SQL.forEach((s, i) => all.push(pattern(`content SQL-looking ${i}`, (p) => ({ ...p, content: s }), 'accept')))
  // embedding
  all.push(pattern('embedding empty array', (p) => ({ ...p, embedding: [] }), 'reject'))
  all.push(pattern('embedding empty Float32Array', (p) => ({ ...p, embedding: new Float32Array(0) }), 'reject'))
  all.push(pattern('embedding 1,000,000 dimensions', (p) => ({ ...p, embedding: new Float32Array(1_000_000) }), 'reject'))
  all.push(pattern('embedding 1,000,000 dimensions as number[]', (p) => ({ ...p, embedding: new Array(1_000_000).fill(0) }), 'reject'))
  all.push(pattern('embedding 16,385 dimensions', (p) => ({ ...p, embedding: new Float32Array(16_385) }), 'reject'))
  all.push(pattern('embedding of another dimension than the database', (p) => ({ ...p, embedding: new Float32Array(DIM + 1) }), 'reject'))
  all.push(pattern('embedding with NaN', (p) => ({ ...p, embedding: [NaN, ...p.embedding.slice(1)] }), 'reject'))
  all.push(pattern('embedding with Infinity', (p) => ({ ...p, embedding: [...p.embedding.slice(1), Infinity] }), 'reject'))
  all.push(pattern('embedding Float32Array with NaN', (p) => ({ ...p, embedding: Float32Array.from([NaN, ...p.embedding.slice(1)]) }), 'reject'))
  all.push(pattern('embedding element 1e300 (overflows float32)', (p) => ({ ...p, embedding: [1e300, ...p.embedding.slice(1)] }), 'reject'))
  all.push(pattern('embedding with a string element', (p) => ({ ...p, embedding: ['1', ...p.embedding.slice(1)] }), 'reject'))
  all.push(pattern('embedding sparse array', (p) => ({ ...p, embedding: new Array(DIM) }), 'reject'))
  all.push(pattern('embedding a Float64Array', (p) => ({ ...p, embedding: new Float64Array(DIM) }), 'reject'))
  all.push(pattern('embedding an array-like object', (p) => ({ ...p, embedding: { length: DIM, 0: 1 } }), 'reject'))
  all.push(pattern('embedding a string', (p) => ({ ...p, embedding: '[1,2,3]' }), 'reject'))
  all.push(pattern('embedding null', (p) => ({ ...p, embedding: null }), 'reject'))
  // numbers in 0..1
  for (const key of ['coverage', 'flakinessScore']) {
    for (const [n, v] of numbers) all.push(pattern(`${key} ${n}`, (p) => ({ ...p, [key]: v }), 'reject'))
    all.push(pattern(`${key} 1.0000001`, (p) => ({ ...p, [key]: 1.0000001 }), 'reject'))
    all.push(pattern(`${key} 0`, (p) => ({ ...p, [key]: 0 }), 'accept'))
    all.push(pattern(`${key} 1`, (p) => ({ ...p, [key]: 1 }), 'accept'))
  }
  // verdict
  for (const [n, v] of /** @type {Array<[string, unknown]>} */ ([['bogus', 'bogus'], ['empty', ''], ['upper case', 'SUCCESS'], ['a number', 1], ['SQL-looking', SQL[0]]])) {
    all.push(pattern(`verdict ${n}`, (p) => ({ ...p, verdict: v }), 'reject'))
  }
  // timestamps and counts
  for (const [key, max] of /** @type {Array<[string, number]>} */ ([['createdAt', 8.64e15], ['lastUsed', 8.64e15], ['usageCount', Number.MAX_SAFE_INTEGER], ['successCount', Number.MAX_SAFE_INTEGER]])) {
    for (const [n, v] of numbers) all.push(pattern(`${key} ${n}`, (p) => ({ ...p, [key]: v }), 'reject'))
    all.push(pattern(`${key} 1.5`, (p) => ({ ...p, [key]: 1.5 }), 'reject'))
    all.push(pattern(`${key} max + 1`, (p) => ({ ...p, [key]: max + 2 }), 'reject'))
    all.push(pattern(`${key} max`, (p) => ({ ...p, [key]: max }), 'accept'))
    all.push(pattern(`${key} 0`, (p) => ({ ...p, [key]: 0 }), 'accept'))
  }
  // metadata
  all.push(pattern('metadata with a cycle', (p) => ({ ...p, metadata: cyclic() }), 'reject'))
  all.push(pattern('metadata with a BigInt', (p) => ({ ...p, metadata: { n: 10n } }), 'reject'))
  all.push(pattern('metadata an array', (p) => ({ ...p, metadata: [1, 2] }), 'reject'))
  all.push(pattern('metadata a string', (p) => ({ ...p, metadata: '{"a":1}' }), 'reject'))
  all.push(pattern('metadata a Date (JSON is a string)', (p) => ({ ...p, metadata: new Date(0) }), 'reject'))
  all.push(pattern('metadata 300 KB of JSON', (p) => ({ ...p, metadata: { blob: 'm'.repeat(300 * KB) } }), 'reject'))
  all.push(pattern('metadata whose toJSON throws', (p) => ({ ...p, metadata: { toJSON: () => { throw new Error('no') } } }), 'reject'))
  all.push(pattern('metadata null (absent)', (p) => ({ ...p, metadata: null }), 'accept'))
  all.push(pattern('metadata SQL-looking values', (p) => ({ ...p, metadata: { q: SQL[0], [SQL[1]]: SQL[2] } }), 'accept'))
  all.push(pattern('metadata with undefined and function values (dropped by JSON)', (p) => ({ ...p, metadata: { a: undefined, f: () => 1, b: 2 } }), 'accept'))
  all.push(pattern('metadata nested 100 deep', (p) => {
    /** @type {Record<string, unknown>} */
    let m = { leaf: true }
    for (let i = 0; i < 100; i++) m = { m }
    return { ...p, metadata: m }
  }, 'accept'))
  // The documented nesting limit (README "Limits": at most 127 levels), exactly at and past it.
  /** @param {number} levels @returns {Record<string, unknown>} objects nested `levels` deep */
  const nested = (levels) => {
    /** @type {Record<string, unknown>} */
    let m = {}
    for (let i = 1; i < levels; i++) m = { m }
    return m
  }
  all.push(pattern('metadata nested exactly 127 levels', (p) => ({ ...p, metadata: nested(127) }), 'accept'))
  all.push(pattern('metadata nested 128 levels', (p) => ({ ...p, metadata: nested(128) }), 'reject'))
  // Past the documented nesting limit (127 levels, README "Limits"): rejected with INVALID_PATTERN.
  all.push(pattern('metadata nested 200 deep (1 KB of JSON)', (p) => {
    /** @type {Record<string, unknown>} */
    let m = { leaf: true }
    for (let i = 0; i < 200; i++) m = { m }
    return { ...p, metadata: m }
  }, 'reject'))
  all.push(pattern('metadata nested 10,000 deep', (p) => {
    /** @type {Record<string, unknown>} */
    let m = { leaf: true }
    for (let i = 0; i < 10_000; i++) m = { m }
    return { ...p, metadata: m }
  }, 'either'))
  all.push(pattern('an unknown extra field', (p) => ({ ...p, bogus: 1 }), 'either'))

  // storePatterns: batches.
  const batch = (/** @type {string} */ name, /** @type {unknown} */ input, /** @type {Expect} */ expect) => all.push({ name: `storePatterns ${name}`, expect, codes: ['INVALID_PATTERN'], call: (c) => c.storePatterns(/** @type {any} */ (input)) })
  batch('not an array', valid(), 'reject')
  batch('null', null, 'reject')
  batch('a valid pattern then a bad one (all or nothing)', [valid('batch-good'), { ...valid('batch-bad'), coverage: NaN }], 'reject')
  batch('the same id twice', [valid('batch-twice'), valid('batch-twice')], 'reject')
  batch('two dimensions', [valid('batch-dim-a'), { ...valid('batch-dim-b'), embedding: [1, 2] }], 'reject')
  batch('empty', [], 'accept')

  // AgentConfigEntry.
  for (const [n, v] of /** @type {Array<[string, unknown]>} */ ([['null', null], ['a string', 'config'], ['an array', []]])) all.push(config(`is ${n}`, () => v, 'reject'))
  for (const [key, max] of /** @type {Array<[string, number]>} */ ([['agentId', 1024], ['type', 256], ['version', 256]])) {
    all.push(config(`${key} empty`, (c) => ({ ...c, [key]: '' }), 'reject'))
    all.push(config(`${key} a number`, (c) => ({ ...c, [key]: 42 }), 'reject'))
    all.push(config(`${key} missing`, (c) => ({ ...c, [key]: undefined }), 'reject'))
    all.push(config(`${key} with NUL`, (c) => ({ ...c, [key]: 'a\0b' }), 'reject'))
    all.push(config(`${key} ${max + 1} bytes`, (c) => ({ ...c, [key]: 'k'.repeat(max + 1) }), 'reject'))
    SQL.forEach((s, i) => all.push(config(`${key} SQL-looking ${i}`, (c) => ({ ...c, [key]: key === 'agentId' ? `${s} ${i}` : s }), 'accept')))
  }
  for (const [n, v] of /** @type {Array<[string, unknown]>} */ ([['not JSON', 'not json'], ['empty', ''], ['truncated JSON', '{"a":'], ['a number', 42], ['null', null], ['2 MB', JSON.stringify('j'.repeat(2 * MB))], ['JSON with trailing garbage', '{} x']])) {
    all.push(config(`configJson ${n}`, (c) => ({ ...c, configJson: v }), 'reject'))
  }
  all.push(config('configJson a JSON string holding SQL', (c) => ({ ...c, configJson: JSON.stringify(SQL[2]) }), 'accept'))
  all.push(config('configJson any JSON value (a number)', (c) => ({ ...c, configJson: '42' }), 'accept'))
  all.push(config('configJson nested 1,000 deep', (c) => ({ ...c, configJson: `${'['.repeat(1000)}${']'.repeat(1000)}` }), 'accept'))
  for (const [n, v] of numbers) all.push(config(`updatedAt ${n}`, (c) => ({ ...c, updatedAt: v }), 'reject'))
  all.push(config('updatedAt 1.5', (c) => ({ ...c, updatedAt: 1.5 }), 'reject'))
  all.push(config('updatedAt missing', (c) => ({ ...c, updatedAt: undefined }), 'reject'))

  // Read arguments (and markStale).
  for (const [n, v] of /** @type {Array<[string, unknown]>} */ ([['a number', 42], ['empty', ''], ['null', null], ['with NUL', 'a\0b'], ['2,000 bytes', 'x'.repeat(2000)], ['an object', {}]])) {
    all.push(read(`loadPattern(id ${n})`, (c) => c.loadPattern(/** @type {any} */ (v)), 'reject'))
    all.push(read(`deletePattern(id ${n})`, (c) => c.deletePattern(/** @type {any} */ (v)), 'reject'))
    all.push(read(`loadAgentConfig(agentId ${n})`, (c) => c.loadAgentConfig(/** @type {any} */ (v)), 'reject'))
    all.push(read(`loadPatternsByDomain(${n})`, (c) => c.loadPatternsByDomain(/** @type {any} */ (v)), 'reject'))
    all.push(read(`loadPatterns([${n}])`, (c) => c.loadPatterns(/** @type {any} */ ([v])), 'reject'))
  }
  all.push(read('loadPatterns(a string)', (c) => c.loadPatterns(/** @type {any} */ ('ids')), 'reject'))
  for (const s of SQL) {
    all.push(read(`loadPattern(SQL-looking id)`, (c) => c.loadPattern(s), 'accept', async (_, v) => (v === null ? null : 'found something')))
    all.push(read(`deletePattern(SQL-looking id)`, (c) => c.deletePattern(s), 'accept', async (_, v) => (v === false ? null : `returned ${v}`)))
    all.push(read(`query({ domain: SQL-looking })`, (c) => c.query({ domain: s }), 'accept', async (_, v) => (Array.isArray(v) && v.every((p) => p.domain === s) ? null : `returned ${Array.isArray(v) ? v.map((p) => p.domain).join() : v}`)))
  }
  for (const [n, v] of /** @type {Array<[string, unknown]>} */ ([['null', null], ['a string', 'auth'], ['an array', []]])) all.push(read(`query(${n})`, (c) => c.query(/** @type {any} */ (v)), 'reject'))
  for (const [n, v] of numbers) all.push(read(`query({ limit: ${n} })`, (c) => c.query(/** @type {any} */ ({ limit: v })), n === '1e300' ? 'either' : 'reject'))
  all.push(read('query({ limit: 1.5 })', (c) => c.query({ limit: 1.5 }), 'reject'))
  all.push(read('query({ limit: 2^53 })', (c) => c.query({ limit: 2 ** 53 }), 'either'))
  all.push(read('query({ limit: 0 })', (c) => c.query({ limit: 0 }), 'accept', async (_, v) => (Array.isArray(v) && v.length === 0 ? null : 'returned patterns')))
  all.push(read("query({ domain: '' })", (c) => c.query({ domain: '' }), 'reject'))
  all.push(read('query({ type: 42 })', (c) => c.query(/** @type {any} */ ({ type: 42 })), 'reject'))
  for (const [n, v] of /** @type {Array<[string, unknown]>} */ ([['null', null], ['a string', 'manual'], ['an unknown trigger', { trigger: 'bogus', requiresRebuild: true }], ['requiresRebuild missing', { trigger: 'manual' }], ['requiresRebuild a string', { trigger: 'manual', requiresRebuild: 'yes' }], ['timestamp a string', { trigger: 'manual', requiresRebuild: false, timestamp: 'now' }]])) {
    all.push(read(`markStale(${n})`, (c) => c.markStale(/** @type {any} */ (v)), 'reject'))
  }

  // PatternCacheConfig options.
  for (const key of ['maxAge', 'checkInterval']) {
    for (const [n, v] of numbers) all.push(option(`${key} ${n}`, { [key]: v }, 'reject'))
  }
  all.push(option('checkInterval 0', { checkInterval: 0 }, 'accept'))
  all.push(option('maxAge 0', { maxAge: 0 }, 'reject'))
  for (const key of ['enabled', 'backgroundRebuild', 'fallbackToSQLite', 'enableMetrics']) {
    all.push(option(`${key} a string`, { [key]: 'yes' }, 'reject'))
    all.push(option(`${key} a number`, { [key]: 1 }, 'reject'))
  }
  all.push(option('onEvent a string', { onEvent: 'log' }, 'reject'))
  all.push(option('onEvent an object', { onEvent: {} }, 'reject'))
  all.push(option('dbPath a number', { dbPath: 42 }, 'reject'))
  all.push(option('cachePath an object', { cachePath: {} }, 'reject'))
  all.push(option('an unknown option', { bogus: true }, 'either'))
  for (const [n, v] of /** @type {Array<[string, unknown]>} */ ([['a string', 'config'], ['a number', 42], ['an array', []]])) {
    all.push({ name: `PatternCacheConfig is ${n}`, expect: 'reject', codes: ['INVALID_ARGUMENT'], call: () => PatternCache.open(/** @type {any} */ (v)) })
  }

  // Odd paths, each on its own scratch database.
  const io = ['IO_ERROR', 'DB_ERROR', 'INVALID_ARGUMENT']
  all.push(oddPath('dbPath empty', () => ({ dbPath: '' }), 'reject', ['INVALID_ARGUMENT']))
  all.push(oddPath('dbPath with NUL', (d) => ({ dbPath: path.join(d, 'a\0b.db') }), 'reject', ['INVALID_ARGUMENT']))
  all.push(oddPath('dbPath a directory', (d) => ({ dbPath: d }), 'reject', io))
  all.push(oddPath('dbPath through a regular file', (d) => ({ dbPath: path.join(d, 'a-file', 'patterns.db') }), 'reject', io))
  all.push(oddPath('dbPath 5,000 characters', (d) => ({ dbPath: path.join(d, 'x'.repeat(5000)) }), 'reject', io))
  all.push(oddPath('dbPath 300 nested directories of 20 characters (8 KB)', (d) => ({ dbPath: path.join(d, ...Array(300).fill('d'.repeat(20)), 'p.db') }), 'either', io))
  all.push(oddPath('dbPath a regular file that is not a database', (d) => ({ dbPath: path.join(d, 'a-file') }), 'reject', io))
  all.push(oddPath('cachePath empty', (d) => ({ dbPath: path.join(d, 'patterns.db'), cachePath: '' }), 'reject', ['INVALID_ARGUMENT']))
  all.push(oddPath('cachePath with NUL', (d) => ({ dbPath: path.join(d, 'patterns.db'), cachePath: path.join(d, 'c\0.pcache') }), 'reject', ['INVALID_ARGUMENT']))
  all.push(oddPath('cachePath the database itself', (d) => ({ dbPath: path.join(d, 'patterns.db'), cachePath: path.join(d, 'patterns.db') }), 'reject', ['INVALID_ARGUMENT']))
  all.push(oddPath('cachePath the database by another spelling', (d) => ({ dbPath: path.join(d, 'patterns.db'), cachePath: path.join(d, '.', 'sub', '..', 'patterns.db') }), 'reject', io))
  all.push(oddPath("cachePath the database's WAL file", (d) => ({ dbPath: path.join(d, 'patterns.db'), cachePath: path.join(d, 'patterns.db-wal') }), 'reject', io))
  all.push(oddPath("cachePath the database's shared-memory file", (d) => ({ dbPath: path.join(d, 'patterns.db'), cachePath: path.join(d, 'patterns.db-shm') }), 'reject', io))
  // A cache that cannot be written is not an error: open serves from SQLite.
  all.push(oddPath('cachePath a directory', (d) => ({ dbPath: path.join(d, 'patterns.db'), cachePath: path.join(d, 'a-dir') }), 'either', io))
  all.push(oddPath('cachePath through a regular file', (d) => ({ dbPath: path.join(d, 'patterns.db'), cachePath: path.join(d, 'a-file', 'c.pcache') }), 'either', io))
  all.push(oddPath('cachePath 5,000 characters', (d) => ({ dbPath: path.join(d, 'patterns.db'), cachePath: path.join(d, 'c'.repeat(5000)) }), 'either', io))
  all.push(oddPath('cachePath in a directory that does not exist yet', (d) => ({ dbPath: path.join(d, 'patterns.db'), cachePath: path.join(d, 'new', 'dir', 'c.pcache') }), 'accept', io))
  return all
}

/**
 * Everything the database holds: every pattern (SQLite, `enabled: false`)
 * and the agent configs under `agentIds` (or, without them, the raw
 * agent_configs table read by python3). Keys are ids.
 * @param {string} dbPath @param {Set<string>} [agentIds]
 */
async function snapshot(dbPath, agentIds) {
  const direct = await PatternCache.open({ dbPath, enabled: false })
  try {
    const patterns = new Map((await direct.query({})).map((p) => [p.id, JSON.stringify(lib.plain(p))]))
    /** @type {Map<string, string>} */
    const configs = new Map()
    if (agentIds) {
      for (const id of agentIds) configs.set(id, JSON.stringify(await direct.loadAgentConfig(id)))
    } else {
      for (const r of lib.sqlite(dbPath, 'SELECT * FROM agent_configs')) configs.set(String(r[0]), JSON.stringify(r))
    }
    return { patterns, configs }
  } finally {
    await direct.shutdown()
  }
}

/** Agent ids the package can be asked for (non-empty, at most 1,024 bytes, no NUL). @param {unknown} id */
const askable = (id) => typeof id === 'string' && id !== '' && Buffer.byteLength(id) <= 1024 && !id.includes('\0')

/**
 * Keys whose value differs between two maps, ignoring `allowed`.
 * @param {Map<string, string>} a @param {Map<string, string>} b @param {string[]} allowed
 */
function changed(a, b, allowed) {
  const skip = new Set(allowed)
  /** @type {string[]} */
  const out = []
  for (const k of new Set([...a.keys(), ...b.keys()])) if (!skip.has(k) && a.get(k) !== b.get(k)) out.push(k)
  return out
}

/**
 * Calls a case; resolves with what happened.
 * @param {() => unknown} call
 * @returns {Promise<{ threw: true, error: unknown } | { threw: false, value: unknown }>}
 */
async function attempt(call) {
  try {
    return { threw: false, value: await call() }
  } catch (error) {
    return { threw: true, error }
  }
}

/**
 * The other process of an odd-path case: holds the scratch database open
 * (as a running application would), stores 20 patterns, says `ready`; on
 * `write` stores 50 more and prints how many failed; then waits for SIGKILL.
 * @param {string} dbPath
 */
async function holder(dbPath) {
  const c = await PatternCache.open({ dbPath, enabled: false })
  await c.storePatterns(lib.makePatterns(20, DIM, 'held'))
  process.stdout.write('ready\n')
  process.stdin.setEncoding('utf8')
  process.stdin.once('data', async () => {
    let errors = 0
    for (let i = 0; i < 50; i++) {
      try {
        await c.storePattern(lib.makePattern(lib.baseId(i, 'holder'), i, DIM))
      } catch {
        errors++
      }
    }
    process.stdout.write(`done ${errors}\n`)
  })
}

/**
 * Runs an odd-path case on a fresh scratch database that another process
 * holds open. Afterwards that process and this one each store 50 patterns,
 * that process is SIGKILLed (a crash: committed writes must survive it), and
 * the database must hold everything it held plus every acknowledged write.
 * @param {Case} c @param {string} root @param {number} n
 */
async function runPathCase(c, root, n) {
  const scratch = path.join(root, `scratch-${n}`)
  fs.mkdirSync(path.join(scratch, 'a-dir'), { recursive: true })
  fs.writeFileSync(path.join(scratch, 'a-file'), 'not a database\n')
  const dbPath = path.join(scratch, 'patterns.db')
  const other = spawn(process.execPath, [__filename, '--holder', dbPath], { stdio: ['pipe', 'pipe', 'inherit'] })
  /** @type {Array<(line: string) => void>} */
  const waiting = []
  const out = /** @type {import('node:stream').Readable} */ (other.stdout)
  out.setEncoding('utf8')
  let buffered = ''
  out.on('data', (/** @type {string} */ d) => {
    buffered += d
    let nl
    while ((nl = buffered.indexOf('\n')) >= 0) {
      const line = buffered.slice(0, nl)
      buffered = buffered.slice(nl + 1)
      waiting.shift()?.(line)
    }
  })
  const line = () => /** @type {Promise<string>} */ (new Promise((resolve) => waiting.push(resolve)))
  const exited = new Promise((resolve) => other.on('exit', resolve))
  await line() // ready
  const before = await snapshot(dbPath)
  const fileBefore = fs.readFileSync(path.join(scratch, 'a-file'), 'utf8')
  const cfg = /** @type {NonNullable<Case['paths']>} */ (c.paths)(scratch)
  const outcome = await attempt(async () => {
    const opened = await PatternCache.open(cfg)
    try {
      const m = opened.getMetrics()
      const some = await opened.query({ limit: 5 })
      return { tier: m.tier, reason: m.cacheUnavailableReason, read: some.length }
    } finally {
      await opened.shutdown()
    }
  })
  // Both processes go on writing; then the other one crashes.
  const done = line()
  const otherIn = /** @type {import('node:stream').Writable} */ (other.stdin)
  otherIn.write('write\n')
  /** @type {string[]} */
  const acknowledged = []
  let writeErrors = 0
  try {
    const mine = await PatternCache.open({ dbPath, enabled: false })
    for (let i = 0; i < 50; i++) {
      const p = lib.makePattern(lib.baseId(i, 'here'), i, DIM)
      try {
        await mine.storePattern(p)
        acknowledged.push(p.id)
      } catch {
        writeErrors++
      }
    }
    await mine.shutdown()
  } catch {
    writeErrors += 50
  }
  const otherErrors = Number((await done).split(' ')[1])
  if (otherErrors === 0) for (let i = 0; i < 50; i++) acknowledged.push(lib.baseId(i, 'holder'))
  other.kill('SIGKILL')
  await exited

  /** @type {string[]} */
  const diff = []
  if (writeErrors + otherErrors > 0) diff.push(`writes after it failed (${writeErrors} here, ${otherErrors} in the other process)`)
  try {
    const after = await snapshot(dbPath)
    diff.push(...changed(before.patterns, after.patterns, acknowledged), ...changed(before.configs, after.configs, []))
    const lost = acknowledged.filter((id) => !after.patterns.has(id))
    if (lost.length) diff.push(`${lost.length} acknowledged writes lost`)
    const integrity = lib.integrityCheck(dbPath)
    if (integrity !== 'ok') diff.push(`integrity_check: ${integrity.slice(0, 100)}`)
  } catch (e) {
    diff.push(`the database became unreadable: [${lib.codeOf(e)}] ${e instanceof Error ? e.message : e}`)
  }
  if (fs.readFileSync(path.join(scratch, 'a-file'), 'utf8') !== fileBefore) diff.push('a-file was modified')
  return { outcome, diff }
}

/**
 * @param {{ verbose?: boolean }} [given]
 * @returns {Promise<import('./lib.js').Result>}
 */
async function run(given = {}) {
  const started = Date.now()
  const dir = lib.tempDir('bad-input')
  const dbPath = path.join(dir, 'patterns.db')
  current.dbPath = dbPath
  await lib.seed(dbPath, 50, DIM)
  const cache = await PatternCache.open({ dbPath })
  await cache.storeAgentConfig(/** @type {import('../index').AgentConfigEntry} */ (validConfig('agent-existing')))
  const all = cases()
  // Every agent id a case names is looked at after every case; the whole
  // table is compared (python3) at the start and the end.
  const agentIds = new Set(['agent-existing'])
  for (const c of all) for (const id of c.writes?.configs ?? []) if (askable(id)) agentIds.add(id)
  const tableAtStart = await snapshot(dbPath)
  /** @type {Set<string>} */
  const acceptedConfigs = new Set()
  let before = await snapshot(dbPath, agentIds)

  let asExpected = 0
  let rejectedWithCode = 0
  let acceptedValid = 0
  let changedDb = 0
  /** @type {string[]} */
  const wrong = []
  /** @type {string[]} */
  const changes = []
  /** @type {Array<{ name: string, outcome: string }>} */
  const log = []
  let n = 0
  for (const c of all) {
    n++
    /** @type {{ threw: true, error: unknown } | { threw: false, value: unknown }} */
    let outcome
    /** @type {string[]} */
    let diff = []
    if (c.paths) {
      const r = await runPathCase(c, dir, n)
      outcome = r.outcome
      diff = r.diff
    } else {
      outcome = await attempt(() => c.call(cache))
      const after = await snapshot(dbPath, agentIds)
      const allowed = outcome.threw ? { patterns: [], configs: [] } : { patterns: c.writes?.patterns ?? [], configs: c.writes?.configs ?? [] }
      for (const id of allowed.configs) acceptedConfigs.add(id)
      diff = [...changed(before.patterns, after.patterns, allowed.patterns), ...changed(before.configs, after.configs, allowed.configs)]
      before = after
    }
    let problem = ''
    let what = ''
    if (outcome.threw) {
      const code = lib.codeOf(outcome.error)
      const message = outcome.error instanceof Error ? outcome.error.message : String(outcome.error)
      what = `rejected [${code}] ${message.slice(0, 120)}`
      if (!lib.isKnownCode(code)) problem = `rejected without a code from ERROR_CODES: ${message.slice(0, 200)}`
      else if (c.expect === 'accept') problem = `valid data rejected: [${code}] ${message.slice(0, 200)}`
      else if (c.codes && !c.codes.includes(code)) problem = `rejected with ${code}, expected ${c.codes.join(' or ')}: ${message.slice(0, 200)}`
      else rejectedWithCode++
    } else {
      what = `accepted${outcome.value === undefined ? '' : ` -> ${JSON.stringify(outcome.value)?.slice(0, 120)}`}`
      if (c.expect === 'reject') problem = 'accepted, should be rejected'
      else {
        const check = c.check ? await c.check(cache, outcome.value) : null
        if (check) problem = `accepted but wrong: ${check}`
        else acceptedValid++
      }
    }
    if (diff.length) {
      changedDb++
      changes.push(`${c.name}: changed ${diff.slice(0, 3).join(', ').slice(0, 300)}`)
    }
    if (problem) wrong.push(`${c.name}: ${problem}`)
    else asExpected++
    log.push({ name: c.name, outcome: what })
    if (given.verbose) console.log(`   ${problem ? 'WRONG' : 'ok   '} ${c.name}: ${problem || what}`)
  }
  await cache.shutdown()
  const tableAtEnd = await snapshot(dbPath)
  const extraRows = changed(tableAtStart.configs, tableAtEnd.configs, [...acceptedConfigs])
  if (extraRows.length) {
    changedDb++
    changes.push(`agent_configs rows no accepted case wrote: ${extraRows.slice(0, 5).join(', ')}`)
  }
  const integrity = lib.integrityCheck(dbPath)

  return lib.result({
    name: 'bad-input',
    title: 'wrong input of every kind: rejected with a code, or accepted as data; nothing else changes',
    config: { cases: all.length },
    started,
    figures: [
      { name: 'cases', value: all.length },
      { name: 'rejected with a code from ERROR_CODES (as expected)', value: rejectedWithCode },
      { name: 'accepted as valid data (and read back exactly)', value: acceptedValid },
      lib.target('cases not handled as expected (accepted bad input, rejected valid data, no or wrong code)', wrong.length, '0', wrong.length === 0),
      lib.target('cases that changed the database (beyond what an accepted case wrote)', changedDb, '0', changedDb === 0),
      lib.target('PRAGMA integrity_check at the end', integrity, 'ok', integrity === 'ok'),
    ],
    notes: [...wrong, ...changes],
    details: log,
  })
}

if (require.main === module) {
  if (process.argv[2] === '--holder') {
    holder(process.argv[3]).catch((e) => {
      console.error(e)
      process.exit(3)
    })
  } else {
    lib.main(() => run({ verbose: process.argv.includes('--verbose') }))
  }
}

module.exports = { run, cases }

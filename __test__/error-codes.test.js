// @ts-check
'use strict'
// One list of error codes: ERROR_CODES comes from the addon (src/error.rs,
// error::CODES); the ErrorCode type, the README and docs/api.md name each of
// them, and every code the JavaScript layer throws is one of them.

const test = require('node:test')
const assert = require('node:assert/strict')
const fs = require('node:fs')
const path = require('node:path')
const { ERROR_CODES, PatternCache, migrateRemote } = require('../index.js')
// The binding by a computed path: its generated .d.ts is not for the type check.
const native = require(path.join(__dirname, '..', 'binding.js'))

const ROOT = path.join(__dirname, '..')
const read = (/** @type {string} */ f) => fs.readFileSync(path.join(ROOT, f), 'utf8')

test('ERROR_CODES is the addon list, frozen, without repeats', () => {
  assert.deepEqual([...ERROR_CODES], native.errorCodes())
  assert.ok(Object.isFrozen(ERROR_CODES))
  assert.equal(new Set(ERROR_CODES).size, ERROR_CODES.length)
  assert.ok(ERROR_CODES.includes('REMOTE_OUTCOME_UNKNOWN'))
})

test('the ErrorCode type names exactly ERROR_CODES', () => {
  const dts = read('index.d.ts')
  const union = dts.slice(dts.indexOf('export type ErrorCode ='), dts.indexOf('\n\n', dts.indexOf('export type ErrorCode =')))
  const named = [...union.matchAll(/'([A-Z_]+)'/g)].map((m) => m[1])
  assert.deepEqual(named, [...ERROR_CODES])
})

test('the README and docs/api.md document every code', () => {
  const readme = read('README.md')
  const table = readme.slice(readme.indexOf('## Error codes'), readme.indexOf('\n## ', readme.indexOf('## Error codes') + 3))
  const api = read('docs/api.md')
  for (const code of ERROR_CODES) {
    assert.match(table, new RegExp('\\| `' + code + '` \\|'), `README's error table has ${code}`)
    assert.ok(api.includes('`' + code + '`'), `docs/api.md names ${code}`)
  }
})

test('every code the JavaScript layer throws is in ERROR_CODES', () => {
  const sources = ['index.js', ...fs.readdirSync(path.join(ROOT, 'lib')).map((f) => `lib/${f}`)]
  const thrown = new Set()
  for (const f of sources) {
    for (const m of read(f).matchAll(/(?:fail|guard|PatternCacheError)\(\s*'([A-Z_]+)'|const code = '([A-Z_]+)'/g)) thrown.add(m[1] ?? m[2])
  }
  assert.ok(thrown.size >= 3, `found ${[...thrown]}`)
  for (const code of thrown) assert.ok(ERROR_CODES.includes(code), `${code} (thrown in the JavaScript layer) is in ERROR_CODES`)
})

test('errors thrown by bad calls carry a listed code', async () => {
  const calls = [
    () => PatternCache.open(/** @type {any} */ ('not an object')),
    () => PatternCache.open({ maxAge: Number.NaN }),
    () => migrateRemote(/** @type {any} */ (42)),
    () => migrateRemote('not a connection string'),
  ]
  for (const call of calls) {
    const e = await call().then(() => null, (/** @type {any} */ e) => e)
    assert.ok(e, 'it rejects')
    assert.ok(ERROR_CODES.includes(e.code), `${e.code}: ${e.message}`)
  }
})

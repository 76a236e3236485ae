// @ts-check
'use strict'
// One list of error codes: ERROR_CODES comes from the addon (src/error.rs,
// error::CODES); the ErrorCode type, the README and docs/api.md name each of
// them, every code the JavaScript layer throws or the command line reports
// is one of them (the CLI's USAGE aside), and so is the code of errors that
// bad calls actually raise, from JavaScript, from the addon and from the CLI.

const test = require('node:test')
const assert = require('node:assert/strict')
const fs = require('node:fs')
const path = require('node:path')
const { spawnSync } = require('node:child_process')
const { ERROR_CODES, PatternCache, migrateRemote } = require('../index.js')
const { tempDir } = require('./helpers.js')
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

/** Every .js file below `dir` (relative to the root). @param {string} dir */
const sourcesBelow = (dir) =>
  fs.readdirSync(path.join(ROOT, dir), { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.js')).map((f) => path.join(dir, f))

test('every code the JavaScript layer throws is in ERROR_CODES', () => {
  const sources = ['index.js', ...sourcesBelow('lib')]
  const thrown = new Set()
  for (const f of sources) {
    for (const m of read(f).matchAll(/(?:fail|guard|PatternCacheError)\(\s*'([A-Z_]+)'|const code = '([A-Z_]+)'/g)) thrown.add(m[1] ?? m[2])
  }
  assert.ok(thrown.size >= 3, `found ${[...thrown]}`)
  for (const code of thrown) assert.ok(ERROR_CODES.includes(code), `${code} (thrown in the JavaScript layer) is in ERROR_CODES`)
})

test('every code the command line reports is in ERROR_CODES, but USAGE (exit code 2) of its own', () => {
  const sources = ['bin/pattern-cache.js', ...sourcesBelow('cli')]
  assert.ok(sources.includes(path.join('cli', 'commands', 'import.js')), sources.join(', '))
  const reported = new Set()
  for (const f of sources) {
    const text = read(f)
    // A code literal where the CLI makes or passes on an error: CliError(exit, 'X', ...),
    // badLine('X', ...), fail('X', ...), { code: 'X' }, code = 'X', a fallback `|| 'X'` or `? 'X' :`.
    const literals = /(?:CliError\([^,()]*,\s*|(?:badLine|fail|guard|PatternCacheError)\(\s*|code: |code = |\|\| |(?<!\?)\? )'([A-Z][A-Z_]*)'/g
    for (const m of text.matchAll(literals)) reported.add(m[1])
    for (const m of text.matchAll(/CliError\(([^,()]*),\s*'USAGE'/g)) assert.equal(m[1].trim(), 'EXIT.USAGE', `${f}: USAGE goes with exit code 2`)
  }
  assert.ok(reported.has('IO_ERROR') && reported.has('INTERNAL') && reported.has('USAGE'), `found ${[...reported]}`)
  for (const code of reported) {
    if (code !== 'USAGE') assert.ok(ERROR_CODES.includes(code), `${code} (reported by the command line) is in ERROR_CODES`)
  }
})

test('errors thrown by bad calls carry a listed code', async () => {
  const dir = tempDir('error-codes')
  const cache = await PatternCache.open({ dbPath: path.join(dir, 'p.db') })
  await cache.storePattern({ id: 'a', type: 't', domain: 'd', content: 'c', embedding: [1, 0] })
  const closed = await PatternCache.open({ dbPath: path.join(dir, 'p.db') })
  await closed.shutdown()
  /** @type {Array<[string, () => Promise<unknown>, string]>} what, the call, the code it rejects with */
  const calls = [
    // The JavaScript layer's checks.
    ['open with a string', () => PatternCache.open(/** @type {any} */ ('not an object')), 'INVALID_ARGUMENT'],
    ['migrateRemote with a number', () => migrateRemote(/** @type {any} */ (42)), 'INVALID_ARGUMENT'],
    ['storePattern with 1e39', () => cache.storePattern({ id: 'b', type: 't', domain: 'd', content: 'c', embedding: [1e39, 0] }), 'INVALID_PATTERN'],
    ['storeAgentConfig without an id', () => cache.storeAgentConfig(/** @type {any} */ ({ type: 't' })), 'INVALID_AGENT_CONFIG'],
    // The addon's.
    ['open with maxAge NaN', () => PatternCache.open({ maxAge: Number.NaN }), 'INVALID_ARGUMENT'],
    ['migrateRemote with a bad connection string', () => migrateRemote('not a connection string'), 'INVALID_ARGUMENT'],
    ['storePattern of another dimension', () => cache.storePattern({ id: 'b', type: 't', domain: 'd', content: 'c', embedding: [1, 0, 0] }), 'INVALID_PATTERN'],
    ['searchSimilar of another dimension', () => cache.searchSimilar([1, 0, 0]), 'INVALID_ARGUMENT'],
    ['storeAgentConfig with configJson not JSON', () => cache.storeAgentConfig({ agentId: 'x', type: 't', configJson: '{', version: '1', updatedAt: 1 }), 'INVALID_AGENT_CONFIG'],
    ['a read after shutdown', () => closed.loadPattern('a'), 'CLOSED'],
    ['open of a database under a file', () => PatternCache.open({ dbPath: path.join(dir, 'p.db', 'under', 'x.db') }), 'IO_ERROR'],
  ]
  try {
    for (const [what, call, code] of calls) {
      const e = await call().then(() => null, (/** @type {any} */ e) => e)
      assert.ok(e, `${what}: it rejects`)
      assert.ok(ERROR_CODES.includes(e.code), `${what}: ${e.code} is listed (${e.message})`)
      assert.equal(e.code, code, `${what}: ${e.message}`)
    }
    assert.throws(() => closed.getMetrics(), (/** @type {any} */ e) => e.code === 'CLOSED')
  } finally {
    await cache.shutdown()
  }
  // The command line's runtime error (exit code 3) carries one too.
  const run = spawnSync(process.execPath, [path.join(ROOT, 'bin', 'pattern-cache.js'), 'ls', '--json', '--db', path.join(dir, 'none.db')], { encoding: 'utf8' })
  assert.equal(run.status, 3, run.stderr)
  const doc = JSON.parse(run.stdout)
  assert.ok(ERROR_CODES.includes(doc.error.code), `the CLI's ${doc.error.code} is listed`)
})

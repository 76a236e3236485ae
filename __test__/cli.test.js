// @ts-check
'use strict'
// The command line (bin/pattern-cache.js), spawned as a user runs it, on a
// temp database: every command, its --json document, its exit code.

const { test } = require('node:test')
const assert = require('node:assert/strict')
const fs = require('node:fs')
const path = require('node:path')
const { spawnSync } = require('node:child_process')
const { PatternCache } = require('../index.js')
const { generatePatterns, expectedStored, Model, tempDir } = require('./helpers.js')

const CLI = path.resolve(__dirname, '..', 'bin', 'pattern-cache.js')
const ROOT = tempDir('cli')

/** A fresh directory under this file's temp root (removed at exit). @param {string} name */
function dirFor(name) {
  return fs.mkdtempSync(path.join(ROOT, `${name}-`))
}
const HEADER_LEN = 384

/**
 * Runs the CLI; never throws on a non-zero exit.
 * @param {string[]} args
 * @param {{ cwd?: string, input?: string }} [opts]
 */
function cli(args, opts = {}) {
  const r = spawnSync(process.execPath, [CLI, ...args], { cwd: opts.cwd, input: opts.input, encoding: 'utf8', maxBuffer: 256 << 20 })
  if (r.error) throw r.error
  return { code: r.status, stdout: r.stdout, stderr: r.stderr }
}

/**
 * Runs the CLI with --json and parses its one JSON document.
 * @param {string[]} args
 * @param {{ cwd?: string, input?: string }} [opts]
 * @returns {{ code: number | null, doc: any, stderr: string }}
 */
function cliJson(args, opts) {
  const r = cli([...args, '--json'], opts)
  let doc
  try {
    doc = JSON.parse(r.stdout)
  } catch (e) {
    assert.fail(`stdout of ${args.join(' ')} --json is not one JSON document: ${r.stdout}\nstderr: ${r.stderr}`)
  }
  return { code: r.code, doc, stderr: r.stderr }
}

/** @param {import('../index').TestPattern[]} patterns */
function jsonl(patterns) {
  return patterns.map((p) => JSON.stringify({ ...p, embedding: Array.from(p.embedding) })).join('\n') + '\n'
}

/** A temp directory with a JSONL file of `count` generated patterns (not imported yet). */
function fixture(/** @type {string} */ name, count = 2500) {
  const dir = dirFor(name)
  const patterns = generatePatterns(count, { seed: 11 })
  const file = path.join(dir, 'in.jsonl')
  fs.writeFileSync(file, jsonl(patterns))
  const model = new Model()
  model.store(patterns)
  return { dir, db: path.join(dir, 'patterns.db'), cachePath: path.join(dir, 'patterns.v1.pcache'), file, patterns, model }
}

/** A fixture whose patterns are imported. */
function imported(/** @type {string} */ name, count = 2500) {
  const f = fixture(name, count)
  const r = cli(['import', f.file, '--db', f.db])
  assert.equal(r.code, 0, r.stderr)
  return f
}

test('--help lists every command and the exit codes; <command> --help describes it', () => {
  const r = cli(['--help'])
  assert.equal(r.code, 0)
  for (const command of ['status', 'rebuild', 'verify', 'clear', 'ls', 'stats', 'import', 'export']) assert.match(r.stdout, new RegExp(`^  ${command}\\b`, 'm'))
  assert.match(r.stdout, /Exit codes:/)
  assert.match(r.stdout, /--db <path>/)
  const ls = cli(['ls', '--help'])
  assert.equal(ls.code, 0)
  assert.match(ls.stdout, /Usage: pattern-cache ls/)
  assert.match(ls.stdout, /--domain/)
  assert.equal(cli(['help', 'import']).stdout, cli(['import', '--help']).stdout)
  const version = cliJson(['--version'])
  assert.equal(version.doc.version, require('../package.json').version)
})

test('usage errors exit 2, with a JSON error document under --json', () => {
  const dir = dirFor('usage')
  assert.equal(cli([], { cwd: dir }).code, 2, 'no command')
  const unknown = cli(['frobnicate'], { cwd: dir })
  assert.equal(unknown.code, 2)
  assert.match(unknown.stderr, /unknown command 'frobnicate'/)
  assert.equal(cli(['ls', '--bogus'], { cwd: dir }).code, 2, 'unknown option')
  assert.equal(cli(['status', '--out', 'x'], { cwd: dir }).code, 2, 'an option of another command')
  assert.equal(cli(['import'], { cwd: dir }).code, 2, 'import without a file')
  assert.equal(cli(['ls', 'extra'], { cwd: dir }).code, 2, 'a stray argument')
  assert.equal(cli(['ls', '--limit', '-3'], { cwd: dir }).code, 2, 'a negative limit')
  const json = cliJson(['ls', '--limit', 'many'], { cwd: dir })
  assert.equal(json.code, 2)
  assert.equal(json.doc.ok, false)
  assert.equal(json.doc.exitCode, 2)
  assert.match(json.doc.error.message, /--limit/)
  assert.deepEqual(fs.readdirSync(dir), [], 'a usage error creates nothing')
})

test('read commands on a missing database create nothing: status exits 1, the others 3 with DB_ERROR', () => {
  const dir = dirFor('nodb')
  const db = path.join(dir, 'sub', 'patterns.db')
  const status = cliJson(['status', '--db', db])
  assert.equal(status.code, 1)
  assert.equal(status.doc.database.exists, false)
  assert.equal(status.doc.cacheFile.state, 'missing')
  for (const command of ['ls', 'stats', 'export', 'verify', 'rebuild']) {
    const r = cli([command, '--db', db])
    assert.equal(r.code, 3, command)
    assert.match(r.stderr, /error \[DB_ERROR\]: no database at/, command)
  }
  assert.deepEqual(fs.readdirSync(dir), [], 'nothing was created')
})

test('status reports a missing cache file without creating it, then the rebuilt file as current', () => {
  const f = imported('status')
  const before = cliJson(['status', '--db', f.db])
  assert.equal(before.code, 0, before.stderr)
  assert.equal(fs.existsSync(f.cachePath), false, 'status built no cache file')
  assert.equal(before.doc.tier, 'sqlite')
  assert.equal(before.doc.stale, true)
  assert.equal(before.doc.database.patternCount, 2500)
  assert.equal(before.doc.cacheFile.state, 'missing')
  assert.equal(before.doc.cacheFile.path, f.cachePath, 'the default cache path is patterns.v1.pcache beside the database')
  assert.deepEqual(before.doc.cacheFile.companions, [])
  assert.equal(typeof before.doc.metrics.cacheHits, 'number')

  const rebuilt = cliJson(['rebuild', '--db', f.db])
  assert.equal(rebuilt.code, 0, rebuilt.stderr)
  assert.equal(rebuilt.doc.success, true)
  assert.equal(rebuilt.doc.patternCount, 2500)
  assert.equal(rebuilt.doc.cacheFileSize, fs.statSync(f.cachePath).size)

  const after = cliJson(['status', '--db', f.db])
  assert.equal(after.code, 0)
  assert.equal(after.doc.tier, 'cache')
  assert.equal(after.doc.stale, false)
  assert.equal(after.doc.cacheFile.state, 'valid')
  assert.equal(after.doc.cacheFile.formatVersion, '1.0.0')
  assert.equal(after.doc.cacheFile.producer, require('../package.json').version)
  assert.equal(after.doc.cacheFile.generation, after.doc.database.generation)
  assert.equal(after.doc.cacheFile.patternCount, 2500)
  assert.equal(after.doc.cacheFile.embeddingDim, 16)
  assert.equal(after.doc.metrics.tier, 'cache')
  assert.ok(after.doc.ageMs >= 0)

  // A write after the build: the file is one change behind.
  const more = path.join(f.dir, 'more.jsonl')
  fs.writeFileSync(more, jsonl([{ id: 'zz-new', type: 'unit', domain: 'auth', content: 'c', embedding: new Float32Array(16) }]))
  assert.equal(cli(['import', more, '--db', f.db]).code, 0)
  const stale = cliJson(['status', '--db', f.db])
  assert.equal(stale.doc.stale, true)
  assert.equal(stale.doc.tier, 'sqlite')
  assert.equal(stale.doc.cacheFile.generationsBehind, 1)
  assert.equal(stale.doc.database.patternCount, 2501)
  assert.equal(stale.doc.cacheFile.writtenAt, after.doc.cacheFile.writtenAt, 'status did not rebuild the stale file')

  const text = cli(['status', '--db', f.db])
  assert.equal(text.code, 0)
  assert.match(text.stdout, /^tier {8}sqlite \(the cache file is 1 change behind the database/m)
  assert.match(text.stdout, /stale {7}yes/)
})

test('rebuild builds the file once and prints a plain line when not on a terminal; a second rebuild replaces it', () => {
  const f = imported('rebuild', 300)
  const r = cli(['rebuild', '--db', f.db])
  assert.equal(r.code, 0, r.stderr)
  assert.match(r.stdout, /^rebuilt .*patterns\.v1\.pcache: 300 patterns/)
  assert.doesNotMatch(r.stderr, /\r/, 'no terminal control characters in a pipe')
  const again = cliJson(['rebuild', '--db', f.db])
  assert.equal(again.code, 0)
  assert.equal(again.doc.builtAtOpen, false, 'a current file is rebuilt by rebuildCache()')
  assert.ok(fs.existsSync(f.cachePath + '.bak'), 'the previous file is kept as .bak')
})

test('verify: exit 0 on an intact file, 1 when it is missing or a record is damaged', () => {
  const f = imported('verify', 300)
  const missing = cliJson(['verify', '--db', f.db])
  assert.equal(missing.code, 1)
  assert.equal(missing.doc.ok, false)
  assert.match(missing.doc.problem.message, /no cache file/)
  assert.equal(fs.existsSync(f.cachePath), false, 'verify built nothing')

  assert.equal(cli(['rebuild', '--db', f.db]).code, 0)
  const ok = cliJson(['verify', '--db', f.db])
  assert.equal(ok.code, 0)
  assert.equal(ok.doc.ok, true)
  assert.equal(ok.doc.patternCount, 300)

  const bytes = fs.readFileSync(f.cachePath)
  bytes[HEADER_LEN + 40] ^= 0xff
  fs.writeFileSync(f.cachePath, bytes)
  const bad = cliJson(['verify', '--db', f.db])
  assert.equal(bad.code, 1)
  assert.equal(bad.doc.problem.code, 'CACHE_CORRUPT')
  const text = cli(['verify', '--db', f.db])
  assert.equal(text.code, 1)
  assert.match(text.stdout, /^FAILED .*\[CACHE_CORRUPT\]/)
  assert.deepEqual(fs.readFileSync(f.cachePath), bytes, 'verify does not repair or rebuild the file')
})

test('ls lists what the filters select, ordered by id, as text and JSON', () => {
  const f = imported('ls')
  const all = cliJson(['ls', '--db', f.db])
  assert.equal(all.code, 0)
  const row = (/** @type {any} */ p) => ({ id: p.id, type: p.type, domain: p.domain, framework: p.framework, verdict: p.verdict })
  assert.deepEqual(all.doc.patterns, f.model.query({}).map(row))
  assert.equal(all.doc.count, 2500)
  /** @type {Array<{ domain?: string, type?: string, framework?: string, limit?: number }>} */
  const filters = [{ domain: 'auth' }, { type: 'e2e', framework: 'jest' }, { domain: '検索', limit: 7 }, { framework: 'unknown' }, { limit: 0 }, { domain: 'absent' }]
  for (const filter of filters) {
    const args = Object.entries(filter).flatMap(([k, v]) => [`--${k}`, String(v)])
    const r = cliJson(['ls', '--db', f.db, ...args])
    assert.equal(r.code, 0)
    assert.deepEqual(r.doc.patterns, f.model.query(filter).map(row), JSON.stringify(filter))
  }
  const text = cli(['ls', '--db', f.db, '--domain', 'auth', '--limit', '3'])
  const lines = text.stdout.trimEnd().split('\n')
  assert.match(lines[0], /^ID\s+TYPE\s+DOMAIN\s+FRAMEWORK\s+VERDICT$/)
  assert.deepEqual(
    lines.slice(1).map((l) => l.split(/\s+/)),
    f.model.query({ domain: 'auth', limit: 3 }).map((p) => [p.id, p.type, p.domain, p.framework, p.verdict]),
  )
})

test('stats counts per domain, type, framework and verdict, and reports sizes', () => {
  const f = imported('stats')
  const r = cliJson(['stats', '--db', f.db])
  assert.equal(r.code, 0)
  const all = f.model.query({})
  /** @param {string} key */
  const counts = (key) => {
    /** @type {Record<string, number>} */
    const c = {}
    for (const p of all) c[p[key]] = (c[p[key]] ?? 0) + 1
    return c
  }
  assert.equal(r.doc.patternCount, 2500)
  assert.equal(r.doc.embeddingDim, 16)
  assert.deepEqual(r.doc.domains, counts('domain'))
  assert.deepEqual(r.doc.types, counts('type'))
  assert.deepEqual(r.doc.frameworks, counts('framework'))
  assert.deepEqual(r.doc.verdicts, counts('verdict'))
  assert.equal(r.doc.sizes.embeddingBytes, 2500 * 16 * 4)
  assert.equal(r.doc.sizes.contentBytes, all.reduce((n, p) => n + Buffer.byteLength(p.content), 0))
  assert.ok(r.doc.sizes.databaseBytes > 0)
  assert.equal(r.doc.sizes.cacheFileBytes, null, 'no cache file yet')
  assert.match(cli(['stats', '--db', f.db]).stdout, /^per domain:$/m)
})

test('import then export round-trips every pattern exactly; export of the export is identical', () => {
  const f = fixture('roundtrip')
  const imp = cliJson(['import', f.file, '--db', f.db])
  assert.equal(imp.code, 0, imp.stderr)
  assert.equal(imp.doc.imported, 2500)
  assert.equal(imp.doc.batches, 3, 'batches of 1,000 lines')
  assert.match(imp.stderr, /imported 1,000 patterns/, 'progress goes to stderr')

  const out = path.join(f.dir, 'out.jsonl')
  const exp = cliJson(['export', '--db', f.db, '--out', out])
  assert.equal(exp.code, 0)
  assert.equal(exp.doc.exported, 2500)
  const lines = fs.readFileSync(out, 'utf8').trimEnd().split('\n')
  assert.deepEqual(lines.map((l) => JSON.parse(l)), f.model.query({}), 'every field, embeddings as float32 values in number arrays')

  const stdout = cli(['export', '--db', f.db])
  assert.equal(stdout.code, 0)
  assert.equal(stdout.stdout, fs.readFileSync(out, 'utf8'), 'stdout and --out write the same lines')
  const asJson = cliJson(['export', '--db', f.db, '--domain', 'auth'])
  assert.deepEqual(asJson.doc, f.model.query({ domain: 'auth' }))

  // Into a second database, then out again: byte for byte the same.
  const db2 = path.join(f.dir, 'second.db')
  assert.equal(cli(['import', out, '--db', db2]).code, 0)
  assert.equal(cli(['export', '--db', db2]).stdout, stdout.stdout)

  // stdin works as the input too.
  const db3 = path.join(f.dir, 'third.db')
  assert.equal(cli(['import', '-', '--db', db3], { input: stdout.stdout }).code, 0)
  assert.equal(cli(['export', '--db', db3]).stdout, stdout.stdout)
})

test('import stops at a bad line with its number: nothing of that batch is written, earlier batches stay', async () => {
  const f = fixture('badline')
  const lines = jsonl(f.patterns).trimEnd().split('\n')
  const bad = path.join(f.dir, 'bad.jsonl')
  // Line 1,501 (in the second batch) has a coverage out of range.
  lines.splice(1500, 0, JSON.stringify({ id: 'bad-one', type: 'unit', domain: 'd', content: 'c', embedding: Array(16).fill(0), coverage: 5 }))
  fs.writeFileSync(bad, lines.join('\n') + '\n')
  const r = cliJson(['import', bad, '--db', f.db])
  assert.equal(r.code, 3)
  assert.equal(r.doc.error.code, 'INVALID_PATTERN')
  assert.equal(r.doc.error.line, 1501)
  assert.match(r.doc.error.message, /line 1501: .*coverage/)
  const text = cli(['import', bad, '--db', path.join(f.dir, 'other.db')])
  assert.equal(text.code, 3)
  assert.match(text.stderr, /error \[INVALID_PATTERN\]: .*bad\.jsonl, line 1501:/)

  const cache = await PatternCache.open({ dbPath: f.db, enabled: false, backgroundRebuild: false })
  try {
    const firstBatch = new Model()
    firstBatch.store(f.patterns.slice(0, 1000))
    assert.deepEqual((await cache.query({})).map((p) => p.id), firstBatch.query({}).map((p) => p.id), 'the first batch only')
    assert.equal(await cache.loadPattern('bad-one'), null)
  } finally {
    await cache.shutdown()
  }

  // Not JSON: the line number too, and nothing of the batch.
  const notJson = path.join(f.dir, 'notjson.jsonl')
  fs.writeFileSync(notJson, jsonl(f.patterns.slice(0, 5)) + '{"id": "x",\n')
  const db4 = path.join(f.dir, 'fourth.db')
  const nj = cliJson(['import', notJson, '--db', db4])
  assert.equal(nj.code, 3)
  assert.equal(nj.doc.error.line, 6)
  assert.match(nj.doc.error.message, /line 6: not JSON/)
  assert.equal(JSON.parse(cli(['ls', '--db', db4, '--json']).stdout).count, 0, 'the batch with the bad line was not written')

  const missing = cli(['import', path.join(f.dir, 'absent.jsonl'), '--db', f.db])
  assert.equal(missing.code, 3)
  assert.match(missing.stderr, /\[IO_ERROR\]/)
})

test('clear removes the cache file and its .bak, .lock and .tmp-* companions, never the database', () => {
  const f = imported('clear', 300)
  assert.equal(cli(['rebuild', '--db', f.db]).code, 0)
  assert.equal(cli(['rebuild', '--db', f.db]).code, 0) // leaves a .bak
  fs.writeFileSync(f.cachePath + '.tmp-abc123', 'half-written')
  fs.writeFileSync(path.join(f.dir, 'unrelated.pcache'), 'not ours')
  const r = cliJson(['clear', '--db', f.db])
  assert.equal(r.code, 0)
  assert.deepEqual(
    r.doc.removed.map((/** @type {string} */ p) => path.basename(p)).sort(),
    ['patterns.v1.pcache', 'patterns.v1.pcache.bak', 'patterns.v1.pcache.lock', 'patterns.v1.pcache.tmp-abc123'],
  )
  const left = fs.readdirSync(f.dir)
  assert.ok(left.includes('patterns.db'), left.join())
  assert.ok(left.includes('unrelated.pcache'), left.join())
  assert.equal(left.filter((n) => n.startsWith('patterns.v1.pcache')).length, 0, left.join())
  assert.equal(JSON.parse(cli(['ls', '--db', f.db, '--json']).stdout).count, 300, 'the database is intact')
  const again = cliJson(['clear', '--db', f.db])
  assert.equal(again.code, 0)
  assert.deepEqual(again.doc.removed, [])

  const refuse = cli(['clear', '--db', f.db, '--cache', f.db])
  assert.equal(refuse.code, 2, 'a --cache naming the database is refused')
  assert.ok(fs.existsSync(f.db))
})

test('--cache names another cache file for every command', () => {
  const f = imported('cachepath', 200)
  const other = path.join(f.dir, 'elsewhere', 'c.pcache')
  fs.mkdirSync(path.dirname(other))
  assert.equal(cli(['rebuild', '--db', f.db, '--cache', other]).code, 0)
  assert.ok(fs.existsSync(other))
  assert.equal(fs.existsSync(f.cachePath), false)
  const status = cliJson(['status', '--db', f.db, '--cache', other])
  assert.equal(status.doc.tier, 'cache')
  assert.equal(status.doc.cacheFile.path, other)
  assert.equal(cliJson(['verify', '--db', f.db, '--cache', other]).doc.patternCount, 200)
  assert.equal(cliJson(['clear', '--db', f.db, '--cache', other]).doc.removed.includes(other), true)
  assert.equal(fs.existsSync(other), false)
})

test('the default database is .pattern-cache/patterns.db under the current directory', () => {
  const f = fixture('defaultdb', 10)
  assert.equal(cli(['import', f.file], { cwd: f.dir }).code, 0)
  assert.ok(fs.existsSync(path.join(f.dir, '.pattern-cache', 'patterns.db')))
  const status = cliJson(['status'], { cwd: f.dir })
  assert.equal(status.doc.database.path, path.join(fs.realpathSync(f.dir), '.pattern-cache', 'patterns.db'))
  assert.equal(status.doc.database.patternCount, 10)
  assert.deepEqual(
    cliJson(['export'], { cwd: f.dir }).doc,
    f.patterns.map(expectedStored).sort((a, b) => Buffer.compare(Buffer.from(String(a.id)), Buffer.from(String(b.id)))),
  )
})

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
const { generatePatterns, expectedStored, plain, Model, tempDir, rng, byteOrder } = require('./helpers.js')

const CLI = path.resolve(__dirname, '..', 'bin', 'pattern-cache.js')
const ROOT = tempDir('cli')

/** A fresh directory under this file's temp root (removed at exit). @param {string} name */
function dirFor(name) {
  return fs.mkdtempSync(path.join(ROOT, `${name}-`))
}
const HEADER_LEN = 512

/**
 * Runs the CLI; never throws on a non-zero exit.
 * @param {string[]} args
 * @param {{ cwd?: string, input?: string, env?: NodeJS.ProcessEnv }} [opts]
 */
function cli(args, opts = {}) {
  const r = spawnSync(process.execPath, [CLI, ...args], { cwd: opts.cwd, input: opts.input, env: opts.env, encoding: 'utf8', maxBuffer: 256 << 20 })
  if (r.error) throw r.error
  return { code: r.status, stdout: r.stdout, stderr: r.stderr }
}

/**
 * Runs the CLI with --json and parses its one JSON document.
 * @param {string[]} args
 * @param {{ cwd?: string, input?: string, env?: NodeJS.ProcessEnv }} [opts]
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

/** A pattern as an export line holds it: its kind first. @param {Record<string, unknown>} p */
function asRecord(p) {
  return { kind: 'pattern', ...p }
}

/** A temp directory with a JSONL file of `count` generated patterns (not imported yet). */
function fixture(/** @type {string} */ name, count = 2500) {
  const dir = dirFor(name)
  const patterns = generatePatterns(count, { seed: 11 })
  const file = path.join(dir, 'in.jsonl')
  fs.writeFileSync(file, jsonl(patterns))
  const model = new Model()
  model.store(patterns)
  return { dir, db: path.join(dir, 'patterns.db'), cachePath: path.join(dir, 'patterns.v2.pcache'), file, patterns, model }
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
  for (const command of ['status', 'rebuild', 'verify', 'clear', 'ls', 'stats', 'search', 'import', 'export']) assert.match(r.stdout, new RegExp(`^  ${command}\\b`, 'm'))
  assert.match(r.stdout, /Exit codes:/)
  assert.match(r.stdout, /--db <path>/)
  const ls = cli(['ls', '--help'])
  assert.equal(ls.code, 0)
  assert.match(ls.stdout, /Usage: pattern-cache ls/)
  assert.match(ls.stdout, /--domain/)
  assert.equal(cli(['help', 'import']).stdout, cli(['import', '--help']).stdout)
  const search = cli(['search', '--help'])
  assert.equal(search.code, 0, 'search --help needs no query')
  for (const option of ['--like', '--vector', '--k', '--metric', '--threshold', '--mmr']) assert.match(search.stdout, new RegExp(`^  ${option}\\b`, 'm'))
  const version = cliJson(['--version'])
  assert.equal(version.doc.version, require('../package.json').version)
})

test('the command line reaches the package only through its public entry (never binding.js)', () => {
  const PACKAGE = path.resolve(__dirname, '..')
  const files = ['bin/pattern-cache.js', ...fs.readdirSync(path.join(PACKAGE, 'cli'), { recursive: true, encoding: 'utf8' }).map((f) => path.join('cli', f))].filter((f) => f.endsWith('.js'))
  let entries = 0
  for (const file of files) {
    const text = fs.readFileSync(path.join(PACKAGE, file), 'utf8')
    for (const [, spec] of text.matchAll(/require\(\s*'([^']+)'\s*\)/g)) {
      if (spec.startsWith('node:')) continue
      const target = path.resolve(PACKAGE, path.dirname(file), spec)
      const inside = target.startsWith(path.join(PACKAGE, 'cli') + path.sep)
      const entry = target === PACKAGE || target === path.join(PACKAGE, 'index.js')
      if (entry) entries++
      assert.ok(inside || entry || target === path.join(PACKAGE, 'package.json'), `${file} requires '${spec}', which is neither cli/ nor the public entry`)
    }
  }
  assert.ok(entries >= 1, 'the entry is required somewhere')
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
  assert.equal(before.doc.cacheFile.path, f.cachePath, 'the default cache path is patterns.v2.pcache beside the database')
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
  assert.equal(after.doc.cacheFile.formatVersion, '2.0.0')
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
  assert.match(r.stdout, /^rebuilt .*patterns\.v2\.pcache: 300 patterns/)
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
  assert.deepEqual(lines.map((l) => JSON.parse(l)), f.model.query({}).map(asRecord), 'kind first, every field, embeddings as float32 values in number arrays')
  assert.ok(lines.every((l) => l.startsWith('{"kind":"pattern",')), 'the kind comes first')

  const stdout = cli(['export', '--db', f.db])
  assert.equal(stdout.code, 0)
  assert.equal(stdout.stdout, fs.readFileSync(out, 'utf8'), 'stdout and --out write the same lines')
  const asJson = cliJson(['export', '--db', f.db, '--domain', 'auth'])
  assert.deepEqual(asJson.doc, f.model.query({ domain: 'auth' }).map(asRecord))

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

// ---------------------------------------------------------------- paging, agent configs, the line format

/** Agent configs as a caller stores them (ids not in byte order). */
function agentConfigs() {
  return [
    { agentId: 'tester', type: 'test-generator', configJson: JSON.stringify({ model: 'm', temperature: 0.2 }), version: '1.0.0', updatedAt: 1_760_000_000_000 },
    { agentId: 'analyzer/é', type: 'coverage', configJson: '[1, 2,  3]', version: '2.1', updatedAt: 0 },
    { agentId: 'Zeta', type: 'flaky-hunter', configJson: '{"note": "a line\u2028separator", "n": null}', version: 'v3', updatedAt: 1_700_000_000_123 },
  ]
}
/** @param {ReturnType<typeof agentConfigs>} configs */
const byAgentId = (configs) => [...configs].sort((a, b) => byteOrder(a.agentId, b.agentId))
/** @param {Record<string, unknown>} c */
const configLine = (c) => JSON.stringify({ kind: 'agentConfig', ...c })

/**
 * A preload script that records, into the file named by $PC_CALLS, every
 * listPatterns() request (its limit) and page size, and every call that
 * would load all the matching patterns at once.
 */
function callRecorder() {
  const dir = dirFor('recorder')
  const file = path.join(dir, 'record.js')
  fs.writeFileSync(
    file,
    `const fs = require('node:fs')
const { PatternCache } = require(${JSON.stringify(path.resolve(__dirname, '..', 'index.js'))})
const log = (entry) => fs.appendFileSync(process.env.PC_CALLS, JSON.stringify(entry) + '\\n')
const list = PatternCache.prototype.listPatterns
PatternCache.prototype.listPatterns = async function (request) {
  const page = await list.call(this, request)
  log({ call: 'listPatterns', limit: request && request.limit, returned: page.patterns.length, more: page.cursor !== undefined })
  return page
}
for (const name of ['query', 'loadPatternsByDomain', 'loadPatternsByType', 'loadPatternsByFramework']) {
  const original = PatternCache.prototype[name]
  PatternCache.prototype[name] = function (...args) {
    log({ call: name })
    return original.apply(this, args)
  }
}
`,
  )
  /** Runs the CLI with the recorder; returns its result and the calls. @param {string[]} args */
  return (args) => {
    const calls = path.join(dir, `calls-${Math.random().toString(36).slice(2)}.jsonl`)
    fs.writeFileSync(calls, '')
    const r = cli(args, { env: { ...process.env, NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} --require ${JSON.stringify(file)}`.trim(), PC_CALLS: calls } })
    const log = fs.readFileSync(calls, 'utf8').trimEnd().split('\n').filter(Boolean).map((l) => JSON.parse(l))
    return { ...r, calls: log }
  }
}

test('export, ls and stats page through listPatterns: never everything at once; any page size gives the same output', () => {
  const f = imported('paging', 2500)
  const recorded = callRecorder()
  const records = f.model.query({}).map(asRecord)

  // Export's default page is 100 (so memory stays flat): 25 pages for 2,500 patterns, and no call that loads them all.
  const whole = recorded(['export', '--db', f.db])
  assert.equal(whole.code, 0, whole.stderr)
  assert.deepEqual(whole.stdout.trimEnd().split('\n').map((l) => JSON.parse(l)), records)
  assert.deepEqual(
    whole.calls,
    Array.from({ length: 25 }, (_, i) => ({ call: 'listPatterns', limit: 100, returned: 100, more: i < 24 })),
  )
  // ls pages by 1,000.
  assert.deepEqual(recorded(['ls', '--db', f.db]).calls, [
    { call: 'listPatterns', limit: 1000, returned: 1000, more: true },
    { call: 'listPatterns', limit: 1000, returned: 1000, more: true },
    { call: 'listPatterns', limit: 1000, returned: 500, more: false },
  ])
  for (const command of [['ls'], ['ls', '--json'], ['stats'], ['export', '--json'], ['export', '--domain', 'auth']]) {
    const r = recorded([...command, '--db', f.db, '--page-size', '300'])
    assert.equal(r.code, 0, r.stderr)
    assert.ok(r.calls.length > 0 && r.calls.every((c) => c.call === 'listPatterns' && c.limit === 300 && c.returned <= 300), `${command.join(' ')}: ${JSON.stringify(r.calls)}`)
  }

  // Any page size: the same lines, the same documents.
  for (const size of ['7', '999', '1000', '2500', '10000']) {
    assert.equal(cli(['export', '--db', f.db, '--page-size', size]).stdout, whole.stdout, `--page-size ${size}`)
  }
  assert.deepEqual(cliJson(['export', '--db', f.db, '--page-size', '7']).doc, records, 'the --json array, page by page')
  assert.deepEqual(cliJson(['export', '--db', f.db, '--domain', 'auth', '--page-size', '7']).doc, f.model.query({ domain: 'auth' }).map(asRecord))

  // --limit counts patterns across pages; the last page asks only for what is left.
  const limited = recorded(['export', '--db', f.db, '--limit', '15', '--page-size', '7'])
  assert.deepEqual(limited.stdout.trimEnd().split('\n').map((l) => JSON.parse(l)), records.slice(0, 15))
  assert.deepEqual(limited.calls.map((c) => c.limit), [7, 7, 1])
  assert.deepEqual(cliJson(['export', '--db', f.db, '--limit', '1500']).doc, records.slice(0, 1500))
  assert.equal(recorded(['export', '--db', f.db, '--limit', '0']).calls.length, 0, '--limit 0 asks for nothing')

  // ls: the same rows whatever the page size; --json puts the count after the patterns.
  const row = (/** @type {any} */ p) => ({ id: p.id, type: p.type, domain: p.domain, framework: p.framework, verdict: p.verdict })
  for (const args of [['--page-size', '7'], ['--page-size', '7', '--type', 'e2e'], ['--limit', '20', '--page-size', '6'], ['--limit', '0']]) {
    const r = cli(['ls', '--db', f.db, '--json', ...args])
    assert.equal(r.code, 0, r.stderr)
    const filter = { type: args.includes('e2e') ? 'e2e' : undefined, limit: args.includes('--limit') ? Number(args[args.indexOf('--limit') + 1]) : undefined }
    const expected = f.model.query(filter).map(row)
    assert.equal(r.stdout, JSON.stringify({ patterns: expected, count: expected.length }, null, 2) + '\n', args.join(' '))
  }
  const text = cli(['ls', '--db', f.db, '--page-size', '7']).stdout.trimEnd().split('\n')
  assert.match(text[0], /^ID\s+TYPE\s+DOMAIN\s+FRAMEWORK\s+VERDICT$/)
  assert.equal(text.length, 2501)
  const firstPage = f.model.query({ limit: 7 })
  assert.equal(text[0].indexOf('TYPE'), Math.max(2, ...firstPage.map((p) => p.id.length)) + 2, 'the columns are as wide as the first page needs')
  assert.deepEqual(cli(['ls', '--db', f.db, '--domain', 'absent']).stdout, 'ID  TYPE  DOMAIN  FRAMEWORK  VERDICT\n')

  // stats: the same document whatever the page size.
  assert.deepEqual(cliJson(['stats', '--db', f.db, '--page-size', '7']).doc, cliJson(['stats', '--db', f.db]).doc)

  // --page-size is an integer in 1..10,000, for ls, export and stats only.
  for (const bad of ['0', '10001', 'x', '', '-5', '2.5']) {
    const r = cliJson(['export', '--db', f.db, `--page-size=${bad}`])
    assert.equal(r.code, 2, bad)
    assert.match(r.doc.error.message, /--page-size must be an integer in 1\.\.10,000/, bad)
  }
  assert.equal(cli(['status', '--db', f.db, '--page-size', '5']).code, 2)
  assert.equal(cli(['search', '--db', f.db, '--like', 'x', '--page-size', '5']).code, 2)
})

test('import stores agent config lines; export writes every pattern, then every config; the round trip into an empty database is exact', async () => {
  const f = fixture('configs', 2500)
  const configs = agentConfigs()
  // Old-format pattern lines (no kind), a config at line 1,200, the other configs at the end.
  const lines = jsonl(f.patterns).trimEnd().split('\n')
  lines.splice(1199, 0, configLine(configs[0]))
  lines.push(...configs.slice(1).map(configLine))
  const file = path.join(f.dir, 'with-configs.jsonl')
  fs.writeFileSync(file, lines.join('\n') + '\n')
  const imp = cliJson(['import', file, '--db', f.db])
  assert.equal(imp.code, 0, imp.stderr)
  assert.equal(imp.doc.imported, 2500)
  assert.equal(imp.doc.agentConfigs, 3)
  assert.equal(imp.doc.batches, 4, 'the config line ends its batch: 1,000 + 199, then 1,000 + 301')
  assert.match(cli(['import', file, '--db', f.db]).stdout, /^imported 2,500 patterns and 3 agent configs from /)

  const out = path.join(f.dir, 'out.jsonl')
  const exp = cliJson(['export', '--db', f.db, '--out', out])
  assert.equal(exp.code, 0, exp.stderr)
  assert.deepEqual(exp.doc, { out, exported: 2500, agentConfigs: 3 })
  const exported = fs.readFileSync(out, 'utf8')
  const expected = [...f.model.query({}).map(asRecord), ...byAgentId(configs).map((c) => ({ kind: 'agentConfig', ...c }))]
  assert.deepEqual(exported.trimEnd().split('\n').map((l) => JSON.parse(l)), expected, 'every pattern by id, then every config by agent id')
  assert.ok(exported.trimEnd().split('\n').slice(2500).every((l) => l.startsWith('{"kind":"agentConfig","agentId":')))
  assert.match(cli(['export', '--db', f.db, '--out', out]).stderr, /^exported 2,500 patterns and 3 agent configs to /)
  assert.equal(cli(['export', '--db', f.db]).stdout, exported, 'stdout and --out write the same lines')
  assert.deepEqual(cliJson(['export', '--db', f.db]).doc, expected, '--json: one array of the same records')

  // Into an empty database: the same patterns and configs, by the API too; its export is byte for byte the same.
  const db2 = path.join(f.dir, 'second.db')
  const imp2 = cliJson(['import', out, '--db', db2])
  assert.equal(imp2.code, 0, imp2.stderr)
  assert.deepEqual([imp2.doc.imported, imp2.doc.agentConfigs, imp2.doc.batches], [2500, 3, 3])
  assert.equal(cli(['export', '--db', db2]).stdout, exported)
  const [a, b] = await Promise.all([f.db, db2].map((dbPath) => PatternCache.open({ dbPath, enabled: false, backgroundRebuild: false })))
  try {
    assert.deepEqual((await b.query({})).map(plain), (await a.query({})).map(plain))
    assert.deepEqual(await b.listAgentConfigs(), await a.listAgentConfigs())
    assert.deepEqual(await b.listAgentConfigs(), byAgentId(configs))
    for (const c of configs) assert.deepEqual(await b.loadAgentConfig(c.agentId), c)
  } finally {
    await Promise.all([a.shutdown(), b.shutdown()])
  }

  // A config line replaces the stored config of its agent id.
  const update = path.join(f.dir, 'update.jsonl')
  const newer = { ...configs[0], configJson: '{"model":"n"}', version: '1.0.1', updatedAt: 1_770_000_000_000 }
  fs.writeFileSync(update, configLine(newer) + '\n')
  const up = cliJson(['import', update, '--db', db2])
  assert.deepEqual([up.code, up.doc.imported, up.doc.agentConfigs, up.doc.batches], [0, 0, 1, 0])
  const after = cliJson(['export', '--db', db2]).doc.filter((/** @type {any} */ r) => r.kind === 'agentConfig')
  assert.deepEqual(after, byAgentId([newer, ...configs.slice(1)]).map((c) => ({ kind: 'agentConfig', ...c })))

  // With a filter: only the matching patterns, no configs.
  const auth = cli(['export', '--db', f.db, '--domain', 'auth'])
  assert.deepEqual(auth.stdout.trimEnd().split('\n').map((l) => JSON.parse(l)), f.model.query({ domain: 'auth' }).map(asRecord))
  const five = path.join(f.dir, 'five.jsonl')
  const limited = cliJson(['export', '--db', f.db, '--limit', '5', '--out', five])
  assert.deepEqual(limited.doc, { out: five, exported: 5, agentConfigs: 0 })
  assert.equal(fs.readFileSync(five, 'utf8').trimEnd().split('\n').length, 5)
  assert.match(cli(['export', '--db', f.db, '--limit', '5', '--out', five]).stderr, /^exported 5 patterns to /)
})

test('import reads old pattern-only files (no kind) and files mixing both forms', () => {
  const f = fixture('oldformat', 40)
  const mixed = path.join(f.dir, 'mixed.jsonl')
  fs.writeFileSync(mixed, f.patterns.map((p, i) => JSON.stringify({ ...(i % 2 ? { kind: 'pattern' } : {}), ...p, embedding: Array.from(p.embedding) })).join('\n') + '\n')
  for (const [file, db] of [[f.file, f.db], [mixed, path.join(f.dir, 'mixed.db')]]) {
    const r = cliJson(['import', file, '--db', db])
    assert.equal(r.code, 0, r.stderr)
    assert.deepEqual([r.doc.imported, r.doc.agentConfigs], [40, 0])
    assert.match(cli(['import', file, '--db', db]).stdout, /^imported 40 patterns from /, 'no configs: the line of before')
    assert.deepEqual(cliJson(['export', '--db', db]).doc, f.model.query({}).map(asRecord))
  }
})

test('import: a line of an unknown kind, or an agent config that fails validation, stops the import at its line number', () => {
  const f = fixture('badkind', 1500)
  const lines = jsonl(f.patterns).trimEnd().split('\n')

  // An unknown kind at line 1,201: the first batch stays, nothing of the second.
  const unknown = [...lines]
  unknown.splice(1200, 0, JSON.stringify({ kind: 'agentconfig', ...agentConfigs()[0] }))
  const file = path.join(f.dir, 'unknown.jsonl')
  fs.writeFileSync(file, unknown.join('\n') + '\n')
  const r = cliJson(['import', file, '--db', f.db])
  assert.equal(r.code, 3)
  assert.equal(r.doc.error.code, 'INVALID_PATTERN')
  assert.equal(r.doc.error.line, 1201)
  assert.match(r.doc.error.message, /unknown\.jsonl, line 1201: unknown kind "agentconfig"/)
  assert.equal(cliJson(['ls', '--db', f.db]).doc.count, 1000, 'the batch before stays; nothing of the failing one')
  const text = cli(['import', file, '--db', path.join(f.dir, 'text.db')])
  assert.equal(text.code, 3)
  assert.match(text.stderr, /error \[INVALID_PATTERN\]: .*unknown\.jsonl, line 1201: unknown kind "agentconfig"/)
  assert.match(text.stderr, /1,000 patterns of the batches before this one stay imported/)

  // Other kinds that are not one: each reported at its line, nothing of its batch written.
  for (const kind of ['Pattern', 'config', '', null, 1, ['pattern'], { kind: 'pattern' }]) {
    const small = path.join(f.dir, 'small.jsonl')
    fs.writeFileSync(small, [lines[0], lines[1], JSON.stringify({ ...JSON.parse(lines[2]), kind })].join('\n') + '\n')
    const db = path.join(f.dir, `small-${Math.random().toString(36).slice(2)}.db`)
    const bad = cliJson(['import', small, '--db', db])
    assert.equal(bad.code, 3, JSON.stringify(kind))
    assert.equal(bad.doc.error.line, 3, JSON.stringify(kind))
    assert.match(bad.doc.error.message, /line 3: unknown kind /, JSON.stringify(kind))
    assert.equal(cliJson(['ls', '--db', db]).doc.count, 0)
  }

  // An agent config that fails validation at line 1,201: the patterns before it were stored (the config line ended their batch).
  for (const [what, config] of /** @type {Array<[string, Record<string, unknown>]>} */ ([
    ['no configJson', { agentId: 'a', type: 't', version: '1', updatedAt: 1 }],
    ['configJson not JSON', { agentId: 'a', type: 't', configJson: '{nope', version: '1', updatedAt: 1 }],
    ['an empty agentId', { agentId: '', type: 't', configJson: '{}', version: '1', updatedAt: 1 }],
    ['updatedAt a string', { agentId: 'a', type: 't', configJson: '{}', version: '1', updatedAt: 'yesterday' }],
  ])) {
    const badConfig = [...lines]
    badConfig.splice(1200, 0, configLine(config))
    const cfile = path.join(f.dir, 'badconfig.jsonl')
    fs.writeFileSync(cfile, badConfig.join('\n') + '\n')
    const db = path.join(f.dir, `config-${Math.random().toString(36).slice(2)}.db`)
    const c = cliJson(['import', cfile, '--db', db])
    assert.equal(c.code, 3, what)
    assert.equal(c.doc.error.code, 'INVALID_AGENT_CONFIG', `${what}: ${c.doc.error.message}`)
    assert.equal(c.doc.error.line, 1201, what)
    assert.equal(c.doc.error.imported, 1200, what)
    assert.match(c.doc.error.message, /badconfig\.jsonl, line 1201: /, what)
    assert.equal(cliJson(['ls', '--db', db]).doc.count, 1200, what)
    assert.deepEqual(cliJson(['export', '--db', db]).doc.filter((/** @type {any} */ x) => x.kind === 'agentConfig'), [], what)
  }
})

test('stats: counts from getStats() (patterns, every verdict, agent configs) match the data; sizes summed page by page', async () => {
  const f = fixture('stats-configs', 2500)
  const configs = agentConfigs()
  const file = path.join(f.dir, 'with-configs.jsonl')
  fs.writeFileSync(file, jsonl(f.patterns) + configs.map(configLine).join('\n') + '\n')
  assert.equal(cli(['import', file, '--db', f.db]).code, 0)
  const r = cliJson(['stats', '--db', f.db])
  assert.equal(r.code, 0, r.stderr)
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
  assert.equal(r.doc.agentConfigCount, 3)
  for (const [key, field] of [['domain', 'domains'], ['type', 'types'], ['framework', 'frameworks'], ['verdict', 'verdicts']]) {
    assert.deepEqual(r.doc[field], counts(key), field)
    const values = Object.values(r.doc[field])
    assert.ok(values.every((v, i) => i === 0 || values[i - 1] >= v), `${field}: the largest count first`)
    assert.equal(values.reduce((n, v) => n + v, 0), 2500, `${field} add up to the pattern count`)
  }
  assert.equal(r.doc.sizes.contentBytes, all.reduce((n, p) => n + Buffer.byteLength(p.content), 0))
  assert.equal(r.doc.sizes.metadataBytes, all.reduce((n, p) => n + (p.metadata === undefined ? 0 : Buffer.byteLength(JSON.stringify(p.metadata))), 0))
  assert.equal(r.doc.sizes.embeddingBytes, 2500 * 16 * 4)
  const text = cli(['stats', '--db', f.db]).stdout
  assert.match(text, /^patterns: 2,500 \(embedding dimension 16\)\nagent configs: 3\n/)

  // The same counts as the API's, and they follow deletes of patterns and configs.
  const cache = await PatternCache.open({ dbPath: f.db, enabled: false, backgroundRebuild: false })
  try {
    const stats = await cache.getStats()
    assert.deepEqual(r.doc.domains, stats.byDomain)
    assert.equal(stats.dimension, 16)
    assert.deepEqual(Object.keys(stats.byVerdict).sort(), ['failure', 'flaky', 'success', 'unknown'])
    assert.equal(await cache.deleteAgentConfig('tester'), true)
    assert.equal(await cache.deleteAgentConfig('tester'), false)
    assert.equal(await cache.deletePattern(all[0].id), true)
  } finally {
    await cache.shutdown()
  }
  const after = cliJson(['stats', '--db', f.db]).doc
  assert.equal(after.agentConfigCount, 2)
  assert.equal(after.patternCount, 2499)
  assert.equal(after.domains[all[0].domain], counts('domain')[all[0].domain] - 1)
  assert.equal(after.sizes.contentBytes, r.doc.sizes.contentBytes - Buffer.byteLength(all[0].content))

  // An empty database.
  const dir = dirFor('stats-empty')
  const empty = path.join(dir, 'empty.jsonl')
  fs.writeFileSync(empty, '')
  const db = path.join(dir, 'patterns.db')
  assert.equal(cli(['import', empty, '--db', db]).code, 0)
  const none = cliJson(['stats', '--db', db]).doc
  assert.deepEqual({ ...none, sizes: undefined }, { patternCount: 0, embeddingDim: null, domains: {}, types: {}, frameworks: {}, verdicts: {}, agentConfigCount: 0, sizes: undefined })
  assert.deepEqual([none.sizes.contentBytes, none.sizes.metadataBytes, none.sizes.embeddingBytes], [0, 0, 0])
  assert.match(cli(['stats', '--db', db]).stdout, /^patterns: 0\nagent configs: 0\nper domain:\nper type:\n/)
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
    ['patterns.v2.pcache', 'patterns.v2.pcache.bak', 'patterns.v2.pcache.lock', 'patterns.v2.pcache.tmp-abc123'],
  )
  const left = fs.readdirSync(f.dir)
  assert.ok(left.includes('patterns.db'), left.join())
  assert.ok(left.includes('unrelated.pcache'), left.join())
  assert.equal(left.filter((n) => n.startsWith('patterns.v2.pcache')).length, 0, left.join())
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
    f.patterns.map(expectedStored).sort((a, b) => Buffer.compare(Buffer.from(String(a.id)), Buffer.from(String(b.id)))).map(asRecord),
  )
})

// ---------------------------------------------------------------- search
// Results are checked against a brute-force computation (float64 over the
// stored float32 values), not against hard-coded ids. Scores may differ from
// it by TOL (the API computes in float32 or better), so where two candidates
// are nearer than 2*TOL either order is accepted; anywhere else the ids must
// be exactly brute force's.

const TOL = 1e-4
/** Two scores each within TOL of the truth may swap when their true values are this close. */
const ORDER_TOL = 2 * TOL
const DIM = 16

/** @param {ArrayLike<number>} a @param {ArrayLike<number>} b */
function dot(a, b) {
  let s = 0
  for (let i = 0; i < a.length; i++) s += a[i] * b[i]
  return s
}
/** @param {ArrayLike<number>} a @param {ArrayLike<number>} b */
function cosine(a, b) {
  const n = Math.sqrt(dot(a, a)) * Math.sqrt(dot(b, b))
  return n === 0 ? 0 : dot(a, b) / n
}
/** @param {ArrayLike<number>} a @param {ArrayLike<number>} b */
function euclidean(a, b) {
  let s = 0
  for (let i = 0; i < a.length; i++) s += (a[i] - b[i]) ** 2
  return Math.sqrt(s)
}
/** @type {Record<string, (a: ArrayLike<number>, b: ArrayLike<number>) => number>} */
const METRICS = { cosine, dot, euclidean }

/**
 * @typedef {{ k?: number, threshold?: number, domain?: string, type?: string, framework?: string, metric?: string, useMMR?: boolean, mmrLambda?: number }} SearchOpts
 * @typedef {{ id: string, embedding: number[], score: number }} Candidate
 */

/** The command-line arguments of a search's options. @param {SearchOpts} o */
function searchArgs(o) {
  const args = []
  for (const key of /** @type {const} */ (['k', 'threshold', 'domain', 'type', 'framework', 'metric'])) if (o[key] !== undefined) args.push(`--${key}=${o[key]}`)
  if (o.useMMR) args.push(...(o.mmrLambda === undefined ? ['--mmr'] : ['--mmr', String(o.mmrLambda)]))
  return args
}

/** Whether a score passes the threshold (by `slack` more or less). @param {number} score @param {SearchOpts} o */
function passes(score, o, slack = 0) {
  if (o.threshold === undefined) return true
  return o.metric === 'euclidean' ? score <= o.threshold + slack : score >= o.threshold - slack
}

/**
 * Every pattern matching the filters and the threshold, scored against q, best first, ties by id.
 * @param {Model} model @param {ArrayLike<number>} q @param {SearchOpts} o
 * @returns {Candidate[]}
 */
function ranked(model, q, o) {
  const metric = o.metric ?? 'cosine'
  const sign = metric === 'euclidean' ? 1 : -1
  return model
    .query({ domain: o.domain, type: o.type, framework: o.framework })
    .map((p) => ({ id: p.id, embedding: p.embedding, score: METRICS[metric](q, p.embedding) }))
    .filter((c) => passes(c.score, o))
    .sort((a, b) => sign * (a.score - b.score) || byteOrder(a.id, b.id))
}

/**
 * Replays the API's greedy choice over `pool`: at each rank the result must be the
 * candidate of the best value (exact ties by id), or, where another is within
 * ORDER_TOL of it, one whose value is within ORDER_TOL of the best. Each result's score must be its own.
 * @param {Array<{ id: string, score: number }>} results
 * @param {Candidate[]} pool
 * @param {(c: Candidate, picked: Candidate[]) => number} value higher is better
 * @param {string} what
 */
function assertGreedy(results, pool, value, what) {
  const byId = new Map(pool.map((c) => [c.id, c]))
  /** @type {Candidate[]} */
  const picked = []
  let rest = [...pool]
  results.forEach((r, i) => {
    const c = byId.get(r.id)
    assert.ok(c, `${what}: result ${i + 1} '${r.id}' is not a candidate (a filter, the threshold, or twice)`)
    assert.ok(Math.abs(r.score - c.score) <= TOL, `${what}: score of '${r.id}' is ${r.score}, brute force ${c.score}`)
    const values = rest.map((x) => ({ x, v: value(x, picked) })).sort((a, b) => b.v - a.v || byteOrder(a.x.id, b.x.id))
    const [best, second] = values
    const mine = value(c, picked)
    if (!second || best.v - second.v > ORDER_TOL || best.v === second.v) assert.equal(r.id, best.x.id, `${what}: result ${i + 1}`)
    else assert.ok(mine >= best.v - ORDER_TOL, `${what}: result ${i + 1} '${r.id}' has value ${mine}, '${best.x.id}' ${best.v}`)
    picked.push(c)
    rest = rest.filter((x) => x !== c)
    byId.delete(r.id)
  })
}

/**
 * Checks a search's results against brute force.
 * @param {Array<{ id: string, score: number }>} results @param {Model} model @param {ArrayLike<number>} query @param {SearchOpts} o
 */
function assertSearch(results, model, query, o) {
  const q = Array.from(Float32Array.from(query))
  const what = JSON.stringify(o)
  const k = o.k ?? 10
  const metric = o.metric ?? 'cosine'
  const all = ranked(model, q, o)
  if (!o.useMMR) {
    assert.equal(results.length, Math.min(k, all.length), `${what}: k results whenever k match`)
    const sign = metric === 'euclidean' ? -1 : 1
    assertGreedy(results, all, (c) => sign * c.score, what)
    for (let i = 1; i < results.length; i++) {
      const [a, b] = [results[i - 1], results[i]]
      assert.ok(sign * (a.score - b.score) >= 0, `${what}: best first at ${i + 1}`)
      if (a.score === b.score) assert.ok(byteOrder(a.id, b.id) < 0, `${what}: ties by id at ${i + 1}`)
    }
    return
  }
  const lambda = o.mmrLambda ?? 0.5
  const pool = all.slice(0, 3 * k)
  assert.equal(results.length, Math.min(k, pool.length), `${what}: k results whenever k match`)
  const mmr = (/** @type {Candidate} */ c, /** @type {Candidate[]} */ picked) =>
    lambda * cosine(q, c.embedding) - (1 - lambda) * (picked.length ? Math.max(...picked.map((s) => cosine(c.embedding, s.embedding))) : 0)
  assertGreedy(results, pool, mmr, `${what} (MMR)`)
}

/** A seeded query vector of numbers. @param {number} seed */
function queryVector(seed, dim = DIM) {
  const r = rng(seed)
  return Array.from({ length: dim }, () => r() * 2 - 1)
}

/** @type {ReturnType<typeof fixture> & { query: number[] } | undefined} */
let searchStore
/**
 * One imported store for the search tests (they only read it): 2,500 generated
 * patterns, one with a zero embedding, and two with the same embedding.
 */
function searchFixture() {
  if (searchStore) return searchStore
  const dir = dirFor('search')
  const patterns = generatePatterns(2500, { seed: 11 })
  const twin = queryVector(99)
  patterns.push(
    { id: 'zero-embedding', type: 'unit', domain: 'auth', framework: 'jest', content: 'c', embedding: new Float32Array(DIM) },
    { id: 'twin-b', type: 'unit', domain: 'auth', content: 'c', embedding: twin },
    { id: 'twin-a', type: 'e2e', domain: 'billing', content: 'c', embedding: twin },
  )
  const file = path.join(dir, 'in.jsonl')
  fs.writeFileSync(file, jsonl(patterns))
  const model = new Model()
  model.store(patterns)
  const db = path.join(dir, 'patterns.db')
  const r = cli(['import', file, '--db', db])
  assert.equal(r.code, 0, r.stderr)
  searchStore = { dir, db, cachePath: path.join(dir, 'patterns.v2.pcache'), file, patterns, model, query: queryVector(5) }
  return searchStore
}

/** Runs `search --json` and checks it succeeded. @param {string[]} args */
function search(args) {
  const r = cliJson(['search', ...args])
  assert.equal(r.code, 0, `search ${args.join(' ')}: ${JSON.stringify(r.doc)} ${r.stderr}`)
  assert.equal(r.doc.ok, true)
  return /** @type {Array<{ id: string, score: number, type: string, domain: string, framework: string, verdict: string }>} */ (r.doc.results)
}

/** Runs `search --json` expecting a failure; returns its exit code and error. @param {string[]} args */
function searchFails(args) {
  const r = cliJson(['search', ...args])
  assert.equal(r.doc.ok, false, `search ${args.join(' ')} should fail: ${JSON.stringify(r.doc)}`)
  assert.equal(r.doc.exitCode, r.code)
  return { code: r.code, error: r.doc.error }
}

test('search --like: the pattern first, then its nearest neighbours as brute force ranks them; reads SQLite, writes nothing', () => {
  const f = searchFixture()
  const ids = f.model.query({}).map((p) => p.id)
  for (const id of [ids[100], ids[2000], "x'; DROP TABLE patterns;--", '\u{1f600}-emoji']) {
    const embedding = f.model.get(id)?.embedding
    const results = search(['--db', f.db, '--like', id])
    assert.equal(results.length, 10, 'k defaults to 10')
    assert.equal(results[0].id, id, 'the pattern itself is the most similar')
    assert.ok(Math.abs(results[0].score - 1) <= TOL, `cosine with itself: ${results[0].score}`)
    assertSearch(results, f.model, embedding, {})
    // The same under euclidean: distance 0 to itself.
    const near = search(['--db', f.db, '--like', id, '--metric', 'euclidean', '--k', '5'])
    assert.equal(near[0].id, id)
    assert.ok(Math.abs(near[0].score) <= TOL)
    assertSearch(near, f.model, embedding, { metric: 'euclidean', k: 5 })
  }
  // Two patterns with one embedding tie (score for score) and come by id.
  const twins = search(['--db', f.db, '--like', 'twin-b', '--k', '3'])
  assert.deepEqual(twins.slice(0, 2).map((r) => r.id), ['twin-a', 'twin-b'])
  assert.equal(twins[0].score, twins[1].score)
  // A filter may leave the pattern itself out.
  const others = search(['--db', f.db, '--like', 'twin-b', '--domain', 'billing', '--k', '3'])
  assert.equal(others[0].id, 'twin-a')
  assert.ok(!others.some((r) => r.id === 'twin-b'))
  assertSearch(others, f.model, f.model.get('twin-b')?.embedding, { domain: 'billing', k: 3 })
  assert.deepEqual(fs.readdirSync(f.dir).filter((n) => n.includes('.pcache')), [], 'search opens the store with the cache disabled: no file is built')
})

test('search prints a header and one line per result: rank, score (6 decimals), id, type, domain, framework', () => {
  const f = searchFixture()
  const id = f.model.query({})[42].id
  for (const [metric, header] of [['cosine', 'COSINE'], ['dot', 'DOT'], ['euclidean', 'DISTANCE']]) {
    const args = ['--db', f.db, '--like', id, '--k', '7', '--metric', metric]
    const results = search(args)
    const text = cli(['search', ...args])
    assert.equal(text.code, 0, text.stderr)
    assert.equal(text.stderr, '')
    const lines = text.stdout.trimEnd().split('\n')
    assert.match(lines[0], new RegExp(`^RANK  +${header}  +ID  +TYPE  +DOMAIN  +FRAMEWORK$`))
    assert.deepEqual(
      lines.slice(1).map((l) => l.trim().split(/ {2,}/)),
      results.map((r, i) => [String(i + 1), r.score.toFixed(6), r.id, r.type, r.domain, r.framework]),
    )
    const ends = lines.slice(1).map((l, i) => l.indexOf(results[i].score.toFixed(6)) + results[i].score.toFixed(6).length)
    assert.equal(new Set(ends).size, 1, 'scores are right-aligned')
  }
  const none = cli(['search', '--db', f.db, '--like', id, '--domain', 'absent'])
  assert.equal(none.code, 0)
  assert.equal(none.stdout, 'no results\n')
})

test('search --vector: inline JSON and a file holding it give the same results, as brute force ranks them', () => {
  const f = searchFixture()
  const inline = search(['--db', f.db, '--vector', JSON.stringify(f.query)])
  assertSearch(inline, f.model, f.query, {})
  const file = path.join(f.dir, 'query.json')
  fs.writeFileSync(file, JSON.stringify(f.query, null, 2) + '\n')
  assert.deepEqual(search(['--db', f.db, '--vector', file]), inline)
  const bom = path.join(f.dir, 'query-bom.json')
  fs.writeFileSync(bom, '\uFEFF ' + JSON.stringify(f.query) + '\n')
  assert.deepEqual(search(['--db', f.db, '--vector', bom]), inline, 'a byte-order mark and white space are fine')
  assert.deepEqual(search(['--db', f.db, '--vector', ' ' + JSON.stringify(f.query)]), inline)
  // A Float32Array's values written as numbers: the same query.
  assert.deepEqual(search(['--db', f.db, '--vector', JSON.stringify(Array.from(Float32Array.from(f.query)))]), inline)
})

test('search: filters apply before ranking, so k results come back whenever k patterns match', () => {
  const f = searchFixture()
  /** @type {SearchOpts[]} */
  const cases = [
    { domain: 'auth' },
    { type: 'e2e', framework: 'jest' },
    { domain: '検索', k: 25 },
    { framework: 'unknown', k: 50 },
    { domain: 'auth', type: 'unit', framework: 'jest', k: 1000 },
    { domain: 'payments', type: 'contract', k: 1000, metric: 'dot' },
    { domain: 'absent' },
  ]
  for (const o of cases) {
    const results = search(['--db', f.db, '--vector', JSON.stringify(f.query), ...searchArgs(o)])
    const matching = f.model.query({ domain: o.domain, type: o.type, framework: o.framework })
    assert.equal(results.length, Math.min(o.k ?? 10, matching.length), JSON.stringify(o))
    for (const r of results) {
      const p = f.model.get(r.id)
      assert.ok(p && (o.domain === undefined || p.domain === o.domain) && (o.type === undefined || p.type === o.type) && (o.framework === undefined || p.framework === o.framework), `${r.id} matches ${JSON.stringify(o)}`)
    }
    assertSearch(results, f.model, f.query, o)
  }
  const small = f.model.query({ domain: 'auth', type: 'unit', framework: 'jest' }).length
  assert.ok(small > 0 && small < 50, `the narrow filter matches a few patterns (${small})`)
})

test('search --k and --metric: cosine, dot and euclidean as brute force ranks them', () => {
  const f = searchFixture()
  for (const metric of ['cosine', 'dot', 'euclidean']) {
    for (const k of [1, 3, 10, 1000]) {
      const o = { metric, k }
      const results = search(['--db', f.db, '--vector', JSON.stringify(f.query), ...searchArgs(o)])
      assertSearch(results, f.model, f.query, o)
    }
  }
  // Without --metric the scores are cosine similarities; --k 1000 returns 1,000 of the 2,503.
  const cos = search(['--db', f.db, '--vector', JSON.stringify(f.query), '--k', '1000'])
  assert.equal(cos.length, 1000)
  assert.ok(cos.every((r) => r.score <= 1 + TOL && r.score >= -1 - TOL))
  const dist = search(['--db', f.db, '--vector', JSON.stringify(f.query), '--metric', 'euclidean', '--k', '1000'])
  assert.ok(dist.every((r, i) => i === 0 || dist[i - 1].score <= r.score), 'euclidean: the smallest distance first')
})

/**
 * A threshold halfway between two scores at least 4*TOL apart, from rank `from` on,
 * so that the count passing it is exact. @param {Candidate[]} all @param {number} from
 */
function clearThreshold(all, from) {
  let m = from
  while (Math.abs(all[m].score - all[m + 1].score) < 4 * TOL) m++
  return { threshold: (all[m].score + all[m + 1].score) / 2, passing: m + 1 }
}

test('search --threshold: cosine and dot keep scores >= x, euclidean distances <= x', () => {
  const f = searchFixture()
  const q = Array.from(Float32Array.from(f.query))
  for (const metric of ['cosine', 'dot', 'euclidean']) {
    const { threshold, passing } = clearThreshold(ranked(f.model, q, { metric }), 40)
    const o = { metric, threshold, k: 1000 }
    const results = search(['--db', f.db, '--vector', JSON.stringify(f.query), ...searchArgs(o)])
    assert.equal(results.length, passing, `${metric}: the ${passing} scores past ${threshold}`)
    assertSearch(results, f.model, f.query, o)
    // With k too: k of them.
    assertSearch(search(['--db', f.db, '--vector', JSON.stringify(f.query), ...searchArgs({ ...o, k: 5 })]), f.model, f.query, { ...o, k: 5 })
  }
  // A negative threshold, as a separate argument.
  const all = ranked(f.model, q, { domain: 'auth' })
  const negative = clearThreshold(all, all.findIndex((c) => c.score < -0.2))
  assert.ok(negative.threshold < 0 && negative.passing < 1000)
  const below = search(['--db', f.db, '--vector', JSON.stringify(f.query), '--domain', 'auth', '--threshold', String(negative.threshold), '--k', '1000'])
  assert.equal(below.length, negative.passing)
  assertSearch(below, f.model, f.query, { domain: 'auth', threshold: negative.threshold, k: 1000 })
  // Thresholds nothing passes.
  assert.deepEqual(search(['--db', f.db, '--vector', JSON.stringify(f.query), '--threshold', '1.5']), [])
  assert.deepEqual(search(['--db', f.db, '--vector', JSON.stringify(f.query), '--metric', 'euclidean', '--threshold', '0']), [])
})

test('search --mmr: greedy maximal marginal relevance from the 3k best, with and without lambda', () => {
  const f = searchFixture()
  const q = JSON.stringify(f.query)
  const plain = search(['--db', f.db, '--vector', q])
  /** @type {Array<[string[], SearchOpts]>} */
  const cases = [
    [['--mmr'], { useMMR: true }],
    [['--mmr', '0.3'], { useMMR: true, mmrLambda: 0.3 }],
    [['--mmr=0.8'], { useMMR: true, mmrLambda: 0.8 }],
    [['--mmr', '0'], { useMMR: true, mmrLambda: 0 }],
    [['--mmr', '--k', '5'], { useMMR: true, k: 5 }],
    [['--k', '20', '--mmr', '.7', '--domain', 'auth'], { useMMR: true, mmrLambda: 0.7, k: 20, domain: 'auth' }],
    [['--mmr', '0.5', '--metric', 'euclidean', '--k', '8'], { useMMR: true, k: 8, metric: 'euclidean' }],
    [['--mmr', '0.6', '--metric', 'dot'], { useMMR: true, mmrLambda: 0.6, metric: 'dot' }],
    [['--mmr', '--threshold=0.3', '--k', '15'], { useMMR: true, threshold: 0.3, k: 15 }],
    [['--mmr', '0.4', '--domain', 'auth', '--type', 'unit', '--framework', 'jest', '--k', '1000'], { useMMR: true, mmrLambda: 0.4, k: 1000, domain: 'auth', type: 'unit', framework: 'jest' }],
  ]
  for (const [args, o] of cases) {
    const results = search(['--db', f.db, '--vector', q, ...args])
    assertSearch(results, f.model, f.query, o)
  }
  const diverse = search(['--db', f.db, '--vector', q, '--mmr', '0.3'])
  assert.notDeepEqual(diverse.map((r) => r.id), plain.map((r) => r.id), 'lambda 0.3 trades relevance for diversity')
  assert.equal(diverse[0].id, plain[0].id, 'the first pick is the most relevant')
  const relevance = search(['--db', f.db, '--vector', q, '--mmr', '1'])
  assert.deepEqual(relevance, plain, 'lambda 1: relevance only, the plain cosine ranking')
  assert.deepEqual(search(['--db', f.db, '--vector', q, '--mmr']), search(['--db', f.db, '--vector', q, '--mmr', '0.5']), 'the default lambda is 0.5')
})

test('search --json: { ok, results: [{ id, score, type, domain, framework, verdict }] }, no embeddings', () => {
  const f = searchFixture()
  const r = cliJson(['search', '--db', f.db, '--vector', JSON.stringify(f.query), '--k', '4'])
  assert.equal(r.code, 0)
  assert.deepEqual(Object.keys(r.doc), ['ok', 'results'])
  assert.equal(r.doc.ok, true)
  assert.equal(r.doc.results.length, 4)
  for (const row of r.doc.results) {
    assert.deepEqual(Object.keys(row), ['id', 'score', 'type', 'domain', 'framework', 'verdict'])
    const p = f.model.get(row.id)
    assert.ok(p)
    assert.deepEqual({ ...row, score: 0 }, { id: p.id, score: 0, type: p.type, domain: p.domain, framework: p.framework, verdict: p.verdict })
    assert.equal(typeof row.score, 'number')
  }
  assert.equal(r.stderr, '')
})

test('search usage errors exit 2 before the store is opened', () => {
  const f = searchFixture()
  const dir = dirFor('search-usage')
  fs.writeFileSync(path.join(dir, 'object.json'), '{"embedding": [1, 2]}')
  fs.writeFileSync(path.join(dir, 'strings.json'), '[0.5, "0.25"]')
  fs.writeFileSync(path.join(dir, 'broken.json'), '[0.5, 0.25')
  fs.writeFileSync(path.join(dir, 'empty.json'), '')
  const before = fs.readdirSync(f.dir).sort()
  const vector = JSON.stringify(f.query)
  /** @type {Array<[string[], RegExp]>} */
  const cases = [
    [[], /needs a query: --like <id> or --vector/],
    [['--like', 'a', '--vector', vector], /one query: --like or --vector, not both/],
    [['--like', ''], /--like must not be empty/],
    [['--vector', ''], /--vector must not be empty/],
    [['--like'], /--like/],
    [['--vector', vector, '--k', '2.5'], /--k must be an integer, got '2.5'/],
    [['--vector', vector, '--k', 'ten'], /--k must be an integer/],
    [['--vector', vector, '--k', ''], /--k must be an integer/],
    [['--vector', vector, '--threshold', 'high'], /--threshold must be a number, got 'high'/],
    [['--vector', vector, '--threshold', '0x10'], /--threshold must be a number/],
    [['--vector', vector, '--threshold', 'Infinity'], /--threshold must be a number/],
    [['--vector', vector, '--mmr=much'], /--mmr takes an optional lambda, a number in 0\.\.1, got 'much'/],
    [['--vector', vector, '--mmr', 'much'], /no argument, got 'much' \(the lambda of --mmr is a number in 0\.\.1\)/],
    [['--vector', vector, '--metric', ''], /--metric must not be empty/],
    [['--vector', vector, 'stray'], /search takes no argument, got 'stray'/],
    [['--vector', vector, '--limit', '3'], /search takes no --limit option/],
    [['--vector', '[0.5, 0.25'], /--vector: not a JSON array of numbers/],
    [['--vector', '[0.5, null]'], /--vector: element 1 is not a number \(got null\)/],
    [['--vector', '[[0.5]]'], /element 0 is not a number/],
    [['--vector', path.join(dir, 'object.json')], /object\.json: not a JSON array of numbers \(got object\)/],
    [['--vector', path.join(dir, 'strings.json')], /strings\.json: element 1 is not a number \(got "0\.25"\)/],
    [['--vector', path.join(dir, 'broken.json')], /broken\.json: not a JSON array of numbers/],
    [['--vector', path.join(dir, 'empty.json')], /empty\.json: not a JSON array of numbers/],
    [['--vector', dir], /is a directory/],
  ]
  for (const [args, message] of cases) {
    const { code, error } = searchFails(['--db', f.db, ...args])
    assert.equal(code, 2, `${args.join(' ')}: ${error.message}`)
    assert.equal(error.code, 'USAGE')
    assert.match(error.message, message, args.join(' '))
    const text = cli(['search', '--db', f.db, ...args])
    assert.equal(text.code, 2)
    assert.equal(text.stdout, '')
    assert.match(text.stderr, /^pattern-cache: /)
  }
  assert.equal(cli(['ls', '--db', f.db, '--like', 'a']).code, 2, 'other commands take no search option')
  assert.equal(cli(['ls', '--db', f.db, '--mmr', '0.5']).code, 2)
  // Usage errors come before the database: a missing one is not created, nor reported.
  const nodb = path.join(dir, 'none', 'patterns.db')
  assert.equal(searchFails(['--db', nodb, '--vector', '[1, 2']).code, 2)
  assert.equal(fs.existsSync(path.dirname(nodb)), false)
  assert.deepEqual(fs.readdirSync(f.dir).sort(), before, 'nothing was written beside the database')
})

test('search: an unknown id, a vector the API refuses, out-of-range values exit 3 with INVALID_ARGUMENT', () => {
  const f = searchFixture()
  const q = JSON.stringify(f.query)
  const unknown = searchFails(['--db', f.db, '--like', 'no-such-pattern'])
  assert.equal(unknown.code, 3)
  assert.equal(unknown.error.code, 'INVALID_ARGUMENT')
  assert.match(unknown.error.message, /--like: no pattern with id "no-such-pattern"/)
  const text = cli(['search', '--db', f.db, '--like', 'no-such-pattern'])
  assert.equal(text.code, 3)
  assert.match(text.stderr, /^pattern-cache: error \[INVALID_ARGUMENT\]: --like: no pattern with id "no-such-pattern"/)
  assert.equal(text.stdout, '')
  /** @type {Array<[string, string[]]>} */
  const refused = [
    ['a vector of another dimension', ['--vector', '[0.1, 0.2, 0.3]']],
    ['a longer vector', ['--vector', JSON.stringify([...f.query, 0.5])]],
    ['an empty vector', ['--vector', '[]']],
    ['a value that is not finite (1e999)', ['--vector', JSON.stringify(f.query).replace(/^\[[^,]+/, '[1e999')]],
    ['a value past float32 (1e39)', ['--vector', JSON.stringify(f.query).replace(/^\[[^,]+/, '[1e39')]],
    ['a zero vector under cosine', ['--vector', JSON.stringify(Array(DIM).fill(0))]],
    ['a stored zero embedding under cosine', ['--like', 'zero-embedding']],
    ['k 0', ['--vector', q, '--k', '0']],
    ['k 1001', ['--vector', q, '--k', '1001']],
    ['k -3', ['--vector', q, '--k', '-3']],
    ['lambda 1.5', ['--vector', q, '--mmr', '1.5']],
    ['lambda -0.5', ['--vector', q, '--mmr=-0.5']],
    ['an unknown metric', ['--vector', q, '--metric', 'manhattan']],
    ['a metric in capitals', ['--vector', q, '--metric', 'COSINE']],
  ]
  for (const [what, args] of refused) {
    const { code, error } = searchFails(['--db', f.db, ...args])
    assert.equal(code, 3, `${what}: ${JSON.stringify(error)}`)
    assert.equal(error.code, 'INVALID_ARGUMENT', `${what}: ${JSON.stringify(error)}`)
  }
  const missingFile = searchFails(['--db', f.db, '--vector', path.join(f.dir, 'absent.json')])
  assert.equal(missingFile.code, 3)
  assert.equal(missingFile.error.code, 'IO_ERROR')
  assert.match(missingFile.error.message, /no such file/)
  // A missing database: DB_ERROR, as the other read commands, and nothing created.
  const dir = dirFor('search-nodb')
  const r = cli(['search', '--db', path.join(dir, 'sub', 'patterns.db'), '--vector', q])
  assert.equal(r.code, 3)
  assert.match(r.stderr, /error \[DB_ERROR\]: no database at/)
  assert.deepEqual(fs.readdirSync(dir), [])
})

test('search: zero vectors under dot and euclidean, a stored zero embedding, an empty database', () => {
  const f = searchFixture()
  const zeros = JSON.stringify(Array(DIM).fill(0))
  // Every dot product with a zero query is 0: a tie, so the first k by id.
  const dot0 = search(['--db', f.db, '--vector', zeros, '--metric', 'dot', '--k', '12'])
  assert.deepEqual(dot0.map((r) => r.id), f.model.query({ limit: 12 }).map((p) => p.id))
  assert.ok(dot0.every((r) => r.score === 0))
  // Under euclidean the distance to zero is the norm; the stored zero embedding is first.
  const euc0 = search(['--db', f.db, '--vector', zeros, '--metric', 'euclidean', '--k', '50'])
  assert.equal(euc0[0].id, 'zero-embedding')
  assert.equal(euc0[0].score, 0)
  assertSearch(euc0, f.model, Array(DIM).fill(0), { metric: 'euclidean', k: 50 })
  // The stored zero embedding has cosine 0 with any query.
  const narrow = { domain: 'auth', type: 'unit', framework: 'jest', k: 1000 }
  const withZero = search(['--db', f.db, '--vector', JSON.stringify(f.query), ...searchArgs(narrow)])
  const zero = withZero.find((r) => r.id === 'zero-embedding')
  assert.ok(zero, 'the zero embedding is scored too')
  assert.equal(zero.score, 0)
  assertSearch(withZero, f.model, f.query, narrow)
  // --like a zero embedding works under dot: all ties, by id.
  assert.deepEqual(
    search(['--db', f.db, '--like', 'zero-embedding', '--metric', 'dot', '--k', '3']).map((r) => r.id),
    f.model.query({ limit: 3 }).map((p) => p.id),
  )

  // An empty database answers [] whatever the vector.
  const dir = dirFor('search-empty')
  const empty = path.join(dir, 'empty.jsonl')
  fs.writeFileSync(empty, '')
  const db = path.join(dir, 'patterns.db')
  assert.equal(cli(['import', empty, '--db', db]).code, 0)
  assert.deepEqual(search(['--db', db, '--vector', '[1, 2, 3]']), [])
  assert.deepEqual(search(['--db', db, '--vector', '[1, 2]', '--mmr', '--metric', 'euclidean']), [])
  assert.equal(cli(['search', '--db', db, '--vector', '[0.5]']).stdout, 'no results\n')
  const none = searchFails(['--db', db, '--like', 'anything'])
  assert.equal(none.code, 3)
  assert.equal(none.error.code, 'INVALID_ARGUMENT')
})

// @ts-check
'use strict'
// Shared helpers of the reliability battery (torture/*.js): options from the
// command line and the environment, result files, pattern generators, child
// processes, and looks at the database from outside the package (python3's
// sqlite3 module, for PRAGMA integrity_check and raw table dumps).

const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { spawn, spawnSync } = require('node:child_process')
const { PatternCache, ERROR_CODES } = require('../index.js')

/** @typedef {import('../index').TestPattern} TestPattern */
/** @typedef {import('../index').StoredPattern} StoredPattern */
/** @typedef {{ name: string, value: number | string | boolean, target?: string, met?: boolean }} Figure */
/**
 * What every script reports (and writes to torture/results/<name>.json).
 * @typedef {{
 *   name: string,
 *   title: string,
 *   command: string,
 *   config: Record<string, unknown>,
 *   figures: Figure[],
 *   notes: string[],
 *   ok: boolean,
 *   startedAt: string,
 *   durationMs: number,
 *   details?: unknown,
 * }} Result
 */

const ROOT = path.resolve(__dirname, '..')
const RESULTS_DIR = path.join(__dirname, 'results')

/**
 * Numeric options: `--name N` on the command line wins, then the environment
 * variable `TORTURE_<NAME>` (upper case, dashes as underscores), then the default.
 * @template {Record<string, number>} T
 * @param {T} defaults
 * @param {string[]} [argv]
 * @returns {T}
 */
function options(defaults, argv = process.argv.slice(2)) {
  /** @type {Record<string, number>} */
  const out = { ...defaults }
  for (const key of Object.keys(defaults)) {
    const flag = `--${key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`
    const env = `TORTURE_${key.replace(/[A-Z]/g, (c) => `_${c}`).toUpperCase()}`
    let raw = process.env[env]
    const at = argv.indexOf(flag)
    if (at >= 0 && at + 1 < argv.length) raw = argv[at + 1]
    const eq = argv.find((a) => a.startsWith(`${flag}=`))
    if (eq) raw = eq.slice(flag.length + 1)
    if (raw !== undefined) {
      const n = Number(raw)
      if (!Number.isFinite(n) || n < 0) throw new Error(`${flag} / ${env} must be a non-negative number, got ${raw}`)
      out[key] = n
    }
  }
  return /** @type {T} */ (out)
}

/** The command that produced this run, as a reader would type it from the package root. */
function commandLine() {
  const script = path.relative(ROOT, process.argv[1] || '')
  return ['node', ...process.execArgv, script, ...process.argv.slice(2)].join(' ')
}

/**
 * A figure with a target: `met` when `ok`.
 * @param {string} name @param {number | string | boolean} value @param {string} target @param {boolean} ok
 * @returns {Figure}
 */
function target(name, value, target, ok) {
  return { name, value, target, met: ok }
}

/**
 * A result object; `ok` is true when every figure with a target met it.
 * @param {{ name: string, title: string, config: Record<string, unknown>, figures: Figure[], notes?: string[], started: number, details?: unknown }} r
 * @returns {Result}
 */
function result(r) {
  return {
    name: r.name,
    title: r.title,
    command: commandLine(),
    config: r.config,
    figures: r.figures,
    notes: r.notes ?? [],
    ok: r.figures.every((f) => f.met !== false),
    startedAt: new Date(r.started).toISOString(),
    durationMs: Date.now() - r.started,
    ...(r.details === undefined ? {} : { details: r.details }),
  }
}

/** Prints a result's figures and writes it to torture/results/<name>.json. @param {Result} r */
function report(r) {
  console.log(`\n== ${r.name}: ${r.title}`)
  console.log(`   ${r.command}  (${(r.durationMs / 1000).toFixed(1)} s)`)
  for (const f of r.figures) {
    const t = f.target === undefined ? '' : `   target ${f.target}: ${f.met ? 'met' : 'NOT MET'}`
    console.log(`   ${f.name}: ${f.value}${t}`)
  }
  for (const n of r.notes) console.log(`   note: ${n}`)
  fs.mkdirSync(RESULTS_DIR, { recursive: true })
  const file = path.join(RESULTS_DIR, `${r.name}.json`)
  fs.writeFileSync(file, JSON.stringify(r, null, 2) + '\n')
  console.log(`   -> ${path.relative(ROOT, file)}`)
}

/**
 * Runs a script's `run(opts)` as its command-line entry: prints, writes the
 * JSON, exits 1 when a target was missed.
 * @param {() => Promise<Result>} run
 */
function main(run) {
  run().then(
    (r) => {
      report(r)
      process.exitCode = r.ok ? 0 : 1
    },
    (e) => {
      console.error(e)
      process.exitCode = 2
    },
  )
}

/** A fresh temp directory, removed at exit unless TORTURE_KEEP is set. @param {string} name */
function tempDir(name) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `pattern-cache-torture-${name}-`))
  if (!process.env.TORTURE_KEEP) process.on('exit', () => fs.rmSync(dir, { recursive: true, force: true }))
  return dir
}

// The tests' seeded PRNG (mulberry32): one copy for tests, torture and benchmark.
const { rng } = require('../__test__/helpers.js')

const DOMAINS = ['auth', 'payments', 'search', 'checkout', 'profile', 'billing', 'api', 'notifications']
const TYPES = ['unit', 'integration', 'e2e', 'contract']
const FRAMEWORKS = ['jest', 'vitest', 'mocha', 'playwright']

/**
 * One pattern; `n` picks its domain/type/framework, `tag` goes into content.
 * @param {string} id @param {number} n @param {number} dim @param {string} [tag]
 * @returns {TestPattern}
 */
function makePattern(id, n, dim, tag = '') {
  const r = rng(n + 1)
  const embedding = new Float32Array(dim)
  for (let i = 0; i < dim; i++) embedding[i] = r() * 2 - 1
  return {
    id,
    type: TYPES[n % TYPES.length],
    domain: DOMAINS[n % DOMAINS.length],
    framework: FRAMEWORKS[n % FRAMEWORKS.length],
    content: `test('${id}', () => { expect(run(${n})).toBe(${n % 97}) }) ${tag}`,
    embedding,
    coverage: (n % 101) / 100,
    verdict: n % 3 ? 'success' : 'flaky',
    createdAt: 1_700_000_000_000 + n,
    usageCount: n % 50,
    successCount: n % 40,
    metadata: { owner: `team-${n % 5}`, n },
  }
}

/**
 * `count` patterns `prefix-000000`...
 * @param {number} count @param {number} dim @param {string} [prefix]
 */
function makePatterns(count, dim, prefix = 'base') {
  return Array.from({ length: count }, (_, i) => makePattern(baseId(i, prefix), i, dim))
}

/** The id of the `n`th seeded pattern. @param {number} n @param {string} [prefix] */
function baseId(n, prefix = 'base') {
  return `${prefix}-${String(n).padStart(6, '0')}`
}

/**
 * Creates a database with `count` patterns and builds its cache file.
 * @param {string} dbPath @param {number} count @param {number} dim
 */
async function seed(dbPath, count, dim) {
  const c = await PatternCache.open({ dbPath, backgroundRebuild: false })
  for (let i = 0; i < count; i += 1000) {
    /** @type {TestPattern[]} */
    const chunk = []
    for (let k = i; k < Math.min(count, i + 1000); k++) chunk.push(makePattern(baseId(k), k, dim))
    await c.storePatterns(chunk)
  }
  const built = await c.rebuildCache()
  await c.shutdown()
  if (!built.success) throw new Error(`seeding ${dbPath}: ${built.error}`)
}

/**
 * A returned pattern in a comparable plain form.
 * @param {StoredPattern | null} p
 */
function plain(p) {
  return p === null ? null : { ...p, embedding: Array.from(p.embedding) }
}

/**
 * Every pattern in the database, read from SQLite (`enabled: false`).
 * @param {string} dbPath
 * @returns {Promise<StoredPattern[]>}
 */
async function sqlitePatterns(dbPath) {
  const direct = await PatternCache.open({ dbPath, enabled: false })
  try {
    return await direct.query({})
  } finally {
    await direct.shutdown()
  }
}

/**
 * Runs one SQL statement with python3's sqlite3 module (outside the
 * package); resolves with its rows as arrays.
 * @param {string} dbPath @param {string} sql
 * @returns {unknown[][]}
 */
function sqlite(dbPath, sql) {
  const py = [
    'import json, sqlite3, sys',
    'c = sqlite3.connect(sys.argv[1], timeout=30)',
    'rows = c.execute(sys.argv[2]).fetchall()',
    'print(json.dumps([[v.hex() if isinstance(v, bytes) else v for v in r] for r in rows]))',
  ].join('\n')
  const r = spawnSync('python3', ['-c', py, dbPath, sql], { encoding: 'utf8', maxBuffer: 1 << 30 })
  if (r.status !== 0) throw new Error(`python3 sqlite3 failed on ${sql}: ${r.stderr || r.error}`)
  return JSON.parse(r.stdout)
}

/** `PRAGMA integrity_check` by python3's sqlite3: 'ok' or the problems. @param {string} dbPath */
function integrityCheck(dbPath) {
  return sqlite(dbPath, 'PRAGMA integrity_check')
    .map((r) => String(r[0]))
    .join('; ')
}

/** Temp files (`<cache>.tmp-*`) beside a cache file. @param {string} cachePath */
function tempFiles(cachePath) {
  const prefix = `${path.basename(cachePath)}.tmp-`
  return fs.readdirSync(path.dirname(cachePath)).filter((f) => f.startsWith(prefix))
}

/** The cache file's default path for a database. @param {string} dbPath */
function defaultCachePath(dbPath) {
  return path.join(path.dirname(dbPath), 'patterns.v2.pcache')
}

/** @param {unknown} e @returns {string} */
function codeOf(e) {
  const code = e && typeof e === 'object' && 'code' in e ? /** @type {{ code: unknown }} */ (e).code : undefined
  return typeof code === 'string' ? code : 'NO_CODE'
}

/** @param {unknown} code */
function isKnownCode(code) {
  return typeof code === 'string' && /** @type {readonly string[]} */ (ERROR_CODES).includes(code)
}

/**
 * Spawns `node <script> ...args` with stdout piped (stdin ignored, stderr
 * inherited). `lines` calls `onLine` for every complete stdout line.
 * @param {string} script @param {string[]} args
 * @param {{ onLine?: (line: string) => void, execArgv?: string[], ipc?: boolean }} [opts]
 */
function spawnNode(script, args, opts = {}) {
  const stdio = /** @type {import('node:child_process').StdioOptions} */ (opts.ipc ? ['ignore', 'pipe', 'inherit', 'ipc'] : ['ignore', 'pipe', 'inherit'])
  const child = spawn(process.execPath, [...(opts.execArgv ?? []), script, ...args], { stdio })
  let buffered = ''
  /** @type {string[]} */
  const lines = []
  const stdout = /** @type {import('node:stream').Readable} */ (child.stdout)
  stdout.setEncoding('utf8')
  stdout.on('data', (/** @type {string} */ d) => {
    buffered += d
    let nl
    while ((nl = buffered.indexOf('\n')) >= 0) {
      const line = buffered.slice(0, nl)
      buffered = buffered.slice(nl + 1)
      lines.push(line)
      if (opts.onLine) opts.onLine(line)
    }
  })
  /** Resolves once the child exited and its stdout is drained. */
  const exited = /** @type {Promise<{ code: number | null, signal: NodeJS.Signals | null, lines: string[] }>} */ (
    new Promise((resolve, reject) => {
      child.on('error', reject)
      child.on('close', (code, signal) => resolve({ code, signal, lines }))
    })
  )
  return { child, lines, exited }
}

/** Resolves after a random delay in [0, maxMs): for SIGKILL timing only. @param {number} maxMs @param {() => number} random */
function randomDelay(maxMs, random) {
  return new Promise((resolve) => setTimeout(resolve, Math.floor(random() * maxMs)))
}

/**
 * `global.gc` (node --expose-gc), or the same function obtained by turning
 * the flag on at run time (for `node --test`); null if neither works.
 * @returns {(() => void) | null}
 */
function gcFunction() {
  const exposed = /** @type {any} */ (globalThis).gc
  if (typeof exposed === 'function') return exposed
  try {
    require('node:v8').setFlagsFromString('--expose-gc')
    const gc = require('node:vm').runInNewContext('gc')
    return typeof gc === 'function' ? gc : null
  } catch {
    return null
  }
}

/** Collects garbage and lets finalizers run. */
async function collect() {
  const gc = gcFunction()
  for (let i = 0; i < 3; i++) {
    if (gc) gc()
    await new Promise((resolve) => setImmediate(resolve))
  }
}

module.exports = {
  ROOT,
  RESULTS_DIR,
  options,
  commandLine,
  target,
  result,
  report,
  main,
  tempDir,
  rng,
  makePattern,
  makePatterns,
  baseId,
  seed,
  plain,
  sqlitePatterns,
  sqlite,
  integrityCheck,
  tempFiles,
  defaultCachePath,
  codeOf,
  isKnownCode,
  spawnNode,
  randomDelay,
  collect,
  gcFunction,
  DOMAINS,
}

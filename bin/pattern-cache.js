#!/usr/bin/env node
'use strict'
// pattern-cache: the command line of the package. Plain Node (CommonJS, no
// dependencies). Every command opens the store with backgroundRebuild: false,
// so what it does is exactly what it prints; commands that only read open it
// with enabled: false, so they never write a cache file. `--help` for usage.

const fs = require('node:fs')
const path = require('node:path')
const readline = require('node:readline')
const { parseArgs } = require('node:util')

const EXIT = Object.freeze({ OK: 0, PROBLEM: 1, USAGE: 2, RUNTIME: 3 })
const IMPORT_BATCH = 1000
const DEFAULT_DB = path.join('.pattern-cache', 'patterns.db')
const DEFAULT_CACHE_NAME = 'patterns.v2.pcache'

/** An error that ends the command with an exit code and, for runtime errors, a code. */
class CliError extends Error {
  /** @param {number} exitCode @param {string} code @param {string} message */
  constructor(exitCode, code, message) {
    super(message)
    this.exitCode = exitCode
    this.code = code
  }
}
const usageError = (message) => new CliError(EXIT.USAGE, 'USAGE', message)

// ---------------------------------------------------------------- options

/** Every option any command takes; which command takes which is in COMMANDS. */
const OPTIONS = {
  db: { type: 'string' },
  cache: { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
  version: { type: 'boolean', short: 'V' },
  prometheus: { type: 'boolean' },
  domain: { type: 'string' },
  type: { type: 'string' },
  framework: { type: 'string' },
  limit: { type: 'string' },
  out: { type: 'string', short: 'o' },
  like: { type: 'string' },
  vector: { type: 'string' },
  k: { type: 'string' },
  metric: { type: 'string' },
  threshold: { type: 'string' },
  // --mmr takes an optional value (its lambda), which parseArgs cannot express: normalizeArgs() lifts it out first.
  mmr: { type: 'boolean' },
}
const GLOBAL = ['db', 'cache', 'json', 'help', 'version']

const GLOBAL_HELP = `Options (every command):
  --db <path>       the SQLite database (default: .pattern-cache/patterns.db
                    under the current directory)
  --cache <path>    the cache file (default: patterns.v2.pcache beside the
                    database)
  --json            print one JSON document on stdout instead of text
  -h, --help        this help; \`pattern-cache <command> --help\` for one command
  -V, --version     the package version

Exit codes:
  0  ok
  1  a check failed or a problem was found (verify; status on a missing
     database)
  2  usage error: unknown command or option, missing or bad argument
  3  runtime error; its code is printed (DB_ERROR, IO_ERROR, INVALID_PATTERN,
     CACHE_CORRUPT, ... as in the README's "Error codes")`

const COMMANDS = {
  status: {
    summary: 'tier in use, files, format version, age, staleness, counts, metrics',
    args: '',
    options: ['prometheus'],
    help: `Reports the database and the cache file as they are on disk: which tier a
reader opening now is served from, the file's format version and producer, its
age, the database generation it was built from against the database's, whether
it is stale, counts, and the metrics of the instance status opened. Writes
nothing: a missing cache file is reported, not built.

  --prometheus      print, in the Prometheus text format instead, the metrics
                    (PatternCache#metricsPrometheus()) and gauges of the files:
                    pattern_cache_db_generation, pattern_cache_db_patterns,
                    pattern_cache_file_valid, pattern_cache_file_stale,
                    pattern_cache_file_generation, pattern_cache_file_age_seconds

Exit code 1 when the database does not exist.`,
  },
  rebuild: {
    summary: 'rebuild the cache file from the database',
    args: '',
    options: [],
    help: `Builds the cache file from the database and swaps it in atomically (the
previous file is kept as .bak). Shows progress on a terminal.`,
  },
  verify: {
    summary: 'check every record of the cache file (exit 1 on a problem)',
    args: '',
    options: [],
    help: `Reads the whole cache file and checks its header, directory, indexes and
the SHA-256 of every record. Exit code 1 when the file is missing, corrupt or
of another format version. A stale but intact file passes (status says
whether it is stale).`,
  },
  clear: {
    summary: 'remove the cache file and its .bak, .lock and .tmp-* companions',
    args: '',
    options: [],
    help: `Removes the cache file and its companions (<cache>.bak, <cache>.lock,
<cache>.tmp-*). Never touches the database. Run it when no process is
rebuilding this cache; readers rebuild the file when they next open.`,
  },
  ls: {
    summary: 'list patterns: id, type, domain, framework, verdict',
    args: '',
    options: ['domain', 'type', 'framework', 'limit'],
    help: `Lists patterns ordered by id (UTF-8 byte order), read from the database.

  --domain <name>   only this domain
  --type <name>     only this type
  --framework <n>   only this framework
  --limit <n>       at most n patterns (the first by id)`,
  },
  stats: {
    summary: 'counts per domain, type, framework and verdict; sizes',
    args: '',
    options: [],
    help: `Counts patterns per domain, type, framework and verdict, and reports sizes:
the database files, the cache file, and the bytes of contents, metadata and
embeddings.`,
  },
  search: {
    summary: 'the k patterns most similar to a stored pattern or a vector',
    args: '',
    options: ['like', 'vector', 'k', 'domain', 'type', 'framework', 'metric', 'threshold', 'mmr'],
    help: `Ranks the patterns matching the filters by their similarity to a query
embedding (PatternCache#searchSimilar()), read from the database. Exact: every
matching pattern is scored and the filters apply before ranking, so k results
come back whenever k patterns match (and pass --threshold). Best first: the
highest similarity, or the smallest distance; ties by id (UTF-8 byte order).
The query is one of:

  --like <id>       the embedding of the stored pattern <id>. The pattern itself
                    is among the results (it is the most similar to itself:
                    cosine 1, distance 0; under dot a longer vector can
                    outscore it) unless a filter leaves it out: ask for
                    --k k+1 to get k others. No pattern <id>: exit code 3 with
                    INVALID_ARGUMENT
  --vector <v>      a JSON array of numbers given inline ('[0.1, -0.2, ...]'),
                    or the path of a file holding one

  --k <n>           at most n results, 1..1000 (default 10)
  --domain <name>   only this domain
  --type <name>     only this type
  --framework <n>   only this framework
  --metric <m>      cosine (default), dot or euclidean; the score is the cosine
                    similarity, the dot product or the Euclidean distance
  --threshold <x>   cosine, dot: only scores >= x; euclidean: only
                    distances <= x
  --mmr [lambda]    maximal marginal relevance: picks the k results greedily
                    from the 3k best, trading relevance for diversity; lambda
                    in 0..1 (default 0.5) is the weight of relevance. The
                    order is the picking order; scores stay the metric's

Prints a header, then one line per result: rank, score (6 decimals), id,
type, domain, framework. --json: { ok, results: [{ id, score, type, domain,
framework, verdict }] } (no embeddings). A malformed option (--k not an
integer, --threshold not a number, a --vector that is not a JSON array of
numbers) is a usage error (exit 2); a value the API refuses (k or lambda out
of range, an unknown metric, a vector of another dimension than the
database's or with a non-finite value, a zero vector under cosine) exits 3
with INVALID_ARGUMENT, as the other commands report the API's errors.`,
  },
  import: {
    summary: 'store the patterns of a JSONL file (one pattern per line)',
    args: '<file.jsonl>',
    options: [],
    help: `Reads a JSONL file ('-' for stdin) line by line, one pattern (as
\`export\` writes it; embedding as a number array) per line, blank lines
skipped, and stores them in batches of ${IMPORT_BATCH.toLocaleString('en-US')}, each one transaction.
Creates the database when it does not exist. Progress goes to stderr.

A bad line (not JSON, or a pattern that fails validation) stops the import
with its line number and exit code 3: nothing of its batch is written; the
batches before it stay stored. The cache file is left to be rebuilt (readers
do it in the background, or run \`pattern-cache rebuild\`).`,
  },
  export: {
    summary: 'write patterns as JSONL (stdout or --out)',
    args: '',
    options: ['out', 'domain', 'type', 'framework', 'limit'],
    help: `Writes every pattern (or those matching the filters), ordered by id, one JSON
object per line, embeddings as number arrays: the input of \`import\`.

  -o, --out <file>  write to this file instead of stdout
  --domain, --type, --framework, --limit   as for ls

With --json and no --out, writes one JSON array instead of lines; with --json
and --out, writes the lines to the file and a summary on stdout.`,
  },
}

function mainHelp() {
  const width = Math.max(...Object.entries(COMMANDS).map(([n, c]) => (n + (c.args ? ' ' + c.args : '')).length))
  const lines = Object.entries(COMMANDS).map(([n, c]) => `  ${(n + (c.args ? ' ' + c.args : '')).padEnd(width)}  ${c.summary}`)
  return `Usage: pattern-cache <command> [options]

Inspects and maintains a pattern-cache store: the SQLite database (tier 2,
the source of truth) and the cache file built from it (tier 1).

Commands:
${lines.join('\n')}

${GLOBAL_HELP}
`
}

function commandHelp(name) {
  const c = COMMANDS[name]
  return `Usage: pattern-cache ${name}${c.args ? ' ' + c.args : ''} [options]

${c.help}

${GLOBAL_HELP}
`
}

/** A decimal number as a user writes one (no hex, no '', no 'Infinity'). */
const NUMBER = /^[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?$/

/**
 * What parseArgs cannot express. `--mmr` takes an optional lambda (`--mmr 0.7`
 * or `--mmr=0.7`: a number right after `--mmr` is its lambda), lifted out of
 * argv here. A negative number after `--k` or `--threshold` is their value
 * (parseArgs would take `-0.5` for an option). Stops at `--`.
 * @returns {{ args: string[], mmrLambda: string | undefined }}
 */
function normalizeArgs(argv) {
  const args = []
  let mmrLambda
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]
    const next = argv[i + 1]
    if (arg === '--') {
      args.push(...argv.slice(i))
      break
    }
    if (arg.startsWith('--mmr=')) {
      args.push('--mmr')
      mmrLambda = arg.slice('--mmr='.length)
    } else if (arg === '--mmr' && next !== undefined && NUMBER.test(next)) {
      args.push('--mmr')
      mmrLambda = next
      i++
    } else if ((arg === '--k' || arg === '--threshold') && next !== undefined && next.startsWith('-') && NUMBER.test(next)) {
      args.push(`${arg}=${next}`)
      i++
    } else {
      args.push(arg)
    }
  }
  return { args, mmrLambda }
}

/** Parses argv into { command, values, positionals }; throws usage errors. */
function parse(argv) {
  const { args, mmrLambda } = normalizeArgs(argv)
  let parsed
  try {
    parsed = parseArgs({ args, options: OPTIONS, allowPositionals: true, strict: true })
  } catch (e) {
    throw usageError(e.message)
  }
  const { values, positionals } = parsed
  let name = positionals.shift()
  if (name === 'help') {
    values.help = true
    name = positionals.shift()
  }
  if (name !== undefined && !Object.hasOwn(COMMANDS, name)) throw usageError(`unknown command '${name}' (see pattern-cache --help)`)
  if (name !== undefined) {
    const allowed = new Set([...GLOBAL, ...COMMANDS[name].options])
    for (const key of Object.keys(values)) {
      if (!allowed.has(key)) throw usageError(`${name} takes no --${key} option (see pattern-cache ${name} --help)`)
    }
    const wanted = COMMANDS[name].args ? 1 : 0
    if (!values.help && positionals.length !== wanted) {
      const hint = name === 'search' && values.mmr ? ` (the lambda of --mmr is a number in 0..1)` : ''
      throw usageError(wanted ? `${name} needs ${COMMANDS[name].args}` : `${name} takes no argument, got '${positionals[0]}'${hint}`)
    }
  }
  for (const key of ['db', 'cache', 'out', 'domain', 'type', 'framework', 'like', 'vector', 'metric']) {
    if (values[key] === '') throw usageError(`--${key} must not be empty`)
  }
  if (values.prometheus && values.json) throw usageError('--prometheus and --json are two output formats: choose one')
  if (values.limit !== undefined && !/^\d+$/.test(values.limit)) throw usageError(`--limit must be a non-negative integer, got '${values.limit}'`)
  if (values.k !== undefined && !/^[-+]?\d+$/.test(values.k)) throw usageError(`--k must be an integer, got '${values.k}'`)
  if (values.threshold !== undefined && !NUMBER.test(values.threshold)) throw usageError(`--threshold must be a number, got '${values.threshold}'`)
  if (mmrLambda !== undefined) {
    if (!NUMBER.test(mmrLambda)) throw usageError(`--mmr takes an optional lambda, a number in 0..1, got '${mmrLambda}'`)
    values.mmrLambda = mmrLambda
  }
  if (name === 'search' && !values.help) {
    if (values.like === undefined && values.vector === undefined) throw usageError('search needs a query: --like <id> or --vector <json or file>')
    if (values.like !== undefined && values.vector !== undefined) throw usageError('search takes one query: --like or --vector, not both')
  }
  return { command: name, values, positionals }
}

// ---------------------------------------------------------------- helpers

function loadPackage() {
  // Loaded only when a command needs the native addon, so --help works without it.
  return require('..')
}

function paths(values) {
  const dbPath = path.resolve(values.db ?? DEFAULT_DB)
  const cachePath = path.resolve(values.cache ?? path.join(path.dirname(dbPath), DEFAULT_CACHE_NAME))
  return { dbPath, cachePath }
}

function fileSize(p) {
  try {
    return fs.statSync(p).size
  } catch {
    return undefined
  }
}

function requireDatabase(dbPath) {
  if (!fs.existsSync(dbPath)) throw new CliError(EXIT.RUNTIME, 'DB_ERROR', `no database at ${dbPath} (\`pattern-cache import\` creates one; --db names another)`)
}

/** The cache file's companions that exist: .bak, .lock, .tmp-* (names and sizes). */
function companions(cachePath) {
  const dir = path.dirname(cachePath)
  const base = path.basename(cachePath)
  let names
  try {
    names = fs.readdirSync(dir)
  } catch {
    return []
  }
  return names
    .filter((n) => n === `${base}.bak` || n === `${base}.lock` || n.startsWith(`${base}.tmp-`))
    .sort()
    .map((n) => ({ path: path.join(dir, n), sizeBytes: fileSize(path.join(dir, n)) ?? 0 }))
}

const num = (n) => Number(n).toLocaleString('en-US')

function bytes(n) {
  if (n === undefined || n === null) return '-'
  if (n < 1024) return `${n} B`
  const units = ['KiB', 'MiB', 'GiB', 'TiB']
  let v = n / 1024
  let i = 0
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024
    i++
  }
  return `${v.toFixed(v < 10 ? 2 : 1)} ${units[i]} (${num(n)} bytes)`
}

function duration(ms) {
  if (ms < 1000) return `${Math.round(ms)} ms`
  const s = ms / 1000
  if (s < 60) return `${s.toFixed(1)} s`
  if (s < 3600) return `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`
  if (s < 86400) return `${Math.floor(s / 3600)} h ${Math.round((s % 3600) / 60)} min`
  return `${Math.floor(s / 86400)} d ${Math.round((s % 86400) / 3600)} h`
}

/** Splits a CacheBuildResult error '[CODE] message' into its parts. */
function splitCoded(text) {
  const m = /^\[([A-Z_]+)\]\s*(.*)$/s.exec(text ?? '')
  return m ? { code: m[1], message: m[2] } : { code: 'INTERNAL', message: text || 'unknown error' }
}

function filterOf(values) {
  const filter = {}
  for (const key of ['domain', 'type', 'framework']) if (values[key] !== undefined) filter[key] = values[key]
  if (values.limit !== undefined) filter.limit = Number(values.limit)
  return filter
}

/** Opens, runs fn, and shuts down whatever happens. */
async function withCache(config, fn) {
  const { PatternCache } = loadPackage()
  const cache = await PatternCache.open(config)
  try {
    return await fn(cache)
  } finally {
    await cache.shutdown()
  }
}

/** Writes to a stream, waiting when it asks to (large exports to a pipe). */
function writeTo(stream, text) {
  return stream.write(text) ? undefined : new Promise((resolve, reject) => {
    const onDrain = () => {
      stream.off('error', onError)
      resolve(undefined)
    }
    const onError = (e) => {
      stream.off('drain', onDrain)
      reject(e)
    }
    stream.once('drain', onDrain)
    stream.once('error', onError)
  })
}

/** A one-line status on a terminal (stderr): a spinner with the elapsed time. */
function spinner(text) {
  const started = Date.now()
  if (!process.stderr.isTTY) {
    process.stderr.write(`${text}...\n`)
    return { stop: () => Date.now() - started }
  }
  const frames = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏']
  let i = 0
  const draw = () => process.stderr.write(`\r\x1b[2K${frames[i++ % frames.length]} ${text} ${duration(Date.now() - started)}`)
  draw()
  const timer = setInterval(draw, 80)
  return {
    stop() {
      clearInterval(timer)
      process.stderr.write('\r\x1b[2K')
      return Date.now() - started
    },
  }
}

// ---------------------------------------------------------------- commands

/** What the files say about the tier a reader opening now is served from. */
function describeFile(info, now) {
  const current = info.fileState === 'valid' && info.sameDatabase === true && info.fileGeneration === info.dbGeneration
  const ageMs = info.writtenAt !== undefined ? Math.max(0, now - info.writtenAt) : null
  let reason
  if (info.fileState === 'missing') reason = 'no cache file: opening builds one; until then reads go to SQLite'
  else if (info.fileState === 'invalid') reason = `the cache file is invalid (${info.fileProblem}): opening rebuilds it; until then reads go to SQLite`
  else if (info.sameDatabase === false) reason = 'the cache file was built from another database: opening rebuilds it'
  else if (!current) {
    const behind = info.dbGeneration - (info.fileGeneration ?? 0)
    reason = `the cache file is ${num(behind)} change${behind === 1 ? '' : 's'} behind the database: opening rebuilds it; running readers amend it from the change log or read SQLite until it is rebuilt`
  }
  return { current, stale: !current, expired: ageMs !== null && ageMs > info.maxAge, ageMs, reason }
}

async function statusCommand(values, out) {
  const { dbPath, cachePath } = paths(values)
  const now = Date.now()
  if (!fs.existsSync(dbPath)) {
    const doc = {
      tier: null,
      stale: null,
      problem: `no database at ${dbPath}`,
      database: { path: dbPath, exists: false },
      cacheFile: { path: cachePath, state: fs.existsSync(cachePath) ? 'present' : 'missing', companions: companions(cachePath) },
    }
    if (values.json) out.json(doc)
    else if (values.prometheus) out.text(`# pattern-cache: no database at ${dbPath}\n`)
    else out.text(`database    ${dbPath}: missing (nothing to report; \`pattern-cache import\` creates it)\ncache file  ${cachePath}: ${doc.cacheFile.state}\n`)
    return EXIT.PROBLEM
  }
  // First with the cache disabled: it reads the files and builds nothing.
  const base = { dbPath, cachePath, backgroundRebuild: false }
  const info = await withCache({ ...base, enabled: false }, (c) => c.inspect())
  const file = describeFile(info, now)
  // A valid, current file is opened for real (read-only: a map, nothing is
  // written), so the metrics say what the library itself serves from.
  const config = { ...base, enabled: file.current }
  const { metrics, prometheus } = await withCache(config, async (c) => ({
    metrics: c.getMetrics(),
    prometheus: values.prometheus ? c.metricsPrometheus() : undefined,
  }))
  const tier = metrics.tier === 'cache' ? 'cache' : 'sqlite'
  const doc = {
    tier,
    stale: file.stale,
    expired: file.expired,
    ageMs: file.ageMs,
    reason: tier === 'cache' ? undefined : file.reason ?? metrics.cacheUnavailableReason,
    database: {
      path: info.dbPath,
      exists: true,
      sizeBytes: (fileSize(info.dbPath) ?? 0) + (fileSize(`${info.dbPath}-wal`) ?? 0),
      generation: info.dbGeneration,
      patternCount: info.dbPatternCount,
    },
    cacheFile: {
      path: info.cachePath,
      state: info.fileState,
      problem: info.fileProblem,
      sizeBytes: info.fileSize,
      formatVersion: info.formatVersion,
      producer: info.producer,
      generation: info.fileGeneration,
      generationsBehind: info.fileGeneration === undefined ? undefined : info.dbGeneration - info.fileGeneration,
      sameDatabase: info.sameDatabase,
      patternCount: info.filePatternCount,
      configCount: info.fileConfigCount,
      embeddingDim: info.embeddingDim,
      writtenAt: info.writtenAt,
      contentChangedAt: info.contentChangedAt,
      maxAge: info.maxAge,
      companions: companions(info.cachePath),
    },
    metrics,
    inspection: info,
  }
  if (values.prometheus) {
    out.text(prometheus + statusPrometheus(doc))
    return EXIT.OK
  }
  if (values.json) {
    out.json(doc)
    return EXIT.OK
  }
  const f = doc.cacheFile
  const lines = [
    `tier        ${tier}${doc.reason ? ` (${doc.reason})` : ': reads are served from the cache file'}`,
    `database    ${doc.database.path}`,
    `  size        ${bytes(doc.database.sizeBytes)}`,
    `  generation  ${num(info.dbGeneration)}`,
    `  patterns    ${num(info.dbPatternCount)}`,
    `cache file  ${f.path}`,
    `  state       ${f.state}${f.problem ? ` (${f.problem})` : ''}`,
  ]
  if (info.fileState === 'valid') {
    lines.push(
      `  format      ${f.formatVersion} (written by pattern-cache ${f.producer})`,
      `  size        ${bytes(f.sizeBytes)}`,
      `  age         ${duration(file.ageMs ?? 0)} (written ${new Date(f.writtenAt).toISOString()}; max age ${duration(f.maxAge)}${file.expired ? ', expired' : ''})`,
      `  generation  ${num(f.generation)} (database: ${num(info.dbGeneration)}${f.sameDatabase ? '' : ', another database'})`,
      `  stale       ${file.stale ? 'yes' : 'no'}`,
      `  patterns    ${num(f.patternCount)}, configs ${num(f.configCount)}, embedding dimension ${f.embeddingDim}`,
    )
  }
  for (const c of f.companions) lines.push(`  companion   ${path.basename(c.path)} (${bytes(c.sizeBytes)})`)
  const m = metrics
  lines.push(
    `metrics     (this process's instance${file.current ? '' : ', opened with the cache disabled so that status writes nothing'})`,
    `  tier        ${m.tier}${m.cacheUnavailableReason ? ` (${m.cacheUnavailableReason})` : ''}`,
    `  hits        ${num(m.cacheHits)}, misses ${num(m.cacheMisses)}, hit rate ${(m.cacheHitRate * 100).toFixed(1)}%`,
    `  load        cache ${m.avgCacheLoadTime.toFixed(3)} ms, SQLite ${m.avgSQLiteFallbackTime.toFixed(3)} ms (averages)`,
    `  rebuilds    ${num(m.cacheRebuildCount)}, corruptions ${num(m.cacheCorruptionCount)}`,
    `  patterns    ${num(m.patternCount)}, cache file ${bytes(m.cacheFileSize)}`,
  )
  out.text(lines.join('\n') + '\n')
  return EXIT.OK
}

/** Gauges of the files on disk, appended to the metrics by `status --prometheus`. */
function statusPrometheus(doc) {
  const f = doc.cacheFile
  const gauges = [
    ['pattern_cache_db_generation', 'Change counter of the database.', doc.database.generation],
    ['pattern_cache_db_patterns', 'Patterns in the database.', doc.database.patternCount],
    ['pattern_cache_file_valid', '1 when the cache file on disk is valid.', f.state === 'valid' ? 1 : 0],
    ['pattern_cache_file_stale', '1 when the cache file is not current with the database.', doc.stale ? 1 : 0],
  ]
  if (f.generation !== undefined) gauges.push(['pattern_cache_file_generation', 'Database generation the cache file was built from.', f.generation])
  if (doc.ageMs !== null) gauges.push(['pattern_cache_file_age_seconds', 'Age of the cache file.', doc.ageMs / 1000])
  return gauges.map(([name, help, value]) => `# HELP ${name} ${help}\n# TYPE ${name} gauge\n${name} ${value}\n`).join('')
}

async function rebuildCommand(values, out) {
  const { dbPath, cachePath } = paths(values)
  requireDatabase(dbPath)
  const spin = values.json ? { stop: () => 0 } : spinner(`rebuilding ${cachePath}`)
  const started = Date.now()
  let result
  let builtAtOpen = false
  try {
    result = await withCache({ dbPath, cachePath, backgroundRebuild: false }, async (c) => {
      const m = c.getMetrics()
      if (m.cacheRebuildCount > 0 && m.tier === 'cache') {
        // open() found the file missing or stale and has just built it.
        builtAtOpen = true
        return { success: true, patternCount: m.patternCount, duration: Date.now() - started, cacheFileSize: m.cacheFileSize }
      }
      return c.rebuildCache()
    })
  } finally {
    spin.stop()
  }
  if (!result.success) {
    const { code, message } = splitCoded(result.error)
    throw new CliError(EXIT.RUNTIME, code, `rebuild failed: ${message}`)
  }
  const doc = { success: true, cachePath, patternCount: result.patternCount, durationMs: result.duration, cacheFileSize: result.cacheFileSize, builtAtOpen }
  if (values.json) out.json(doc)
  else out.text(`rebuilt ${cachePath}: ${num(result.patternCount)} patterns, ${bytes(result.cacheFileSize)}, in ${duration(result.duration)}\n`)
  return EXIT.OK
}

const FILE_PROBLEMS = new Set(['CACHE_CORRUPT', 'CACHE_INCOMPATIBLE', 'IO_ERROR'])

async function verifyCommand(values, out) {
  const { dbPath, cachePath } = paths(values)
  requireDatabase(dbPath)
  const now = Date.now()
  const { info, count, problem } = await withCache({ dbPath, cachePath, backgroundRebuild: false, enabled: false }, async (c) => {
    const info = await c.inspect()
    if (info.fileState === 'missing') return { info, problem: { code: 'IO_ERROR', message: `no cache file at ${info.cachePath}` } }
    try {
      return { info, count: await c.verify() }
    } catch (e) {
      if (e && FILE_PROBLEMS.has(e.code)) return { info, problem: { code: e.code, message: e.message } }
      throw e
    }
  })
  const file = describeFile(info, now)
  const doc = { ok: !problem, cachePath: info.cachePath, patternCount: count, problem, stale: problem ? undefined : file.stale }
  if (values.json) out.json(doc)
  else if (problem) out.text(`FAILED ${info.cachePath}: [${problem.code}] ${problem.message}\n`)
  else out.text(`ok ${info.cachePath}: ${num(count)} patterns, every record intact${file.stale ? ` (stale: ${file.reason})` : ''}\n`)
  return problem ? EXIT.PROBLEM : EXIT.OK
}

async function clearCommand(values, out) {
  const { dbPath, cachePath } = paths(values)
  const victims = [...(fs.existsSync(cachePath) ? [cachePath] : []), ...companions(cachePath).map((c) => c.path)]
  const db = path.resolve(dbPath)
  const protectedPaths = new Set([db, `${db}-wal`, `${db}-shm`, `${db}-journal`])
  const removed = []
  for (const p of victims) {
    if (protectedPaths.has(path.resolve(p))) throw usageError(`refusing to remove ${p}: it is the database (check --cache)`)
    if (fs.statSync(p).isDirectory()) throw usageError(`refusing to remove ${p}: it is a directory (check --cache)`)
  }
  for (const p of victims) {
    try {
      fs.rmSync(p, { force: true })
      removed.push(p)
    } catch (e) {
      throw new CliError(EXIT.RUNTIME, 'IO_ERROR', `could not remove ${p}: ${e.message}`)
    }
  }
  if (values.json) out.json({ cachePath, removed })
  else if (removed.length === 0) out.text(`nothing to remove: no cache file at ${cachePath}\n`)
  else out.text(removed.map((p) => `removed ${p}\n`).join(''))
  return EXIT.OK
}

async function lsCommand(values, out) {
  const { dbPath, cachePath } = paths(values)
  requireDatabase(dbPath)
  const patterns = await withCache({ dbPath, cachePath, backgroundRebuild: false, enabled: false }, (c) => c.query(filterOf(values)))
  const rows = patterns.map((p) => ({ id: p.id, type: p.type, domain: p.domain, framework: p.framework, verdict: p.verdict }))
  if (values.json) {
    out.json({ count: rows.length, patterns: rows })
    return EXIT.OK
  }
  const cols = ['id', 'type', 'domain', 'framework', 'verdict']
  const width = cols.map((c) => Math.max(c.length, ...rows.map((r) => r[c].length)))
  const line = (cells) => cells.map((v, i) => (i === cells.length - 1 ? v : v.padEnd(width[i]))).join('  ')
  out.text([line(cols.map((c) => c.toUpperCase())), ...rows.map((r) => line(cols.map((c) => r[c])))].join('\n') + '\n')
  return EXIT.OK
}

async function statsCommand(values, out) {
  const { dbPath, cachePath } = paths(values)
  requireDatabase(dbPath)
  const patterns = await withCache({ dbPath, cachePath, backgroundRebuild: false, enabled: false }, (c) => c.query({}))
  const count = (key) => {
    const m = new Map()
    for (const p of patterns) m.set(p[key], (m.get(p[key]) ?? 0) + 1)
    return Object.fromEntries([...m].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1)))
  }
  let contentBytes = 0
  let metadataBytes = 0
  let embeddingBytes = 0
  for (const p of patterns) {
    contentBytes += Buffer.byteLength(p.content, 'utf8')
    if (p.metadata !== undefined) metadataBytes += Buffer.byteLength(JSON.stringify(p.metadata), 'utf8')
    embeddingBytes += p.embedding.byteLength
  }
  const doc = {
    patternCount: patterns.length,
    embeddingDim: patterns.length ? patterns[0].embedding.length : null,
    domains: count('domain'),
    types: count('type'),
    frameworks: count('framework'),
    verdicts: count('verdict'),
    sizes: {
      databaseBytes: fileSize(dbPath) ?? 0,
      walBytes: fileSize(`${dbPath}-wal`) ?? 0,
      cacheFileBytes: fileSize(cachePath) ?? null,
      contentBytes,
      metadataBytes,
      embeddingBytes,
    },
  }
  if (values.json) {
    out.json(doc)
    return EXIT.OK
  }
  const section = (title, counts) => [`${title}:`, ...Object.entries(counts).map(([k, v]) => `  ${String(v).padStart(8)}  ${k}`)]
  const s = doc.sizes
  out.text(
    [
      `patterns: ${num(doc.patternCount)}${doc.embeddingDim ? ` (embedding dimension ${doc.embeddingDim})` : ''}`,
      ...section('per domain', doc.domains),
      ...section('per type', doc.types),
      ...section('per framework', doc.frameworks),
      ...section('per verdict', doc.verdicts),
      'sizes:',
      `  database     ${bytes(s.databaseBytes)} (+ WAL ${bytes(s.walBytes)})`,
      `  cache file   ${s.cacheFileBytes === null ? 'none' : bytes(s.cacheFileBytes)}`,
      `  contents     ${bytes(s.contentBytes)}`,
      `  metadata     ${bytes(s.metadataBytes)} (as JSON)`,
      `  embeddings   ${bytes(s.embeddingBytes)} (float32)`,
    ].join('\n') + '\n',
  )
  return EXIT.OK
}

/**
 * The query vector of `--vector`: a JSON array given inline (it starts with
 * '[') or the path of a file holding one. Throws usage errors.
 * @param {string} arg
 * @returns {number[]}
 */
function readVector(arg) {
  let text = arg
  let source = '--vector'
  if (!/^\s*\[/.test(arg) || (!isJson(arg) && fs.existsSync(arg))) {
    source = `--vector ${arg}`
    try {
      if (fs.statSync(arg).isDirectory()) throw usageError(`${source}: is a directory, not a file holding a JSON array`)
      text = fs.readFileSync(arg, 'utf8').replace(/^\uFEFF/, '')
    } catch (e) {
      if (e instanceof CliError) throw e
      if (e.code === 'ENOENT') throw new CliError(EXIT.RUNTIME, 'IO_ERROR', `cannot read ${arg}: no such file (an inline vector is a JSON array: --vector '[0.1, 0.2]')`)
      throw new CliError(EXIT.RUNTIME, 'IO_ERROR', `cannot read ${arg}: ${e.message}`)
    }
  }
  let vector
  try {
    vector = JSON.parse(text)
  } catch (e) {
    throw usageError(`${source}: not a JSON array of numbers: ${e.message}`)
  }
  if (!Array.isArray(vector)) throw usageError(`${source}: not a JSON array of numbers (got ${vector === null ? 'null' : typeof vector})`)
  const bad = vector.findIndex((x) => typeof x !== 'number')
  if (bad !== -1) throw usageError(`${source}: element ${bad} is not a number (got ${JSON.stringify(vector[bad])})`)
  return vector
}

function isJson(text) {
  try {
    JSON.parse(text)
    return true
  } catch {
    return false
  }
}

/** The options of searchSimilar() that the command line gives. */
function searchOptions(values) {
  const options = {}
  for (const key of ['domain', 'type', 'framework', 'metric']) if (values[key] !== undefined) options[key] = values[key]
  if (values.k !== undefined) options.k = Number(values.k)
  if (values.threshold !== undefined) options.threshold = Number(values.threshold)
  if (values.mmr) options.useMMR = true
  if (values.mmrLambda !== undefined) options.mmrLambda = Number(values.mmrLambda)
  return options
}

const SCORE_HEADER = { cosine: 'COSINE', dot: 'DOT', euclidean: 'DISTANCE' }

async function searchCommand(values, out) {
  const { dbPath, cachePath } = paths(values)
  const vector = values.vector !== undefined ? readVector(values.vector) : undefined
  const options = searchOptions(values)
  requireDatabase(dbPath)
  const results = await withCache({ dbPath, cachePath, backgroundRebuild: false, enabled: false }, async (c) => {
    let query = vector
    if (values.like !== undefined) {
      const p = await c.loadPattern(values.like)
      if (p === null) throw new CliError(EXIT.RUNTIME, 'INVALID_ARGUMENT', `--like: no pattern with id ${JSON.stringify(values.like)} (pattern-cache ls lists the ids)`)
      query = p.embedding
    }
    return c.searchSimilar(query, options)
  })
  const rows = results.map(({ pattern: p, score }) => ({ id: p.id, score, type: p.type, domain: p.domain, framework: p.framework, verdict: p.verdict }))
  if (values.json) {
    out.json({ ok: true, results: rows })
    return EXIT.OK
  }
  if (rows.length === 0) {
    out.text('no results\n')
    return EXIT.OK
  }
  const header = ['RANK', SCORE_HEADER[options.metric ?? 'cosine'] ?? 'SCORE', 'ID', 'TYPE', 'DOMAIN', 'FRAMEWORK']
  const cells = rows.map((r, i) => [String(i + 1), r.score.toFixed(6), r.id, r.type, r.domain, r.framework])
  const width = header.map((h, c) => Math.max(h.length, ...cells.map((row) => row[c].length)))
  const line = (row) => row.map((v, c) => (c < 2 ? v.padStart(width[c]) : c === row.length - 1 ? v : v.padEnd(width[c]))).join('  ')
  out.text([line(header), ...cells.map(line)].join('\n') + '\n')
  return EXIT.OK
}

/** The batch line an error is about: patterns[i] in the message, else the id it names. */
function lineOfError(e, batch) {
  const message = String(e && e.message)
  const index = /patterns\[(\d+)\]/.exec(message)
  if (index && batch[Number(index[1])]) return batch[Number(index[1])].line
  const named = /invalid pattern '((?:[^']|'(?!:))*)':/.exec(message)
  if (named) {
    const hit = batch.find((b) => b.pattern && b.pattern.id === named[1])
    if (hit) return hit.line
  }
  if (/\bid must be\b/.test(message)) {
    const hit = batch.find((b) => !b.pattern || typeof b.pattern.id !== 'string' || b.pattern.id === '' || Buffer.byteLength(b.pattern.id) > 1024 || b.pattern.id.includes('\0'))
    if (hit) return hit.line
  }
  return undefined
}

async function importCommand(values, out, positionals) {
  const { dbPath, cachePath } = paths(values)
  const file = positionals[0]
  let input
  if (file === '-') input = process.stdin
  else {
    try {
      const st = fs.statSync(file)
      if (st.isDirectory()) throw new Error('it is a directory')
    } catch (e) {
      throw new CliError(EXIT.RUNTIME, 'IO_ERROR', `cannot read ${file}: ${e.code === 'ENOENT' ? 'no such file' : e.message}`)
    }
    input = fs.createReadStream(file)
  }
  const tty = process.stderr.isTTY
  const started = Date.now()
  let imported = 0
  let lineNo = 0
  let batches = 0
  const progress = (final) => {
    const text = `imported ${num(imported)} patterns (${num(lineNo)} lines, ${duration(Date.now() - started)})`
    if (tty) process.stderr.write(`\r\x1b[2K${text}${final ? '\n' : ''}`)
    else process.stderr.write(`${text}\n`)
  }
  const result = await withCache({ dbPath, cachePath, backgroundRebuild: false, enabled: false }, async (c) => {
    /** @type {{ line: number, pattern: any }[]} */
    let batch = []
    const flush = async () => {
      if (batch.length === 0) return
      try {
        await c.storePatterns(batch.map((b) => b.pattern))
      } catch (e) {
        const line = lineOfError(e, batch)
        const where = line !== undefined ? `line ${line}` : `lines ${batch[0].line}-${batch[batch.length - 1].line}`
        const err = new CliError(EXIT.RUNTIME, e && e.code ? e.code : 'INTERNAL', `${file}, ${where}: ${e && e.message}`)
        err.detail = { line, batchFirstLine: batch[0].line, batchLastLine: batch[batch.length - 1].line, imported }
        throw err
      }
      imported += batch.length
      batches++
      batch = []
      progress(false)
    }
    const rl = readline.createInterface({ input, crlfDelay: Infinity })
    try {
      for await (const raw of rl) {
        lineNo++
        const text = (lineNo === 1 ? raw.replace(/^\uFEFF/, '') : raw).trim()
        if (text === '') continue
        let pattern
        try {
          pattern = JSON.parse(text)
        } catch (e) {
          const err = new CliError(EXIT.RUNTIME, 'INVALID_PATTERN', `${file}, line ${lineNo}: not JSON: ${e.message}`)
          err.detail = { line: lineNo, imported }
          throw err
        }
        if (typeof pattern !== 'object' || pattern === null || Array.isArray(pattern)) {
          const err = new CliError(EXIT.RUNTIME, 'INVALID_PATTERN', `${file}, line ${lineNo}: a pattern must be a JSON object`)
          err.detail = { line: lineNo, imported }
          throw err
        }
        batch.push({ line: lineNo, pattern })
        if (batch.length >= IMPORT_BATCH) await flush()
      }
      await flush()
    } catch (e) {
      if (e instanceof CliError) {
        if (imported > 0) process.stderr.write(`${tty ? '\n' : ''}${num(imported)} patterns of the batches before this one stay imported; nothing of the failing batch was written\n`)
      } else if (e && e.code === 'ENOENT') {
        throw new CliError(EXIT.RUNTIME, 'IO_ERROR', `cannot read ${file}: ${e.message}`)
      }
      throw e
    } finally {
      rl.close()
    }
    return { imported, lines: lineNo, batches }
  })
  if (tty && result.batches > 0) process.stderr.write('\n')
  const doc = { file, dbPath, imported: result.imported, lines: result.lines, batches: result.batches, durationMs: Date.now() - started }
  if (values.json) out.json(doc)
  else out.text(`imported ${num(result.imported)} patterns from ${file} into ${dbPath}; the cache file is rebuilt by readers in the background, or run \`pattern-cache rebuild\`\n`)
  return EXIT.OK
}

/** A pattern as export writes it: every field, the embedding as a number array. */
function exportable(p) {
  return { ...p, embedding: Array.from(p.embedding) }
}

async function exportCommand(values, out) {
  const { dbPath, cachePath } = paths(values)
  requireDatabase(dbPath)
  const patterns = await withCache({ dbPath, cachePath, backgroundRebuild: false, enabled: false }, (c) => c.query(filterOf(values)))
  if (values.json && values.out === undefined) {
    out.json(patterns.map(exportable))
    return EXIT.OK
  }
  const target = values.out === undefined ? process.stdout : fs.createWriteStream(values.out)
  if (target !== process.stdout) {
    await new Promise((resolve, reject) => {
      target.once('open', resolve)
      target.once('error', (e) => reject(new CliError(EXIT.RUNTIME, 'IO_ERROR', `cannot write ${values.out}: ${e.message}`)))
    })
  }
  let chunk = ''
  for (const p of patterns) {
    chunk += JSON.stringify(exportable(p)) + '\n'
    if (chunk.length > 1 << 16) {
      await writeTo(target, chunk)
      chunk = ''
    }
  }
  if (chunk) await writeTo(target, chunk)
  if (target !== process.stdout) {
    await new Promise((resolve, reject) => target.end((e) => (e ? reject(new CliError(EXIT.RUNTIME, 'IO_ERROR', `cannot write ${values.out}: ${e.message}`)) : resolve(undefined))))
    const doc = { out: path.resolve(values.out), exported: patterns.length }
    if (values.json) out.json(doc)
    else process.stderr.write(`exported ${num(patterns.length)} patterns to ${values.out}\n`)
  }
  return EXIT.OK
}

const RUN = {
  status: statusCommand,
  rebuild: rebuildCommand,
  verify: verifyCommand,
  clear: clearCommand,
  ls: lsCommand,
  stats: statsCommand,
  search: searchCommand,
  import: importCommand,
  export: exportCommand,
}

// ---------------------------------------------------------------- main

async function main(argv) {
  const json = argv.includes('--json')
  const out = {
    text: (s) => process.stdout.write(s),
    json: (doc) => process.stdout.write(JSON.stringify(doc, null, 2) + '\n'),
  }
  // A closed pipe (`pattern-cache export | head`) ends the output, not in an error.
  process.stdout.on('error', (e) => {
    if (e.code === 'EPIPE') process.exit(EXIT.OK)
  })
  try {
    const { command, values, positionals } = parse(argv)
    if (values.version) {
      const { version } = require('../package.json')
      if (values.json) out.json({ version })
      else out.text(`${version}\n`)
      return EXIT.OK
    }
    if (values.help || command === undefined) {
      const text = command ? commandHelp(command) : mainHelp()
      if (command === undefined && !values.help) {
        process.stderr.write(text)
        return EXIT.USAGE
      }
      out.text(text)
      return EXIT.OK
    }
    return await RUN[command](values, out, positionals)
  } catch (e) {
    const cli = e instanceof CliError
    const exitCode = cli ? e.exitCode : EXIT.RUNTIME
    const code = (e && e.code) || 'INTERNAL'
    const message = (e && e.message) || String(e)
    if (json) out.json({ ok: false, exitCode, error: { code, message, ...(cli && e.detail ? e.detail : {}) } })
    else if (exitCode === EXIT.USAGE) process.stderr.write(`pattern-cache: ${message}\n`)
    else process.stderr.write(`pattern-cache: error [${code}]: ${message}\n`)
    if (!cli && !(e && e.code) && e && e.stack && process.env.PATTERN_CACHE_DEBUG) process.stderr.write(`${e.stack}\n`)
    return exitCode
  }
}

main(process.argv.slice(2)).then((code) => {
  process.exitCode = code
})

'use strict'
// Opening the store: the default paths, the database check, the cache file's
// companions, what the files say about the tier, paging through patterns.

const fs = require('node:fs')
const path = require('node:path')
const { EXIT, CliError } = require('./errors.js')
const { num } = require('./output.js')

const DEFAULT_DB = path.join('.pattern-cache', 'patterns.db')
const DEFAULT_CACHE_NAME = 'patterns.v2.pcache'

function loadPackage() {
  // Loaded only when a command needs the native addon, so --help works without it.
  return require('../..')
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

/** Splits a CacheBuildResult error '[CODE] message' into its parts. */
function splitCoded(text) {
  const m = /^\[([A-Z_]+)\]\s*(.*)$/s.exec(text ?? '')
  return m ? { code: m[1], message: m[2] } : { code: 'INTERNAL', message: text || 'unknown error' }
}

/** Patterns per listPatterns() page unless --page-size says otherwise (the API's default). */
const PAGE_SIZE = 1000
/** The API's largest page. */
const MAX_PAGE_SIZE = 10000

/**
 * The matching patterns a page at a time (PatternCache#listPatterns(), keyset
 * paging by id), at most --limit in all: memory is bounded by one page. Yields
 * each page's patterns (never an empty page). Not a snapshot: a write while it
 * pages may or may not be seen, but no id comes twice.
 * @param {any} cache an open PatternCache
 * @param {Record<string, any>} values the parsed options (--domain, --type, --framework, --limit, --page-size)
 * @returns {AsyncGenerator<any[]>}
 */
async function* pages(cache, values) {
  const filter = {}
  for (const key of ['domain', 'type', 'framework']) if (values[key] !== undefined) filter[key] = values[key]
  const pageSize = values['page-size'] !== undefined ? Number(values['page-size']) : PAGE_SIZE
  let remaining = values.limit !== undefined ? Number(values.limit) : Infinity
  let cursor
  while (remaining > 0) {
    const page = await cache.listPatterns({ ...filter, limit: Math.min(pageSize, remaining), ...(cursor === undefined ? {} : { cursor }) })
    remaining -= page.patterns.length
    if (page.patterns.length > 0) yield page.patterns
    if (page.cursor === undefined) return
    if (page.cursor === cursor) throw new CliError(EXIT.RUNTIME, 'INTERNAL', `listPatterns() returned the cursor it was given (${JSON.stringify(cursor)}): paging would not end`)
    cursor = page.cursor
  }
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

module.exports = { DEFAULT_DB, DEFAULT_CACHE_NAME, PAGE_SIZE, MAX_PAGE_SIZE, loadPackage, paths, fileSize, requireDatabase, companions, splitCoded, pages, withCache, describeFile }

'use strict'
// The argument checks of the JavaScript layer: a wrong type gets a coded
// error (PatternCacheError) instead of a conversion message, and values are
// converted to what the binding takes (metadata to JSON, number[] embeddings
// to Float32Array). Values themselves (ranges, sizes) are checked in Rust,
// but for a number[] embedding's float32 range, which its conversion would
// hide (toFloat32).

const { PatternCacheError, fail } = require('./errors')
const { decodeCursor } = require('./cursor')

const isAbsent = (v) => v === undefined || v === null
const describe = (v) => (v === null ? 'null' : Array.isArray(v) ? 'array' : typeof v)
const isPlainObject = (v) => typeof v === 'object' && v !== null && !Array.isArray(v)

// A lone surrogate cannot be stored as UTF-8: the addon would get U+FFFD in
// its place, silently a different string (and, for an id, another pattern).
const wellFormed = (s) => s.isWellFormed()

function checkString(code, what, v) {
  if (typeof v !== 'string') fail(code, `${what} must be a string, got ${describe(v)}`)
  if (!wellFormed(v)) fail(code, `${what} is not well-formed Unicode (it has a lone surrogate)`)
}

function checkOptional(code, what, v, type) {
  if (!isAbsent(v) && typeof v !== type) fail(code, `${what} must be a ${type} when given, got ${describe(v)}`)
  if (type === 'string' && typeof v === 'string' && !wellFormed(v)) {
    fail(code, `${what} is not well-formed Unicode (it has a lone surrogate)`)
  }
}

/**
 * An embedding as a Float32Array: a Float32Array as it is (its values are
 * checked in Rust), a number[] checked element by element first. The one
 * check for patterns and search queries alike: each element a number whose
 * float32 (Math.fround, the conversion a Float32Array makes) is finite. So
 * NaN and ±Infinity are refused, and so is a finite number the conversion
 * would turn into ±Infinity (|x| >= 2^128 - 2^103, about 3.4028235677973366e38);
 * one that rounds to the largest float32 (3.4028234663852886e38) is taken.
 */
function toFloat32(embedding, code, what) {
  if (Array.isArray(embedding)) {
    for (let i = 0; i < embedding.length; i++) {
      const x = embedding[i]
      if (typeof x !== 'number') fail(code, `${what}[${i}] must be a number, got ${describe(x)}`)
      if (!Number.isFinite(Math.fround(x))) fail(code, `${what}[${i}] is ${x}, not a finite float32`)
    }
    return Float32Array.from(embedding)
  }
  if (!(embedding instanceof Float32Array)) fail(code, `${what} must be a Float32Array or number[], got ${describe(embedding)}`)
  return embedding
}

function toSearchVector(embedding) {
  return toFloat32(embedding, 'INVALID_ARGUMENT', 'searchSimilar: embedding')
}

const SEARCH_OPTIONS = { k: 'number', threshold: 'number', domain: 'string', type: 'string', framework: 'string', metric: 'string', useMMR: 'boolean', mmrLambda: 'number' }

function toSearchOptions(options) {
  const code = 'INVALID_ARGUMENT'
  if (isAbsent(options)) return {}
  if (!isPlainObject(options)) fail(code, `searchSimilar: options must be an object, got ${describe(options)}`)
  const out = {}
  for (const [key, type] of Object.entries(SEARCH_OPTIONS)) {
    checkOptional(code, `searchSimilar: options.${key}`, options[key], type)
    if (!isAbsent(options[key])) out[key] = options[key]
  }
  return out
}

function toUsageEntry(id, outcome, what) {
  const code = 'INVALID_ARGUMENT'
  checkString(code, `${what}: id`, id)
  if (isAbsent(outcome)) return { id }
  if (!isPlainObject(outcome)) fail(code, `${what}: outcome must be an object, got ${describe(outcome)}`)
  checkOptional(code, `${what}: success`, outcome.success, 'boolean')
  checkOptional(code, `${what}: at`, outcome.at, 'number')
  return { id, success: outcome.success ?? undefined, at: outcome.at ?? undefined }
}

/** recordUsages()'s entries, each checked as recordUsage's id and outcome. */
function toUsageEntries(entries) {
  if (!Array.isArray(entries)) fail('INVALID_ARGUMENT', `recordUsages: entries must be an array, got ${describe(entries)}`)
  return entries.map((e, i) => {
    if (!isPlainObject(e)) fail('INVALID_ARGUMENT', `recordUsages: entries[${i}] must be an object, got ${describe(e)}`)
    return toUsageEntry(e.id, e, `recordUsages: entries[${i}]`)
  })
}

/**
 * A filter's fields checked (`what` names the object in messages; `strings`
 * are its string fields, then `limit`), as the binding takes it.
 */
function toFilter(what, f, strings = ['domain', 'type', 'framework']) {
  for (const key of strings) checkOptional('INVALID_ARGUMENT', `${what}.${key}`, f[key], 'string')
  checkOptional('INVALID_ARGUMENT', `${what}.limit`, f.limit, 'number')
  return { domain: f.domain ?? undefined, type: f.type ?? undefined, framework: f.framework ?? undefined, limit: f.limit ?? undefined }
}

/** query()'s filter. */
function toQueryFilter(filter) {
  if (!isPlainObject(filter)) fail('INVALID_ARGUMENT', `filter must be an object, got ${describe(filter)}`)
  return toFilter('filter', filter)
}

/** listPatterns()'s request: its filter, and the id its cursor continues after (undefined for the first page). */
function toPageRequest(request) {
  const r = isAbsent(request) ? {} : request
  if (!isPlainObject(r)) fail('INVALID_ARGUMENT', `listPatterns: request must be an object, got ${describe(r)}`)
  const filter = toFilter('listPatterns: request', r, ['domain', 'type', 'framework', 'cursor'])
  return { filter, after: isAbsent(r.cursor) ? undefined : decodeCursor(r.cursor) }
}

/** storePatterns()'s argument: every pattern checked and converted (all before any is written). */
function toNativePatterns(patterns) {
  if (!Array.isArray(patterns)) fail('INVALID_PATTERN', `patterns must be an array, got ${describe(patterns)}`)
  return patterns.map(toNativePattern)
}

function toNativePattern(p, index) {
  const code = 'INVALID_PATTERN'
  const at = index === undefined ? 'pattern' : `patterns[${index}]`
  if (!isPlainObject(p)) fail(code, `${at} must be an object, got ${describe(p)}`)
  const name = typeof p.id === 'string' && p.id ? `${at} '${p.id}'` : at
  for (const key of ['id', 'type', 'domain', 'content']) checkString(code, `${name}.${key}`, p[key])
  checkOptional(code, `${name}.framework`, p.framework, 'string')
  checkOptional(code, `${name}.verdict`, p.verdict, 'string')
  for (const key of ['coverage', 'flakinessScore', 'createdAt', 'lastUsed', 'usageCount', 'successCount']) {
    checkOptional(code, `${name}.${key}`, p[key], 'number')
  }
  const embedding = toFloat32(p.embedding, code, `${name}.embedding`)
  let metadataJson
  if (!isAbsent(p.metadata)) {
    if (!isPlainObject(p.metadata)) fail(code, `${name}.metadata must be an object, got ${describe(p.metadata)}`)
    try {
      metadataJson = JSON.stringify(p.metadata)
    } catch (e) {
      fail(code, `${name}.metadata is not JSON-serialisable: ${e && e.message}`)
    }
  }
  return {
    id: p.id,
    type: p.type,
    domain: p.domain,
    framework: p.framework ?? undefined,
    content: p.content,
    embedding,
    coverage: p.coverage ?? undefined,
    flakinessScore: p.flakinessScore ?? undefined,
    verdict: p.verdict ?? undefined,
    createdAt: p.createdAt ?? undefined,
    lastUsed: p.lastUsed ?? undefined,
    usageCount: p.usageCount ?? undefined,
    successCount: p.successCount ?? undefined,
    metadataJson,
  }
}

/** storeAgentConfig()'s entry, checked; only its five fields go on. */
function toAgentConfig(config) {
  const code = 'INVALID_AGENT_CONFIG'
  if (!isPlainObject(config)) fail(code, `config must be an object, got ${describe(config)}`)
  for (const key of ['agentId', 'type', 'configJson', 'version']) checkString(code, `config.${key}`, config[key])
  if (typeof config.updatedAt !== 'number') fail(code, `config.updatedAt must be a number, got ${describe(config.updatedAt)}`)
  const { agentId, type, configJson, version, updatedAt } = config
  return { agentId, type, configJson, version, updatedAt }
}

const TRIGGERS = new Set(['pattern_stored', 'pattern_deleted', 'config_updated', 'schema_migration', 'manual', 'ttl_expired'])

/** markStale()'s event, checked (it throws: markStale is synchronous). */
function checkStaleEvent(event) {
  const code = 'INVALID_ARGUMENT'
  if (!isPlainObject(event)) fail(code, `event must be an object, got ${describe(event)}`)
  if (!TRIGGERS.has(event.trigger)) fail(code, `event.trigger must be one of ${[...TRIGGERS].join(', ')}, got ${String(event.trigger)}`)
  if (typeof event.requiresRebuild !== 'boolean') fail(code, `event.requiresRebuild must be a boolean, got ${describe(event.requiresRebuild)}`)
  checkOptional(code, 'event.timestamp', event.timestamp, 'number')
}

function toNativeConfig(config) {
  const code = 'INVALID_ARGUMENT'
  if (isAbsent(config)) return { options: undefined, onEvent: undefined }
  if (!isPlainObject(config)) fail(code, `config must be an object, got ${describe(config)}`)
  checkOptional(code, 'config.dbPath', config.dbPath, 'string')
  checkOptional(code, 'config.cachePath', config.cachePath, 'string')
  for (const key of ['enabled', 'backgroundRebuild', 'fallbackToSQLite', 'enableMetrics']) {
    checkOptional(code, `config.${key}`, config[key], 'boolean')
  }
  for (const key of ['maxAge', 'checkInterval']) checkOptional(code, `config.${key}`, config[key], 'number')
  checkOptional(code, 'config.onEvent', config.onEvent, 'function')
  const { onEvent, ...options } = config
  for (const key of Object.keys(options)) if (options[key] === null) delete options[key]
  if (options.remote !== undefined) options.remote = toNativeRemote(options.remote)
  let listener
  if (typeof onEvent === 'function') {
    // A throwing listener must not take the cache (or the process) down.
    listener = (event) => {
      try {
        onEvent(event)
      } catch (e) {
        process.emitWarning(`pattern-cache onEvent listener threw: ${e && e.stack ? e.stack : e}`)
      }
    }
  }
  return { options, onEvent: listener }
}

function toNativeRemote(remote) {
  const code = 'INVALID_ARGUMENT'
  if (!isPlainObject(remote)) fail(code, `config.remote must be an object, got ${describe(remote)}`)
  checkString(code, 'config.remote.url', remote.url)
  checkOptional(code, 'config.remote.pollInterval', remote.pollInterval, 'number')
  checkOptional(code, 'config.remote.listen', remote.listen, 'boolean')
  checkOptional(code, 'config.remote.timeout', remote.timeout, 'number')
  checkOptional(code, 'config.remote.schema', remote.schema, 'string')
  const { url, pollInterval, listen, timeout, schema } = remote
  return { url, pollInterval: pollInterval ?? undefined, listen: listen ?? undefined, timeout: timeout ?? undefined, schema: schema ?? undefined }
}

/** The options as the debug log may show them: never the remote's URL (it may hold a password). */
function loggable(options) {
  if (!options || !options.remote) return options || {}
  return { ...options, remote: { ...options.remote, url: '(redacted)' } }
}

/** As checkString, but returns the error (null when `v` is fine) instead of throwing it: for the read paths. */
function guard(code, what, v) {
  if (typeof v !== 'string') return new PatternCacheError(code, `${what} must be a string, got ${describe(v)}`)
  return wellFormed(v) ? null : new PatternCacheError(code, `${what} is not well-formed Unicode (it has a lone surrogate)`)
}

/** loadPatterns()'s ids: the error of the first bad one, or null. */
function guardIds(ids) {
  if (!Array.isArray(ids)) return new PatternCacheError('INVALID_ARGUMENT', `ids must be an array, got ${describe(ids)}`)
  for (let i = 0; i < ids.length; i++) {
    const bad = guard('INVALID_ARGUMENT', `ids[${i}]`, ids[i])
    if (bad) return bad
  }
  return null
}

module.exports = {
  isAbsent,
  describe,
  isPlainObject,
  checkString,
  checkOptional,
  guard,
  guardIds,
  loggable,
  checkStaleEvent,
  toAgentConfig,
  toNativeConfig,
  toNativePattern,
  toNativePatterns,
  toPageRequest,
  toQueryFilter,
  toSearchOptions,
  toSearchVector,
  toUsageEntries,
  toUsageEntry,
}

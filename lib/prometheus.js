'use strict'
// getMetrics() in the Prometheus text exposition format (version 0.0.4),
// named as prom-client names metrics: `pattern_cache_` prefix, `_total`
// counters, times in `_seconds`, sizes in `_bytes`.

const { fail } = require('./errors')
const { isAbsent, isPlainObject, describe, checkString } = require('./args')

const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/

/** Checks metricsPrometheus() options; returns the constant labels. */
function prometheusLabels(options) {
  const code = 'INVALID_ARGUMENT'
  if (isAbsent(options)) return {}
  if (!isPlainObject(options)) fail(code, `options must be an object, got ${describe(options)}`)
  if (isAbsent(options.labels)) return {}
  if (!isPlainObject(options.labels)) fail(code, `options.labels must be an object, got ${describe(options.labels)}`)
  for (const [name, value] of Object.entries(options.labels)) {
    if (!LABEL_NAME.test(name) || name.startsWith('__')) fail(code, `options.labels: '${name}' is not a Prometheus label name`)
    if (name === 'tier') fail(code, "options.labels: 'tier' is reserved (pattern_cache_tier uses it)")
    checkString(code, `options.labels.${name}`, value)
  }
  return { ...options.labels }
}

/** `{a="x",b="y"}` with values escaped as the exposition format wants; '' for none. */
function labelText(labels) {
  const pairs = Object.entries(labels).map(([k, v]) => `${k}="${v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')}"`)
  return pairs.length ? `{${pairs.join(',')}}` : ''
}

function promNumber(n) {
  if (Number.isNaN(n)) return 'NaN'
  if (n === Infinity) return '+Inf'
  if (n === -Infinity) return '-Inf'
  return String(n)
}

/** The exposition text of metrics `m` (getMetrics()), every sample with `labels`. */
function prometheusText(m, labels) {
  const out = []
  const metric = (name, type, help, samples) => {
    out.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`)
    for (const [extra, value] of samples) out.push(`${name}${labelText({ ...labels, ...extra })} ${promNumber(value)}`)
  }
  const one = (name, type, help, value) => metric(name, type, help, [[{}, value]])
  one('pattern_cache_hits_total', 'counter', 'Reads answered from the cache file.', m.cacheHits)
  one('pattern_cache_misses_total', 'counter', 'Reads the cache file did not answer (served from SQLite).', m.cacheMisses)
  one('pattern_cache_hit_ratio', 'gauge', 'Hits over hits and misses, 0..1.', m.cacheHitRate)
  one('pattern_cache_load_average_seconds', 'gauge', 'Average time of a read answered from the cache file.', m.avgCacheLoadTime / 1000)
  one('pattern_cache_sqlite_fallback_average_seconds', 'gauge', 'Average time of a read answered from SQLite.', m.avgSQLiteFallbackTime / 1000)
  one('pattern_cache_corruptions_total', 'counter', 'Cache file corruptions detected.', m.cacheCorruptionCount)
  one('pattern_cache_rebuilds_total', 'counter', 'Cache file builds completed.', m.cacheRebuildCount)
  one('pattern_cache_last_generation_timestamp_seconds', 'gauge', 'Unix time the cache file in use was written; 0 when none.', m.lastCacheGenerationTime / 1000)
  one('pattern_cache_file_size_bytes', 'gauge', 'Size of the cache file in use; 0 when none.', m.cacheFileSize)
  one('pattern_cache_patterns', 'gauge', 'Patterns in the store.', m.patternCount)
  metric('pattern_cache_tier', 'gauge', 'The tier answering reads now: 1 for it, 0 for the other.', [
    [{ tier: 'cache' }, m.tier === 'cache' ? 1 : 0],
    [{ tier: 'sqlite' }, m.tier === 'cache' ? 0 : 1],
  ])
  return out.join('\n') + '\n'
}

module.exports = { prometheusLabels, prometheusText }

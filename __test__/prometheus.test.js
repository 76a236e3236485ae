// @ts-check
'use strict'
// metricsPrometheus(): getMetrics() in the Prometheus text exposition format,
// as a scraper parses it; and `pattern-cache status --prometheus`.

const { test } = require('node:test')
const assert = require('node:assert/strict')
const path = require('node:path')
const { spawnSync } = require('node:child_process')
const { PatternCache } = require('../index.js')
const { generatePatterns, tempDir } = require('./helpers.js')

const CLI = path.resolve(__dirname, '..', 'bin', 'pattern-cache.js')

/**
 * Parses the text exposition format strictly: every sample's metric has one
 * `# HELP` and one `# TYPE` line before it; names and labels are well formed.
 * @param {string} text
 * @returns {{ types: Map<string, string>, help: Map<string, string>, samples: Array<{ name: string, labels: Record<string, string>, value: number }> }}
 */
function parseExposition(text) {
  assert.ok(text.endsWith('\n'), 'the exposition ends with a newline')
  const types = new Map()
  const help = new Map()
  /** @type {Array<{ name: string, labels: Record<string, string>, value: number }>} */
  const samples = []
  for (const line of text.slice(0, -1).split('\n')) {
    let m
    if ((m = /^# HELP ([a-zA-Z_:][a-zA-Z0-9_:]*) (.+)$/.exec(line))) {
      assert.equal(help.has(m[1]), false, `one HELP for ${m[1]}`)
      help.set(m[1], m[2])
    } else if ((m = /^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram|summary|untyped)$/.exec(line))) {
      assert.equal(types.has(m[1]), false, `one TYPE for ${m[1]}`)
      types.set(m[1], m[2])
    } else if ((m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line))) {
      const [, name, labelText, valueText] = m
      assert.ok(types.has(name) && help.has(name), `${name} has HELP and TYPE before its samples`)
      /** @type {Record<string, string>} */
      const labels = {}
      if (labelText) {
        const re = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(,|$)/gy
        let l
        let end = 0
        while ((l = re.exec(labelText))) {
          labels[l[1]] = l[2].replace(/\\(.)/g, (_, c) => (c === 'n' ? '\n' : c))
          end = re.lastIndex
          if (l[3] === '') break
        }
        assert.equal(end, labelText.length, `labels of ${line} parse`)
      }
      const value = Number(valueText)
      assert.ok(!Number.isNaN(value) || valueText === 'NaN', `value of ${line}`)
      samples.push({ name, labels, value })
    } else {
      assert.fail(`not exposition format: ${JSON.stringify(line)}`)
    }
  }
  return { types, help, samples }
}

/** @param {ReturnType<typeof parseExposition>} parsed @param {string} name @param {Record<string, string>} [labels] */
function valueOf(parsed, name, labels = {}) {
  const hit = parsed.samples.find((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))
  assert.ok(hit, `a sample of ${name} ${JSON.stringify(labels)}`)
  return hit.value
}

test('metricsPrometheus() exposes getMetrics() with prom-client names: counters _total, times in seconds', async () => {
  const dir = tempDir('prom')
  const cache = await PatternCache.open({ dbPath: path.join(dir, 'p.db'), backgroundRebuild: false })
  try {
    const patterns = generatePatterns(50, { seed: 5 })
    await cache.storePatterns(patterns)
    assert.equal((await cache.rebuildCache()).success, true)
    for (const p of patterns.slice(0, 10)) await cache.loadPattern(p.id)
    await cache.loadPatternsByDomain('auth')
    const m = cache.getMetrics()
    const parsed = parseExposition(cache.metricsPrometheus())
    const expected = {
      pattern_cache_hits_total: ['counter', m.cacheHits],
      pattern_cache_misses_total: ['counter', m.cacheMisses],
      pattern_cache_corruptions_total: ['counter', m.cacheCorruptionCount],
      pattern_cache_rebuilds_total: ['counter', m.cacheRebuildCount],
      pattern_cache_hit_ratio: ['gauge', m.cacheHitRate],
      pattern_cache_load_average_seconds: ['gauge', m.avgCacheLoadTime / 1000],
      pattern_cache_sqlite_fallback_average_seconds: ['gauge', m.avgSQLiteFallbackTime / 1000],
      pattern_cache_last_generation_timestamp_seconds: ['gauge', m.lastCacheGenerationTime / 1000],
      pattern_cache_file_size_bytes: ['gauge', m.cacheFileSize],
      pattern_cache_patterns: ['gauge', m.patternCount],
    }
    for (const [name, [type, value]] of Object.entries(expected)) {
      assert.equal(parsed.types.get(name), type, name)
      assert.equal(valueOf(parsed, name), value, name)
    }
    for (const [name, type] of parsed.types) {
      assert.ok(name.startsWith('pattern_cache_'), name)
      if (type === 'counter') assert.ok(name.endsWith('_total'), `counter ${name} ends with _total`)
    }
    assert.ok(m.cacheHits >= 11, 'the reads above were counted')
    assert.equal(valueOf(parsed, 'pattern_cache_patterns'), 50)
    assert.equal(valueOf(parsed, 'pattern_cache_tier', { tier: 'cache' }), 1)
    assert.equal(valueOf(parsed, 'pattern_cache_tier', { tier: 'sqlite' }), 0)
  } finally {
    await cache.shutdown()
  }
})

test('metricsPrometheus() with the cache disabled reports the sqlite tier; labels are added and escaped', async () => {
  const dir = tempDir('prom-labels')
  const cache = await PatternCache.open({ dbPath: path.join(dir, 'p.db'), enabled: false })
  try {
    const worker = 'w"1\\a\nb'
    const parsed = parseExposition(cache.metricsPrometheus({ labels: { worker, pool: 'e2e' } }))
    assert.ok(parsed.samples.length >= 11)
    for (const s of parsed.samples) {
      assert.equal(s.labels.worker, worker, `${s.name} carries the label, escaped and parsed back`)
      assert.equal(s.labels.pool, 'e2e')
    }
    assert.equal(valueOf(parsed, 'pattern_cache_tier', { tier: 'sqlite' }), 1)
    assert.equal(valueOf(parsed, 'pattern_cache_tier', { tier: 'cache' }), 0)
    assert.equal(valueOf(parsed, 'pattern_cache_hit_ratio'), 0)

    for (const bad of [{ labels: { '1abc': 'x' } }, { labels: { __name__: 'x' } }, { labels: { tier: 'x' } }, { labels: { ok: /** @type {any} */ (3) } }, /** @type {any} */ ('labels')]) {
      assert.throws(() => cache.metricsPrometheus(bad), (/** @type {any} */ e) => e.code === 'INVALID_ARGUMENT', JSON.stringify(bad))
    }
  } finally {
    await cache.shutdown()
  }
  assert.throws(() => cache.metricsPrometheus(), (/** @type {any} */ e) => e.code === 'CLOSED')
  // The options are checked first, as every method checks its arguments before the instance.
  assert.throws(() => cache.metricsPrometheus({ labels: { tier: 'x' } }), (/** @type {any} */ e) => e.code === 'INVALID_ARGUMENT')
})

test('pattern-cache status --prometheus prints the metrics and gauges of the files', () => {
  const dir = tempDir('prom-cli')
  const db = path.join(dir, 'p.db')
  /** @param {string[]} args */
  const run = (args) => spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', input: args.includes('-') ? generatePatterns(20, { seed: 2 }).map((p) => JSON.stringify({ ...p, embedding: Array.from(p.embedding) })).join('\n') : undefined })
  assert.equal(run(['import', '-', '--db', db]).status, 0)

  const before = run(['status', '--prometheus', '--db', db])
  assert.equal(before.status, 0, before.stderr)
  const stale = parseExposition(before.stdout)
  assert.equal(valueOf(stale, 'pattern_cache_db_patterns'), 20)
  assert.equal(valueOf(stale, 'pattern_cache_file_valid'), 0)
  assert.equal(valueOf(stale, 'pattern_cache_file_stale'), 1)
  assert.equal(valueOf(stale, 'pattern_cache_tier', { tier: 'sqlite' }), 1)

  assert.equal(run(['rebuild', '--db', db]).status, 0)
  const parsed = parseExposition(run(['status', '--prometheus', '--db', db]).stdout)
  assert.equal(valueOf(parsed, 'pattern_cache_file_valid'), 1)
  assert.equal(valueOf(parsed, 'pattern_cache_file_stale'), 0)
  assert.equal(valueOf(parsed, 'pattern_cache_file_generation'), valueOf(parsed, 'pattern_cache_db_generation'))
  assert.equal(valueOf(parsed, 'pattern_cache_patterns'), 20)
  assert.equal(valueOf(parsed, 'pattern_cache_tier', { tier: 'cache' }), 1)
  assert.ok(valueOf(parsed, 'pattern_cache_file_age_seconds') >= 0)
  assert.ok(parsed.types.has('pattern_cache_hits_total'))

  assert.equal(run(['status', '--prometheus', '--json', '--db', db]).status, 2, 'two output formats at once is a usage error')
})

'use strict'
// pattern-cache status [--prometheus]

const fs = require('node:fs')
const path = require('node:path')
const { EXIT } = require('../lib/errors.js')
const { num, bytes, duration } = require('../lib/output.js')
const { paths, fileSize, companions, withCache, describeFile } = require('../lib/store.js')

const summary = 'tier in use, files, format version, age, staleness, counts, metrics'
const args = ''
const options = ['prometheus']
const help = `Reports the database and the cache file as they are on disk: which tier a
reader opening now is served from, the file's format version and producer, its
age, the database generation it was built from against the database's, whether
it is stale, counts, and the metrics of the instance status opened. Writes
nothing: a missing cache file is reported, not built.

  --prometheus      print, in the Prometheus text format instead, the metrics
                    (PatternCache#metricsPrometheus()) and gauges of the files:
                    pattern_cache_db_generation, pattern_cache_db_patterns,
                    pattern_cache_file_valid, pattern_cache_file_stale,
                    pattern_cache_file_generation, pattern_cache_file_age_seconds

Exit code 1 when the database does not exist.`

async function run(values, out) {
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

module.exports = { summary, args, options, help, run }

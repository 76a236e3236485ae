'use strict'
// pattern-cache stats [--page-size n]

const { EXIT } = require('../lib/errors.js')
const { num, bytes } = require('../lib/output.js')
const { PAGE_SIZE, MAX_PAGE_SIZE, paths, fileSize, requireDatabase, withCache, pages } = require('../lib/store.js')

const summary = 'counts per domain, type, framework and verdict; sizes'
const args = ''
const options = ['page-size']
const help = `Counts patterns per domain, type, framework and verdict, and agent configs
(PatternCache#getStats()), and reports sizes: the database files, the cache
file, and the bytes of contents, metadata and embeddings. Those three are
summed over every pattern, read a page at a time (memory is bounded by the
page); they are not a snapshot with the counts when another process writes
meanwhile.

  --page-size <n>   patterns read per page, 1..${MAX_PAGE_SIZE.toLocaleString('en-US')} (default ${PAGE_SIZE.toLocaleString('en-US')})

Counts are ordered by count, largest first; a verdict no pattern has is left
out.`

/** The non-zero counts, largest first, then by name. @param {Record<string, number>} counts */
function ordered(counts) {
  return Object.fromEntries(Object.entries(counts).filter(([, v]) => v > 0).sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1)))
}

async function run(values, out) {
  const { dbPath, cachePath } = paths(values)
  requireDatabase(dbPath)
  const { stats, contentBytes, metadataBytes, embeddingBytes } = await withCache({ dbPath, cachePath, backgroundRebuild: false, enabled: false }, async (c) => {
    const stats = await c.getStats()
    let contentBytes = 0
    let metadataBytes = 0
    let embeddingBytes = 0
    for await (const page of pages(c, { 'page-size': values['page-size'] })) {
      for (const p of page) {
        contentBytes += Buffer.byteLength(p.content, 'utf8')
        if (p.metadata !== undefined) metadataBytes += Buffer.byteLength(JSON.stringify(p.metadata), 'utf8')
        embeddingBytes += p.embedding.byteLength
      }
    }
    return { stats, contentBytes, metadataBytes, embeddingBytes }
  })
  const doc = {
    patternCount: stats.patternCount,
    embeddingDim: stats.dimension || null,
    domains: ordered(stats.byDomain),
    types: ordered(stats.byType),
    frameworks: ordered(stats.byFramework),
    verdicts: ordered(stats.byVerdict),
    agentConfigCount: stats.agentConfigCount,
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
      `agent configs: ${num(doc.agentConfigCount)}`,
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

module.exports = { summary, args, options, help, run }

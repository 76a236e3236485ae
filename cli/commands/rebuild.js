'use strict'
// pattern-cache rebuild

const { EXIT, CliError } = require('../lib/errors.js')
const { num, bytes, duration, spinner } = require('../lib/output.js')
const { paths, requireDatabase, withCache, splitCoded } = require('../lib/store.js')

const summary = 'rebuild the cache file from the database'
const args = ''
const options = []
const help = `Builds the cache file from the database and swaps it in atomically (the
previous file is kept as .bak). Shows progress on a terminal.`

async function run(values, out) {
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

module.exports = { summary, args, options, help, run }

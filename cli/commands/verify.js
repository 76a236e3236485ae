'use strict'
// pattern-cache verify

const { EXIT } = require('../lib/errors.js')
const { num } = require('../lib/output.js')
const { paths, requireDatabase, withCache, describeFile } = require('../lib/store.js')

const summary = 'check every record of the cache file (exit 1 on a problem)'
const args = ''
const options = []
const help = `Reads the whole cache file and checks its header, directory, indexes and
the SHA-256 of every record. Exit code 1 when the file is missing, corrupt or
of another format version. A stale but intact file passes (status says
whether it is stale).`

/** The errors of verify() that are a problem of the file (exit 1), not a failure of the command. */
const FILE_PROBLEMS = new Set(['CACHE_CORRUPT', 'CACHE_INCOMPATIBLE', 'IO_ERROR'])

async function run(values, out) {
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

module.exports = { summary, args, options, help, run }

'use strict'
// pattern-cache clear

const fs = require('node:fs')
const path = require('node:path')
const { EXIT, CliError, usageError } = require('../lib/errors.js')
const { paths, companions } = require('../lib/store.js')

const summary = 'remove the cache file and its .bak, .lock and .tmp-* companions'
const args = ''
const options = []
const help = `Removes the cache file and its companions (<cache>.bak, <cache>.lock,
<cache>.tmp-*). Never touches the database. Run it when no process is
rebuilding this cache; readers rebuild the file when they next open.`

async function run(values, out) {
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

module.exports = { summary, args, options, help, run }

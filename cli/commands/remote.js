'use strict'
// pattern-cache remote <migrate|sync|status|prune>: the shared bank (PostgreSQL).

const { EXIT, CliError, usageError } = require('../lib/errors.js')
const { num } = require('../lib/output.js')
const { paths, withCache, loadPackage } = require('../lib/store.js')

const URL_ENV = 'PATTERN_CACHE_REMOTE_URL'

const summary = 'the shared PostgreSQL bank: migrate its schema, sync this replica, status, prune'
const args = '<migrate|sync|status|prune>'
const options = ['keep', 'schema']
const help = `Works with the remote named by the environment variable ${URL_ENV}
(a libpq-style connection string; an environment variable, not an option, so
the password never shows in the process list or shell history).

  migrate   creates or migrates the package's schema (pattern_cache) on the
            remote: forward-only, one transaction per migration, under an
            advisory lock. Run it as a role that may create tables when the
            application's role may only read and write rows (README, "A
            shared bank", lists the grants).
  sync      brings this machine's replica (--db) up to the remote now and
            prints what it applied.
  status    the replica's generation, the remote's, and the lag.
  prune --keep <duration>
            removes the tombstones (deleted rows) and write records of the
            generations written more than <duration> ago (e.g. 30d, 12h,
            90m, 45s, 0); replicas below the new floor reset to the bank at
            their next sync. Run it as the schema's owner (it deletes rows).

--schema <name> works on the bank in that PostgreSQL schema (default
pattern_cache; one database can hold several banks).

Exit code 3 with REMOTE_UNAVAILABLE when the remote cannot be reached.`

const UNIT_MS = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }

/** `30d`, `12h`, `90m`, `45s`, `500ms` or `0`, in ms. */
function duration(text) {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)?$/.exec(text)
  if (!m || (m[2] === undefined && Number(m[1]) !== 0)) throw usageError(`--keep takes a duration such as 30d, 12h, 90m, 45s or 0, got '${text}'`)
  return Number(m[1]) * UNIT_MS[m[2] ?? 'ms']
}

function remoteUrl() {
  const url = process.env[URL_ENV]
  if (!url) throw new CliError(EXIT.USAGE, 'USAGE', `set ${URL_ENV} to the remote's connection string`)
  return url
}

async function run(values, out, positionals) {
  const action = positionals[0]
  if (!['migrate', 'sync', 'status', 'prune'].includes(action)) throw usageError(`remote needs migrate, sync, status or prune, got '${action}'`)
  if ((action === 'prune') !== (values.keep !== undefined)) throw usageError('--keep <duration> goes with remote prune, and remote prune needs it')
  const keep = action === 'prune' ? duration(values.keep) : 0
  const url = remoteUrl()
  if (action === 'prune') {
    const p = await loadPackage().pruneRemote(url, { keep, schema: values.schema })
    if (values.json) out.json({ ok: true, ...p })
    else out.text(`pruned the remote below generation ${num(p.floor)}: ${num(p.tombstones)} tombstones and ${num(p.writes)} write records removed\n`)
    return EXIT.OK
  }
  if (action === 'migrate') {
    const { fromVersion: from, toVersion: to } = await loadPackage().migrateRemote(url, { schema: values.schema })
    if (values.json) out.json({ ok: true, fromVersion: from, toVersion: to })
    else out.text(from === to ? `the remote schema is at version ${to}: nothing to do\n` : `migrated the remote schema from version ${from} to ${to}\n`)
    return EXIT.OK
  }
  const { dbPath, cachePath } = paths(values)
  if (action === 'sync') {
    const s = await withCache({ dbPath, cachePath, backgroundRebuild: false, remote: { url, schema: values.schema } }, (c) => c.syncRemote())
    if (values.json) out.json({ ok: true, dbPath, ...s })
    else out.text(`synced ${dbPath}: generation ${num(s.fromGeneration)} -> ${num(s.toGeneration)}, ${num(s.rowsApplied)} rows applied in ${s.duration.toFixed(1)} ms\n`)
    return EXIT.OK
  }
  const { schemaVersion, generation: remoteGeneration } = await loadPackage().probeRemote(url, { schema: values.schema })
  const info = await withCache({ dbPath, cachePath, backgroundRebuild: false, enabled: false }, (c) => c.inspect())
  const doc = { dbPath, schemaVersion, remoteGeneration, generation: info.dbGeneration, lag: remoteGeneration - info.dbGeneration }
  if (values.json) out.json({ ok: true, ...doc })
  else out.text(`replica ${dbPath}: at generation ${num(doc.generation)}; the remote is at ${num(remoteGeneration)} (lag ${num(doc.lag)}), schema version ${schemaVersion}\n`)
  return EXIT.OK
}

module.exports = { summary, args, options, help, run, remoteUrl }

'use strict'
// The remote bank's tools (what `pattern-cache remote migrate|status|prune`
// run): one call each on a connection of its own, no PatternCache needed.

const native = require('../binding.js')
const { fail } = require('./errors')
const { isAbsent, isPlainObject, describe, checkString, checkOptional } = require('./args')

/** A remote tool's arguments checked: its `url`, and `options.schema` (returned: undefined for the default). */
function remoteTool(what, url, options) {
  checkString('INVALID_ARGUMENT', `${what}: url`, url)
  if (isAbsent(options)) return undefined
  if (!isPlainObject(options)) fail('INVALID_ARGUMENT', `${what}: options must be an object, got ${describe(options)}`)
  checkOptional('INVALID_ARGUMENT', `${what}: options.schema`, options.schema, 'string')
  return options.schema ?? undefined
}

/**
 * Creates or migrates the package's schema on the remote bank at `url` (what
 * `pattern-cache remote migrate` runs): resolves with the version found and
 * the version now.
 */
async function migrateRemote(url, options) {
  const schema = remoteTool('migrateRemote', url, options)
  const [fromVersion, toVersion] = await native.remoteMigrate(url, schema)
  return { fromVersion, toVersion }
}

/** The remote bank's schema version and generation, read without changing anything (`pattern-cache remote status`). */
async function probeRemote(url, options) {
  const schema = remoteTool('probeRemote', url, options)
  const [schemaVersion, generation] = await native.remoteProbe(url, schema)
  return { schemaVersion, generation }
}

/**
 * Removes the tombstones and write records of the remote bank's generations
 * written more than `keep` ms ago (`pattern-cache remote prune --keep`);
 * replicas below the new floor reset to the bank at their next pass. Run as
 * the schema's owner (it deletes rows).
 */
async function pruneRemote(url, options) {
  const schema = remoteTool('pruneRemote', url, options)
  const keep = isPlainObject(options) ? options.keep : undefined
  if (typeof keep !== 'number' || !Number.isFinite(keep) || keep < 0) {
    fail('INVALID_ARGUMENT', `pruneRemote: options.keep must be a number of ms >= 0, got ${describe(keep)} ${String(keep)}`)
  }
  const [floor, tombstones, writes] = await native.remotePrune(url, schema, keep)
  return { floor, tombstones, writes }
}

module.exports = { migrateRemote, probeRemote, pruneRemote }

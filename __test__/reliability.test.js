// @ts-check
'use strict'
// Short versions of the reliability battery (torture/): each runs one
// torture script's own function at a small size and asserts its targets.
// The long runs: `npm run torture` (docs/RELIABILITY.md).

const { test } = require('node:test')
const assert = require('node:assert/strict')
const killRebuild = require('../torture/kill-rebuild.js')
const killWrites = require('../torture/kill-writes.js')
const storm = require('../torture/storm.js')
const leakSoak = require('../torture/leak-soak.js')
const badInput = require('../torture/bad-input.js')
const permissions = require('../torture/permissions.js')

/**
 * Every figure with a target met; the figures are printed either way.
 * @param {import('../torture/lib.js').Result} r
 */
function assertTargets(r) {
  for (const f of r.figures) console.log(`${r.name}: ${f.name}: ${f.value}${f.target === undefined ? '' : ` (target ${f.target})`}`)
  const missed = r.figures.filter((f) => f.met === false).map((f) => `${f.name}: ${f.value} (target ${f.target})`)
  assert.deepEqual(missed, [], `${r.name}: ${missed.join('; ')}\n${r.notes.slice(0, 10).join('\n')}`)
}

/** @param {import('../torture/lib.js').Result} r @param {string} prefix */
const figure = (r, prefix) => r.figures.find((f) => f.name.startsWith(prefix))?.value

test('SIGKILL in the middle of rebuildCache(): the cache stays readable, no temp file is left', async () => {
  const r = await killRebuild.run({ kills: 5 })
  assertTargets(r)
  assert.equal(figure(r, 'kills'), 5)
})

test('SIGKILL a writer at random times: no resolved write is lost', async () => {
  const r = await killWrites.run({ rounds: 5 })
  assertTargets(r)
  assert.ok(Number(figure(r, 'writes acknowledged')) > 0, 'the writers wrote something before the kills')
})

test('storm: 8 processes + 8 worker threads for 2 s: no DB_BUSY, no lost write, reads agree with SQLite', async () => {
  const r = await storm.run({ seconds: 2 })
  assertTargets(r)
  assert.ok(Number(figure(r, 'total commits')) > 0)
})

test('30 open / load / rebuild / shutdown cycles: RSS, file descriptors and threads stay flat', async () => {
  assertTargets(await leakSoak.run({ cycles: 30 }))
})

test('bad input of every kind is rejected with a code or accepted as data, and changes nothing else', async () => {
  const r = await badInput.run()
  assertTargets(r)
  assert.ok(Number(figure(r, 'cases')) > 300)
})

test('files are created 0o666 & ~umask; a symlink planted at a temp-file path is never followed', async () => {
  assertTargets(await permissions.run())
})

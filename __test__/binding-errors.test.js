// @ts-check
'use strict'
// Errors the binding raises itself, before any core call, carry a stable
// code like every other error: the public API checks its arguments first,
// so these are reached through binding.js directly (and, for injectFault,
// through the fault-injection build).

const { test } = require('node:test')
const assert = require('node:assert/strict')
const fs = require('node:fs')
const path = require('node:path')
const { spawnSync } = require('node:child_process')
const { tempDir } = require('./helpers.js')

/**
 * binding.js, required by a computed path so that tsc does not check
 * binding.d.ts on its own: its return types name index.d.ts's types
 * (StoredPattern, ...), which it does not import.
 * @type {{ errorCodes(): string[], open(...args: unknown[]): Promise<any> }}
 */
const native = require(path.join(__dirname, '..', 'binding.js'))

const CODES = native.errorCodes()
const FAULT_ADDON = path.resolve(__dirname, '..', 'target', 'faults', 'addon', 'pattern-cache.node')

/** @param {string} code */
function coded(code) {
  return (/** @type {unknown} */ e) => {
    assert.ok(e instanceof Error, `an Error: ${e}`)
    const { code: got } = /** @type {Error & { code?: string }} */ (e)
    assert.equal(got, code, e.message)
    assert.ok(CODES.includes(got), `${got} is in errorCodes()`)
    return true
  }
}

test('native loadBy with an unknown index kind, tryLoadPattern with a non-string id -> INVALID_ARGUMENT', async () => {
  const dir = tempDir('binding-errors')
  // The factories are never called: no pattern is built here.
  const factory = () => undefined
  const cache = await native.open(factory, factory, { dbPath: path.join(dir, 'p.db') })
  try {
    assert.throws(() => cache.loadBy('colour', 'red'), coded('INVALID_ARGUMENT'))
    assert.throws(() => cache.tryLoadPattern(42), coded('INVALID_ARGUMENT'))
    assert.deepEqual(await cache.loadBy('domain', 'none'), [], 'a known kind still works')
  } finally {
    await cache.shutdown()
  }
})

test('injectFault with an unknown step -> INVALID_ARGUMENT', { skip: !fs.existsSync(FAULT_ADDON) && `no ${FAULT_ADDON} (npm run build:faults)` }, () => {
  // In a child process, as panics.test.js does: the fault build is a second copy of the addon.
  const script = `
    const faults = require(process.env.NAPI_RS_NATIVE_LIBRARY_PATH)
    let error
    try { faults.injectFault('no-such-step') } catch (e) { error = { code: e.code, message: e.message } }
    faults.injectFault('none')
    console.log(JSON.stringify(error ?? null))`
  const r = spawnSync(process.execPath, ['-e', script], {
    encoding: 'utf8',
    env: { ...process.env, NAPI_RS_NATIVE_LIBRARY_PATH: FAULT_ADDON },
    timeout: 60_000,
  })
  assert.equal(r.status, 0, r.stderr)
  const error = JSON.parse(r.stdout.trim())
  assert.ok(error, 'injectFault threw')
  assert.equal(error.code, 'INVALID_ARGUMENT', error.message)
  assert.ok(CODES.includes(error.code))
  assert.match(error.message, /unknown step 'no-such-step'/)
})

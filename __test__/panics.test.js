// @ts-check
'use strict'
// Panics injected into the addon (a build with the `fault-injection` feature,
// `npm run build:faults`) in the synchronous path (a cache hit on the
// JavaScript thread), the asynchronous path (a read on the thread pool) and
// a background rebuild: none aborts the process; each becomes a JS error with
// code INTERNAL, or a `rebuild_failed` event; the instance keeps working.

const { test } = require('node:test')
const assert = require('node:assert/strict')
const fs = require('node:fs')
const path = require('node:path')
const { spawnSync } = require('node:child_process')
const { tempDir } = require('./helpers.js')

const ROOT = path.resolve(__dirname, '..')
const FAULT_ADDON = path.join(ROOT, 'target', 'faults', 'addon', 'pattern-cache.node')

test('injected panics become errors or events, never aborts', () => {
  assert.ok(fs.existsSync(FAULT_ADDON), `missing ${FAULT_ADDON}: run npm run build:faults`)
  const dir = tempDir('panics')
  const script = `
    const assert = require('node:assert/strict')
    const { PatternCache } = require(${JSON.stringify(ROOT)})
    const faults = require(process.env.NAPI_RS_NATIVE_LIBRARY_PATH)
    const isInternal = (e) => e.code === 'INTERNAL' && /injected panic/.test(e.message)
    ;(async () => {
      const out = {}
      let failed
      const rebuildFailed = new Promise((resolve) => (failed = resolve))
      const timer = setInterval(() => {}, 1000)
      const cache = await PatternCache.open({ dbPath: 'p.db', onEvent: (e) => e.type === 'rebuild_failed' && failed(e.error) })
      await cache.storePatterns([{ id: 'a', type: 't', domain: 'd', content: 'x', embedding: [1, 2] }])
      await cache.rebuildCache()
      assert.equal((await cache.loadPattern('a')).id, 'a') // sync path, hit

      faults.injectFault('read')
      await assert.rejects(cache.loadPattern('a'), isInternal) // sync path (JS thread)
      const slow = await PatternCache.open({ dbPath: 'p.db', checkInterval: 0, backgroundRebuild: false })
      await assert.rejects(slow.loadPatternsByDomain('d'), isInternal) // async path (thread pool)
      faults.injectFault('rebuild')
      cache.markStale({ trigger: 'manual', requiresRebuild: true }) // background path
      out.event = await rebuildFailed
      faults.injectFault('none')

      assert.equal((await cache.loadPattern('a')).id, 'a')
      assert.equal((await slow.loadPatternsByDomain('d')).length, 1)
      assert.equal((await cache.rebuildCache()).success, true)
      await slow.shutdown()
      await cache.shutdown()
      clearInterval(timer)
      console.log(JSON.stringify(out))
    })()`
  const r = spawnSync(process.execPath, ['-e', script], {
    cwd: dir,
    encoding: 'utf8',
    env: { ...process.env, NAPI_RS_NATIVE_LIBRARY_PATH: FAULT_ADDON },
    timeout: 60_000,
  })
  assert.equal(r.signal, null, `aborted: ${r.stderr}`)
  assert.equal(r.status, 0, r.stderr)
  const out = JSON.parse(r.stdout.trim().split('\n').pop() ?? '{}')
  assert.match(out.event, /^\[INTERNAL\] injected panic/)
})

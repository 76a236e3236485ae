// @ts-check
'use strict'
// A real suite that awaits the cache under jest (4 workers), vitest `threads`
// and vitest `forks`: every run passes and exits without a hang or a
// "did not exit" warning.

const { test } = require('node:test')
const assert = require('node:assert/strict')
const path = require('node:path')
const { spawnSync } = require('node:child_process')
const { tempDir } = require('./helpers.js')

const ROOT = path.resolve(__dirname, '..')
const SUITE = path.join(__dirname, 'runners')
const bin = (/** @type {string} */ name) => path.join(ROOT, 'node_modules', '.bin', name)

const runners = /** @type {const} */ ([
  ['jest, 4 workers', bin('jest'), ['--rootDir', SUITE, '--testMatch', '**/*.spec.js', '--maxWorkers=4', '--ci']],
  ['vitest, pool threads', bin('vitest'), ['run', '--root', SUITE, '--pool', 'threads']],
  ['vitest, pool forks', bin('vitest'), ['run', '--root', SUITE, '--pool', 'forks']],
])

const HANG_WARNINGS = [/did not exit/i, /failed to exit gracefully/i, /open handle/i, /close timed out/i, /something prevents/i, /hanging/i]

for (const [name, cmd, args] of runners) {
  test(`${name}: the suite passes and the runner exits cleanly`, () => {
    const dir = tempDir(name.replace(/\W+/g, '-'))
    const r = spawnSync(process.execPath, [cmd, ...args], {
      cwd: ROOT,
      env: { ...process.env, PC_RUNNER_DB: path.join(dir, 'p.db'), CI: 'true', NO_COLOR: '1' },
      encoding: 'utf8',
      timeout: 180_000,
    })
    // eslint-disable-next-line no-control-regex
    const output = `${r.stdout}\n${r.stderr}`.replace(/\x1b\[[0-9;]*m/g, '')
    assert.equal(r.error, undefined, `${name} did not finish: ${r.error}`)
    assert.equal(r.status, 0, output)
    assert.match(output, /Tests:?\s+12 passed/, output)
    for (const warning of HANG_WARNINGS) assert.doesNotMatch(output, warning, output)
  })
}

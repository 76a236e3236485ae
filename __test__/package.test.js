// @ts-check
'use strict'
// The package as users install it: `npm pack` of the main package and of this
// platform's binary package (npm/<platform>/ with the locally built .node
// copied in, in a temp copy), both installed from their tarballs into a fresh
// TypeScript project (its registry dependencies, e.g. `debug`, come from the
// npm cache when they are there). There: the types pass `tsc --strict`, and CommonJS
// require, ESM import and the `pattern-cache` command all load the binary
// from the platform package (the main package ships none).

const { test, before } = require('node:test')
const assert = require('node:assert/strict')
const fs = require('node:fs')
const path = require('node:path')
const { spawnSync } = require('node:child_process')
const { tempDir } = require('./helpers.js')

const ROOT = path.resolve(__dirname, '..')
const pkg = require('../package.json')
const TSC = path.join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc')

/** The napi-rs platform suffix of this machine (binding.js's naming), or null. */
function platformSuffix() {
  const { platform, arch } = process
  if (platform === 'linux') {
    const header = /** @type {any} */ (process.report.getReport()).header
    return `linux-${arch}-${header.glibcVersionRuntime ? 'gnu' : 'musl'}`
  }
  if (platform === 'darwin') return `darwin-${arch}`
  if (platform === 'win32') return `win32-${arch}-msvc`
  return null
}

const suffix = platformSuffix()
const binaryName = suffix && `${pkg.napi.binaryName}.${suffix}.node`
const localBinary = binaryName && path.join(ROOT, binaryName)
const platformDir = suffix && path.join(ROOT, 'npm', suffix)
const skip =
  !suffix || !localBinary || !fs.existsSync(localBinary)
    ? `no locally built ${binaryName ?? 'binary for this platform'} (npm run build)`
    : !platformDir || !fs.existsSync(path.join(platformDir, 'package.json'))
      ? `no npm/${suffix}/package.json`
      : !fs.existsSync(TSC)
        ? 'typescript is not installed in node_modules'
        : false

/**
 * Runs a command; fails the test with its output when it exits non-zero.
 * @param {string} cmd @param {string[]} args @param {string} cwd
 */
function run(cmd, args, cwd) {
  const env = { ...process.env }
  delete env.NAPI_RS_NATIVE_LIBRARY_PATH
  const r = spawnSync(cmd, args, { cwd, env, encoding: 'utf8', shell: process.platform === 'win32' && cmd === 'npm' })
  if (r.error) throw r.error
  assert.equal(r.status, 0, `${cmd} ${args.join(' ')} (in ${cwd}) exited ${r.status}\n${r.stdout}\n${r.stderr}`)
  return r.stdout
}

/** `npm pack` of dir into dest; returns the tarball path and the packed file list. */
function pack(/** @type {string} */ dir, /** @type {string} */ dest) {
  const out = run('npm', ['pack', '--json', '--pack-destination', dest], dir)
  const [info] = JSON.parse(out.slice(out.indexOf('[')))
  return { tarball: path.join(dest, info.filename), files: /** @type {string[]} */ (info.files.map((/** @type {{ path: string }} */ f) => f.path)) }
}

/** @type {{ project: string, mainFiles: string[], platformFiles: string[] }} */
let setup

before(() => {
  if (skip) return
  const dir = tempDir('package')
  const tarballs = path.join(dir, 'tarballs')
  fs.mkdirSync(tarballs)
  const main = pack(ROOT, tarballs)
  // The platform package, as `napi artifacts` fills it, in a temp copy.
  const platformCopy = path.join(dir, 'platform')
  fs.cpSync(/** @type {string} */ (platformDir), platformCopy, { recursive: true })
  fs.copyFileSync(/** @type {string} */ (localBinary), path.join(platformCopy, /** @type {string} */ (binaryName)))
  const platform = pack(platformCopy, tarballs)

  const project = path.join(dir, 'consumer')
  fs.mkdirSync(project)
  fs.writeFileSync(path.join(project, 'package.json'), JSON.stringify({ name: 'consumer', version: '1.0.0', private: true }, null, 2))
  run('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', '--no-package-lock', main.tarball, platform.tarball], project)
  setup = { project, mainFiles: main.files, platformFiles: platform.files }
})

test('the main tarball holds the JavaScript, types and CLI, and no binary; the platform tarball holds the binary', { skip }, () => {
  const { mainFiles, platformFiles } = setup
  // The command line is bin/pattern-cache.js and every module under cli/ (commands/<name>.js, lib/*.js).
  const cli = fs.readdirSync(path.join(ROOT, 'cli'), { recursive: true, withFileTypes: true })
    .filter((d) => d.isFile() && d.name.endsWith('.js'))
    .map((d) => path.relative(ROOT, path.join(d.parentPath ?? d.path, d.name)).split(path.sep).join('/'))
  assert.ok(cli.includes('cli/commands/export.js') && cli.includes('cli/lib/options.js'), cli.join(', '))
  // The entry's own modules: lib/*.js.
  const lib = fs.readdirSync(path.join(ROOT, 'lib')).filter((f) => f.endsWith('.js')).map((f) => `lib/${f}`)
  assert.ok(lib.includes('lib/args.js'), lib.join(', '))
  for (const f of ['package.json', 'README.md', 'index.js', 'index.mjs', 'index.d.ts', 'binding.js', 'binding.d.ts', 'bin/pattern-cache.js', ...cli, ...lib]) {
    assert.ok(mainFiles.includes(f), `${f} is packed: ${mainFiles.join(', ')}`)
  }
  for (const f of mainFiles) assert.doesNotMatch(f, /\.node$|^src\/|^__test__\/|^target\/|^benchmark\//, `${f} is not packed`)
  assert.deepEqual(platformFiles.sort(), [binaryName, 'README.md', 'package.json'].sort())
})

test('the installed types pass tsc --strict: the shared contract and a caller using every method', { skip }, () => {
  const { project } = setup
  // The contract type test, pointed at the installed package.
  fs.cpSync(path.join(__dirname, 'contract'), path.join(project, 'contract'), { recursive: true })
  const contractTest = fs.readFileSync(path.join(__dirname, 'contract.test-d.ts'), 'utf8')
  assert.match(contractTest, /from '\.\.\/index'/)
  fs.writeFileSync(path.join(project, 'contract.test-d.ts'), contractTest.replace("from '../index'", "from 'pattern-cache'"))
  fs.writeFileSync(
    path.join(project, 'uses.ts'),
    `import {
  PatternCache, PatternCacheError, ERROR_CODES,
  type TestPattern, type StoredPattern, type AgentConfigEntry, type CacheEvent, type CacheMetrics,
  type CacheBuildResult, type CacheInspection, type PatternCacheConfig, type PatternFilter,
  type CacheInvalidation, type ErrorCode, type Verdict, type MetricsPrometheusOptions,
} from 'pattern-cache'

export async function everything(): Promise<number> {
  const events: CacheEvent[] = []
  const config: PatternCacheConfig = {
    dbPath: 'p.db', cachePath: 'p.pcache', enabled: true, maxAge: 60_000, checkInterval: 0,
    backgroundRebuild: false, fallbackToSQLite: true, enableMetrics: true, onEvent: (e) => events.push(e),
  }
  await using cache = await PatternCache.open(config)
  const pattern: TestPattern = { id: 'a', type: 'unit', domain: 'd', content: 'c', embedding: new Float32Array(2), verdict: 'flaky', metadata: { k: 1 } }
  await cache.storePattern(pattern)
  await cache.storePatterns([{ ...pattern, id: 'b', embedding: [1, 2] }])
  const one: StoredPattern | null = await cache.loadPattern('a')
  const f32: Float32Array | undefined = one?.embedding
  const verdict: Verdict | undefined = one?.verdict
  const many: Array<StoredPattern | null> = await cache.loadPatterns(['a', 'b'])
  const filter: PatternFilter = { domain: 'd', type: 'unit', framework: 'unknown', limit: 1 }
  const lists: StoredPattern[][] = [
    await cache.loadPatternsByDomain('d'), await cache.loadPatternsByType('unit'),
    await cache.loadPatternsByFramework('unknown'), await cache.query(filter),
  ]
  const deleted: boolean = await cache.deletePattern('b')
  const agent: AgentConfigEntry = { agentId: 'g', type: 't', configJson: '{}', version: '1', updatedAt: 0 }
  await cache.storeAgentConfig(agent)
  const loaded: AgentConfigEntry | null = await cache.loadAgentConfig('g')
  const stale: CacheInvalidation = { trigger: 'manual', requiresRebuild: false, timestamp: 1, metadata: {} }
  cache.markStale(stale)
  const built: CacheBuildResult = await cache.rebuildCache()
  const metrics: CacheMetrics = cache.getMetrics()
  const tier: 'cache' | 'sqlite' = metrics.tier
  const options: MetricsPrometheusOptions = { labels: { worker: '1' } }
  const text: string = cache.metricsPrometheus(options)
  const inspection: CacheInspection = await cache.inspect()
  const state: 'valid' | 'missing' | 'invalid' = inspection.fileState
  const verified: number = await cache.verify()
  const closed: boolean = cache.closed
  await cache.shutdown()
  const code: ErrorCode = ERROR_CODES[0]
  const err = new PatternCacheError(code, 'message')
  // @ts-expect-error: a verdict outside the union is a type error
  const badVerdict: TestPattern = { ...pattern, verdict: 'maybe' }
  // @ts-expect-error: an embedding must be numbers
  const badEmbedding: TestPattern = { ...pattern, embedding: 'x' }
  // @ts-expect-error: the constructor takes no arguments
  new PatternCache(1)
  void [f32, verdict, many, lists, deleted, loaded, built, tier, text, state, closed, err, badVerdict, badEmbedding]
  return verified + events.length
}
`,
  )
  fs.writeFileSync(
    path.join(project, 'esm.mts'),
    `import { PatternCache, type StoredPattern } from 'pattern-cache'
import pc from 'pattern-cache'
export const open: typeof PatternCache.open = pc.PatternCache.open
export type Returned = StoredPattern
`,
  )
  fs.writeFileSync(
    path.join(project, 'tsconfig.json'),
    JSON.stringify({
      compilerOptions: { strict: true, noEmit: true, target: 'ES2022', module: 'NodeNext', moduleResolution: 'NodeNext', lib: ['ES2022', 'ESNext.Disposable'], types: [], skipLibCheck: false },
      include: ['*.ts', '*.mts'],
    }),
  )
  run(process.execPath, [TSC, '-p', '.', '--strict', '--noEmit'], project)
})

/** What a consumer script prints: where the binary came from, and a round trip. */
const PROBE = (/** @type {string} */ importLine) => `${importLine}
const dir = require('node:fs').mkdtempSync(require('node:path').join(require('node:os').tmpdir(), 'pattern-cache-consumer-'))
;(async () => {
  const cache = await PatternCache.open({ dbPath: dir + '/p.db' })
  await cache.storePattern({ id: 'x', type: 'unit', domain: 'auth', content: 'c', embedding: [0.5, 1] })
  const p = await cache.loadPattern('x')
  const built = await cache.rebuildCache()
  await cache.shutdown()
  require('node:fs').rmSync(dir, { recursive: true, force: true })
  const binaries = Object.keys(require.cache).filter((k) => k.endsWith('.node'))
  console.log(JSON.stringify({ id: p.id, embedding: Array.from(p.embedding), f32: p.embedding instanceof Float32Array, built: built.success, codes: ERROR_CODES.length, binaries }))
})()
`

/** @param {string} stdout */
function checkProbe(stdout) {
  const out = JSON.parse(stdout)
  assert.deepEqual({ ...out, binaries: undefined }, { id: 'x', embedding: [0.5, 1], f32: true, built: true, codes: require(path.join(ROOT, 'binding.js')).errorCodes().length, binaries: undefined })
  assert.equal(out.binaries.length, 1, out.binaries.join())
  assert.equal(path.relative(fs.realpathSync(setup.project), fs.realpathSync(out.binaries[0])), path.join('node_modules', `pattern-cache-${suffix}`, /** @type {string} */ (binaryName)), 'loaded from the platform package')
}

test('CommonJS require works and loads the binary from the installed platform package', { skip }, () => {
  const file = path.join(setup.project, 'cjs.js')
  fs.writeFileSync(file, PROBE("const { PatternCache, ERROR_CODES } = require('pattern-cache')"))
  checkProbe(run(process.execPath, [file], setup.project))
})

test('ESM import works (named and default exports) and loads the same binary', { skip }, () => {
  const file = path.join(setup.project, 'esm.mjs')
  fs.writeFileSync(
    file,
    PROBE(`import { createRequire } from 'node:module'
import def, { PatternCache, ERROR_CODES } from 'pattern-cache'
const require = createRequire(import.meta.url)
if (def.PatternCache !== PatternCache) throw new Error('default and named exports differ')`),
  )
  checkProbe(run(process.execPath, [file], setup.project))
})

test('the installed pattern-cache command runs', { skip }, () => {
  const bin = path.join(setup.project, 'node_modules', '.bin', process.platform === 'win32' ? 'pattern-cache.cmd' : 'pattern-cache')
  assert.ok(fs.existsSync(bin), 'npm linked the bin')
  const script = path.join(setup.project, 'node_modules', 'pattern-cache', 'bin', 'pattern-cache.js')
  assert.equal(JSON.parse(run(process.execPath, [script, '--version', '--json'], setup.project)).version, pkg.version)
  const db = path.join(setup.project, 'cli.db')
  const input = path.join(setup.project, 'in.jsonl')
  fs.writeFileSync(input, JSON.stringify({ id: 'a', type: 'unit', domain: 'd', content: 'c', embedding: [1, 2] }) + '\n')
  run(process.execPath, [script, 'import', input, '--db', db], setup.project)
  run(process.execPath, [script, 'rebuild', '--db', db], setup.project)
  const status = JSON.parse(run(process.execPath, [script, 'status', '--db', db, '--json'], setup.project))
  assert.equal(status.tier, 'cache')
  assert.equal(status.database.patternCount, 1)
})

test('in the installed project, a suite awaiting the cache passes under jest (4 workers), vitest forks and vitest threads', { skip }, () => {
  const suite = path.join(setup.project, 'suite')
  fs.cpSync(path.join(__dirname, 'runners'), suite, {
    recursive: true,
    filter: (src) => !src.includes('node_modules'),
  })
  const bin = (/** @type {string} */ name) => path.join(ROOT, 'node_modules', '.bin', name)
  const runners = /** @type {const} */ ([
    ['jest', ['--rootDir', suite, '--testMatch', '**/*.spec.js', '--maxWorkers=4', '--ci']],
    ['vitest', ['run', '--root', suite, '--pool', 'forks']],
    ['vitest', ['run', '--root', suite, '--pool', 'threads']],
  ])
  for (const [runner, args] of runners) {
    const r = spawnSync(process.execPath, [bin(runner), ...args], {
      cwd: setup.project,
      // The suite requires the installed package by name, from the project.
      env: { ...process.env, PC_PACKAGE: 'pattern-cache', PC_RUNNER_DB: path.join(setup.project, `${runner}-${args.join('')}.db`), NO_COLOR: '1', CI: 'true' },
      encoding: 'utf8',
      timeout: 180_000,
    })
    // eslint-disable-next-line no-control-regex
    const output = `${r.stdout}\n${r.stderr}`.replace(/\x1b\[[0-9;]*m/g, '')
    assert.equal(r.status, 0, `${runner} ${args.join(' ')}\n${output}`)
    assert.match(output, /Tests:?\s+12 passed/)
    assert.doesNotMatch(output, /did not exit|failed to exit gracefully|open handle|close timed out|something prevents/i)
  }
})

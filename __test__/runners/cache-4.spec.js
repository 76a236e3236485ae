// A test file as a user of pattern-cache writes one; run by jest and vitest
// (see __test__/runners.test.js). Each file is its own worker.
const path = require('node:path')
// In the packaging test this suite runs in a project that installed the package.
const { PatternCache } = require(process.env.PC_PACKAGE || '../..')

const dbPath = process.env.PC_RUNNER_DB
const worker = 'file-4'

describe('pattern-cache inside a test runner worker (4)', () => {
  let cache
  beforeAll(async () => {
    cache = await PatternCache.open({ dbPath, checkInterval: 0 })
  })
  afterAll(async () => {
    // File 4 leaves shutdown to process/worker exit: that must not hang the runner.
    if ('4' !== '4') await cache.shutdown()
  })

  it('stores and reads back its own patterns', async () => {
    const patterns = Array.from({ length: 200 }, (_, i) => ({
      id: `${worker}-${String(i).padStart(4, '0')}`,
      type: i % 2 ? 'unit' : 'e2e',
      domain: worker,
      content: `it('${i}')`,
      embedding: Float32Array.from({ length: 16 }, (_, d) => i + d),
    }))
    await cache.storePatterns(patterns)
    const mine = await cache.loadPatternsByDomain(worker)
    expect(mine.map((p) => p.id)).toEqual(patterns.map((p) => p.id))
    expect(mine[7].embedding).toBeInstanceOf(Float32Array)
    expect(Array.from(mine[7].embedding)).toEqual(Array.from(patterns[7].embedding))
  })

  it('queries with an intersection of indexes', async () => {
    const e2e = await cache.query({ domain: worker, type: 'e2e', limit: 10 })
    expect(e2e).toHaveLength(10)
    expect(e2e.every((p) => p.type === 'e2e' && p.domain === worker)).toBe(true)
  })

  it('rebuilds the shared cache file while other workers use it', async () => {
    const built = await cache.rebuildCache()
    expect(built.success).toBe(true)
    expect((await cache.loadPattern(`${worker}-0001`)).domain).toBe(worker)
  })
})

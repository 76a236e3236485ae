// The suite each cache-N.spec.js file runs, as a user of pattern-cache writes
// one; run by jest and vitest (see __test__/runners.test.js and
// __test__/package.test.js). Each spec file is its own worker.
// In the packaging test it runs in a project that installed the package.
const { PatternCache } = require(process.env.PC_PACKAGE || '../..')

/** Defines the suite for spec file `n` (its own ids and domain). */
module.exports = function defineSuite(n) {
  const dbPath = process.env.PC_RUNNER_DB
  const worker = `file-${n}`

  describe(`pattern-cache inside a test runner worker (${n})`, () => {
    let cache
    beforeAll(async () => {
      cache = await PatternCache.open({ dbPath, checkInterval: 0 })
    })
    afterAll(async () => {
      // File 4 leaves shutdown to process/worker exit: that must not hang the runner.
      if (n !== 4) await cache.shutdown()
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
}

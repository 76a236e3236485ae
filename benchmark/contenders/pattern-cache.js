'use strict'
// pattern-cache, the package under test: tier 1 (the memory-mapped cache file).
//
// Every contender module has the same small interface:
//   name, title, description          how it is shown in the tables and RESULTS.md
//   prepare(ds)                       builds its files from ds.dbPath (not timed)
//   open(ds) -> store                 "open to ready": after it resolves, reads are served
//   rebuilder(ds) -> { rebuild, close }   optional: rebuilding its cache file from SQLite
// and a store is { get(id), byDomain(domain), byFramework(framework), close() }
// (byDomain, byFramework optional); get and the lists may return a value or a
// promise: the benchmark awaits every call.

const { PatternCache } = require('../..')

const cachePath = (ds) => ds.file('pattern-cache.pcache')

async function openCache(ds, options = {}) {
  return PatternCache.open({ dbPath: ds.dbPath, cachePath: cachePath(ds), ...options })
}

module.exports = {
  name: 'pattern-cache',
  title: 'pattern-cache',
  description:
    '`PatternCache.open({ dbPath, cachePath })`, `await cache.loadPattern(id)`, `loadPatternsByDomain`, `loadPatternsByFramework`, `rebuildCache()`: tier 1, the memory-mapped cache file.',

  // Build a fresh cache file (fresh, so no TTL rebuild starts while we measure).
  async prepare(ds) {
    const cache = await openCache(ds)
    const result = await cache.rebuildCache()
    await cache.shutdown()
    if (!result.success) throw new Error(`pattern-cache rebuildCache failed: ${result.error}`)
  },

  async open(ds) {
    const cache = await openCache(ds)
    return {
      cache,
      get: (id) => cache.loadPattern(id),
      byDomain: (domain) => cache.loadPatternsByDomain(domain),
      byFramework: (framework) => cache.loadPatternsByFramework(framework),
      close: () => cache.shutdown(),
    }
  },

  async rebuilder(ds) {
    const cache = await openCache(ds)
    return {
      async rebuild() {
        const result = await cache.rebuildCache()
        if (!result.success) throw new Error(`pattern-cache rebuildCache failed: ${result.error}`)
        if (result.patternCount !== ds.count) throw new Error(`rebuilt ${result.patternCount} patterns, expected ${ds.count}`)
      },
      close: () => cache.shutdown(),
    }
  },
}

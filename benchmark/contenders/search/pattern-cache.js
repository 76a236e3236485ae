'use strict'
// pattern-cache's searchSimilar on tier 1 (the memory-mapped cache file's
// vectors section): exact, filter first, one thread. The cache file is built
// fresh by prepare; open() resolves after a real PatternCache.open().

const { PatternCache } = require('../../..')
const { rowOf } = require('../../lib/search-data')

const cachePath = (ds) => ds.file('pattern-cache.pcache')
const openCache = (ds) => PatternCache.open({ dbPath: ds.dbPath, cachePath: cachePath(ds) })

module.exports = {
  name: 'pattern-cache',
  title: 'pattern-cache searchSimilar',
  description:
    '`await cache.searchSimilar(query, { k: 10 })` (+ `domain`, or `metric: \'dot\' | \'euclidean\'`) on tier 1, the memory-mapped cache file; each result is `{ pattern, score }` with the whole pattern decoded (the other contenders return row numbers).',
  exact: true,
  openCache,

  // A fresh cache file (so no TTL rebuild starts while measuring).
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
      queries: {
        cosine: (q) => cache.searchSimilar(q.vector, { k: 10 }),
        cosineFiltered: (q) => cache.searchSimilar(q.vector, { k: 10, domain: q.domain }),
        dot: (q) => cache.searchSimilar(q.vector, { k: 10, metric: 'dot' }),
        euclidean: (q) => cache.searchSimilar(q.vector, { k: 10, metric: 'euclidean' }),
      },
      rows: (raw) => raw.map((r) => rowOf(r.pattern.id)),
      scores: (raw) => raw.map((r) => r.score),
      close: () => cache.shutdown(),
    }
  },
}

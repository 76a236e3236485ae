'use strict'
// pattern-cache with `enabled: false`: every read is served by its tier 2 (SQLite).

const { PatternCache } = require('../..')

module.exports = {
  name: 'pattern-cache-tier2',
  title: 'pattern-cache (tier 2, enabled: false)',
  description:
    'the same with `enabled: false`: every read from SQLite (tier 2).',

  async prepare() {},

  async open(ds) {
    const cache = await PatternCache.open({ dbPath: ds.dbPath, enabled: false })
    return {
      cache,
      get: (id) => cache.loadPattern(id),
      byDomain: (domain) => cache.loadPatternsByDomain(domain),
      byFramework: (framework) => cache.loadPatternsByFramework(framework),
      close: () => cache.shutdown(),
    }
  },
}

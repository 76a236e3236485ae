'use strict'
// usearch's exactSearch (exact, brute force, SIMD), one thread. It has no
// filter: the filtered query searches that domain's vectors, copied into their
// own array per domain at load (not timed), keys mapped back to rows.

const { exactSearch, MetricKind } = require('usearch')

module.exports = {
  name: 'usearch-exact',
  title: 'usearch exactSearch (1 thread)',
  description:
    'usearch `exactSearch(vectors, query, dim, 10, MetricKind.Cos, 1)` over the one Float32Array of all vectors, one thread; it has no filter, so the filtered query searches a per-domain copy of that domain\'s vectors made at load.',
  exact: true,

  async open(ds, data) {
    const { dim, vectors, domainRows } = data
    const byDomain = {}
    for (const [domain, rows] of Object.entries(domainRows)) {
      const sub = new Float32Array(rows.length * dim)
      rows.forEach((r, j) => sub.set(data.rows[r], j * dim))
      byDomain[domain] = { sub, rows }
    }
    return {
      queries: {
        cosine: (q) => exactSearch(vectors, q.vector, dim, 10, MetricKind.Cos, 1),
        cosineFiltered: (q) => {
          const { sub, rows } = byDomain[q.domain]
          const m = exactSearch(sub, q.vector, dim, 10, MetricKind.Cos, 1)
          return { keys: Array.from(m.keys, (key) => rows[Number(key)]), distances: m.distances }
        },
      },
      rows: (raw) => Array.from(raw.keys, Number),
      scores: (raw) => Array.from(raw.distances, (d) => 1 - d),
      close: async () => {},
    }
  },
}

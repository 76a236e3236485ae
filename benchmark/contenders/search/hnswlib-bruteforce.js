'use strict'
// hnswlib-node's BruteforceSearch (exact): every vector added with addPoint
// (its API takes number[]), space 'cosine'; the domain filter is its
// searchKnn filter callback (called from C++ for each candidate at least as
// close as the worst one kept). Compiled by node-gyp on install with the
// default flags. Its bundled bruteforce.h can return fewer than k under a
// filter: once it holds any result it skips candidates farther than its worst,
// even before it holds k (reported upstream in nmslib/hnswlib pull requests #514 and #597).

const { BruteforceSearch } = require('hnswlib-node')
const { performance } = require('node:perf_hooks')

module.exports = {
  name: 'hnswlib-bruteforce',
  title: 'hnswlib-node BruteforceSearch',
  description:
    'hnswlib-node `BruteforceSearch(\'cosine\', dim)` (exact), filled with `addPoint(number[], row)`; `searchKnn(query, 10)`, the domain filter as its `searchKnn` filter callback (a JS call per candidate closer than the worst kept). Built from source by node-gyp at install with its default flags. Under a filter its bundled bruteforce.h can return fewer than k (it skips candidates farther than its worst result before it holds k: reported upstream in nmslib/hnswlib pull requests #514 and #597).',
  exact: true,

  async open(ds, data) {
    const started = performance.now()
    const index = new BruteforceSearch('cosine', data.dim)
    index.initIndex(data.count)
    for (let i = 0; i < data.count; i++) index.addPoint(Array.from(data.rows[i]), i)
    const buildMs = performance.now() - started
    const { domainOf, domains } = data
    return {
      build: { ms: buildMs, what: `addPoint x ${data.count.toLocaleString('en-US')} (number[] each), one thread` },
      queries: {
        cosine: (q) => index.searchKnn(q.array, 10),
        cosineFiltered: (q) => {
          const want = domains.indexOf(q.domain)
          return index.searchKnn(q.array, 10, (label) => domainOf[label] === want)
        },
      },
      rows: (raw) => raw.neighbors,
      scores: (raw) => raw.distances.map((d) => 1 - d),
      close: async () => {},
    }
  },
}

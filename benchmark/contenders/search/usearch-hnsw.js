'use strict'
// usearch's HNSW Index (approximate): its defaults for connectivity and
// expansion, built with as many threads as the machine has; searched with one
// thread. It has no filter in its JavaScript API: the filtered query asks for
// k / selectivity = 100 neighbours and keeps those of the domain, so it may
// return fewer than k.

const os = require('node:os')
const { performance } = require('node:perf_hooks')
const { Index, MetricKind, ScalarKind } = require('usearch')

// 0: usearch's own defaults (connectivity 16, expansion_add 128, expansion_search 64).
// Lowered with BENCH_USEARCH_CONNECTIVITY if the build is too slow.
const CONNECTIVITY = Number(process.env.BENCH_USEARCH_CONNECTIVITY || 0)
const OVERFETCH = 10

module.exports = {
  name: 'usearch-hnsw',
  title: 'usearch HNSW Index (approximate)',
  description:
    `usearch \`Index({ metric: Cos, quantization: F32${CONNECTIVITY ? `, connectivity: ${CONNECTIVITY}` : ''} })\` (approximate; otherwise its default connectivity and expansion), built with \`add(keys, vectors, ${os.availableParallelism()})\` (every core), searched with \`search(query, 10, 1)\`; no filter in its JS API, so the filtered query is \`search(query, ${OVERFETCH * 10}, 1)\` keeping that domain's (may return fewer than k).`,
  exact: false,

  async open(ds, data) {
    const threads = os.availableParallelism()
    const index = new Index({ dimensions: data.dim, metric: MetricKind.Cos, quantization: ScalarKind.F32, connectivity: CONNECTIVITY })
    const keys = new BigUint64Array(data.count)
    for (let i = 0; i < data.count; i++) keys[i] = BigInt(i)
    const started = performance.now()
    index.add(keys, data.vectors, threads)
    const buildMs = performance.now() - started
    const { domainOf, domains } = data
    return {
      build: { ms: buildMs, what: `add() of ${data.count.toLocaleString('en-US')}, ${threads} threads, connectivity ${index.connectivity()}` },
      queries: {
        cosine: (q) => index.search(q.vector, 10, 1),
        cosineFiltered: (q) => {
          const want = domains.indexOf(q.domain)
          const m = index.search(q.vector, 10 * OVERFETCH, 1)
          const keys = []
          const distances = []
          for (let j = 0; j < m.keys.length && keys.length < 10; j++) {
            const row = Number(m.keys[j])
            if (domainOf[row] === want) {
              keys.push(row)
              distances.push(m.distances[j])
            }
          }
          return { keys, distances }
        },
      },
      rows: (raw) => Array.from(raw.keys, Number),
      scores: (raw) => Array.from(raw.distances, (d) => 1 - d),
      close: async () => {},
    }
  },
}

'use strict'
// A plain JavaScript loop: what a store without a vector index does. Every
// pattern's embedding is a Float32Array in memory (views over one buffer, as
// loaded patterns would hold them); cosine = dot / (|q| |v|) with the norms
// computed once at load; a bounded top-k (insertion into k slots), ties by id.
// The domain filter walks that domain's rows only (a prebuilt domain index).

const { TopK } = require('../../lib/search-data')

function search(rows, norms, q, candidates, k) {
  const dim = q.length
  let qq = 0
  for (let d = 0; d < dim; d++) qq += q[d] * q[d]
  const qn = Math.sqrt(qq)
  const top = new TopK(k)
  const n = candidates ? candidates.length : rows.length
  for (let j = 0; j < n; j++) {
    const i = candidates ? candidates[j] : j
    const v = rows[i]
    let s0 = 0
    let s1 = 0
    let s2 = 0
    let s3 = 0
    for (let d = 0; d < dim; d += 4) {
      s0 += v[d] * q[d]
      s1 += v[d + 1] * q[d + 1]
      s2 += v[d + 2] * q[d + 2]
      s3 += v[d + 3] * q[d + 3]
    }
    const norm = norms[i]
    top.push(i, norm === 0 ? 0 : (s0 + s1 + s2 + s3) / (norm * qn))
  }
  return top.result()
}

module.exports = {
  name: 'js-loop',
  title: 'JS loop over Float32Arrays',
  description:
    'a plain JavaScript loop over every pattern\'s Float32Array embedding (4 accumulators), cosine with norms precomputed at load, bounded top-k insertion; the filter walks a prebuilt list of the domain\'s rows. What a store without a vector index does.',
  exact: true,

  async open(ds, data) {
    const { rows, dim } = data
    const norms = new Float64Array(rows.length)
    for (let i = 0; i < rows.length; i++) {
      let s = 0
      for (let d = 0; d < dim; d++) s += rows[i][d] * rows[i][d]
      norms[i] = Math.sqrt(s)
    }
    return {
      queries: {
        cosine: (q) => search(rows, norms, q.vector, null, 10),
        cosineFiltered: (q) => search(rows, norms, q.vector, data.domainRows[q.domain], 10),
      },
      rows: (raw) => raw.rows,
      close: async () => {},
    }
  },
}

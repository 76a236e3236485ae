'use strict'
// Patterns as the addon hands them over: it calls these builders (one call
// is much cheaper than setting properties one by one through N-API).

/** The 13 fields after the embedding, in the order the addon passes them. */
function fromFields(embedding, id, type, domain, framework, content, coverage, flakinessScore, verdict, createdAt, lastUsed, usageCount, successCount, metadataJson) {
  const p = { id, type, domain, framework, content, embedding, verdict, createdAt, usageCount, successCount }
  if (coverage !== undefined) p.coverage = coverage
  if (flakinessScore !== undefined) p.flakinessScore = flakinessScore
  if (lastUsed !== undefined) p.lastUsed = lastUsed
  if (metadataJson !== undefined) p.metadata = JSON.parse(metadataJson)
  return p
}

/**
 * Builds a returned pattern from its fields. The embedding comes as an
 * ArrayBuffer; viewing it here makes it a Float32Array of this module's
 * realm, which is the caller's even inside jest's contexts.
 */
function makePattern(buffer, ...fields) {
  return fromFields(new Float32Array(buffer), ...fields)
}

/** Many patterns at once: 13 fields each (as makePattern, less the buffer); embeddings `dim` floats each in `buffer`. */
function makePatterns(out, buffer, dim, ...f) {
  for (let i = 0, k = 0; k < f.length; i++, k += 13) {
    const embedding = new Float32Array(buffer, i * dim * 4, dim)
    out.push(fromFields(embedding, f[k], f[k + 1], f[k + 2], f[k + 3], f[k + 4], f[k + 5], f[k + 6], f[k + 7], f[k + 8], f[k + 9], f[k + 10], f[k + 11], f[k + 12]))
  }
}

/** The binding's `[patterns, scores]` as `{ pattern, score }` results. */
function pairUp([patterns, scores]) {
  const results = new Array(patterns.length)
  for (let i = 0; i < patterns.length; i++) results[i] = { pattern: patterns[i], score: scores[i] }
  return results
}

module.exports = { makePattern, makePatterns, pairUp }

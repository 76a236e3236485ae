'use strict'
// The line format of export and import: one JSON object per line, its kind
// first. {"kind":"pattern", ...every field of the pattern, the embedding as a
// number array} or {"kind":"agentConfig", agentId, type, configJson, version,
// updatedAt}. A line without "kind" is a pattern (files written before
// agent configs were exported); any other kind is a bad line.

const KINDS = Object.freeze(['pattern', 'agentConfig'])

/**
 * The record export writes for a stored pattern or an agent config.
 * @param {'pattern' | 'agentConfig'} kind @param {any} value
 */
function record(kind, value) {
  return kind === 'pattern' ? { kind, ...value, embedding: Array.from(value.embedding) } : { kind, ...value }
}

/**
 * A pattern's export line (without the newline): the same JSON as
 * `JSON.stringify(record('pattern', p))` but for the key order (the
 * embedding last), written without making a number array of the embedding:
 * at 768 dimensions that array is most of the garbage an export makes.
 * (A finite number's JSON is its String(), which join uses.)
 * @param {any} p a stored pattern
 */
function patternLine(p) {
  const { embedding, ...rest } = p
  const head = JSON.stringify({ kind: 'pattern', ...rest, embedding: 0 })
  // Joined straight from the Float32Array (a finite number's JSON is its
  // String()): slower than stringifying an Array.from copy, but the copy's
  // heap numbers grew an export of 100,000 x 768 by 72 MiB of RSS, this by 56.
  return `${head.slice(0, -2)}[${Array.prototype.join.call(embedding, ',')}]}`
}

/**
 * What an import line holds: { kind, value } (value without "kind"), or
 * { problem } when its kind is unknown. The line is a JSON object already.
 * @param {Record<string, unknown>} object
 * @returns {{ kind: 'pattern' | 'agentConfig', value: Record<string, unknown> } | { problem: string }}
 */
function parseRecord(object) {
  if (!Object.hasOwn(object, 'kind')) return { kind: 'pattern', value: object }
  const { kind, ...value } = object
  if (KINDS.includes(kind)) return { kind, value }
  return { problem: `unknown kind ${JSON.stringify(kind)} (the kind of a line is ${KINDS.map((k) => JSON.stringify(k)).join(' or ')}; a line without one is a pattern)` }
}

module.exports = { KINDS, record, patternLine, parseRecord }

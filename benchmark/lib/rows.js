'use strict'
// Reading the benchmark's SQLite database from JavaScript (better-sqlite3):
// the patterns table's columns, and rows turned into records and patterns.

const COLUMNS =
  'id, type, domain, framework, content, embedding, coverage, flakiness_score, verdict, ' +
  'created_at, last_used, usage_count, success_count, metadata'

const SELECT_ALL = `SELECT ${COLUMNS} FROM patterns ORDER BY id`
const SELECT_ONE = `SELECT ${COLUMNS} FROM patterns WHERE id = ?`
const SELECT_DOMAIN = `SELECT ${COLUMNS} FROM patterns WHERE domain = ? ORDER BY id`
const SELECT_FRAMEWORK = `SELECT ${COLUMNS} FROM patterns WHERE framework = ? ORDER BY id`

/** A Float32Array over little-endian f32 bytes: a view when aligned, else a copy. */
function float32(bytes) {
  if (bytes.byteOffset % 4 === 0) return new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4)
  return new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength))
}

/** A row as a record: camelCase, metadata parsed, embedding still the row's bytes. */
function rowToRecord(row) {
  return {
    id: row.id,
    type: row.type,
    domain: row.domain,
    framework: row.framework,
    content: row.content,
    embedding: row.embedding,
    coverage: row.coverage ?? undefined,
    flakinessScore: row.flakiness_score ?? undefined,
    verdict: row.verdict,
    createdAt: row.created_at,
    lastUsed: row.last_used ?? undefined,
    usageCount: row.usage_count,
    successCount: row.success_count,
    metadata: row.metadata === null ? undefined : JSON.parse(row.metadata),
  }
}

/** A row as a pattern, the way pattern-cache returns one: embedding as Float32Array. */
function rowToPattern(row) {
  const p = rowToRecord(row)
  p.embedding = float32(row.embedding)
  return p
}

/** { domain: { name: [ids] }, type: {...}, framework: {...} } of records in id order. */
function buildIndexes(records) {
  const indexes = { domain: {}, type: {}, framework: {} }
  for (const r of records) {
    for (const kind of ['domain', 'type', 'framework']) {
      const names = indexes[kind]
      ;(names[r[kind]] ||= []).push(r.id)
    }
  }
  return indexes
}

module.exports = { COLUMNS, SELECT_ALL, SELECT_ONE, SELECT_DOMAIN, SELECT_FRAMEWORK, float32, rowToRecord, rowToPattern, buildIndexes }

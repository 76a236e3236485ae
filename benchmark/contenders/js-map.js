'use strict'
// The floor: a plain Map of decoded patterns already in memory (embedding as
// Float32Array). A hit returns a fresh object with its own Float32Array, as
// every other contender does. Filled from SQLite; its open is not a measure.

const Database = require('better-sqlite3')
const { SELECT_ALL, rowToPattern } = require('../lib/rows')

const copy = (p) => ({ ...p, embedding: new Float32Array(p.embedding) })

module.exports = {
  name: 'js-map',
  title: 'JS Map (floor)',
  description:
    'the floor: a Map of decoded patterns (embedding Float32Array) already in memory; a hit returns `{ ...p, embedding: new Float32Array(p.embedding) }`.',

  async prepare() {},

  async open(ds) {
    const db = new Database(ds.dbPath, { readonly: true, fileMustExist: true })
    const byId = new Map()
    const byDomain = new Map()
    for (const row of db.prepare(SELECT_ALL).iterate()) {
      const p = rowToPattern(row)
      p.embedding = new Float32Array(p.embedding) // its own buffer
      byId.set(p.id, p)
      if (!byDomain.has(p.domain)) byDomain.set(p.domain, [])
      byDomain.get(p.domain).push(p)
    }
    db.close()
    return {
      get(id) {
        const p = byId.get(id)
        return p ? copy(p) : null
      },
      byDomain: (domain) => (byDomain.get(domain) || []).map(copy),
      close: async () => {},
    }
  },
}

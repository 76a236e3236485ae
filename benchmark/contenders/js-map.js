'use strict'
// The floor: a plain Map of decoded patterns already in memory (embedding as
// Float32Array). A hit is Map.get + an object spread + embedding.slice() +
// structuredClone(metadata): a fresh object that shares nothing with the store
// or with another answer, as pattern-cache's are. Lists are the ids of an
// index, each through the same copy. Filled from SQLite; its open is not a
// measure. `getShared` (the floor before: metadata not cloned, so every answer
// shares the stored metadata object) is measured alongside, without a target.

const Database = require('better-sqlite3')
const { SELECT_ALL, rowToPattern } = require('../lib/rows')

const copy = (p) => ({ ...p, embedding: p.embedding.slice(), metadata: structuredClone(p.metadata) })
const shallow = (p) => ({ ...p, embedding: new Float32Array(p.embedding) })

module.exports = {
  name: 'js-map',
  title: 'JS Map (floor)',
  description:
    'the floor: a Map of decoded patterns (embedding Float32Array) already in memory; a hit returns `{ ...p, embedding: p.embedding.slice(), metadata: structuredClone(p.metadata) }` (shares nothing with the store, as pattern-cache\'s answers); a list maps the ids of an index through `Map.get` and the same copy.',

  async prepare() {},

  async open(ds) {
    const db = new Database(ds.dbPath, { readonly: true, fileMustExist: true })
    const byId = new Map()
    const byDomain = new Map() // name -> ids, in id order
    const byFramework = new Map()
    const index = (map, key, id) => {
      if (!map.has(key)) map.set(key, [])
      map.get(key).push(id)
    }
    for (const row of db.prepare(SELECT_ALL).iterate()) {
      const p = rowToPattern(row)
      p.embedding = new Float32Array(p.embedding) // its own buffer
      byId.set(p.id, p)
      index(byDomain, p.domain, p.id)
      index(byFramework, p.framework, p.id)
    }
    db.close()
    const list = (ids) => (ids || []).map((id) => copy(byId.get(id)))
    return {
      get(id) {
        const p = byId.get(id)
        return p ? copy(p) : null
      },
      getShared(id) {
        const p = byId.get(id)
        return p ? shallow(p) : null
      },
      byDomain: (domain) => list(byDomain.get(domain)),
      byFramework: (framework) => list(byFramework.get(framework)),
      close: async () => {},
    }
  },
}

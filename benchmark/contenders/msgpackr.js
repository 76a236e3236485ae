'use strict'
// msgpackr (+ Map): the same kind of document as the reference's (patterns and
// indexes, embedding as bytes), packed with msgpackr; open = read the whole
// file, unpack, fill a Map. No checksum. A hit returns a fresh pattern with
// its own Float32Array.

const fs = require('node:fs')
const Database = require('better-sqlite3')
const { pack, unpack } = require('msgpackr')
const { SELECT_ALL, rowToRecord, buildIndexes } = require('../lib/rows')

const filePath = (ds) => ds.file('msgpackr.msgpack')

function toPattern(record) {
  const e = record.embedding
  return { ...record, embedding: new Float32Array(e.buffer.slice(e.byteOffset, e.byteOffset + e.byteLength)) }
}

module.exports = {
  name: 'msgpackr',
  title: 'msgpackr (+ Map)',
  description:
    'open = readFile + msgpackr `unpack` of the same kind of document (no checksum) into a Map; a hit returns a fresh pattern with its own Float32Array.',

  async prepare(ds) {
    const db = new Database(ds.dbPath, { readonly: true, fileMustExist: true })
    const patterns = db.prepare(SELECT_ALL).all().map(rowToRecord)
    db.close()
    const temp = `${filePath(ds)}.tmp-${process.pid}`
    fs.writeFileSync(temp, pack({ version: 1, generatedAt: Date.now(), patterns, indexes: buildIndexes(patterns) }))
    fs.renameSync(temp, filePath(ds))
  },

  async open(ds) {
    const doc = unpack(await fs.promises.readFile(filePath(ds)))
    const byId = new Map()
    for (const record of doc.patterns) byId.set(record.id, record)
    const indexes = doc.indexes
    return {
      get(id) {
        const record = byId.get(id)
        return record ? toPattern(record) : null
      },
      byDomain: (domain) => (indexes.domain[domain] || []).map((id) => toPattern(byId.get(id))),
      byFramework: (framework) => (indexes.framework[framework] || []).map((id) => toPattern(byId.get(id))),
      close: async () => {},
    }
  },
}

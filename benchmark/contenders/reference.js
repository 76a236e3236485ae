'use strict'
// The reference: the TypeScript design this package replaces, in plain JS.
//
// Cache file: a 48-byte header (magic, format version, body length, SHA-256 of
// the body) and a MessagePack body { version, generatedAt, patterns: [...],
// indexes: { domain: { name: [ids] }, type: {...}, framework: {...} } },
// written from SQLite (better-sqlite3) with @msgpack/msgpack, hashed with
// node:crypto, atomically (temp file, fsync, rename), all on the JS thread.
// Open: read the whole file, check its SHA-256, decode it into a Map of
// records and the index objects. A hit turns the record into a pattern with
// `embedding` as number[], as the old code did. Misses and writes go to SQLite.

const fs = require('node:fs')
const crypto = require('node:crypto')
const Database = require('better-sqlite3')
const { encode, decode } = require('@msgpack/msgpack')
const { SELECT_ALL, SELECT_ONE, float32, rowToRecord, buildIndexes } = require('../lib/rows')

const MAGIC = Buffer.from('PCREF001')
const HEADER_SIZE = 48 // magic 8 | version u32 | body length u32 | SHA-256 32
const FORMAT_VERSION = 1

const cachePath = (ds) => ds.file('reference.msgpack')

/** Writes the cache file from the database: select, encode, hash, temp + fsync + rename. */
function writeCacheFile(db, path) {
  const patterns = db.prepare(SELECT_ALL).all().map(rowToRecord)
  const indexes = buildIndexes(patterns)
  const body = encode({ version: FORMAT_VERSION, generatedAt: Date.now(), patterns, indexes })
  const header = Buffer.alloc(HEADER_SIZE)
  MAGIC.copy(header, 0)
  header.writeUInt32LE(FORMAT_VERSION, 8)
  header.writeUInt32LE(body.byteLength, 12)
  crypto.createHash('sha256').update(body).digest().copy(header, 16)
  const temp = `${path}.tmp-${process.pid}`
  const fd = fs.openSync(temp, 'w')
  try {
    fs.writeSync(fd, header)
    fs.writeSync(fd, body)
    fs.fsyncSync(fd)
  } finally {
    fs.closeSync(fd)
  }
  fs.renameSync(temp, path)
  return patterns.length
}

/** The pattern the old code returned for a record: embedding as number[]. */
function toPattern(record) {
  return { ...record, embedding: Array.from(float32(record.embedding)) }
}

class ReferenceStore {
  constructor(byId, indexes, db) {
    this.byId = byId
    this.indexes = indexes
    this.db = db
    this.selectOne = db.prepare(SELECT_ONE)
  }

  async get(id) {
    const record = this.byId.get(id)
    if (record) return toPattern(record)
    const row = this.selectOne.get(id) // fallback to SQLite
    return row ? toPattern(rowToRecord(row)) : null
  }

  async byDomain(domain) {
    const ids = this.indexes.domain[domain] || []
    return ids.map((id) => toPattern(this.byId.get(id)))
  }

  async close() {
    this.db.close()
  }
}

module.exports = {
  name: 'reference',
  title: 'reference (TS design)',
  description:
    'the TypeScript design this package replaces, in plain JS: a MessagePack document (@msgpack/msgpack) with a SHA-256 header, written from SQLite (better-sqlite3) atomically (temp file, fsync, rename) on the JS thread; open = readFile, SHA-256 check (node:crypto), decode into a Map of records and index objects; a hit converts the record to a pattern with `embedding` as number[].',
  writeCacheFile,

  async prepare(ds) {
    const db = new Database(ds.dbPath, { fileMustExist: true })
    writeCacheFile(db, cachePath(ds))
    db.close()
  },

  async open(ds) {
    const file = await fs.promises.readFile(cachePath(ds))
    if (file.byteLength < HEADER_SIZE || !file.subarray(0, 8).equals(MAGIC)) throw new Error('reference: not a cache file')
    if (file.readUInt32LE(8) !== FORMAT_VERSION) throw new Error('reference: other format version')
    const body = file.subarray(HEADER_SIZE)
    if (file.readUInt32LE(12) !== body.byteLength) throw new Error('reference: truncated cache file')
    const digest = crypto.createHash('sha256').update(body).digest()
    if (!digest.equals(file.subarray(16, 48))) throw new Error('reference: cache file checksum mismatch')
    const doc = decode(body)
    const byId = new Map()
    for (const record of doc.patterns) byId.set(record.id, record)
    const db = new Database(ds.dbPath, { fileMustExist: true }) // writes and fallback
    return new ReferenceStore(byId, doc.indexes, db)
  },

  async rebuilder(ds) {
    const db = new Database(ds.dbPath, { fileMustExist: true })
    return {
      async rebuild() {
        const count = writeCacheFile(db, cachePath(ds))
        if (count !== ds.count) throw new Error(`rebuilt ${count} patterns, expected ${ds.count}`)
      },
      close: async () => db.close(),
    }
  },
}

'use strict'
// sqlite-vec: a vec0 virtual table in its own database file (loaded into
// better-sqlite3), `distance_metric=cosine`, the domain as a partition key;
// KNN is `WHERE embedding MATCH ? AND k = 10` (brute force: vec0 has no
// approximate index), and `AND domain = ?` for the filtered query.

const fs = require('node:fs')
const { performance } = require('node:perf_hooks')
const Database = require('better-sqlite3')
const sqliteVec = require('sqlite-vec')

const fileOf = (ds) => ds.file('sqlite-vec.db')
const DONE = (ds) => ds.file('sqlite-vec.complete')

function openDb(ds, options) {
  const db = new Database(fileOf(ds), options)
  sqliteVec.load(db)
  return db
}

const blob = (v) => Buffer.from(v.buffer, v.byteOffset, v.byteLength)

module.exports = {
  name: 'sqlite-vec',
  title: 'sqlite-vec (vec0)',
  description:
    'sqlite-vec `vec0(embedding float[dim] distance_metric=cosine, domain text partition key)` in its own SQLite file, loaded into better-sqlite3; `SELECT rowid, distance FROM t WHERE embedding MATCH ? AND k = 10` (+ `AND domain = ?`), query as a float32 blob. Brute force (vec0 has no ANN index).',
  exact: true,

  // Its table, built once per data set and reused (the build time is kept in a file beside it).
  async prepare(ds, data) {
    if (fs.existsSync(DONE(ds))) return JSON.parse(fs.readFileSync(DONE(ds), 'utf8'))
    fs.rmSync(fileOf(ds), { force: true })
    const db = openDb(ds)
    db.pragma('journal_mode = WAL')
    const started = performance.now()
    db.exec(`CREATE VIRTUAL TABLE vectors USING vec0(embedding float[${data.dim}] distance_metric=cosine, domain text partition key)`)
    const insert = db.prepare('INSERT INTO vectors(rowid, embedding, domain) VALUES (?, ?, ?)')
    const batch = db.transaction((from, to) => {
      for (let i = from; i < to; i++) insert.run(BigInt(i + 1), blob(data.rows[i]), data.domains[data.domainOf[i]])
    })
    for (let i = 0; i < data.count; i += 5000) batch(i, Math.min(data.count, i + 5000))
    const buildMs = performance.now() - started
    db.pragma('wal_checkpoint(TRUNCATE)')
    db.close()
    const info = { ms: buildMs, what: `INSERT x ${data.count.toLocaleString('en-US')} in transactions of 5,000 (made once, reused)` }
    fs.writeFileSync(DONE(ds), JSON.stringify(info))
    return info
  },

  async open(ds, data) {
    const build = await module.exports.prepare(ds, data)
    const db = openDb(ds, { readonly: true, fileMustExist: true })
    const all = db.prepare('SELECT rowid, distance FROM vectors WHERE embedding MATCH ? AND k = 10 ORDER BY distance')
    const filtered = db.prepare('SELECT rowid, distance FROM vectors WHERE embedding MATCH ? AND k = 10 AND domain = ? ORDER BY distance')
    return {
      build,
      queries: {
        cosine: (q) => all.all(q.blob),
        cosineFiltered: (q) => filtered.all(q.blob, q.domain),
      },
      rows: (raw) => raw.map((r) => Number(r.rowid) - 1),
      scores: (raw) => raw.map((r) => 1 - r.distance),
      close: async () => db.close(),
    }
  },
}

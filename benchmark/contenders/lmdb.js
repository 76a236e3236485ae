'use strict'
// lmdb (lmdb-js): every pattern put under its id, the value encoded by lmdb's
// default (msgpackr); a hit is `get(id)`, its embedding bytes viewed as Float32Array.
// It has no domain query here.

const fs = require('node:fs')
const path = require('node:path')
const lmdb = require('lmdb')
const Database = require('better-sqlite3')
const { SELECT_ALL, float32, rowToRecord } = require('../lib/rows')

const dirOf = (ds) => ds.file('lmdb')
const DONE = 'complete'

module.exports = {
  name: 'lmdb',
  title: 'lmdb',
  description:
    'lmdb-js, each pattern `put` under its id (values encoded by its default msgpackr), a hit is `get(id)` with the embedding bytes viewed as Float32Array; no domain query.',

  async prepare(ds) {
    const dir = dirOf(ds)
    if (fs.existsSync(path.join(dir, DONE))) return
    fs.rmSync(dir, { recursive: true, force: true })
    fs.mkdirSync(dir, { recursive: true })
    const db = lmdb.open({ path: path.join(dir, 'patterns.mdb') })
    const sqlite = new Database(ds.dbPath, { readonly: true, fileMustExist: true })
    const rows = sqlite.prepare(SELECT_ALL).iterate()
    let done = false
    while (!done) {
      // 5,000 puts per write transaction
      db.transactionSync(() => {
        for (let i = 0; i < 5000; i++) {
          const next = rows.next()
          if (next.done) {
            done = true
            return
          }
          db.put(next.value.id, rowToRecord(next.value))
        }
      })
    }
    sqlite.close()
    await db.close()
    fs.writeFileSync(path.join(dir, DONE), '')
  },

  async open(ds) {
    const db = lmdb.open({ path: path.join(dirOf(ds), 'patterns.mdb') })
    return {
      get(id) {
        const p = db.get(id)
        if (p) p.embedding = float32(p.embedding)
        return p ?? null
      },
      byDomain: null,
      close: () => db.close(),
    }
  },
}

'use strict'
// better-sqlite3: the same queries on the same SQLite database, from JavaScript,
// rows turned into pattern objects with Float32Array embeddings.

const Database = require('better-sqlite3')
const { SELECT_ONE, SELECT_DOMAIN, SELECT_FRAMEWORK, rowToPattern } = require('../lib/rows')

module.exports = {
  name: 'better-sqlite3',
  title: 'better-sqlite3',
  description:
    'direct queries on the same SQLite file (`WHERE id = ?`, `WHERE domain = ? ORDER BY id`, `WHERE framework = ? ORDER BY id`), rows converted to patterns with Float32Array embeddings.',

  async prepare() {},

  async open(ds) {
    const db = new Database(ds.dbPath, { fileMustExist: true })
    const one = db.prepare(SELECT_ONE)
    const byDomain = db.prepare(SELECT_DOMAIN)
    const byFramework = db.prepare(SELECT_FRAMEWORK)
    return {
      get(id) {
        const row = one.get(id)
        return row ? rowToPattern(row) : null
      },
      byDomain: (domain) => byDomain.all(domain).map(rowToPattern),
      byFramework: (framework) => byFramework.all(framework).map(rowToPattern),
      close: async () => db.close(),
    }
  },
}

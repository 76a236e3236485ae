'use strict'
// A fresh process that requires a contender, opens it and runs one domain
// query, then exits by itself. The parent times it from spawn to exit.
//   node cold-start.js <contender> <data dir> <domain> <expected count>

const path = require('node:path')
const [name, dir, domain, expected] = process.argv.slice(2)
const contender = require(`../contenders/${name}`)
const ds = { dbPath: path.join(dir, 'patterns.db'), file: (f) => path.join(dir, f) }

contender
  .open(ds)
  .then((store) => store.byDomain(domain))
  .then((patterns) => {
    if (patterns.length !== Number(expected)) {
      console.error(`${name}: ${patterns.length} patterns in ${domain}, expected ${expected}`)
      process.exitCode = 2
    }
  })

'use strict'
// pattern-cache ls [--domain d] [--type t] [--framework f] [--limit n] [--page-size n]

const { EXIT } = require('../lib/errors.js')
const { writeTo, writeJsonArray } = require('../lib/output.js')
const { PAGE_SIZE, MAX_PAGE_SIZE, paths, requireDatabase, withCache, pages } = require('../lib/store.js')

const summary = 'list patterns: id, type, domain, framework, verdict'
const args = ''
const options = ['domain', 'type', 'framework', 'limit', 'page-size']
const help = `Lists patterns ordered by id (UTF-8 byte order), read from the database a
page at a time (PatternCache#listPatterns()) and printed as each page comes:
memory is bounded by the page, whatever the database holds.

  --domain <name>   only this domain
  --type <name>     only this type
  --framework <n>   only this framework
  --limit <n>       at most n patterns (the first by id)
  --page-size <n>   patterns read per page, 1..${MAX_PAGE_SIZE.toLocaleString('en-US')} (default ${PAGE_SIZE.toLocaleString('en-US')})

The columns are as wide as the first page needs; a longer value on a later
page widens only its own line. --json: { patterns: [{ id, type, domain,
framework, verdict }], count }.`

const COLUMNS = ['id', 'type', 'domain', 'framework', 'verdict']
const row = (p) => ({ id: p.id, type: p.type, domain: p.domain, framework: p.framework, verdict: p.verdict })

async function run(values, out) {
  const { dbPath, cachePath } = paths(values)
  requireDatabase(dbPath)
  return withCache({ dbPath, cachePath, backgroundRebuild: false, enabled: false }, async (c) => {
    const rows = async function* () {
      for await (const page of pages(c, values)) yield page.map(row)
    }
    if (values.json) {
      // The count is known at the end only: it follows the patterns.
      await writeTo(out.stream, '{\n  "patterns": ')
      const count = await writeJsonArray(out.stream, rows(), 1)
      await writeTo(out.stream, `,\n  "count": ${count}\n}\n`)
      return EXIT.OK
    }
    let width
    const line = (cells) => cells.map((v, i) => (i === cells.length - 1 ? v : v.padEnd(width[i]))).join('  ')
    for await (const page of rows()) {
      let text = ''
      if (width === undefined) {
        width = COLUMNS.map((col) => Math.max(col.length, ...page.map((r) => r[col].length)))
        text = line(COLUMNS.map((col) => col.toUpperCase())) + '\n'
      }
      text += page.map((r) => line(COLUMNS.map((col) => r[col])) + '\n').join('')
      await writeTo(out.stream, text)
    }
    if (width === undefined) {
      width = COLUMNS.map((col) => col.length)
      await writeTo(out.stream, line(COLUMNS.map((col) => col.toUpperCase())) + '\n')
    }
    return EXIT.OK
  })
}

module.exports = { summary, args, options, help, run }

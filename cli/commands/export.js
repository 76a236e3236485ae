'use strict'
// pattern-cache export [--out file] [--domain d] [--type t] [--framework f] [--limit n] [--page-size n]

const fs = require('node:fs')
const path = require('node:path')
const { EXIT, CliError } = require('../lib/errors.js')
const { num, writeTo, writeJsonArray } = require('../lib/output.js')
const { PAGE_SIZE, MAX_PAGE_SIZE, paths, requireDatabase, withCache, pages } = require('../lib/store.js')
const { record, patternLine } = require('../lib/records.js')

const summary = 'write patterns and agent configs as JSONL (stdout or --out)'
/** Export's default page: small, so memory stays flat however large the store. */
const EXPORT_PAGE_SIZE = 100
const args = ''
const options = ['out', 'domain', 'type', 'framework', 'limit', 'page-size']
const help = `Writes every pattern, ordered by id, then every agent config, ordered by
agent id, one JSON object per line: the input of \`import\`. Each line names
its kind first:

  {"kind":"pattern","id":...,"type":...,"embedding":[...],...}
      every field of the stored pattern, the embedding as a number array
  {"kind":"agentConfig","agentId":...,"type":...,"configJson":...,
   "version":...,"updatedAt":...}
      an agent config as stored (configJson: its JSON text), on one line

Patterns are read a page at a time (PatternCache#listPatterns()) and written
as each page comes: memory is bounded by the page. Not a snapshot: a write by
another process during the export may or may not be in it (no pattern comes
twice).

  -o, --out <file>  write to this file instead of stdout
  --domain, --type, --framework, --limit   as for ls; with any of them only
                    the matching patterns are written, and no agent configs
                    (configs belong to no domain, type or framework)
  --page-size <n>   patterns read per page, 1..${MAX_PAGE_SIZE.toLocaleString('en-US')} (default 100)

With --json and no --out, writes one JSON array of the same records instead
of lines; with --json and --out, writes the lines to the file and a summary
on stdout: { out, exported (patterns), agentConfigs }.`

async function run(values, out) {
  const { dbPath, cachePath } = paths(values)
  requireDatabase(dbPath)
  const filtered = ['domain', 'type', 'framework', 'limit'].some((key) => values[key] !== undefined)
  let patterns = 0
  let configs = 0
  /** Every record: the patterns page by page, then the agent configs (none when filtered). */
  const records = (c) =>
    (async function* () {
      for await (const page of pages(c, values)) {
        patterns += page.length
        yield page.map((p) => record('pattern', p))
      }
      if (filtered) return
      const all = await c.listAgentConfigs()
      configs = all.length
      yield all.map((a) => record('agentConfig', a))
    })()

  if (values.json && values.out === undefined) {
    await withCache({ dbPath, cachePath, backgroundRebuild: false, enabled: false }, async (c) => {
      await writeJsonArray(out.stream, records(c))
      await writeTo(out.stream, '\n')
    })
    return EXIT.OK
  }
  await withCache({ dbPath, cachePath, backgroundRebuild: false, enabled: false }, async (c) => {
    const target = values.out === undefined ? out.stream : fs.createWriteStream(values.out)
    if (target !== out.stream) {
      await new Promise((resolve, reject) => {
        target.once('open', resolve)
        target.once('error', (e) => reject(new CliError(EXIT.RUNTIME, 'IO_ERROR', `cannot write ${values.out}: ${e.message}`)))
      })
    }
    try {
      // Small pages by default: a page's patterns then die young (in V8's
      // young generation) instead of growing the heap, so RSS stays flat.
      const paged = { ...values, 'page-size': values['page-size'] ?? EXPORT_PAGE_SIZE }
      for await (const page of pages(c, paged)) {
        patterns += page.length
        let chunk = ''
        for (const p of page) {
          chunk += patternLine(p) + '\n'
          if (chunk.length > 1 << 16) {
            await writeTo(target, chunk)
            chunk = ''
          }
        }
        if (chunk) await writeTo(target, chunk)
      }
      if (!filtered) {
        const all = await c.listAgentConfigs()
        configs = all.length
        if (all.length) await writeTo(target, all.map((a) => JSON.stringify(record('agentConfig', a)) + '\n').join(''))
      }
    } catch (e) {
      if (target === out.stream) throw e
      target.end()
      const cli = e instanceof CliError
      const io = !cli && Boolean(e && e.syscall)
      const code = cli ? e.code : io ? 'IO_ERROR' : (e && e.code) || 'INTERNAL'
      const message = `${io ? `cannot write ${values.out}: ` : ''}${(e && e.message) || e}`
      const err = new CliError(cli ? e.exitCode : EXIT.RUNTIME, code, `${message} (export stopped: ${values.out} holds only the lines written before)`)
      err.detail = { exported: patterns }
      throw err
    }
    if (target !== out.stream) {
      await new Promise((resolve, reject) => target.end((e) => (e ? reject(new CliError(EXIT.RUNTIME, 'IO_ERROR', `cannot write ${values.out}: ${e.message}`)) : resolve(undefined))))
    }
  })
  if (values.out !== undefined) {
    const doc = { out: path.resolve(values.out), exported: patterns, agentConfigs: configs }
    if (values.json) out.json(doc)
    else process.stderr.write(`exported ${num(patterns)} patterns${filtered ? '' : ` and ${num(configs)} agent configs`} to ${values.out}\n`)
  }
  return EXIT.OK
}

module.exports = { summary, args, options, help, run }

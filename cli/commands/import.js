'use strict'
// pattern-cache import <file.jsonl>

const fs = require('node:fs')
const { EXIT, CliError } = require('../lib/errors.js')
const { num, duration } = require('../lib/output.js')
const { paths, withCache } = require('../lib/store.js')
const { remoteUrl } = require('./remote.js')
const { parseRecord } = require('../lib/records.js')

/** Lines per storePatterns() call, each one transaction. */
const IMPORT_BATCH = 1000

const summary = 'store the patterns and agent configs of a JSONL file'
const args = '<file.jsonl>'
const options = ['remote']
const help = `Reads a JSONL file ('-' for stdin) line by line, one record per line as
\`export\` writes them, blank lines skipped:

  {"kind":"pattern",...}      a pattern, the embedding as a number array; a
                              line without "kind" is a pattern too (the files
                              of earlier releases)
  {"kind":"agentConfig",...}  an agent config: agentId, type, configJson,
                              version, updatedAt

Patterns are stored in batches of up to ${IMPORT_BATCH.toLocaleString('en-US')} lines, each one transaction.
An agent config is stored on its own (inserted or replaced), after the
patterns read before it, which end their batch there. Creates the database
when it does not exist. Progress goes to stderr.

A bad line (not JSON, not an object, an unknown kind, or a pattern or config
that fails validation) stops the import with its line number and exit code 3:
nothing of its batch is written; the batches (and configs) before it stay
stored. The cache file is left to be rebuilt (readers do it in the
background, or run \`pattern-cache rebuild\`).

  --remote          store through the shared bank named by the environment
                    variable PATTERN_CACHE_REMOTE_URL (each batch one remote
                    transaction; --db is then that machine's replica): how a
                    local database's patterns move into a shared bank.`

/** The batch line an error is about: patterns[i] in the message, else the id it names. */
function lineOfError(e, batch) {
  const message = String(e && e.message)
  const index = /patterns\[(\d+)\]/.exec(message)
  if (index && batch[Number(index[1])]) return batch[Number(index[1])].line
  const named = /invalid pattern '((?:[^']|'(?!:))*)':/.exec(message)
  if (named) {
    const hit = batch.find((b) => b.pattern && b.pattern.id === named[1])
    if (hit) return hit.line
  }
  if (/\bid must be\b/.test(message)) {
    const hit = batch.find((b) => !b.pattern || typeof b.pattern.id !== 'string' || b.pattern.id === '' || Buffer.byteLength(b.pattern.id) > 1024 || b.pattern.id.includes('\0'))
    if (hit) return hit.line
  }
  return undefined
}

async function run(values, out, positionals) {
  const { dbPath, cachePath } = paths(values)
  const file = positionals[0]
  let input
  if (file === '-') input = process.stdin
  else {
    try {
      const st = fs.statSync(file)
      if (st.isDirectory()) throw new Error('it is a directory')
    } catch (e) {
      throw new CliError(EXIT.RUNTIME, 'IO_ERROR', `cannot read ${file}: ${e.code === 'ENOENT' ? 'no such file' : e.message}`)
    }
    input = fs.createReadStream(file)
  }
  const tty = process.stderr.isTTY
  const started = Date.now()
  let imported = 0
  let configs = 0
  let lineNo = 0
  let batches = 0
  let progressed = false
  const what = () => `${num(imported)} patterns${configs > 0 ? ` and ${num(configs)} agent configs` : ''}`
  const progress = (final) => {
    const text = `imported ${what()} (${num(lineNo)} lines, ${duration(Date.now() - started)})`
    if (tty) process.stderr.write(`\r\x1b[2K${text}${final ? '\n' : ''}`)
    else process.stderr.write(`${text}\n`)
    progressed = true
  }
  /** A bad line: its number, exit code 3. */
  const badLine = (code, line, message) => {
    const err = new CliError(EXIT.RUNTIME, code, `${file}, line ${line}: ${message}`)
    err.detail = { line, imported, agentConfigs: configs }
    return err
  }
  const remote = values.remote ? { url: remoteUrl() } : undefined
  const result = await withCache({ dbPath, cachePath, backgroundRebuild: false, enabled: false, remote }, async (c) => {
    /** @type {{ line: number, pattern: any }[]} */
    let batch = []
    const flush = async () => {
      if (batch.length === 0) return
      try {
        await c.storePatterns(batch.map((b) => b.pattern))
      } catch (e) {
        const line = lineOfError(e, batch)
        const where = line !== undefined ? `line ${line}` : `lines ${batch[0].line}-${batch[batch.length - 1].line}`
        const err = new CliError(EXIT.RUNTIME, e && e.code ? e.code : 'INTERNAL', `${file}, ${where}: ${e && e.message}`)
        err.detail = { line, batchFirstLine: batch[0].line, batchLastLine: batch[batch.length - 1].line, imported, agentConfigs: configs }
        throw err
      }
      imported += batch.length
      batches++
      batch = []
      progress(false)
    }
    const storeConfig = async (line, config) => {
      try {
        await c.storeAgentConfig(config)
      } catch (e) {
        throw badLine(e && e.code ? e.code : 'INTERNAL', line, (e && e.message) || String(e))
      }
      configs++
    }
    try {
      for await (const raw of lines(input)) {
        lineNo++
        const text = (lineNo === 1 ? raw.replace(/^\uFEFF/, '') : raw).trim()
        if (text === '') continue
        let object
        try {
          object = JSON.parse(text)
        } catch (e) {
          throw badLine('INVALID_PATTERN', lineNo, `not JSON: ${e.message}`)
        }
        if (typeof object !== 'object' || object === null || Array.isArray(object)) throw badLine('INVALID_PATTERN', lineNo, 'a line must be a JSON object (a pattern or an agent config)')
        const rec = parseRecord(object)
        if ('problem' in rec) throw badLine('INVALID_PATTERN', lineNo, rec.problem)
        if (rec.kind === 'agentConfig') {
          await flush()
          await storeConfig(lineNo, rec.value)
          continue
        }
        batch.push({ line: lineNo, pattern: rec.value })
        if (batch.length >= IMPORT_BATCH) await flush()
      }
      await flush()
      if (configs > 0) progress(false)
    } catch (e) {
      if (e instanceof CliError) {
        if (imported > 0 || configs > 0) process.stderr.write(`${tty ? '\n' : ''}${num(imported)} patterns of the batches before this one${configs > 0 ? ` and ${num(configs)} agent configs` : ''} stay imported; nothing of the failing batch was written\n`)
      } else if (e && e.code === 'ENOENT') {
        throw new CliError(EXIT.RUNTIME, 'IO_ERROR', `cannot read ${file}: ${e.message}`)
      }
      throw e
    } finally {
      if (input !== process.stdin && typeof input.destroy === 'function') input.destroy()
    }
    return { imported, configs, lines: lineNo, batches }
  })
  if (tty && progressed) process.stderr.write('\n')
  const doc = { file, dbPath, imported: result.imported, agentConfigs: result.configs, lines: result.lines, batches: result.batches, durationMs: Date.now() - started }
  if (values.json) out.json(doc)
  else out.text(`imported ${what()} from ${file} into ${dbPath}; the cache file is rebuilt by readers in the background, or run \`pattern-cache rebuild\`\n`)
  return EXIT.OK
}

/**
 * The lines of a stream, split at "\n" only (a trailing "\r" dropped).
 * Not readline: since Node 24 it also ends lines at U+2028 and U+2029, which
 * JSON.stringify leaves unescaped inside strings, so it would cut a valid line.
 * @param {NodeJS.ReadableStream} input
 */
async function* lines(input) {
  if (typeof (/** @type {any} */ (input).setEncoding) === 'function') /** @type {any} */ (input).setEncoding('utf8')
  let rest = ''
  for await (const chunk of input) {
    const text = rest + chunk
    let start = 0
    for (let at = text.indexOf('\n'); at !== -1; at = text.indexOf('\n', start)) {
      const line = text.slice(start, at)
      yield line.endsWith('\r') ? line.slice(0, -1) : line
      start = at + 1
    }
    rest = text.slice(start)
  }
  if (rest !== '') yield rest.endsWith('\r') ? rest.slice(0, -1) : rest
}

module.exports = { summary, args, options, help, run, IMPORT_BATCH }

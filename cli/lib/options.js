'use strict'
// Option parsing: every option any command takes (which command takes which
// is in its module's `options`), the checks shared by all commands, and
// what parseArgs cannot express (--mmr's optional value, negative numbers).

const { parseArgs } = require('node:util')
const { usageError } = require('./errors.js')
const { MAX_PAGE_SIZE } = require('./store.js')

/** Every option any command takes; which command takes which is in its module (cli/commands/<name>.js). */
const OPTIONS = {
  db: { type: 'string' },
  cache: { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
  version: { type: 'boolean', short: 'V' },
  prometheus: { type: 'boolean' },
  domain: { type: 'string' },
  type: { type: 'string' },
  framework: { type: 'string' },
  limit: { type: 'string' },
  'page-size': { type: 'string' },
  out: { type: 'string', short: 'o' },
  like: { type: 'string' },
  vector: { type: 'string' },
  k: { type: 'string' },
  metric: { type: 'string' },
  threshold: { type: 'string' },
  // --mmr takes an optional value (its lambda), which parseArgs cannot express: normalizeArgs() lifts it out first.
  mmr: { type: 'boolean' },
  remote: { type: 'boolean' },
  keep: { type: 'string' },
  schema: { type: 'string' },
}
/** The options every command takes. */
const GLOBAL = ['db', 'cache', 'json', 'help', 'version']

/** A decimal number as a user writes one (no hex, no '', no 'Infinity'). */
const NUMBER = /^[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?$/

/**
 * What parseArgs cannot express. `--mmr` takes an optional lambda (`--mmr 0.7`
 * or `--mmr=0.7`: a number right after `--mmr` is its lambda), lifted out of
 * argv here. A negative number after `--k` or `--threshold` is their value
 * (parseArgs would take `-0.5` for an option). Stops at `--`.
 * @returns {{ args: string[], mmrLambda: string | undefined }}
 */
function normalizeArgs(argv) {
  const args = []
  let mmrLambda
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]
    const next = argv[i + 1]
    if (arg === '--') {
      args.push(...argv.slice(i))
      break
    }
    if (arg.startsWith('--mmr=')) {
      args.push('--mmr')
      mmrLambda = arg.slice('--mmr='.length)
    } else if (arg === '--mmr' && next !== undefined && NUMBER.test(next)) {
      args.push('--mmr')
      mmrLambda = next
      i++
    } else if ((arg === '--k' || arg === '--threshold') && next !== undefined && next.startsWith('-') && NUMBER.test(next)) {
      args.push(`${arg}=${next}`)
      i++
    } else {
      args.push(arg)
    }
  }
  return { args, mmrLambda }
}

/**
 * Parses argv into { command, values, positionals }; throws usage errors.
 * @param {string[]} argv
 * @param {Record<string, { args: string, options: string[] }>} commands the command modules by name
 */
function parse(argv, commands) {
  const { args, mmrLambda } = normalizeArgs(argv)
  let parsed
  try {
    parsed = parseArgs({ args, options: OPTIONS, allowPositionals: true, strict: true })
  } catch (e) {
    throw usageError(e.message)
  }
  const { values, positionals } = parsed
  let name = positionals.shift()
  if (name === 'help') {
    values.help = true
    name = positionals.shift()
  }
  if (name !== undefined && !Object.hasOwn(commands, name)) throw usageError(`unknown command '${name}' (see pattern-cache --help)`)
  if (name !== undefined) {
    const allowed = new Set([...GLOBAL, ...commands[name].options])
    for (const key of Object.keys(values)) {
      if (!allowed.has(key)) throw usageError(`${name} takes no --${key} option (see pattern-cache ${name} --help)`)
    }
    const wanted = commands[name].args ? 1 : 0
    if (!values.help && positionals.length !== wanted) {
      const hint = name === 'search' && values.mmr ? ` (the lambda of --mmr is a number in 0..1)` : ''
      throw usageError(wanted ? `${name} needs ${commands[name].args}` : `${name} takes no argument, got '${positionals[0]}'${hint}`)
    }
  }
  for (const key of ['db', 'cache', 'out', 'domain', 'type', 'framework', 'like', 'vector', 'metric']) {
    if (values[key] === '') throw usageError(`--${key} must not be empty`)
  }
  if (values.prometheus && values.json) throw usageError('--prometheus and --json are two output formats: choose one')
  if (values.limit !== undefined && !/^\d+$/.test(values.limit)) throw usageError(`--limit must be a non-negative integer, got '${values.limit}'`)
  if (values['page-size'] !== undefined && !(/^\d+$/.test(values['page-size']) && Number(values['page-size']) >= 1 && Number(values['page-size']) <= MAX_PAGE_SIZE)) {
    throw usageError(`--page-size must be an integer in 1..${MAX_PAGE_SIZE.toLocaleString('en-US')}, got '${values['page-size']}'`)
  }
  if (values.k !== undefined && !/^[-+]?\d+$/.test(values.k)) throw usageError(`--k must be an integer, got '${values.k}'`)
  if (values.threshold !== undefined && !NUMBER.test(values.threshold)) throw usageError(`--threshold must be a number, got '${values.threshold}'`)
  if (mmrLambda !== undefined) {
    if (!NUMBER.test(mmrLambda)) throw usageError(`--mmr takes an optional lambda, a number in 0..1, got '${mmrLambda}'`)
    values.mmrLambda = mmrLambda
  }
  if (name === 'search' && !values.help) {
    if (values.like === undefined && values.vector === undefined) throw usageError('search needs a query: --like <id> or --vector <json or file>')
    if (values.like !== undefined && values.vector !== undefined) throw usageError('search takes one query: --like or --vector, not both')
  }
  return { command: name, values, positionals }
}

module.exports = { OPTIONS, GLOBAL, NUMBER, normalizeArgs, parse }

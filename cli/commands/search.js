'use strict'
// pattern-cache search (--like id | --vector v) [--k n] [filters] [--metric m] [--threshold x] [--mmr [lambda]]

const fs = require('node:fs')
const { EXIT, CliError, usageError } = require('../lib/errors.js')
const { paths, requireDatabase, withCache } = require('../lib/store.js')

const summary = 'the k patterns most similar to a stored pattern or a vector'
const args = ''
const options = ['like', 'vector', 'k', 'domain', 'type', 'framework', 'metric', 'threshold', 'mmr']
const help = `Ranks the patterns matching the filters by their similarity to a query
embedding (PatternCache#searchSimilar()), read from the database. Exact: every
matching pattern is scored and the filters apply before ranking, so k results
come back whenever k patterns match (and pass --threshold). Best first: the
highest similarity, or the smallest distance; ties by id (UTF-8 byte order).
The query is one of:

  --like <id>       the embedding of the stored pattern <id>. The pattern itself
                    is among the results (it is the most similar to itself:
                    cosine 1, distance 0; under dot a longer vector can
                    outscore it) unless a filter leaves it out: ask for
                    --k k+1 to get k others. No pattern <id>: exit code 3 with
                    INVALID_ARGUMENT
  --vector <v>      a JSON array of numbers given inline ('[0.1, -0.2, ...]'),
                    or the path of a file holding one

  --k <n>           at most n results, 1..1000 (default 10)
  --domain <name>   only this domain
  --type <name>     only this type
  --framework <n>   only this framework
  --metric <m>      cosine (default), dot or euclidean; the score is the cosine
                    similarity, the dot product or the Euclidean distance
  --threshold <x>   cosine, dot: only scores >= x; euclidean: only
                    distances <= x
  --mmr [lambda]    maximal marginal relevance: picks the k results greedily
                    from the 3k best, trading relevance for diversity; lambda
                    in 0..1 (default 0.5) is the weight of relevance. The
                    order is the picking order; scores stay the metric's

Prints a header, then one line per result: rank, score (6 decimals), id,
type, domain, framework. --json: { ok, results: [{ id, score, type, domain,
framework, verdict }] } (no embeddings). A malformed option (--k not an
integer, --threshold not a number, a --vector that is not a JSON array of
numbers) is a usage error (exit 2); a value the API refuses (k or lambda out
of range, an unknown metric, a vector of another dimension than the
database's or with a non-finite value, a zero vector under cosine) exits 3
with INVALID_ARGUMENT, as the other commands report the API's errors.`

/**
 * The query vector of `--vector`: a JSON array given inline (it starts with
 * '[') or the path of a file holding one. Throws usage errors.
 * @param {string} arg
 * @returns {number[]}
 */
function readVector(arg) {
  let text = arg
  let source = '--vector'
  if (!/^\s*\[/.test(arg) || (!isJson(arg) && fs.existsSync(arg))) {
    source = `--vector ${arg}`
    try {
      if (fs.statSync(arg).isDirectory()) throw usageError(`${source}: is a directory, not a file holding a JSON array`)
      text = fs.readFileSync(arg, 'utf8').replace(/^\uFEFF/, '')
    } catch (e) {
      if (e instanceof CliError) throw e
      if (e.code === 'ENOENT') throw new CliError(EXIT.RUNTIME, 'IO_ERROR', `cannot read ${arg}: no such file (an inline vector is a JSON array: --vector '[0.1, 0.2]')`)
      throw new CliError(EXIT.RUNTIME, 'IO_ERROR', `cannot read ${arg}: ${e.message}`)
    }
  }
  let vector
  try {
    vector = JSON.parse(text)
  } catch (e) {
    throw usageError(`${source}: not a JSON array of numbers: ${e.message}`)
  }
  if (!Array.isArray(vector)) throw usageError(`${source}: not a JSON array of numbers (got ${vector === null ? 'null' : typeof vector})`)
  const bad = vector.findIndex((x) => typeof x !== 'number')
  if (bad !== -1) throw usageError(`${source}: element ${bad} is not a number (got ${JSON.stringify(vector[bad])})`)
  return vector
}

function isJson(text) {
  try {
    JSON.parse(text)
    return true
  } catch {
    return false
  }
}

/** The options of searchSimilar() that the command line gives. */
function searchOptions(values) {
  const options = {}
  for (const key of ['domain', 'type', 'framework', 'metric']) if (values[key] !== undefined) options[key] = values[key]
  if (values.k !== undefined) options.k = Number(values.k)
  if (values.threshold !== undefined) options.threshold = Number(values.threshold)
  if (values.mmr) options.useMMR = true
  if (values.mmrLambda !== undefined) options.mmrLambda = Number(values.mmrLambda)
  return options
}

const SCORE_HEADER = { cosine: 'COSINE', dot: 'DOT', euclidean: 'DISTANCE' }

async function run(values, out) {
  const { dbPath, cachePath } = paths(values)
  const vector = values.vector !== undefined ? readVector(values.vector) : undefined
  const options = searchOptions(values)
  requireDatabase(dbPath)
  const results = await withCache({ dbPath, cachePath, backgroundRebuild: false, enabled: false }, async (c) => {
    let query = vector
    if (values.like !== undefined) {
      const p = await c.loadPattern(values.like)
      if (p === null) throw new CliError(EXIT.RUNTIME, 'INVALID_ARGUMENT', `--like: no pattern with id ${JSON.stringify(values.like)} (pattern-cache ls lists the ids)`)
      query = p.embedding
    }
    return c.searchSimilar(query, options)
  })
  const rows = results.map(({ pattern: p, score }) => ({ id: p.id, score, type: p.type, domain: p.domain, framework: p.framework, verdict: p.verdict }))
  if (values.json) {
    out.json({ ok: true, results: rows })
    return EXIT.OK
  }
  if (rows.length === 0) {
    out.text('no results\n')
    return EXIT.OK
  }
  const header = ['RANK', SCORE_HEADER[options.metric ?? 'cosine'] ?? 'SCORE', 'ID', 'TYPE', 'DOMAIN', 'FRAMEWORK']
  const cells = rows.map((r, i) => [String(i + 1), r.score.toFixed(6), r.id, r.type, r.domain, r.framework])
  const width = header.map((h, c) => Math.max(h.length, ...cells.map((row) => row[c].length)))
  const line = (row) => row.map((v, c) => (c < 2 ? v.padStart(width[c]) : c === row.length - 1 ? v : v.padEnd(width[c]))).join('  ')
  out.text([line(header), ...cells.map(line)].join('\n') + '\n')
  return EXIT.OK
}

module.exports = { summary, args, options, help, run }

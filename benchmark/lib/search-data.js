'use strict'
// The similarity-search group's data: clustered, unit-length embeddings from a
// seeded generator, written once into a SQLite database by pattern-cache itself
// (`storePatterns`, 5,000 per batch) under benchmark/data/search-<count>x<dim>/
// and reused while its manifest matches; the query vectors (drawn the same
// way, never stored); and the exact float64 answers every contender is
// checked against.
//
// Vectors: 50 cluster centres (Gaussian, normalised); a point is a centre
// (chosen uniformly) plus Gaussian noise of expected norm NOISE, normalised.
// Domains: 10 of exactly count/10 patterns each, assigned independently of the
// cluster (seeded shuffle), so one `domain` filter value selects 10%.

const fs = require('node:fs')
const path = require('node:path')
const { rng, shuffle } = require('./dataset')

const DATA_ROOT = path.join(__dirname, '..', 'data')
const GENERATOR_VERSION = 1
const SEED = 20260202
const CLUSTERS = 50
const NOISE = 0.8
const QUERIES = 50
const BATCH = 5000

const DOMAINS = ['auth', 'payments', 'checkout', 'search', 'profile', 'notifications', 'billing', 'inventory', 'orders', 'shipping']
const TYPES = ['unit', 'integration', 'e2e', 'contract', 'snapshot']
const FRAMEWORKS = ['jest', 'vitest', 'mocha', 'playwright', 'cypress']

/** The search group's data sets: name, count, dim. */
const SETS = [
  { count: 100000, dim: 768 },
  { count: 10000, dim: 384 },
].map((s) => ({ ...s, name: `${s.count.toLocaleString('en-US')} x ${s.dim}` }))

const idOf = (i) => `pattern-${String(i).padStart(6, '0')}`
/** The row (0-based position in id order) of an id made by idOf. */
const rowOf = (id) => Number(id.slice(8))

/** A standard normal deviate (Box-Muller), from a [0, 1) generator. */
function gaussian(random) {
  let u = 0
  while (u === 0) u = random()
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * random())
}

function normalise(v) {
  let n = 0
  for (let d = 0; d < v.length; d++) n += v[d] * v[d]
  n = Math.sqrt(n)
  for (let d = 0; d < v.length; d++) v[d] /= n
  return v
}

function centres(dim) {
  const random = rng(SEED + dim)
  return Array.from({ length: CLUSTERS }, () => normalise(Float64Array.from({ length: dim }, () => gaussian(random))))
}

/** One clustered unit vector (Float32Array) from `random`. */
function clusteredVector(random, cs, dim) {
  const c = cs[Math.floor(random() * cs.length)]
  const sigma = NOISE / Math.sqrt(dim)
  const v = new Float64Array(dim)
  for (let d = 0; d < dim; d++) v[d] = c[d] + sigma * gaussian(random)
  return Float32Array.from(normalise(v))
}

/** Yields the patterns of a set, in batches of BATCH, deterministically. */
function* generate({ count, dim }) {
  const random = rng(SEED ^ (count * 31 + dim))
  const cs = centres(dim)
  const domains = shuffle(Array.from({ length: count }, (_, i) => DOMAINS[i % DOMAINS.length]), rng(SEED * 3 + count))
  let batch = []
  for (let i = 0; i < count; i++) {
    const type = TYPES[Math.floor(random() * TYPES.length)]
    const framework = FRAMEWORKS[Math.floor(random() * FRAMEWORKS.length)]
    batch.push({
      id: idOf(i),
      type,
      domain: domains[i],
      framework,
      content: `// ${framework} ${type} test ${i}\nit('case ${i}', async () => { expect(await run(${i})).toBe(true) })\n`,
      embedding: clusteredVector(random, cs, dim),
      coverage: Math.round(random() * 1000) / 1000,
      verdict: 'success',
    })
    if (batch.length === BATCH) {
      yield batch
      batch = []
    }
  }
  if (batch.length) yield batch
}

/** The fixed query vectors of a set (drawn like the points, from another seed): Float32Array each. */
function queries({ dim }) {
  const random = rng(SEED * 5 + dim)
  const cs = centres(dim)
  return Array.from({ length: QUERIES }, (_, j) => ({
    vector: clusteredVector(random, cs, dim),
    domain: DOMAINS[j % DOMAINS.length], // the filtered query's domain: each domain in turn
  }))
}

function manifestFor({ count, dim }) {
  return { generator: GENERATOR_VERSION, seed: SEED, count, dim, clusters: CLUSTERS, noise: NOISE, domains: DOMAINS }
}

const dirOf = ({ count, dim }) => path.join(DATA_ROOT, `search-${count}x${dim}`)

/**
 * The data set of a set: generated (through pattern-cache's storePatterns)
 * when absent or made by another generator version, else reused.
 */
async function ensureSearchDataset(set, log = () => {}) {
  const dir = dirOf(set)
  const dbPath = path.join(dir, 'patterns.db')
  const manifestPath = path.join(dir, 'manifest.json')
  const want = manifestFor(set)
  let have = null
  try {
    have = JSON.parse(fs.readFileSync(manifestPath, 'utf8'))
  } catch {}
  let seedMs = have?.seedMs
  if (!have || JSON.stringify({ ...have, seedMs: undefined }) !== JSON.stringify({ ...want, seedMs: undefined }) || !fs.existsSync(dbPath)) {
    log(`generating ${set.name} clustered patterns into ${path.relative(process.cwd(), dir)}/ ...`)
    const started = Date.now()
    fs.rmSync(dir, { recursive: true, force: true })
    fs.mkdirSync(dir, { recursive: true })
    const { PatternCache } = require('../..')
    const cache = await PatternCache.open({ dbPath, enabled: false })
    let stored = 0
    for (const batch of generate(set)) {
      await cache.storePatterns(batch)
      stored += batch.length
      if (stored % 25000 === 0) log(`  ${stored.toLocaleString('en-US')} stored (${((Date.now() - started) / 1000).toFixed(0)} s)`)
    }
    await cache.shutdown()
    const Database = require('better-sqlite3')
    const db = new Database(dbPath)
    db.pragma('wal_checkpoint(TRUNCATE)')
    db.close()
    seedMs = Date.now() - started
    fs.writeFileSync(manifestPath, JSON.stringify({ ...want, seedMs }, null, 2) + '\n')
    log(`  done in ${(seedMs / 1000).toFixed(1)} s`)
  }
  return {
    ...set,
    dir,
    dbPath,
    seedMs,
    domains: DOMAINS,
    file: (name) => path.join(dir, name),
  }
}

/**
 * Every stored vector, read back from the database in id order:
 * { vectors: Float32Array(count * dim), rows: Float32Array views, domainOf: Uint8Array, domainRows: { domain: Int32Array } }.
 */
function loadVectors(ds) {
  const Database = require('better-sqlite3')
  const db = new Database(ds.dbPath, { readonly: true, fileMustExist: true })
  const { count, dim } = ds
  const vectors = new Float32Array(count * dim)
  const domainOf = new Uint8Array(count)
  let i = 0
  for (const row of db.prepare('SELECT id, domain, embedding FROM patterns ORDER BY id').iterate()) {
    if (row.id !== idOf(i)) throw new Error(`search data set: row ${i} is ${row.id}`)
    if (row.embedding.byteLength !== dim * 4) throw new Error(`search data set: ${row.id} has ${row.embedding.byteLength / 4} dimensions`)
    vectors.set(new Float32Array(row.embedding.buffer.slice(row.embedding.byteOffset, row.embedding.byteOffset + dim * 4)), i * dim)
    domainOf[i] = DOMAINS.indexOf(row.domain)
    i++
  }
  db.close()
  if (i !== count) throw new Error(`search data set: ${i} patterns, expected ${count}`)
  return withViews({ count, dim, vectors, domainOf })
}

/** The same data straight from the generator (no database): for trying contenders out. */
function generatedVectors(set) {
  const { count, dim } = set
  const vectors = new Float32Array(count * dim)
  const domainOf = new Uint8Array(count)
  let i = 0
  for (const batch of generate(set)) {
    for (const p of batch) {
      vectors.set(p.embedding, i * dim)
      domainOf[i++] = DOMAINS.indexOf(p.domain)
    }
  }
  return withViews({ count, dim, vectors, domainOf })
}

function withViews(data) {
  const { count, dim, vectors, domainOf } = data
  data.rows = Array.from({ length: count }, (_, i) => vectors.subarray(i * dim, (i + 1) * dim))
  data.domainRows = {}
  DOMAINS.forEach((d, k) => {
    const rows = []
    for (let i = 0; i < count; i++) if (domainOf[i] === k) rows.push(i)
    data.domainRows[d] = Int32Array.from(rows)
  })
  data.domains = DOMAINS
  return data
}

/**
 * Bounded top-k of (row, score), best (highest score) first, ties by the
 * smaller row (= the smaller id). Rows must be pushed in increasing order.
 */
class TopK {
  constructor(k) {
    this.k = k
    this.rows = new Int32Array(k)
    this.scores = new Float64Array(k)
    this.n = 0
  }

  push(row, score) {
    const { k, rows, scores } = this
    let j = this.n
    if (j === k) {
      if (!(score > scores[k - 1])) return // later rows lose ties
      j = k - 1
    } else this.n++
    while (j > 0 && score > scores[j - 1]) {
      scores[j] = scores[j - 1]
      rows[j] = rows[j - 1]
      j--
    }
    scores[j] = score
    rows[j] = row
  }

  result() {
    return { rows: Array.from(this.rows.subarray(0, this.n)), scores: Array.from(this.scores.subarray(0, this.n)) }
  }
}

/**
 * The exact answers in float64, per query: { cosine, cosineFiltered, dot, euclidean },
 * each { rows, scores } of the k best (scores: similarity, or distance for euclidean;
 * ties by id). Every dot product is summed in float64 over the stored float32 values.
 */
function exactAnswers(data, qs, k) {
  const { count, dim, rows, domainOf, domains } = data
  const norms = new Float64Array(count)
  for (let i = 0; i < count; i++) {
    const v = rows[i]
    let s = 0
    for (let d = 0; d < dim; d++) s += v[d] * v[d]
    norms[i] = s
  }
  return qs.map(({ vector: q, domain }) => {
    const want = domains.indexOf(domain)
    let qq = 0
    for (let d = 0; d < dim; d++) qq += q[d] * q[d]
    const qn = Math.sqrt(qq)
    const cos = new TopK(k)
    const cosF = new TopK(k)
    const dot = new TopK(k)
    const euc = new TopK(k) // of -distance
    for (let i = 0; i < count; i++) {
      const v = rows[i]
      let s = 0
      for (let d = 0; d < dim; d++) s += v[d] * q[d]
      const c = norms[i] === 0 ? 0 : s / (Math.sqrt(norms[i]) * qn)
      cos.push(i, c)
      if (domainOf[i] === want) cosF.push(i, c)
      dot.push(i, s)
      euc.push(i, -Math.sqrt(Math.max(0, qq + norms[i] - 2 * s)))
    }
    const e = euc.result()
    return { cosine: cos.result(), cosineFiltered: cosF.result(), dot: dot.result(), euclidean: { rows: e.rows, scores: e.scores.map((x) => -x) } }
  })
}

module.exports = { SETS, DOMAINS, QUERIES, CLUSTERS, NOISE, idOf, rowOf, ensureSearchDataset, loadVectors, generatedVectors, queries, exactAnswers, TopK, generate }

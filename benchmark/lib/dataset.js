'use strict'
// The benchmark's data: synthetic test patterns from a seeded generator,
// written once into a SQLite database by pattern-cache itself (so the schema
// is the package's own), under benchmark/data/<size>/, and reused while its
// manifest matches. Every contender builds its own files from that database.

const fs = require('node:fs')
const path = require('node:path')

const DATA_ROOT = path.join(__dirname, '..', 'data')
const GENERATOR_VERSION = 1
const SEED = 20260101
const DIM = 768
const BATCH = 5000

// Two domains of fixed size, the rest spread evenly over the others.
const SMALL_DOMAIN = 'auth' // exactly 100 patterns
const LARGE_DOMAIN = 'payments' // exactly 1,000 patterns (when the data set has room for it)
const OTHER_DOMAINS = [
  'checkout', 'search', 'profile', 'notifications', 'api-gateway', 'billing', 'inventory', 'onboarding',
  'orders', 'shipping', 'reviews', 'catalog', 'admin', 'reporting', 'messaging', 'settings',
  'analytics', 'uploads', 'sessions', 'webhooks',
]
const TYPES = ['unit', 'integration', 'e2e', 'contract', 'snapshot', 'property']
const FRAMEWORKS = ['jest', 'vitest', 'mocha', 'playwright', 'cypress']
const VERDICTS = ['success', 'success', 'success', 'failure', 'flaky', 'unknown']
const WORDS = [
  'expect', 'await', 'render', 'fixture', 'user', 'order', 'token', 'session', 'cart', 'price',
  'result', 'toBe', 'toEqual', 'mock', 'request', 'response', 'status', 'page', 'click', 'fill',
]

// mulberry32, the tests' seeded PRNG (floats in [0, 1)): one copy for tests, torture and benchmark.
const { rng } = require('../../__test__/helpers.js')

/** A seeded Fisher-Yates shuffle, in place. */
function shuffle(xs, random) {
  for (let i = xs.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1))
    const t = xs[i]
    xs[i] = xs[j]
    xs[j] = t
  }
  return xs
}

const idOf = (i) => `pattern-${String(i).padStart(6, '0')}`

/** The domain of every pattern index: sizes fixed, order shuffled (seeded). */
function domainAssignment(count) {
  const labels = []
  const push = (name, n) => {
    for (let i = 0; i < n; i++) labels.push(name)
  }
  push(SMALL_DOMAIN, Math.min(100, count))
  if (count >= 1100 + OTHER_DOMAINS.length) push(LARGE_DOMAIN, 1000)
  const rest = count - labels.length
  for (let d = 0; d < OTHER_DOMAINS.length; d++) {
    push(OTHER_DOMAINS[d], Math.floor(rest / OTHER_DOMAINS.length) + (d < rest % OTHER_DOMAINS.length ? 1 : 0))
  }
  return shuffle(labels, rng(SEED ^ count))
}

function makeContent(random, domain, type, framework, i) {
  const length = 100 + Math.floor(random() * 401) // 100..500 bytes of ASCII
  let s = `// ${framework} ${type} test ${i}\ndescribe('${domain}', () => {\n  it('case ${i}', async () => {\n`
  while (s.length < length) s += `    ${WORDS[Math.floor(random() * WORDS.length)]}(${Math.floor(random() * 1000)})\n`
  return s.slice(0, length)
}

/** Yields the patterns of a data set of `count`, in batches, deterministically. */
function* generate(count) {
  const random = rng(SEED + count)
  const domains = domainAssignment(count)
  const pick = (xs) => xs[Math.floor(random() * xs.length)]
  const base = Date.UTC(2026, 0, 1)
  let batch = []
  for (let i = 0; i < count; i++) {
    const domain = domains[i]
    const type = pick(TYPES)
    const framework = pick(FRAMEWORKS)
    const embedding = new Float32Array(DIM)
    let norm = 0
    for (let d = 0; d < DIM; d++) norm += (embedding[d] = random() * 2 - 1) ** 2
    norm = Math.sqrt(norm)
    for (let d = 0; d < DIM; d++) embedding[d] /= norm
    const usageCount = Math.floor(random() * 200)
    batch.push({
      id: idOf(i),
      type,
      domain,
      framework,
      content: makeContent(random, domain, type, framework, i),
      embedding,
      coverage: Math.round(random() * 1000) / 1000,
      flakinessScore: Math.round(random() * random() * 1000) / 1000,
      verdict: pick(VERDICTS),
      createdAt: base - Math.floor(random() * 90 * 86_400_000),
      lastUsed: base - Math.floor(random() * 86_400_000),
      usageCount,
      successCount: Math.floor(usageCount * random()),
      metadata: { owner: `team-${pick(['core', 'growth', 'platform'])}`, ticket: `PC-${1000 + i}` },
    })
    if (batch.length === BATCH) {
      yield batch
      batch = []
    }
  }
  if (batch.length) yield batch
}

function manifestFor(count) {
  return { generator: GENERATOR_VERSION, seed: SEED, count, dim: DIM, smallDomain: SMALL_DOMAIN, largeDomain: LARGE_DOMAIN }
}

/**
 * The data set of `count` patterns: generated into benchmark/data/<count>/
 * when absent (or made by another generator version), else reused.
 * Returns paths, domain names and a seeded sample of ids to read.
 */
async function ensureDataset(count, log = () => {}) {
  const dir = path.join(DATA_ROOT, String(count))
  const dbPath = path.join(dir, 'patterns.db')
  const manifestPath = path.join(dir, 'manifest.json')
  const want = manifestFor(count)
  let have = null
  try {
    have = JSON.parse(fs.readFileSync(manifestPath, 'utf8'))
  } catch {}
  if (!have || JSON.stringify(have) !== JSON.stringify(want) || !fs.existsSync(dbPath)) {
    log(`generating ${count.toLocaleString('en-US')} patterns into ${path.relative(process.cwd(), dir)}/ ...`)
    const started = Date.now()
    fs.rmSync(dir, { recursive: true, force: true })
    fs.mkdirSync(dir, { recursive: true })
    const { PatternCache } = require('../..')
    // No cache file while loading: the contenders build theirs afterwards.
    const cache = await PatternCache.open({ dbPath, enabled: false })
    for (const batch of generate(count)) await cache.storePatterns(batch)
    await cache.shutdown()
    // Fold the WAL into the database file so every reader sees one file.
    const Database = require('better-sqlite3')
    const db = new Database(dbPath)
    db.pragma('wal_checkpoint(TRUNCATE)')
    db.close()
    fs.writeFileSync(manifestPath, JSON.stringify(want, null, 2) + '\n')
    log(`  done in ${((Date.now() - started) / 1000).toFixed(1)} s`)
  }
  return describeDataset(count)
}

/** The paths and names of the data set of `count` (without generating it). */
function describeDataset(count) {
  const dir = path.join(DATA_ROOT, String(count))
  let hotIds
  return {
    count,
    dir,
    dbPath: path.join(dir, 'patterns.db'),
    dim: DIM,
    smallDomain: SMALL_DOMAIN,
    largeDomain: count >= 1100 + OTHER_DOMAINS.length ? LARGE_DOMAIN : null,
    /** A framework: about a fifth of the patterns (some 2,000 at 10,000, 20,000 at 100,000). */
    listFramework: FRAMEWORKS[0],
    /** Ids to read in hit measures: a seeded random sample of up to 1,000. */
    get hotIds() {
      hotIds ||= shuffle(Array.from({ length: count }, (_, i) => idOf(i)), rng(SEED * 7 + count)).slice(0, 1000)
      return hotIds
    },
    /** A path for a contender's own file(s) in this data set's folder. */
    file: (name) => path.join(dir, name),
  }
}

module.exports = { ensureDataset, describeDataset, generate, rng, shuffle, DATA_ROOT, DIM }

'use strict'
// The main job: on the embedded default database (.pattern-cache/ under the
// current directory) seed realistic test patterns when it is empty, build the
// cache, serve the same loads from both tiers, and show what each served,
// how fast, and the metrics.

const { performance } = require('node:perf_hooks')
const { PatternCache } = require('..')
// The seeded PRNG (mulberry32) of the tests, torture and benchmark: one copy.
const { rng } = require('../__test__/helpers.js')

const SEED_COUNT = 3000
const DIM = 384
const DOMAINS = ['auth', 'payments', 'checkout', 'search', 'profile', 'notifications', 'api-gateway', 'billing', 'inventory', 'onboarding']
const TYPES = ['unit', 'integration', 'e2e', 'contract', 'snapshot', 'property']
const FRAMEWORKS = ['jest', 'vitest', 'mocha', 'playwright', 'cypress']
const VERDICTS = ['success', 'success', 'success', 'failure', 'flaky', 'unknown']
const SUBJECTS = {
  auth: ['login with valid credentials', 'rejects an expired token', 'refreshes the session', 'locks after 5 failed attempts'],
  payments: ['charges the saved card', 'retries a declined payment', 'refunds a partial amount', 'rounds currency to cents'],
  checkout: ['applies a discount code', 'computes tax for the region', 'keeps the cart after reload', 'blocks an empty cart'],
  search: ['ranks exact matches first', 'handles unicode queries', 'paginates 20 results', 'debounces keystrokes'],
  profile: ['updates the avatar', 'validates the email field', 'exports personal data', 'deletes the account'],
  notifications: ['batches digest emails', 'respects quiet hours', 'deduplicates pushes', 'unsubscribes from a link'],
  'api-gateway': ['rate limits per key', 'returns 404 for unknown routes', 'propagates trace headers', 'times out slow upstreams'],
  billing: ['prorates a plan change', 'issues an invoice PDF', 'handles a failed renewal', 'applies VAT reverse charge'],
  inventory: ['reserves stock on order', 'releases stock on cancel', 'reports low stock', 'syncs with the warehouse'],
  onboarding: ['shows the welcome tour', 'skips steps already done', 'sends the invite email', 'tracks completion'],
}

function seedPatterns(count) {
  const r = rng(2026)
  const pick = (xs) => xs[Math.floor(r() * xs.length)]
  const now = Date.now()
  const patterns = []
  for (let i = 0; i < count; i++) {
    const domain = pick(DOMAINS)
    const type = pick(TYPES)
    const framework = pick(FRAMEWORKS)
    const subject = pick(SUBJECTS[domain])
    const embedding = new Float32Array(DIM)
    let norm = 0
    for (let d = 0; d < DIM; d++) norm += (embedding[d] = r() * 2 - 1) ** 2
    for (let d = 0; d < DIM; d++) embedding[d] /= Math.sqrt(norm)
    const usageCount = Math.floor(r() * 200)
    patterns.push({
      id: `${domain}/${type}/${String(i).padStart(5, '0')}`,
      type,
      domain,
      framework,
      content:
        framework === 'playwright' || framework === 'cypress'
          ? `test('${subject}', async ({ page }) => {\n  await page.goto('/${domain}')\n  await expect(page.getByRole('main')).toContainText('${subject}')\n})`
          : `describe('${domain}', () => {\n  it('${subject}', async () => {\n    const result = await ${domain.replace('-', '')}Service.run(fixture(${i}))\n    expect(result.ok).toBe(true)\n  })\n})`,
      embedding,
      coverage: Math.round(r() * 1000) / 1000,
      flakinessScore: Math.round(r() * r() * 1000) / 1000,
      verdict: pick(VERDICTS),
      createdAt: now - Math.floor(r() * 90 * 86_400_000),
      lastUsed: now - Math.floor(r() * 86_400_000),
      usageCount,
      successCount: Math.floor(usageCount * r()),
      metadata: { owner: `team-${pick(['core', 'growth', 'platform'])}`, ticket: `PC-${1000 + i}` },
    })
  }
  return patterns
}

function median(xs) {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.floor(s.length / 2)]
}

async function timed(n, fn) {
  const times = []
  let result
  for (let i = 0; i < n; i++) {
    const t = performance.now()
    result = await fn(i)
    times.push((performance.now() - t) * 1000)
  }
  return { result, medianUs: median(times) }
}

const count = (r) => (Array.isArray(r) ? r.filter(Boolean).length : r ? 1 : 0)
const fmt = (n) => n.toFixed(1).padStart(9)

async function workload(cache, ids, queries) {
  const rows = []
  const run = async (name, n, fn) => {
    const { result, medianUs } = await timed(n, fn)
    rows.push({ name, results: count(result), medianUs, result })
  }
  await run('loadPattern(id)', 2000, (i) => cache.loadPattern(ids[(i * 7919) % ids.length]))
  await run('loadPatterns(100 ids)', 200, (i) => cache.loadPatterns(ids.slice(i % 1000, (i % 1000) + 100)))
  await run("loadPatternsByDomain('auth')", 50, () => cache.loadPatternsByDomain('auth'))
  await run("loadPatternsByFramework('vitest')", 50, () => cache.loadPatternsByFramework('vitest'))
  await run("query({ domain: 'payments', type: 'e2e' })", 200, () => cache.query({ domain: 'payments', type: 'e2e' }))
  await run("query({ framework: 'jest', limit: 10 })", 200, () => cache.query({ framework: 'jest', limit: 10 }))
  await run('searchSimilar(embedding) (top 10)', 200, (i) => cache.searchSimilar(queries[i % queries.length]))
  await run("searchSimilar(embedding, { domain: 'auth' })", 200, (i) => cache.searchSimilar(queries[i % queries.length], { domain: 'auth' }))
  await run('searchSimilar(embedding, { useMMR: true })', 100, (i) => cache.searchSimilar(queries[i % queries.length], { useMMR: true }))
  return rows
}

function sameResults(a, b) {
  const norm = (r) => JSON.stringify(r, (k, v) => (v instanceof Float32Array ? Array.from(v) : v))
  return a.every((row, i) => norm(row.result) === norm(b[i].result))
}

async function main() {
  const events = []
  const cache = await PatternCache.open({ onEvent: (e) => events.push(e) })
  let seeded = false
  if (cache.getMetrics().patternCount === 0) {
    const patterns = seedPatterns(SEED_COUNT)
    const t = performance.now()
    await cache.storePatterns(patterns)
    console.log(`seeded ${patterns.length} patterns into the empty database in ${(performance.now() - t).toFixed(0)} ms (one transaction)`)
    const built = await cache.rebuildCache()
    console.log(`built the cache file: ${built.patternCount} patterns, ${(built.cacheFileSize / 1e6).toFixed(1)} MB, ${built.duration.toFixed(0)} ms`)
    seeded = true
  }
  const all = await cache.query({})
  const ids = all.map((p) => p.id)
  const m0 = cache.getMetrics()
  console.log(`\ndatabase: .pattern-cache/patterns.db (${m0.patternCount} patterns${seeded ? ', seeded now' : ''})`)
  console.log(`cache:    .pattern-cache/patterns.v2.pcache (${(m0.cacheFileSize / 1e6).toFixed(1)} MB), tier in use: ${m0.tier}`)

  const sample = await cache.loadPattern(ids[42])
  console.log(`\nsample pattern ${sample.id}: ${sample.framework} ${sample.type} test, verdict ${sample.verdict}, coverage ${sample.coverage}, ${sample.embedding.length}-dim Float32Array embedding`)
  console.log(sample.content.split('\n').map((l) => '    ' + l).join('\n'))

  const similar = await cache.searchSimilar(sample.embedding, { k: 4 })
  console.log(`most similar to it (exact cosine, ties by id): ${similar.map((h) => `${h.pattern.id} ${h.score.toFixed(3)}`).join(', ')}`)

  const queries = all.slice(0, 50).map((p) => p.embedding)
  const tier1Rows = await workload(cache, ids, queries)
  const sqliteOnly = await PatternCache.open({ enabled: false })
  const tier2Rows = await workload(sqliteOnly, ids, queries)
  await sqliteOnly.shutdown()

  console.log('\n' + 'operation'.padEnd(44) + 'results' + '  tier 1 (cache) µs' + '  tier 2 (SQLite) µs' + '  speed-up')
  for (let i = 0; i < tier1Rows.length; i++) {
    const a = tier1Rows[i]
    const b = tier2Rows[i]
    console.log(a.name.padEnd(44) + String(a.results).padStart(7) + fmt(a.medianUs).padStart(19) + fmt(b.medianUs).padStart(20) + `${(b.medianUs / a.medianUs).toFixed(1)}x`.padStart(10))
  }
  console.log('(median per awaited call)')
  console.log(`identical results from both tiers: ${sameResults(tier1Rows, tier2Rows) ? 'yes' : 'NO'}`)

  const probe = { ...all[0], id: 'demo/written-now', content: "it('is visible at once', () => {})" }
  await cache.storePattern(probe)
  const seen = await cache.loadPattern(probe.id)
  console.log(`\nstored ${probe.id}; read back at once: ${seen ? 'yes' : 'NO'} (answered by tier: ${cache.getMetrics().tier}; the cache file is amended from the database's change log until the background rebuild lands)`)
  const deleted = await cache.deletePattern(probe.id)
  console.log(`deleted it: ${deleted}; read back: ${await cache.loadPattern(probe.id)}`)
  const rebuilt = await cache.rebuildCache()
  console.log(`rebuildCache(): ${rebuilt.success ? 'ok' : rebuilt.error}, ${rebuilt.patternCount} patterns in ${rebuilt.duration.toFixed(0)} ms; tier: ${cache.getMetrics().tier}`)

  console.log('\nevents seen:', events.map((e) => e.type + ('reason' in e ? `(${e.reason})` : '')).join(', ') || 'none')
  const m = cache.getMetrics()
  console.log('\nmetrics:')
  for (const [k, v] of Object.entries(m)) console.log(`  ${k.padEnd(26)} ${typeof v === 'number' && !Number.isInteger(v) ? v.toFixed(4) : v}`)
  await cache.shutdown()
}

main().catch((e) => {
  console.error(e)
  process.exit(1)
})

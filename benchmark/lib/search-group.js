'use strict'
// The similarity-search group: top-10 exact (and one approximate) search over
// clustered unit vectors, one thread, every contender in the same run.
//
// Per data set (lib/search-data.js): seed it through pattern-cache (once,
// reused), build pattern-cache's cache file fresh, read every vector back from
// SQLite, compute the exact float64 answers of the 50 queries, then per
// contender (contenders/search/): open it (and build its index: timed, shown as
// its build), run every query once and compare the answers with the float64
// ones (that pass is also the warm-up), then time each query kind with
// tinybench over the 50 queries in turn. Then pattern-cache's first search
// after open, which verifies the vectors' block checksums.

const { performance } = require('node:perf_hooks')
const { SETS, QUERIES, CLUSTERS, NOISE, ensureSearchDataset, loadVectors, queries, exactAnswers } = require('./search-data')
const { collect, micro } = require('./measure')

const K = 10
const CONTENDERS = ['pattern-cache', 'scan-floor', 'js-loop', 'hnswlib-bruteforce', 'usearch-exact', 'usearch-hnsw', 'sqlite-vec']

/** The query kinds, as shown in the tables. */
const QUERY = {
  cosine: 'top-10 cosine',
  cosineFiltered: 'top-10 cosine, domain filter (10%)',
  dot: 'top-10 dot',
  euclidean: 'top-10 euclidean',
  first: 'first searchSimilar after open (cosine)',
}

const contender = (name) => require(`../contenders/search/${name}`)

/** Titles and descriptions of the search contenders (loading each module: pattern-cache's needs the addon). */
function searchContenders() {
  const out = {}
  for (const name of CONTENDERS) {
    try {
      const c = contender(name)
      out[name] = { title: c.title, description: c.description }
    } catch (e) {
      out[name] = { title: name, description: `(could not load: ${e.message.split('\n')[0]})` }
    }
  }
  return out
}

/** How one contender's answers compare with the exact float64 ones, over every query. */
function compare(gotRows, gotScores, want) {
  let hits = 0
  let exactOrder = 0
  let minCount = Infinity
  let maxScoreError = 0
  const mismatches = []
  gotRows.forEach((rows, j) => {
    const w = want[j]
    const wanted = new Set(w.rows)
    hits += rows.filter((r) => wanted.has(r)).length
    minCount = Math.min(minCount, rows.length)
    if (rows.length === w.rows.length && rows.every((r, i) => r === w.rows[i])) exactOrder++
    else if (mismatches.length < 3) {
      // how close the float64 scores of the rows that differ are: a near-tie is rounding, not a wrong answer
      const at = rows.findIndex((r, i) => r !== w.rows[i])
      mismatches.push({ query: j, at, got: rows.slice(at, at + 2), want: w.rows.slice(at, at + 2), wantScores: w.scores.slice(at, at + 2) })
    }
    if (gotScores) {
      gotScores[j].forEach((s, i) => {
        if (rows[i] === w.rows[i]) maxScoreError = Math.max(maxScoreError, Math.abs(s - w.scores[i]))
      })
    }
  })
  const total = want.reduce((n, w) => n + w.rows.length, 0)
  return { recall: hits / total, exactOrder, queries: want.length, minCount, maxScoreError: gotScores ? maxScoreError : undefined, mismatches }
}

/** Runs the search group over every set (BENCH_QUICK: the 10,000 set only). */
async function measureSearch(ctx) {
  const { log, attempt, config, quick } = ctx
  const results = { sets: [], timings: [], answers: [], builds: [], k: K, queries: QUERIES, clusters: CLUSTERS, noise: NOISE, contenders: searchContenders() }
  ctx.results.search = results
  const sets = quick ? SETS.filter((s) => s.count <= 10000) : SETS
  for (const set of sets) {
    await attempt(`similarity search at ${set.name}`, () => measureSet(set, results, ctx))
  }
  return results
}

async function measureSet(set, results, { log, attempt, config, checkTier, fmtTime }) {
  log(`\n== similarity search, ${set.name} (clustered unit vectors, top-${K}, one thread)`)
  const ds = await ensureSearchDataset(set, log)
  results.sets.push({ name: set.name, count: set.count, dim: set.dim, seedMs: ds.seedMs })
  if (ds.seedMs) results.builds.push({ set: set.name, contender: 'pattern-cache', what: `storePatterns, ${set.count.toLocaleString('en-US')} in batches of 5,000 (once; reused)`, ms: ds.seedMs })
  const pc = contender('pattern-cache')
  const rebuildStarted = performance.now()
  await pc.prepare(ds)
  results.builds.push({ set: set.name, contender: 'pattern-cache', what: 'rebuildCache() (the cache file with its vectors section)', ms: performance.now() - rebuildStarted })

  let started = performance.now()
  const data = loadVectors(ds)
  const qs = queries(set).map((q) => ({ ...q, array: Array.from(q.vector), blob: Buffer.from(q.vector.buffer, q.vector.byteOffset, q.vector.byteLength) }))
  log(`  read ${set.count.toLocaleString('en-US')} vectors back from SQLite in ${((performance.now() - started) / 1000).toFixed(1)} s`)
  started = performance.now()
  const truth = exactAnswers(data, qs, K)
  log(`  exact float64 answers of ${qs.length} queries in ${((performance.now() - started) / 1000).toFixed(1)} s`)
  const wanted = (kind) => truth.map((t) => t[kind])

  const record = (measure, name, stats) => {
    results.timings.push({ set: set.name, measure, contender: name, ...stats })
    log(`    ${name} ${measure}`.padEnd(66) + `median ${fmtTime(stats.median).padStart(10)}   p99 ${fmtTime(stats.p99).padStart(10)}   (${stats.runs} runs)`)
  }

  for (const name of CONTENDERS) {
    await attempt(`similarity search of ${name} at ${set.name}`, async () => {
      const c = contender(name)
      if (c.prepare && name !== 'pattern-cache') {
        const t = performance.now()
        await c.prepare(ds, data)
        const ms = performance.now() - t
        if (ms > 1000) log(`  prepared ${name} in ${(ms / 1000).toFixed(1)} s`)
      }
      collect()
      let store = await c.open(ds, data)
      try {
        if (store.build) {
          results.builds.push({ set: set.name, contender: name, ...store.build })
          log(`  ${name}: built in ${(store.build.ms / 1000).toFixed(1)} s (${store.build.what})`)
        }
        // every query once: the answers, compared with the exact ones (and the warm-up)
        for (const [kind, fn] of Object.entries(store.queries)) {
          const rows = []
          const scores = []
          for (const q of qs) {
            const raw = await fn(q)
            if (store.rows) {
              rows.push(store.rows(raw).map(Number))
              if (store.scores) scores.push(store.scores(raw))
            }
          }
          if (store.rows) {
            const a = compare(rows, store.scores ? scores : null, wanted(kind))
            results.answers.push({ set: set.name, measure: QUERY[kind], contender: name, exact: c.exact, ...a })
            const short = a.minCount < K ? `, fewest results ${a.minCount} of ${K}` : ''
            log(`    ${name} ${QUERY[kind]}: recall@${K} ${a.recall.toFixed(4)}, same ids in the same order for ${a.exactOrder} of ${a.queries} queries${short}`)
          }
        }
        if (store.cache) await warm(store, qs)
        const tasks = {}
        for (const [kind, fn] of Object.entries(store.queries)) {
          let i = 0
          tasks[QUERY[kind]] = async () => {
            if (!(await fn(qs[i++ % qs.length]))) throw new Error('no answer')
          }
        }
        const out = await micro(tasks, { time: config.searchTime, warmupTime: config.searchWarmup, iterations: config.searchIterations, warmupIterations: 5 })
        if (store.cache) checkTier(name, store)
        for (const [measure, stats] of Object.entries(out)) record(measure, name, stats)
      } finally {
        await store.close()
        store = null
        collect()
      }
    })
  }

  // pattern-cache's first search after open: it verifies the vectors' block checksums as it scans
  await attempt(`${QUERY.first} at ${set.name}`, async () => {
    const samples = []
    for (let r = 0; r < config.firstRuns; r++) {
      collect()
      const cache = await pc.openCache(ds)
      try {
        const q = qs[r % qs.length]
        const t = performance.now()
        const got = await cache.searchSimilar(q.vector, { k: K })
        samples.push(performance.now() - t)
        if (got.length !== K) throw new Error(`first search returned ${got.length}`)
        checkTier('pattern-cache', { cache })
      } finally {
        await cache.shutdown()
      }
    }
    const { summary } = require('./measure')
    record(QUERY.first, 'pattern-cache', summary(samples))
  })
}

/** A few more searches of every kind before timing (the answer pass already ran each query once). */
async function warm(store, qs) {
  for (const fn of Object.values(store.queries)) for (let i = 0; i < 5; i++) await fn(qs[i])
}

module.exports = { measureSearch, searchContenders, QUERY, K, CONTENDERS }

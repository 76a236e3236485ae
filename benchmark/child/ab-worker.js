'use strict'
// One round of the A/B (benchmark/ab.js) for one build, in a fresh process:
//   node --expose-gc ab-worker.js <package entry> <dbPath> <cachePath> <dim>
// Prints one JSON line of samples (ms): the first and a second open, awaited
// loadPattern hits, loadPatternsByDomain, searchSimilar unfiltered and with a
// domain filter. The same calls, in the same order, for either build.

const [entry, dbPath, cachePath, dimText] = process.argv.slice(2)
const { PatternCache } = require(entry)
const dim = Number(dimText)

const now = () => Number(process.hrtime.bigint()) / 1e6

async function timed(samples, f) {
  const t0 = now()
  await f()
  samples.push(now() - t0)
}

function vector(seed) {
  const v = new Float32Array(dim)
  let x = seed >>> 0
  for (let i = 0; i < dim; i++) {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0
    v[i] = x / 4294967296 - 0.5
  }
  return v
}

async function main() {
  const options = { dbPath, cachePath, backgroundRebuild: false }
  const out = { open: [], secondOpen: [], hit: [], byDomain: [], search: [], searchFiltered: [] }
  global.gc?.()
  let cache
  await timed(out.open, async () => {
    cache = await PatternCache.open(options)
  })
  if (cache.getMetrics().tier !== 'cache') throw new Error(`${entry}: tier 1 not serving after open`)
  await cache.shutdown()
  global.gc?.()
  await timed(out.secondOpen, async () => {
    cache = await PatternCache.open(options)
  })
  const count = cache.getMetrics().patternCount
  const ids = Array.from({ length: 2000 }, (_, i) => `p-${String((i * 7919) % count).padStart(6, '0')}`)
  for (const id of ids.slice(0, 200)) await cache.loadPattern(id) // warm: first touches hash records
  for (const id of ids) await timed(out.hit, () => cache.loadPattern(id))
  for (let i = 0; i < 200; i++) await timed(out.byDomain, () => cache.loadPatternsByDomain(`d${i % 100}`))
  await cache.searchSimilar(vector(0), { k: 10 }) // warm: the first scan hashes the blocks
  for (let i = 1; i <= 20; i++) await timed(out.search, () => cache.searchSimilar(vector(i), { k: 10 }))
  for (let i = 1; i <= 20; i++) {
    await timed(out.searchFiltered, () => cache.searchSimilar(vector(i), { k: 10, domain: `d${i % 10}` }))
  }
  if (cache.getMetrics().tier !== 'cache') throw new Error(`${entry}: tier 1 stopped serving`)
  await cache.shutdown()
  process.stdout.write(JSON.stringify(out) + '\n')
}

main().catch((e) => {
  console.error(e)
  process.exit(1)
})

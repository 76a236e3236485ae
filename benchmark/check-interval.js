'use strict'
// What the cross-process generation check costs on the read path:
// awaited cache hits with checkInterval 0 (a look at the database before
// every read) against the default 1000 ms (one look per second).
// Run: node benchmark/check-interval.js
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { performance } = require('node:perf_hooks')
const { PatternCache } = require('..')

async function main() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pc-check-interval-'))
  const dbPath = path.join(dir, 'p.db')
  const seed = await PatternCache.open({ dbPath })
  const patterns = Array.from({ length: 10_000 }, (_, i) => ({
    id: `p${i}`,
    type: 'unit',
    domain: `d${i % 10}`,
    content: 'x'.repeat(200),
    embedding: new Float32Array(768).fill(i),
  }))
  await seed.storePatterns(patterns)
  await seed.rebuildCache()
  await seed.shutdown()
  const N = 20_000
  for (const checkInterval of [1000, 0, 1000, 0]) {
    const cache = await PatternCache.open({ dbPath, checkInterval })
    for (let i = 0; i < 2000; i++) await cache.loadPattern(`p${i}`)
    const t = performance.now()
    for (let i = 0; i < N; i++) await cache.loadPattern(`p${(i * 7) % 10_000}`)
    const us = ((performance.now() - t) * 1000) / N
    console.log(`checkInterval ${String(checkInterval).padStart(4)} ms: ${us.toFixed(2)} us per awaited loadPattern (tier ${cache.getMetrics().tier})`)
    await cache.shutdown()
  }
  fs.rmSync(dir, { recursive: true, force: true })
}

main()

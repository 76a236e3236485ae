'use strict'
// A cache hit, repeated, for a profiler: the native half of loadPattern
// (tryLoadPattern) 1.5 million times over 10,000 ids of the 10,000-pattern
// benchmark data set. Run: perf record -F 4000 -g node --perf-basic-prof benchmark/profile-hit.js
// (after `npm run bench` has generated benchmark/data/10000).
const path = require('node:path')
const native = require('../binding.js')

async function main() {
  const dir = path.join(__dirname, 'data', '10000')
  const cache = await native.open(
    (buffer, ...fields) => fields.length + buffer.byteLength,
    () => 0,
    { dbPath: path.join(dir, 'patterns.db'), cachePath: path.join(dir, 'pattern-cache.pcache'), checkInterval: 2147483647, backgroundRebuild: false },
  )
  const all = []
  for (let i = 0; i < 10000; i++) all.push(`pattern-${String(i).padStart(6, '0')}`)
  let found = 0
  for (let i = 0; i < 1_500_000; i++) if (cache.tryLoadPattern(all[(i * 7919) % all.length])) found++
  console.log(`${found} hits`)
  await cache.shutdown()
}
main()

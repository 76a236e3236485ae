'use strict'
// A/B of two builds of this package in one run, on the same data and the same
// machine, rounds interleaved (A, B, A, B, ...) so that drift in the machine's
// load falls on both alike:
//   node benchmark/ab.js <checkout A> <checkout B> [count] [dim] [rounds]
// Each checkout must have its addon built. Round 0 (not counted) builds the cache files. Measures (child/ab-worker.js, one
// fresh process per build per round): first and second open, loadPattern hit,
// loadPatternsByDomain (1% of the patterns), searchSimilar top 10 unfiltered
// and with a 10% domain filter. Prints a table of medians, B/A, and the spread
// of A's own round medians (the noise: a B/A inside it is no change).
// Writes the table to benchmark/data/AB.md.

const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { execFileSync } = require('node:child_process')

const [a, b, countText = '10000', dimText = '768', roundsText = '9'] = process.argv.slice(2)
if (!a || !b) {
  console.error('usage: node benchmark/ab.js <checkout A> <checkout B> [count] [dim] [rounds]')
  process.exit(2)
}
const count = Number(countText)
const dim = Number(dimText)
const rounds = Number(roundsText)
const worker = path.join(__dirname, 'child', 'ab-worker.js')

function median(xs) {
  const s = [...xs].sort((x, y) => x - y)
  const m = s.length >> 1
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2
}

/** A database of `count` patterns written by build A (the older: B migrates its copy in the warm-up round), copied for each build. */
async function makeData(dir) {
  const { PatternCache } = require(path.resolve(a))
  const dbPath = path.join(dir, 'source.db')
  const cache = await PatternCache.open({ dbPath, cachePath: path.join(dir, 'source.pcache'), backgroundRebuild: false })
  let x = 12345
  const next = () => ((x = (Math.imul(x, 1664525) + 1013904223) >>> 0) / 4294967296)
  for (let start = 0; start < count; start += 5000) {
    const batch = []
    for (let i = start; i < Math.min(count, start + 5000); i++) {
      const embedding = new Float32Array(dim)
      for (let j = 0; j < dim; j++) embedding[j] = next() - 0.5
      batch.push({
        id: `p-${String(i).padStart(6, '0')}`,
        type: ['unit', 'integration', 'e2e'][i % 3],
        domain: `d${i % 100}`,
        framework: ['jest', 'vitest'][i % 2],
        content: `test ${i}: expect(render(user ${i})).toBe(ok)`,
        embedding,
      })
    }
    await cache.storePatterns(batch)
  }
  await cache.shutdown()
  return dbPath
}

async function main() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pattern-cache-ab-'))
  try {
    const source = await makeData(dir)
    const builds = { A: path.resolve(a), B: path.resolve(b) }
    const samples = { A: [], B: [] }
    for (const [name] of Object.entries(builds)) {
      fs.copyFileSync(source, path.join(dir, `${name}.db`))
    }
    // Round 0 is a warm-up, not counted: it builds each build's cache file
    // (and brings the files into the page cache).
    for (let round = 0; round <= rounds; round++) {
      for (const [name, root] of Object.entries(builds)) {
        const line = execFileSync(
          process.execPath,
          ['--expose-gc', worker, root, path.join(dir, `${name}.db`), path.join(dir, `${name}.pcache`), String(dim)],
          { encoding: 'utf8' },
        )
        if (round > 0) samples[name].push(JSON.parse(line))
      }
      process.stderr.write(`round ${round}/${rounds}\n`)
    }
    const measures = Object.keys(samples.A[0])
    const unit = (ms) => (ms < 1 ? `${(ms * 1000).toFixed(1)} µs` : `${ms.toFixed(2)} ms`)
    const rows = [
      `A/B at ${count} x ${dim}, ${rounds} interleaved rounds (${new Date().toISOString().slice(0, 10)}, ${os.cpus().length} cores)`,
      '',
      `A: ${builds.A}`,
      `B: ${builds.B}`,
      '',
      '| measure | A median | B median | B/A | A round-median spread (noise) |',
      '|---|---|---|---|---|',
    ]
    for (const m of measures) {
      // Open: one sample per round; the rest: every call of every round.
      const all = (name) => samples[name].flatMap((s) => s[m])
      const ma = median(all('A'))
      const mb = median(all('B'))
      const roundMedians = samples.A.map((s) => median(s[m]))
      const spread = (Math.max(...roundMedians) - Math.min(...roundMedians)) / ma
      rows.push(`| ${m} | ${unit(ma)} | ${unit(mb)} | ${(mb / ma).toFixed(3)} | ±${((spread / 2) * 100).toFixed(1)}% |`)
    }
    const table = rows.join('\n') + '\n'
    process.stdout.write(table)
    const out = path.join(__dirname, 'data')
    fs.mkdirSync(out, { recursive: true })
    fs.appendFileSync(path.join(out, 'AB.md'), table + '\n')
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
  }
}

main().catch((e) => {
  console.error(e)
  process.exit(1)
})

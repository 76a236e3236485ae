'use strict'
// The report: markdown tables printed to the console and written to RESULTS.md.

const fs = require('node:fs')

function fmtTime(ms) {
  if (ms === undefined || Number.isNaN(ms)) return '-'
  if (ms < 1) return `${(ms * 1000).toFixed(ms < 0.01 ? 2 : 1)} µs`
  if (ms < 1000) return `${ms.toFixed(ms < 10 ? 2 : 1)} ms`
  return `${(ms / 1000).toFixed(2)} s`
}

const fmtBytes = (b) => `${(b / 2 ** 20).toFixed(1)} MiB`
const fmtN = (n) => n.toLocaleString('en-US')

function table(header, rows) {
  const esc = (c) => String(c).replace(/\|/g, '\\|')
  return [
    `| ${header.map(esc).join(' | ')} |`,
    `|${header.map(() => '---').join('|')}|`,
    ...rows.map((r) => `| ${r.map(esc).join(' | ')} |`),
  ].join('\n')
}

function timingsTable(results, titles) {
  // grouped by measure (in the order first measured), then size; contenders in the order measured
  const order = [...new Set(results.timings.map((t) => t.measure))]
  const rows = results.timings
    .map((t, i) => ({ t, i }))
    .sort((a, b) => order.indexOf(a.t.measure) - order.indexOf(b.t.measure) || a.t.size - b.t.size || a.i - b.i)
    .map(({ t }) => t)
  return table(
    ['measure', 'patterns', 'contender', 'median', 'p99', 'runs'],
    rows.map((t) => [t.measure, fmtN(t.size), titles[t.contender] || t.contender, fmtTime(t.median), fmtTime(t.p99), fmtN(t.runs)]),
  )
}

function targetsTable(targets) {
  const mark = (met) => (met === null ? 'not measured' : met ? 'met' : 'NOT met')
  return table(['measure', 'target', 'result', 'met'], targets.map((t) => [t.measure, t.target, t.result, mark(t.met)]))
}

function memoryTable(results, titles) {
  return table(
    ['patterns', 'contender', 'RSS growth', 'JS heap growth', 'external growth', 'of which ArrayBuffers', 'processes'],
    results.memory.map((m) => [fmtN(m.size), titles[m.contender] || m.contender, fmtBytes(m.rss), fmtBytes(m.heapUsed), fmtBytes(m.external), fmtBytes(m.arrayBuffers), m.runs]),
  )
}

function rebuildTable(results, titles) {
  return table(
    ['patterns', 'contender', 'median', 'p99', 'longest event-loop stall (max of runs)', 'median run\'s stall', 'monitorEventLoopDelay max', 'runs'],
    results.rebuild.map((r) => [fmtN(r.size), titles[r.contender] || r.contender, fmtTime(r.median), fmtTime(r.p99), fmtTime(r.stallMax), fmtTime(r.stallMedian), fmtTime(r.histogramMax), r.runs]),
  )
}

const fmtRatioOf = (x) =>
  x === undefined || Number.isNaN(x) ? '-' : (x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x >= 0.1 ? x.toFixed(2) : x.toPrecision(2)) + 'x'

/** The similarity-search table: one row per data set, query and contender, with its answers' quality. */
function searchTable(search) {
  const title = (name) => search.contenders[name]?.title || name
  const answer = (t) => search.answers.find((a) => a.set === t.set && a.measure === t.measure && a.contender === t.contender)
  const pcOf = (t) => search.timings.find((u) => u.set === t.set && u.measure === t.measure && u.contender === 'pattern-cache')?.median
  // grouped by data set, then query (each in the order first measured); contenders in the order measured
  const sets = [...new Set(search.timings.map((t) => t.set))]
  const measures = [...new Set(search.timings.map((t) => t.measure))]
  const rows = search.timings
    .map((t, i) => ({ t, i }))
    .sort((a, b) => sets.indexOf(a.t.set) - sets.indexOf(b.t.set) || measures.indexOf(a.t.measure) - measures.indexOf(b.t.measure) || a.i - b.i)
    .map(({ t }) => t)
  return table(
    ['data set', 'query', 'contender', 'median', 'p99', 'runs', 'median / pattern-cache\'s', `recall@${search.k}`, 'same ids, same order', `fewest results (of ${search.k})`],
    rows.map((t) => {
      const a = answer(t)
      const first = t.measure.startsWith('first')
      return [
        t.set,
        t.measure,
        title(t.contender),
        fmtTime(t.median),
        fmtTime(t.p99),
        fmtN(t.runs),
        first ? '-' : fmtRatioOf(t.median / pcOf(t)),
        a ? a.recall.toFixed(4) : '-',
        a ? `${a.exactOrder} of ${a.queries} queries` : '-',
        a ? (a.minCount < search.k ? `**${a.minCount}**` : String(a.minCount)) : '-',
      ]
    }),
  )
}

function searchBuildTable(search) {
  const title = (name) => search.contenders[name]?.title || name
  return table(['data set', 'contender', 'what', 'time'], search.builds.map((b) => [b.set, title(b.contender), b.what, fmtTime(b.ms)]))
}

const SEARCH_BEGIN = '<!-- similarity search: begin -->'
const SEARCH_END = '<!-- similarity search: end -->'

/** The similarity-search section of RESULTS.md (empty when the group did not run). */
function searchSection(results, { machine, versions, config }, { targets, separate } = {}) {
  const search = results.search
  if (!search) return ''
  const mismatched = search.answers.filter((a) => a.contender === 'pattern-cache' && a.exactOrder < a.queries)
  return `${SEARCH_BEGIN}
## Similarity search

${separate ? `Measured on its own by \`${separate.command}\` on ${results.finishedAt} (${(results.durationMs / 60000).toFixed(1)} minutes; pattern-cache commit ${(separate.measured || versions)['pattern-cache commit']}, addon built ${(separate.measured || versions)['pattern-cache addon built']}${separate.measured && separate.measured['pattern-cache addon built'] !== versions['pattern-cache addon built'] ? ': the addon this process loaded at its start; it was rebuilt during the run' : ''}), on ${machine.cpu} (${machine.cores} cores, ${machine.memoryGiB.toFixed(1)} GiB), ${machine.os}, Node.js ${versions.node};
the rest of this file is from the last full run. Versions of the search contenders: ${['hnswlib-node', 'usearch', 'sqlite-vec', 'sqlite-vec (vec_version())'].filter((k) => versions[k]).map((k) => `${k} ${versions[k]}`).join(', ')}.
Other processes used ${results.load.map((l) => `${l.otherCores.toFixed(2)} cores on average (${l.otherCpuSeconds.toFixed(1)} s of CPU in ${l.seconds.toFixed(0)} s)`).join(', ') || 'an unknown share of the CPU'} while it ran.

${targets ? `${targetsTable(targets)}\n\n` : ''}` : ''}Top-${search.k} over clustered unit-length vectors, ${search.queries} fixed query vectors (drawn like the data, not stored ones) in turn; one thread; every contender in the same process and run, one open at a time.
Times per call (tinybench: at least ${config.searchIterations} samples and ${config.searchTime} ms per query kind, after the answer pass below and a few more searches); "median / pattern-cache's" divides a row's median by pattern-cache's for the same data set and query.
Recall@${search.k}: the share of the exact float64 answer's ids that a contender returned, over every query; "same ids, same order": queries answered with exactly the float64 ranking (ties by id).
"fewest results": the fewest a contender returned for any query (a filtered query has 1,000 or 10,000 matching patterns, so ${search.k} is always possible).

${searchTable(search)}

Building the indexes (not part of the times above):

${searchBuildTable(search)}

${mismatched.length ? `pattern-cache queries not ranked exactly like float64 (first differing position, rows got / wanted, wanted float64 scores):\n${mismatched.map((a) => `- ${a.set}, ${a.measure}: ${a.mismatches.map((m) => `query ${m.query} at ${m.at}: ${m.got.join(', ')} / ${m.want.join(', ')} (${m.wantScores.map((x) => x.toFixed(8)).join(', ')})`).join('; ')}`).join('\n')}\n\n` : ''}${search.answers.some((a) => a.maxScoreError !== undefined && a.contender === 'pattern-cache') ? `pattern-cache's scores differ from the float64 ones by at most ${Math.max(...search.answers.filter((a) => a.contender === 'pattern-cache' && a.maxScoreError !== undefined).map((a) => a.maxScoreError)).toExponential(1)} (where the ids match).\n\n` : ''}Method:

- Data (benchmark/lib/search-data.js): ${search.sets.map((s) => s.name).join(' and ')}; ${search.clusters} cluster centres (Gaussian, normalised), a point is a centre plus Gaussian noise of norm about ${search.noise}, normalised, in float32;
  10 domains of exactly 10% each, assigned at random (seeded) independently of the cluster, so \`domain\` selects 10%; 5 types, 5 frameworks.
  Stored once through pattern-cache \`storePatterns\` (5,000 per batch) into benchmark/data/search-<count>x<dim>/ and reused; the cache file is rebuilt fresh each run; every other contender is filled with the vectors read back from that database.
- The exact answers: every query against every stored float32 vector with float64 sums, scores as the metric says, ties by id.
- Contenders (benchmark/contenders/search/):
${Object.entries(search.contenders).map(([name, c]) => `  - **${c.title}**: ${c.description}`).join('\n')}
- First search after open: ${config.firstRuns} times, a new \`PatternCache.open()\` (not timed), then one \`searchSimilar\` (the first scan checks the SHA-256 of each block of vectors it reads), then \`shutdown()\`.
${separate && results.notes.length ? `\nNotes of this run:\n\n${results.notes.map((n) => `- ${n}`).join('\n')}\n` : ''}${SEARCH_END}
`
}

/** Replaces the similarity-search section of an existing RESULTS.md (or adds it before "## Machine load"). */
function spliceSearchSection(file, section) {
  let text = fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : ''
  const begin = text.indexOf(SEARCH_BEGIN)
  const end = text.indexOf(SEARCH_END)
  if (begin >= 0 && end > begin) text = text.slice(0, begin) + section.trimEnd() + text.slice(end + SEARCH_END.length)
  else {
    const at = text.indexOf('\n## Machine load')
    text = at >= 0 ? `${text.slice(0, at + 1)}${section}\n${text.slice(at + 1)}` : `${text.trimEnd()}\n\n${section}`
  }
  fs.writeFileSync(file, text)
}

function consoleReport(results, targets, titles) {
  const out = ['']
  if (results.timings.length) out.push('## Results (median and p99 per awaited call or per run)', '', timingsTable(results, titles), '')
  if (results.memory.length) out.push('## Memory growth after open', '', memoryTable(results, titles), '')
  if (results.rebuild.length) out.push('## rebuild and the event loop', '', rebuildTable(results, titles), '')
  if (results.search) out.push('## Similarity search', '', searchTable(results.search), '', searchBuildTable(results.search), '')
  out.push('## Targets', '', targetsTable(targets), '')
  return out.join('\n')
}

function markdown(results, targets, titles, { machine, versions, config }) {
  const met = targets.filter((t) => t.met === true).length
  const missed = targets.filter((t) => t.met === false).length
  const unmeasured = targets.filter((t) => t.met === null).length
  return `# pattern-cache benchmark results

${results.quick ? '**Quick run (BENCH_QUICK=1): 10,000-pattern sizes only and fewer iterations. Not the full benchmark.**\n\n' : ''}Written by \`npm run bench\` (benchmark/bench.js) on ${results.finishedAt}; the run took ${(results.durationMs / 60000).toFixed(1)} minutes.
Targets: ${met} met, ${missed} not met${unmeasured ? `, ${unmeasured} not measured` : ''}.

## Machine

| | |
|---|---|
| CPU | ${machine.cpu} |
| cores | ${machine.cores} |
| memory | ${machine.memoryGiB.toFixed(1)} GiB |
| OS | ${machine.os} |

## Versions

${table(['', 'version'], Object.entries(versions))}

## Targets

${targetsTable(targets)}

## Results

Times are per awaited call (micro-measures, tinybench) or per run (open, rebuild, fresh process).
Median and p99 over the samples; with fewer than 100 runs the p99 is close to the slowest run.

${timingsTable(results, titles)}

### Memory growth after open

Each contender opened once in a fresh child process (\`node --expose-gc\`), ${config.memoryRuns} processes per contender (medians shown):
\`process.memoryUsage()\` after full GC, before \`open\` (contender's modules already loaded) and after it.
RSS includes the JS heap and native memory; pages of a memory-mapped file count only once touched.

${memoryTable(results, titles)}

### rebuild and the event loop

While each rebuild runs, a 1 ms \`setInterval\` records the longest gap between its ticks; the stall is that gap minus the 1 ms interval.
\`perf_hooks.monitorEventLoopDelay\` (1 ms resolution) is shown alongside ("-": it took no sample because the loop never ran during the rebuild). For comparison, the same tracker on an idle event loop for 1 s: longest stall ${results.idleStall.stallMs.toFixed(2)} ms.

${rebuildTable(results, titles)}

${searchSection(results, { machine, versions, config })}
## Machine load

CPU time that other processes and the kernel used while each group of measures ran: the machine's busy time (user, system, steal; /proc/stat) minus this benchmark's own (its threads and child processes; /proc/self/stat). Before each group the benchmark waits up to a minute for other processes to use less than 0.2 cores.

${table(['measures', 'wall time', 'other processes\' CPU', 'average cores'], results.load.map((l) => [l.group, `${l.seconds.toFixed(1)} s`, `${l.otherCpuSeconds.toFixed(1)} s`, l.otherCores.toFixed(2)]))}

## Method

- Data: ${results.sizes.map(fmtN).join(' and ')} synthetic patterns (and 1,000 for the fresh-process measure) from a seeded generator (benchmark/lib/dataset.js):
  768-dimension float32 embeddings, 100-500 bytes of content, small JSON metadata, ids \`pattern-NNNNNN\`;
  domain \`auth\` has exactly 100 patterns and \`payments\` exactly 1,000, scattered over the id range; the rest spread over 20 other domains.
  Written once into a SQLite database by pattern-cache (\`storePatterns\`) under benchmark/data/ and reused; every contender builds its own files from that database.
- Contenders (benchmark/contenders/, one file each, one interface: \`open(ds) -> { get(id), byDomain(domain), close() }\`):
${Object.entries(results.descriptions).map(([name, d]) => `  - **${titles[name] || name}**: ${d}`).join('\n')}
- Every call is awaited the same way (\`await store.get(id)\`), whether the contender returns a promise or a value; every result is checked (not null, right count).
  Before measuring, each contender's answers are compared with SQLite's (content, embedding, domain ids in order).
- Hits read ids round-robin from a seeded random sample of 1,000 ids, each read once before timing, so every contender's caches are warm
  (and whatever pattern-cache does on the first read of a record, such as an integrity check, is already done).
- Open to ready is measured with a warm OS page cache for every contender (files read by ${config.openWarmup} untimed opens first), a full GC before each run, in one process, ${config.openRuns} runs per contender and size.
  For pattern-cache it is \`PatternCache.open()\` until its promise resolves with tier 1 serving; for the reference and msgpackr, reading and decoding the whole file.
- tinybench: ${config.microTime} ms (+ ${config.microWarmup} ms warm-up) per task, at least 64 samples; one contender open at a time.
- Fresh process: \`node -e 0\` and \`node benchmark/child/cold-start.js <contender>\` (require + open + one domain query of 100 patterns on the 1,000-pattern data set, exiting by itself)
  spawned alternately, ${config.coldRuns} times each (after ${config.coldWarmup} untimed each), timed from spawn to exit.
- rebuildCache(): ${config.rebuildRuns} timed runs (after 1 untimed) per contender: pattern-cache's \`rebuildCache()\` on an open instance;
  the reference's file writer (select all, encode, SHA-256, temp file + fsync + rename) on the JS thread with its own SQLite connection.
- Targets are checked on medians (p50); a ratio is the other contender's median over pattern-cache's unless its row says otherwise.
- Memory, rebuild and the 100,000 open are measured ${results.quick ? 'here at 10,000 (quick run)' : 'at 100,000'}; the page cache is warm for every file.
${results.notes.length ? `\n## Notes\n\n${results.notes.map((n) => `- ${n}`).join('\n')}\n` : ''}`
}

function writeMarkdown(file, ...args) {
  fs.writeFileSync(file, markdown(...args))
}

module.exports = { consoleReport, writeMarkdown, fmtTime, searchSection, spliceSearchSection, markdown }

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

function consoleReport(results, targets, titles) {
  return [
    '',
    '## Results (median and p99 per awaited call or per run)',
    '',
    timingsTable(results, titles),
    '',
    '## Memory growth after open',
    '',
    memoryTable(results, titles),
    '',
    '## rebuild and the event loop',
    '',
    rebuildTable(results, titles),
    '',
    '## Targets',
    '',
    targetsTable(targets),
    '',
  ].join('\n')
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

module.exports = { consoleReport, writeMarkdown, fmtTime }

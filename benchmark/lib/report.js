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
  const mark = (t) => (t.reported ? 'reported' : t.met === null ? 'not measured' : t.met ? 'met' : 'NOT met')
  return table(['measure', 'target', 'result', 'met'], targets.map((t) => [t.measure, t.target, t.result, mark(t)]))
}

function memoryTable(results, titles) {
  return table(
    ['patterns', 'contender', 'RSS growth', 'JS heap growth', 'external growth', 'of which ArrayBuffers', 'processes'],
    results.memory.map((m) => [fmtN(m.size), titles[m.contender] || m.contender, fmtBytes(m.rss), fmtBytes(m.heapUsed), fmtBytes(m.external), fmtBytes(m.arrayBuffers), m.runs]),
  )
}

/** This benchmark process's memory after each group (after a full GC). */
function processMemoryTable(results) {
  const linux = results.processMemory.some((m) => m.rssFile !== undefined)
  return table(
    ['after', 'RSS', ...(linux ? ['of which anonymous', 'of which file-backed'] : []), 'V8 heap used', 'V8 heap total', 'external', 'of which ArrayBuffers'],
    results.processMemory.map((m) => [
      m.group,
      fmtBytes(m.rss),
      ...(linux ? [m.rssAnon === undefined ? '-' : fmtBytes(m.rssAnon), m.rssFile === undefined ? '-' : fmtBytes(m.rssFile)] : []),
      fmtBytes(m.heapUsed),
      fmtBytes(m.heapTotal),
      fmtBytes(m.external),
      fmtBytes(m.arrayBuffers),
    ]),
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

/** Replaces the section between two markers of an existing RESULTS.md (or adds it before "## Machine load"). */
function spliceSection(file, section, BEGIN, END) {
  let text = fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : ''
  const begin = text.indexOf(BEGIN)
  const end = text.indexOf(END)
  if (begin >= 0 && end > begin) text = text.slice(0, begin) + section.trimEnd() + text.slice(end + END.length)
  else {
    const at = text.indexOf('\n## Machine load')
    text = at >= 0 ? `${text.slice(0, at + 1)}${section}\n${text.slice(at + 1)}` : `${text.trimEnd()}\n\n${section}`
  }
  fs.writeFileSync(file, text)
}

/** Replaces the similarity-search section of an existing RESULTS.md (or adds it before "## Machine load"). */
const spliceSearchSection = (file, section) => spliceSection(file, section, SEARCH_BEGIN, SEARCH_END)

const USAGE_BEGIN = '<!-- usage: begin -->'
const USAGE_END = '<!-- usage: end -->'
const fmtMs = (ms) => (ms === undefined || Number.isNaN(ms) ? '-' : ms < 1 ? `${(ms * 1000).toFixed(0)} µs` : ms < 1000 ? `${ms.toFixed(2)} ms` : `${(ms / 1000).toFixed(2)} s`)

/** The usage burst: one row per measure, one column per contender. */
function usageBurstTable(usage) {
  const bursts = usage.burst
  const title = (b) => usage.contenders[b.contender]?.title || b.contender
  const pcOnly = (b, f) => (b.misses ? f(b) : '-')
  const rows = [
    ['uses acknowledged (resolved true / UPDATE changed 1 row)', (b) => `${fmtN(b.acked)} of ${fmtN(b.uses)} (${fmtN(b.ackedSuccess)} with success)`],
    ['lost uses: acknowledged minus usage_count increments in SQLite', (b) => fmtN(b.lostUses)],
    ['lost successes: acknowledged minus success_count increments', (b) => fmtN(b.lostSuccesses)],
    [`used patterns whose usage_count / success_count / last_used differ from the acknowledged uses (of ${fmtN(usage.plan.distinct)})`, (b) => `${b.wrongUsage} / ${b.wrongSuccess} / ${b.wrongLastUsed}`],
    ['uses rejected (errors) / answered "no such pattern"', (b) => `${b.errors}${b.firstError ? ` (${b.firstError})` : ''} / ${b.notFound}`],
    ['awaited use: median', (b) => fmtMs(b.latency.median)],
    ['awaited use: p99', (b) => fmtMs(b.latency.p99)],
    ['awaited use: slowest', (b) => fmtMs(b.latency.max)],
    [`burst wall time (first use to last answer, ${usage.plan.processes} processes)`, (b) => fmtMs(b.wallMs)],
    ['uses per second (all processes)', (b) => fmtN(Math.round(b.acked / (b.wallMs / 1000)))],
    [`CPU time of the ${usage.plan.processes} processes during their uses (all threads; reads included), per use`, (b) => `${fmtMs(b.cpuMs)} (${fmtMs(b.cpuMs / b.uses)})`],
    ['open (each process; median, slowest)', (b) => `${fmtMs(b.openMs.median)}, ${fmtMs(b.openMs.max)}`],
    ['reads during the burst and one checkInterval after: loadPattern / query / listPatterns', (b) => `${fmtN(b.reads.get)} / ${fmtN(b.reads.query)} / ${fmtN(b.reads.page)}${b.reads.errors ? ` (${b.reads.errors} failed: ${b.reads.firstError})` : ''}${b.reads.missing ? ` (${b.reads.missing} empty)` : ''}`],
    ['a read: median, p99', (b) => `${fmtMs(b.reads.latency.median)}, ${fmtMs(b.reads.latency.p99)}`],
    [`reads answered by SQLite in each process's first checkInterval (${fmtN(usage.checkInterval)} ms) of the burst`, (b) => pcOnly(b, (x) => `${fmtN(x.misses.firstInterval)} of ${fmtN(x.reads.firstInterval)}`)],
    ['reads answered by SQLite after it (to the end of the reads)', (b) => pcOnly(b, (x) => `${fmtN(x.misses.after)} of ${fmtN(x.reads.after)}`)],
    [`read-back after the burst (loadPatterns of the ${fmtN(usage.plan.distinct)} used patterns in every process): answered by SQLite / counters differing from SQLite's`, (b) => pcOnly(b, (x) => `${fmtN(x.misses.readBack)} / ${fmtN(x.readBack.wrong + x.readBack.absent)} of ${fmtN(x.readBack.processes * x.readBack.patterns)}${x.readBack.examples.length ? ` (e.g. ${x.readBack.examples.map((e) => `${e.id}: got ${e.got.join('/')}, want ${e.want.join('/')}`).join('; ')})` : ''}`)],
    ['rebuilds started (rebuild_started events, all processes: reasons)', (b) => pcOnly(b, (x) => `${x.rebuilds.started}${Object.keys(x.rebuilds.reasons).length ? ` (${Object.entries(x.rebuilds.reasons).map(([r, n]) => `${r}: ${n}`).join(', ')}; ${x.rebuilds.beforeGo} at open, ${x.rebuilds.burst} during the burst, ${x.rebuilds.readBack} after)` : ''}; cacheRebuildCount ${x.cacheRebuildCount}`)],
  ]
  return table(['', ...bursts.map(title)], rows.map(([label, f]) => [label, ...bursts.map(f)]))
}

function usageExportTable(ex) {
  return table(
    ['data set', 'run', 'wall time', 'output', 'lines', 'peak RSS (maxRSS)', 'sampled peaks: VmRSS / anonymous / file-backed', 'baseline peak RSS (anonymous / file-backed)', 'growth'],
    ex.runs.map((r, i) => [
      ex.set,
      i + 1,
      fmtMs(r.wallMs),
      fmtBytes(r.bytes),
      fmtN(r.lines),
      fmtBytes(r.maxRss),
      `${fmtBytes(r.sampledPeak)} / ${fmtBytes(r.sampledPeakAnon)} / ${fmtBytes(r.sampledPeakFile)}`,
      `${fmtBytes(ex.baseline)} (${fmtBytes(ex.baselineAnon)} / ${fmtBytes(ex.baselineFile)})`,
      `**${fmtBytes(r.growth)}**`,
    ]),
  )
}

/** The usage section of RESULTS.md (empty when the group did not run). */
function usageSection(results, { machine, versions }, { targets, separate } = {}) {
  const usage = results.usage
  if (!usage) return ''
  const plan = usage.plan
  const ex = usage.export
  return `${USAGE_BEGIN}
## Use counters and export

${separate ? `Measured on its own by \`${separate.command}\` on ${results.finishedAt} (${(results.durationMs / 60000).toFixed(1)} minutes; pattern-cache commit ${(separate.measured || versions)['pattern-cache commit']}, addon built ${(separate.measured || versions)['pattern-cache addon built']}${separate.measured && separate.measured['pattern-cache addon built'] !== versions['pattern-cache addon built'] ? ': the addon this process loaded at its start; it was rebuilt during the run' : ''}), on ${machine.cpu} (${machine.cores} cores, ${machine.memoryGiB.toFixed(1)} GiB), ${machine.os}, Node.js ${versions.node}, better-sqlite3 ${versions['better-sqlite3']} (SQLite ${versions['SQLite (better-sqlite3)']});
the rest of this file is from the last full run.
Other processes used ${results.load.map((l) => `${l.otherCores.toFixed(2)} cores on average (${l.otherCpuSeconds.toFixed(1)} s of CPU in ${l.seconds.toFixed(0)} s)`).join(', ') || 'an unknown share of the CPU'} while it ran.

${targets ? `${targetsTable(targets)}\n\n` : ''}` : ''}${plan ? `### A burst of ${fmtN(plan.uses)} uses from ${plan.processes} processes

${fmtN(plan.uses)} uses of ${fmtN(plan.distinct)} distinct patterns (each used twice, ${fmtN(plan.successes)} with success) of ${usage.dataset.name} (${fmtN(usage.dataset.count)} patterns), dealt round-robin to ${plan.processes} child processes, each with its own store on the same database, all started together once every process is open; each awaits its ${fmtN(plan.uses / plan.processes)} uses one after another while it reads (one read per millisecond), and reads on for one checkInterval after the last process is done.

${usageBurstTable(usage)}

` : ''}${ex ? `### pattern-cache export

\`node bin/pattern-cache.js export --db <db> --out <file>\` on the ${ex.set} data set of the similarity-search group (${fmtN(ex.count)} patterns; ${ex.outputOk ? 'every run wrote one line per pattern; its first line is the database\'s first pattern, every one of its ' + ex.dim + ' numbers the stored float32' : '**the output did not look right (line count, or the first line against the database): see results.json**'}). Growth: the export's peak RSS minus the baseline, the median peak RSS of ${ex.baselines.length} processes that load the command line's modules and the package, open the store as export does (\`enabled: false, backgroundRebuild: false\`) and exit.

${usageExportTable(ex)}

` : ''}Method:

- Burst data (benchmark/lib/usage-group.js): the similarity-search generator's clustered patterns at ${usage.dataset ? usage.dataset.name : '20,000 x 384'}, with seeded counters (usageCount 0-49, lastUsed around the uses' \`at\` values or absent), stored once through \`storePatterns\` into benchmark/data/usage-<count>x<dim>/ and reused; every burst runs on a fresh copy of that database (pattern-cache's cache file built on it by one \`PatternCache.open()\` before the processes start). Each use has its own \`at\` (increasing), so \`last_used = max(...)\` is checked too.
- Contenders (the same uses, the same processes, the same reads):
${Object.values(usage.contenders).map((c) => `  - **${c.title}**: ${c.description}`).join('\n')}
- Each process (benchmark/child/usage-burst.js) awaits its uses one after another, timing each from the call to its answer; better-sqlite3's synchronous UPDATE yields to the event loop after each (\`setImmediate\`), as an awaited call does. Reads: a 1 ms timer loop, 16 of 20 \`loadPattern\` of a random id, 3 \`query({ domain, type, limit: 10 })\`, 1 \`listPatterns({ domain, limit: 100 })\` following its cursor.
- Reads answered by SQLite: \`getMetrics().cacheMisses\` of each process, sampled when its uses start, ${fmtN(usage.checkInterval)} ms (its checkInterval) later, when its reads end and after the read-back; summed over the processes. After the burst every process reads every used pattern back (\`loadPatterns\`) and compares usageCount, successCount and lastUsed with the database.
- Lost uses: the database is read (better-sqlite3, read-only) before and after; the uses each process saw acknowledged give every used pattern's expected counters.
- Export RSS: the export runs in its own process (\`node -r benchmark/child/max-rss.js bin/pattern-cache.js export ...\`), whose \`process.resourceUsage().maxRSS\` (the kernel's high-water mark) is written at exit; VmRSS, RssAnon (heap, malloc) and RssFile (mapped files: the node binary, the addon) are also sampled every ${usage.sampleMs} ms from /proc/<pid>/status (the baseline's: at its exit). The output goes to benchmark/data/usage-export/ and is deleted after it is counted.
${separate && results.notes.length ? `\nNotes of this run:\n\n${results.notes.map((n) => `- ${n}`).join('\n')}\n` : ''}${USAGE_END}
`
}

/** Replaces the usage section of an existing RESULTS.md (or adds it before "## Machine load"). */
const spliceUsageSection = (file, section) => spliceSection(file, section, USAGE_BEGIN, USAGE_END)

const REMOTE_BEGIN = '<!-- remote: begin -->'
const REMOTE_END = '<!-- remote: end -->'
const fmtMiB = (b) => (b === undefined || Number.isNaN(b) ? '-' : `${(b / 2 ** 20).toFixed(b < 10 * 2 ** 20 ? 2 : 0)} MiB`)

/** The initial sync against COPY: one row per contender. */
function remoteSyncTable(remote) {
  const c = remote.contenders
  const binary = remote.copy.binary.median
  const sec = (x) => (x === undefined || Number.isNaN(x) ? '-' : `${x.toFixed(2)} s`)
  const rows = [
    [c.sync.title, remote.sync.ms, '-', remote.sync.cpu ? `${sec(remote.sync.cpu.self)} (this process, every thread)` : '-', remote.sync.cpu ? sec(remote.sync.cpu.server) : '-'],
    [c['copy-binary'].title, remote.copy.binary, fmtMiB(remote.copy.binary.bytes), remote.copy.binary.cpu ? `${sec(remote.copy.binary.cpu.psql)} (psql)` : '-', remote.copy.binary.cpu ? sec(remote.copy.binary.cpu.server) : '-'],
    [c['copy-text'].title, remote.copy.text, fmtMiB(remote.copy.text.bytes), remote.copy.text.cpu ? `${sec(remote.copy.text.cpu.psql)} (psql)` : '-', remote.copy.text.cpu ? sec(remote.copy.text.cpu.server) : '-'],
  ]
  return table(
    ['contender', 'median', 'slowest', 'fastest', 'runs', 'median / binary COPY\'s', 'bytes sent (COPY output)', 'CPU of the client (median)', 'CPU of the server (median)'],
    rows.map(([title, s, bytes, client, server]) => [title, fmtMs(s.median), fmtMs(s.max), fmtMs(s.min), s.runs, fmtRatioOf(s.median / binary), bytes, client, server]),
  )
}

/** Each fresh replica's sync, and its first tier-1 read after it. */
function remoteSyncRunsTable(remote) {
  return table(
    ['round', 'syncRemote() (awaited)', 'its `duration`', 'generation', 'rows applied', 'open (not timed above)', 'reads served from after the sync', 'rebuildCache()', 'first tier-1 read after the sync', 'replica on disk (SQLite + cache file)'],
    remote.sync.runs.map((r) => [
      r.round + 1,
      fmtMs(r.ms),
      fmtMs(r.duration),
      `${r.fromGeneration} -> ${r.toGeneration}`,
      fmtN(r.rowsApplied),
      fmtMs(r.openMs),
      r.tierAfterSync,
      fmtMs(r.rebuildMs),
      fmtMs(r.firstReadMs),
      fmtMiB(r.replicaBytes),
    ]),
  )
}

function remoteLatencyTable(remote) {
  return table(
    ['syncer options (both replicas)', 'writes', 'visible on B: p50', 'p99', 'slowest', 'fastest', 'A\'s storePattern: p50', 'p99', 'B answered before A\'s call resolved', 'B\'s remote_synced events'],
    remote.latency.map((l) => [l.what, l.n, fmtMs(l.visible.median), fmtMs(l.visible.p99), fmtMs(l.visible.max), fmtMs(l.visible.min), fmtMs(l.write.median), fmtMs(l.write.p99), `${l.beforeWrite} of ${l.n}`, l.bSynced]),
  )
}

function remoteWritesTable(remote) {
  const w = remote.writes
  const c = remote.contenders
  return table(
    ['write', 'pattern-cache p50', 'p99', 'slowest', 'pg client p50', 'p99', 'slowest', 'p50 ratio', 'p99 ratio'],
    [
      [`${c.store.title} vs ${c.insert.title}`, w.store, w.insert],
      [`${c.use.title} vs ${c.update.title}`, w.use, w.update],
    ].map(([label, a, b]) => [label, fmtMs(a.median), fmtMs(a.p99), fmtMs(a.max), fmtMs(b.median), fmtMs(b.p99), fmtMs(b.max), fmtRatioOf(a.median / b.median), fmtRatioOf(a.p99 / b.p99)]),
  )
}

/** The remote (shared bank) section of RESULTS.md (empty when the group did not run). */
function remoteSection(results, { machine, versions }, { targets, separate } = {}) {
  const remote = results.remote
  if (!remote) return ''
  const set = `${fmtN(remote.size)} x ${remote.dim}`
  const v = remote.versions || {}
  const server = remote.serverCpuSeconds
  return `${REMOTE_BEGIN}
## A shared bank (PostgreSQL)

${separate ? `Measured on its own by \`${separate.command}\` on ${results.finishedAt} (${(results.durationMs / 60000).toFixed(1)} minutes; pattern-cache commit ${(separate.measured || versions)['pattern-cache commit']}, addon built ${(separate.measured || versions)['pattern-cache addon built']}${separate.measured && separate.measured['pattern-cache addon built'] !== versions['pattern-cache addon built'] ? ': the addon this process loaded at its start; it was rebuilt during the run' : ''}), on ${machine.cpu} (${machine.cores} cores, ${machine.memoryGiB.toFixed(1)} GiB), ${machine.os}, Node.js ${versions.node}${v.PostgreSQL ? `, PostgreSQL ${v.PostgreSQL} (${v.psql}; pg ${v.pg})` : ''};
the rest of this file is from the last full run.
Other processes used ${results.load.map((l) => `${l.otherCores.toFixed(2)} cores on average (${l.otherCpuSeconds.toFixed(1)} s of CPU in ${l.seconds.toFixed(0)} s)`).join(', ') || 'an unknown share of the CPU'} while it ran${server !== null && server !== undefined ? ` (not counting the group's own PostgreSQL server: ${server.toFixed(1)} s of CPU)` : ''}.

${targets ? `${targetsTable(targets)}\n\n` : ''}` : ''}${remote.skipped ? `**Not run: ${remote.skipped}.**\n\n` : ''}${!remote.skipped && !separate && v.PostgreSQL ? `PostgreSQL ${v.PostgreSQL} (${v.psql}; the pg client ${v.pg}), started for the group${server !== null && server !== undefined ? `; its processes used ${server.toFixed(1)} s of CPU` : ''}.\n\n` : ''}${remote.sync && remote.copy ? `### Initial sync of ${set}

A bank of ${set} (${remote.load ? `generation ${remote.load.generation}; table, TOAST and indexes ${fmtMiB(remote.load.tableBytes)}` : ''}), synced into a fresh replica by one \`await syncRemote()\` (one pass, one local SQLite transaction), against psql's COPY of the same rows to /dev/null; ${remote.sync.runs.length} rounds, each starting with another contender, after one untimed run of each COPY (which also counted its output).

${remoteSyncTable(remote)}

${remoteSyncRunsTable(remote)}

` : ''}${remote.load ? `Loading the bank: ${fmtN(remote.load.patterns)} patterns in ${fmtN(remote.load.batches)} \`storePatterns\` batches of ${fmtN(remote.load.batchSize)} from one writer replica (\`remote: { url }\`, \`backgroundRebuild: false\`), each awaited: ${fmtMs(remote.load.ms)} in all, **${fmtN(Math.round(remote.load.perSecond))} patterns/s** (${(remote.load.payloadBytes / 2 ** 20 / (remote.load.ms / 1000)).toFixed(1)} MiB/s of content, embeddings and metadata); a batch: median ${fmtMs(remote.load.batch.median)}, p99 ${fmtMs(remote.load.batch.p99)}, slowest ${fmtMs(remote.load.batch.max)}.

` : ''}${remote.latency.length ? `### Commit on one replica to visible on another

Two replicas A and B of a bank of ${fmtN(remote.config.latencyBank)} patterns, each in its own directory with its own syncer, in this process; one pattern stored on A at a time (after ${remote.config.latencyWarmup} untimed; before each a random pause, of up to ${remote.latency.map((l) => `${fmtN(l.pauseMax)} ms ${l.mode === 'NOTIFY' ? 'with NOTIFY' : 'when polling (the poll interval, so writes do not fall in step with the poll timer)'}`).join(' and ')}): from just before \`a.storePattern(p)\` to B's first \`loadPattern(id)\` that returns it, B polled in a loop that yields with \`setImmediate\`; A's own call timed alongside.

${remoteLatencyTable(remote)}

` : ''}${remote.writes ? `### Writes against a plain INSERT

${fmtN(remote.writes.n)} of each, awaited one after another (after ${remote.config.writeWarmup} untimed), pattern-cache's call and the pg client's statement alternating (each iteration starting with the other), on one replica of the same ${fmtN(remote.config.latencyBank)}-pattern bank and a plain table in the same database.

${remoteWritesTable(remote)}

` : ''}Method:

- Server: a throwaway cluster of the tests' harness (\`__test__/postgres.js\`: initdb and pg_ctl as the \`postgres\` user, 127.0.0.1, ${remote.server ? remote.server.settings : 'fsync=off, synchronous_commit=off, full_page_writes=off'}, everything else PostgreSQL's defaults), started for the group and stopped at its end; no durability cost on either side, the same for every contender. The replicas and the benchmark share the machine's ${machine.cores} cores with it.
- Data: lib/dataset.js's seeded patterns (random unit float32 embeddings of ${remote.dim}, 100-500 bytes of content, small JSON metadata).
- Contenders of the initial sync:
${['sync', 'copy-binary', 'copy-text'].map((k) => `  - **${remote.contenders[k].title}**: ${remote.contenders[k].description}`).join('\n')}
  The replica's background syncer runs a pass right after it connects, so it would race the timed \`syncRemote()\` for the first sync: ${remote.sync && remote.sync.heldSyncer === false ? 'flock(1) was not installed, so it was not held off (rows applied shows which pass did the work).' : 'while timed, the benchmark holds \`<db>.syncer-lock\` itself (\`flock -n <db>.syncer-lock\`), so the syncer waits for the role and the timed call does the whole sync.'}
  After it, with \`backgroundRebuild: false\`, \`rebuildCache()\` builds the cache file and one \`loadPattern\` is checked to be served by tier 1 (\`getMetrics().tier\`): "first tier-1 read after the sync" is that rebuild plus the read; the first and last patterns read back are compared with what was stored.
- Commit to visible: the options of both replicas per row (A's write goes to the server in one transaction and resolves once A's own replica has it; B's syncer pulls it when woken by NOTIFY or at its poll). Each replica is caught up by its syncer's first pass (its \`remote_synced\` event, so its LISTEN is in place) before the writes.
- Writes: what a pattern-cache write does that the INSERT does not: \`BEGIN\`; \`UPDATE pattern_cache.state SET generation = generation + 1 ... RETURNING\` (the row lock that serializes every writer of the bank, held to COMMIT); for a store, a look at the bank's embedding dimension and the row's \`INSERT ... SELECT ... FROM unnest(...) ON CONFLICT (id) DO UPDATE ... RETURNING\` (every column), for a use \`UPDATE ... SET usage_count = usage_count + 1 ... RETURNING\`; \`pg_notify\`; \`COMMIT\` (six round trips for a store, five for a use, each awaited, instead of one); then the returned row applied to the local SQLite replica under the machine's pass lock, and the cache file's bookkeeping; the call runs on the addon's threads and resolves back on the event loop. The INSERT and UPDATE: ${remote.contenders.insert.description} ${remote.contenders.update.description}
- CPU of a run: the client's (this process's \`process.cpuUsage()\`, every thread, for the sync; psql's, a reaped child's, from /proc/self/stat, for COPY) and the server's (below), in 10 ms ticks.
- CPU: the server's processes are not this benchmark's children, so the machine-load table counts them as other processes; ${server !== null && server !== undefined ? `they used ${server.toFixed(1)} s of CPU in the group (the postmaster's, its reaped backends' and its live children's, /proc), subtracted there` : 'their CPU could not be read'}.
${remote.notes.length ? `\nNotes of this group:\n\n${remote.notes.map((n) => `- ${n}`).join('\n')}\n` : ''}${separate && results.notes.filter((n) => !n.startsWith('remote: ')).length ? `\nNotes of this run:\n\n${results.notes.filter((n) => !n.startsWith('remote: ')).map((n) => `- ${n}`).join('\n')}\n` : ''}${REMOTE_END}
`
}

/** Replaces the remote section of an existing RESULTS.md (or adds it before "## Machine load"). */
const spliceRemoteSection = (file, section) => spliceSection(file, section, REMOTE_BEGIN, REMOTE_END)

function consoleReport(results, targets, titles) {
  const out = ['']
  if (results.timings.length) out.push('## Results (median and p99 per awaited call or per run)', '', timingsTable(results, titles), '')
  if (results.memory.length) out.push('## Memory growth after open', '', memoryTable(results, titles), '')
  if (results.rebuild.length) out.push('## rebuild and the event loop', '', rebuildTable(results, titles), '')
  if (results.processMemory?.length) out.push('## This process\'s memory after each group', '', processMemoryTable(results), '')
  if (results.search) out.push('## Similarity search', '', searchTable(results.search), '', searchBuildTable(results.search), '')
  if (results.usage?.burst.length) out.push('## Usage burst', '', usageBurstTable(results.usage), '')
  if (results.usage?.export) out.push('## pattern-cache export', '', usageExportTable(results.usage.export), '')
  if (results.remote?.skipped) out.push('## A shared bank (PostgreSQL)', '', `Not run: ${results.remote.skipped}`, '')
  if (results.remote?.sync && results.remote?.copy) out.push('## Initial sync against COPY', '', remoteSyncTable(results.remote), '', remoteSyncRunsTable(results.remote), '')
  if (results.remote?.latency.length) out.push('## Commit to visible', '', remoteLatencyTable(results.remote), '')
  if (results.remote?.writes) out.push('## Writes against a plain INSERT', '', remoteWritesTable(results.remote), '')
  out.push('## Targets', '', targetsTable(targets), '')
  return out.join('\n')
}

function markdown(results, targets, titles, { machine, versions, config }) {
  const met = targets.filter((t) => t.met === true).length
  const missed = targets.filter((t) => t.met === false).length
  const unmeasured = targets.filter((t) => t.met === null && !t.reported).length
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
${usageSection(results, { machine, versions, config })}
${remoteSection(results, { machine, versions, config })}
## The benchmark process's memory after each group

\`process.memoryUsage()\` of the benchmark process (not its child processes) after each group of measures and a full GC (\`gc()\`, which benchmark/lib/measure.js exposes in every run, so \`npm run bench\` needs no \`--expose-gc\`; the GC runs after the group, outside every timing).
RSS counts the mapped cache files' touched pages as file-backed (/proc/self/status RssFile); pattern-cache keeps up to 4 validated views of cache files mapped after their last \`shutdown()\` (its process-wide table for a second open), so some of them stay in RSS between groups.

${processMemoryTable(results)}

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
- The JS Map floor: a hit is \`Map.get\` + \`{ ...p, embedding: p.embedding.slice(), metadata: structuredClone(p.metadata) }\` (an answer sharing nothing with the store, as pattern-cache's);
  a list maps the ids of an index through the same. Its hit without \`structuredClone\` (the floor of earlier runs, metadata shared between answers) is shown beside it, without a target.
- Lists: \`loadPatternsByDomain\` of 100 and of 1,000 patterns, and \`loadPatternsByFramework\` of one framework, a fifth of the patterns (${Object.entries(results.listCounts || {}).map(([size, n]) => `${fmtN(n)} at ${fmtN(Number(size))}`).join(', ') || 'not measured'});
  the framework list is measured for ${['pattern-cache', 'the JS Map floor', 'msgpackr', 'better-sqlite3', 'pattern-cache tier 2'].join(', ')} (not the reference: some 0.7 s per call), with at least 16 samples after 4 (the others: 64 after 32).
- Open to ready is a **first open in a fresh process**, for every contender alike: each run spawns \`node --expose-gc benchmark/child/open.js <contender> <patterns>\`,
  which loads the contender's modules (and the package) untimed, then times (\`process.hrtime\`) its \`open\` after a full GC; ${config.openRuns} runs per contender and size in rounds (each round starting with another contender),
  after ${config.openWarmup} untimed rounds, so the OS page cache is warm for every file. For pattern-cache it is \`PatternCache.open()\` until its promise resolves,
  and the process then checks that its first \`loadPattern\` is served by tier 1 (\`getMetrics()\`: tier \`cache\`, 1 hit, 0 misses, no rebuild; that read's own time is reported as "first loadPattern after the first open");
  for the reference and msgpackr, reading and decoding the whole file. (Until the process-wide table of validated views, open was timed in one process, repeatedly: pattern-cache now reuses the view there.)
- Second open: in the same child process, after the first open and its first read, \`close()\` (pattern-cache: \`shutdown()\`), a full GC, and \`open\` again of the same unchanged files, timed the same way.
  pattern-cache reuses the validated view of the unchanged file (keyed by device, inode, size and mtime); the others do all their work again, JIT-warm
  (the reference and msgpackr only at 10,000: at 100,000 their second open, another ~1 s decode of the whole file, is skipped to keep the group short).
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

module.exports = { consoleReport, writeMarkdown, fmtTime, fmtBytes, searchSection, spliceSearchSection, usageSection, spliceUsageSection, remoteSection, spliceRemoteSection, markdown }

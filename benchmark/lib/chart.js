'use strict'
// The targets as a picture: benchmark/results.svg, hand-written SVG (no dependency).
//
// One bar per target row (lib/targets.js). A numeric target is drawn as how far its
// result is from it, on a log scale with the target at 1: "x times within the target"
// to the right (met), "x times short of it" to the left (not met), whichever way the
// target points (a ratio that must be >= 10 and a time that must be <= 10 ms alike):
//   better 'higher' (result >= limit): value / limit
//   better 'lower'  (result <= limit): limit / value
// Green: met; red: not met; grey: not measured, or reported without a target. A row
// whose target is not a number (0 lost uses, recall 1.0) is a dot on the line.
// The rows and the runs that measured them are kept in the SVG's <metadata>, so an
// --only run can replace its groups' bars and keep the others (merge()).

const fs = require('node:fs')

const DATA_BEGIN = '<metadata id="pattern-cache-benchmark-targets">'
const DATA_END = '</metadata>'

const esc = (s) => String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;')
const unesc = (s) => s.replace(/&quot;/g, '"').replace(/&gt;/g, '>').replace(/&lt;/g, '<').replace(/&amp;/g, '&')

/** The result against its target: > 1 within it, < 1 short of it; null when not a number. */
function score(row) {
  if (typeof row.value !== 'number' || !Number.isFinite(row.value) || typeof row.limit !== 'number') return null
  if (row.better === 'higher') return row.value <= 0 ? 0 : row.value / row.limit
  return row.value <= 0 ? Infinity : row.limit / row.value
}

const colour = (row) => (row.met === true ? '#2e7d32' : row.met === false ? '#c62828' : '#9e9e9e')
const mark = (row) => (row.reported ? 'reported' : row.met === null ? 'not measured' : row.met ? 'met' : 'NOT met')

/** Cuts a label to `n` characters (the whole of it stays in the bar's tooltip). */
const cut = (s, n) => (s.length <= n ? s : `${s.slice(0, n - 1)}…`)

const GROUP_TITLES = {
  open: 'open to ready', memory: 'memory after open', reads: 'reads', rebuild: 'rebuild',
  cold: 'fresh process', search: 'similarity search', usage: 'use counters and export',
  remote: 'shared bank (PostgreSQL)',
}
/** The groups in the order of lib/targets.js's rows. */
const ORDER = Object.keys(GROUP_TITLES)

/**
 * The SVG of `rows` (target rows with a `group`), grouped in `order`.
 * runs: [{ groups, at, command, commit, machine }], which run measured which groups.
 */
function render({ rows, runs }) {
  const order = ORDER
  const groups = [...new Set(rows.map((r) => r.group || 'other'))].sort((a, b) => {
    const i = (g) => (order.includes(g) ? order.indexOf(g) : order.length)
    return i(a) - i(b)
  })
  const W = 1400
  const LABEL = 580 // label column (right-aligned text ends here)
  const BAR0 = LABEL + 12
  const BARW = 320
  const TEXT = BAR0 + BARW + 12
  const ROW = 20
  const top = 58 + 14 * runs.length
  // the log axis: whole decades covering every score and 0.5..2 at least, within 1e-3..1e4
  const scores = rows.map(score).filter((x) => x !== null && Number.isFinite(x) && x > 0)
  const lo = Math.max(-3, Math.floor(Math.log10(Math.min(0.5, ...scores))))
  const hi = Math.min(4, Math.ceil(Math.log10(Math.max(2, ...scores))))
  const X = (v) => BAR0 + ((Math.log10(Math.min(Math.max(v, 10 ** lo), 10 ** hi)) - lo) / (hi - lo)) * BARW
  const one = X(1)

  const out = []
  let y = top
  for (const g of groups) {
    y += 6
    out.push(`<text x="12" y="${y + 13}" class="group">${esc(GROUP_TITLES[g] || g)}</text>`)
    y += ROW
    for (const row of rows.filter((r) => (r.group || 'other') === g)) {
      const s = score(row)
      const tip = `${row.measure}: ${row.result} (target ${row.target}; ${mark(row)})`
      const mid = y + ROW / 2
      out.push(`<g><title>${esc(tip)}</title>`)
      out.push(`<text x="${LABEL}" y="${mid + 4}" text-anchor="end" class="label">${esc(cut(row.measure, 96))}</text>`)
      if (s === null) {
        out.push(`<circle cx="${one}" cy="${mid}" r="5" fill="${colour(row)}"/>`)
      } else {
        const end = X(s === Infinity ? 10 ** hi : s === 0 ? 10 ** lo : s)
        const x0 = Math.min(one, end)
        const w = Math.max(3, Math.abs(end - one))
        out.push(`<rect x="${x0.toFixed(1)}" y="${y + 3}" width="${w.toFixed(1)}" height="${ROW - 6}" fill="${colour(row)}"/>`)
        const clipped = s >= 10 ** hi || s <= 10 ** lo
        if (clipped) out.push(`<text x="${(s > 1 ? end - 3 : end + 3).toFixed(1)}" y="${mid + 4}" text-anchor="${s > 1 ? 'end' : 'start'}" class="clip">${s > 1 ? '▶' : '◀'}</text>`)
      }
      const factor = s === null ? '' : s === Infinity ? ' · within by any factor' : s >= 1 ? ` · ${fmtFactor(s)} within` : ` · ${fmtFactor(1 / s)} short`
      out.push(`<text x="${TEXT}" y="${mid + 4}" class="value"><tspan fill="${colour(row)}" font-weight="bold">${esc(mark(row))}</tspan> ${esc(cut(`${row.result} (target ${row.target})${factor}`, 74))}</text>`)
      out.push('</g>')
      y += ROW
    }
  }
  const bottom = y + 8
  // axis: decades, the target line at 1
  const axis = []
  for (let d = lo; d <= hi; d++) {
    const x = X(10 ** d)
    axis.push(`<line x1="${x.toFixed(1)}" y1="${top}" x2="${x.toFixed(1)}" y2="${bottom}" class="${d === 0 ? 'target' : 'grid'}"/>`)
    const v = 10 ** d
    axis.push(`<text x="${x.toFixed(1)}" y="${top - 4}" text-anchor="middle" class="tick">${d === 0 ? 'target' : `${v >= 1 ? v : v.toPrecision(1)}×`}</text>`)
  }
  const H = bottom + 30
  const met = rows.filter((r) => r.met === true).length
  const missed = rows.filter((r) => r.met === false).length
  const unmeasured = rows.filter((r) => r.met === null && !r.reported).length
  const head = [
    `<text x="12" y="22" class="title">pattern-cache benchmark: each result against its target (${met} met, ${missed} not met${unmeasured ? `, ${unmeasured} not measured` : ''})</text>`,
    `<text x="12" y="40" class="note">Log scale, target = 1: a bar to the right is within its target by that factor (met), to the left short of it (not met), whichever way the target points. ▶ ◀: beyond the axis.</text>`,
    ...runs.map((r, i) => `<text x="12" y="${56 + 14 * i}" class="note">${esc(`${r.groups.join(', ')}: ${r.command} on ${r.at} (commit ${r.commit}; ${r.machine})`)}</text>`),
  ]
  const data = JSON.stringify({ rows, runs })
  return `<?xml version="1.0" encoding="UTF-8"?>
<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="-apple-system, 'Segoe UI', Helvetica, Arial, sans-serif">
${DATA_BEGIN}${esc(data)}${DATA_END}
<style>
  .title { font-size: 15px; font-weight: bold; fill: #222; }
  .note { font-size: 11px; fill: #555; }
  .group { font-size: 13px; font-weight: bold; fill: #222; }
  .label { font-size: 11px; fill: #222; }
  .value { font-size: 11px; fill: #333; }
  .tick { font-size: 10px; fill: #555; }
  .clip { font-size: 9px; fill: #fff; }
  .grid { stroke: #ddd; stroke-width: 1; }
  .target { stroke: #222; stroke-width: 1.5; }
</style>
<rect x="0" y="0" width="${W}" height="${H}" fill="#fff"/>
${head.join('\n')}
${axis.join('\n')}
${out.join('\n')}
</svg>
`
}

function fmtFactor(x) {
  return `${x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2)}×`
}

/** Writes the picture of { rows, runs }. */
function write(file, picture) {
  fs.writeFileSync(file, render(picture))
}

/** The { rows, runs } kept in an SVG this module wrote, or null. */
function read(file) {
  let text
  try {
    text = fs.readFileSync(file, 'utf8')
  } catch {
    return null
  }
  const begin = text.indexOf(DATA_BEGIN)
  const end = text.indexOf(DATA_END, begin)
  if (begin < 0 || end < 0) return null
  try {
    return JSON.parse(unesc(text.slice(begin + DATA_BEGIN.length, end)))
  } catch {
    return null
  }
}

/** `previous` with the bars of `groups` replaced by `next`'s; runs that no longer measure a bar are dropped. */
function merge(previous, next, groups) {
  if (!previous) return next
  const kept = previous.rows.filter((r) => !groups.includes(r.group))
  const rows = [...kept, ...next.rows]
  rows.sort((a, b) => ORDER.indexOf(a.group) - ORDER.indexOf(b.group)) // stable: the order within a group stays
  const runs = previous.runs
    .map((r) => ({ ...r, groups: r.groups.filter((g) => !groups.includes(g) && kept.some((k) => k.group === g)) }))
    .filter((r) => r.groups.length)
  return { rows, runs: [...runs, ...next.runs] }
}

module.exports = { render, write, read, merge, score }

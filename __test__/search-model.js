// @ts-check
'use strict'
// A float64 brute-force model of searchSimilar, written from its contract
// (the doc comment of PatternCacheSearch.searchSimilar), and the checks that
// compare an answer of the addon with it.
//
// The model scores in float64 from the float32 values the store holds (and
// from the query rounded to float32, as the store receives it). The addon may
// score in float32: each of its scores may be 1e-4 off, so two patterns whose
// true scores are within 2e-4 of each other may come back in either order.
// The checks replay the addon's answer against the model step by step:
//   - every result is a match (filters, threshold), once, with the stored
//     pattern exactly and a score within 1e-4 of the model's;
//   - each position holds a pattern whose model score is within 2e-4 of the
//     best one not yet returned, and an exact tie (equal float64 scores:
//     duplicate embeddings, or copies scaled by a power of two under cosine)
//     goes to the smaller id in UTF-8 byte order, always;
//   - under MMR, each pick maximises the MMR objective over the 3k best
//     matches (within 2e-4), exact ties again going to the smaller id.
// Where the data has no near-ties this is exactly "the same ids in the same
// order as the model".

const assert = require('node:assert/strict')
const { byteOrder, plain } = require('./helpers.js')

/** The contract's bound on each score's error. */
const SCORE_TOL = 1e-4
/** Two scores each within SCORE_TOL of the truth may swap when their true values are this close. */
const ORDER_EPS = 2 * SCORE_TOL

/** @typedef {ArrayLike<number>} Vec */
/** @typedef {{ id: string, score: number, embedding: number[] }} Match */
/** @typedef {import('./helpers.js').Model} Model */
/**
 * @typedef {{ k?: number, threshold?: number, domain?: string, type?: string, framework?: string,
 *   metric?: 'cosine' | 'dot' | 'euclidean', useMMR?: boolean, mmrLambda?: number }} SearchOptions
 */

/** @param {Vec} a @param {Vec} b */
function dot(a, b) {
  let s = 0
  for (let i = 0; i < a.length; i++) s += a[i] * b[i]
  return s
}

/** @param {Vec} a */
function norm(a) {
  return Math.sqrt(dot(a, a))
}

/** Cosine similarity; 0 when either vector is zero. @param {Vec} a @param {Vec} b */
function cosine(a, b) {
  const na = norm(a)
  const nb = norm(b)
  return na === 0 || nb === 0 ? 0 : dot(a, b) / (na * nb)
}

/** @param {Vec} a @param {Vec} b */
function euclidean(a, b) {
  let s = 0
  for (let i = 0; i < a.length; i++) {
    const d = a[i] - b[i]
    s += d * d
  }
  return Math.sqrt(s)
}

const METRICS = {
  cosine: { score: cosine, higher: true },
  dot: { score: dot, higher: true },
  euclidean: { score: euclidean, higher: false },
}

/** @param {SearchOptions} opts */
function metricOf(opts) {
  const m = METRICS[opts.metric ?? 'cosine']
  if (!m) throw new Error(`model: unknown metric ${opts.metric}`)
  return m
}

/** Best first, ties by id in UTF-8 byte order. @param {boolean} higher */
function compareMatches(higher) {
  return (/** @type {Match} */ a, /** @type {Match} */ b) => {
    if (a.score !== b.score) return (higher ? a.score > b.score : a.score < b.score) ? -1 : 1
    return byteOrder(a.id, b.id)
  }
}

/** The query as the store receives it: rounded to float32. @param {Vec} q */
const asF32 = (q) => Array.from(Float32Array.from(q))

/**
 * Every pattern matching the filters and the threshold, scored, best first.
 * @param {Model} model @param {Vec} query @param {SearchOptions} [opts]
 * @returns {Match[]}
 */
function rankedMatches(model, query, opts = {}) {
  const { score, higher } = metricOf(opts)
  const q = asF32(query)
  /** @type {Match[]} */
  const out = []
  for (const p of model.byId.values()) {
    if (opts.domain !== undefined && p.domain !== opts.domain) continue
    if (opts.type !== undefined && p.type !== opts.type) continue
    if (opts.framework !== undefined && p.framework !== opts.framework) continue
    const s = score(q, p.embedding)
    if (opts.threshold !== undefined && (higher ? !(s >= opts.threshold) : !(s <= opts.threshold))) continue
    out.push({ id: p.id, score: s, embedding: p.embedding })
  }
  return out.sort(compareMatches(higher))
}

/**
 * The model's answer, strictly (no tolerance): the ids and scores in order.
 * @param {Model} model @param {Vec} query @param {SearchOptions} [opts]
 * @returns {Array<{ id: string, score: number }>}
 */
function modelSearch(model, query, opts = {}) {
  const k = opts.k ?? 10
  const all = rankedMatches(model, query, opts)
  const picked = opts.useMMR ? mmr(all.slice(0, 3 * k), asF32(query), k, opts.mmrLambda ?? 0.5) : all.slice(0, k)
  return picked.map(({ id, score }) => ({ id, score }))
}

/**
 * Greedy MMR over `cands`, as the contract defines it; with nothing picked
 * yet the diversity term is 0 (so the first pick is the most relevant, or,
 * with lambda 0, the smallest id).
 * @param {Match[]} cands @param {number[]} q @param {number} k @param {number} lambda
 */
function mmr(cands, q, k, lambda) {
  const rel = new Map(cands.map((c) => [c.id, cosine(q, c.embedding)]))
  const maxSim = new Map(cands.map((c) => [c.id, -Infinity]))
  /** @type {Match[]} */
  const picked = []
  const remaining = cands.slice()
  while (picked.length < k && remaining.length) {
    let best = -1
    let bestObj = -Infinity
    for (let i = 0; i < remaining.length; i++) {
      const c = remaining[i]
      const obj = lambda * /** @type {number} */ (rel.get(c.id)) - (1 - lambda) * (picked.length ? /** @type {number} */ (maxSim.get(c.id)) : 0)
      if (best < 0 || obj > bestObj || (obj === bestObj && byteOrder(c.id, remaining[best].id) < 0)) {
        best = i
        bestObj = obj
      }
    }
    const [chosen] = remaining.splice(best, 1)
    picked.push(chosen)
    for (const c of remaining) maxSim.set(c.id, Math.max(/** @type {number} */ (maxSim.get(c.id)), cosine(c.embedding, chosen.embedding)))
  }
  return picked
}

/** @param {ArrayLike<{ id?: string, pattern?: { id: string }, score: number }>} list */
function fmt(list, max = 12) {
  const items = Array.from(list).slice(0, max).map((r) => `${JSON.stringify(r.id ?? r.pattern?.id)}:${r.score.toFixed(6)}`)
  return `[${items.join(', ')}${list.length > max ? `, ... (${list.length})` : ''}]`
}

/**
 * Asserts that `got` (an answer of searchSimilar) is the model's answer.
 * @param {any} got @param {Model} model @param {Vec} query @param {SearchOptions} [opts] @param {string} [label]
 */
function checkSearch(got, model, query, opts = {}, label = '') {
  const k = opts.k ?? 10
  const { higher } = metricOf(opts)
  const all = rankedMatches(model, query, opts)
  const context = () => `${label} ${JSON.stringify(opts)}\n  model: ${fmt(modelSearch(model, query, opts))}\n  got:   ${Array.isArray(got) ? fmt(got) : String(got)}`
  /** @param {string} msg */
  const fail = (msg) => assert.fail(`${msg}\n${context()}`)

  if (!Array.isArray(got)) fail('the answer is not an array')
  if (got.length !== Math.min(k, all.length)) fail(`${got.length} results, expected ${Math.min(k, all.length)} (${all.length} matches, k ${k})`)
  const byId = new Map(all.map((m, i) => [m.id, { m, i }]))
  const seen = new Set()
  for (const [i, r] of got.entries()) {
    if (!r || typeof r !== 'object' || !r.pattern || typeof r.score !== 'number') fail(`result ${i} is not { pattern, score }: ${JSON.stringify(r)}`)
    const id = r.pattern.id
    const hit = byId.get(id)
    if (!hit) fail(`result ${i} '${id}' is not a match (filter, threshold or absent from the database)`)
    if (seen.has(id)) fail(`result ${i} '${id}' comes twice`)
    seen.add(id)
    if (!Number.isFinite(r.score)) fail(`result ${i} '${id}' has score ${r.score}`)
    if (!(Math.abs(r.score - /** @type {any} */ (hit).m.score) <= SCORE_TOL)) fail(`result ${i} '${id}': score ${r.score}, model ${/** @type {any} */ (hit).m.score}`)
    try {
      assert.deepEqual(plain(r.pattern), model.get(id))
    } catch (e) {
      fail(`result ${i} '${id}': the pattern is not the stored one: ${/** @type {Error} */ (e).message}`)
    }
  }

  if (!opts.useMMR) {
    // The addon's own scores are best first, and equal ones by id.
    for (let i = 1; i < got.length; i++) {
      const a = got[i - 1]
      const b = got[i]
      if (higher ? a.score < b.score : a.score > b.score) fail(`results ${i - 1} and ${i} are not best first by their own scores`)
      if (a.score === b.score && byteOrder(a.pattern.id, b.pattern.id) > 0) fail(`results ${i - 1} and ${i} have the same score but are not in id byte order`)
    }
    // Replay against the model.
    const taken = new Set()
    let head = 0
    for (const [i, r] of got.entries()) {
      while (taken.has(all[head].id)) head++
      const best = all[head]
      const { m, i: at } = /** @type {{ m: Match, i: number }} */ (byId.get(r.pattern.id))
      if (m !== best && Math.abs(best.score - m.score) > ORDER_EPS) {
        fail(`position ${i}: got '${m.id}' (model score ${m.score}), expected '${best.id}' (model score ${best.score})`)
      }
      for (let j = at - 1; j >= 0 && all[j].score === m.score; j--) {
        if (!taken.has(all[j].id)) fail(`position ${i}: '${m.id}' ties exactly with '${all[j].id}', which comes first in UTF-8 byte order`)
      }
      taken.add(m.id)
    }
    return
  }

  // MMR: the candidates are the 3k best matches (near-ties at the edge may go either way).
  const lambda = opts.mmrLambda ?? 0.5
  const n = Math.min(3 * k, all.length)
  const edge = n > 0 && n < all.length ? all[n - 1].score : undefined
  const optional = edge === undefined ? [] : all.slice(n).filter((m) => Math.abs(m.score - edge) <= ORDER_EPS)
  const certain = all.slice(0, n).filter((m) => !(optional.length && edge !== undefined && Math.abs(m.score - edge) <= ORDER_EPS))
  const cands = new Map([...all.slice(0, n), ...optional].map((m) => [m.id, m]))
  const certainIds = new Set(certain.map((m) => m.id))
  const q = asF32(query)
  const rel = new Map([...cands.values()].map((c) => [c.id, cosine(q, c.embedding)]))
  const maxSim = new Map([...cands.keys()].map((id) => [id, -Infinity]))
  const remaining = new Set(cands.keys())
  let pickedCount = 0
  /** @param {string} id */
  const objective = (id) => lambda * /** @type {number} */ (rel.get(id)) - (1 - lambda) * (pickedCount ? /** @type {number} */ (maxSim.get(id)) : 0)
  for (const [i, r] of got.entries()) {
    const id = r.pattern.id
    const c = cands.get(id)
    if (!c) fail(`pick ${i}: '${id}' is not among the ${3 * k} best matches`)
    let bestId = ''
    let best = -Infinity
    for (const x of remaining) {
      if (!certainIds.has(x)) continue
      const o = objective(x)
      if (o > best || (o === best && byteOrder(x, bestId) < 0)) {
        best = o
        bestId = x
      }
    }
    const o = objective(id)
    if (o < best - ORDER_EPS) fail(`pick ${i}: '${id}' has MMR objective ${o}, but '${bestId}' has ${best}`)
    for (const x of remaining) {
      if (x !== id && objective(x) === o && byteOrder(x, id) < 0) fail(`pick ${i}: '${id}' ties exactly (objective ${o}) with '${x}', which comes first in UTF-8 byte order`)
    }
    remaining.delete(id)
    pickedCount++
    const chosen = /** @type {Match} */ (c)
    for (const x of remaining) maxSim.set(x, Math.max(/** @type {number} */ (maxSim.get(x)), cosine(/** @type {Match} */ (cands.get(x)).embedding, chosen.embedding)))
  }
}

/**
 * Thresholds that split the matches at about the given fractions, each in
 * the middle of a gap wider than 1e-3 between consecutive scores, so that no
 * score lies within float32 error of it.
 * @param {Match[]} all best first @param {number[]} fractions
 */
function thresholdsIn(all, fractions) {
  /** @type {number[]} */
  const out = []
  for (const f of fractions) {
    for (let i = Math.floor(f * (all.length - 1)); i + 1 < all.length; i++) {
      if (Math.abs(all[i].score - all[i + 1].score) > 1e-3) {
        out.push((all[i].score + all[i + 1].score) / 2)
        break
      }
    }
  }
  return out
}

module.exports = { SCORE_TOL, ORDER_EPS, dot, norm, cosine, euclidean, rankedMatches, modelSearch, checkSearch, thresholdsIn, fmt }

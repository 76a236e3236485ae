// @ts-check
'use strict'
// Shared generators and helpers for the Node tests: a seeded pattern
// generator, an in-memory model of the store, and temp directories.

const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')

/** @typedef {import('../index').TestPattern} TestPattern */
/** @typedef {import('../index').StoredPattern} StoredPattern */

/** Deterministic PRNG (mulberry32), so failures reproduce. */
function rng(seed = 1) {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

const DOMAINS = ['auth', 'payments', 'search', 'checkout', 'profile', 'notifications', 'api-gateway', 'billing', 'домен', '検索']
const TYPES = ['unit', 'integration', 'e2e', 'contract', 'snapshot', 'property']
const FRAMEWORKS = ['jest', 'vitest', 'mocha', 'playwright', 'cypress']
const VERDICTS = /** @type {const} */ (['success', 'failure', 'flaky', 'unknown'])
// Ids whose UTF-8 byte order differs from JavaScript's UTF-16 order.
const ODD_IDS = ['\uff5a-fullwidth', '\u{1f600}-emoji', 'é-accent', 'Z-upper', 'a-lower', "x'; DROP TABLE patterns;--"]

/**
 * `count` patterns with `dim`-dimensional embeddings; some optional fields absent.
 * @param {number} count
 * @param {{ seed?: number, dim?: number, prefix?: string }} [opts]
 * @returns {TestPattern[]}
 */
function generatePatterns(count, { seed = 1, dim = 16, prefix = 'pat' } = {}) {
  const r = rng(seed)
  const pick = /** @type {<T>(xs: readonly T[]) => T} */ ((xs) => xs[Math.floor(r() * xs.length)])
  /** @type {TestPattern[]} */
  const out = []
  for (let i = 0; i < count; i++) {
    const id = i < ODD_IDS.length && prefix === 'pat' ? ODD_IDS[i] : `${prefix}-${String(i).padStart(6, '0')}`
    const embedding = Array.from({ length: dim }, () => r() * 2 - 1)
    /** @type {TestPattern} */
    const p = {
      id,
      type: pick(TYPES),
      domain: pick(DOMAINS),
      content: `test('${id}', () => { expect(run(${i})).toBe(${Math.floor(r() * 100)}) })`,
      embedding: i % 2 ? embedding : Float32Array.from(embedding),
      createdAt: 1_700_000_000_000 + i,
    }
    if (r() < 0.8) p.framework = pick(FRAMEWORKS)
    if (r() < 0.7) p.verdict = pick(VERDICTS)
    if (r() < 0.6) p.coverage = Math.round(r() * 1000) / 1000
    if (r() < 0.5) p.flakinessScore = r()
    if (r() < 0.5) p.lastUsed = 1_750_000_000_000 + i
    if (r() < 0.7) {
      p.usageCount = Math.floor(r() * 50)
      p.successCount = Math.floor(r() * 50)
    }
    if (r() < 0.5) p.metadata = { owner: pick(['team-a', 'team-b']), tags: ['smoke', i % 3], nested: { n: i } }
    out.push(p)
  }
  return out
}

/**
 * What the store must return for a pattern it was given (createdAt given).
 * @param {TestPattern} p
 */
function expectedStored(p) {
  /** @type {Record<string, unknown>} */
  const e = {
    id: p.id,
    type: p.type,
    domain: p.domain,
    framework: p.framework ?? 'unknown',
    content: p.content,
    embedding: Array.from(Float32Array.from(p.embedding)),
    verdict: p.verdict ?? 'unknown',
    createdAt: p.createdAt,
    usageCount: p.usageCount ?? 0,
    successCount: p.successCount ?? 0,
  }
  for (const key of /** @type {const} */ (['coverage', 'flakinessScore', 'lastUsed', 'metadata'])) {
    if (p[key] !== undefined) e[key] = p[key]
  }
  return e
}

/**
 * A comparable plain form of a returned pattern (embedding as number[]).
 * @param {StoredPattern | null} p
 */
function plain(p) {
  if (p === null) return null
  assertFloat32(p.embedding)
  return { ...p, embedding: Array.from(p.embedding) }
}

/** @param {unknown} e */
function assertFloat32(e) {
  if (!(e instanceof Float32Array)) throw new Error(`embedding is not a Float32Array: ${Object.prototype.toString.call(e)}`)
}

/** Byte order of UTF-8, the order every query must return. @param {string} a @param {string} b */
function byteOrder(a, b) {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'))
}

/** In-memory model of the store: the expected answer of every query. */
class Model {
  constructor() {
    /** @type {Map<string, Record<string, any>>} */
    this.byId = new Map()
  }
  /** @param {TestPattern[]} patterns */
  store(patterns) {
    for (const p of patterns) this.byId.set(p.id, expectedStored(p))
  }
  /** @param {string} id */
  get(id) {
    return this.byId.get(id) ?? null
  }
  /** @param {{ domain?: string, type?: string, framework?: string, limit?: number }} f */
  query(f) {
    const all = [...this.byId.values()]
      .filter((p) => (f.domain === undefined || p.domain === f.domain) && (f.type === undefined || p.type === f.type) && (f.framework === undefined || p.framework === f.framework))
      .sort((a, b) => byteOrder(a.id, b.id))
    return f.limit === undefined ? all : all.slice(0, f.limit)
  }
}

/**
 * Awaits a promise that only a background event will settle. The cache's
 * event callback is weak (it never keeps a process alive), so the test
 * holds the event loop open itself while it waits: no sleep, no polling.
 * @template T
 * @param {Promise<T>} promise
 * @returns {Promise<T>}
 */
async function keepAliveUntil(promise) {
  const timer = setInterval(() => {}, 1 << 30)
  try {
    return await promise
  } finally {
    clearInterval(timer)
  }
}

/**
 * Records a cache's events (pass `onEvent` as the listener): `next(pred)`
 * resolves on the next matching event that arrives after the call;
 * `waitEvent(pred, ms, what, already)` does too, or resolves null at once
 * when `already()` holds once the wait is registered, and rejects after `ms`
 * (a guard, naming `what` and the last events). The one event recorder of the
 * tests (and of the benchmark's remote group).
 */
function eventLog() {
  /** @typedef {import('../index').CacheEvent} CacheEvent */
  /** @typedef {{ pred: (e: CacheEvent) => boolean, resolve: (e: CacheEvent) => void }} Waiter */
  /** @type {CacheEvent[]} */
  const events = []
  /** @type {Set<Waiter>} */
  const waiting = new Set()
  /** A registered wait: `arrived` settles on the next matching event; `stop()` forgets it. @param {(e: CacheEvent) => boolean} pred */
  const wait = (pred) => {
    /** @type {Waiter} */
    const waiter = { pred, resolve: () => {} }
    /** @type {Promise<CacheEvent>} */
    const arrived = new Promise((resolve) => {
      waiter.resolve = resolve
      waiting.add(waiter)
    })
    return { arrived, stop: () => waiting.delete(waiter) }
  }
  return {
    events,
    /** @param {unknown} e */
    onEvent(e) {
      const event = /** @type {CacheEvent} */ (e)
      events.push(event)
      for (const w of [...waiting]) {
        if (!w.pred(event)) continue
        waiting.delete(w)
        w.resolve(event)
      }
    },
    /** @param {(e: CacheEvent) => boolean} pred */
    next(pred) {
      return keepAliveUntil(wait(pred).arrived)
    },
    /**
     * @param {(e: CacheEvent) => boolean} pred @param {number} ms @param {string} what @param {() => boolean} [already]
     * @returns {Promise<CacheEvent | null>}
     */
    waitEvent(pred, ms, what, already) {
      const w = wait(pred)
      if (already && already()) {
        w.stop()
        return Promise.resolve(null)
      }
      /** @type {NodeJS.Timeout | undefined} */
      let timer
      /** @type {Promise<never>} */
      const guard = new Promise((_, reject) => {
        timer = setTimeout(() => {
          w.stop()
          reject(new Error(`timed out after ${ms} ms waiting for ${what}; the last events: ${JSON.stringify(events.slice(-8))}`))
        }, ms)
      })
      return Promise.race([w.arrived, guard]).finally(() => clearTimeout(timer))
    },
  }
}

/** A fresh temp directory, removed when the process exits. @param {string} name */
function tempDir(name) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `pattern-cache-${name}-`))
  process.on('exit', () => fs.rmSync(dir, { recursive: true, force: true }))
  return dir
}

/**
 * The messages of a child process or worker thread (`emitter`), by type:
 * `next(type[, ms])` resolves with the next one of that type (from a queue
 * of those that came first), and rejects once the child reports
 * `{ type: 'error' }`, fails, or exits while one is awaited, or after `ms`.
 * @param {NodeJS.EventEmitter} emitter @param {string} name the child's script, for messages
 * @returns {{ next: (type: string, ms?: number) => Promise<any>, exited: Promise<{ code: number | null, signal: NodeJS.Signals | null }> }}
 */
function mailbox(emitter, name) {
  /** @type {any[]} */
  const inbox = []
  /** @type {Array<{ type: string, resolve: (m: any) => void, reject: (e: Error) => void }>} */
  let waiters = []
  /** @type {Error | null} */
  let failure = null
  /** @param {Error} e */
  const fail = (e) => {
    failure = e
    for (const w of waiters) w.reject(e)
    waiters = []
  }
  emitter.on('message', (/** @type {any} */ m) => {
    if (m && m.type === 'error') return fail(new Error(`${name} failed: ${m.message}`))
    const i = waiters.findIndex((w) => w.type === m.type)
    if (i >= 0) waiters.splice(i, 1)[0].resolve(m)
    else inbox.push(m)
  })
  emitter.on('error', fail)
  /** @type {Promise<{ code: number | null, signal: NodeJS.Signals | null }>} */
  const exited = new Promise((resolve) =>
    emitter.on('exit', (/** @type {number | null} */ code, /** @type {NodeJS.Signals | null} */ signal = null) => {
      resolve({ code, signal })
      if (waiters.length) fail(new Error(`${name} exited (${code ?? signal}) while a message was awaited`))
    }),
  )
  return {
    exited,
    next(type, ms) {
      const i = inbox.findIndex((m) => m.type === type)
      if (i >= 0) return Promise.resolve(inbox.splice(i, 1)[0])
      if (failure) return Promise.reject(failure)
      return new Promise((resolve, reject) => {
        const timer = ms === undefined ? undefined : setTimeout(() => {
          waiters = waiters.filter((w) => w.resolve !== done)
          reject(new Error(`timed out after ${ms} ms waiting for ${name}'s '${type}'`))
        }, ms)
        /** @param {any} m */
        const done = (m) => {
          clearTimeout(timer)
          resolve(m)
        }
        waiters.push({
          type,
          resolve: done,
          reject: (e) => {
            clearTimeout(timer)
            reject(e)
          },
        })
      })
    },
  }
}

module.exports = { mailbox, eventLog, keepAliveUntil, rng, generatePatterns, expectedStored, plain, byteOrder, Model, tempDir, DOMAINS, TYPES, FRAMEWORKS }

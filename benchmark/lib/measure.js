'use strict'
// Measuring: percentiles, timed repeated runs, tinybench micro-measures,
// an event-loop stall tracker, and a gc() the benchmark can call.

const v8 = require('node:v8')
const vm = require('node:vm')
const { performance, monitorEventLoopDelay } = require('node:perf_hooks')
const { Bench } = require('tinybench')

if (typeof globalThis.gc !== 'function') {
  v8.setFlagsFromString('--expose-gc')
  globalThis.gc = vm.runInNewContext('gc')
}

/** Full garbage collection, so one run's garbage is not collected during the next. */
function collect() {
  globalThis.gc()
  globalThis.gc()
}

/** Percentile q (0..1) of samples, linearly interpolated between the nearest ranks. */
function percentile(samples, q) {
  const s = [...samples].sort((a, b) => a - b)
  if (s.length === 0) return NaN
  const at = (s.length - 1) * q
  const lo = Math.floor(at)
  const hi = Math.ceil(at)
  return s[lo] + (s[hi] - s[lo]) * (at - lo)
}

const summary = (samples) => ({ median: percentile(samples, 0.5), p99: percentile(samples, 0.99), runs: samples.length })

/**
 * Runs `fn` `warmup + runs` times with a full GC before each, timing the
 * runs after the warm-up. `fn` may return a cleanup, awaited outside the timing.
 */
async function timeRuns(fn, { runs, warmup = 1 }) {
  const samples = []
  for (let i = 0; i < warmup + runs; i++) {
    collect()
    const started = performance.now()
    const cleanup = await fn()
    const ms = performance.now() - started
    if (typeof cleanup === 'function') await cleanup()
    if (i >= warmup) samples.push(ms)
  }
  return summary(samples)
}

/**
 * tinybench over `tasks` ({ name: async fn }), one after the other.
 * Returns { name: { median, p99, runs } } in ms per awaited call.
 * At least `iterations` samples (64 unless told) after at least `warmupIterations` (32) untimed.
 */
async function micro(tasks, { time, warmupTime, iterations = 64, warmupIterations = 32 }) {
  const bench = new Bench({ time, warmupTime, warmupIterations, iterations, timestampProvider: 'hrtimeNow', throws: true })
  for (const [name, fn] of Object.entries(tasks)) bench.add(name, fn, { async: true })
  collect()
  await bench.run()
  const out = {}
  for (const task of bench.tasks) {
    const r = task.result
    if (r.state !== 'completed') throw new Error(`tinybench task ${task.name}: ${r.state} ${r.error ? r.error.stack : ''}`)
    out[task.name] = { median: r.latency.p50, p99: r.latency.p99, runs: r.latency.samplesCount }
  }
  return out
}

/**
 * Tracks how long the event loop goes without running a 1 ms interval timer,
 * and perf_hooks.monitorEventLoopDelay (1 ms resolution) alongside.
 * stop() -> { stallMs: longest gap minus the 1 ms interval, histogramMaxMs (null: no sample) }
 */
function stallTracker() {
  const histogram = monitorEventLoopDelay({ resolution: 1 })
  histogram.enable()
  let last = performance.now()
  let maxGap = 0
  const tick = () => {
    const now = performance.now()
    if (now - last > maxGap) maxGap = now - last
    last = now
  }
  const timer = setInterval(tick, 1)
  return {
    stop() {
      tick()
      clearInterval(timer)
      histogram.disable()
      // The histogram has no sample when the loop never got to run during the interval.
      return { stallMs: Math.max(0, maxGap - 1), histogramMaxMs: histogram.count > 0 ? histogram.max / 1e6 : null }
    },
  }
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

module.exports = { collect, percentile, summary, timeRuns, micro, stallTracker, sleep }

'use strict'
// Output: stdout as text or one JSON document, number/byte/duration
// formatting, writing to a stream with back-pressure, the terminal spinner.

/** stdout, as text or as one JSON document (--json), or as the stream itself (output written as it comes, with writeTo()). */
const out = {
  stream: process.stdout,
  text: (s) => process.stdout.write(s),
  json: (doc) => process.stdout.write(JSON.stringify(doc, null, 2) + '\n'),
}

const num = (n) => Number(n).toLocaleString('en-US')

function bytes(n) {
  if (n === undefined || n === null) return '-'
  if (n < 1024) return `${n} B`
  const units = ['KiB', 'MiB', 'GiB', 'TiB']
  let v = n / 1024
  let i = 0
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024
    i++
  }
  return `${v.toFixed(v < 10 ? 2 : 1)} ${units[i]} (${num(n)} bytes)`
}

function duration(ms) {
  if (ms < 1000) return `${Math.round(ms)} ms`
  const s = ms / 1000
  if (s < 60) return `${s.toFixed(1)} s`
  if (s < 3600) return `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`
  if (s < 86400) return `${Math.floor(s / 3600)} h ${Math.round((s % 3600) / 60)} min`
  return `${Math.floor(s / 86400)} d ${Math.round((s % 86400) / 3600)} h`
}

/** Writes to a stream, waiting when it asks to (large exports to a pipe). */
function writeTo(stream, text) {
  return stream.write(text) ? undefined : new Promise((resolve, reject) => {
    const onDrain = () => {
      stream.off('error', onError)
      resolve(undefined)
    }
    const onError = (e) => {
      stream.off('drain', onDrain)
      reject(e)
    }
    stream.once('drain', onDrain)
    stream.once('error', onError)
  })
}

/** Prefixes every line with pad. JSON text: only '\n' ends a line (a U+2028 stays inside its string). */
const indent = (text, pad) => pad + text.split('\n').join(`\n${pad}`)

/**
 * Writes a JSON array as its items come, byte for byte what
 * JSON.stringify(array, null, 2) writes for it nested `depth` levels deep
 * (from its '[' to its ']': the caller writes what comes before and after).
 * Items come a page at a time and are written as they come, so memory is
 * bounded by the page. Resolves with the number of items.
 * @param {NodeJS.WritableStream} stream
 * @param {AsyncIterable<unknown[]>} itemPages
 * @param {number} [depth] the nesting of the array (0: the document itself)
 */
async function writeJsonArray(stream, itemPages, depth = 0) {
  const pad = '  '.repeat(depth)
  let count = 0
  let chunk = ''
  for await (const items of itemPages) {
    for (const item of items) {
      chunk += (count === 0 ? '[\n' : ',\n') + indent(JSON.stringify(item, null, 2) ?? 'null', `${pad}  `)
      count++
      if (chunk.length > 1 << 16) {
        await writeTo(stream, chunk)
        chunk = ''
      }
    }
  }
  chunk += count === 0 ? '[]' : `\n${pad}]`
  await writeTo(stream, chunk)
  return count
}

/** A one-line status on a terminal (stderr): a spinner with the elapsed time. */
function spinner(text) {
  const started = Date.now()
  if (!process.stderr.isTTY) {
    process.stderr.write(`${text}...\n`)
    return { stop: () => Date.now() - started }
  }
  const frames = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏']
  let i = 0
  const draw = () => process.stderr.write(`\r\x1b[2K${frames[i++ % frames.length]} ${text} ${duration(Date.now() - started)}`)
  draw()
  const timer = setInterval(draw, 80)
  return {
    stop() {
      clearInterval(timer)
      process.stderr.write('\r\x1b[2K')
      return Date.now() - started
    },
  }
}

module.exports = { out, num, bytes, duration, writeTo, writeJsonArray, spinner }

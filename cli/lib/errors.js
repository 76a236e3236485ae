'use strict'
// Exit codes, the error that ends a command with one, and how an error is
// reported (stderr text, or the JSON error document under --json).

const EXIT = Object.freeze({ OK: 0, PROBLEM: 1, USAGE: 2, RUNTIME: 3 })

/** An error that ends the command with an exit code and, for runtime errors, a code. */
class CliError extends Error {
  /** @param {number} exitCode @param {string} code @param {string} message */
  constructor(exitCode, code, message) {
    super(message)
    this.exitCode = exitCode
    this.code = code
  }
}

const usageError = (message) => new CliError(EXIT.USAGE, 'USAGE', message)

/**
 * Reports an error that ended a command and returns its exit code: a
 * CliError's own, EXIT.RUNTIME for any other (the API's errors carry a code).
 * @param {unknown} e @param {boolean} json @param {{ json: (doc: unknown) => void }} out
 */
function reportError(e, json, out) {
  const cli = e instanceof CliError
  const exitCode = cli ? e.exitCode : EXIT.RUNTIME
  const code = (e && e.code) || 'INTERNAL'
  const message = (e && e.message) || String(e)
  if (json) out.json({ ok: false, exitCode, error: { code, message, ...(cli && e.detail ? e.detail : {}) } })
  else if (exitCode === EXIT.USAGE) process.stderr.write(`pattern-cache: ${message}\n`)
  else process.stderr.write(`pattern-cache: error [${code}]: ${message}\n`)
  if (!cli && !(e && e.code) && e && e.stack && process.env.PATTERN_CACHE_DEBUG) process.stderr.write(`${e.stack}\n`)
  return exitCode
}

module.exports = { EXIT, CliError, usageError, reportError }

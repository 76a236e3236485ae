'use strict'
// The package's errors: PatternCacheError (thrown by the argument checks of
// this JavaScript layer) and ERROR_CODES, the one list of every `code` an
// error can carry, as the addon defines it (src/error.rs, error::CODES).

const native = require('../binding.js')

/** Every `code` an error from this package can carry (see README, "Error codes"). */
const ERROR_CODES = Object.freeze(native.errorCodes())

class PatternCacheError extends Error {
  constructor(code, message) {
    super(message)
    this.name = 'PatternCacheError'
    this.code = code
  }
}

function fail(code, message) {
  throw new PatternCacheError(code, message)
}

module.exports = { ERROR_CODES, PatternCacheError, fail }

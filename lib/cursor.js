'use strict'
// listPatterns cursors: the last id of a page, versioned and
// base64url-encoded: opaque to callers, checked strictly when it comes back.

const { fail } = require('./errors')

const CURSOR_PREFIX = 'pc1.'
const strictUtf8 = new TextDecoder('utf-8', { fatal: true })

function encodeCursor(id) {
  return CURSOR_PREFIX + Buffer.from(id, 'utf8').toString('base64url')
}

function decodeCursor(cursor) {
  const body = cursor.startsWith(CURSOR_PREFIX) ? cursor.slice(CURSOR_PREFIX.length) : null
  if (body === null || body.length === 0 || !/^[A-Za-z0-9_-]+$/.test(body)) {
    fail('INVALID_ARGUMENT', 'listPatterns: cursor is not one this package made (pass the cursor of the previous page)')
  }
  try {
    const bytes = Buffer.from(body, 'base64url')
    if (bytes.toString('base64url') !== body) throw new Error('not canonical')
    return strictUtf8.decode(bytes)
  } catch {
    fail('INVALID_ARGUMENT', 'listPatterns: cursor is damaged (pass the cursor of the previous page)')
  }
}

module.exports = { encodeCursor, decodeCursor }

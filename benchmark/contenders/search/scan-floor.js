'use strict'
// The floor of an exact scan: pattern-cache's measurement hook, one pass over
// the mapped vectors section of the same cache file, timed like a contender.

const { openCache } = require('./pattern-cache')

const FLOOR = Symbol.for('pattern-cache.scanFloor')

/** The floor: one pass over the mapped vectors section on the calling thread (reads every byte once). */
module.exports = {
  name: 'scan-floor',
  title: 'floor: one pass over the mapped vectors',
  description:
    '`cache[Symbol.for(\'pattern-cache.scanFloor\')]()`: a synchronous pass over the cache file\'s mapped vectors section on the calling thread, reading every byte once (a checksum, no ranking): the least any exact scan of these vectors can cost.',
  exact: null, // no answers to check

  async open(ds) {
    const cache = await openCache(ds)
    if (typeof cache[FLOOR] !== 'function') throw new Error('this build of pattern-cache has no scanFloor hook')
    let sink = 0
    return {
      cache,
      queries: {
        cosine: () => {
          sink += cache[FLOOR]()
          return true
        },
      },
      close: () => cache.shutdown(),
      sink: () => sink,
    }
  },
}

// ESM entry: the same module as index.js (CommonJS), re-exported by name.
import cjs from './index.js'

export const { PatternCache, PatternCacheError, ERROR_CODES, migrateRemote, probeRemote, pruneRemote } = cjs
export default cjs

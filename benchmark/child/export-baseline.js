'use strict'
// The baseline of the export's memory: a process that loads the command line's
// modules and the package and opens the store the way `pattern-cache export`
// does (backgroundRebuild: false, enabled: false), then closes it and exits.
// Run with -r ./max-rss.js: its peak RSS is the export's "RSS right after start".
//   node -r ./max-rss.js export-baseline.js <dbPath>

try {
  require('../../cli/commands/index.js') // what the command line loads before it opens the store
} catch {}
const { PatternCache } = require('../..')

async function main() {
  const cache = await PatternCache.open({ dbPath: process.argv[2], backgroundRebuild: false, enabled: false })
  await cache.shutdown()
}

main().catch((e) => {
  console.error(e)
  process.exit(1)
})

'use strict'
// Builds the native addon when this checkout has none yet (a fresh clone),
// so `npm run demo` works as the README says. `npm test` always rebuilds.
const fs = require('node:fs')
const path = require('node:path')
const { execSync } = require('node:child_process')

const root = path.resolve(__dirname, '..')
const built = fs.readdirSync(root).some((f) => /^pattern-cache\..+\.node$/.test(f))
if (!built) {
  console.log('pattern-cache: building the native addon (first run, about a minute)...')
  execSync('npm run build --silent', { cwd: root, stdio: 'inherit' })
}

// @ts-check
'use strict'
// File modes and symlinks.
//   - Under umask 0o022 and 0o077, every file the package creates (the
//     database and its -wal/-shm, the cache file, its .bak and .lock) has
//     mode 0o666 & ~umask, and the directory it creates 0o777 & ~umask; under
//     umask 0o002 and 0o000 (no target on the exact mode) nothing is
//     world-writable either.
//   - Symlinks planted beside the cache file, pointing outside its
//     directory, are never followed by a rebuild: `<cache>.tmp-evil` (the
//     temp-file prefix) to an existing file and to a path that does not
//     exist; also `<cache>.bak` and `<cache>.lock`. The outside files keep
//     their bytes, size, mode and mtime, and no file appears where a
//     dangling link points.
//
//   node torture/permissions.js

const fs = require('node:fs')
const path = require('node:path')
const { PatternCache } = require('../index.js')
const lib = require('./lib.js')

/** @param {number} m */
const octal = (m) => `0o${m.toString(8).padStart(3, '0')}`

/**
 * Creates a database and cache under `umask`; returns the mode of each file.
 * @param {string} root @param {number} umask
 */
async function modesUnder(root, umask) {
  const dir = path.join(root, `umask-${umask.toString(8)}`, 'data')
  const dbPath = path.join(dir, 'patterns.db')
  const previous = process.umask(umask)
  /** @type {Array<{ file: string, mode: number, dir: boolean }>} */
  const files = []
  try {
    const cache = await PatternCache.open({ dbPath })
    await cache.storePatterns(lib.makePatterns(50, 8))
    await cache.rebuildCache()
    await cache.rebuildCache() // a second build keeps the first as .bak
    for (const f of fs.readdirSync(dir)) {
      const st = fs.lstatSync(path.join(dir, f))
      files.push({ file: f, mode: st.mode & 0o777, dir: st.isDirectory() })
    }
    files.push({ file: 'data/ (the directory it created)', mode: fs.statSync(dir).mode & 0o777, dir: true })
    await cache.shutdown()
  } finally {
    process.umask(previous)
  }
  return files
}

/** @param {string} file */
function fingerprint(file) {
  const st = fs.lstatSync(file)
  return JSON.stringify({ bytes: fs.readFileSync(file).toString('base64'), size: st.size, mode: st.mode, mtimeMs: st.mtimeMs, ino: st.ino })
}

/**
 * Plants a symlink named `<cache><suffix>` pointing outside the directory,
 * rebuilds (by open and by rebuildCache), and reports what happened to the target.
 * @param {string} root @param {string} suffix @param {boolean} dangling
 */
async function symlinkCase(root, suffix, dangling) {
  const name = `link${suffix.replace(/[^a-z]/gi, '-')}${dangling ? '-dangling' : ''}`
  const dir = path.join(root, name, 'data')
  const outside = path.join(root, name, 'outside')
  fs.mkdirSync(outside, { recursive: true })
  const dbPath = path.join(dir, 'patterns.db')
  const cachePath = lib.defaultCachePath(dbPath)
  const seed = await PatternCache.open({ dbPath })
  await seed.storePatterns(lib.makePatterns(50, 8))
  await seed.rebuildCache()
  await seed.shutdown()
  const target = path.join(outside, dangling ? 'not-there' : 'precious.txt')
  if (!dangling) fs.writeFileSync(target, 'precious: must never be written by the cache\n', { mode: 0o644 })
  const before = dangling ? null : fingerprint(target)
  const link = `${cachePath}${suffix}`
  fs.rmSync(link, { force: true })
  fs.symlinkSync(target, link)

  // A rebuild at open (the file made stale behind its back) and a manual one.
  const writer = await PatternCache.open({ dbPath, enabled: false })
  await writer.storePattern(lib.makePattern('one-more', 1, 8))
  await writer.shutdown()
  const cache = await PatternCache.open({ dbPath, backgroundRebuild: false })
  const atOpen = cache.getMetrics().tier
  const built = await cache.rebuildCache()
  const served = (await cache.query({})).length
  await cache.shutdown()

  const changed = dangling ? fs.existsSync(target) : fingerprint(target) !== before
  let linkState = 'removed'
  try {
    linkState = fs.lstatSync(link).isSymbolicLink() ? 'still a symlink' : 'replaced by a regular file'
  } catch {
    // removed
  }
  return {
    name: `${path.basename(cachePath)}${suffix} -> ${dangling ? 'a path that does not exist' : 'an existing file'} outside the directory`,
    changed,
    rebuilt: built.success,
    error: built.error,
    tierAtOpen: atOpen,
    served,
    linkState,
  }
}

/**
 * @returns {Promise<import('./lib.js').Result>}
 */
async function run() {
  const started = Date.now()
  const root = lib.tempDir('permissions')
  let checked = 0
  let wrongModes = 0
  let worldWritable = 0
  /** @type {string[]} */
  const notes = []
  /** @type {Record<string, Record<string, string>>} */
  const modes = {}
  for (const umask of [0o022, 0o077, 0o002, 0o000]) {
    const exact = umask === 0o022 || umask === 0o077
    const files = await modesUnder(root, umask)
    modes[octal(umask)] = Object.fromEntries(files.map((f) => [f.file, octal(f.mode)]))
    for (const f of files) {
      checked++
      const want = (f.dir ? 0o777 : 0o666) & ~umask
      if (f.mode & 0o002) {
        worldWritable++
        notes.push(`umask ${octal(umask)}: ${f.file} is world-writable (${octal(f.mode)})`)
      }
      if (exact && f.mode !== want) {
        wrongModes++
        notes.push(`umask ${octal(umask)}: ${f.file} has mode ${octal(f.mode)}, expected ${octal(want)}`)
      }
    }
    notes.push(`umask ${octal(umask)}: ${files.map((f) => `${f.file} ${octal(f.mode)}`).join(', ')}`)
  }

  const links = []
  for (const [suffix, dangling] of /** @type {Array<[string, boolean]>} */ ([['.tmp-evil', false], ['.tmp-evil', true], ['.bak', false], ['.lock', false], ['.lock', true]])) {
    links.push(await symlinkCase(root, suffix, dangling))
  }
  const followed = links.filter((l) => l.changed)
  const tmpCases = links.filter((l) => l.name.includes('.tmp-'))
  const tmpFollowed = tmpCases.filter((l) => l.changed).length
  const failedBuilds = tmpCases.filter((l) => !l.rebuilt).length
  for (const l of links) notes.push(`${l.name}: target ${l.changed ? 'CHANGED' : 'unchanged'}; rebuild ${l.rebuilt ? 'succeeded' : `failed (${l.error})`}; tier at open ${l.tierAtOpen}; ${l.served} patterns served; the link was ${l.linkState}`)

  return lib.result({
    name: 'permissions',
    title: 'file modes under a umask; planted symlinks never followed',
    config: { umasks: ['0o022', '0o077', '0o002', '0o000'] },
    started,
    figures: [
      { name: 'files and directories checked (4 umasks)', value: checked },
      lib.target('modes other than 0o666 & ~umask (files) / 0o777 & ~umask (directory) under umask 0o022 and 0o077', wrongModes, '0', wrongModes === 0),
      lib.target('world-writable files or directories (any umask)', worldWritable, '0', worldWritable === 0),
      lib.target('`<cache>.tmp-evil` symlinks followed (outside file changed or created)', `${tmpFollowed} of ${tmpCases.length}`, '0', tmpFollowed === 0),
      lib.target('rebuilds that failed with a `.tmp-evil` symlink planted', failedBuilds, '0', failedBuilds === 0),
      lib.target('other planted symlinks followed (`.bak`, `.lock`)', followed.length - tmpFollowed, '0', followed.length === tmpFollowed),
    ],
    notes,
    details: { modes, links },
  })
}

if (require.main === module) lib.main(run)

module.exports = { run }

'use strict'
// What the results were measured on: the machine and the versions.

const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { execFileSync } = require('node:child_process')

const ROOT = path.join(__dirname, '..', '..')
const DEPENDENCIES = ['better-sqlite3', 'lmdb', 'msgpackr', '@msgpack/msgpack', 'tinybench', 'hnswlib-node', 'usearch', 'sqlite-vec']

function cpuModel() {
  try {
    const line = fs.readFileSync('/proc/cpuinfo', 'utf8').split('\n').find((l) => l.startsWith('model name'))
    if (line) return line.split(':')[1].trim()
  } catch {}
  return os.cpus()[0]?.model ?? 'unknown'
}

function machine() {
  return {
    cpu: cpuModel(),
    cores: os.availableParallelism(),
    memoryGiB: os.totalmem() / 2 ** 30,
    os: `${os.type()} ${os.release()} ${os.arch()}`,
  }
}

function gitCommit() {
  try {
    const commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: ROOT, encoding: 'utf8' }).trim()
    const dirty = execFileSync('git', ['status', '--porcelain', '--', 'src', 'index.js', 'Cargo.toml'], { cwd: ROOT, encoding: 'utf8' }).trim()
    return dirty ? `${commit} (with uncommitted changes to the addon)` : commit
  } catch {
    return 'unknown'
  }
}

function versions() {
  const out = {
    node: process.version,
    'pattern-cache': require(path.join(ROOT, 'package.json')).version,
    'pattern-cache commit': gitCommit(),
  }
  const addon = fs.readdirSync(ROOT).find((f) => f.endsWith('.node'))
  if (addon) out['pattern-cache addon built'] = fs.statSync(path.join(ROOT, addon)).mtime.toISOString()
  for (const dep of DEPENDENCIES) {
    out[dep] = require(path.join(__dirname, '..', 'node_modules', dep, 'package.json')).version
  }
  const Database = require('better-sqlite3')
  const db = new Database(':memory:')
  out['SQLite (better-sqlite3)'] = db.prepare('SELECT sqlite_version() AS v').get().v
  try {
    require('sqlite-vec').load(db)
    out['sqlite-vec (vec_version())'] = db.prepare('SELECT vec_version() AS v').get().v
  } catch (e) {
    out['sqlite-vec (vec_version())'] = `not loadable: ${e.message}`
  }
  db.close()
  return out
}

module.exports = { machine, versions }

// @ts-check
'use strict'
// A real PostgreSQL server for the tests of remote replication
// (remote.test.js): a fresh cluster in a temp directory (initdb), started on
// a free port of 127.0.0.1 with pg_ctl, password authentication over TCP
// (scram-sha-256), optionally TLS with a certificate made here (openssl).
//
// - The binaries are found on PATH, else in /usr/lib/postgresql/<version>/bin
//   (the highest version): Debian's `postgresql` package, as CI installs it.
// - Postgres refuses to run as root: as root, initdb and pg_ctl run as the
//   `postgres` user (runuser, else su), in a data directory chowned to it.
// - The server is always stopped: by stop() (the tests' after() hook), at
//   process exit (pg_ctl stop -m immediate, synchronously), on SIGINT/SIGTERM,
//   and by a small watchdog shell that stops it if this process dies without
//   running any of those (SIGKILL).
//
// Usage:
//   const postgres = require('./postgres.js')
//   if (!postgres.available()) ...           // see skipReason()
//   const server = await postgres.start({ ssl: false })
//   await server.createDatabase('t1'); server.url('t1') -> 'postgres://postgres:<pw>@127.0.0.1:<port>/t1'
//   await server.query('SELECT 1', [], 't1'); await server.restart(); await server.stop()

const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const net = require('node:net')
const crypto = require('node:crypto')
const { execFile, execFileSync, spawn } = require('node:child_process')

/** The `pg` client (devDependency); loaded lazily so that available() works without it. */
function pgModule() {
  const name = 'pg' // not a literal in require(): pg ships no types, and @types/pg is not a dependency
  return /** @type {any} */ (require(name))
}

const BINARIES = ['initdb', 'pg_ctl', 'postgres']

/** The first executable `name` on PATH, or null. @param {string} name */
function onPath(name) {
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    if (!dir) continue
    const file = path.join(dir, name)
    try {
      fs.accessSync(file, fs.constants.X_OK)
      if (fs.statSync(file).isFile()) return file
    } catch {
      // not here
    }
  }
  return null
}

/** @type {{ initdb: string, pg_ctl: string, postgres: string } | null | undefined} */
let found

/**
 * Where initdb, pg_ctl and postgres are: all three from PATH, else from the
 * highest /usr/lib/postgresql/<version>/bin that has them all; null when none.
 * @returns {{ initdb: string, pg_ctl: string, postgres: string } | null}
 */
function binaries() {
  if (found !== undefined) return found
  /** @type {Record<string, string>} */
  const fromPath = {}
  for (const name of BINARIES) {
    const file = onPath(name)
    if (file) fromPath[name] = file
  }
  if (BINARIES.every((n) => fromPath[n])) {
    found = /** @type {any} */ (fromPath)
    return /** @type {any} */ (found)
  }
  const root = '/usr/lib/postgresql'
  /** @type {string[]} */
  let versions = []
  try {
    versions = fs.readdirSync(root)
  } catch {
    // no Debian layout
  }
  const numeric = (/** @type {string} */ v) => v.split('.').map((x) => Number.parseInt(x, 10) || 0)
  versions.sort((a, b) => {
    const x = numeric(a)
    const y = numeric(b)
    for (let i = 0; i < Math.max(x.length, y.length); i++) if ((x[i] ?? 0) !== (y[i] ?? 0)) return (y[i] ?? 0) - (x[i] ?? 0)
    return 0
  })
  for (const v of versions) {
    const bin = path.join(root, v, 'bin')
    if (BINARIES.every((n) => fs.existsSync(path.join(bin, n)))) {
      found = { initdb: path.join(bin, 'initdb'), pg_ctl: path.join(bin, 'pg_ctl'), postgres: path.join(bin, 'postgres') }
      return found
    }
  }
  found = null
  return null
}

/** Whether the PostgreSQL server binaries (initdb, pg_ctl, postgres) are installed. */
function available() {
  return binaries() !== null
}

/**
 * Why the remote tests cannot run here, or undefined when they can. Under CI
 * (process.env.CI set) a missing Postgres is a failure, not a skip: the
 * caller must then let start() throw, so undefined is returned.
 * @returns {string | undefined}
 */
function skipReason() {
  if (available()) return undefined
  if (process.env.CI) return undefined
  return 'PostgreSQL is not installed (no initdb/pg_ctl/postgres on PATH or in /usr/lib/postgresql/*/bin): install it (Debian: apt-get install postgresql) to run the remote replication tests; under CI they fail instead'
}

const isRoot = typeof process.getuid === 'function' && process.getuid() === 0

/** POSIX shell quoting. @param {string} s */
const shq = (s) => `'${s.replace(/'/g, `'\\''`)}'`

/** @type {{ uid: number, gid: number } | null | undefined} */
let pgUser

/** uid and gid of the `postgres` user (as root). */
function postgresUser() {
  if (pgUser !== undefined) {
    if (pgUser === null) throw new Error('there is no `postgres` user to run PostgreSQL as (Postgres refuses to run as root)')
    return pgUser
  }
  try {
    const uid = Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim())
    const gid = Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).trim())
    pgUser = { uid, gid }
  } catch {
    pgUser = null
    throw new Error('there is no `postgres` user to run PostgreSQL as (Postgres refuses to run as root)')
  }
  return pgUser
}

/** @type {'runuser' | 'su' | undefined} */
let switcher

/**
 * The command line that runs `file args` as the postgres user when we are
 * root (runuser, else su), or as ourselves otherwise.
 * @param {string} file @param {string[]} args @returns {[string, string[]]}
 */
function asPostgres(file, args) {
  if (!isRoot) return [file, args]
  if (switcher === undefined) switcher = onPath('runuser') || fs.existsSync('/usr/sbin/runuser') || fs.existsSync('/sbin/runuser') ? 'runuser' : 'su'
  if (switcher === 'runuser') {
    const runuser = onPath('runuser') ?? (fs.existsSync('/usr/sbin/runuser') ? '/usr/sbin/runuser' : '/sbin/runuser')
    return [runuser, ['-u', 'postgres', '--', file, ...args]]
  }
  return ['su', ['postgres', '-s', '/bin/sh', '-c', [file, ...args].map(shq).join(' ')]]
}

/** The same as one shell command string (for the watchdog). @param {string} file @param {string[]} args */
function asPostgresShell(file, args) {
  const [f, a] = asPostgres(file, args)
  return [f, ...a].map(shq).join(' ')
}

/**
 * Runs a command (as the postgres user when root); rejects with its output.
 * @param {string} file @param {string[]} args @param {{ timeout?: number }} [o]
 * @returns {Promise<string>}
 */
function runAsPostgres(file, args, { timeout = 120_000 } = {}) {
  const [f, a] = asPostgres(file, args)
  return new Promise((resolve, reject) => {
    execFile(f, a, { encoding: 'utf8', timeout, env: pgEnv() }, (error, stdout, stderr) => {
      if (error) reject(new Error(`${path.basename(file)} ${args.join(' ')} failed: ${error.message}\n${stdout}\n${stderr}`))
      else resolve(stdout)
    })
  })
}

/** The environment for the Postgres tools: a C locale, nothing of ours that they would read. */
function pgEnv() {
  /** @type {NodeJS.ProcessEnv} */
  const env = { ...process.env, LC_ALL: 'C', LANG: 'C' }
  for (const key of Object.keys(env)) if (key.startsWith('PG')) delete env[key]
  return env
}

/** A TCP port of 127.0.0.1 that was free a moment ago. @returns {Promise<number>} */
function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer()
    server.unref()
    server.on('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const address = server.address()
      const port = typeof address === 'object' && address ? address.port : 0
      server.close(() => resolve(port))
    })
  })
}

/** Whether the postgres user can enter (and write) this directory. @param {string} dir */
function postgresCanUse(dir) {
  if (!isRoot) return true
  const [f, a] = asPostgres('/bin/sh', ['-c', 'test -x "$0" && test -w "$0"', dir])
  try {
    execFileSync(f, a, { stdio: 'ignore' })
    return true
  } catch {
    return false
  }
}

/**
 * A fresh base directory (mode 0755) whose `data` subdirectory belongs to the
 * postgres user; under os.tmpdir(), else /tmp or /var/tmp when the postgres
 * user cannot reach os.tmpdir().
 */
function makeBaseDir() {
  const candidates = [...new Set([os.tmpdir(), '/tmp', '/var/tmp'])]
  /** @type {string[]} */
  const tried = []
  for (const parent of candidates) {
    let base
    try {
      base = fs.mkdtempSync(path.join(parent, 'pattern-cache-pg-'))
    } catch {
      continue
    }
    fs.chmodSync(base, 0o755)
    const data = path.join(base, 'data')
    fs.mkdirSync(data, { mode: 0o700 })
    if (isRoot) {
      const { uid, gid } = postgresUser()
      fs.chownSync(data, uid, gid)
    }
    if (postgresCanUse(data)) return { base, data }
    tried.push(parent)
    fs.rmSync(base, { recursive: true, force: true })
  }
  throw new Error(`the postgres user can reach none of ${tried.join(', ')} (a parent directory without the x bit for others?)`)
}

/** Writes a file that the postgres user owns. @param {string} file @param {string} text @param {number} mode */
function writeOwned(file, text, mode) {
  fs.writeFileSync(file, text, { mode })
  fs.chmodSync(file, mode)
  if (isRoot) {
    const { uid, gid } = postgresUser()
    fs.chownSync(file, uid, gid)
  }
}

/**
 * A test CA and a server certificate it signed for CN=localhost,
 * subjectAltName DNS:localhost and IP:127.0.0.1 (EC P-256, openssl), in
 * `dir`. A CA plus a leaf, rather than one self-signed leaf, because some TLS
 * stacks (webpki, used by rustls) refuse a CA certificate presented as the
 * server's own and others refuse a leaf as a root.
 * @param {string} dir the data directory (the key must belong to postgres, mode 0600)
 * @param {string} work a directory for the CA's files
 */
function makeCertificates(dir, work) {
  const caKey = path.join(work, 'ca.key')
  const caCert = path.join(work, 'ca.crt')
  const caConf = path.join(work, 'ca.cnf')
  const leafConf = path.join(work, 'server.cnf')
  const csr = path.join(work, 'server.csr')
  const key = path.join(work, 'server.key')
  const cert = path.join(work, 'server.crt')
  fs.writeFileSync(
    caConf,
    ['[req]', 'distinguished_name = dn', 'prompt = no', 'x509_extensions = v3_ca', '[dn]', 'CN = pattern-cache test CA', '[v3_ca]', 'basicConstraints = critical, CA:TRUE', 'keyUsage = critical, keyCertSign, cRLSign', 'subjectKeyIdentifier = hash', ''].join('\n'),
  )
  fs.writeFileSync(
    leafConf,
    ['[req]', 'distinguished_name = dn', 'prompt = no', '[dn]', 'CN = localhost', '[leaf]', 'basicConstraints = critical, CA:FALSE', 'keyUsage = critical, digitalSignature, keyEncipherment', 'extendedKeyUsage = serverAuth', 'subjectAltName = DNS:localhost, IP:127.0.0.1', 'authorityKeyIdentifier = keyid', 'subjectKeyIdentifier = hash', ''].join('\n'),
  )
  const openssl = (/** @type {string[]} */ args) => execFileSync('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'] })
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes']
  openssl(['req', '-x509', ...ec, '-keyout', caKey, '-out', caCert, '-days', '7', '-config', caConf, '-sha256'])
  openssl(['req', '-new', ...ec, '-keyout', key, '-out', csr, '-config', leafConf, '-sha256'])
  openssl(['x509', '-req', '-in', csr, '-CA', caCert, '-CAkey', caKey, '-CAcreateserial', '-out', cert, '-days', '7', '-extfile', leafConf, '-extensions', 'leaf', '-sha256'])
  writeOwned(path.join(dir, 'server.key'), fs.readFileSync(key, 'utf8'), 0o600)
  writeOwned(path.join(dir, 'server.crt'), fs.readFileSync(cert, 'utf8'), 0o644)
  fs.rmSync(key)
  fs.rmSync(caKey)
  return { caCert, serverCert: cert }
}

/** Every server started here and not yet stopped: stopped at exit. @type {Set<PostgresServer>} */
const running = new Set()
let hooked = false

function hookExit() {
  if (hooked) return
  hooked = true
  process.on('exit', () => {
    for (const s of running) s.killSync()
  })
  // A signal (the test runner ending a file that ran out of time): stop, then exit as the
  // signal would have, running the other exit handlers too (temp directories).
  for (const [signal, number] of /** @type {const} */ ([
    ['SIGINT', 2],
    ['SIGTERM', 15],
    ['SIGHUP', 1],
  ])) {
    process.once(signal, () => {
      for (const s of running) s.killSync()
      process.exit(128 + number)
    })
  }
}

/**
 * @typedef {object} StartOptions
 * @property {boolean} [ssl] TLS on (ssl=on) with a certificate for localhost / 127.0.0.1; its CA is `sslRootCert`
 * @property {string} [password] the superuser's password (random by default)
 * @property {number} [maxConnections] max_connections (default 200)
 */

class PostgresServer {
  /** @param {{ base: string, data: string, port: number, password: string, ssl: boolean, sslRootCert?: string, bins: { initdb: string, pg_ctl: string, postgres: string }, maxConnections: number }} o */
  constructor(o) {
    this.base = o.base
    this.dataDir = o.data
    this.port = o.port
    this.password = o.password
    this.ssl = o.ssl
    /** The CA that signed the server's certificate (for `sslrootcert`), when started with `ssl`. */
    this.sslRootCert = o.sslRootCert
    this.bins = o.bins
    this.maxConnections = o.maxConnections
    this.logFile = path.join(o.base, 'server.log')
    this.user = 'postgres'
    /** Whether the server is (believed to be) up. */
    this.up = false
    /** Whether stop() ran: the data directory is gone. */
    this.removed = false
    /** @type {import('node:child_process').ChildProcess | null} */
    this.watchdog = null
  }

  /**
   * The connection URL of a database: postgres://postgres:<password>@127.0.0.1:<port>/<db>,
   * with `extraParams` (an object or a query string) as its query.
   * @param {string} [dbName] @param {Record<string, string | number> | string} [extraParams]
   */
  url(dbName = 'postgres', extraParams) {
    let query = ''
    if (typeof extraParams === 'string') query = extraParams.replace(/^\?/, '')
    else if (extraParams) query = new URLSearchParams(Object.entries(extraParams).map(([k, v]) => /** @type {[string, string]} */ ([k, String(v)]))).toString()
    return `postgres://${this.user}:${encodeURIComponent(this.password)}@127.0.0.1:${this.port}/${encodeURIComponent(dbName)}${query ? `?${query}` : ''}`
  }

  /** The pg_ctl options of every start: the same port and socket directory each time. */
  serverOptions() {
    const settings = [
      '-c listen_addresses=127.0.0.1',
      `-p ${this.port}`,
      `-c unix_socket_directories=${shq(this.dataDir)}`,
      // fsync off is safe here: the tests stop the server (immediate stop is a
      // crash of its processes) but never the machine, so written WAL survives.
      // synchronous_commit stays on: off, an immediate stop loses commits the
      // client was told of, which no real bank does (and replicas then diverge).
      '-c fsync=off',
      '-c full_page_writes=off',
      `-c max_connections=${this.maxConnections}`,
    ]
    if (this.ssl) settings.push('-c ssl=on', '-c ssl_cert_file=server.crt', '-c ssl_key_file=server.key')
    return settings.join(' ')
  }

  /** Starts the server on its data directory and port (pg_ctl start -w). */
  async startServer() {
    if (this.removed) throw new Error('this server was stopped for good (stop()); start a new one')
    if (this.up) return
    try {
      await runAsPostgres(this.bins.pg_ctl, ['-D', this.dataDir, '-l', this.logFile, '-w', '-t', '60', '-o', this.serverOptions(), 'start'])
    } catch (e) {
      throw new Error(`${/** @type {Error} */ (e).message}\nserver log:\n${this.logTail()}`)
    }
    this.up = true
    running.add(this)
  }

  /**
   * Stops the server, keeping its data directory (for "the server goes away" tests).
   * @param {{ mode?: 'smart' | 'fast' | 'immediate' }} [o] default 'fast' (sessions are terminated)
   */
  async stopServer({ mode = 'fast' } = {}) {
    if (!this.up) return
    await runAsPostgres(this.bins.pg_ctl, ['-D', this.dataDir, '-w', '-t', '60', '-m', mode, 'stop'])
    this.up = false
  }

  /** stopServer() then startServer(): the same data, the same port. @param {{ mode?: 'smart' | 'fast' | 'immediate' }} [o] */
  async restart(o) {
    await this.stopServer(o)
    await this.startServer()
  }

  /** Stops the server for good and removes its directory. Idempotent. */
  async stop() {
    if (this.removed) return
    try {
      if (this.up) await this.stopServer({ mode: 'fast' })
    } finally {
      if (this.up) this.killSync()
      this.removed = true
      running.delete(this)
      this.stopWatchdog()
      fs.rmSync(this.base, { recursive: true, force: true })
    }
  }

  /** At exit: an immediate stop, synchronously; then the directory goes. */
  killSync() {
    if (this.up) {
      const [f, a] = asPostgres(this.bins.pg_ctl, ['-D', this.dataDir, '-w', '-t', '30', '-m', 'immediate', 'stop'])
      try {
        execFileSync(f, a, { stdio: 'ignore', env: pgEnv() })
      } catch {
        // not running after all
      }
      this.up = false
    }
    running.delete(this)
    this.stopWatchdog()
    if (!this.removed) {
      this.removed = true
      fs.rmSync(this.base, { recursive: true, force: true })
    }
  }

  /**
   * A detached shell that outlives a SIGKILL of this process: once our pid is
   * gone, it stops the server and removes the directory. stop() ends it.
   */
  startWatchdog() {
    const stopCmd = asPostgresShell(this.bins.pg_ctl, ['-D', this.dataDir, '-w', '-t', '30', '-m', 'immediate', 'stop'])
    const script = `while kill -0 ${process.pid} 2>/dev/null; do sleep 1; done; ${stopCmd} >/dev/null 2>&1; rm -rf ${shq(this.base)}`
    const child = spawn('/bin/sh', ['-c', script], { detached: true, stdio: 'ignore' })
    child.unref()
    this.watchdog = child
  }

  stopWatchdog() {
    const w = this.watchdog
    this.watchdog = null
    if (w && w.pid !== undefined && w.exitCode === null && w.signalCode === null) {
      try {
        process.kill(-w.pid, 'SIGKILL') // its process group: the shell and its `sleep`
      } catch {
        // already gone
      }
    }
  }

  /** The last lines of the server log. */
  logTail() {
    try {
      return fs.readFileSync(this.logFile, 'utf8').split('\n').slice(-30).join('\n')
    } catch {
      return '(no log)'
    }
  }

  /**
   * A connected `pg` client of a database, ended after `fn`.
   * @template T
   * @param {string} database @param {(client: any) => Promise<T>} fn @returns {Promise<T>}
   */
  async withClient(database, fn) {
    const { Client } = pgModule()
    /** @type {any} */
    const options = { host: '127.0.0.1', port: this.port, user: this.user, password: this.password, database }
    if (this.ssl && this.sslRootCert) options.ssl = { ca: fs.readFileSync(this.sslRootCert, 'utf8'), servername: 'localhost' }
    const client = new Client(options)
    client.on('error', () => {}) // a server stopped under an idle client must not crash the tests
    await client.connect()
    try {
      return await fn(client)
    } finally {
      await client.end().catch(() => {})
    }
  }

  /**
   * One statement through the `pg` client; resolves with its rows.
   * @param {string} sql @param {unknown[]} [params] @param {string} [database] default 'postgres'
   * @returns {Promise<any[]>}
   */
  async query(sql, params = [], database = 'postgres') {
    return this.withClient(database, async (c) => (await c.query(sql, params)).rows)
  }

  /**
   * Creates a database (its name: lower-case letters, digits and _); resolves with the name.
   * @param {string} name
   */
  async createDatabase(name) {
    if (!/^[a-z_][a-z0-9_]{0,62}$/.test(name)) throw new Error(`createDatabase: a plain lower-case name, not ${JSON.stringify(name)}`)
    await this.query(`CREATE DATABASE "${name}"`)
    return name
  }
}

/**
 * Initialises a cluster in a fresh temp directory and starts it on a free port.
 * @param {StartOptions} [options]
 * @returns {Promise<PostgresServer>}
 */
async function start({ ssl = false, password, maxConnections = 200 } = {}) {
  const bins = binaries()
  if (!bins) throw new Error('PostgreSQL is not installed: no initdb/pg_ctl/postgres on PATH or in /usr/lib/postgresql/*/bin (Debian: apt-get install postgresql)')
  hookExit()
  const pw = password ?? `pw${crypto.randomBytes(12).toString('hex')}`
  const { base, data } = makeBaseDir()
  try {
    const pwfile = path.join(base, 'pwfile')
    writeOwned(pwfile, `${pw}\n`, 0o600)
    await runAsPostgres(bins.initdb, ['-D', data, '-U', 'postgres', `--pwfile=${pwfile}`, '--auth-host=scram-sha-256', '--auth-local=trust', '--encoding=UTF8', '--locale=C', '--no-sync'])
    fs.rmSync(pwfile)
    writeOwned(path.join(base, 'server.log'), '', 0o644)
    /** @type {string | undefined} */
    let sslRootCert
    if (ssl) sslRootCert = makeCertificates(data, base).caCert
    // A free port may be taken between the look and the start: a few tries.
    /** @type {Error | undefined} */
    let last
    for (let attempt = 0; attempt < 5; attempt++) {
      const server = new PostgresServer({ base, data, port: await freePort(), password: pw, ssl, sslRootCert, bins, maxConnections })
      try {
        await server.startServer()
      } catch (e) {
        last = /** @type {Error} */ (e)
        if (/already in use|could not bind|could not create any TCP\/IP sockets/i.test(server.logTail())) continue
        throw e
      }
      server.startWatchdog()
      return server
    }
    throw last ?? new Error('could not start PostgreSQL')
  } catch (e) {
    fs.rmSync(base, { recursive: true, force: true })
    throw e
  }
}

/**
 * A TCP proxy of 127.0.0.1 in front of a server, to make the network fail
 * while the server runs on: `blackhole()` keeps every connection open and
 * accepts new ones but passes no byte either way (a partition, a frozen
 * server); `restore()` cuts the connections that were black-holed (their
 * streams lost bytes) and passes bytes again; `cut()` ends every connection
 * now (a dropped link). `url(db, extra)` is the server's URL through the proxy.
 * @param {PostgresServer} server
 */
async function startProxy(server) {
  /** @type {Set<{ client: net.Socket, upstream: net.Socket, lost: boolean }>} */
  const pairs = new Set()
  let holed = false
  const proxy = net.createServer((client) => {
    const upstream = net.connect(server.port, '127.0.0.1')
    const pair = { client, upstream, lost: holed }
    pairs.add(pair)
    const end = () => {
      client.destroy()
      upstream.destroy()
      pairs.delete(pair)
    }
    client.on('data', (d) => {
      if (holed) pair.lost = true
      else upstream.write(d)
    })
    upstream.on('data', (d) => {
      if (holed) pair.lost = true
      else client.write(d)
    })
    for (const s of [client, upstream]) {
      s.on('error', end)
      s.on('close', end)
    }
  })
  proxy.unref()
  await new Promise((resolve) => proxy.listen(0, '127.0.0.1', () => resolve(undefined)))
  const address = proxy.address()
  const port = typeof address === 'object' && address ? address.port : 0
  return {
    port,
    /** @param {string} [dbName] @param {Record<string, string | number> | string} [extraParams] */
    url: (dbName, extraParams) => server.url(dbName, extraParams).replace(`@127.0.0.1:${server.port}/`, `@127.0.0.1:${port}/`),
    /** No byte passes from now on; connections stay open. */
    blackhole() {
      holed = true
      for (const p of pairs) p.lost = true
    },
    /** Bytes pass again; the connections that lost bytes are cut. */
    restore() {
      holed = false
      for (const p of [...pairs]) if (p.lost) (p.client.destroy(), p.upstream.destroy(), pairs.delete(p))
    },
    /** Ends every connection now. */
    cut() {
      for (const p of [...pairs]) (p.client.destroy(), p.upstream.destroy(), pairs.delete(p))
    },
    /** How many connections pass through now. */
    connections: () => pairs.size,
    close() {
      this.cut()
      return new Promise((resolve) => proxy.close(() => resolve(undefined)))
    },
  }
}

module.exports = { available, skipReason, start, startProxy, binaries, freePort, PostgresServer }

'use strict'
// The --help texts: the list of commands (each command's summary and help
// are in its module, cli/commands/<name>.js) and the options and exit codes
// every command shares.

const GLOBAL_HELP = `Options (every command):
  --db <path>       the SQLite database (default: .pattern-cache/patterns.db
                    under the current directory)
  --cache <path>    the cache file (default: patterns.v2.pcache beside the
                    database)
  --json            print one JSON document on stdout instead of text
  -h, --help        this help; \`pattern-cache <command> --help\` for one command
  -V, --version     the package version

Exit codes:
  0  ok
  1  a check failed or a problem was found (verify; status on a missing
     database)
  2  usage error: unknown command or option, missing or bad argument
  3  runtime error; its code is printed (DB_ERROR, IO_ERROR, INVALID_PATTERN,
     CACHE_CORRUPT, ... as in the README's "Error codes")`

/** @param {Record<string, { summary: string, args: string }>} commands */
function mainHelp(commands) {
  const width = Math.max(...Object.entries(commands).map(([n, c]) => (n + (c.args ? ' ' + c.args : '')).length))
  const lines = Object.entries(commands).map(([n, c]) => `  ${(n + (c.args ? ' ' + c.args : '')).padEnd(width)}  ${c.summary}`)
  return `Usage: pattern-cache <command> [options]

Inspects and maintains a pattern-cache store: the SQLite database (tier 2,
the source of truth) and the cache file built from it (tier 1).

Commands:
${lines.join('\n')}

${GLOBAL_HELP}
`
}

/** @param {Record<string, { args: string, help: string }>} commands @param {string} name */
function commandHelp(commands, name) {
  const c = commands[name]
  return `Usage: pattern-cache ${name}${c.args ? ' ' + c.args : ''} [options]

${c.help}

${GLOBAL_HELP}
`
}

module.exports = { GLOBAL_HELP, mainHelp, commandHelp }

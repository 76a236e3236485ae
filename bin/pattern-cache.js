#!/usr/bin/env node
'use strict'
// pattern-cache: the command line of the package. Plain Node (CommonJS, no
// dependencies). Every command opens the store with backgroundRebuild: false,
// so what it does is exactly what it prints; commands that only read open it
// with enabled: false, so they never write a cache file. `--help` for usage.
//
// This file only dispatches: each command is cli/commands/<name>.js; option
// parsing, help, output, exit codes and opening the store are in cli/lib/.

const COMMANDS = require('../cli/commands/index.js')
const { EXIT, reportError } = require('../cli/lib/errors.js')
const { parse } = require('../cli/lib/options.js')
const { mainHelp, commandHelp } = require('../cli/lib/help.js')
const { out } = require('../cli/lib/output.js')

async function main(argv) {
  const json = argv.includes('--json')
  // A closed pipe (`pattern-cache export | head`) ends the output, not in an error.
  process.stdout.on('error', (e) => {
    if (e.code === 'EPIPE') process.exit(EXIT.OK)
  })
  try {
    const { command, values, positionals } = parse(argv, COMMANDS)
    if (values.version) {
      const { version } = require('../package.json')
      if (values.json) out.json({ version })
      else out.text(`${version}\n`)
      return EXIT.OK
    }
    if (values.help || command === undefined) {
      const text = command ? commandHelp(COMMANDS, command) : mainHelp(COMMANDS)
      if (command === undefined && !values.help) {
        process.stderr.write(text)
        return EXIT.USAGE
      }
      out.text(text)
      return EXIT.OK
    }
    return await COMMANDS[command].run(values, out, positionals)
  } catch (e) {
    return reportError(e, json, out)
  }
}

main(process.argv.slice(2)).then((code) => {
  process.exitCode = code
})

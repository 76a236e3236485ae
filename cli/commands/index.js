'use strict'
// The commands, in the order --help lists them. Each is cli/commands/<name>.js:
// { summary, args, options, help, run(values, out, positionals) -> exit code }.

/** @type {Record<string, { summary: string, args: string, options: string[], help: string, run: Function }>} */
module.exports = {
  status: require('./status.js'),
  rebuild: require('./rebuild.js'),
  verify: require('./verify.js'),
  clear: require('./clear.js'),
  ls: require('./ls.js'),
  stats: require('./stats.js'),
  search: require('./search.js'),
  import: require('./import.js'),
  export: require('./export.js'),
  remote: require('./remote.js'),
}

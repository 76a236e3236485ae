'use strict'
// Preloaded (`node -r ./max-rss.js ...`) into a process whose peak memory the
// usage group measures: at exit, writes { maxRssBytes (process.resourceUsage().maxRSS,
// the kernel's high-water mark of the resident set), rss, rssAnon, rssFile (bytes,
// /proc/self/status at exit), exitCode } to the file named by PC_BENCH_MAXRSS_OUT.

const fs = require('node:fs')

const out = process.env.PC_BENCH_MAXRSS_OUT
if (out) {
  process.on('exit', (code) => {
    const at = {}
    try {
      const status = fs.readFileSync('/proc/self/status', 'utf8')
      for (const [key, name] of [['rss', 'VmRSS'], ['rssAnon', 'RssAnon'], ['rssFile', 'RssFile']]) {
        const m = new RegExp(`${name}:\\s+(\\d+) kB`).exec(status)
        if (m) at[key] = Number(m[1]) * 1024
      }
    } catch {}
    fs.writeFileSync(out, JSON.stringify({ maxRssBytes: process.resourceUsage().maxRSS * 1024, ...at, exitCode: code }) + '\n')
  })
}

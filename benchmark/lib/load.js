'use strict'
// How much CPU other processes used while a measure ran: the machine's busy
// time (/proc/stat) minus this process's own (all its threads, and the child
// processes it waited for: /proc/self/stat), sampled only between measures so
// the sampling itself never lands inside one. Linux only; elsewhere null.

const fs = require('node:fs')
const { performance } = require('node:perf_hooks')

const TICKS_PER_SECOND = 100 // USER_HZ

function snapshot() {
  try {
    // cpu  user nice system idle iowait irq softirq steal guest guest_nice
    const cpu = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number)
    // interrupts left out: those of this benchmark's own disk I/O are nobody's process time
    const busy = cpu[0] + cpu[1] + cpu[2] + cpu[7]
    // fields after "(comm)": state ppid ... utime(14) stime(15) cutime(16) cstime(17), numbered from 1
    const self = fs.readFileSync('/proc/self/stat', 'utf8')
    const fields = self.slice(self.lastIndexOf(')') + 2).split(' ')
    const own = Number(fields[11]) + Number(fields[12]) + Number(fields[13]) + Number(fields[14])
    return { at: performance.now(), busy, own }
  } catch {
    return null
  }
}

/** { seconds, otherCpuSeconds, otherCores }: CPU others used between two snapshots. */
function between(a, b) {
  if (!a || !b) return null
  const seconds = (b.at - a.at) / 1000
  const otherCpuSeconds = Math.max(0, (b.busy - a.busy - (b.own - a.own)) / TICKS_PER_SECOND)
  return { seconds, otherCpuSeconds, otherCores: seconds > 0 ? otherCpuSeconds / seconds : 0 }
}

module.exports = { snapshot, between }

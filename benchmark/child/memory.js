'use strict'
// Memory growth of opening one contender on one data set, in a fresh process:
// process.memoryUsage() after loading the contender's modules, and again after
// open (full GC before each). Prints the differences as JSON, in bytes.
//   node --expose-gc memory.js <contender> <count>

const { describeDataset } = require('../lib/dataset')
const { collect, sleep } = require('../lib/measure')

async function main() {
  const [name, count] = process.argv.slice(2)
  const contender = require(`../contenders/${name}`)
  const ds = describeDataset(Number(count))
  await sleep(50)
  collect()
  const before = process.memoryUsage()
  const store = await contender.open(ds)
  await sleep(100)
  collect()
  const after = process.memoryUsage()
  const delta = {}
  for (const key of ['rss', 'heapUsed', 'heapTotal', 'external', 'arrayBuffers']) delta[key] = after[key] - before[key]
  process.stdout.write(JSON.stringify(delta) + '\n')
  await store.close()
}

main().catch((e) => {
  console.error(e)
  process.exit(1)
})

'use strict'
// Returned objects are the caller's: changing one result (its fields, its
// embedding, its metadata) never changes another result, a later read, or the
// file, whichever path built it (a hit, a small or large list, a page, a search).

const { test } = require('node:test')
const assert = require('node:assert/strict')
const path = require('node:path')
const { PatternCache } = require('..')
const { generatePatterns, plain, Model, tempDir } = require('./helpers')

/** Scribbles over every part of a returned pattern. */
function scribble(/** @type {any} */ p) {
  p.id = 'scribbled'
  p.content = 'scribbled'
  p.usageCount = -1
  p.embedding.fill(12345)
  if (p.metadata) p.metadata.scribbled = true
  else p.metadata = { scribbled: true }
}

test('changing returned patterns changes no other result, no later read and not the file', async () => {
  const dir = tempDir('mutation')
  const dbPath = path.join(dir, 'patterns.db')
  // 3,000 in one domain: a list past the 256-pattern batches and past 2,000.
  const patterns = generatePatterns(3000, { dim: 8 }).map((p) => ({ ...p, domain: 'one', metadata: { n: p.id } }))
  const cache = await PatternCache.open({ dbPath, backgroundRebuild: false })
  await cache.storePatterns(patterns)
  await cache.rebuildCache()
  const model = new Model()
  model.store(patterns)
  const want = model.query({ domain: 'one' })

  const list = await cache.loadPatternsByDomain('one')
  assert.deepEqual(list.map(plain), want)
  // Every other result of the list stays as it was, neighbours in one batch included.
  for (const i of [0, 1, 255, 256, 2999]) scribble(list[i])
  for (const i of [2, 254, 257, 1000, 2998]) assert.deepEqual(plain(list[i]), want[i], `list[${i}]`)

  const hit = await cache.loadPattern(want[5].id)
  scribble(hit)
  const page = await cache.listPatterns({ domain: 'one', limit: 10 })
  scribble(page.patterns[3])
  const found = await cache.searchSimilar(/** @type {any} */ (want[7].embedding), { k: 3 })
  const foundIds = found.map((r) => r.pattern.id)
  for (const r of found) scribble(r.pattern)

  // Later reads of the same patterns are untouched.
  assert.deepEqual(plain(await cache.loadPattern(want[0].id)), want[0])
  assert.deepEqual(plain(await cache.loadPattern(want[5].id)), want[5])
  assert.deepEqual((await cache.loadPatternsByDomain('one')).map(plain), want)
  assert.deepEqual((await cache.listPatterns({ domain: 'one', limit: 10 })).patterns.map(plain), want.slice(0, 10))
  const again = await cache.searchSimilar(/** @type {any} */ (want[7].embedding), { k: 3 })
  assert.deepEqual(again.map((r) => r.pattern.id), foundIds)
  assert.deepEqual(again.map((r) => plain(r.pattern)), foundIds.map((id) => model.get(id)))
  // The file is intact, and SQLite too.
  assert.equal(await cache.verify(), 3000)
  const sqlite = await PatternCache.open({ dbPath, enabled: false })
  assert.deepEqual((await sqlite.query({ domain: 'one' })).map(plain), want)
  await sqlite.shutdown()
  await cache.shutdown()
})

// Type test: the package's index.d.ts offers at least the contract
// (__test__/contract/, a copy of shared/contract/: pattern-cache.d.ts and the
// additions of the issues that have landed).
// `tsc -p __test__` fails when any export stops being assignable.
import * as impl from '../index'
import type * as contract from './contract/pattern-cache'
import type * as search from './contract/additions/search'
import type * as store from './contract/additions/store'
import type * as remote from './contract/additions/remote'

// The whole module, value side: every exported value is assignable.
type ContractValues = { PatternCache: typeof contract.PatternCache }
export const values: ContractValues = impl

// Instances, both directions where the contract is the caller's view.
export declare const instance: impl.PatternCache
export const asContract: contract.PatternCache = instance
export const asSearch: search.PatternCacheSearch = instance
export const asStore: store.PatternCacheStore = instance
export const asRemote: remote.PatternCacheRemote = instance

// Every exported type is assignable to its contract counterpart.
type Assignable<A, B> = [A] extends [B] ? true : false
type Check<T extends true> = T
export type Types = [
  Check<Assignable<impl.Verdict, contract.Verdict>>,
  Check<Assignable<contract.Verdict, impl.Verdict>>,
  Check<Assignable<impl.TestPattern, contract.TestPattern>>,
  Check<Assignable<contract.TestPattern, impl.TestPattern>>,
  Check<Assignable<impl.StoredPattern, contract.StoredPattern>>,
  Check<Assignable<impl.AgentConfigEntry, contract.AgentConfigEntry>>,
  Check<Assignable<contract.AgentConfigEntry, impl.AgentConfigEntry>>,
  Check<Assignable<impl.InvalidationTrigger, contract.InvalidationTrigger>>,
  Check<Assignable<contract.InvalidationTrigger, impl.InvalidationTrigger>>,
  Check<Assignable<contract.CacheInvalidation, impl.CacheInvalidation>>,
  Check<Assignable<contract.PatternCacheConfig, impl.PatternCacheConfig>>,
  Check<Assignable<impl.CacheMetrics, contract.CacheMetrics>>,
  Check<Assignable<impl.CacheBuildResult, contract.CacheBuildResult>>,
  Check<Assignable<contract.PatternFilter, impl.PatternFilter>>,
  Check<Assignable<typeof impl.PatternCache.open, typeof contract.PatternCache.open>>,
  Check<Assignable<impl.SimilarityMetric, search.SimilarityMetric>>,
  Check<Assignable<search.SimilarityMetric, impl.SimilarityMetric>>,
  Check<Assignable<search.PatternSearchOptions, impl.PatternSearchOptions>>,
  Check<Assignable<impl.PatternSearchResult, search.PatternSearchResult>>,
  Check<Assignable<store.UsageOutcome, impl.UsageOutcome>>,
  Check<Assignable<impl.PatternStats, store.PatternStats>>,
  Check<Assignable<store.PatternPageRequest, impl.PatternPageRequest>>,
  Check<Assignable<impl.PatternPage, store.PatternPage>>,
  Check<Assignable<remote.RemoteConfig, impl.RemoteConfig>>,
  Check<Assignable<remote.PatternCacheConfigWithRemote, impl.PatternCacheConfig>>,
  Check<Assignable<impl.SyncResult, remote.SyncResult>>,
  Check<Assignable<remote.RemoteEvent, impl.CacheEvent>>,
  // Beyond the contract: remote_reset (issue 17 asks for it; no contract addition names it yet).
  Check<Assignable<impl.CacheEvent, contract.CacheEvent | remote.RemoteEvent | { type: 'remote_reset'; reason: string }>>,
]

// A caller written against the contract compiles against the package.
export async function usesTheContract(open: typeof contract.PatternCache.open): Promise<number> {
  const cache = await open({ dbPath: 'x.db', onEvent: (e: contract.CacheEvent) => void e.type })
  const p: contract.StoredPattern | null = await cache.loadPattern('id')
  await cache.storePattern({ id: 'a', type: 't', domain: 'd', content: 'c', embedding: [1, 2] })
  cache.markStale({ trigger: 'manual', requiresRebuild: false })
  const built: contract.CacheBuildResult = await cache.rebuildCache()
  await cache[Symbol.asyncDispose]()
  return (p?.embedding.length ?? 0) + built.patternCount + cache.getMetrics().cacheHits
}

// A search written against the search addition compiles against the package.
export async function searchesAsTheContractSays(cache: impl.PatternCache): Promise<number> {
  const options: search.PatternSearchOptions = { k: 5, domain: 'd', type: 't', framework: 'f', metric: 'dot', useMMR: true, mmrLambda: 0.3, threshold: 0.1 }
  const hits: search.PatternSearchResult[] = await cache.searchSimilar(new Float32Array(4), options)
  const more: search.PatternSearchResult[] = await cache.searchSimilar([1, 0, 0, 0])
  return (hits[0]?.score ?? 0) + more.length + (hits[0]?.pattern.embedding.length ?? 0)
}

// A pattern bank's bookkeeping written against the store addition compiles against the package.
export async function keepsTheBooks(cache: impl.PatternCache): Promise<number> {
  const used: boolean = await cache.recordUsage('id', { success: true, at: 1 })
  const stats: store.PatternStats = await cache.getStats()
  let page: store.PatternPage = await cache.listPatterns({ domain: 'd', limit: 100 })
  while (page.cursor !== undefined) page = await cache.listPatterns({ domain: 'd', limit: 100, cursor: page.cursor })
  const configs = await cache.listAgentConfigs()
  const gone: boolean = await cache.deleteAgentConfig('agent')
  return Number(used) + stats.byVerdict.flaky + page.patterns.length + configs.length + Number(gone)
}

// A caller of the remote addition compiles against the package.
export async function usesTheRemote(open: typeof impl.PatternCache.open): Promise<number> {
  const config: remote.PatternCacheConfigWithRemote = {
    dbPath: 'x.db',
    remote: { url: 'postgres://u@h/db', pollInterval: 1000 },
    onEvent: (e: contract.CacheEvent) => void e.type,
  }
  const cache = await open(config)
  const synced: remote.SyncResult = await cache.syncRemote()
  const seen: remote.RemoteEvent[] = []
  await open({ remote: { url: 'postgres://u@h/db' }, onEvent: (e) => (e.type === 'remote_synced' ? seen.push(e) : 0) })
  return synced.toGeneration + (cache.getMetrics().remote?.lag ?? 0) + seen.length
}

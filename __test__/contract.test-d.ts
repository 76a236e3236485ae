// Type test: the package's index.d.ts offers at least the contract
// (__test__/contract.d.ts, a copy of shared/contract/pattern-cache.d.ts).
// `tsc -p __test__` fails when any export stops being assignable.
import * as impl from '../index'
import type * as contract from './contract'

// The whole module, value side: every exported value is assignable.
type ContractValues = { PatternCache: typeof contract.PatternCache }
export const values: ContractValues = impl

// Instances, both directions where the contract is the caller's view.
export declare const instance: impl.PatternCache
export const asContract: contract.PatternCache = instance

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
  Check<Assignable<impl.CacheEvent, contract.CacheEvent>>,
  Check<Assignable<contract.PatternCacheConfig, impl.PatternCacheConfig>>,
  Check<Assignable<impl.CacheMetrics, contract.CacheMetrics>>,
  Check<Assignable<impl.CacheBuildResult, contract.CacheBuildResult>>,
  Check<Assignable<contract.PatternFilter, impl.PatternFilter>>,
  Check<Assignable<typeof impl.PatternCache.open, typeof contract.PatternCache.open>>,
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

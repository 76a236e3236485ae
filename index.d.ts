// pattern-cache: a two-tier store for test patterns.
// Tier 1 is a memory-mapped MessagePack cache file; tier 2 is SQLite, the
// source of truth. This file is the package's public surface; it satisfies
// the contract in __test__/contract/ (checked by __test__/contract.test-d.ts).

/** The outcome a pattern last had. */
export type Verdict = 'success' | 'failure' | 'flaky' | 'unknown'

/** A test pattern as callers write it. */
export interface TestPattern {
  /** Unique, non-empty, at most 1,024 UTF-8 bytes, no NUL. */
  id: string
  /** Non-empty, at most 256 bytes. Indexed. */
  type: string
  /** Non-empty, at most 256 bytes. Indexed. */
  domain: string
  /** Non-empty when given, at most 256 bytes. Indexed. Stored as 'unknown' when absent. */
  framework?: string
  /** At most 1 MiB of UTF-8. */
  content: string
  /**
   * 1..16,384 numbers, each a finite float32 (NaN, ±Infinity and numbers that a Float32Array
   * would round to ±Infinity are refused), all patterns of one database sharing one dimension.
   * Accepted as either; always returned as Float32Array.
   */
  embedding: Float32Array | number[]
  /** 0..1 */
  coverage?: number
  /** 0..1 */
  flakinessScore?: number
  /** Stored as 'unknown' when absent. */
  verdict?: Verdict
  /** Unix milliseconds (an integer). Defaults to the time of the first store; kept on later stores that omit it. */
  createdAt?: number
  /** Unix milliseconds (an integer). */
  lastUsed?: number
  /** A non-negative integer; 0 when absent. */
  usageCount?: number
  /** A non-negative integer; 0 when absent. */
  successCount?: number
  /** Any JSON-serialisable object (as `JSON.stringify` sees it), at most 256 KiB of JSON. */
  metadata?: Record<string, unknown>
}

/** A pattern as the cache returns it: defaults filled in, embedding as Float32Array. */
export interface StoredPattern extends TestPattern {
  framework: string
  embedding: Float32Array
  verdict: Verdict
  createdAt: number
  usageCount: number
  successCount: number
}

export interface AgentConfigEntry {
  /** Non-empty, at most 1,024 bytes. */
  agentId: string
  type: string
  /** JSON text (any JSON value), at most 1 MiB. Returned exactly as stored. */
  configJson: string
  version: string
  /** Unix milliseconds (an integer). */
  updatedAt: number
}

export type InvalidationTrigger =
  | 'pattern_stored'
  | 'pattern_deleted'
  | 'config_updated'
  | 'schema_migration'
  | 'manual'
  | 'ttl_expired'

export interface CacheInvalidation {
  trigger: InvalidationTrigger
  /** Unix milliseconds; now when absent. */
  timestamp?: number
  /** true: rebuild now; false: rebuild in the background when convenient. */
  requiresRebuild: boolean
  metadata?: Record<string, unknown>
}

/** What the cache tells its caller, as it happens. The union may grow. */
export type CacheEvent =
  | { type: 'rebuild_started'; reason: InvalidationTrigger | 'startup' | 'corruption' | 'version_mismatch' | 'source_changed' }
  | { type: 'rebuild_finished'; patternCount: number; durationMs: number; cacheFileSize: number }
  | { type: 'rebuild_failed'; error: string }
  | { type: 'fallback'; reason: string }
  | { type: 'corruption_detected'; detail: string }
  /** With `remote`: a sync pass moved this replica forward. */
  | { type: 'remote_synced'; fromGeneration: number; toGeneration: number; rowsApplied: number }
  /** With `remote`: the remote could not be reached, or a pass failed (`error` starts with its code); reads go on from the replica. */
  | { type: 'remote_unavailable'; error: string }
  /** With `remote`: the bank's history was not this replica's (a restore, a failover that lost commits, a clone); the replica took the bank's content. */
  | { type: 'remote_reset'; reason: string }

/**
 * `remote`: a shared PostgreSQL database (or a server speaking its protocol and SQL) that many
 * machines use as their one source of truth (README, "A shared bank"; docs/REMOTE.md).
 */
export interface RemoteConfig {
  /**
   * libpq-style connection string, e.g. 'postgres://user:pass@host:5432/patterns?sslmode=verify-full'.
   * sslmode: disable, allow, prefer (default), require, verify-ca, verify-full (TLS by rustls; no libpq);
   * sslrootcert: a PEM file of roots, or 'system' (the default for the verify modes).
   * The password never appears in errors, events, metrics or logs.
   */
  url: string
  /** Longest time (ms) between two looks at the remote for changes when no notification comes. Default 5000. */
  pollInterval?: number
  /** false: never LISTEN, poll only (for pgbouncer in transaction mode and engines without NOTIFY). Default true. */
  listen?: boolean
  /**
   * Longest time (ms) one call to the remote may take (a write, a page of a sync, a connection)
   * before it is taken for lost; also the server's statement timeout. Default 20000.
   */
  timeout?: number
  /**
   * The PostgreSQL schema the bank lives in: a lower-case identifier (a-z, 0-9, _; not starting
   * with a digit or pg_). One database can hold several banks, one per schema. Default 'pattern_cache'.
   */
  schema?: string
}

/** What `syncRemote()` did. */
export interface SyncResult {
  /** The remote generation this replica held before the sync, and holds now. */
  fromGeneration: number
  toGeneration: number
  /** Pattern and config rows applied (upserts and deletes). */
  rowsApplied: number
  /** ms */
  duration: number
}

/** `getMetrics().remote`. */
export interface RemoteMetrics {
  /** The remote generation this replica holds. */
  generation: number
  /** The newest remote generation this instance has seen (from its writes, syncs and notifications). */
  remoteGeneration: number
  /** remoteGeneration - generation. */
  lag: number
  /** Unix ms of the last sync this instance completed; 0 when none yet. */
  lastSyncAt: number
  /** Whether this instance's connection to the remote is up. */
  connected: boolean
}

export interface PatternCacheConfig {
  /** SQLite database, the source of truth. Default `.pattern-cache/patterns.db` under the current directory. */
  dbPath?: string
  /** MessagePack cache file (tier 1), derived from the database. Default `patterns.v2.pcache` beside the database. */
  cachePath?: string
  /** false: serve from SQLite only; no cache file is read or written. Default true. */
  enabled?: boolean
  /** Cache time-to-live in ms. Default 3_600_000. A background rebuild starts at 80% of it. */
  maxAge?: number
  /** How often (ms) to look for changes that other processes committed to the database. Default 1_000; 0 checks on every read. */
  checkInterval?: number
  /** Default true. */
  backgroundRebuild?: boolean
  /** Default true. When false and the cache cannot answer, a read rebuilds it first and fails with CACHE_UNAVAILABLE if that fails. */
  fallbackToSQLite?: boolean
  /** Default true. When false, the counters in getMetrics() stay 0. */
  enableMetrics?: boolean
  /** Called for every CacheEvent. Never keeps the process alive. A listener that throws is reported with process.emitWarning. */
  // Method syntax on purpose: the CacheEvent union grows (the remote's events), and a listener
  // written against an older union must still be accepted.
  onEvent?(event: CacheEvent): void
  /**
   * A shared bank: every write goes to this PostgreSQL database in one transaction and resolves
   * once this machine's SQLite database (then its replica) has it; reads are served locally as
   * without a remote and never wait on the network. @see RemoteConfig
   */
  remote?: RemoteConfig
}

export interface CacheMetrics {
  cacheHits: number
  cacheMisses: number
  /** 0..1 */
  cacheHitRate: number
  /** ms */
  avgCacheLoadTime: number
  /** ms */
  avgSQLiteFallbackTime: number
  cacheCorruptionCount: number
  cacheRebuildCount: number
  /** Unix ms of the cache file in use; 0 when none. */
  lastCacheGenerationTime: number
  /** bytes */
  cacheFileSize: number
  patternCount: number
  /** Which tier answers reads right now. */
  tier: 'cache' | 'sqlite'
  /** Why the cache file is not answering reads, when it is not. */
  cacheUnavailableReason?: string
  /** With `remote` only. */
  remote?: RemoteMetrics
}

export interface CacheBuildResult {
  success: boolean
  patternCount: number
  /** ms */
  duration: number
  /** bytes */
  cacheFileSize: number
  /** Why the build failed, prefixed with its error code in brackets. */
  error?: string
}

export interface PatternFilter {
  domain?: string
  type?: string
  framework?: string
  /** A non-negative integer: at most this many patterns (the first by id). */
  limit?: number
}

/** Options of `metricsPrometheus()`. */
export interface MetricsPrometheusOptions {
  /**
   * Constant labels added to every sample, e.g. `{ worker: '3' }` when one process exposes several
   * instances. Names are Prometheus label names (`[a-zA-Z_][a-zA-Z0-9_]*`, not `__`-prefixed, not `tier`).
   */
  labels?: Record<string, string>
}

/** The cache file and the database as they are on disk now. */
export interface CacheInspection {
  dbPath: string
  cachePath: string
  /** The database's change counter and pattern count. */
  dbGeneration: number
  dbPatternCount: number
  /** The configured maxAge, ms. */
  maxAge: number
  fileState: 'valid' | 'missing' | 'invalid'
  /** Why the file is invalid ('[CODE] message'). */
  fileProblem?: string
  fileSize?: number
  /** Format version of the file, semver. */
  formatVersion?: string
  /** The package version that wrote the file. */
  producer?: string
  /** The database generation the file was built from: current when equal to dbGeneration. */
  fileGeneration?: number
  /** False when the file was built from another database. */
  sameDatabase?: boolean
  filePatternCount?: number
  fileConfigCount?: number
  embeddingDim?: number
  /** Unix ms the file was written (its mtime). */
  writtenAt?: number
  /** Unix ms of the last database change the file holds. */
  contentChangedAt?: number
}

/** A stable error code (README, "Error codes"). */
export type ErrorCode =
  | 'INVALID_PATTERN'
  | 'INVALID_AGENT_CONFIG'
  | 'INVALID_ARGUMENT'
  | 'CLOSED'
  | 'DB_ERROR'
  | 'DB_BUSY'
  | 'SCHEMA_TOO_NEW'
  | 'IO_ERROR'
  | 'CACHE_CORRUPT'
  | 'CACHE_INCOMPATIBLE'
  | 'CACHE_UNAVAILABLE'
  | 'REMOTE_UNAVAILABLE'
  | 'REMOTE_OUTCOME_UNKNOWN'
  | 'REMOTE_ERROR'
  | 'REMOTE_INVALID_ROW'
  | 'REMOTE_MISMATCH'
  | 'INTERNAL'

/** How `searchSimilar` compares embeddings. */
export type SimilarityMetric = 'cosine' | 'dot' | 'euclidean'

/** `searchSimilar`'s options: IPatternStore's PatternSearchOptions. */
export interface PatternSearchOptions {
  /** Most results: an integer 1..1000. Default 10. */
  k?: number
  /** cosine, dot: only results scoring >= threshold; euclidean: only results at distance <= threshold. */
  threshold?: number
  /** Only patterns of this domain (the filter applies before ranking). */
  domain?: string
  /** Only patterns of this type. */
  type?: string
  /** Only patterns of this framework. */
  framework?: string
  /** Default 'cosine'. */
  metric?: SimilarityMetric
  /** Maximal marginal relevance: trade some relevance for diversity among the k results. Default false. */
  useMMR?: boolean
  /** 0..1, default 0.5: the weight of relevance against diversity under useMMR. */
  mmrLambda?: number
}

export interface PatternSearchResult {
  pattern: StoredPattern
  /** The cosine similarity, the dot product, or the Euclidean distance to the query, as the metric says. */
  score: number
}

/** One use of a pattern, as recorded after a test ran with it. */
export interface UsageOutcome {
  /** true: successCount + 1 as well. Default false. */
  success?: boolean
  /** Unix ms of the use (an integer, 0..8.64e15: the latest JavaScript Date); now when absent. lastUsed becomes max(lastUsed, at). */
  at?: number
}

/** One entry of `recordUsages`. */
export interface UsageEntry extends UsageOutcome {
  id: string
}

export interface PatternStats {
  patternCount: number
  /** The database's embedding dimension; 0 while it holds no pattern. */
  dimension: number
  byDomain: Record<string, number>
  byType: Record<string, number>
  byFramework: Record<string, number>
  /** Every verdict, 0 where none has it. */
  byVerdict: Record<Verdict, number>
  agentConfigCount: number
}

export interface PatternPageRequest extends PatternFilter {
  /** The cursor of the previous page; absent for the first. `limit` is the page size: an integer 1..10,000, default 1000. */
  cursor?: string
}

export interface PatternPage {
  patterns: StoredPattern[]
  /** Pass it to get the next page; absent after the last one. Opaque. */
  cursor?: string
}

/** Every error this package rejects or throws with has a `code`. */
export interface PatternCacheErrorLike extends Error {
  code: ErrorCode
}

/** The class of errors raised by argument checks in JavaScript; native errors are plain `Error`s with the same `code`. */
export declare class PatternCacheError extends Error implements PatternCacheErrorLike {
  constructor(code: ErrorCode, message: string)
  code: ErrorCode
}

export declare const ERROR_CODES: readonly ErrorCode[]

/**
 * Creates or migrates the package's schema (`pattern_cache`) on the remote bank at `url`, as
 * `pattern-cache remote migrate` does: forward-only, one transaction per migration, under an
 * advisory lock. Resolves with the schema version found and the version now.
 */
export declare function migrateRemote(url: string, options?: { schema?: string }): Promise<{ fromVersion: number; toVersion: number }>

/** The remote bank's schema version and generation, read without changing anything (`pattern-cache remote status`). */
export declare function probeRemote(url: string, options?: { schema?: string }): Promise<{ schemaVersion: number; generation: number }>

/**
 * Removes the tombstones and write records of the remote bank's generations written more than
 * `keep` ms ago (`pattern-cache remote prune --keep`), and resolves with the bank's prune floor now
 * and what was removed. Replicas below the floor reset to the bank at their next pass. Run as the
 * schema's owner (it deletes rows).
 */
export declare function pruneRemote(url: string, options: { keep: number; schema?: string }): Promise<{ floor: number; tombstones: number; writes: number }>

export declare class PatternCache {
  /**
   * Not for direct use: call `PatternCache.open()`. Throws TypeError.
   * @internal
   */
  constructor()

  /**
   * Opens (creating when absent) the database and the cache; ready to serve when it resolves.
   * A missing, corrupt, old-format or stale cache file is rebuilt here; if that fails, reads are
   * served from SQLite (see `getMetrics().cacheUnavailableReason`).
   * @throws INVALID_ARGUMENT for a bad option, DB_ERROR / IO_ERROR / SCHEMA_TOO_NEW when the database cannot be opened.
   */
  static open(config?: PatternCacheConfig): Promise<PatternCache>

  /** The pattern with this id, or null. Results of every query are ordered by id (UTF-8 byte order), on either tier. */
  loadPattern(id: string): Promise<StoredPattern | null>
  /** One entry per id, in the order given; null where absent. */
  loadPatterns(ids: string[]): Promise<Array<StoredPattern | null>>
  loadPatternsByDomain(domain: string): Promise<StoredPattern[]>
  loadPatternsByType(type: string): Promise<StoredPattern[]>
  loadPatternsByFramework(framework: string): Promise<StoredPattern[]>
  /** Patterns matching every field given (an intersection of the indexes), ordered by id. */
  query(filter: PatternFilter): Promise<StoredPattern[]>

  /**
   * The k patterns most similar to `embedding` among those matching every filter field given.
   * Exact: every matching pattern is scored (the filter applies before ranking), so k results
   * come back whenever k patterns match and pass the threshold. Best first (highest similarity,
   * or smallest distance); ties by id (byte order). A stored zero embedding has cosine
   * similarity 0 with everything. Scores are float64 (the float32 scan's survivors rescored).
   * useMMR: from the 3k best matches, picks greedily, k times, the pattern maximizing
   *   mmrLambda * cos(query, p) - (1 - mmrLambda) * max over already picked q of cos(p, q)
   * (the second term is 0 for the first pick; ties by id); each result's score is still the
   * metric's; the order is the picking order.
   * Sees this instance's writes at once and other processes' within checkInterval, on either tier.
   * @throws INVALID_ARGUMENT: another dimension than the database's, a value that is not a finite float32, a zero
   * vector under 'cosine', k or mmrLambda out of range, an unknown metric. An empty database gives [].
   */
  searchSimilar(embedding: Float32Array | number[], options?: PatternSearchOptions): Promise<PatternSearchResult[]>

  /**
   * Inserts or replaces a pattern. Writes go to SQLite in one transaction; a later read in this
   * process sees them at once. @throws INVALID_PATTERN (nothing written).
   */
  storePattern(pattern: TestPattern): Promise<void>
  /** All or nothing: every pattern is validated first, then all are written in one transaction. */
  storePatterns(patterns: TestPattern[]): Promise<void>
  /** true when a pattern was deleted. */
  deletePattern(id: string): Promise<boolean>
  loadAgentConfig(agentId: string): Promise<AgentConfigEntry | null>
  /** Inserts or replaces. @throws INVALID_AGENT_CONFIG (nothing written). */
  storeAgentConfig(config: AgentConfigEntry): Promise<void>

  /**
   * Records one use: usageCount + 1, lastUsed = max(lastUsed, outcome.at), successCount + 1 when
   * outcome.success. Atomic across processes and threads (one SQL UPDATE): concurrent uses are
   * never lost. Resolves false when there is no such pattern (and changes nothing). Visible to this
   * instance's next read at once, to other processes within checkInterval; counter changes are
   * served from the cache file amended in memory, and never rebuild it more often than the
   * scheduler's debounce. @throws INVALID_ARGUMENT (a bad id, `at` negative or not an integer)
   */
  recordUsage(id: string, outcome?: UsageOutcome): Promise<boolean>
  /**
   * Records many uses in one transaction (a whole test run). All or nothing: every entry is
   * checked first; an unknown id rejects with INVALID_ARGUMENT naming it, and nothing is written.
   */
  recordUsages(entries: UsageEntry[]): Promise<void>
  /** Counts of what the store holds, as of the newest generation this instance knows; the same from either tier. */
  getStats(): Promise<PatternStats>
  /**
   * Every pattern matching the filter, in id order (byte order), a page at a time (keyset paging
   * by id). Paging through while others write never returns an id twice and never skips one that
   * existed throughout. Memory is bounded by the page.
   * @throws INVALID_ARGUMENT (a bad cursor, a page size outside 1..10,000, a bad filter)
   */
  listPatterns(request?: PatternPageRequest): Promise<PatternPage>
  /** Every agent config, ordered by agentId (byte order). */
  listAgentConfigs(): Promise<AgentConfigEntry[]>
  /** true when a config was deleted (a `config_updated` invalidation, like a store). */
  deleteAgentConfig(agentId: string): Promise<boolean>

  /** Stops serving the cache file until it is rebuilt; `requiresRebuild: true` starts a rebuild now. @throws INVALID_ARGUMENT, CLOSED */
  markStale(event: CacheInvalidation): void
  /** Rebuilds the cache file from SQLite off the JavaScript thread and swaps it in. A failed build resolves with `success: false`. */
  rebuildCache(): Promise<CacheBuildResult>
  /**
   * With `remote`: pulls the remote's changes into this replica now and resolves once reads here see them.
   * @throws REMOTE_UNAVAILABLE when the remote cannot be reached (nothing changes locally; reads go on from the replica),
   * REMOTE_INVALID_ROW when a remote row fails validation (the replica stays at its last good generation),
   * REMOTE_MISMATCH, REMOTE_ERROR, INVALID_ARGUMENT without `remote`, CLOSED
   */
  syncRemote(): Promise<SyncResult>
  /** @throws CLOSED */
  getMetrics(): CacheMetrics

  /**
   * `getMetrics()` in the Prometheus text exposition format (0.0.4), for a `/metrics` endpoint.
   * Names follow prom-client's conventions: `pattern_cache_hits_total`, `pattern_cache_misses_total`,
   * `pattern_cache_corruptions_total`, `pattern_cache_rebuilds_total` (counters);
   * `pattern_cache_hit_ratio`, `pattern_cache_load_average_seconds`,
   * `pattern_cache_sqlite_fallback_average_seconds`, `pattern_cache_last_generation_timestamp_seconds`,
   * `pattern_cache_file_size_bytes`, `pattern_cache_patterns` and `pattern_cache_tier{tier="cache"|"sqlite"}`
   * (gauges), each with `# HELP` and `# TYPE` lines. Ends with a newline.
   * @throws INVALID_ARGUMENT for a bad label name or value, CLOSED
   */
  metricsPrometheus(options?: MetricsPrometheusOptions): string

  /** The cache file and database as they are on disk now (what the CLI's `status` prints). */
  inspect(): Promise<CacheInspection>
  /** Reads and checks every record of the cache file on disk; resolves with its pattern count, rejects with CACHE_CORRUPT, CACHE_INCOMPATIBLE or IO_ERROR. */
  verify(): Promise<number>

  /** Idempotent. After it resolves, nothing of this instance keeps the process alive; every other call rejects with CLOSED. */
  shutdown(): Promise<void>
  /** True once `shutdown()` was called. */
  readonly closed: boolean
  [Symbol.asyncDispose](): Promise<void>
}

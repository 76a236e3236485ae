//! The two-tier loader: serves reads from the cache file (tier 1) while it is
//! valid, from SQLite (tier 2) otherwise; sends every write to SQLite; builds
//! and swaps cache files, in the background when they fall behind.
//!
//! Freshness: the newest database generation this instance knows advances at
//! once on its own writes and, at most every `checkInterval`, from a look at
//! the database (other processes' commits). Tier 1 answers only while it can
//! answer as of that generation: the file itself when it is current, or the
//! file amended with the rows the database's change log says changed since
//! it was built (`overlay`). Otherwise SQLite answers. Nothing stale is served.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use rusqlite::Connection;

use crate::cache_file::{self, CachePaths, FileIdentity};
use crate::clock::now_ms;
use crate::config::Config;
use crate::db::{queries, schema, Database, Generation};
use crate::error::{Error, Result};
use crate::format::record::PatternRef;
use crate::format::CacheView;
use crate::metrics::{Metrics, MetricsSnapshot};
use crate::model::{
    AgentConfig, AgentConfigInput, BuildResult, CacheEvent, IndexKind, Pattern, PatternFilter, PatternInput, Stats,
    Trigger, UsageInput,
};
use crate::overlay::{Overlay, Tier1};
use crate::remote::replica::{self, SyncOutcome};
use crate::remote::syncer::{self, Syncer};
use crate::remote::writes::Write;
use crate::remote::{Remote, RemoteStatus};
use crate::scheduler::{Rebuild, Scheduler};
use crate::search::{self, SearchQuery};
use crate::validate;

/// Receives events from whichever thread they happen on.
pub type EventSink = Arc<dyn Fn(CacheEvent) + Send + Sync>;

/// Receives debug log lines (`DEBUG=pattern-cache*` in Node), from any thread.
pub type LogSink = Arc<dyn Fn(&str) + Send + Sync>;

/// The most changed keys an overlay holds; past it, SQLite answers until the
/// (already scheduled) rebuild lands.
const MAX_OVERLAY: usize = 4096;
/// The most patterns whose counters alone changed an overlay holds (about
/// 100 bytes each); past it, SQLite answers until the rebuild lands.
const MAX_COUNTERS: usize = 1 << 20;
/// Counter changes alone start a rebuild (folding them into the file) only
/// past this many patterns, or at the TTL: uses never rebuild the file per use.
const COUNTERS_REBUILD_AT: usize = 1 << 16;
/// The change log is pruned after a rebuild once it holds more keys than this.
const CHANGE_LOG_KEEP: usize = 10_000;
/// How long `shutdown` waits for a background rebuild to stop.
const SHUTDOWN_WAIT: Duration = Duration::from_secs(10);

/// Which tier is answering reads right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tier {
    Cache,
    Sqlite,
}

/// `getMetrics()`: the counters plus what the tiers look like now.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricsReport {
    pub counters: MetricsSnapshot,
    /// Unix ms at which the cache file in use was written (0: none).
    pub last_cache_generation_time: i64,
    pub cache_file_size: u64,
    pub pattern_count: u64,
    pub tier: Tier,
    /// Why tier 1 is not serving, when it is not.
    pub cache_unavailable_reason: Option<String>,
    /// With a remote: the replica's generation and the remote's.
    pub remote: Option<RemoteReport>,
}

/// `getMetrics().remote`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RemoteReport {
    /// The remote generation the replica holds (as this instance knows it).
    pub generation: u64,
    pub status: RemoteStatus,
}

pub struct PatternCache {
    /// `None` once shut down. In-flight calls keep their own `Arc`.
    inner: RwLock<Option<Arc<Inner>>>,
}

struct Inner {
    config: Config,
    paths: CachePaths,
    /// Shared with the process's other instances on this database.
    db: Arc<Database>,
    source_id: [u8; 16],
    view: ArcSwapOption<CacheView>,
    /// Identity and mtime (Unix ms) of the file behind `view`.
    view_file: Mutex<Option<FileIdentity>>,
    view_written_at: AtomicI64,
    overlay: ArcSwapOption<Overlay>,
    overlay_refresh: Mutex<()>,
    /// The newest database generation this instance knows of.
    known_generation: AtomicU64,
    pattern_count: AtomicU64,
    /// Unix ms of the last generation check.
    last_check_ms: AtomicI64,
    unavailable: Mutex<Option<String>>,
    /// One build at a time in this process (the file lock covers processes).
    building: Mutex<()>,
    /// Set by shutdown: a running build stops at the next record.
    cancel: AtomicBool,
    scheduler: std::sync::OnceLock<Scheduler>,
    metrics: Metrics,
    events: Option<EventSink>,
    log: Option<LogSink>,
    /// With `remote`: writes go there, and this database is its replica.
    remote: Option<Arc<Remote>>,
    syncer: std::sync::OnceLock<Syncer>,
    /// Opened without `remote` on a replica: writes are refused (they would
    /// fork it from its bank).
    replica_without_remote: bool,
}

impl PatternCache {
    /// Opens (creating when absent) the database, migrates it, validates the
    /// cache file and builds it when missing, broken, old or stale.
    pub fn open(config: Config, events: Option<EventSink>) -> Result<PatternCache> {
        Self::open_logged(config, events, None)
    }

    /// `open`, with debug log lines sent to `log`.
    pub fn open_logged(config: Config, events: Option<EventSink>, log: Option<LogSink>) -> Result<PatternCache> {
        if let Some(log) = &log {
            log(&format!(
                "open db={} cache={} enabled={} maxAge={}ms checkInterval={}ms",
                config.db_path.display(),
                config.cache_path.display(),
                config.enabled,
                config.max_age.as_millis(),
                config.check_interval.as_millis()
            ));
        }
        let (db, previous_schema) = Database::open_shared(&config.db_path)?;
        // One read transaction for both looks.
        let (generation, is_replica) = db.read(|c| Ok((queries::generation(c)?, replica::is_replica(c)?)))?;
        let migrated = previous_schema != 0 && previous_schema != schema::latest_version();
        let inner = Inner::assemble(config, db, generation, is_replica, events, log)?;
        if inner.config.enabled {
            inner.start_tier1(generation, migrated);
        }
        Ok(PatternCache {
            inner: RwLock::new(Some(inner)),
        })
    }

    /// `open` on the calling thread, when it needs neither waiting nor work:
    /// the process has this database open already, and the validated view of
    /// its cache file, current, in its table (a second open). `None`: use
    /// `open`. For the JavaScript thread.
    pub fn try_open_now(
        config: &Config,
        events: Option<EventSink>,
        log: Option<LogSink>,
    ) -> Option<Result<PatternCache>> {
        if !config.enabled || log.is_some() {
            return None;
        }
        let db = Database::shared(&config.db_path)?;
        let (generation, is_replica) =
            match db.try_read_now(|c| Ok((queries::generation(c)?, replica::is_replica(c)?)))? {
                Ok(v) => v,
                Err(e) => return Some(Err(e)),
            };
        let paths = CachePaths::new(&config.cache_path);
        let (view, identity) = cache_file::shared_view_if_cached(&paths.file)?;
        if view.header().generation != generation.generation || view.header().source_id != generation.source_id {
            return None;
        }
        Some(
            Inner::assemble(config.clone(), db, generation, is_replica, events, log).map(|inner| {
                cache_file::remove_dead_builds(&inner.paths);
                inner.install(view, identity);
                PatternCache {
                    inner: RwLock::new(Some(inner)),
                }
            }),
        )
    }

    fn inner(&self) -> Result<Arc<Inner>> {
        let guard = self.inner.read().unwrap_or_else(|p| p.into_inner());
        guard.clone().ok_or(Error::Closed)
    }

    pub fn is_closed(&self) -> bool {
        self.inner().is_err()
    }

    /// Answers from tier 1 without touching the database or blocking, or
    /// says it cannot (`None`): the database is due a look (`checkInterval`
    /// passed), the file is missing, or too far behind for the overlay in
    /// memory. Meant for the JavaScript thread; the full call is the fallback.
    pub fn try_cached<T>(&self, cached: impl Fn(&Tier1<'_>) -> Result<T>) -> Option<Result<T>> {
        let inner = self.inner().ok()?;
        inner.try_fast(&cached, true)
    }

    /// With the cache disabled, a read of SQLite on the calling thread that
    /// never waits: `None` when it would (or when the cache is enabled, where
    /// the full call also keeps tier 1 fresh).
    pub fn try_sqlite_now<T>(&self, read: impl FnOnce(&Connection) -> Result<T>) -> Option<Result<T>> {
        let inner = self.inner().ok()?;
        if inner.config.enabled {
            return None;
        }
        let started = Instant::now();
        let out = inner.db.try_read_now(read)?;
        inner.record(false, started.elapsed());
        Some(out)
    }

    /// Like `try_cached`, without counting a hit: for looking before reading.
    pub fn try_peek<T>(&self, look: impl Fn(&Tier1<'_>) -> T) -> Option<T> {
        let inner = self.inner().ok()?;
        inner.try_fast(&|t: &Tier1<'_>| Ok(look(t)), false)?.ok()
    }

    pub fn load_pattern(&self, id: &str) -> Result<Option<Pattern>> {
        validate::id_argument(id)?;
        self.inner()?.serve(|t| t.get(id), |c| queries::get_pattern(c, id))
    }

    /// One result per id, in the order given (`None` where absent).
    pub fn load_patterns(&self, ids: &[String]) -> Result<Vec<Option<Pattern>>> {
        for id in ids {
            validate::id_argument(id)?;
        }
        self.inner()?.serve(
            |t| ids.iter().map(|id| t.get(id)).collect(),
            |c| ids.iter().map(|id| queries::get_pattern(c, id)).collect(),
        )
    }

    pub fn load_by(&self, kind: IndexKind, name: &str) -> Result<Vec<Pattern>> {
        validate::key(kind.column(), name, validate::MAX_NAME_BYTES).map_err(Error::InvalidArgument)?;
        self.inner()?
            .serve(|t| t.by_index(kind, name), |c| queries::by_index(c, kind, name))
    }

    pub fn query(&self, filter: &PatternFilter) -> Result<Vec<Pattern>> {
        validate::filter(filter)?;
        self.inner()?.serve(|t| t.query(filter), |c| queries::query(c, filter))
    }

    /// The patterns most similar to the query, best first, with their
    /// scores (`search`): from tier 1 (amended) when it can answer, else SQLite.
    pub fn search_similar(&self, query: &SearchQuery) -> Result<Vec<(Pattern, f64)>> {
        self.inner()?.serve(
            |t| {
                Ok(search::on_tier1(t, query)?
                    .into_iter()
                    .map(|(p, s)| (p.to_owned(), s))
                    .collect())
            },
            |c| search::on_sqlite(c, query),
        )
    }

    /// One pass reading the vectors section of the file in use (the floor a
    /// search is measured against); `None` without a file.
    pub fn scan_floor(&self) -> Result<Option<u64>> {
        let view = self.inner()?.view.load_full();
        Ok(view.map(|v| search::kernel::read_floor(v.vectors().rows(v.bytes()))))
    }

    /// Records one use: false (nothing changed) when there is no such pattern.
    pub fn record_usage(&self, input: &UsageInput) -> Result<bool> {
        validate::id_argument(&input.id)?;
        let at = validate::usage_at(input.at, now_ms())?;
        let inner = self.inner()?;
        if let Some(remote) = inner.route()? {
            let uses = [(input.id.as_str(), input.success, at)];
            return inner.on_remote(
                remote,
                Write::RecordUsages {
                    uses: &uses,
                    strict: false,
                },
                None,
            );
        }
        // One UPDATE, atomic by itself: the write lock is held for it alone.
        // The generation read after it may include later writes too, which
        // only makes this instance fresher.
        let (found, generation) = inner.db.write_statement(
            |conn| queries::record_usage(conn, &input.id, input.success, at),
            queries::generation,
        )?;
        if found {
            inner.saw_own_use(generation);
        }
        Ok(found)
    }

    /// Records many uses in one transaction; an unknown id writes nothing.
    pub fn record_usages(&self, inputs: &[UsageInput]) -> Result<()> {
        let inner = self.inner()?;
        let now = now_ms();
        let checked = inputs
            .iter()
            .map(|u| {
                validate::id_argument(&u.id)?;
                Ok((u.id.as_str(), u.success, validate::usage_at(u.at, now)?))
            })
            .collect::<Result<Vec<_>>>()?;
        if checked.is_empty() {
            return Ok(());
        }
        if let Some(remote) = inner.route()? {
            let uses = Write::RecordUsages {
                uses: &checked,
                strict: true,
            };
            return inner.on_remote(remote, uses, None).map(|_| ());
        }
        let generation = inner.db.write(|conn| {
            for &(id, success, at) in &checked {
                if !queries::record_usage(conn, id, success, at)? {
                    return Err(Error::InvalidArgument(format!(
                        "recordUsages: there is no pattern '{id}' (nothing was recorded)"
                    )));
                }
            }
            queries::generation(conn)
        })?;
        inner.saw_own_use(generation);
        Ok(())
    }

    /// Counts of what the store holds.
    pub fn stats(&self) -> Result<Stats> {
        self.inner()?.serve(|t| t.stats(), queries::stats)
    }

    /// A page of the patterns matching `filter` with ids after `after`, and
    /// whether more follow.
    pub fn list_patterns(&self, filter: &PatternFilter, after: Option<&str>) -> Result<(Vec<Pattern>, bool)> {
        validate::filter(filter)?;
        if let Some(a) = after {
            validate::id_argument(a)?;
        }
        let size = validate::page_size(filter.limit)?;
        let (mut page, more) = self
            .inner()?
            .serve(
                |t| {
                    Ok(t.page(filter, after, size + 1)?
                        .iter()
                        .map(PatternRef::to_owned)
                        .collect::<Vec<_>>())
                },
                |c| queries::page(c, filter, after, size + 1),
            )
            .map(|p: Vec<Pattern>| {
                let more = p.len() > size;
                (p, more)
            })?;
        page.truncate(size);
        Ok((page, more))
    }

    /// Every agent config, in agent id order.
    pub fn list_agent_configs(&self) -> Result<Vec<AgentConfig>> {
        self.inner()?.serve(|t| Ok(t.configs()), queries::all_configs)
    }

    pub fn delete_agent_config(&self, agent_id: &str) -> Result<bool> {
        validate::key("agentId", agent_id, validate::MAX_ID_BYTES).map_err(Error::InvalidArgument)?;
        let inner = self.inner()?;
        if let Some(remote) = inner.route()? {
            return inner.on_remote(remote, Write::DeleteConfig(agent_id), Some(Trigger::ConfigUpdated));
        }
        let (deleted, generation) = inner
            .db
            .write(|conn| Ok((queries::delete_config(conn, agent_id)?, queries::generation(conn)?)))?;
        if deleted {
            inner.saw_own_write(generation, Trigger::ConfigUpdated);
        }
        Ok(deleted)
    }

    pub fn load_agent_config(&self, agent_id: &str) -> Result<Option<AgentConfig>> {
        validate::key("agentId", agent_id, validate::MAX_ID_BYTES).map_err(Error::InvalidArgument)?;
        self.inner()?
            .serve(|t| Ok(t.config(agent_id)), |c| queries::get_config(c, agent_id))
    }

    /// Validates the whole batch, then writes it in one transaction.
    pub fn store_patterns(&self, inputs: &[PatternInput]) -> Result<()> {
        let inner = self.inner()?;
        let validated = validate::patterns(inputs, now_ms(), None)?;
        let Some((first, _)) = validated.first() else {
            return Ok(());
        };
        if let Some(remote) = inner.route()? {
            let store = Write::StorePatterns(&validated);
            return inner.on_remote(remote, store, Some(Trigger::PatternStored)).map(|_| ());
        }
        let generation = inner.db.write(|conn| {
            if let Some(dim) = queries::embedding_dim(conn)?.filter(|&d| d != first.embedding.len()) {
                return Err(Error::invalid_pattern(
                    &first.id,
                    format!(
                        "embedding has {} dimensions; the database holds {dim}-dimensional embeddings",
                        first.embedding.len()
                    ),
                ));
            }
            queries::upsert_patterns(conn, &validated)?;
            queries::generation(conn)
        })?;
        inner.saw_own_write(generation, Trigger::PatternStored);
        Ok(())
    }

    pub fn delete_pattern(&self, id: &str) -> Result<bool> {
        validate::id_argument(id)?;
        let inner = self.inner()?;
        if let Some(remote) = inner.route()? {
            return inner.on_remote(remote, Write::DeletePattern(id), Some(Trigger::PatternDeleted));
        }
        let (deleted, generation) = inner
            .db
            .write(|conn| Ok((queries::delete_pattern(conn, id)?, queries::generation(conn)?)))?;
        if deleted {
            inner.saw_own_write(generation, Trigger::PatternDeleted);
        }
        Ok(deleted)
    }

    pub fn store_agent_config(&self, input: &AgentConfigInput) -> Result<()> {
        let config = validate::agent_config(input)?;
        let inner = self.inner()?;
        if let Some(remote) = inner.route()? {
            let store = Write::StoreConfig(&config);
            return inner.on_remote(remote, store, Some(Trigger::ConfigUpdated)).map(|_| ());
        }
        let generation = inner.db.write(|conn| {
            queries::upsert_config(conn, &config)?;
            queries::generation(conn)
        })?;
        inner.saw_own_write(generation, Trigger::ConfigUpdated);
        Ok(())
    }

    /// `syncRemote()`: pulls the remote's changes into the replica now.
    pub fn sync_remote(&self) -> Result<SyncOutcome> {
        let inner = self.inner()?;
        let Some(remote) = inner.remote.as_ref() else {
            return Err(Error::InvalidArgument(
                "syncRemote: this instance was opened without remote".into(),
            ));
        };
        match remote.sync(&inner.db) {
            Ok(outcome) => {
                syncer::Host::synced(&*inner, &outcome);
                Ok(outcome)
            }
            Err(e) => {
                syncer::Host::failed(&*inner, &e);
                Err(e)
            }
        }
    }

    /// Marks tier 1 stale: reads go to SQLite until a rebuild lands. The
    /// rebuild starts now (`rebuild_now`) or after the current burst settles.
    pub fn mark_stale(&self, trigger: Trigger, rebuild_now: bool) -> Result<()> {
        let inner = self.inner()?;
        inner.drop_view(&format!("marked stale ({})", trigger.as_str()));
        if let Some(s) = inner.scheduler.get() {
            s.invalidate(trigger, rebuild_now, true);
        }
        Ok(())
    }

    /// Rebuilds the cache file from SQLite now and starts serving from it.
    /// A failed build is reported in the result, not as an error.
    pub fn rebuild(&self, trigger: Trigger) -> Result<BuildResult> {
        let inner = self.inner()?;
        if !inner.config.enabled {
            return Ok(BuildResult {
                success: false,
                pattern_count: 0,
                duration_ms: 0.0,
                cache_file_size: 0,
                error: Some("the cache is disabled (enabled: false)".into()),
            });
        }
        Ok(inner.rebuild(trigger, true))
    }

    pub fn metrics(&self) -> Result<MetricsReport> {
        let inner = self.inner()?;
        let view = inner.view.load_full();
        let serving = inner.serving_view();
        let counters = if inner.config.enable_metrics {
            inner.metrics.snapshot()
        } else {
            MetricsSnapshot::default()
        };
        Ok(MetricsReport {
            counters,
            last_cache_generation_time: if view.is_some() {
                inner.view_written_at.load(Ordering::Relaxed)
            } else {
                0
            },
            cache_file_size: view.as_ref().map(|v| v.file_size()).unwrap_or(0),
            pattern_count: match (&serving, &view) {
                (true, Some(v)) if v.header().generation == inner.known_generation.load(Ordering::Acquire) => {
                    u64::from(v.len())
                }
                _ => inner.pattern_count.load(Ordering::Relaxed),
            },
            tier: if serving { Tier::Cache } else { Tier::Sqlite },
            cache_unavailable_reason: if serving {
                None
            } else {
                Some(inner.unavailable_reason())
            },
            remote: inner.remote.as_ref().map(|r| {
                let generation = inner.known_generation.load(Ordering::Acquire);
                r.saw_generation(generation);
                RemoteReport {
                    generation,
                    status: r.status(),
                }
            }),
        })
    }

    /// Closes the instance. Idempotent. Stops background work (waiting for a
    /// running rebuild to abandon its temp file); calls already running
    /// finish; every later call fails with `Closed`. Files and connections
    /// close as soon as the last running call returns.
    pub fn shutdown(&self) {
        let taken = self.inner.write().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(inner) = taken {
            inner.cancel.store(true, Ordering::Release);
            if let Some(s) = inner.syncer.get() {
                s.stop();
            }
            if let Some(s) = inner.scheduler.get() {
                // A rebuild abandons its build at the next record; waiting
                // longer than this would mean SQLite itself is stuck.
                let _ = s.stop(SHUTDOWN_WAIT);
            }
            inner.view.store(None);
            inner.overlay.store(None);
        }
    }

    /// The paths in use (for tools and tests).
    pub fn cache_path(&self) -> Result<std::path::PathBuf> {
        Ok(self.inner()?.paths.file.clone())
    }

    /// What the tiers look like now, read fresh from disk and database (the
    /// CLI's `status`).
    pub fn inspect(&self) -> Result<Inspection> {
        let inner = self.inner()?;
        let g = inner.db.generation()?;
        let file = match cache_file::open_view(&inner.paths.file) {
            Ok((view, identity)) => FileState::Valid(Box::new(FileInfo {
                size: view.file_size(),
                format: view.header().version.to_string(),
                producer: view.header().producer.clone(),
                generation: view.header().generation,
                same_database: view.header().source_id == g.source_id,
                pattern_count: view.header().pattern_count,
                config_count: view.header().config_count,
                embedding_dim: view.header().embedding_dim,
                written_at_ms: identity.modified_ms,
                content_changed_at_ms: view.header().created_at_ms,
            })),
            Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => FileState::Missing,
            Err(e) => FileState::Invalid(format!("[{}] {e}", e.code())),
        };
        Ok(Inspection {
            db_path: inner.config.db_path.display().to_string(),
            cache_path: inner.paths.file.display().to_string(),
            db_generation: g.generation,
            db_pattern_count: g.pattern_count,
            file,
            max_age_ms: inner.config.max_age.as_millis() as u64,
        })
    }

    /// Checks every byte of the cache file on disk: header, sections, and the
    /// hash and decoding of every record (the CLI's `verify`).
    pub fn verify_file(&self) -> Result<u64> {
        let inner = self.inner()?;
        let (view, _) = cache_file::open_view(&inner.paths.file)?;
        view.verify_all()?;
        Ok(u64::from(view.len()))
    }
}

/// The cache file as `inspect` found it.
#[derive(Debug, Clone, PartialEq)]
pub enum FileState {
    Missing,
    Invalid(String),
    Valid(Box<FileInfo>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct FileInfo {
    pub size: u64,
    pub format: String,
    pub producer: String,
    pub generation: u64,
    pub same_database: bool,
    pub pattern_count: u64,
    pub config_count: u64,
    pub embedding_dim: u32,
    pub written_at_ms: i64,
    pub content_changed_at_ms: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Inspection {
    pub db_path: String,
    pub cache_path: String,
    pub db_generation: u64,
    pub db_pattern_count: u64,
    pub file: FileState,
    pub max_age_ms: u64,
}

impl Drop for PatternCache {
    /// A cache dropped without `shutdown` (say, garbage-collected in
    /// JavaScript) stops its background task without waiting for it.
    fn drop(&mut self) {
        let guard = self.inner.read().unwrap_or_else(|p| p.into_inner());
        if let Some(inner) = guard.as_ref() {
            inner.cancel.store(true, Ordering::Release);
            if let Some(s) = inner.scheduler.get() {
                s.signal_stop();
            }
        }
    }
}

impl Rebuild for Inner {
    /// A panic here (a bug) must not take the process down: it becomes a
    /// `rebuild_failed` event and reads keep going to whatever tier can serve.
    fn rebuild_in_background(&self, trigger: Trigger, force: bool) {
        if self.cancel.load(Ordering::Acquire) {
            return;
        }
        let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.rebuild(trigger, force)));
        if let Err(panic) = run {
            self.emit(CacheEvent::RebuildFailed {
                error: format!("[INTERNAL] {}", crate::error::panic_message(&*panic)),
            });
        }
    }

    fn until_ttl(&self) -> Option<Duration> {
        self.view.load().as_ref()?;
        let written = self.view_written_at.load(Ordering::Relaxed);
        let at = written + (self.config.max_age.as_millis() as i64) * 4 / 5;
        Some(Duration::from_millis(at.saturating_sub(now_ms()).max(0) as u64))
    }
}

impl syncer::Host for Inner {
    fn database(&self) -> &Database {
        &self.db
    }

    fn synced(&self, outcome: &SyncOutcome) {
        if outcome.to_generation > outcome.from_generation {
            self.after_pass(outcome, None);
            self.emit(CacheEvent::RemoteSynced {
                from_generation: outcome.from_generation,
                to_generation: outcome.to_generation,
                rows_applied: outcome.rows_applied,
            });
        }
    }

    fn failed(&self, error: &Error) {
        self.emit(CacheEvent::RemoteUnavailable {
            error: format!("[{}] {error}", error.code()),
        });
    }
}

impl Inner {
    /// The instance around an opened database, its background tasks started.
    fn assemble(
        config: Config,
        db: Arc<Database>,
        generation: Generation,
        is_replica: bool,
        events: Option<EventSink>,
        log: Option<LogSink>,
    ) -> Result<Arc<Inner>> {
        let remote = config
            .remote
            .clone()
            .map(|r| Remote::new(r, &config.db_path).map(Arc::new))
            .transpose()?;
        let replica_without_remote = remote.is_none() && is_replica;
        let inner = Arc::new(Inner {
            paths: CachePaths::new(&config.cache_path),
            config,
            db,
            source_id: generation.source_id,
            view: ArcSwapOption::empty(),
            view_file: Mutex::new(None),
            view_written_at: AtomicI64::new(0),
            overlay: ArcSwapOption::empty(),
            overlay_refresh: Mutex::new(()),
            known_generation: AtomicU64::new(generation.generation),
            pattern_count: AtomicU64::new(generation.pattern_count),
            last_check_ms: AtomicI64::new(now_ms()),
            unavailable: Mutex::new(None),
            building: Mutex::new(()),
            cancel: AtomicBool::new(false),
            scheduler: std::sync::OnceLock::new(),
            metrics: Metrics::default(),
            events,
            log,
            remote,
            syncer: std::sync::OnceLock::new(),
            replica_without_remote,
        });
        if let Some(r) = &inner.remote {
            let s = Syncer::start(Arc::downgrade(&inner), Arc::clone(r))?;
            let _ = inner.syncer.set(s);
        }
        if !inner.config.enabled {
            inner.set_unavailable(Some("the cache is disabled (enabled: false)"));
        } else if inner.config.background_rebuild {
            if let Some(s) = Scheduler::start(Arc::downgrade(&inner)) {
                let _ = inner.scheduler.set(s);
            }
        }
        Ok(inner)
    }

    /// Where writes go: the remote when there is one; refused on a replica
    /// opened without it.
    fn route(&self) -> Result<Option<&Remote>> {
        if self.replica_without_remote {
            return Err(Error::RemoteMismatch(
                "this database is a replica of a remote bank: writes go through an instance opened with remote".into(),
            ));
        }
        Ok(self.remote.as_deref())
    }

    /// A write on the remote, seen here at once. False: it changed nothing.
    fn on_remote(&self, remote: &Remote, write: Write<'_>, trigger: Option<Trigger>) -> Result<bool> {
        match remote.write(&self.db, write) {
            Ok(Some(outcome)) => {
                self.after_pass(&outcome, trigger);
                Ok(true)
            }
            Ok(None) => Ok(false),
            Err(e) => {
                if matches!(e, Error::RemoteUnavailable(_)) {
                    syncer::Host::failed(self, &e);
                }
                Err(e)
            }
        }
    }

    /// The replica moved: as after a local write of `trigger`, or, for a
    /// pass or a use, a rebuild only when the changes call for one.
    fn after_pass(&self, outcome: &SyncOutcome, trigger: Option<Trigger>) {
        match trigger {
            Some(t) => self.saw_own_write(outcome.local, t),
            None => {
                self.saw_own_use(outcome.local);
                if self.config.enabled && self.rebuild_due() {
                    self.schedule(Trigger::SourceChanged, false, false);
                }
            }
        }
    }

    fn emit(&self, event: CacheEvent) {
        self.debug(|| format!("event {event:?}"));
        if let Some(sink) = &self.events {
            sink(event);
        }
    }

    /// A debug log line, formatted only when someone listens.
    fn debug(&self, line: impl FnOnce() -> String) {
        if let Some(log) = &self.log {
            log(&line());
        }
    }

    fn set_unavailable(&self, reason: Option<&str>) {
        *self.unavailable.lock().unwrap_or_else(|p| p.into_inner()) = reason.map(str::to_owned);
    }

    fn unavailable_reason(&self) -> String {
        let reason = self.unavailable.lock().unwrap_or_else(|p| p.into_inner()).clone();
        reason.unwrap_or_else(|| {
            "the cache file is behind the database by more than the change log can amend; a rebuild is due".into()
        })
    }

    fn drop_view(&self, reason: &str) {
        self.debug(|| format!("cache file out of service: {reason}"));
        self.view.store(None);
        self.overlay.store(None);
        *self.view_file.lock().unwrap_or_else(|p| p.into_inner()) = None;
        self.set_unavailable(Some(reason));
    }

    fn schedule(&self, trigger: Trigger, urgent: bool, force: bool) {
        if let Some(s) = self.scheduler.get() {
            s.invalidate(trigger, urgent, force);
        }
    }

    /// At open: adopt the cache file if it is valid and current, else build one.
    fn start_tier1(&self, generation: Generation, migrated: bool) {
        cache_file::remove_dead_builds(&self.paths);
        let reason = if migrated {
            Trigger::SchemaMigration
        } else {
            match cache_file::open_shared_view(&self.paths.file) {
                // Current only if built from this database, at its generation.
                Ok((view, identity))
                    if view.header().generation == generation.generation
                        && view.header().source_id == generation.source_id =>
                {
                    self.install(view, identity);
                    return;
                }
                // Behind only by uses: served amended with their counters (a
                // test run's uses must not make every worker rebuild at open).
                Ok((view, identity))
                    if view.header().source_id == generation.source_id
                        && view.header().generation < generation.generation
                        && generation.log_floor <= view.header().generation
                        && self.only_uses_since(view.header().generation) =>
                {
                    let base = Arc::clone(&view);
                    self.install(view, identity);
                    // Amend it now, so the first read (and getMetrics) sees tier 1.
                    let _ = self.overlay_for(&base, generation.generation);
                    return;
                }
                Ok(_) => Trigger::SourceChanged,
                Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => Trigger::Startup,
                Err(e @ Error::CacheIncompatible(_)) => {
                    self.emit(CacheEvent::CorruptionDetected { detail: e.to_string() });
                    Trigger::VersionMismatch
                }
                Err(e) => {
                    self.corruption(&e);
                    Trigger::Corruption
                }
            }
        };
        self.rebuild(reason, migrated);
    }

    /// True when only counters changed after `base`, and not too many.
    fn only_uses_since(&self, base: u64) -> bool {
        self.db
            .read(|c| {
                Ok(!queries::content_changed_since(c, base)?
                    && queries::counter_changes_since(c, base)? <= COUNTERS_REBUILD_AT as u64)
            })
            .unwrap_or(false)
    }

    fn corruption(&self, e: &Error) {
        self.metrics.corruption();
        self.emit(CacheEvent::CorruptionDetected { detail: e.to_string() });
    }

    fn install(&self, view: Arc<CacheView>, identity: FileIdentity) {
        self.known_generation
            .fetch_max(view.header().generation, Ordering::AcqRel);
        self.view_written_at.store(identity.modified_ms, Ordering::Relaxed);
        *self.view_file.lock().unwrap_or_else(|p| p.into_inner()) = Some(identity);
        self.overlay.store(None);
        self.view.store(Some(view));
        self.set_unavailable(None);
        if let Some(s) = self.scheduler.get() {
            s.wake();
        }
    }

    /// Builds a cache file and serves from it. `force` rebuilds even when a
    /// current file is in place.
    fn rebuild(&self, trigger: Trigger, force: bool) -> BuildResult {
        let _one_at_a_time = self.building.lock().unwrap_or_else(|p| p.into_inner());
        self.emit(CacheEvent::RebuildStarted { reason: trigger });
        let _ = crate::faults::hit(crate::faults::Step::Rebuild);
        let started = Instant::now();
        let outcome = cache_file::build(&self.db, &self.paths, force, &self.cancel)
            .and_then(|built| Ok((built, cache_file::open_shared_view(&self.paths.file)?)));
        let duration_ms = started.elapsed().as_secs_f64() * 1e3;
        match outcome {
            Ok((built, (view, identity))) => {
                if built.wrote {
                    self.metrics.rebuild();
                    let generation = view.header().generation;
                    // Best effort: the log is only an optimisation, the count only metrics.
                    let _ = self
                        .db
                        .write(|c| queries::prune_changes(c, generation, CHANGE_LOG_KEEP));
                }
                if built.count_drifted {
                    let _ = self.db.write(queries::repair_pattern_count);
                }
                let count = view.header().pattern_count;
                let size = view.file_size();
                self.install(view, identity);
                self.emit(CacheEvent::RebuildFinished {
                    pattern_count: count,
                    duration_ms,
                    cache_file_size: size,
                });
                BuildResult {
                    success: true,
                    pattern_count: count,
                    duration_ms,
                    cache_file_size: size,
                    error: None,
                }
            }
            Err(e) => {
                let error = format!("[{}] {e}", e.code());
                self.drop_view(&format!("the cache could not be built: {error}"));
                self.emit(CacheEvent::RebuildFailed { error: error.clone() });
                self.emit(CacheEvent::Fallback {
                    reason: self.unavailable_reason(),
                });
                BuildResult {
                    success: false,
                    pattern_count: 0,
                    duration_ms,
                    cache_file_size: 0,
                    error: Some(error),
                }
            }
        }
    }

    fn saw_own_write(&self, generation: Generation, trigger: Trigger) {
        self.debug(|| format!("{} -> generation {}", trigger.as_str(), generation.generation));
        self.saw_own_use(generation);
        self.schedule(trigger, false, false);
    }

    /// A write that changed only counters: seen at once (through the
    /// overlay), folded into the file at the next rebuild, never one per use.
    fn saw_own_use(&self, generation: Generation) {
        let known = generation.generation;
        self.known_generation.fetch_max(known, Ordering::AcqRel);
        self.pattern_count.store(generation.pattern_count, Ordering::Relaxed);
        // Amend the file now, on this (pool) thread, so that the next read is
        // answered from tier 1 on the caller's thread, not after a refresh.
        if let Some(view) = self.view.load_full().filter(|v| v.header().generation < known) {
            let _ = self.overlay_for(&view, known);
        }
    }

    /// Looks at the database when `checkInterval` has passed since the last
    /// look (or `force`): its generation, and whether another process put a
    /// newer cache file in place.
    fn check_database(&self, force: bool) -> Result<()> {
        let interval = self.config.check_interval.as_millis() as i64;
        let now = now_ms();
        let last = self.last_check_ms.load(Ordering::Relaxed);
        if !force && interval > 0 && now - last < interval {
            return Ok(());
        }
        if !force
            && interval > 0
            && self
                .last_check_ms
                .compare_exchange(last, now, Ordering::AcqRel, Ordering::Relaxed)
                .is_err()
        {
            return Ok(()); // another call is looking right now
        }
        self.last_check_ms.store(now, Ordering::Relaxed);
        let g = self.db.generation()?;
        let previous = self.known_generation.fetch_max(g.generation, Ordering::AcqRel);
        if g.generation > previous {
            self.debug(|| format!("database changed elsewhere: generation {previous} -> {}", g.generation));
        }
        self.pattern_count.store(g.pattern_count, Ordering::Relaxed);
        if let Some(remote) = &self.remote {
            if let Ok(Some((at, seen))) = self.db.read(replica::last_pass) {
                remote.saw_pass(at, seen);
            }
        }
        if self.config.enabled {
            self.adopt_newer_file();
            let behind = self
                .view
                .load()
                .as_ref()
                .is_some_and(|v| v.header().generation < g.generation);
            if g.generation > previous && behind && self.rebuild_due() {
                self.schedule(Trigger::SourceChanged, false, false);
            }
        }
        Ok(())
    }

    /// Whether the changes since the file in use call for a rebuild: any but
    /// counters, or counters of many patterns (or when the log cannot tell).
    fn rebuild_due(&self) -> bool {
        let Some(view) = self.view.load_full() else {
            return true;
        };
        let base = view.header().generation;
        self.db
            .read(|c| {
                Ok(queries::content_changed_since(c, base)?
                    || queries::counter_changes_since(c, base)? > COUNTERS_REBUILD_AT as u64
                    || queries::generation(c)?.log_floor > base)
            })
            .unwrap_or(true)
    }

    /// Another process may have built a newer file: adopt it when it is
    /// from this database and newer than the one in use.
    fn adopt_newer_file(&self) {
        let Ok(on_disk) = FileIdentity::of(&self.paths.file) else {
            return;
        };
        if self.view_file.lock().unwrap_or_else(|p| p.into_inner()).as_ref() == Some(&on_disk) {
            return;
        }
        let Ok((view, identity)) = cache_file::open_shared_view(&self.paths.file) else {
            return; // a broken file is the builder's to replace; keep ours
        };
        let ours = self.view.load().as_ref().map(|v| v.header().generation);
        if view.header().source_id == self.source_id && ours.is_none_or(|g| view.header().generation > g) {
            self.debug(|| {
                format!(
                    "adopting a cache file another process built (generation {})",
                    view.header().generation
                )
            });
            self.install(view, identity);
        }
    }

    /// The file in use, if it has not outlived `maxAge` without a check of
    /// the database since (then it gets one now).
    fn current_view(&self) -> Result<Option<Arc<CacheView>>> {
        let Some(view) = self.view.load_full() else {
            return Ok(None);
        };
        let expires = self.view_written_at.load(Ordering::Relaxed) + self.config.max_age.as_millis() as i64;
        if now_ms() > expires && self.last_check_ms.load(Ordering::Relaxed) < expires {
            self.check_database(true)?;
        }
        Ok(self.view.load_full().or(Some(view)))
    }

    /// True when tier 1 can answer as of the newest known generation without
    /// reading the database first.
    fn serving_view(&self) -> bool {
        let Some(view) = self.view.load_full() else {
            return false;
        };
        let known = self.known_generation.load(Ordering::Acquire);
        view.header().generation == known
            || self
                .overlay
                .load()
                .as_ref()
                .is_some_and(|o| o.base == view.header().generation && o.generation >= known)
    }

    /// The overlay that brings `view` up to `known`, refreshed from the
    /// change log when it is behind; `None` when the log cannot.
    fn overlay_for(&self, view: &CacheView, known: u64) -> Option<Arc<Overlay>> {
        let base = view.header().generation;
        let fits = |o: &Arc<Overlay>| o.base == base && o.generation >= known;
        if let Some(o) = self.overlay.load_full().filter(fits) {
            return Some(o);
        }
        let _one_refresh = self.overlay_refresh.lock().unwrap_or_else(|p| p.into_inner());
        let current = self.overlay.load_full().filter(|o| o.base == base);
        if let Some(o) = current.as_ref().filter(|o| fits(o)) {
            return Some(Arc::clone(o));
        }
        let since = current.as_ref().map_or(base, |o| o.generation);
        let room = MAX_OVERLAY.saturating_sub(current.as_ref().map_or(0, |o| o.len()));
        let previous_counters = current.as_ref().map_or(0, |o| o.counter_len());
        let counter_room = MAX_COUNTERS.saturating_sub(previous_counters);
        let changes = self
            .db
            .read(|c| queries::changes_since(c, since, room, counter_room))
            .ok()??;
        let next = Arc::new(match current {
            Some(o) => o.advanced(changes),
            None => Overlay::new(base).advanced(changes),
        });
        if next.len() > MAX_OVERLAY {
            self.debug(|| {
                format!(
                    "{} changed keys: too many to amend the file; SQLite answers until the rebuild",
                    next.len()
                )
            });
            return None;
        }
        if next.counter_len() > COUNTERS_REBUILD_AT && previous_counters <= COUNTERS_REBUILD_AT {
            self.schedule(Trigger::SourceChanged, false, false);
        }
        self.debug(|| {
            format!(
                "amending generation {base} with {} changed keys and the counters of {} used patterns (now at {})",
                next.len(),
                next.counter_len(),
                next.generation
            )
        });
        self.overlay.store(Some(Arc::clone(&next)));
        Some(next)
    }

    fn serve<T>(
        self: &Arc<Self>,
        cached: impl Fn(&Tier1<'_>) -> Result<T>,
        direct: impl FnOnce(&Connection) -> Result<T>,
    ) -> Result<T> {
        if self.config.enabled {
            self.check_database(false)?;
            if let Some(result) = self.try_tier1(&cached)? {
                return result;
            }
            if !self.config.fallback_to_sqlite {
                // Tier 1 only: bring it up to date now and answer from it.
                let built = self.rebuild(Trigger::SourceChanged, false);
                if let Some(result) = self.try_tier1(&cached)? {
                    return result;
                }
                return Err(Error::CacheUnavailable(
                    built.error.unwrap_or_else(|| self.unavailable_reason()),
                ));
            }
        }
        let started = Instant::now();
        let out = self.db.read(direct)?;
        self.record(false, started.elapsed());
        Ok(out)
    }

    /// `try_tier1` restricted to what needs no database access.
    fn try_fast<T>(&self, cached: &impl Fn(&Tier1<'_>) -> Result<T>, count: bool) -> Option<Result<T>> {
        if !self.config.enabled {
            return None;
        }
        let interval = self.config.check_interval.as_millis() as i64;
        let now = now_ms();
        if interval == 0 || now - self.last_check_ms.load(Ordering::Relaxed) >= interval {
            return None;
        }
        let view = self.view.load_full()?;
        let expires = self.view_written_at.load(Ordering::Relaxed) + self.config.max_age.as_millis() as i64;
        if now > expires && self.last_check_ms.load(Ordering::Relaxed) < expires {
            return None;
        }
        let known = self.known_generation.load(Ordering::Acquire);
        let overlay = if view.header().generation == known {
            None
        } else {
            let base = view.header().generation;
            Some(
                self.overlay
                    .load_full()
                    .filter(|o| o.base == base && o.generation >= known)?,
            )
        };
        self.answer(&view, overlay.as_deref(), cached, count)
    }

    /// Runs a read on tier 1; `None` when the file failed a check (it is
    /// then dropped and a rebuild scheduled).
    fn answer<T>(
        &self,
        view: &CacheView,
        overlay: Option<&Overlay>,
        cached: &impl Fn(&Tier1<'_>) -> Result<T>,
        count: bool,
    ) -> Option<Result<T>> {
        let started = Instant::now();
        let _ = crate::faults::hit(crate::faults::Step::Read);
        match cached(&Tier1 { view, overlay }) {
            Ok(v) => {
                if count {
                    self.record(true, started.elapsed());
                }
                Some(Ok(v))
            }
            Err(e) if e.is_cache_problem() => {
                self.corruption(&e);
                self.drop_view(&format!("the cache file failed a check: {e}"));
                self.emit(CacheEvent::Fallback {
                    reason: self.unavailable_reason(),
                });
                self.schedule(Trigger::Corruption, true, true);
                None
            }
            Err(e) => Some(Err(e)),
        }
    }

    /// Answers from tier 1 when it can; `None` means "ask SQLite". A corrupt
    /// record drops the file and starts a rebuild.
    fn try_tier1<T>(&self, cached: &impl Fn(&Tier1<'_>) -> Result<T>) -> Result<Option<Result<T>>> {
        let Some(view) = self.current_view()? else {
            return Ok(None);
        };
        let known = self.known_generation.load(Ordering::Acquire);
        let overlay = if view.header().generation == known {
            None
        } else {
            match self.overlay_for(&view, known) {
                Some(o) => Some(o),
                None => return Ok(None),
            }
        };
        Ok(self.answer(&view, overlay.as_deref(), cached, true))
    }

    fn record(&self, hit: bool, took: Duration) {
        if !self.config.enable_metrics {
            return;
        }
        if hit {
            self.metrics.hit(took);
        } else {
            self.metrics.miss(took);
        }
    }
}

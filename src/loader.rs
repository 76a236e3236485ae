//! The two-tier loader: serves reads from the cache file (tier 1) while it is
//! valid and current, from SQLite (tier 2) otherwise; sends every write to
//! SQLite; builds and swaps cache files.
//!
//! "Current" means built from the database generation this instance last
//! saw. Own writes advance that generation at once (read-your-writes); other
//! processes' writes are seen by a generation check at most every
//! `checkInterval`. A stale or broken tier 1 is never served.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwapOption;
use rusqlite::Connection;

use crate::cache_file::{self, CachePaths};
use crate::config::Config;
use crate::db::{queries, schema, Database, Generation};
use crate::error::{Error, Result};
use crate::format::CacheView;
use crate::metrics::{Metrics, MetricsSnapshot};
use crate::model::{
    AgentConfig, AgentConfigInput, BuildResult, CacheEvent, IndexKind, Pattern, PatternFilter, PatternInput, Trigger,
};
use crate::validate;

/// Receives events from whichever thread they happen on.
pub type EventSink = Arc<dyn Fn(CacheEvent) + Send + Sync>;

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
}

pub struct PatternCache {
    /// `None` once shut down. In-flight calls keep their own `Arc`.
    inner: RwLock<Option<Arc<Inner>>>,
}

struct Inner {
    config: Config,
    paths: CachePaths,
    db: Database,
    view: ArcSwapOption<CacheView>,
    /// mtime (Unix ms) of the file behind `view`.
    view_written_at: AtomicI64,
    /// The newest database generation this instance knows of.
    known_generation: AtomicU64,
    pattern_count: AtomicU64,
    started: Instant,
    /// ms since `started` of the last generation check.
    last_check_ms: AtomicU64,
    unavailable: Mutex<Option<String>>,
    /// One build at a time in this process (the file lock covers processes).
    building: Mutex<()>,
    rebuild_queued: AtomicBool,
    metrics: Metrics,
    events: Option<EventSink>,
}

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl PatternCache {
    /// Opens (creating when absent) the database, migrates it, validates the
    /// cache file and builds it when missing, broken, old or stale.
    pub fn open(config: Config, events: Option<EventSink>) -> Result<PatternCache> {
        let opened = Database::open(&config.db_path)?;
        let generation = opened.db.generation()?;
        let migrated = opened.previous_schema != 0 && opened.previous_schema != schema::latest_version();
        let inner = Arc::new(Inner {
            paths: CachePaths::new(&config.cache_path),
            config,
            db: opened.db,
            view: ArcSwapOption::empty(),
            view_written_at: AtomicI64::new(0),
            known_generation: AtomicU64::new(generation.generation),
            pattern_count: AtomicU64::new(generation.pattern_count),
            started: Instant::now(),
            last_check_ms: AtomicU64::new(0),
            unavailable: Mutex::new(None),
            building: Mutex::new(()),
            rebuild_queued: AtomicBool::new(false),
            metrics: Metrics::default(),
            events,
        });
        if inner.config.enabled {
            inner.start_tier1(generation, migrated);
        } else {
            inner.set_unavailable("the cache is disabled (enabled: false)");
        }
        Ok(PatternCache {
            inner: RwLock::new(Some(inner)),
        })
    }

    fn inner(&self) -> Result<Arc<Inner>> {
        let guard = self.inner.read().unwrap_or_else(|p| p.into_inner());
        guard.clone().ok_or(Error::Closed)
    }

    pub fn is_closed(&self) -> bool {
        self.inner().is_err()
    }

    pub fn load_pattern(&self, id: &str) -> Result<Option<Pattern>> {
        validate::id_argument(id)?;
        self.inner()?.serve(|v| v.get(id), |c| queries::get_pattern(c, id))
    }

    /// One result per id, in the order given (`None` where absent).
    pub fn load_patterns(&self, ids: &[String]) -> Result<Vec<Option<Pattern>>> {
        for id in ids {
            validate::id_argument(id)?;
        }
        self.inner()?.serve(
            |v| ids.iter().map(|id| v.get(id)).collect(),
            |c| ids.iter().map(|id| queries::get_pattern(c, id)).collect(),
        )
    }

    pub fn load_by(&self, kind: IndexKind, name: &str) -> Result<Vec<Pattern>> {
        validate::key(kind.column(), name, validate::MAX_NAME_BYTES).map_err(Error::InvalidArgument)?;
        self.inner()?
            .serve(|v| v.by_index(kind, name), |c| queries::by_index(c, kind, name))
    }

    pub fn query(&self, filter: &PatternFilter) -> Result<Vec<Pattern>> {
        validate::filter(filter)?;
        self.inner()?.serve(|v| v.query(filter), |c| queries::query(c, filter))
    }

    pub fn load_agent_config(&self, agent_id: &str) -> Result<Option<AgentConfig>> {
        validate::key("agentId", agent_id, validate::MAX_ID_BYTES).map_err(Error::InvalidArgument)?;
        self.inner()?
            .serve(|v| Ok(v.config(agent_id)), |c| queries::get_config(c, agent_id))
    }

    /// Validates the whole batch, then writes it in one transaction.
    pub fn store_patterns(&self, inputs: &[PatternInput]) -> Result<()> {
        let inner = self.inner()?;
        let validated = validate::patterns(inputs, now_ms(), None)?;
        let Some((first, _)) = validated.first() else {
            return Ok(());
        };
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
        let generation = inner.db.write(|conn| {
            queries::upsert_config(conn, &config)?;
            queries::generation(conn)
        })?;
        inner.saw_own_write(generation, Trigger::ConfigUpdated);
        Ok(())
    }

    /// Marks tier 1 stale: reads go to SQLite until a rebuild lands.
    /// With `rebuild_now`, a rebuild starts at once on a background thread.
    pub fn mark_stale(&self, trigger: Trigger, rebuild_now: bool) -> Result<()> {
        let inner = self.inner()?;
        inner.drop_view(&format!("marked stale ({})", trigger.as_str()));
        if rebuild_now && inner.config.enabled && inner.config.background_rebuild {
            Inner::spawn_rebuild(&inner, trigger);
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
        let fresh = inner.fresh_view();
        let view = inner.view.load_full();
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
            pattern_count: match &fresh {
                Some(v) => u64::from(v.len()),
                None => inner.pattern_count.load(Ordering::Relaxed),
            },
            tier: if fresh.is_some() { Tier::Cache } else { Tier::Sqlite },
            cache_unavailable_reason: if fresh.is_some() {
                None
            } else {
                Some(inner.unavailable_reason())
            },
        })
    }

    /// Closes the instance. Idempotent. Calls already running finish; every
    /// later call fails with `Closed`. Files and connections close as soon as
    /// the last running call returns.
    pub fn shutdown(&self) {
        let mut guard = self.inner.write().unwrap_or_else(|p| p.into_inner());
        if let Some(inner) = guard.take() {
            inner.view.store(None);
        }
    }

    /// The paths in use (for tools and tests).
    pub fn cache_path(&self) -> Result<std::path::PathBuf> {
        Ok(self.inner()?.paths.file.clone())
    }
}

impl Inner {
    fn emit(&self, event: CacheEvent) {
        if let Some(sink) = &self.events {
            sink(event);
        }
    }

    fn set_unavailable(&self, reason: &str) {
        *self.unavailable.lock().unwrap_or_else(|p| p.into_inner()) = Some(reason.to_owned());
    }

    fn unavailable_reason(&self) -> String {
        let reason = self.unavailable.lock().unwrap_or_else(|p| p.into_inner()).clone();
        reason
            .unwrap_or_else(|| "the cache file is older than the database (a rebuild will bring it up to date)".into())
    }

    fn drop_view(&self, reason: &str) {
        self.view.store(None);
        self.set_unavailable(reason);
    }

    /// At open: adopt the cache file if it is valid and current, else build one.
    fn start_tier1(&self, generation: Generation, migrated: bool) {
        let reason = if migrated {
            Trigger::SchemaMigration
        } else {
            match cache_file::open_view(&self.paths.file) {
                // Current only if built from this database, at its generation.
                Ok(view)
                    if view.header().generation == generation.generation
                        && view.header().source_id == generation.source_id =>
                {
                    self.install(Arc::new(view));
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

    fn corruption(&self, e: &Error) {
        self.metrics.corruption();
        self.emit(CacheEvent::CorruptionDetected { detail: e.to_string() });
    }

    fn install(&self, view: Arc<CacheView>) {
        let written = std::fs::metadata(&self.paths.file)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        self.known_generation
            .fetch_max(view.header().generation, Ordering::AcqRel);
        self.view_written_at.store(written, Ordering::Relaxed);
        self.view.store(Some(view));
        self.set_unavailable_none();
    }

    fn set_unavailable_none(&self) {
        *self.unavailable.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }

    /// Builds a cache file and serves from it. `force` rebuilds even when a
    /// current file is in place.
    fn rebuild(&self, trigger: Trigger, force: bool) -> BuildResult {
        let _one_at_a_time = self.building.lock().unwrap_or_else(|p| p.into_inner());
        self.emit(CacheEvent::RebuildStarted { reason: trigger });
        let started = Instant::now();
        let outcome = cache_file::build(&self.db, &self.paths, force)
            .and_then(|built| Ok((built, cache_file::open_view(&self.paths.file)?)));
        let duration_ms = started.elapsed().as_secs_f64() * 1e3;
        match outcome {
            Ok((built, view)) => {
                if built.wrote {
                    self.metrics.rebuild();
                }
                if built.count_drifted {
                    // Best effort: the count only feeds metrics.
                    let _ = self.db.write(queries::repair_pattern_count);
                }
                let count = view.header().pattern_count;
                let size = view.file_size();
                self.install(Arc::new(view));
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

    /// A rebuild on its own thread; at most one queued at a time.
    fn spawn_rebuild(this: &Arc<Inner>, trigger: Trigger) {
        if this.rebuild_queued.swap(true, Ordering::AcqRel) {
            return;
        }
        let inner = Arc::clone(this);
        let spawned = std::thread::Builder::new()
            .name("pattern-cache-rebuild".into())
            .spawn(move || {
                inner.rebuild_queued.store(false, Ordering::Release);
                inner.rebuild(trigger, true);
            });
        if spawned.is_err() {
            this.rebuild_queued.store(false, Ordering::Release);
        }
    }

    fn saw_own_write(&self, generation: Generation, _trigger: Trigger) {
        self.known_generation.fetch_max(generation.generation, Ordering::AcqRel);
        self.pattern_count.store(generation.pattern_count, Ordering::Relaxed);
    }

    /// Reads the database generation when `checkInterval` has passed since
    /// the last look, so other processes' commits are noticed.
    fn refresh_generation(&self) -> Result<()> {
        let interval = self.config.check_interval.as_millis() as u64;
        let now = self.started.elapsed().as_millis() as u64 + 1;
        let last = self.last_check_ms.load(Ordering::Relaxed);
        if last != 0 && now.saturating_sub(last) < interval.max(1) && interval != 0 {
            return Ok(());
        }
        if interval != 0
            && self
                .last_check_ms
                .compare_exchange(last, now, Ordering::AcqRel, Ordering::Relaxed)
                .is_err()
        {
            return Ok(()); // another call is checking right now
        }
        let g = self.db.generation()?;
        self.known_generation.fetch_max(g.generation, Ordering::AcqRel);
        self.pattern_count.store(g.pattern_count, Ordering::Relaxed);
        Ok(())
    }

    fn fresh_view(&self) -> Option<Arc<CacheView>> {
        let view = self.view.load_full()?;
        (view.header().generation == self.known_generation.load(Ordering::Acquire)).then_some(view)
    }

    fn serve<T>(
        self: &Arc<Self>,
        cached: impl Fn(&CacheView) -> Result<T>,
        direct: impl FnOnce(&Connection) -> Result<T>,
    ) -> Result<T> {
        let this = self;
        if this.config.enabled {
            this.refresh_generation()?;
            if let Some(result) = Inner::try_tier1(this, &cached) {
                return result;
            }
            if !this.config.fallback_to_sqlite {
                // Tier 1 only: bring it up to date now and answer from it.
                let built = this.rebuild(Trigger::SourceChanged, false);
                if let Some(result) = Inner::try_tier1(this, &cached) {
                    return result;
                }
                return Err(Error::CacheUnavailable(
                    built.error.unwrap_or_else(|| this.unavailable_reason()),
                ));
            }
        }
        let started = Instant::now();
        let out = this.db.read(direct)?;
        this.record(false, started.elapsed());
        Ok(out)
    }

    /// Answers from tier 1 when it is current; `None` means "ask SQLite".
    /// A corrupt record sends this read to SQLite and replaces the file.
    fn try_tier1<T>(this: &Arc<Inner>, cached: &impl Fn(&CacheView) -> Result<T>) -> Option<Result<T>> {
        let view = this.fresh_view()?;
        let started = Instant::now();
        match cached(&view) {
            Ok(v) => {
                this.record(true, started.elapsed());
                Some(Ok(v))
            }
            Err(e) if e.is_cache_problem() => {
                this.corruption(&e);
                this.drop_view(&format!("the cache file failed a check: {e}"));
                this.emit(CacheEvent::Fallback {
                    reason: this.unavailable_reason(),
                });
                if this.config.background_rebuild {
                    Inner::spawn_rebuild(this, Trigger::Corruption);
                }
                None
            }
            Err(e) => Some(Err(e)),
        }
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

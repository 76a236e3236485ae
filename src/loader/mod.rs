//! The two-tier loader: serves reads from the cache file (tier 1) while it is
//! valid, from SQLite (tier 2) otherwise; sends every write to the store of
//! truth (SQLite, or the remote bank); builds and swaps cache files, in the
//! background when they fall behind.
//!
//! Freshness: the newest database generation this instance knows advances at
//! once on its own writes and, at most every `checkInterval`, from a look at
//! the database (other processes' commits). Tier 1 answers only while it can
//! answer as of that generation: the file itself when it is current, or the
//! file amended with the rows the database's change log says changed since
//! it was built (`overlay`). Otherwise SQLite answers. Nothing stale is served.
//!
//! One file per responsibility, each with its own `impl Inner` block:
//! - `reads`: the read calls and the choice of tier;
//! - `writes`: the write calls, one `commit` routing local or remote, and
//!   what a commit (or a remote pass) means for tier 1;
//! - `freshness`: the database checks, file adoption and the overlay;
//! - `rebuild`: building, installing and dropping cache files;
//! - `report`: metrics and the tools' looks at disk (`inspect`, `verify`).
//!
//! The pure decisions (is a check due, has the file expired, is a rebuild
//! due) are functions in `freshness` with unit tests beside them.

mod freshness;
mod reads;
mod rebuild;
mod report;
mod writes;

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::Duration;

use arc_swap::ArcSwapOption;

use crate::cache_file::{self, CachePaths, FileIdentity};
use crate::clock::now_ms;
use crate::config::Config;
use crate::db::{queries, schema, Database, Generation};
use crate::error::{Error, Result};
use crate::format::CacheView;
use crate::metrics::Metrics;
use crate::model::CacheEvent;
use crate::overlay::Overlay;
use crate::remote::replica;
use crate::remote::syncer::Syncer;
use crate::remote::Remote;
use crate::scheduler::Scheduler;

pub use report::{FileInfo, FileState, Inspection, MetricsReport, RemoteReport};

/// Receives events from whichever thread they happen on.
pub type EventSink = Arc<dyn Fn(CacheEvent) + Send + Sync>;

/// Receives debug log lines (`DEBUG=pattern-cache*` in Node), from any thread.
pub type LogSink = Arc<dyn Fn(&str) + Send + Sync>;

/// How long `shutdown` waits for a background rebuild to stop.
const SHUTDOWN_WAIT: Duration = Duration::from_secs(10);

/// Which tier is answering reads right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tier {
    Cache,
    Sqlite,
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
    tier1: Tier1State,
    fresh: Freshness,
    replication: Replication,
    scheduler: OnceLock<Scheduler>,
    /// Set by shutdown: a running build stops at the next record.
    cancel: AtomicBool,
    metrics: Metrics,
    events: Option<EventSink>,
    log: Option<LogSink>,
}

/// The cache file in service, and what amends it (owned by `rebuild` and
/// `freshness`).
struct Tier1State {
    view: ArcSwapOption<CacheView>,
    /// Identity and mtime (Unix ms) of the file behind `view`.
    view_file: Mutex<Option<FileIdentity>>,
    view_written_at: AtomicI64,
    overlay: ArcSwapOption<Overlay>,
    /// One change-log read at a time refreshes the overlay.
    overlay_refresh: Mutex<()>,
    /// Why tier 1 is not serving, when it is not.
    unavailable: Mutex<Option<String>>,
    /// One build at a time in this process (the file lock covers processes).
    building: Mutex<()>,
}

/// What this instance knows of the database (owned by `freshness`).
struct Freshness {
    /// The newest database generation this instance knows of.
    known_generation: AtomicU64,
    pattern_count: AtomicU64,
    /// Unix ms of the last generation check.
    last_check_ms: AtomicI64,
}

/// The remote bank, when there is one (owned by `writes`).
struct Replication {
    /// With `remote`: writes go there, and this database is its replica.
    remote: Option<Arc<Remote>>,
    syncer: OnceLock<Syncer>,
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
        Ok(PatternCache::around(inner))
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
        if !cache_file::is_current(view.header(), &generation) {
            return None;
        }
        Some(
            Inner::assemble(config.clone(), db, generation, is_replica, events, log).map(|inner| {
                cache_file::remove_dead_builds(&inner.paths);
                inner.install(view, identity);
                PatternCache::around(inner)
            }),
        )
    }

    fn around(inner: Arc<Inner>) -> PatternCache {
        PatternCache {
            inner: RwLock::new(Some(inner)),
        }
    }

    fn inner(&self) -> Result<Arc<Inner>> {
        let guard = self.inner.read().unwrap_or_else(|p| p.into_inner());
        guard.clone().ok_or(Error::Closed)
    }

    pub fn is_closed(&self) -> bool {
        self.inner().is_err()
    }

    /// Closes the instance. Idempotent. Stops background work (waiting for a
    /// running rebuild to abandon its temp file); calls already running
    /// finish; every later call fails with `Closed`. Files and connections
    /// close as soon as the last running call returns.
    pub fn shutdown(&self) {
        let taken = self.inner.write().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(inner) = taken {
            inner.cancel.store(true, Ordering::Release);
            if let Some(s) = inner.replication.syncer.get() {
                s.stop();
            }
            if let Some(s) = inner.scheduler.get() {
                // A rebuild abandons its build at the next record; waiting
                // longer than this would mean SQLite itself is stuck.
                let _ = s.stop(SHUTDOWN_WAIT);
            }
            inner.tier1.view.store(None);
            inner.tier1.overlay.store(None);
        }
    }

    /// The paths in use (for tools and tests).
    pub fn cache_path(&self) -> Result<std::path::PathBuf> {
        Ok(self.inner()?.paths.file.clone())
    }
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
            tier1: Tier1State {
                view: ArcSwapOption::empty(),
                view_file: Mutex::new(None),
                view_written_at: AtomicI64::new(0),
                overlay: ArcSwapOption::empty(),
                overlay_refresh: Mutex::new(()),
                unavailable: Mutex::new(None),
                building: Mutex::new(()),
            },
            fresh: Freshness {
                known_generation: AtomicU64::new(generation.generation),
                pattern_count: AtomicU64::new(generation.pattern_count),
                last_check_ms: AtomicI64::new(now_ms()),
            },
            replication: Replication {
                remote,
                syncer: OnceLock::new(),
                replica_without_remote,
            },
            scheduler: OnceLock::new(),
            cancel: AtomicBool::new(false),
            metrics: Metrics::default(),
            events,
            log,
        });
        if let Some(r) = &inner.replication.remote {
            let s = Syncer::start(Arc::downgrade(&inner), Arc::clone(r))?;
            let _ = inner.replication.syncer.set(s);
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

    /// The newest database generation this instance knows of.
    fn known(&self) -> u64 {
        self.fresh.known_generation.load(Ordering::Acquire)
    }
}

//! Building cache files and putting them in or out of service: the build
//! at open, on demand and in the background (the scheduler calls
//! `Rebuild`), installing a file, and dropping one that failed a check.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::freshness::until_ttl;
use super::{Inner, PatternCache};
use crate::cache_file::is_current;
use crate::cache_file::{self, FileIdentity};
use crate::clock::now_ms;
use crate::db::{queries, Generation};
use crate::error::{Error, Result};
use crate::format::CacheView;
use crate::model::{BuildResult, CacheEvent, Trigger};
use crate::scheduler::Rebuild;

/// The change log is pruned after a rebuild once it holds more keys than this.
const CHANGE_LOG_KEEP: usize = 10_000;

impl PatternCache {
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
        self.tier1.view.load().as_ref()?;
        Some(until_ttl(
            now_ms(),
            self.tier1.view_written_at.load(Ordering::Relaxed),
            self.config.max_age.as_millis() as i64,
        ))
    }
}

impl Inner {
    pub(super) fn schedule(&self, trigger: Trigger, urgent: bool, force: bool) {
        if let Some(s) = self.scheduler.get() {
            s.invalidate(trigger, urgent, force);
        }
    }

    pub(super) fn set_unavailable(&self, reason: Option<&str>) {
        *self.tier1.unavailable.lock().unwrap_or_else(|p| p.into_inner()) = reason.map(str::to_owned);
    }

    pub(super) fn unavailable_reason(&self) -> String {
        let reason = self.tier1.unavailable.lock().unwrap_or_else(|p| p.into_inner()).clone();
        reason.unwrap_or_else(|| {
            "the cache file is behind the database by more than the change log can amend; a rebuild is due".into()
        })
    }

    pub(super) fn drop_view(&self, reason: &str) {
        self.debug(|| format!("cache file out of service: {reason}"));
        self.tier1.view.store(None);
        self.tier1.overlay.store(None);
        *self.tier1.view_file.lock().unwrap_or_else(|p| p.into_inner()) = None;
        self.set_unavailable(Some(reason));
    }

    pub(super) fn corruption(&self, e: &Error) {
        self.metrics.corruption();
        self.emit(CacheEvent::CorruptionDetected { detail: e.to_string() });
    }

    /// At open: adopt the cache file if it is valid and current, else build one.
    pub(super) fn start_tier1(&self, generation: Generation, migrated: bool) {
        cache_file::remove_dead_builds(&self.paths);
        let reason = if migrated {
            Trigger::SchemaMigration
        } else {
            match cache_file::open_shared_view(&self.paths.file) {
                // Current only if built from this database, at its generation.
                Ok((view, identity)) if is_current(view.header(), &generation) => {
                    self.install(view, identity);
                    return;
                }
                // Behind only by uses: served amended with their counters (a
                // test run's uses must not make every worker rebuild at open).
                Ok((view, identity))
                    if view.header().source_id == generation.source_id
                        && view.header().generation < generation.generation
                        && self
                            .changes_since(view.header().generation)
                            .is_some_and(|c| !c.call_for_rebuild()) =>
                {
                    let base = Arc::clone(&view);
                    self.install(view, identity);
                    // Amend it now, so the first read (and getMetrics) sees tier 1.
                    let _ = self.overlay_for(&base, generation.generation, true);
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

    pub(super) fn install(&self, view: Arc<CacheView>, identity: FileIdentity) {
        self.fresh
            .known_generation
            .fetch_max(view.header().generation, Ordering::AcqRel);
        self.tier1
            .view_written_at
            .store(identity.modified_ms, Ordering::Relaxed);
        *self.tier1.view_file.lock().unwrap_or_else(|p| p.into_inner()) = Some(identity);
        self.tier1.overlay.store(None);
        self.tier1.view.store(Some(view));
        self.set_unavailable(None);
        if let Some(s) = self.scheduler.get() {
            s.wake();
        }
    }

    /// Builds a cache file and serves from it. `force` rebuilds even when a
    /// current file is in place.
    pub(super) fn rebuild(&self, trigger: Trigger, force: bool) -> BuildResult {
        let _one_at_a_time = self.tier1.building.lock().unwrap_or_else(|p| p.into_inner());
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
}

//! How fresh tier 1 is: looks at the database (at most every
//! `checkInterval`), adopting a newer file another process built, and the
//! overlay that amends the file in use up to the newest known generation.
//! The decisions are pure functions at the top, tested below.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use super::Inner;
use crate::cache_file::of_history;
use crate::cache_file::{self, FileIdentity};
use crate::clock::now_ms;
use crate::db::{queries, Generation};
use crate::error::Result;
use crate::format::CacheView;
use crate::model::Trigger;
use crate::overlay::Overlay;

/// The most changed keys an overlay holds; past it, SQLite answers until the
/// (already scheduled) rebuild lands.
pub(super) const MAX_OVERLAY: usize = 4096;
/// The most patterns whose counters alone changed an overlay holds (about
/// 100 bytes each); past it, SQLite answers until the rebuild lands.
pub(super) const MAX_COUNTERS: usize = 1 << 20;
/// Counter changes alone start a rebuild (folding them into the file) only
/// past this many patterns, or at the TTL: uses never rebuild the file per use.
pub(super) const COUNTERS_REBUILD_AT: usize = 1 << 16;

/// Whether a look at the database is due (`interval_ms` 0: at every call).
pub(super) fn check_due(now: i64, last_check: i64, interval_ms: i64) -> bool {
    interval_ms <= 0 || now - last_check >= interval_ms
}

/// Whether the file written at `written_at` has outlived `max_age_ms` with no
/// look at the database since it did (then it must get one before it serves).
pub(super) fn expired_unchecked(now: i64, written_at: i64, max_age_ms: i64, last_check: i64) -> bool {
    let expires = written_at.saturating_add(max_age_ms);
    now > expires && last_check < expires
}

/// How long until the file written at `written_at` is due its TTL rebuild, at
/// 80% of `max_age_ms` (zero: now).
pub(super) fn until_ttl(now: i64, written_at: i64, max_age_ms: i64) -> Duration {
    let at = written_at.saturating_add(max_age_ms.saturating_mul(4) / 5);
    Duration::from_millis(at.saturating_sub(now).max(0) as u64)
}

/// Who answers a read as of the newest known generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Answerer {
    /// The cache file, current.
    File,
    /// The cache file, amended by the overlay.
    AmendedFile,
    /// SQLite.
    Database,
}

/// Which tier answers as of `known`: `file` is the generation of the file in
/// service (none: no file), `overlay_brings(base)` whether an overlay brings
/// that file up to `known` (asked only when the file is behind).
pub(super) fn answerer(file: Option<u64>, known: u64, overlay_brings: impl FnOnce(u64) -> bool) -> Answerer {
    match file {
        Some(base) if base == known => Answerer::File,
        Some(base) if overlay_brings(base) => Answerer::AmendedFile,
        _ => Answerer::Database,
    }
}

/// What changed in the database after a file's generation (its `base`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct ChangesSince {
    /// Any change but a use's counters (a store, a delete, a config).
    pub content: bool,
    /// How many patterns' counters changed.
    pub counters: u64,
    /// The change log no longer reaches back to the base.
    pub log_pruned: bool,
}

impl ChangesSince {
    /// Whether these changes call for a rebuild, rather than amending the
    /// file: any content change, counters of many patterns, or a log that
    /// cannot tell.
    pub fn call_for_rebuild(self) -> bool {
        self.content || self.counters > COUNTERS_REBUILD_AT as u64 || self.log_pruned
    }
}

impl Inner {
    /// Looks at the database when `checkInterval` has passed since the last
    /// look (or `force`): its generation, and whether another process put a
    /// newer cache file in place.
    pub(super) fn check_database(&self, force: bool) -> Result<()> {
        let interval = self.config.check_interval.as_millis() as i64;
        let now = now_ms();
        let last = self.fresh.last_check_ms.load(Ordering::Relaxed);
        if !force && !check_due(now, last, interval) {
            return Ok(());
        }
        if !force
            && interval > 0
            && self
                .fresh
                .last_check_ms
                .compare_exchange(last, now, Ordering::AcqRel, Ordering::Relaxed)
                .is_err()
        {
            return Ok(()); // another call is looking right now
        }
        self.fresh.last_check_ms.store(now, Ordering::Relaxed);
        let g = self.db.generation()?;
        if let Some(reason) = self.history_changed(&g) {
            self.went_back(g, &reason);
        }
        let previous = self.fresh.known_generation.fetch_max(g.generation, Ordering::AcqRel);
        if g.generation > previous {
            self.debug(|| format!("database changed elsewhere: generation {previous} -> {}", g.generation));
        }
        self.fresh.pattern_count.store(g.pattern_count, Ordering::Relaxed);
        self.saw_remote_pass();
        if self.config.enabled {
            self.adopt_newer_file(&g);
            let behind = self
                .tier1
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

    /// Why the database's history is no longer the one this instance knows
    /// (its generation went back, or the file in use is of the same
    /// generation but another change): a replica reset to its bank.
    fn history_changed(&self, g: &Generation) -> Option<String> {
        let known = self.known();
        if g.generation < known {
            return Some(format!(
                "the database went back from generation {known} to {} (a replica reset to its bank)",
                g.generation
            ));
        }
        let view = self.tier1.view.load_full()?;
        (view.header().generation >= g.generation && !of_history(view.header(), g)).then(|| {
            format!(
                "the cache file of generation {} is of another history than the database's (a replica reset to its bank)",
                view.header().generation
            )
        })
    }

    /// The database's history changed under this instance: forget what it
    /// knew, stop serving the file, and rebuild now.
    pub(super) fn went_back(&self, g: Generation, reason: &str) {
        self.fresh.known_generation.store(g.generation, Ordering::Release);
        self.fresh.pattern_count.store(g.pattern_count, Ordering::Relaxed);
        self.drop_view(reason);
        self.schedule(Trigger::SourceChanged, true, true);
    }

    /// What changed after `base`, read in one transaction; `None` when the
    /// database cannot be read (callers then assume the worst).
    pub(super) fn changes_since(&self, base: u64) -> Option<ChangesSince> {
        self.db
            .read(|c| {
                Ok(ChangesSince {
                    content: queries::content_changed_since(c, base)?,
                    counters: queries::counter_changes_since(c, base)?,
                    log_pruned: queries::generation(c)?.log_floor > base,
                })
            })
            .ok()
    }

    /// Whether the changes since the file in use call for a rebuild (always,
    /// without a file).
    pub(super) fn rebuild_due(&self) -> bool {
        let Some(view) = self.tier1.view.load_full() else {
            return true;
        };
        self.changes_since(view.header().generation)
            .is_none_or(ChangesSince::call_for_rebuild)
    }

    /// Another process may have built a newer file: adopt it when it is
    /// from this database and newer than the one in use.
    fn adopt_newer_file(&self, g: &Generation) {
        let Ok(on_disk) = FileIdentity::of(&self.paths.file) else {
            return;
        };
        if self.tier1.view_file.lock().unwrap_or_else(|p| p.into_inner()).as_ref() == Some(&on_disk) {
            return;
        }
        let Ok((view, identity)) = cache_file::open_shared_view(&self.paths.file) else {
            return; // a broken file is the builder's to replace; keep ours
        };
        let ours = self.tier1.view.load().as_ref().map(|v| v.header().generation);
        let newer = ours.is_none_or(|ours| view.header().generation > ours);
        if view.header().source_id == self.source_id && newer && of_history(view.header(), g) {
            self.debug(|| {
                format!(
                    "adopting a cache file another process built (generation {})",
                    view.header().generation
                )
            });
            self.install(view, identity);
        }
    }

    /// Whether the file in use outlived `maxAge` with no check since.
    pub(super) fn view_expired(&self, now: i64) -> bool {
        expired_unchecked(
            now,
            self.tier1.view_written_at.load(Ordering::Relaxed),
            self.config.max_age.as_millis() as i64,
            self.fresh.last_check_ms.load(Ordering::Relaxed),
        )
    }

    /// The file in use, if it has not outlived `maxAge` without a check of
    /// the database since (then it gets one now).
    pub(super) fn current_view(&self) -> Result<Option<Arc<CacheView>>> {
        let Some(view) = self.tier1.view.load_full() else {
            return Ok(None);
        };
        if self.view_expired(now_ms()) {
            self.check_database(true)?;
        }
        Ok(self.tier1.view.load_full().or(Some(view)))
    }

    /// The overlay that brings `view` up to `known`: the one in memory when
    /// it does (`refresh` false: only that), else refreshed from the change
    /// log. `None` when neither can.
    pub(super) fn overlay_for(&self, view: &CacheView, known: u64, refresh: bool) -> Option<Arc<Overlay>> {
        let base = view.header().generation;
        if let Some(o) = self.tier1.overlay.load_full().filter(|o| o.brings(base, known)) {
            return Some(o);
        }
        if !refresh {
            return None;
        }
        let _one_refresh = self.tier1.overlay_refresh.lock().unwrap_or_else(|p| p.into_inner());
        let current = self.tier1.overlay.load_full().filter(|o| o.base == base);
        if let Some(o) = current.as_ref().filter(|o| o.brings(base, known)) {
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
        self.tier1.overlay.store(Some(Arc::clone(&next)));
        Some(next)
    }

    /// The file and overlay that answer as of the newest known generation
    /// (no overlay: the file is current). `refresh`: the overlay may be
    /// brought up from the change log; without it, only memory is used.
    pub(super) fn tier1_as_of_known(
        &self,
        view: Arc<CacheView>,
        refresh: bool,
    ) -> Option<(Arc<CacheView>, Option<Arc<Overlay>>)> {
        let known = self.known();
        let mut overlay = None;
        let who = answerer(Some(view.header().generation), known, |_| {
            overlay = self.overlay_for(&view, known, refresh);
            overlay.is_some()
        });
        match who {
            Answerer::File => Some((view, None)),
            Answerer::AmendedFile => Some((view, overlay)),
            Answerer::Database => None,
        }
    }

    /// True when tier 1 can answer as of the newest known generation without
    /// reading the database first.
    pub(super) fn serving_view(&self) -> bool {
        self.tier1
            .view
            .load_full()
            .is_some_and(|view| self.tier1_as_of_known(view, false).is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_check_is_due_once_the_interval_passed_or_always_without_one() {
        assert!(!check_due(1_050, 1_000, 100));
        assert!(check_due(1_100, 1_000, 100));
        assert!(check_due(1_000, 1_000, 0), "checkInterval 0: every call looks");
        assert!(check_due(900, 1_000, 0));
        assert!(!check_due(900, 1_000, 100), "a clock set back waits, never spins");
    }

    #[test]
    fn the_file_answers_when_current_or_amended_up_to_known() {
        assert_eq!(answerer(Some(5), 5, |_| unreachable!()), Answerer::File);
        assert_eq!(answerer(Some(3), 5, |base| base == 3), Answerer::AmendedFile);
        assert_eq!(answerer(Some(3), 5, |_| false), Answerer::Database);
        assert_eq!(answerer(None, 5, |_| true), Answerer::Database);
    }

    #[test]
    fn a_file_expires_past_max_age_unless_checked_since() {
        // Written at 1000, maxAge 500: expires at 1500.
        assert!(!expired_unchecked(1_500, 1_000, 500, 1_000));
        assert!(expired_unchecked(1_501, 1_000, 500, 1_000));
        assert!(!expired_unchecked(1_501, 1_000, 500, 1_500), "a check at expiry counts");
        assert!(expired_unchecked(2_000, 1_000, 500, 1_499));
        assert!(!expired_unchecked(i64::MAX, 1_000, i64::MAX, 0), "no overflow");
    }

    #[test]
    fn the_ttl_rebuild_is_due_at_four_fifths_of_max_age() {
        assert_eq!(until_ttl(1_000, 1_000, 1_000), Duration::from_millis(800));
        assert_eq!(until_ttl(1_700, 1_000, 1_000), Duration::from_millis(100));
        assert_eq!(until_ttl(1_800, 1_000, 1_000), Duration::ZERO);
        assert_eq!(until_ttl(9_000, 1_000, 1_000), Duration::ZERO);
    }

    #[test]
    fn uses_alone_amend_the_file_until_they_are_many() {
        let uses = |counters| ChangesSince {
            content: false,
            counters,
            log_pruned: false,
        };
        assert!(!uses(0).call_for_rebuild());
        assert!(!uses(COUNTERS_REBUILD_AT as u64).call_for_rebuild());
        assert!(uses(COUNTERS_REBUILD_AT as u64 + 1).call_for_rebuild());
        assert!(ChangesSince {
            content: true,
            ..uses(0)
        }
        .call_for_rebuild());
        assert!(ChangesSince {
            log_pruned: true,
            ..uses(0)
        }
        .call_for_rebuild());
    }
}

//! The read calls and the choice of tier: tier 1 (the file, amended by the
//! overlay when it is behind) while it can answer as of the newest known
//! generation; SQLite otherwise. The `try_*` forms answer on the calling
//! thread only when that needs neither the database nor waiting.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rusqlite::Connection;

use super::freshness::check_due;
use super::{Inner, PatternCache};
use crate::clock::now_ms;
use crate::db::queries;
use crate::error::{Error, Result};
use crate::format::record::PatternRef;
use crate::format::CacheView;
use crate::model::{AgentConfig, CacheEvent, IndexKind, Pattern, PatternFilter, Stats, Trigger};
use crate::overlay::{Overlay, Tier1};
use crate::search::{self, SearchQuery};
use crate::validate;

impl PatternCache {
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
        let view = self.inner()?.tier1.view.load_full();
        Ok(view.map(|v| search::kernel::read_floor(v.vectors().rows(v.bytes()))))
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
        let mut page: Vec<Pattern> = self.inner()?.serve(
            |t| {
                Ok(t.page(filter, after, size + 1)?
                    .iter()
                    .map(PatternRef::to_owned)
                    .collect())
            },
            |c| queries::page(c, filter, after, size + 1),
        )?;
        let more = page.len() > size;
        page.truncate(size);
        Ok((page, more))
    }

    /// Every agent config, in agent id order.
    pub fn list_agent_configs(&self) -> Result<Vec<AgentConfig>> {
        self.inner()?.serve(|t| Ok(t.configs()), queries::all_configs)
    }

    pub fn load_agent_config(&self, agent_id: &str) -> Result<Option<AgentConfig>> {
        validate::key("agentId", agent_id, validate::MAX_ID_BYTES).map_err(Error::InvalidArgument)?;
        self.inner()?
            .serve(|t| Ok(t.config(agent_id)), |c| queries::get_config(c, agent_id))
    }
}

impl Inner {
    /// Answers from tier 1 when it can, else from SQLite (or, with
    /// `fallbackToSQLite` off, rebuilds and answers from tier 1 or fails).
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

    /// Answers from tier 1 when it can; `None` means "ask SQLite". A corrupt
    /// record drops the file and starts a rebuild.
    fn try_tier1<T>(&self, cached: &impl Fn(&Tier1<'_>) -> Result<T>) -> Result<Option<Result<T>>> {
        let Some(view) = self.current_view()? else {
            return Ok(None);
        };
        let Some((view, overlay)) = self.tier1_as_of_known(view, true) else {
            return Ok(None);
        };
        Ok(self.answer(&view, overlay.as_deref(), cached, true))
    }

    /// `try_tier1` restricted to what needs no database access: `None` when
    /// a look at the database is due, or the overlay in memory falls short.
    fn try_fast<T>(&self, cached: &impl Fn(&Tier1<'_>) -> Result<T>, count: bool) -> Option<Result<T>> {
        if !self.config.enabled {
            return None;
        }
        let now = now_ms();
        let last_check = self.fresh.last_check_ms.load(Ordering::Relaxed);
        if check_due(now, last_check, self.config.check_interval.as_millis() as i64) {
            return None;
        }
        let view = self.tier1.view.load_full()?;
        if self.view_expired(now) {
            return None;
        }
        let (view, overlay) = self.tier1_as_of_known(view, false)?;
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

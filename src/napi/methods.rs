//! The instance's methods: each converts its arguments, runs the core call
//! on the thread pool (`Job`) and converts the result back. The few
//! synchronous ones only touch the instance's state in memory (see the
//! thread policy in `fast.rs`).

use napi::bindgen_prelude::*;
use napi_derive::napi;

use super::build::{Builder, RawJs};
use super::convert::*;
use super::job::{guarded, js_error, same, unit, Job};
use super::results::*;
use super::NativePatternCache;
use crate::error::Error as CoreError;
use crate::model::{IndexKind, Trigger};

/// Owned patterns as a JS array (a `run_patterns` build).
fn patterns(b: &Builder, ps: &[crate::Pattern]) -> napi::Result<napi::sys::napi_value> {
    let refs: Vec<_> = ps.iter().map(|p| p.as_ref()).collect();
    b.patterns(&refs)
}

/// A pattern or `null` (a `run_patterns` build).
fn maybe_pattern(b: &Builder, p: &Option<crate::Pattern>) -> napi::Result<napi::sys::napi_value> {
    b.maybe_pattern(p.as_ref().map(|p| p.as_ref()).as_ref())
}

#[napi]
impl NativePatternCache {
    #[napi(ts_return_type = "Promise<StoredPattern | null>")]
    pub fn load_pattern(&self, id: String) -> AsyncTask<Job<Option<crate::Pattern>, RawJs>> {
        self.run_patterns(move |c| c.load_pattern(&id), maybe_pattern)
    }

    #[napi(ts_return_type = "Promise<Array<StoredPattern | null>>")]
    pub fn load_patterns(&self, ids: Vec<String>) -> AsyncTask<Job<Vec<Option<crate::Pattern>>, RawJs>> {
        self.run_patterns(
            move |c| c.load_patterns(&ids),
            |b, ps| b.array(ps.iter().map(|p| maybe_pattern(b, p))),
        )
    }

    /// `kind` is "domain", "type" or "framework".
    #[napi(ts_return_type = "Promise<StoredPattern[]>")]
    pub fn load_by(
        &self,
        env: Env,
        kind: String,
        name: String,
    ) -> napi::Result<AsyncTask<Job<Vec<crate::Pattern>, RawJs>>> {
        let Some(kind) = IndexKind::parse(&kind) else {
            let e = CoreError::InvalidArgument(format!("unknown index '{kind}'"));
            return Err(js_error(&env, &e));
        };
        Ok(self.run_patterns(move |c| c.load_by(kind, &name), |b, ps| patterns(b, ps)))
    }

    #[napi(ts_return_type = "Promise<StoredPattern[]>")]
    pub fn query(&self, filter: JsPatternFilter) -> AsyncTask<Job<Vec<crate::Pattern>, RawJs>> {
        let filter = filter.into_core();
        self.run_patterns(move |c| c.query(&filter?), |b, ps| patterns(b, ps))
    }

    /// The most similar patterns, best first, as `[patterns, scores]`;
    /// scanned on the thread pool.
    #[napi(ts_return_type = "Promise<[StoredPattern[], number[]]>")]
    pub fn search_similar(
        &self,
        embedding: Float32Array,
        options: Option<JsSearchOptions>,
    ) -> AsyncTask<Job<Vec<(crate::Pattern, f64)>, RawJs>> {
        let vector = embedding.to_vec();
        let input = options.map(JsSearchOptions::into_core).unwrap_or_default();
        self.run_patterns(
            move |c| c.search_similar(&crate::search::SearchQuery::new(vector, &input)?),
            |b, hits| {
                let refs: Vec<_> = hits.iter().map(|(p, s)| (p.as_ref(), *s)).collect();
                b.search_results(&refs)
            },
        )
    }

    #[napi(ts_return_type = "Promise<boolean>")]
    pub fn record_usage(&self, entry: JsUsageEntry) -> AsyncTask<Job<bool, bool>> {
        let input = entry.into_core();
        self.run(move |c| c.record_usage(&input), same)
    }

    #[napi(ts_return_type = "Promise<void>")]
    pub fn record_usages(&self, entries: Vec<JsUsageEntry>) -> AsyncTask<Job<(), ()>> {
        let inputs: Vec<_> = entries.into_iter().map(JsUsageEntry::into_core).collect();
        self.run(move |c| c.record_usages(&inputs), unit)
    }

    #[napi(ts_return_type = "Promise<JsPatternStats>")]
    pub fn get_stats(&self) -> AsyncTask<Job<crate::model::Stats, JsPatternStats>> {
        self.run(|c| c.stats(), |_, s| Ok(JsPatternStats::from(s)))
    }

    /// A page after the id `after`: `[patterns, more]`.
    #[napi(ts_return_type = "Promise<[StoredPattern[], boolean]>")]
    pub fn list_patterns(
        &self,
        filter: JsPatternFilter,
        after: Option<String>,
    ) -> AsyncTask<Job<(Vec<crate::Pattern>, bool), RawJs>> {
        let filter = filter.into_core();
        self.run_patterns(
            move |c| c.list_patterns(&filter?, after.as_deref()),
            |b, (ps, more)| b.page(ps, *more),
        )
    }

    #[napi(ts_return_type = "Promise<AgentConfigEntry[]>")]
    pub fn list_agent_configs(&self) -> AsyncTask<Job<Vec<crate::AgentConfig>, Vec<JsAgentConfig>>> {
        self.run(
            |c| c.list_agent_configs(),
            |_, cs| Ok(cs.into_iter().map(JsAgentConfig::from).collect()),
        )
    }

    #[napi(ts_return_type = "Promise<boolean>")]
    pub fn delete_agent_config(&self, agent_id: String) -> AsyncTask<Job<bool, bool>> {
        self.run(move |c| c.delete_agent_config(&agent_id), same)
    }

    #[napi(ts_return_type = "Promise<void>")]
    pub fn store_patterns(&self, patterns: Vec<JsTestPattern>) -> AsyncTask<Job<(), ()>> {
        let inputs: Vec<_> = patterns.into_iter().map(JsTestPattern::into_core).collect();
        self.run(move |c| c.store_patterns(&inputs), unit)
    }

    #[napi(ts_return_type = "Promise<boolean>")]
    pub fn delete_pattern(&self, id: String) -> AsyncTask<Job<bool, bool>> {
        self.run(move |c| c.delete_pattern(&id), same)
    }

    #[napi(ts_return_type = "Promise<AgentConfigEntry | null>")]
    pub fn load_agent_config(
        &self,
        agent_id: String,
    ) -> AsyncTask<Job<Option<crate::AgentConfig>, Option<JsAgentConfig>>> {
        self.run(
            move |c| c.load_agent_config(&agent_id),
            |_, c| Ok(c.map(JsAgentConfig::from)),
        )
    }

    #[napi(ts_return_type = "Promise<void>")]
    pub fn store_agent_config(&self, config: JsAgentConfig) -> AsyncTask<Job<(), ()>> {
        let input = config.into_core();
        self.run(move |c| c.store_agent_config(&input), unit)
    }

    /// Pulls the remote's changes now; resolves once reads here see them.
    #[napi(ts_return_type = "Promise<JsSyncResult>")]
    pub fn sync_remote(&self) -> AsyncTask<Job<(crate::remote::replica::SyncOutcome, f64), JsSyncResult>> {
        self.run(
            |c| {
                let started = std::time::Instant::now();
                let outcome = c.sync_remote()?;
                Ok((outcome, started.elapsed().as_secs_f64() * 1e3))
            },
            |_, (o, ms)| Ok(JsSyncResult::new(o, ms)),
        )
    }

    #[napi(ts_return_type = "Promise<CacheBuildResult>")]
    pub fn rebuild_cache(&self) -> AsyncTask<Job<crate::BuildResult, JsBuildResult>> {
        self.run(|c| c.rebuild(Trigger::Manual), |_, r| Ok(JsBuildResult::from(r)))
    }

    #[napi]
    pub fn mark_stale(&self, env: Env, trigger: String, requires_rebuild: bool) -> napi::Result<()> {
        let core = &self.core;
        guarded(|| {
            let trigger = Trigger::parse_invalidation(&trigger)
                .ok_or_else(|| CoreError::InvalidArgument(format!("unknown invalidation trigger '{trigger}'")))?;
            core.mark_stale(trigger, requires_rebuild)
        })
        .map_err(|e| js_error(&env, &e))
    }

    #[napi]
    pub fn get_metrics(&self, env: Env) -> napi::Result<JsCacheMetrics> {
        guarded(|| self.core.metrics())
            .map(JsCacheMetrics::from)
            .map_err(|e| js_error(&env, &e))
    }

    #[napi(ts_return_type = "Promise<void>")]
    pub fn shutdown(&self) -> AsyncTask<Job<(), ()>> {
        self.run(
            |c| {
                c.shutdown();
                Ok(())
            },
            unit,
        )
    }

    #[napi(ts_return_type = "Promise<JsInspection>")]
    pub fn inspect(&self) -> AsyncTask<Job<crate::loader::Inspection, JsInspection>> {
        self.run(|c| c.inspect(), |_, i| Ok(JsInspection::from(i)))
    }

    /// Verifies every record of the cache file on disk; resolves with the
    /// number of patterns it holds, rejects with CACHE_CORRUPT (or another
    /// code) on the first problem.
    #[napi(ts_return_type = "Promise<number>")]
    pub fn verify(&self) -> AsyncTask<Job<u64, f64>> {
        self.run(|c| c.verify_file(), |_, n| Ok(n as f64))
    }

    #[napi(getter)]
    pub fn closed(&self) -> bool {
        self.core.is_closed()
    }
}

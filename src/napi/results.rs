//! What the binding hands JavaScript: statistics, build and sync results,
//! metrics, cache events and inspections, as JS-shaped objects made from the
//! core's types. Field names follow the contract
//! (`__test__/contract/pattern-cache.d.ts`).

use napi_derive::napi;

use crate::loader::{MetricsReport, Tier};
use crate::model::{BuildResult, CacheEvent};
use crate::remote::replica::SyncOutcome;

#[napi(object)]
pub struct JsPatternStats {
    pub pattern_count: f64,
    pub dimension: u32,
    pub by_domain: std::collections::BTreeMap<String, f64>,
    pub by_type: std::collections::BTreeMap<String, f64>,
    pub by_framework: std::collections::BTreeMap<String, f64>,
    pub by_verdict: std::collections::BTreeMap<String, f64>,
    pub agent_config_count: f64,
}

impl From<crate::model::Stats> for JsPatternStats {
    fn from(s: crate::model::Stats) -> Self {
        let counts = |m: std::collections::BTreeMap<String, u64>| m.into_iter().map(|(k, v)| (k, v as f64)).collect();
        JsPatternStats {
            pattern_count: s.pattern_count as f64,
            dimension: s.dimension,
            by_domain: counts(s.by_domain),
            by_type: counts(s.by_type),
            by_framework: counts(s.by_framework),
            by_verdict: counts(s.by_verdict),
            agent_config_count: s.agent_config_count as f64,
        }
    }
}

#[napi(object)]
pub struct JsBuildResult {
    pub success: bool,
    pub pattern_count: f64,
    pub duration: f64,
    pub cache_file_size: f64,
    pub error: Option<String>,
}

impl From<BuildResult> for JsBuildResult {
    fn from(r: BuildResult) -> Self {
        JsBuildResult {
            success: r.success,
            pattern_count: r.pattern_count as f64,
            duration: r.duration_ms,
            cache_file_size: r.cache_file_size as f64,
            error: r.error,
        }
    }
}

#[napi(object)]
pub struct JsCacheMetrics {
    pub cache_hits: f64,
    pub cache_misses: f64,
    pub cache_hit_rate: f64,
    pub avg_cache_load_time: f64,
    #[napi(js_name = "avgSQLiteFallbackTime")]
    pub avg_sqlite_fallback_time: f64,
    pub cache_corruption_count: f64,
    pub cache_rebuild_count: f64,
    pub last_cache_generation_time: f64,
    pub cache_file_size: f64,
    pub pattern_count: f64,
    /// "cache" or "sqlite": which tier answers reads now.
    pub tier: String,
    pub cache_unavailable_reason: Option<String>,
    /// With a remote: the replica's state.
    pub remote: Option<JsRemoteMetrics>,
}

#[napi(object)]
pub struct JsRemoteMetrics {
    /// The remote generation this replica holds.
    pub generation: f64,
    /// The newest remote generation seen.
    pub remote_generation: f64,
    /// remoteGeneration - generation.
    pub lag: f64,
    /// Unix ms of the last completed sync by this instance (0: none yet).
    pub last_sync_at: f64,
    pub connected: bool,
}

/// `syncRemote()`.
#[napi(object)]
pub struct JsSyncResult {
    pub from_generation: f64,
    pub to_generation: f64,
    pub rows_applied: f64,
    pub duration: f64,
}

impl JsSyncResult {
    pub fn new(o: SyncOutcome, duration_ms: f64) -> Self {
        JsSyncResult {
            from_generation: o.from_generation as f64,
            to_generation: o.to_generation as f64,
            rows_applied: o.rows_applied as f64,
            duration: duration_ms,
        }
    }
}

impl From<MetricsReport> for JsCacheMetrics {
    fn from(m: MetricsReport) -> Self {
        let c = m.counters;
        JsCacheMetrics {
            cache_hits: c.cache_hits as f64,
            cache_misses: c.cache_misses as f64,
            cache_hit_rate: c.cache_hit_rate,
            avg_cache_load_time: c.avg_cache_load_ms,
            avg_sqlite_fallback_time: c.avg_sqlite_fallback_ms,
            cache_corruption_count: c.cache_corruption_count as f64,
            cache_rebuild_count: c.cache_rebuild_count as f64,
            last_cache_generation_time: m.last_cache_generation_time as f64,
            cache_file_size: m.cache_file_size as f64,
            pattern_count: m.pattern_count as f64,
            tier: match m.tier {
                Tier::Cache => "cache",
                Tier::Sqlite => "sqlite",
            }
            .into(),
            cache_unavailable_reason: m.cache_unavailable_reason,
            remote: m.remote.map(|r| {
                let remote_generation = r.status.remote_generation.max(r.generation);
                JsRemoteMetrics {
                    generation: r.generation as f64,
                    remote_generation: remote_generation as f64,
                    lag: (remote_generation - r.generation) as f64,
                    last_sync_at: r.status.last_sync_at as f64,
                    connected: r.status.connected,
                }
            }),
        }
    }
}

/// One CacheEvent; which fields are set depends on `type`.
#[napi(object)]
#[derive(Default)]
pub struct JsCacheEvent {
    #[napi(js_name = "type")]
    pub event_type: String,
    pub reason: Option<String>,
    pub pattern_count: Option<f64>,
    pub duration_ms: Option<f64>,
    pub cache_file_size: Option<f64>,
    pub error: Option<String>,
    pub detail: Option<String>,
    pub from_generation: Option<f64>,
    pub to_generation: Option<f64>,
    pub rows_applied: Option<f64>,
}

impl From<CacheEvent> for JsCacheEvent {
    fn from(e: CacheEvent) -> Self {
        let mut js = JsCacheEvent::default();
        match e {
            CacheEvent::RebuildStarted { reason } => {
                js.event_type = "rebuild_started".into();
                js.reason = Some(reason.as_str().into());
            }
            CacheEvent::RebuildFinished {
                pattern_count,
                duration_ms,
                cache_file_size,
            } => {
                js.event_type = "rebuild_finished".into();
                js.pattern_count = Some(pattern_count as f64);
                js.duration_ms = Some(duration_ms);
                js.cache_file_size = Some(cache_file_size as f64);
            }
            CacheEvent::RebuildFailed { error } => {
                js.event_type = "rebuild_failed".into();
                js.error = Some(error);
            }
            CacheEvent::Fallback { reason } => {
                js.event_type = "fallback".into();
                js.reason = Some(reason);
            }
            CacheEvent::CorruptionDetected { detail } => {
                js.event_type = "corruption_detected".into();
                js.detail = Some(detail);
            }
            CacheEvent::RemoteSynced {
                from_generation,
                to_generation,
                rows_applied,
            } => {
                js.event_type = "remote_synced".into();
                js.from_generation = Some(from_generation as f64);
                js.to_generation = Some(to_generation as f64);
                js.rows_applied = Some(rows_applied as f64);
            }
            CacheEvent::RemoteUnavailable { error } => {
                js.event_type = "remote_unavailable".into();
                js.error = Some(error);
            }
            CacheEvent::RemoteReset { reason } => {
                js.event_type = "remote_reset".into();
                js.reason = Some(reason);
            }
        }
        js
    }
}

/// `inspect()`: the cache file and database as they are on disk now.
#[napi(object)]
#[derive(Default)]
pub struct JsInspection {
    pub db_path: String,
    pub cache_path: String,
    pub db_generation: f64,
    pub db_pattern_count: f64,
    pub max_age: f64,
    /// "valid", "missing" or "invalid".
    pub file_state: String,
    pub file_problem: Option<String>,
    pub file_size: Option<f64>,
    pub format_version: Option<String>,
    pub producer: Option<String>,
    pub file_generation: Option<f64>,
    pub same_database: Option<bool>,
    pub file_pattern_count: Option<f64>,
    pub file_config_count: Option<f64>,
    pub embedding_dim: Option<f64>,
    pub written_at: Option<f64>,
    pub content_changed_at: Option<f64>,
}

impl From<crate::loader::Inspection> for JsInspection {
    fn from(i: crate::loader::Inspection) -> Self {
        use crate::loader::FileState;
        let mut js = JsInspection {
            db_path: i.db_path,
            cache_path: i.cache_path,
            db_generation: i.db_generation as f64,
            db_pattern_count: i.db_pattern_count as f64,
            max_age: i.max_age_ms as f64,
            ..Default::default()
        };
        match i.file {
            FileState::Missing => js.file_state = "missing".into(),
            FileState::Invalid(why) => {
                js.file_state = "invalid".into();
                js.file_problem = Some(why);
            }
            FileState::Valid(f) => {
                js.file_state = "valid".into();
                js.file_size = Some(f.size as f64);
                js.format_version = Some(f.format);
                js.producer = Some(f.producer);
                js.file_generation = Some(f.generation as f64);
                js.same_database = Some(f.same_database);
                js.file_pattern_count = Some(f.pattern_count as f64);
                js.file_config_count = Some(f.config_count as f64);
                js.embedding_dim = Some(f64::from(f.embedding_dim));
                js.written_at = Some(f.written_at_ms as f64);
                js.content_changed_at = Some(f.content_changed_at_ms as f64);
            }
        }
        js
    }
}

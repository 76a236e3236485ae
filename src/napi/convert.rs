//! What JavaScript hands the binding: the JS-shaped mirrors of the core's
//! input types (options, patterns, filters, usages, agent configs) and their
//! conversions to the core's. Field names follow the contract
//! (`__test__/contract/pattern-cache.d.ts`); what goes back is in `results`.

use napi::bindgen_prelude::*;
use napi_derive::napi;

use crate::config::ConfigInput;
use crate::error::Error as CoreError;
use crate::model::{AgentConfig, AgentConfigInput, PatternFilter, PatternInput};

#[napi(object)]
pub struct JsOpenConfig {
    pub db_path: Option<String>,
    pub cache_path: Option<String>,
    pub enabled: Option<bool>,
    pub max_age: Option<f64>,
    pub check_interval: Option<f64>,
    pub background_rebuild: Option<bool>,
    #[napi(js_name = "fallbackToSQLite")]
    pub fallback_to_sqlite: Option<bool>,
    pub enable_metrics: Option<bool>,
    pub remote: Option<JsRemoteConfig>,
}

#[napi(object)]
pub struct JsRemoteConfig {
    pub url: String,
    pub poll_interval: Option<f64>,
    /// false: poll only, never LISTEN (pgbouncer in transaction mode).
    pub listen: Option<bool>,
    /// ms one remote call may take before it is taken for lost (default 20,000).
    pub timeout: Option<f64>,
    /// The PostgreSQL schema the bank lives in (default pattern_cache).
    pub schema: Option<String>,
}

impl JsOpenConfig {
    pub fn into_core(self) -> ConfigInput {
        let remote = self.remote;
        ConfigInput {
            db_path: self.db_path,
            cache_path: self.cache_path,
            enabled: self.enabled,
            max_age_ms: self.max_age,
            check_interval_ms: self.check_interval,
            background_rebuild: self.background_rebuild,
            fallback_to_sqlite: self.fallback_to_sqlite,
            enable_metrics: self.enable_metrics,
            remote_poll_interval_ms: remote.as_ref().and_then(|r| r.poll_interval),
            remote_listen: remote.as_ref().and_then(|r| r.listen),
            remote_timeout_ms: remote.as_ref().and_then(|r| r.timeout),
            remote_schema: remote.as_ref().and_then(|r| r.schema.clone()),
            remote_url: remote.map(|r| r.url),
        }
    }
}

/// A pattern as JavaScript writes it. index.js has already turned
/// `metadata` into `metadataJson` and a number[] embedding into a Float32Array.
#[napi(object)]
pub struct JsTestPattern {
    pub id: String,
    #[napi(js_name = "type")]
    pub pattern_type: String,
    pub domain: String,
    pub framework: Option<String>,
    pub content: String,
    pub embedding: Float32Array,
    pub coverage: Option<f64>,
    pub flakiness_score: Option<f64>,
    pub verdict: Option<String>,
    pub created_at: Option<f64>,
    pub last_used: Option<f64>,
    pub usage_count: Option<f64>,
    pub success_count: Option<f64>,
    pub metadata_json: Option<String>,
}

impl JsTestPattern {
    pub fn into_core(self) -> PatternInput {
        PatternInput {
            embedding: self.embedding.to_vec(),
            id: self.id,
            pattern_type: self.pattern_type,
            domain: self.domain,
            framework: self.framework,
            content: self.content,
            coverage: self.coverage,
            flakiness_score: self.flakiness_score,
            verdict: self.verdict,
            created_at: self.created_at,
            last_used: self.last_used,
            usage_count: self.usage_count,
            success_count: self.success_count,
            metadata_json: self.metadata_json,
        }
    }
}

#[napi(object)]
pub struct JsPatternFilter {
    pub domain: Option<String>,
    #[napi(js_name = "type")]
    pub pattern_type: Option<String>,
    pub framework: Option<String>,
    pub limit: Option<f64>,
}

impl JsPatternFilter {
    pub fn into_core(self) -> crate::Result<PatternFilter> {
        let limit = match self.limit {
            None => None,
            Some(l) if l.is_finite() && l >= 0.0 && l.fract() == 0.0 => Some(l.min(usize::MAX as f64) as usize),
            Some(l) => {
                return Err(CoreError::InvalidArgument(format!(
                    "limit must be a non-negative integer, got {l}"
                )))
            }
        };
        Ok(PatternFilter {
            domain: self.domain,
            pattern_type: self.pattern_type,
            framework: self.framework,
            limit,
        })
    }
}

/// `searchSimilar`'s options; index.js has checked their types.
#[napi(object)]
pub struct JsSearchOptions {
    pub k: Option<f64>,
    pub threshold: Option<f64>,
    pub domain: Option<String>,
    #[napi(js_name = "type")]
    pub pattern_type: Option<String>,
    pub framework: Option<String>,
    pub metric: Option<String>,
    #[napi(js_name = "useMMR")]
    pub use_mmr: Option<bool>,
    pub mmr_lambda: Option<f64>,
}

impl JsSearchOptions {
    pub fn into_core(self) -> crate::search::SearchInput {
        crate::search::SearchInput {
            k: self.k,
            threshold: self.threshold,
            domain: self.domain,
            pattern_type: self.pattern_type,
            framework: self.framework,
            metric: self.metric,
            use_mmr: self.use_mmr,
            mmr_lambda: self.mmr_lambda,
        }
    }
}

/// One entry of `recordUsages` (and `recordUsage`'s id with its outcome).
#[napi(object)]
pub struct JsUsageEntry {
    pub id: String,
    pub success: Option<bool>,
    pub at: Option<f64>,
}

impl JsUsageEntry {
    pub fn into_core(self) -> crate::model::UsageInput {
        crate::model::UsageInput {
            id: self.id,
            success: self.success.unwrap_or(false),
            at: self.at,
        }
    }
}

#[napi(object)]
pub struct JsAgentConfig {
    pub agent_id: String,
    #[napi(js_name = "type")]
    pub agent_type: String,
    pub config_json: String,
    pub version: String,
    pub updated_at: f64,
}

impl JsAgentConfig {
    pub fn into_core(self) -> AgentConfigInput {
        AgentConfigInput {
            agent_id: self.agent_id,
            agent_type: self.agent_type,
            config_json: self.config_json,
            version: self.version,
            updated_at: self.updated_at,
        }
    }
}

impl From<AgentConfig> for JsAgentConfig {
    fn from(c: AgentConfig) -> Self {
        JsAgentConfig {
            agent_id: c.agent_id,
            agent_type: c.agent_type,
            config_json: c.config_json,
            version: c.version,
            updated_at: c.updated_at as f64,
        }
    }
}

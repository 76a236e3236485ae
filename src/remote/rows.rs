//! Remote rows in, local rows out: every row pulled from the remote passes
//! the same validation a local write does (`validate`), so a hostile or
//! broken row (bad JSON, NaN, another dimension, oversized fields) is
//! rejected with `RemoteInvalidRow`, naming it, before anything is applied.

use tokio_postgres::Row;

use super::schema::SchemaName;
use crate::error::{Error, Result};
use crate::model::f32_bytes;
use crate::model::{AgentConfig, AgentConfigInput, Pattern, PatternInput};
use crate::validate;

/// The columns every pattern read selects, in this order.
pub const PATTERN_COLUMNS: &str = "id, generation, deleted, type, domain, framework, content, embedding, coverage, \
     flakiness_score, verdict, created_at, last_used, usage_count, success_count, metadata";
pub const CONFIG_COLUMNS: &str = "agent_id, generation, deleted, type, config_json, version, updated_at";

/// One remote change, validated, ready to apply locally.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    Pattern(Pattern),
    PatternDeleted(String),
    Config(AgentConfig),
    ConfigDeleted(String),
    /// A use this machine wrote: the pattern's counters as the bank has them.
    Used {
        id: String,
        usage_count: i64,
        success_count: i64,
        last_used: Option<i64>,
    },
}

fn invalid(table: &'static str, key: &str, generation: i64, reason: impl Into<String>) -> Error {
    Error::RemoteInvalidRow {
        table,
        key: key.to_owned(),
        generation,
        reason: reason.into(),
    }
}

/// A pattern row (`PATTERN_COLUMNS`) as a change.
pub fn pattern(row: &Row) -> Result<Change> {
    const TABLE: &str = "pattern_cache.patterns";
    let key: String = row.try_get(0).unwrap_or_else(|_| "(unreadable id)".into());
    let generation: i64 = row.try_get(1).unwrap_or(-1);
    let bad = |reason: String| invalid(TABLE, &key, generation, reason);
    let fields = (|| -> std::result::Result<_, tokio_postgres::Error> {
        Ok((
            row.try_get::<_, bool>(2)?,
            row.try_get::<_, Option<String>>(3)?,
            row.try_get::<_, Option<String>>(4)?,
            row.try_get::<_, Option<String>>(5)?,
            row.try_get::<_, Option<String>>(6)?,
            row.try_get::<_, Option<Vec<u8>>>(7)?,
            row.try_get::<_, Option<f64>>(8)?,
            row.try_get::<_, Option<f64>>(9)?,
            row.try_get::<_, Option<String>>(10)?,
            row.try_get::<_, Option<i64>>(11)?,
            row.try_get::<_, Option<i64>>(12)?,
            (row.try_get::<_, i64>(13)?, row.try_get::<_, i64>(14)?),
            row.try_get::<_, Option<String>>(15)?,
        ))
    })()
    .map_err(|e| bad(format!("a column has an unexpected type: {e}")))?;
    let (deleted, kind, domain, framework, content, embedding, coverage, flakiness, verdict, created_at, last_used) = (
        fields.0, fields.1, fields.2, fields.3, fields.4, fields.5, fields.6, fields.7, fields.8, fields.9, fields.10,
    );
    let ((usage_count, success_count), metadata) = (fields.11, fields.12);
    if generation < 1 {
        return Err(bad(format!("generation {generation} is not positive")));
    }
    if deleted {
        // Deleting an id that cannot exist here is a no-op: nothing to check.
        return Ok(Change::PatternDeleted(key));
    }
    let need = |what: &str, v: Option<String>| v.ok_or_else(|| bad(format!("{what} is NULL")));
    let embedding = embedding.ok_or_else(|| bad("embedding is NULL".into()))?;
    if embedding.len() % 4 != 0 {
        return Err(bad(format!(
            "embedding is {} bytes, not a whole number of float32s",
            embedding.len()
        )));
    }
    let input = PatternInput {
        id: key.clone(),
        pattern_type: need("type", kind)?,
        domain: need("domain", domain)?,
        framework: Some(need("framework", framework)?),
        content: need("content", content)?,
        embedding: f32_bytes::from_le_bytes(&embedding),
        coverage,
        flakiness_score: flakiness,
        verdict: Some(need("verdict", verdict)?),
        created_at: Some(created_at.ok_or_else(|| bad("created_at is NULL".into()))? as f64),
        last_used: last_used.map(|v| v as f64),
        usage_count: Some(usage_count as f64),
        success_count: Some(success_count as f64),
        metadata_json: metadata,
    };
    let (p, _) = validate::pattern(&input, 0, None).map_err(|e| match e {
        Error::InvalidPattern { reason, .. } => bad(reason),
        other => bad(other.to_string()),
    })?;
    Ok(Change::Pattern(p))
}

/// An agent config row (`CONFIG_COLUMNS`) as a change.
pub fn config(row: &Row) -> Result<Change> {
    const TABLE: &str = "pattern_cache.agent_configs";
    let key: String = row.try_get(0).unwrap_or_else(|_| "(unreadable agent_id)".into());
    let generation: i64 = row.try_get(1).unwrap_or(-1);
    let bad = |reason: String| invalid(TABLE, &key, generation, reason);
    let (deleted, kind, json, version, updated_at) = (|| -> std::result::Result<_, tokio_postgres::Error> {
        Ok((
            row.try_get::<_, bool>(2)?,
            row.try_get::<_, Option<String>>(3)?,
            row.try_get::<_, Option<String>>(4)?,
            row.try_get::<_, Option<String>>(5)?,
            row.try_get::<_, Option<i64>>(6)?,
        ))
    })()
    .map_err(|e| bad(format!("a column has an unexpected type: {e}")))?;
    if generation < 1 {
        return Err(bad(format!("generation {generation} is not positive")));
    }
    if deleted {
        return Ok(Change::ConfigDeleted(key));
    }
    let need = |what: &str, v: Option<String>| v.ok_or_else(|| bad(format!("{what} is NULL")));
    let input = AgentConfigInput {
        agent_id: key.clone(),
        agent_type: need("type", kind)?,
        config_json: need("config_json", json)?,
        version: need("version", version)?,
        updated_at: updated_at.ok_or_else(|| bad("updated_at is NULL".into()))? as f64,
    };
    let c = validate::agent_config(&input).map_err(|e| match e {
        Error::InvalidAgentConfig(reason) => bad(reason),
        other => bad(other.to_string()),
    })?;
    Ok(Change::Config(c))
}

/// `SELECT` of the pattern rows changed after a generation, in keyset order.
pub fn changed_patterns_sql(schema: &SchemaName, limit: i64) -> String {
    format!(
        "SELECT {PATTERN_COLUMNS} FROM {schema}.patterns WHERE generation > $1 AND (generation, id) > ($2, $3) \
         ORDER BY generation, id LIMIT {limit}"
    )
}

pub fn changed_configs_sql(schema: &SchemaName, limit: i64) -> String {
    format!(
        "SELECT {CONFIG_COLUMNS} FROM {schema}.agent_configs WHERE generation > $1 AND (generation, agent_id) > ($2, $3) \
         ORDER BY generation, agent_id LIMIT {limit}"
    )
}

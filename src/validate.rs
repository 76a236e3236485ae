//! Validation of everything a caller writes or asks for. A write is checked
//! whole before any of it reaches the database, so bad input changes nothing.

use crate::error::{Error, Result};
use crate::model::{AgentConfig, AgentConfigInput, Pattern, PatternFilter, PatternInput, Verdict, UNKNOWN};

pub const MAX_ID_BYTES: usize = 1024;
pub const MAX_NAME_BYTES: usize = 256;
pub const MAX_CONTENT_BYTES: usize = 1 << 20;
pub const MAX_EMBEDDING_DIM: usize = 16_384;
pub const MAX_METADATA_BYTES: usize = 256 << 10;
pub const MAX_CONFIG_JSON_BYTES: usize = 1 << 20;
/// How deep metadata objects and arrays may nest (serde_json stops at 128
/// open containers, so 127 levels parse).
pub const MAX_METADATA_DEPTH: usize = 127;
/// JavaScript's largest exactly representable integer.
pub const MAX_SAFE_INTEGER: f64 = 9_007_199_254_740_991.0;
/// The latest instant a JavaScript Date can hold, in ms.
pub const MAX_TIMESTAMP_MS: f64 = 8.64e15;

/// Checks a key string (id or indexed name): non-empty, bounded, no NUL.
pub fn key(what: &str, value: &str, max: usize) -> std::result::Result<(), String> {
    if value.is_empty() {
        return Err(format!("{what} must be a non-empty string"));
    }
    if value.len() > max {
        return Err(format!("{what} is {} bytes, more than {max}", value.len()));
    }
    if value.contains('\0') {
        return Err(format!("{what} contains a NUL character"));
    }
    Ok(())
}

/// An id given to a read or delete.
pub fn id_argument(id: &str) -> Result<()> {
    key("id", id, MAX_ID_BYTES).map_err(Error::InvalidArgument)
}

fn unit_interval(what: &str, v: Option<f64>) -> std::result::Result<Option<f64>, String> {
    match v {
        Some(x) if !x.is_finite() || !(0.0..=1.0).contains(&x) => {
            Err(format!("{what} must be a finite number in 0..1, got {x}"))
        }
        other => Ok(other),
    }
}

fn integer(what: &str, v: f64, max: f64) -> std::result::Result<i64, String> {
    if !v.is_finite() || v.fract() != 0.0 || !(0.0..=max).contains(&v) {
        return Err(format!("{what} must be an integer in 0..{max}, got {v}"));
    }
    Ok(v as i64)
}

/// Canonical JSON text of a JSON object, or why it is not one.
pub fn metadata(json: &str) -> std::result::Result<String, String> {
    if json.len() > MAX_METADATA_BYTES {
        return Err(format!(
            "metadata is {} bytes of JSON, more than {MAX_METADATA_BYTES}",
            json.len()
        ));
    }
    match serde_json::from_str::<serde_json::Value>(json) {
        Ok(v @ serde_json::Value::Object(_)) => Ok(v.to_string()),
        Ok(_) => Err("metadata must be a JSON object".into()),
        // serde_json stops at 128 levels: a documented limit, not "not JSON".
        Err(e) if e.to_string().contains("recursion limit") => {
            Err(format!("metadata nests deeper than {MAX_METADATA_DEPTH} levels"))
        }
        Err(e) => Err(format!("metadata is not JSON: {e}")),
    }
}

/// Turns caller input into a stored pattern. `now_ms` fills `createdAt`;
/// the bool says the caller gave none (an existing pattern keeps its own).
/// `dim` is the embedding dimension every pattern must have, when known.
pub fn pattern(input: &PatternInput, now_ms: i64, dim: Option<usize>) -> Result<(Pattern, bool)> {
    let bad = |reason: String| Error::invalid_pattern(&input.id, reason);
    key("id", &input.id, MAX_ID_BYTES).map_err(bad)?;
    key("type", &input.pattern_type, MAX_NAME_BYTES).map_err(bad)?;
    key("domain", &input.domain, MAX_NAME_BYTES).map_err(bad)?;
    if let Some(f) = &input.framework {
        key("framework", f, MAX_NAME_BYTES).map_err(bad)?;
    }
    if input.content.len() > MAX_CONTENT_BYTES {
        return Err(bad(format!(
            "content is {} bytes, more than {MAX_CONTENT_BYTES}",
            input.content.len()
        )));
    }
    let e = &input.embedding;
    if e.is_empty() || e.len() > MAX_EMBEDDING_DIM {
        return Err(bad(format!(
            "embedding must have 1..{MAX_EMBEDDING_DIM} dimensions, got {}",
            e.len()
        )));
    }
    if let Some(i) = e.iter().position(|x| !x.is_finite()) {
        return Err(bad(format!("embedding[{i}] is not a finite number")));
    }
    if let Some(d) = dim.filter(|&d| d != e.len()) {
        return Err(bad(format!(
            "embedding has {} dimensions; the database holds {d}-dimensional embeddings",
            e.len()
        )));
    }
    let verdict = match &input.verdict {
        None => Verdict::Unknown,
        Some(v) => Verdict::parse(v)
            .ok_or_else(|| bad(format!("verdict must be success, failure, flaky or unknown, got '{v}'")))?,
    };
    let ts = |what, v: Option<f64>| v.map(|x| integer(what, x, MAX_TIMESTAMP_MS)).transpose();
    let count = |what, v: Option<f64>| v.map(|x| integer(what, x, MAX_SAFE_INTEGER)).transpose();
    let created_at = ts("createdAt", input.created_at).map_err(bad)?;
    let pattern = Pattern {
        id: input.id.clone(),
        pattern_type: input.pattern_type.clone(),
        domain: input.domain.clone(),
        framework: input.framework.clone().unwrap_or_else(|| UNKNOWN.to_owned()),
        content: input.content.clone(),
        embedding: input.embedding.clone(),
        coverage: unit_interval("coverage", input.coverage).map_err(bad)?,
        flakiness_score: unit_interval("flakinessScore", input.flakiness_score).map_err(bad)?,
        verdict,
        created_at: created_at.unwrap_or(now_ms),
        last_used: ts("lastUsed", input.last_used).map_err(bad)?,
        usage_count: count("usageCount", input.usage_count).map_err(bad)?.unwrap_or(0),
        success_count: count("successCount", input.success_count).map_err(bad)?.unwrap_or(0),
        metadata_json: input.metadata_json.as_deref().map(metadata).transpose().map_err(bad)?,
    };
    Ok((pattern, created_at.is_none()))
}

/// Validates a batch as a whole: each pattern, one dimension, no repeated id.
pub fn patterns(inputs: &[PatternInput], now_ms: i64, db_dim: Option<usize>) -> Result<Vec<(Pattern, bool)>> {
    let mut dim = db_dim;
    let mut seen = std::collections::HashSet::with_capacity(inputs.len());
    let mut out = Vec::with_capacity(inputs.len());
    for input in inputs {
        let (p, keep) = pattern(input, now_ms, dim)?;
        dim = Some(p.embedding.len());
        if !seen.insert(p.id.clone()) {
            return Err(Error::invalid_pattern(&p.id, "the batch holds this id twice"));
        }
        out.push((p, keep));
    }
    Ok(out)
}

pub fn agent_config(input: &AgentConfigInput) -> Result<AgentConfig> {
    let bad = Error::InvalidAgentConfig;
    key("agentId", &input.agent_id, MAX_ID_BYTES).map_err(bad)?;
    key("type", &input.agent_type, MAX_NAME_BYTES).map_err(bad)?;
    key("version", &input.version, MAX_NAME_BYTES).map_err(bad)?;
    if input.config_json.len() > MAX_CONFIG_JSON_BYTES {
        return Err(bad(format!("configJson is more than {MAX_CONFIG_JSON_BYTES} bytes")));
    }
    serde_json::from_str::<serde::de::IgnoredAny>(&input.config_json)
        .map_err(|e| bad(format!("configJson is not JSON: {e}")))?;
    Ok(AgentConfig {
        agent_id: input.agent_id.clone(),
        agent_type: input.agent_type.clone(),
        config_json: input.config_json.clone(),
        version: input.version.clone(),
        updated_at: integer("updatedAt", input.updated_at, MAX_TIMESTAMP_MS).map_err(bad)?,
    })
}

/// The time of a use: a Unix ms integer, `now` when absent.
pub fn usage_at(at: Option<f64>, now: i64) -> Result<i64> {
    match at {
        None => Ok(now),
        Some(v) => integer("at", v, MAX_TIMESTAMP_MS).map_err(Error::InvalidArgument),
    }
}

/// Most patterns a page holds, and how many when not said.
pub const MAX_PAGE: usize = 10_000;
pub const DEFAULT_PAGE: usize = 1000;

/// A page size: an integer in 1..=MAX_PAGE.
pub fn page_size(limit: Option<usize>) -> Result<usize> {
    match limit {
        None => Ok(DEFAULT_PAGE),
        Some(n) if (1..=MAX_PAGE).contains(&n) => Ok(n),
        Some(n) => Err(Error::InvalidArgument(format!(
            "limit (the page size) must be an integer from 1 to {MAX_PAGE}, got {n}"
        ))),
    }
}

pub fn filter(f: &PatternFilter) -> Result<()> {
    for (what, v) in [
        ("domain", &f.domain),
        ("type", &f.pattern_type),
        ("framework", &f.framework),
    ] {
        if let Some(v) = v {
            key(what, v, MAX_NAME_BYTES).map_err(Error::InvalidArgument)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input() -> PatternInput {
        PatternInput {
            id: "p".into(),
            pattern_type: "unit".into(),
            domain: "auth".into(),
            content: "c".into(),
            embedding: vec![0.1, 0.2],
            ..Default::default()
        }
    }

    #[test]
    fn defaults_are_filled() {
        let (p, keep) = pattern(&input(), 123, None).unwrap();
        assert_eq!(p.framework, "unknown");
        assert_eq!(p.verdict, Verdict::Unknown);
        assert_eq!(p.created_at, 123);
        assert!(keep);
        assert_eq!((p.usage_count, p.success_count), (0, 0));
    }

    type Mutation = Box<dyn Fn(&mut PatternInput)>;

    #[test]
    fn each_bad_field_is_rejected() {
        let cases: Vec<Mutation> = vec![
            Box::new(|p| p.id.clear()),
            Box::new(|p| p.id = "a\0b".into()),
            Box::new(|p| p.id = "x".repeat(MAX_ID_BYTES + 1)),
            Box::new(|p| p.domain.clear()),
            Box::new(|p| p.pattern_type.clear()),
            Box::new(|p| p.framework = Some(String::new())),
            Box::new(|p| p.content = "x".repeat(MAX_CONTENT_BYTES + 1)),
            Box::new(|p| p.embedding.clear()),
            Box::new(|p| p.embedding = vec![0.0; MAX_EMBEDDING_DIM + 1]),
            Box::new(|p| p.embedding[1] = f32::NAN),
            Box::new(|p| p.embedding[0] = f32::INFINITY),
            Box::new(|p| p.coverage = Some(1.5)),
            Box::new(|p| p.coverage = Some(f64::NAN)),
            Box::new(|p| p.flakiness_score = Some(-0.1)),
            Box::new(|p| p.verdict = Some("great".into())),
            Box::new(|p| p.created_at = Some(-1.0)),
            Box::new(|p| p.created_at = Some(1.5)),
            Box::new(|p| p.last_used = Some(f64::INFINITY)),
            Box::new(|p| p.usage_count = Some(-3.0)),
            Box::new(|p| p.success_count = Some(1e300)),
            Box::new(|p| p.metadata_json = Some("[1,2]".into())),
            Box::new(|p| p.metadata_json = Some("{bad".into())),
        ];
        for (i, mutate) in cases.iter().enumerate() {
            let mut p = input();
            mutate(&mut p);
            let err = pattern(&p, 0, None).expect_err(&format!("case {i} accepted"));
            assert_eq!(err.code(), "INVALID_PATTERN", "case {i}");
        }
    }

    #[test]
    fn dimension_must_match_database_and_batch() {
        assert!(pattern(&input(), 0, Some(3)).is_err());
        let mut other = input();
        other.id = "q".into();
        other.embedding = vec![1.0, 2.0, 3.0];
        assert!(patterns(&[input(), other], 0, None).is_err());
        assert!(patterns(&[input(), input()], 0, None).is_err(), "repeated id");
    }

    #[test]
    fn metadata_depth_limit_is_named() {
        let deep = format!("{}1{}", r#"{"a":"#.repeat(200), "}".repeat(200));
        assert!(metadata(&deep).unwrap_err().contains("deeper than 127"));
        let at_limit = format!("{}1{}", r#"{"a":"#.repeat(127), "}".repeat(127));
        assert!(metadata(&at_limit).is_ok(), "127 objects deep");
        let past = format!("{}1{}", r#"{"a":"#.repeat(128), "}".repeat(128));
        assert!(metadata(&past).is_err(), "128 objects deep");
        let ok = format!("{}1{}", r#"{"a":"#.repeat(100), "}".repeat(100));
        assert!(metadata(&ok).is_ok());
    }

    #[test]
    fn metadata_is_canonical() {
        assert_eq!(metadata(r#"{ "b": 1, "a": [true] }"#).unwrap(), r#"{"a":[true],"b":1}"#);
    }
}

//! The data the store holds and returns, in plain Rust.

use serde::{Deserialize, Serialize};

pub mod f32_bytes;

/// The outcome a pattern last had. Stored as its lower-case name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Success,
    Failure,
    Flaky,
    #[default]
    Unknown,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Success => "success",
            Verdict::Failure => "failure",
            Verdict::Flaky => "flaky",
            Verdict::Unknown => "unknown",
        }
    }

    pub fn parse(s: &str) -> Option<Verdict> {
        Some(match s {
            "success" => Verdict::Success,
            "failure" => Verdict::Failure,
            "flaky" => Verdict::Flaky,
            "unknown" => Verdict::Unknown,
            _ => return None,
        })
    }
}

/// The framework and verdict a pattern gets when the caller gives none.
pub const UNKNOWN: &str = "unknown";

/// A test pattern as stored: every default already filled in.
///
/// Timestamps are Unix milliseconds. `metadata_json` is the canonical JSON text
/// of a JSON object (serde_json's compact form).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pattern {
    pub id: String,
    pub pattern_type: String,
    pub domain: String,
    pub framework: String,
    pub content: String,
    #[serde(with = "crate::model::f32_bytes")]
    pub embedding: Vec<f32>,
    pub coverage: Option<f64>,
    pub flakiness_score: Option<f64>,
    pub verdict: Verdict,
    pub created_at: i64,
    pub last_used: Option<i64>,
    pub usage_count: i64,
    pub success_count: i64,
    pub metadata_json: Option<String>,
}

/// A pattern as a caller writes it: what may be absent is `None`.
/// Numbers are f64 because that is what JavaScript has; validation turns them
/// into the stored integer types or rejects them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PatternInput {
    pub id: String,
    pub pattern_type: String,
    pub domain: String,
    pub framework: Option<String>,
    pub content: String,
    pub embedding: Vec<f32>,
    pub coverage: Option<f64>,
    pub flakiness_score: Option<f64>,
    pub verdict: Option<String>,
    pub created_at: Option<f64>,
    pub last_used: Option<f64>,
    pub usage_count: Option<f64>,
    pub success_count: Option<f64>,
    /// JSON text of an object (JavaScript's `JSON.stringify` of `metadata`).
    pub metadata_json: Option<String>,
}

/// The fields a use of a pattern changes (`recordUsage`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counters {
    pub usage_count: i64,
    pub success_count: i64,
    pub last_used: Option<i64>,
}

impl Stats {
    /// Nothing counted yet, but every verdict present (at 0), as `getStats` reports them.
    pub fn with_every_verdict() -> Stats {
        Stats {
            by_verdict: [Verdict::Success, Verdict::Failure, Verdict::Flaky, Verdict::Unknown]
                .into_iter()
                .map(|v| (v.as_str().to_owned(), 0))
                .collect(),
            ..Stats::default()
        }
    }
}

/// One use as a caller records it (numbers as JavaScript has them).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UsageInput {
    pub id: String,
    pub success: bool,
    /// Unix ms; now when absent.
    pub at: Option<f64>,
}

/// What the store holds, counted (`getStats`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Stats {
    pub pattern_count: u64,
    /// 0 while there is no pattern.
    pub dimension: u32,
    pub by_domain: std::collections::BTreeMap<String, u64>,
    pub by_type: std::collections::BTreeMap<String, u64>,
    pub by_framework: std::collections::BTreeMap<String, u64>,
    /// Every verdict's name, 0 where none has it.
    pub by_verdict: std::collections::BTreeMap<String, u64>,
    pub agent_config_count: u64,
}

/// An agent configuration entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentConfig {
    pub agent_id: String,
    pub agent_type: String,
    pub config_json: String,
    pub version: String,
    pub updated_at: i64,
}

/// An agent configuration as a caller writes it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AgentConfigInput {
    pub agent_id: String,
    pub agent_type: String,
    pub config_json: String,
    pub version: String,
    pub updated_at: f64,
}

/// Which fields a query must match; all given ones at once.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PatternFilter {
    pub domain: Option<String>,
    pub pattern_type: Option<String>,
    pub framework: Option<String>,
    pub limit: Option<usize>,
}

impl PatternFilter {
    /// A filter on one field.
    pub fn on(kind: IndexKind, name: &str) -> PatternFilter {
        let mut filter = PatternFilter::default();
        *filter.field_mut(kind) = Some(name.to_owned());
        filter
    }

    /// The value this filter gives for `kind`, if any.
    pub fn get(&self, kind: IndexKind) -> Option<&str> {
        match kind {
            IndexKind::Domain => self.domain.as_deref(),
            IndexKind::Type => self.pattern_type.as_deref(),
            IndexKind::Framework => self.framework.as_deref(),
        }
    }

    fn field_mut(&mut self, kind: IndexKind) -> &mut Option<String> {
        match kind {
            IndexKind::Domain => &mut self.domain,
            IndexKind::Type => &mut self.pattern_type,
            IndexKind::Framework => &mut self.framework,
        }
    }

    /// The fields this filter gives, with their values, in `IndexKind::ALL` order.
    pub fn fields(&self) -> impl Iterator<Item = (IndexKind, &str)> {
        IndexKind::ALL
            .into_iter()
            .filter_map(|kind| self.get(kind).map(|v| (kind, v)))
    }

    /// Whether `p` has every field this filter gives (the limit aside).
    pub fn matches(&self, p: &Pattern) -> bool {
        self.fields().all(|(kind, v)| kind.key_of(p) == v)
    }
}

/// The three indexed fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IndexKind {
    Domain,
    Type,
    Framework,
}

impl IndexKind {
    pub const ALL: [IndexKind; 3] = [IndexKind::Domain, IndexKind::Type, IndexKind::Framework];

    /// This field's value in `p`.
    pub fn key_of(self, p: &Pattern) -> &str {
        match self {
            IndexKind::Domain => &p.domain,
            IndexKind::Type => &p.pattern_type,
            IndexKind::Framework => &p.framework,
        }
    }

    /// The field named as the SQLite column (and JavaScript's filter key) names it.
    pub fn parse(name: &str) -> Option<IndexKind> {
        IndexKind::ALL.into_iter().find(|k| k.column() == name)
    }

    /// The SQLite column holding this field.
    pub fn column(self) -> &'static str {
        match self {
            IndexKind::Domain => "domain",
            IndexKind::Type => "type",
            IndexKind::Framework => "framework",
        }
    }
}

/// What caused a rebuild or an invalidation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    PatternStored,
    PatternDeleted,
    ConfigUpdated,
    SchemaMigration,
    Manual,
    TtlExpired,
    Startup,
    Corruption,
    VersionMismatch,
    SourceChanged,
}

impl Trigger {
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::PatternStored => "pattern_stored",
            Trigger::PatternDeleted => "pattern_deleted",
            Trigger::ConfigUpdated => "config_updated",
            Trigger::SchemaMigration => "schema_migration",
            Trigger::Manual => "manual",
            Trigger::TtlExpired => "ttl_expired",
            Trigger::Startup => "startup",
            Trigger::Corruption => "corruption",
            Trigger::VersionMismatch => "version_mismatch",
            Trigger::SourceChanged => "source_changed",
        }
    }

    /// The triggers a caller may pass to `markStale`.
    pub fn parse_invalidation(s: &str) -> Option<Trigger> {
        Some(match s {
            "pattern_stored" => Trigger::PatternStored,
            "pattern_deleted" => Trigger::PatternDeleted,
            "config_updated" => Trigger::ConfigUpdated,
            "schema_migration" => Trigger::SchemaMigration,
            "manual" => Trigger::Manual,
            "ttl_expired" => Trigger::TtlExpired,
            _ => return None,
        })
    }
}

/// What the cache reports as it happens (the contract's `CacheEvent`).
#[derive(Debug, Clone, PartialEq)]
pub enum CacheEvent {
    RebuildStarted {
        reason: Trigger,
    },
    RebuildFinished {
        pattern_count: u64,
        duration_ms: f64,
        cache_file_size: u64,
    },
    RebuildFailed {
        error: String,
    },
    Fallback {
        reason: String,
    },
    CorruptionDetected {
        detail: String,
    },
    /// A sync pass moved the replica forward.
    RemoteSynced {
        from_generation: u64,
        to_generation: u64,
        rows_applied: u64,
    },
    /// The remote could not be reached (or a pass failed); reads go on
    /// from the replica.
    RemoteUnavailable {
        error: String,
    },
    /// A pass found the bank's history is not the one the replica followed
    /// (a restore, a failover that lost commits, a clone) and reset the
    /// replica to the bank's content; reads went on throughout.
    RemoteReset {
        reason: String,
    },
}

/// The outcome of one cache build.
#[derive(Debug, Clone, PartialEq)]
pub struct BuildResult {
    pub success: bool,
    pub pattern_count: u64,
    pub duration_ms: f64,
    pub cache_file_size: u64,
    pub error: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(domain: &str, pattern_type: &str, framework: &str) -> Pattern {
        Pattern {
            id: "p".into(),
            pattern_type: pattern_type.into(),
            domain: domain.into(),
            framework: framework.into(),
            content: String::new(),
            embedding: Vec::new(),
            coverage: None,
            flakiness_score: None,
            verdict: Verdict::Unknown,
            created_at: 0,
            last_used: None,
            usage_count: 0,
            success_count: 0,
            metadata_json: None,
        }
    }

    #[test]
    fn a_filter_matches_on_every_field_it_gives() {
        let p = pattern("auth", "unit", "jest");
        assert!(PatternFilter::default().matches(&p));
        for kind in IndexKind::ALL {
            assert_eq!(IndexKind::parse(kind.column()), Some(kind));
        }
        assert_eq!(IndexKind::parse("verdict"), None);
        for kind in IndexKind::ALL {
            let on = PatternFilter::on(kind, kind.key_of(&p));
            assert_eq!(on.fields().collect::<Vec<_>>(), [(kind, kind.key_of(&p))]);
            assert!(on.matches(&p));
            assert!(!PatternFilter::on(kind, "other").matches(&p));
        }
        let all = PatternFilter {
            domain: Some("auth".into()),
            pattern_type: Some("unit".into()),
            framework: Some("vitest".into()),
            limit: Some(1),
        };
        assert!(!all.matches(&p), "one field off is no match");
        assert_eq!(all.fields().count(), 3);
    }
}

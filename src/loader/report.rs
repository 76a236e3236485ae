//! What the instance reports about itself: `getMetrics()`, and the tools'
//! looks at disk (`inspect` for the CLI's `status`, `verify_file` for
//! `verify`), read fresh rather than from what the instance holds.

use std::sync::atomic::Ordering;

use super::{PatternCache, Tier};
use crate::cache_file;
use crate::error::{Error, Result};
use crate::metrics::MetricsSnapshot;
use crate::remote::RemoteStatus;

/// `getMetrics()`: the counters plus what the tiers look like now.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricsReport {
    pub counters: MetricsSnapshot,
    /// Unix ms at which the cache file in use was written (0: none).
    pub last_cache_generation_time: i64,
    pub cache_file_size: u64,
    pub pattern_count: u64,
    pub tier: Tier,
    /// Why tier 1 is not serving, when it is not.
    pub cache_unavailable_reason: Option<String>,
    /// With a remote: the replica's generation and the remote's.
    pub remote: Option<RemoteReport>,
}

/// `getMetrics().remote`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RemoteReport {
    /// The remote generation the replica holds (as this instance knows it).
    pub generation: u64,
    pub status: RemoteStatus,
}

/// The cache file as `inspect` found it.
#[derive(Debug, Clone, PartialEq)]
pub enum FileState {
    Missing,
    Invalid(String),
    Valid(Box<FileInfo>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct FileInfo {
    pub size: u64,
    pub format: String,
    pub producer: String,
    pub generation: u64,
    pub same_database: bool,
    pub pattern_count: u64,
    pub config_count: u64,
    pub embedding_dim: u32,
    pub written_at_ms: i64,
    pub content_changed_at_ms: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Inspection {
    pub db_path: String,
    pub cache_path: String,
    pub db_generation: u64,
    pub db_pattern_count: u64,
    pub file: FileState,
    pub max_age_ms: u64,
}

impl PatternCache {
    pub fn metrics(&self) -> Result<MetricsReport> {
        let inner = self.inner()?;
        let view = inner.tier1.view.load_full();
        let serving = inner.serving_view();
        let known = inner.known();
        let counters = if inner.config.enable_metrics {
            inner.metrics.snapshot()
        } else {
            MetricsSnapshot::default()
        };
        Ok(MetricsReport {
            counters,
            last_cache_generation_time: if view.is_some() {
                inner.tier1.view_written_at.load(Ordering::Relaxed)
            } else {
                0
            },
            cache_file_size: view.as_ref().map(|v| v.file_size()).unwrap_or(0),
            pattern_count: match (&serving, &view) {
                (true, Some(v)) if v.header().generation == known => u64::from(v.len()),
                _ => inner.fresh.pattern_count.load(Ordering::Relaxed),
            },
            tier: if serving { Tier::Cache } else { Tier::Sqlite },
            cache_unavailable_reason: if serving {
                None
            } else {
                Some(inner.unavailable_reason())
            },
            remote: inner.replication.remote.as_ref().map(|r| {
                r.saw_generation(known);
                RemoteReport {
                    generation: known,
                    status: r.status(),
                }
            }),
        })
    }

    /// What the tiers look like now, read fresh from disk and database (the
    /// CLI's `status`).
    pub fn inspect(&self) -> Result<Inspection> {
        let inner = self.inner()?;
        let g = inner.db.generation()?;
        let file = match cache_file::open_view(&inner.paths.file) {
            Ok((view, identity)) => FileState::Valid(Box::new(FileInfo {
                size: view.file_size(),
                format: view.header().version.to_string(),
                producer: view.header().producer.clone(),
                generation: view.header().generation,
                same_database: view.header().source_id == g.source_id,
                pattern_count: view.header().pattern_count,
                config_count: view.header().config_count,
                embedding_dim: view.header().embedding_dim,
                written_at_ms: identity.modified_ms,
                content_changed_at_ms: view.header().created_at_ms,
            })),
            Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => FileState::Missing,
            Err(e) => FileState::Invalid(format!("[{}] {e}", e.code())),
        };
        Ok(Inspection {
            db_path: inner.config.db_path.display().to_string(),
            cache_path: inner.paths.file.display().to_string(),
            db_generation: g.generation,
            db_pattern_count: g.pattern_count,
            file,
            max_age_ms: inner.config.max_age.as_millis() as u64,
        })
    }

    /// Checks every byte of the cache file on disk: header, sections, and the
    /// hash and decoding of every record (the CLI's `verify`).
    pub fn verify_file(&self) -> Result<u64> {
        let inner = self.inner()?;
        let (view, _) = cache_file::open_view(&inner.paths.file)?;
        view.verify_all()?;
        Ok(u64::from(view.len()))
    }
}

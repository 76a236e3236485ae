//! Options of `PatternCache.open`, their defaults and their checks.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::{Error, Result};
use crate::format::FORMAT_VERSION;
use crate::remote::schema::SchemaName;
use crate::remote::RemoteConfig;

pub const DEFAULT_MAX_AGE_MS: f64 = 3_600_000.0;
/// Often enough that another process's writes show within a second; rare
/// enough that the one-row generation read stays off the hot path.
pub const DEFAULT_CHECK_INTERVAL_MS: f64 = 1_000.0;
/// The longest duration option accepted (about 24.8 days, what a JS timer holds).
pub const MAX_DURATION_MS: f64 = 2_147_483_647.0;
/// How long one remote call (a write, a page of a sync, a connection) may
/// take before the remote is taken for unavailable (a silent network).
const DEFAULT_REMOTE_TIMEOUT_MS: f64 = 20_000.0;
/// How often a replica looks at the remote when no notification comes.
pub const DEFAULT_POLL_INTERVAL_MS: f64 = 5_000.0;
pub const DEFAULT_DIR: &str = ".pattern-cache";
pub const DEFAULT_DB_FILE: &str = "patterns.db";

/// The options as given; `None` means "use the default".
#[derive(Debug, Clone, Default)]
pub struct ConfigInput {
    pub db_path: Option<String>,
    pub cache_path: Option<String>,
    pub enabled: Option<bool>,
    pub max_age_ms: Option<f64>,
    pub check_interval_ms: Option<f64>,
    pub background_rebuild: Option<bool>,
    pub fallback_to_sqlite: Option<bool>,
    pub enable_metrics: Option<bool>,
    /// `remote.url`, `remote.pollInterval`, `remote.listen`.
    pub remote_url: Option<String>,
    pub remote_poll_interval_ms: Option<f64>,
    pub remote_listen: Option<bool>,
    /// `remote.timeout`: ms one remote call may take before it is taken for lost.
    pub remote_timeout_ms: Option<f64>,
    /// `remote.schema`: the PostgreSQL schema the bank lives in.
    pub remote_schema: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub db_path: PathBuf,
    pub cache_path: PathBuf,
    pub enabled: bool,
    pub max_age: Duration,
    pub check_interval: Duration,
    pub background_rebuild: bool,
    pub fallback_to_sqlite: bool,
    pub enable_metrics: bool,
    pub remote: Option<RemoteConfig>,
}

/// The default cache file name: it carries the format major, so releases
/// with incompatible formats never fight over one file.
pub fn default_cache_name() -> String {
    format!("patterns.v{}.pcache", FORMAT_VERSION.major)
}

fn path_option(what: &str, value: &Option<String>) -> Result<Option<PathBuf>> {
    match value {
        None => Ok(None),
        Some(p) if p.is_empty() || p.contains('\0') => Err(Error::InvalidArgument(format!(
            "{what} must be a non-empty path without NUL"
        ))),
        Some(p) => Ok(Some(PathBuf::from(p))),
    }
}

fn duration_option(what: &str, value: Option<f64>, default: f64, min: f64) -> Result<Duration> {
    let ms = value.unwrap_or(default);
    if !ms.is_finite() || ms < min || ms > MAX_DURATION_MS {
        return Err(Error::InvalidArgument(format!(
            "{what} must be a number of ms in {min}..{MAX_DURATION_MS}, got {ms}"
        )));
    }
    Ok(Duration::from_secs_f64(ms / 1000.0))
}

/// The cache file and its companions (`.lock`, `.bak`, `.tmp-*`) must not be
/// the database or one of SQLite's files beside it (`-wal`, `-shm`,
/// `-journal`): a rebuild replaces, removes or links those names.
fn check_no_overlap(db: &Path, cache: &Path) -> Result<()> {
    let with = crate::fsutil::with_suffix;
    let db_files: Vec<PathBuf> = ["", "-wal", "-shm", "-journal"].iter().map(|s| with(db, s)).collect();
    let cache_files: Vec<PathBuf> = ["", ".lock", ".bak"].iter().map(|s| with(cache, s)).collect();
    let temp_prefix = with(cache, ".tmp-");
    for d in &db_files {
        if cache_files.contains(d)
            || d.as_os_str()
                .to_string_lossy()
                .starts_with(&*temp_prefix.to_string_lossy())
        {
            return Err(Error::InvalidArgument(format!(
                "cachePath {} would overwrite the database's file {}",
                cache.display(),
                d.display()
            )));
        }
    }
    Ok(())
}

impl Config {
    /// Resolves relative paths against `cwd` and fills defaults.
    pub fn resolve(input: &ConfigInput, cwd: &Path) -> Result<Config> {
        let db_path =
            path_option("dbPath", &input.db_path)?.unwrap_or_else(|| Path::new(DEFAULT_DIR).join(DEFAULT_DB_FILE));
        let db_path = cwd.join(db_path);
        let cache_path = match path_option("cachePath", &input.cache_path)? {
            Some(p) => cwd.join(p),
            None => db_path
                .parent()
                .map(|d| d.join(default_cache_name()))
                .unwrap_or_else(|| PathBuf::from(default_cache_name())),
        };
        check_no_overlap(&db_path, &cache_path)?;
        Ok(Config {
            db_path,
            cache_path,
            enabled: input.enabled.unwrap_or(true),
            max_age: duration_option("maxAge", input.max_age_ms, DEFAULT_MAX_AGE_MS, 1.0)?,
            check_interval: duration_option("checkInterval", input.check_interval_ms, DEFAULT_CHECK_INTERVAL_MS, 0.0)?,
            background_rebuild: input.background_rebuild.unwrap_or(true),
            fallback_to_sqlite: input.fallback_to_sqlite.unwrap_or(true),
            enable_metrics: input.enable_metrics.unwrap_or(true),
            remote: remote_option(input)?,
        })
    }
}

fn remote_option(input: &ConfigInput) -> Result<Option<RemoteConfig>> {
    let Some(url) = &input.remote_url else {
        if input.remote_poll_interval_ms.is_some()
            || input.remote_listen.is_some()
            || input.remote_timeout_ms.is_some()
            || input.remote_schema.is_some()
        {
            return Err(Error::InvalidArgument("remote.url is required with remote".into()));
        }
        return Ok(None);
    };
    if url.is_empty() || url.contains('\0') {
        return Err(Error::InvalidArgument(
            "remote.url must be a non-empty connection string without NUL".into(),
        ));
    }
    let poll = duration_option(
        "remote.pollInterval",
        input.remote_poll_interval_ms,
        DEFAULT_POLL_INTERVAL_MS,
        10.0,
    )?;
    let timeout = duration_option(
        "remote.timeout",
        input.remote_timeout_ms,
        DEFAULT_REMOTE_TIMEOUT_MS,
        100.0,
    )?;
    // Checked here too, so that a bad string fails `open` with INVALID_ARGUMENT.
    crate::remote::connect::Target::parse(url)?;
    Ok(Some(RemoteConfig {
        url: url.clone(),
        poll_interval: poll,
        listen: input.remote_listen.unwrap_or(true),
        timeout,
        schema: match &input.remote_schema {
            Some(name) => SchemaName::parse(name)?,
            None => SchemaName::default(),
        },
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults() {
        let c = Config::resolve(&ConfigInput::default(), Path::new("/work")).unwrap();
        assert_eq!(c.db_path, Path::new("/work/.pattern-cache/patterns.db"));
        assert_eq!(c.cache_path, Path::new("/work/.pattern-cache/patterns.v2.pcache"));
        assert_eq!(c.max_age, Duration::from_secs(3600));
        assert!(c.enabled && c.background_rebuild && c.fallback_to_sqlite && c.enable_metrics);
    }

    #[test]
    fn cache_sits_beside_the_database() {
        let input = ConfigInput {
            db_path: Some("/data/x.db".into()),
            ..Default::default()
        };
        let c = Config::resolve(&input, Path::new("/elsewhere")).unwrap();
        assert_eq!(c.cache_path, Path::new("/data/patterns.v2.pcache"));
    }

    #[test]
    fn bad_options_rejected() {
        for input in [
            ConfigInput {
                max_age_ms: Some(f64::NAN),
                ..Default::default()
            },
            ConfigInput {
                max_age_ms: Some(0.0),
                ..Default::default()
            },
            ConfigInput {
                check_interval_ms: Some(-1.0),
                ..Default::default()
            },
            ConfigInput {
                db_path: Some(String::new()),
                ..Default::default()
            },
            ConfigInput {
                db_path: Some("a.db".into()),
                cache_path: Some("a.db".into()),
                ..Default::default()
            },
            ConfigInput {
                db_path: Some("a.db".into()),
                cache_path: Some("a.db-wal".into()),
                ..Default::default()
            },
            ConfigInput {
                db_path: Some("a.db".into()),
                cache_path: Some("a.db-shm".into()),
                ..Default::default()
            },
            ConfigInput {
                db_path: Some("a.db".into()),
                cache_path: Some("a.db-journal".into()),
                ..Default::default()
            },
            ConfigInput {
                db_path: Some("c.pcache.bak".into()),
                cache_path: Some("c.pcache".into()),
                ..Default::default()
            },
            ConfigInput {
                db_path: Some("c.pcache.tmp-x".into()),
                cache_path: Some("c.pcache".into()),
                ..Default::default()
            },
            ConfigInput {
                db_path: Some("c.pcache.lock".into()),
                cache_path: Some("c.pcache".into()),
                ..Default::default()
            },
        ] {
            assert_eq!(
                Config::resolve(&input, Path::new("/")).unwrap_err().code(),
                "INVALID_ARGUMENT"
            );
        }
    }
}

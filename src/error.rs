//! The one error type of the core, with the stable codes JavaScript sees as `err.code`.

use std::io;

/// Everything the core can fail with. `code()` is the stable string a caller
/// can match on; messages may change between releases, codes do not.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A pattern failed validation; nothing was written.
    #[error("invalid pattern{}: {reason}", id.as_deref().map(|i| format!(" '{i}'")).unwrap_or_default())]
    InvalidPattern { id: Option<String>, reason: String },
    /// An agent configuration failed validation; nothing was written.
    #[error("invalid agent config: {0}")]
    InvalidAgentConfig(String),
    /// An argument (an id, a filter, an option of `open`) is out of its domain.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The instance was shut down.
    #[error("the pattern cache is closed")]
    Closed,
    /// SQLite reported an error.
    #[error("database error: {0}")]
    Db(#[from] rusqlite::Error),
    /// The database stayed locked by other writers past every retry.
    #[error("database busy: {0}")]
    DbBusy(String),
    /// The database was written by a newer release whose schema this one does not know.
    #[error("database schema version {found} is newer than this release supports ({supported})")]
    SchemaTooNew { found: i64, supported: i64 },
    /// A file system operation failed.
    #[error("i/o error ({context}): {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },
    /// The cache file failed an integrity or structure check.
    #[error("cache file corrupt: {0}")]
    CacheCorrupt(String),
    /// The cache file is of another format major version, or needs features
    /// (header flags) this release does not know.
    #[error("cache file incompatible: {0}")]
    CacheIncompatible(String),
    /// Tier 1 cannot serve and `fallbackToSQLite` is off.
    #[error("cache unavailable and fallback to SQLite is disabled: {0}")]
    CacheUnavailable(String),
    /// The remote (PostgreSQL) could not be reached, or the connection broke:
    /// nothing was written, there or locally (a write whose outcome is
    /// unknown is resolved by its key, or is `RemoteOutcomeUnknown`).
    /// Messages name host, port and database, never the password.
    #[error("remote unavailable: {0}")]
    RemoteUnavailable(String),
    /// A write was sent to the remote, and whether it was applied could not
    /// be learnt before the deadline (the remote stayed unreachable). It was
    /// applied at most once: the next `syncRemote()` shows whether it was.
    #[error("remote write outcome unknown (write key {key}): {detail}")]
    RemoteOutcomeUnknown { key: String, detail: String },
    /// The remote answered with an error (a permission, a missing schema).
    #[error("remote error: {0}")]
    Remote(String),
    /// A row on the remote fails validation: the sync stops before it, and
    /// the replica stays at its last good generation.
    #[error("invalid remote row {table} '{key}' (generation {generation}): {reason}")]
    RemoteInvalidRow {
        table: &'static str,
        key: String,
        generation: i64,
        reason: String,
    },
    /// This database and that remote do not belong together: a replica of
    /// another bank, local data that did not come from it, a remote schema
    /// newer than this release, or a write to a replica opened without `remote`.
    #[error("remote mismatch: {0}")]
    RemoteMismatch(String),
    /// A bug: a panic or a broken invariant. Reported rather than aborting the host.
    #[error("internal error: {0}")]
    Internal(String),
}

/// Every code an error can carry, in the order the README lists them: the
/// one list that JavaScript's `ERROR_CODES` is made from (`errorCodes()`).
pub const CODES: &[&str] = &[
    "INVALID_PATTERN",
    "INVALID_AGENT_CONFIG",
    "INVALID_ARGUMENT",
    "CLOSED",
    "DB_ERROR",
    "DB_BUSY",
    "SCHEMA_TOO_NEW",
    "IO_ERROR",
    "CACHE_CORRUPT",
    "CACHE_INCOMPATIBLE",
    "CACHE_UNAVAILABLE",
    "REMOTE_UNAVAILABLE",
    "REMOTE_OUTCOME_UNKNOWN",
    "REMOTE_ERROR",
    "REMOTE_INVALID_ROW",
    "REMOTE_MISMATCH",
    "INTERNAL",
];

impl Error {
    /// The stable code (see README, "Error codes").
    pub fn code(&self) -> &'static str {
        match self {
            Error::InvalidPattern { .. } => "INVALID_PATTERN",
            Error::InvalidAgentConfig(_) => "INVALID_AGENT_CONFIG",
            Error::InvalidArgument(_) => "INVALID_ARGUMENT",
            Error::Closed => "CLOSED",
            Error::Db(_) => "DB_ERROR",
            Error::DbBusy(_) => "DB_BUSY",
            Error::SchemaTooNew { .. } => "SCHEMA_TOO_NEW",
            Error::Io { .. } => "IO_ERROR",
            Error::CacheCorrupt(_) => "CACHE_CORRUPT",
            Error::CacheIncompatible(_) => "CACHE_INCOMPATIBLE",
            Error::CacheUnavailable(_) => "CACHE_UNAVAILABLE",
            Error::RemoteUnavailable(_) => "REMOTE_UNAVAILABLE",
            Error::RemoteOutcomeUnknown { .. } => "REMOTE_OUTCOME_UNKNOWN",
            Error::Remote(_) => "REMOTE_ERROR",
            Error::RemoteInvalidRow { .. } => "REMOTE_INVALID_ROW",
            Error::RemoteMismatch(_) => "REMOTE_MISMATCH",
            Error::Internal(_) => "INTERNAL",
        }
    }

    pub(crate) fn io(context: impl Into<String>, source: io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }

    pub(crate) fn invalid_pattern(id: &str, reason: impl Into<String>) -> Self {
        Error::InvalidPattern {
            id: (!id.is_empty()).then(|| id.to_owned()),
            reason: reason.into(),
        }
    }

    /// True for a cache-file problem the loader answers by falling back to SQLite.
    pub fn is_cache_problem(&self) -> bool {
        matches!(self, Error::CacheCorrupt(_) | Error::CacheIncompatible(_))
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The message a caught panic carried (for the `INTERNAL` error or event it becomes).
pub fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panic".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_stable_strings() {
        assert_eq!(Error::Closed.code(), "CLOSED");
        assert_eq!(Error::invalid_pattern("a", "x").code(), "INVALID_PATTERN");
        assert_eq!(Error::io("x", io::Error::other("y")).code(), "IO_ERROR");
        assert!(Error::invalid_pattern("p1", "bad").to_string().contains("'p1'"));
        assert!(!Error::invalid_pattern("", "bad").to_string().contains("''"));
    }

    #[test]
    fn every_code_is_listed_once() {
        let one_of_each = [
            Error::invalid_pattern("a", "x"),
            Error::InvalidAgentConfig("x".into()),
            Error::InvalidArgument("x".into()),
            Error::Closed,
            Error::Db(rusqlite::Error::InvalidQuery),
            Error::DbBusy("x".into()),
            Error::SchemaTooNew { found: 2, supported: 1 },
            Error::io("x", io::Error::other("y")),
            Error::CacheCorrupt("x".into()),
            Error::CacheIncompatible("x".into()),
            Error::CacheUnavailable("x".into()),
            Error::RemoteUnavailable("x".into()),
            Error::RemoteOutcomeUnknown {
                key: "k".into(),
                detail: "x".into(),
            },
            Error::Remote("x".into()),
            Error::RemoteInvalidRow {
                table: "patterns",
                key: "k".into(),
                generation: 1,
                reason: "x".into(),
            },
            Error::RemoteMismatch("x".into()),
            Error::Internal("x".into()),
        ];
        let codes: Vec<&str> = one_of_each.iter().map(Error::code).collect();
        assert_eq!(codes, CODES, "CODES lists every variant's code, in order");
    }
}

//! One write, whichever store takes it: the loader routes a validated
//! `Write` either to `apply` here (the local database is the truth) or to
//! `remote::writes::commit` (the remote is, and this database its replica).
//! The errors both sides give for the same bad write are made here.

use super::{queries, Database, Generation};
use crate::error::{Error, Result};
use crate::model::{AgentConfig, Pattern, Trigger};

/// One write, validated already.
#[derive(Debug, Clone, Copy)]
pub enum Write<'a> {
    /// (pattern, keep the stored created_at when the caller gave none)
    StorePatterns(&'a [(Pattern, bool)]),
    DeletePattern(&'a str),
    /// (id, success, at); `strict`: an unknown id fails the whole batch
    /// (recordUsages), else it writes nothing and reports "not found".
    RecordUsages {
        uses: &'a [(&'a str, bool, i64)],
        strict: bool,
    },
    StoreConfig(&'a AgentConfig),
    DeleteConfig(&'a str),
}

impl Write<'_> {
    /// What a committed write asks of the cache file: a rebuild for this
    /// reason, or (`None`, uses) nothing until counters pile up or the TTL.
    pub fn trigger(&self) -> Option<Trigger> {
        match self {
            Write::StorePatterns(_) => Some(Trigger::PatternStored),
            Write::DeletePattern(_) => Some(Trigger::PatternDeleted),
            Write::RecordUsages { .. } => None,
            Write::StoreConfig(_) | Write::DeleteConfig(_) => Some(Trigger::ConfigUpdated),
        }
    }
}

/// `recordUsages` named an id that is not there: the batch writes nothing.
pub fn unknown_use(id: &str) -> Error {
    Error::InvalidArgument(format!(
        "recordUsages: there is no pattern '{id}' (nothing was recorded)"
    ))
}

/// A batch whose embeddings are not of the dimension `store` holds.
pub fn other_dimension(first: &Pattern, held: usize, store: &str) -> Error {
    Error::invalid_pattern(
        &first.id,
        format!(
            "embedding has {} dimensions; the {store} holds {held}-dimensional embeddings",
            first.embedding.len()
        ),
    )
}

/// Commits `write` to the local database in one transaction (nothing on an
/// error). Returns whether it changed anything, and the generation after it
/// (which may include other processes' later writes: that only makes the
/// caller fresher).
pub fn apply(db: &Database, write: Write<'_>) -> Result<(bool, Generation)> {
    match write {
        // One use is one UPDATE, atomic by itself: the write lock is held
        // for it alone, not for a transaction around it.
        Write::RecordUsages {
            uses: &[(id, success, at)],
            strict: false,
        } => db.write_statement(|c| queries::record_usage(c, id, success, at), queries::generation),
        _ => db.write(|conn| Ok((apply_in(conn, write)?, queries::generation(conn)?))),
    }
}

/// `apply`'s statements, inside the caller's transaction.
fn apply_in(conn: &rusqlite::Connection, write: Write<'_>) -> Result<bool> {
    match write {
        Write::StorePatterns(patterns) => {
            let Some((first, _)) = patterns.first() else {
                return Ok(false);
            };
            if let Some(held) = queries::embedding_dim(conn)?.filter(|&d| d != first.embedding.len()) {
                return Err(other_dimension(first, held, "database"));
            }
            queries::upsert_patterns(conn, patterns)?;
            Ok(true)
        }
        Write::DeletePattern(id) => queries::delete_pattern(conn, id),
        Write::RecordUsages { uses, strict } => {
            let mut any = false;
            for &(id, success, at) in uses {
                let found = queries::record_usage(conn, id, success, at)?;
                if !found && strict {
                    return Err(unknown_use(id));
                }
                any |= found;
            }
            Ok(any)
        }
        Write::StoreConfig(config) => queries::upsert_config(conn, config).map(|()| true),
        Write::DeleteConfig(agent_id) => queries::delete_config(conn, agent_id),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Verdict;

    fn pattern(id: &str, dim: usize) -> Pattern {
        Pattern {
            id: id.into(),
            pattern_type: "unit".into(),
            domain: "d".into(),
            framework: "f".into(),
            content: "c".into(),
            embedding: vec![0.5; dim],
            coverage: None,
            flakiness_score: None,
            verdict: Verdict::Unknown,
            created_at: 1,
            last_used: None,
            usage_count: 0,
            success_count: 0,
            metadata_json: None,
        }
    }

    fn used<'a>(uses: &'a [(&'a str, bool, i64)]) -> Write<'a> {
        Write::RecordUsages { uses, strict: false }
    }

    fn open() -> (tempfile::TempDir, Database) {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::open(&dir.path().join("t.db")).unwrap().db;
        (dir, db)
    }

    #[test]
    fn each_write_changes_what_it_says_and_advances_the_generation() {
        let (_dir, db) = open();
        let stored = [(pattern("a", 3), false), (pattern("b", 3), false)];
        let (changed, g1) = apply(&db, Write::StorePatterns(&stored)).unwrap();
        assert!(changed);
        assert_eq!(g1.pattern_count, 2);
        let one = [("a", true, 5)];
        let (found, g2) = apply(&db, used(&one)).unwrap();
        assert!(found && g2.generation > g1.generation);
        let missing = [("zz", true, 5)];
        let (found, g3) = apply(&db, used(&missing)).unwrap();
        assert!(!found);
        assert_eq!(g3.generation, g2.generation, "an unknown id writes nothing");
        let (deleted, g4) = apply(&db, Write::DeletePattern("b")).unwrap();
        assert!(deleted && g4.pattern_count == 1);
        assert!(!apply(&db, Write::DeletePattern("b")).unwrap().0);
        let used = db.read(|c| queries::get_pattern(c, "a")).unwrap().unwrap();
        assert_eq!((used.usage_count, used.success_count, used.last_used), (1, 1, Some(5)));
    }

    #[test]
    fn a_bad_write_changes_nothing() {
        let (_dir, db) = open();
        apply(&db, Write::StorePatterns(&[(pattern("a", 3), false)])).unwrap();
        let before = db.generation().unwrap();
        let wider = [(pattern("w", 4), false)];
        let e = apply(&db, Write::StorePatterns(&wider)).unwrap_err();
        assert_eq!(e.code(), "INVALID_PATTERN");
        assert!(e.to_string().contains("the database holds 3-dimensional"), "{e}");
        let uses = [("a", true, 1), ("nope", false, 2)];
        let e = apply(
            &db,
            Write::RecordUsages {
                uses: &uses,
                strict: true,
            },
        )
        .unwrap_err();
        assert_eq!(e.code(), "INVALID_ARGUMENT");
        assert_eq!(db.generation().unwrap().generation, before.generation);
        let a = db.read(|c| queries::get_pattern(c, "a")).unwrap().unwrap();
        assert_eq!(a.usage_count, 0, "the batch's first use was rolled back");
    }

    #[test]
    fn triggers() {
        assert_eq!(Write::DeleteConfig("x").trigger(), Some(Trigger::ConfigUpdated));
        assert_eq!(
            Write::RecordUsages {
                uses: &[],
                strict: true
            }
            .trigger(),
            None
        );
        assert_eq!(Write::StorePatterns(&[]).trigger(), Some(Trigger::PatternStored));
    }
}

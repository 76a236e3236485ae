//! Writes on the remote: each is one call, in autocommit, of a function the
//! remote schema installs (`schema::writes_in_one_call`): it takes the
//! bank's lock, advances the generation, changes the rows, logs the
//! write's random key and notifies, all while the server executes, so no
//! lock is ever held across a round trip to a client that may vanish.
//!
//! The key makes a write exactly-once: when a call's outcome is unknown (a
//! timeout or a broken connection after it was sent), the caller looks the
//! key up (`lookup`) and re-sends the same write only when it is absent; a
//! late original and a re-sent copy cannot both commit (the key is unique).
//!
//! The call returns what the replica cannot know by itself (the created_at
//! a pattern kept, a used pattern's counters); the rest of the rows the
//! writer applies locally come from its own (validated) input.

use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{Client, Row};

use super::connect::Target;
use super::replica::RemoteState;
use super::rows::Change;
use crate::db::write::{other_dimension, unknown_use};
pub use crate::db::Write;
use crate::error::{Error, Result};
use crate::model::f32_bytes;

/// A write's random key, logged with it on the bank.
pub type WriteKey = [u8; 16];

/// A new random key.
pub fn new_key() -> Result<WriteKey> {
    let mut key = [0u8; 16];
    getrandom::fill(&mut key).map_err(|e| Error::Internal(format!("no random key for a write: {e}")))?;
    Ok(key)
}

/// The key as the errors and logs show it.
pub fn key_hex(key: &WriteKey) -> String {
    key.iter().map(|b| format!("{b:02x}")).collect()
}

/// A committed write: the remote state it made and the rows it left.
#[derive(Debug, Clone)]
pub struct Committed {
    pub state: RemoteState,
    pub changes: Vec<(i64, Change)>,
}

/// How one call of a write ended.
#[derive(Debug, Clone)]
pub enum Called {
    Committed(Committed),
    /// It changed nothing (an unknown id) and wrote nothing.
    Unchanged,
    /// The key is on the bank already: an earlier call of this write committed.
    AlreadyApplied,
    /// The server gave up on it (its lock or statement timeout): it was
    /// rolled back, nothing was written.
    Busy(String),
}

/// Sends `write` as one call. A server error means it was not applied; a
/// broken connection or a timeout (`RemoteUnavailable`) leaves it unknown.
pub async fn call(client: &Client, target: &Target, key: &WriteKey, write: Write<'_>) -> Result<Called> {
    let s = target.schema();
    let key = &key[..];
    let rows = match write {
        Write::StorePatterns(patterns) => {
            let col = |f: fn(&crate::model::Pattern) -> String| patterns.iter().map(|(p, _)| f(p)).collect::<Vec<_>>();
            let ids = col(|p| p.id.clone());
            let types = col(|p| p.pattern_type.clone());
            let domains = col(|p| p.domain.clone());
            let frameworks = col(|p| p.framework.clone());
            let contents = col(|p| p.content.clone());
            let verdicts = col(|p| p.verdict.as_str().to_owned());
            let embeddings: Vec<Vec<u8>> = patterns
                .iter()
                .map(|(p, _)| f32_bytes::to_le_bytes(&p.embedding))
                .collect();
            let coverage: Vec<Option<f64>> = patterns.iter().map(|(p, _)| p.coverage).collect();
            let flakiness: Vec<Option<f64>> = patterns.iter().map(|(p, _)| p.flakiness_score).collect();
            let created: Vec<i64> = patterns.iter().map(|(p, _)| p.created_at).collect();
            let last_used: Vec<Option<i64>> = patterns.iter().map(|(p, _)| p.last_used).collect();
            let usage: Vec<i64> = patterns.iter().map(|(p, _)| p.usage_count).collect();
            let success: Vec<i64> = patterns.iter().map(|(p, _)| p.success_count).collect();
            let metadata: Vec<Option<String>> = patterns.iter().map(|(p, _)| p.metadata_json.clone()).collect();
            let keep: Vec<bool> = patterns.iter().map(|(_, k)| *k).collect();
            let params: [(&(dyn ToSql + Sync), Type); 16] = [
                (&key, Type::BYTEA),
                (&ids, Type::TEXT_ARRAY),
                (&types, Type::TEXT_ARRAY),
                (&domains, Type::TEXT_ARRAY),
                (&frameworks, Type::TEXT_ARRAY),
                (&contents, Type::TEXT_ARRAY),
                (&embeddings, Type::BYTEA_ARRAY),
                (&coverage, Type::FLOAT8_ARRAY),
                (&flakiness, Type::FLOAT8_ARRAY),
                (&verdicts, Type::TEXT_ARRAY),
                (&created, Type::INT8_ARRAY),
                (&last_used, Type::INT8_ARRAY),
                (&usage, Type::INT8_ARRAY),
                (&success, Type::INT8_ARRAY),
                (&metadata, Type::TEXT_ARRAY),
                (&keep, Type::BOOL_ARRAY),
            ];
            let sql = format!("SELECT * FROM {s}.store_patterns({})", placeholders(params.len()));
            client.query_typed(&sql, &params).await
        }
        Write::DeletePattern(id) => {
            let sql = format!("SELECT * FROM {s}.delete_pattern($1, $2)");
            client
                .query_typed(&sql, &[(&key, Type::BYTEA), (&id, Type::TEXT)])
                .await
        }
        Write::RecordUsages { uses, strict } => {
            let ids: Vec<&str> = uses.iter().map(|u| u.0).collect();
            let successes: Vec<i64> = uses.iter().map(|u| i64::from(u.1)).collect();
            let ats: Vec<i64> = uses.iter().map(|u| u.2).collect();
            let sql = format!("SELECT * FROM {s}.record_uses($1, $2, $3, $4, $5)");
            client
                .query_typed(
                    &sql,
                    &[
                        (&key, Type::BYTEA),
                        (&ids, Type::TEXT_ARRAY),
                        (&successes, Type::INT8_ARRAY),
                        (&ats, Type::INT8_ARRAY),
                        (&strict, Type::BOOL),
                    ],
                )
                .await
        }
        Write::StoreConfig(c) => {
            let sql = format!("SELECT * FROM {s}.store_config($1, $2, $3, $4, $5, $6)");
            client
                .query_typed(
                    &sql,
                    &[
                        (&key, Type::BYTEA),
                        (&c.agent_id, Type::TEXT),
                        (&c.agent_type, Type::TEXT),
                        (&c.config_json, Type::TEXT),
                        (&c.version, Type::TEXT),
                        (&c.updated_at, Type::INT8),
                    ],
                )
                .await
        }
        Write::DeleteConfig(id) => {
            let sql = format!("SELECT * FROM {s}.delete_config($1, $2)");
            client
                .query_typed(&sql, &[(&key, Type::BYTEA), (&id, Type::TEXT)])
                .await
        }
    };
    let rows = match rows {
        Ok(rows) => rows,
        Err(e) => return refused(target, &e, write),
    };
    let Some(row) = rows.first() else {
        return Ok(Called::Unchanged);
    };
    let mut written = Written::read(row).map_err(|e| target.error(&e))?;
    let state = RemoteState::from_columns(
        target,
        written.generation,
        written.changed_at,
        std::mem::take(&mut written.source_id),
        std::mem::take(&mut written.head),
        0,
    )?;
    let changes = written.changes(write).ok_or_else(|| {
        Error::RemoteMismatch(format!(
            "{}: the bank's answer to a write does not match it (another schema at the same version?)",
            target.describe()
        ))
    })?;
    Ok(Called::Committed(Committed {
        state,
        changes: changes.into_iter().map(|c| (state.generation, c)).collect(),
    }))
}

/// A call the server refused: the write's own errors, a replayed key, or
/// whatever `target.error` makes of it.
fn refused(target: &Target, e: &tokio_postgres::Error, write: Write<'_>) -> Result<Called> {
    let Some(db) = e.as_db_error() else {
        return Err(target.error(e));
    };
    match (db.code().code(), write) {
        ("PCU01", _) => Err(unknown_use(db.message())),
        ("PCD01", Write::StorePatterns(patterns)) => match (patterns.first(), db.message().parse::<usize>()) {
            (Some((first, _)), Ok(held)) => Err(other_dimension(first, held, "bank")),
            _ => Err(target.error(e)),
        },
        ("23505", _) if db.constraint() == Some("writes_pkey") => Ok(Called::AlreadyApplied),
        ("55P03" | "57014", _) => Ok(Called::Busy(format!(
            "{} [{}] {}",
            target.describe(),
            db.code().code(),
            db.message()
        ))),
        _ => Err(target.error(e)),
    }
}

/// Whether the write with `key` is on the bank: its generation.
pub async fn lookup(client: &Client, target: &Target, key: &WriteKey) -> Result<Option<i64>> {
    client
        .query_typed_opt(
            &format!("SELECT generation FROM {}.writes WHERE key = $1", target.schema()),
            &[(&&key[..], Type::BYTEA)],
        )
        .await
        .map(|row| row.map(|r| r.get(0)))
        .map_err(|e| target.error(&e))
}

fn placeholders(n: usize) -> String {
    (1..=n).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ")
}

/// A write function's row (`schema::WRITTEN`).
struct Written {
    generation: i64,
    changed_at: i64,
    source_id: Vec<u8>,
    head: Vec<u8>,
    created_at: Option<Vec<i64>>,
    usage_count: Option<Vec<i64>>,
    success_count: Option<Vec<i64>>,
    last_used: Option<Vec<Option<i64>>>,
}

impl Written {
    fn read(row: &Row) -> std::result::Result<Written, tokio_postgres::Error> {
        Ok(Written {
            generation: row.try_get(0)?,
            changed_at: row.try_get(1)?,
            source_id: row.try_get(2)?,
            head: row.try_get(3)?,
            created_at: row.try_get(4)?,
            usage_count: row.try_get(5)?,
            success_count: row.try_get(6)?,
            last_used: row.try_get(7)?,
        })
    }

    /// The rows `write` left, from the caller's input and this answer;
    /// `None` when the answer does not fit the write (array lengths).
    fn changes(self, write: Write<'_>) -> Option<Vec<Change>> {
        Some(match write {
            Write::StorePatterns(patterns) => {
                let created = self.created_at.filter(|c| c.len() == patterns.len())?;
                patterns
                    .iter()
                    .zip(created)
                    .map(|((p, _), created_at)| {
                        let mut stored = p.clone();
                        stored.created_at = created_at;
                        Change::Pattern(stored)
                    })
                    .collect()
            }
            Write::DeletePattern(id) => vec![Change::PatternDeleted(id.to_owned())],
            Write::RecordUsages { uses, .. } => {
                let (usage, success, last) = (self.usage_count?, self.success_count?, self.last_used?);
                if usage.len() != uses.len() || success.len() != uses.len() || last.len() != uses.len() {
                    return None;
                }
                uses.iter()
                    .zip(usage.into_iter().zip(success).zip(last))
                    .map(
                        |(&(id, _, _), ((usage_count, success_count), last_used))| Change::Used {
                            id: id.to_owned(),
                            usage_count,
                            success_count,
                            last_used,
                        },
                    )
                    .collect()
            }
            Write::StoreConfig(c) => vec![Change::Config(c.clone())],
            Write::DeleteConfig(id) => vec![Change::ConfigDeleted(id.to_owned())],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_random_and_shown_in_hex() {
        let (a, b) = (new_key().unwrap(), new_key().unwrap());
        assert_ne!(a, b);
        assert_eq!(key_hex(&[0xab; 16]), "ab".repeat(16));
        assert_eq!(placeholders(3), "$1, $2, $3");
    }

    #[test]
    fn an_answer_that_does_not_fit_the_write_is_refused() {
        let answer = |usage: Vec<i64>| Written {
            generation: 1,
            changed_at: 1,
            source_id: vec![0; 16],
            head: Vec::new(),
            created_at: None,
            usage_count: Some(usage.clone()),
            success_count: Some(usage.clone()),
            last_used: Some(usage.into_iter().map(Some).collect()),
        };
        let uses = [("a", true, 5), ("b", false, 6)];
        let write = Write::RecordUsages {
            uses: &uses,
            strict: true,
        };
        assert!(answer(vec![1]).changes(write).is_none());
        let changes = answer(vec![3, 4]).changes(write).unwrap();
        assert_eq!(
            changes[1],
            Change::Used {
                id: "b".into(),
                usage_count: 4,
                success_count: 4,
                last_used: Some(4)
            }
        );
        assert!(
            answer(vec![]).changes(Write::StorePatterns(&[])).is_none(),
            "no created_at"
        );
    }
}

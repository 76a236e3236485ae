//! Writes on the remote: one transaction each. The transaction first bumps
//! `state.generation` (its row lock orders writers, so commit order is
//! generation order), then changes rows stamped with that generation,
//! notifies listeners, and returns the rows as they now are, so the writer
//! can apply them to its replica without pulling.

use tokio_postgres::types::Type;
use tokio_postgres::Client;

use super::connect::Target;
use super::replica::RemoteState;
use super::rows::{self, Change, CONFIG_COLUMNS, PATTERN_COLUMNS};
use super::schema::{CHANNEL, SCHEMA};
use crate::db::write::{other_dimension, unknown_use};
pub use crate::db::Write;
use crate::error::{Error, Result};
use crate::model::f32_bytes;
use crate::model::Pattern;

/// A committed write: the remote state it made and the rows it left.
#[derive(Debug, Clone)]
pub struct Committed {
    pub state: RemoteState,
    pub changes: Vec<(i64, Change)>,
}

/// Runs `write` in one remote transaction. `Ok(None)`: it changed nothing
/// (no such pattern), and was rolled back.
pub async fn commit(client: &Client, target: &Target, write: Write<'_>) -> Result<Option<Committed>> {
    let err = |e: tokio_postgres::Error| target.error(&e);
    // Round trips are most of a write's time: BEGIN and the generation bump
    // go out together, statements carry their parameter types (no prepare),
    // and the notification rides on the bump (NOTIFY is delivered at COMMIT,
    // and not at all when the write rolls back).
    let bump = format!(
        "UPDATE {SCHEMA}.state SET generation = generation + 1, \
         changed_at = greatest(changed_at, (extract(epoch FROM clock_timestamp()) * 1000)::bigint) \
         WHERE singleton RETURNING generation, changed_at, source_id, pg_notify('{CHANNEL}', (generation)::text)::text"
    );
    let (begun, bumped) =
        futures_util::future::join(client.batch_execute("BEGIN"), client.query_typed_one(&bump, &[])).await;
    let body = async {
        let row = match (begun, bumped) {
            (Ok(()), Ok(row)) => row,
            (Err(e), _) | (_, Err(e)) => return Err(err(e)),
        };
        let source: Vec<u8> = row.get(2);
        let state = RemoteState {
            generation: row.get(0),
            changed_at: row.get(1),
            source_id: source.try_into().map_err(|_| {
                Error::RemoteMismatch(format!("{}: state.source_id is not 16 bytes", target.describe()))
            })?,
        };
        let changed = change_rows(client, target, state.generation, write).await?;
        if changed.is_empty() {
            return Ok(None);
        }
        Ok(Some(Committed {
            state,
            changes: changed,
        }))
    }
    .await;
    match body {
        Ok(Some(committed)) => {
            client
                .batch_execute("COMMIT")
                .await
                .map_err(|e| match target.error(&e) {
                    Error::RemoteUnavailable(m) => Error::RemoteUnavailable(format!(
                    "{m} (the connection broke at COMMIT: the write may have been applied; syncRemote() will show it)"
                )),
                    other => other,
                })?;
            Ok(Some(committed))
        }
        other => {
            let _ = client.batch_execute("ROLLBACK").await;
            other
        }
    }
}

async fn change_rows(
    client: &Client,
    target: &Target,
    generation: i64,
    write: Write<'_>,
) -> Result<Vec<(i64, Change)>> {
    let err = |e: tokio_postgres::Error| target.error(&e);
    let s = SCHEMA;
    let returned = match write {
        Write::StorePatterns(patterns) => {
            if let Some(first) = patterns.first() {
                let held: Option<i32> = client
                    .query_typed_opt(
                        &format!("SELECT length(embedding) FROM {s}.patterns WHERE NOT deleted LIMIT 1"),
                        &[],
                    )
                    .await
                    .map_err(err)?
                    .map(|r| r.get(0));
                if let Some(d) = held.map(|b| b as usize / 4).filter(|&d| d != first.0.embedding.len()) {
                    return Err(other_dimension(&first.0, d, "bank"));
                }
            }
            store_patterns(client, target, generation, patterns).await?
        }
        Write::DeletePattern(id) => client
            .query_typed(
                &format!(
                    "UPDATE {s}.patterns SET deleted = true, generation = $1, type = NULL, domain = NULL, \
                     framework = NULL, content = NULL, embedding = NULL, coverage = NULL, flakiness_score = NULL, \
                     verdict = NULL, created_at = NULL, last_used = NULL, usage_count = 0, success_count = 0, \
                     metadata = NULL WHERE id = $2 AND NOT deleted RETURNING {PATTERN_COLUMNS}"
                ),
                &[(&generation, Type::INT8), (&id, Type::TEXT)],
            )
            .await
            .map_err(err)?,
        Write::RecordUsages { uses, strict } => {
            let statement = format!(
                "UPDATE {s}.patterns SET usage_count = usage_count + 1, success_count = success_count + $3, \
                 last_used = greatest(coalesce(last_used, $4), $4), generation = $1 \
                 WHERE id = $2 AND NOT deleted RETURNING {PATTERN_COLUMNS}"
            );
            // Sent all at once: tokio-postgres pipelines them on the connection, in order.
            let successes: Vec<i64> = uses.iter().map(|u| i64::from(u.1)).collect();
            let updates = uses.iter().zip(&successes).map(|(&(id, _, at), success)| {
                let statement = &statement;
                async move {
                    let params: [(&(dyn tokio_postgres::types::ToSql + Sync), Type); 4] = [
                        (&generation, Type::INT8),
                        (&id, Type::TEXT),
                        (success, Type::INT8),
                        (&at, Type::INT8),
                    ];
                    (id, client.query_typed_opt(statement, &params).await)
                }
            });
            let mut rows = Vec::with_capacity(uses.len());
            for (id, row) in futures_util::future::join_all(updates).await {
                match row.map_err(err)? {
                    Some(r) => rows.push(r),
                    None if strict => return Err(unknown_use(id)),
                    None => return Ok(Vec::new()),
                }
            }
            rows
        }
        Write::StoreConfig(c) => client
            .query_typed(
                &format!(
                    "INSERT INTO {s}.agent_configs ({CONFIG_COLUMNS}) VALUES ($1, $2, false, $3, $4, $5, $6) \
                     ON CONFLICT (agent_id) DO UPDATE SET generation = excluded.generation, deleted = false, \
                     type = excluded.type, config_json = excluded.config_json, version = excluded.version, \
                     updated_at = excluded.updated_at RETURNING {CONFIG_COLUMNS}"
                ),
                &[
                    (&c.agent_id, Type::TEXT),
                    (&generation, Type::INT8),
                    (&c.agent_type, Type::TEXT),
                    (&c.config_json, Type::TEXT),
                    (&c.version, Type::TEXT),
                    (&c.updated_at, Type::INT8),
                ],
            )
            .await
            .map_err(err)?,
        Write::DeleteConfig(id) => client
            .query_typed(
                &format!(
                    "UPDATE {s}.agent_configs SET deleted = true, generation = $1, type = NULL, config_json = NULL, \
                     version = NULL, updated_at = NULL WHERE agent_id = $2 AND NOT deleted RETURNING {CONFIG_COLUMNS}"
                ),
                &[(&generation, Type::INT8), (&id, Type::TEXT)],
            )
            .await
            .map_err(err)?,
    };
    let convert = match write {
        Write::StoreConfig(_) | Write::DeleteConfig(_) => rows::config,
        _ => rows::pattern,
    };
    returned.iter().map(|r| Ok((generation, convert(r)?))).collect()
}

/// All patterns of a batch in one statement (arrays unnested).
async fn store_patterns(
    client: &Client,
    target: &Target,
    generation: i64,
    patterns: &[(Pattern, bool)],
) -> Result<Vec<tokio_postgres::Row>> {
    let s = SCHEMA;
    let col = |f: fn(&Pattern) -> String| patterns.iter().map(|(p, _)| f(p)).collect::<Vec<_>>();
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
    client
        .query_typed(
            &format!(
                "INSERT INTO {s}.patterns ({PATTERN_COLUMNS})
                 SELECT u.id, $1, false, u.type, u.domain, u.framework, u.content, u.embedding, u.coverage,
                        u.flakiness_score, u.verdict,
                        CASE WHEN u.keep THEN coalesce(
                            (SELECT p.created_at FROM {s}.patterns p WHERE p.id = u.id AND NOT p.deleted), u.created_at)
                        ELSE u.created_at END,
                        u.last_used, u.usage_count, u.success_count, u.metadata
                 FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::bytea[],
                             $8::float8[], $9::float8[], $10::text[], $11::int8[], $12::int8[], $13::int8[],
                             $14::int8[], $15::text[], $16::bool[])
                   AS u(id, type, domain, framework, content, embedding, coverage, flakiness_score, verdict,
                        created_at, last_used, usage_count, success_count, metadata, keep)
                 ON CONFLICT (id) DO UPDATE SET generation = excluded.generation, deleted = false,
                   type = excluded.type, domain = excluded.domain, framework = excluded.framework,
                   content = excluded.content, embedding = excluded.embedding, coverage = excluded.coverage,
                   flakiness_score = excluded.flakiness_score, verdict = excluded.verdict,
                   created_at = excluded.created_at, last_used = excluded.last_used,
                   usage_count = excluded.usage_count, success_count = excluded.success_count,
                   metadata = excluded.metadata
                 RETURNING {PATTERN_COLUMNS}"
            ),
            &[
                (&generation, Type::INT8),
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
            ],
        )
        .await
        .map_err(|e| target.error(&e))
}

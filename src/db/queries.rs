//! Every SQL statement of the store. Reads order by id (SQLite's BINARY
//! collation compares UTF-8 bytes, the same order as Rust's `str`).

use rusqlite::{params, Connection, OptionalExtension, Row};

use super::Generation;
use crate::error::Result;
use crate::format::record::{EmbeddingRef, PatternRef};
use crate::model::f32_bytes;
use crate::model::{AgentConfig, Counters, IndexKind, Pattern, PatternFilter, Stats, Verdict};

const PATTERN_COLUMNS: &str = "id, type, domain, framework, content, embedding, coverage, \
     flakiness_score, verdict, created_at, last_used, usage_count, success_count, metadata";

/// A row as an owned pattern (the borrowed mapping, copied).
fn pattern_from_row(r: &Row<'_>) -> rusqlite::Result<Pattern> {
    pattern_ref(r).map(|p| p.to_owned())
}

fn config_from_row(r: &Row<'_>) -> rusqlite::Result<AgentConfig> {
    Ok(AgentConfig {
        agent_id: r.get(0)?,
        agent_type: r.get(1)?,
        config_json: r.get(2)?,
        version: r.get(3)?,
        updated_at: r.get(4)?,
    })
}

pub fn generation(conn: &Connection) -> Result<Generation> {
    let mut stmt = conn.prepare_cached(
        "SELECT generation, changed_at, pattern_count, source_id, log_floor FROM cache_state WHERE singleton = 1",
    )?;
    Ok(stmt.query_row([], |r| {
        Ok(Generation {
            generation: r.get::<_, i64>(0)? as u64,
            changed_at_ms: r.get(1)?,
            pattern_count: r.get::<_, i64>(2)?.max(0) as u64,
            source_id: r.get(3)?,
            log_floor: r.get::<_, i64>(4)?.max(0) as u64,
        })
    })?)
}

/// What changed after a generation: each changed key with its current row
/// (`None`: deleted), and the counters of patterns only used since, as of
/// `generation`.
#[derive(Debug, Clone, Default)]
pub struct Changes {
    pub generation: u64,
    pub patterns: Vec<(String, Option<Pattern>)>,
    pub configs: Vec<(String, Option<AgentConfig>)>,
    /// Patterns whose counters alone changed (not also in `patterns`).
    pub counters: Vec<(String, Counters)>,
}

/// The changes after generation `since`, or `None` when the log cannot tell
/// (pruned past `since`), more than `max` rows or more than `max_counters`
/// counters changed.
pub fn changes_since(conn: &Connection, since: u64, max: usize, max_counters: usize) -> Result<Option<Changes>> {
    let Some(mut changes) = content_changes_since(conn, since, max)? else {
        return Ok(None);
    };
    let since = i64::try_from(since).unwrap_or(i64::MAX);
    let used: i64 = conn.query_row(
        "SELECT count(*) FROM usage_changes WHERE generation > ?1",
        [since],
        |r| r.get(0),
    )?;
    if used as u64 > max_counters as u64 {
        return Ok(None);
    }
    if used == 0 {
        return Ok(Some(changes));
    }
    let mut stmt = conn.prepare_cached(
        "SELECT u.id, p.usage_count, p.success_count, p.last_used FROM usage_changes u JOIN patterns p ON p.id = u.id \
         WHERE u.generation > ?1 AND u.id NOT IN (SELECT id FROM pattern_changes WHERE generation > ?1)",
    )?;
    changes.counters = stmt
        .query_map([since], |r| {
            Ok((
                r.get::<_, String>(0)?,
                Counters {
                    usage_count: r.get(1)?,
                    success_count: r.get(2)?,
                    last_used: r.get(3)?,
                },
            ))
        })?
        .collect::<rusqlite::Result<_>>()?;
    Ok(Some(changes))
}

/// Whether anything but counters changed after `since` (a rebuild is due).
pub fn content_changed_since(conn: &Connection, since: u64) -> Result<bool> {
    let since = i64::try_from(since).unwrap_or(i64::MAX);
    Ok(conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM pattern_changes WHERE generation > ?1)
             OR EXISTS (SELECT 1 FROM config_changes WHERE generation > ?1)",
        [since],
        |r| r.get(0),
    )?)
}

/// How many patterns had only their counters change after `since`.
pub fn counter_changes_since(conn: &Connection, since: u64) -> Result<u64> {
    let since = i64::try_from(since).unwrap_or(i64::MAX);
    let n: i64 = conn.query_row(
        "SELECT count(*) FROM usage_changes WHERE generation > ?1",
        [since],
        |r| r.get(0),
    )?;
    Ok(n.max(0) as u64)
}

fn content_changes_since(conn: &Connection, since: u64, max: usize) -> Result<Option<Changes>> {
    let state = generation(conn)?;
    if since < state.log_floor {
        return Ok(None);
    }
    let since = i64::try_from(since).unwrap_or(i64::MAX);
    let changed: i64 = conn.query_row(
        "SELECT (SELECT count(*) FROM pattern_changes WHERE generation > ?1)
              + (SELECT count(*) FROM config_changes WHERE generation > ?1)",
        [since],
        |r| r.get(0),
    )?;
    if changed as u64 > max as u64 {
        return Ok(None);
    }
    if changed == 0 {
        return Ok(Some(Changes {
            generation: state.generation,
            ..Changes::default()
        }));
    }
    let mut ids = conn.prepare_cached("SELECT id FROM pattern_changes WHERE generation > ?1 ORDER BY id")?;
    let ids: Vec<String> = ids.query_map([since], |r| r.get(0))?.collect::<rusqlite::Result<_>>()?;
    let mut agents = conn.prepare_cached("SELECT agent_id FROM config_changes WHERE generation > ?1")?;
    let agents: Vec<String> = agents
        .query_map([since], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    Ok(Some(Changes {
        generation: state.generation,
        patterns: ids
            .into_iter()
            .map(|id| Ok((id.clone(), get_pattern(conn, &id)?)))
            .collect::<Result<_>>()?,
        configs: agents
            .into_iter()
            .map(|id| Ok((id.clone(), get_config(conn, &id)?)))
            .collect::<Result<_>>()?,
        counters: Vec::new(),
    }))
}

/// Drops log entries a rebuilt file at `built` no longer needs, once the log
/// holds more than `keep` keys. Readers of older files then rebuild or pick
/// up the new file instead of amending theirs.
pub fn prune_changes(conn: &Connection, built: u64, keep: usize) -> Result<()> {
    let n: i64 = conn.query_row(
        "SELECT (SELECT count(*) FROM pattern_changes) + (SELECT count(*) FROM config_changes)
              + (SELECT count(*) FROM usage_changes)",
        [],
        |r| r.get(0),
    )?;
    if (n as u64) <= keep as u64 {
        return Ok(());
    }
    let built = i64::try_from(built).unwrap_or(i64::MAX);
    conn.execute("DELETE FROM pattern_changes WHERE generation <= ?1", [built])?;
    conn.execute("DELETE FROM config_changes WHERE generation <= ?1", [built])?;
    conn.execute("DELETE FROM usage_changes WHERE generation <= ?1", [built])?;
    conn.execute(
        "UPDATE cache_state SET log_floor = max(log_floor, ?1) WHERE singleton = 1",
        [built],
    )?;
    Ok(())
}

/// Resets the trigger-kept pattern count to the true row count. Needed only
/// after another tool ran `REPLACE INTO patterns` (SQLite fires no delete
/// trigger for the replaced row, so that replace counted as an insert).
pub fn repair_pattern_count(conn: &Connection) -> Result<()> {
    conn.execute(
        "UPDATE cache_state SET pattern_count = (SELECT count(*) FROM patterns) \
         WHERE singleton = 1 AND pattern_count != (SELECT count(*) FROM patterns)",
        [],
    )?;
    Ok(())
}

pub fn get_pattern(conn: &Connection, id: &str) -> Result<Option<Pattern>> {
    let mut stmt = conn.prepare_cached(&format!("SELECT {PATTERN_COLUMNS} FROM patterns WHERE id = ?1"))?;
    Ok(stmt.query_row([id], pattern_from_row).optional()?)
}

pub fn by_index(conn: &Connection, kind: IndexKind, name: &str) -> Result<Vec<Pattern>> {
    let sql = format!(
        "SELECT {PATTERN_COLUMNS} FROM patterns WHERE {} = ?1 ORDER BY id",
        kind.column()
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map([name], pattern_from_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// `WHERE ...` matching every field the filter gives, and its arguments.
fn filter_clause(filter: &PatternFilter) -> (String, Vec<&str>) {
    let mut sql = String::from(" WHERE 1");
    let mut args: Vec<&str> = Vec::new();
    for (kind, value) in filter.fields() {
        args.push(value);
        sql.push_str(&format!(" AND {} = ?{}", kind.column(), args.len()));
    }
    (sql, args)
}

pub fn query(conn: &Connection, filter: &PatternFilter) -> Result<Vec<Pattern>> {
    let (clause, args) = filter_clause(filter);
    let mut sql = format!("SELECT {PATTERN_COLUMNS} FROM patterns{clause}");
    sql.push_str(" ORDER BY id");
    let limit = filter.limit.map(|l| i64::try_from(l).unwrap_or(i64::MAX)).unwrap_or(-1);
    sql.push_str(&format!(" LIMIT {limit}"));
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(rusqlite::params_from_iter(args), pattern_from_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// A pattern borrowed from SQLite's buffers for the current row.
fn pattern_ref<'r>(r: &'r Row<'_>) -> rusqlite::Result<PatternRef<'r>> {
    let text = |i: usize| -> rusqlite::Result<&str> { r.get_ref(i)?.as_str().map_err(|e| conversion(i, e)) };
    let blob = r.get_ref(5)?.as_blob().map_err(|e| conversion(5, e))?;
    Ok(PatternRef {
        id: text(0)?,
        pattern_type: text(1)?,
        domain: text(2)?,
        framework: text(3)?,
        content: text(4)?,
        embedding: EmbeddingRef::Le(blob),
        coverage: r.get(6)?,
        flakiness_score: r.get(7)?,
        verdict: Verdict::parse(text(8)?).unwrap_or_default(),
        created_at: r.get(9)?,
        last_used: r.get(10)?,
        usage_count: r.get(11)?,
        success_count: r.get(12)?,
        metadata_json: match r.get_ref(13)? {
            rusqlite::types::ValueRef::Null => None,
            v => Some(v.as_str().map_err(|e| conversion(13, e))?),
        },
    })
}

/// Every pattern in id order, borrowed from SQLite's row buffers and handed
/// to `each` one at a time (a cache build: no copy of any row is made).
pub fn for_each_pattern_ref(conn: &Connection, mut each: impl FnMut(&PatternRef<'_>) -> Result<()>) -> Result<()> {
    let mut stmt = conn.prepare(&format!("SELECT {PATTERN_COLUMNS} FROM patterns ORDER BY id"))?;
    let mut rows = stmt.query([])?;
    while let Some(r) = rows.next()? {
        each(&pattern_ref(r)?)?;
    }
    Ok(())
}

/// The id and embedding (little-endian f32 bytes) of every pattern that
/// matches the filter's fields, borrowed from SQLite's row buffers (a search).
pub fn for_each_embedding(
    conn: &Connection,
    filter: &PatternFilter,
    mut each: impl FnMut(&str, &[u8]) -> Result<()>,
) -> Result<()> {
    let (clause, args) = filter_clause(filter);
    let mut stmt = conn.prepare_cached(&format!("SELECT id, embedding FROM patterns{clause}"))?;
    let mut rows = stmt.query(rusqlite::params_from_iter(args))?;
    while let Some(r) = rows.next()? {
        let id = r.get_ref(0)?.as_str().map_err(|e| conversion(0, e))?;
        let blob = r.get_ref(1)?.as_blob().map_err(|e| conversion(1, e))?;
        each(id, blob)?;
    }
    Ok(())
}

/// The pattern with this id, borrowed, handed to `f` (`None`: absent).
pub fn with_pattern_ref<T>(conn: &Connection, id: &str, f: impl FnOnce(Option<&PatternRef<'_>>) -> T) -> Result<T> {
    let mut stmt = conn.prepare_cached(&format!("SELECT {PATTERN_COLUMNS} FROM patterns WHERE id = ?1"))?;
    let mut rows = stmt.query([id])?;
    match rows.next()? {
        Some(r) => Ok(f(Some(&pattern_ref(r)?))),
        None => Ok(f(None)),
    }
}

fn conversion(column: usize, e: rusqlite::types::FromSqlError) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(column, rusqlite::types::Type::Text, Box::new(e))
}

pub fn all_configs(conn: &Connection) -> Result<Vec<AgentConfig>> {
    let mut stmt =
        conn.prepare("SELECT agent_id, type, config_json, version, updated_at FROM agent_configs ORDER BY agent_id")?;
    let rows = stmt.query_map([], config_from_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

pub fn get_config(conn: &Connection, agent_id: &str) -> Result<Option<AgentConfig>> {
    let mut stmt = conn.prepare_cached(
        "SELECT agent_id, type, config_json, version, updated_at FROM agent_configs WHERE agent_id = ?1",
    )?;
    Ok(stmt.query_row([agent_id], config_from_row).optional()?)
}

/// The embedding dimension the database holds (None when it has no pattern).
pub fn embedding_dim(conn: &Connection) -> Result<Option<usize>> {
    let len: Option<i64> = conn
        .query_row("SELECT length(embedding) FROM patterns LIMIT 1", [], |r| r.get(0))
        .optional()?;
    Ok(len.map(|l| l as usize / 4))
}

/// Inserts or replaces validated patterns. `created_at` of an existing
/// pattern is kept when the caller gave none (`keep_created` marks those).
pub fn upsert_patterns(conn: &Connection, patterns: &[(Pattern, bool)]) -> Result<()> {
    for (p, keep_created) in patterns {
        upsert_pattern(conn, p, *keep_created)?;
    }
    Ok(())
}

/// `upsert_patterns` of one.
pub fn upsert_pattern(conn: &Connection, p: &Pattern, keep_created: bool) -> Result<()> {
    let mut stmt = conn.prepare_cached(&format!(
        "INSERT INTO patterns ({PATTERN_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)
         ON CONFLICT(id) DO UPDATE SET
           type = excluded.type, domain = excluded.domain, framework = excluded.framework,
           content = excluded.content, embedding = excluded.embedding, coverage = excluded.coverage,
           flakiness_score = excluded.flakiness_score, verdict = excluded.verdict,
           created_at = CASE WHEN ?15 THEN patterns.created_at ELSE excluded.created_at END,
           last_used = excluded.last_used, usage_count = excluded.usage_count,
           success_count = excluded.success_count, metadata = excluded.metadata"
    ))?;
    stmt.execute(params![
        p.id,
        p.pattern_type,
        p.domain,
        p.framework,
        p.content,
        f32_bytes::to_le_bytes(&p.embedding),
        p.coverage,
        p.flakiness_score,
        p.verdict.as_str(),
        p.created_at,
        p.last_used,
        p.usage_count,
        p.success_count,
        p.metadata_json,
        keep_created,
    ])?;
    Ok(())
}

pub fn delete_pattern(conn: &Connection, id: &str) -> Result<bool> {
    Ok(conn.execute("DELETE FROM patterns WHERE id = ?1", [id])? > 0)
}

pub fn upsert_config(conn: &Connection, c: &AgentConfig) -> Result<()> {
    conn.execute(
        "INSERT INTO agent_configs (agent_id, type, config_json, version, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT(agent_id) DO UPDATE SET type = excluded.type, config_json = excluded.config_json,
           version = excluded.version, updated_at = excluded.updated_at",
        params![c.agent_id, c.agent_type, c.config_json, c.version, c.updated_at],
    )?;
    Ok(())
}

/// One use of a pattern, in one statement (atomic against every other
/// writer): false when there is no such pattern.
pub fn record_usage(conn: &Connection, id: &str, success: bool, at: i64) -> Result<bool> {
    let mut stmt = conn.prepare_cached(
        "UPDATE patterns SET usage_count = usage_count + 1, success_count = success_count + ?2, \
         last_used = max(coalesce(last_used, ?3), ?3) WHERE id = ?1",
    )?;
    Ok(stmt.execute(params![id, i64::from(success), at])? == 1)
}

/// Sets a pattern's counters to what the bank says they are after a use
/// (a replica applying its own write): false when there is no such pattern.
pub fn set_counters(
    conn: &Connection,
    id: &str,
    usage_count: i64,
    success_count: i64,
    last_used: Option<i64>,
) -> Result<bool> {
    let mut stmt =
        conn.prepare_cached("UPDATE patterns SET usage_count = ?2, success_count = ?3, last_used = ?4 WHERE id = ?1")?;
    Ok(stmt.execute(params![id, usage_count, success_count, last_used])? == 1)
}

/// Counts by GROUP BY (tier 2's `getStats`).
pub fn stats(conn: &Connection) -> Result<Stats> {
    let mut stats = Stats {
        dimension: embedding_dim(conn)?.unwrap_or(0) as u32,
        agent_config_count: conn
            .query_row("SELECT count(*) FROM agent_configs", [], |r| r.get::<_, i64>(0))?
            .max(0) as u64,
        ..Stats::with_every_verdict()
    };
    for (column, map) in [
        ("domain", &mut stats.by_domain),
        ("type", &mut stats.by_type),
        ("framework", &mut stats.by_framework),
        ("verdict", &mut stats.by_verdict),
    ] {
        let mut stmt = conn.prepare_cached(&format!("SELECT {column}, count(*) FROM patterns GROUP BY {column}"))?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
        for row in rows {
            let (name, n) = row?;
            map.insert(name, n.max(0) as u64);
        }
    }
    stats.pattern_count = stats.by_domain.values().sum();
    Ok(stats)
}

/// Up to `limit` patterns matching the filter with ids after `after`, in id
/// order (keyset paging).
pub fn page(conn: &Connection, filter: &PatternFilter, after: Option<&str>, limit: usize) -> Result<Vec<Pattern>> {
    let (clause, mut args) = filter_clause(filter);
    let mut sql = format!("SELECT {PATTERN_COLUMNS} FROM patterns{clause}");
    if let Some(after) = after {
        args.push(after);
        sql.push_str(&format!(" AND id > ?{}", args.len()));
    }
    sql.push_str(&format!(
        " ORDER BY id LIMIT {}",
        i64::try_from(limit).unwrap_or(i64::MAX)
    ));
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(rusqlite::params_from_iter(args), pattern_from_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

pub fn delete_config(conn: &Connection, agent_id: &str) -> Result<bool> {
    Ok(conn.execute("DELETE FROM agent_configs WHERE agent_id = ?1", [agent_id])? == 1)
}

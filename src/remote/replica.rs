//! The local SQLite database as a replica of the remote.
//!
//! A sync pass, under the machine's sync lock (`<db>.sync-lock`, an
//! exclusive `flock`, so one pass at a time on a machine):
//! 1. opens one REPEATABLE READ snapshot on the remote and reads its
//!    generation R;
//! 2. pulls the pattern and config rows newer than the replica's generation
//!    G, in keyset pages of (generation, key), tombstones included;
//! 3. applies them in one local transaction with the triggers pinned to R,
//!    so every change is logged at R and the local generation ends at R.
//!
//! The replica therefore only ever holds exact remote generations (a reader
//! sees G or R, never between), its generation is the remote's, and a pass
//! killed halfway leaves G untouched (SQLite rolls the transaction back).
//! The header fields a cache file takes from the database (generation, time
//! of the last change, source identity) all come from the remote, so every
//! replica at R builds the same bytes.

use std::fs::File;
use std::path::Path;

use rusqlite::{params, Connection, OptionalExtension};
use tokio::runtime::Runtime;
use tokio_postgres::types::Type;
use tokio_postgres::Client;

use super::connect::Target;
use super::history::{chain, divergence};
pub use super::history::{read_state, RemoteState, Reset};
use super::rows::{self, Change};
use crate::db::{queries, schema, Database, Generation};
use crate::error::{Error, Result};
use crate::fsutil;

/// How often an idle pass records its time for the machine's other processes.
const IDLE_NOTE_EVERY_MS: i64 = 30_000;
/// Rows per pulled page.
const PAGE_ROWS: i64 = 1000;
/// Past this many changed rows a pass applies them with the change triggers
/// dropped (and made again at its end): the log could not amend a cache file
/// with that many changes anyway (the overlay holds up to 4,096 keys), so
/// readers rebuild, and an initial sync costs about half as much.
const QUIET_PASS_ROWS: i64 = 4096;

/// What a sync pass did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyncOutcome {
    pub from_generation: u64,
    pub to_generation: u64,
    pub rows_applied: u64,
    /// The local database after the pass.
    pub local: Generation,
    /// Set when the pass reset the replica to the bank (its history was not
    /// the bank's), rather than moving it forward.
    pub reset: Option<Reset>,
}

/// The replica side of the local database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalReplica {
    /// The bank this database replicates (`None`: not bound yet).
    pub bound_to: Option<[u8; 16]>,
    pub generation: u64,
    pub holds_data: bool,
    /// The bank's chain head at `generation`, as the last pass saw it.
    pub head: Option<[u8; 32]>,
}

pub fn local_replica(conn: &Connection) -> Result<LocalReplica> {
    let (bound_to, head): (Option<Vec<u8>>, Option<Vec<u8>>) = conn
        .query_row("SELECT source_id, head FROM replica_of WHERE singleton = 1", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .optional()?
        .unwrap_or_default();
    let generation = queries::generation(conn)?.generation;
    let holds_data: bool = conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM patterns) OR EXISTS (SELECT 1 FROM agent_configs)",
        [],
        |r| r.get(0),
    )?;
    Ok(LocalReplica {
        bound_to: bound_to.and_then(|b| b.try_into().ok()),
        generation,
        holds_data,
        head: head.and_then(|h| h.try_into().ok()),
    })
}

/// Whether this database replicates a remote bank (its writes must go there).
pub fn is_replica(conn: &Connection) -> Result<bool> {
    let mut stmt = conn.prepare_cached("SELECT EXISTS (SELECT 1 FROM replica_of)")?;
    Ok(stmt.query_row([], |r| r.get(0))?)
}

/// Checks that `local` can replicate `remote`: bound to it, or not bound
/// and empty (it binds at its first pass).
pub fn check_pairing(local: &LocalReplica, remote: &RemoteState, target: &Target) -> Result<()> {
    match local.bound_to {
        // A bank behind this replica, or of another history, is the pass's
        // to find (`divergence`) and answer with a reset.
        Some(id) if id == remote.source_id => Ok(()),
        Some(_) => Err(Error::RemoteMismatch(format!(
            "this database is a replica of another bank than {}; use another dbPath",
            target.describe()
        ))),
        None if local.holds_data => Err(Error::RemoteMismatch(format!(
            "this database holds patterns that did not come from {}; a replica starts empty \
             (move them over with `pattern-cache export` and `pattern-cache import --remote`)",
            target.describe()
        ))),
        None => Ok(()),
    }
}

/// Records when a pass (of any process on this machine) last saw the remote, and at which generation.
fn note_pass(conn: &Connection, remote_generation: i64) -> Result<()> {
    let mut stmt =
        conn.prepare_cached("UPDATE replica_of SET synced_at = ?1, remote_generation = ?2 WHERE singleton = 1")?;
    stmt.execute(params![crate::clock::now_ms(), remote_generation])?;
    Ok(())
}

/// (Unix ms, remote generation) of this machine's last pass; `None` before the first.
pub fn last_pass(conn: &Connection) -> Result<Option<(i64, u64)>> {
    let mut stmt = conn.prepare_cached("SELECT synced_at, remote_generation FROM replica_of WHERE singleton = 1")?;
    Ok(stmt
        .query_row([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?.max(0) as u64)))
        .optional()?)
}

/// The machine-wide lock one sync pass holds (released when dropped).
pub fn lock_passes(db_path: &Path) -> Result<File> {
    let name = fsutil::with_suffix(db_path, ".sync-lock");
    let file = fsutil::open_lock_file(&name)?;
    file.lock()
        .map_err(|e| Error::io(format!("locking {}", name.display()), e))?;
    Ok(file)
}

/// Applies validated changes inside the caller's transaction. `dim` is the
/// embedding dimension the replica holds (updated as rows come).
fn apply(conn: &Connection, changes: &[(i64, Change)], dim: &mut Option<usize>) -> Result<()> {
    for (generation, change) in changes {
        match change {
            Change::Pattern(p) => {
                if dim.is_some_and(|d| d != p.embedding.len()) {
                    // Deletes earlier in the pass may have emptied the other dimension.
                    *dim = dimension_besides(conn, &p.id)?;
                    if let Some(d) = dim.filter(|&d| d != p.embedding.len()) {
                        return Err(Error::RemoteInvalidRow {
                            table: "pattern_cache.patterns",
                            key: p.id.clone(),
                            generation: *generation,
                            reason: format!(
                                "embedding has {} dimensions; the bank holds {d}-dimensional embeddings",
                                p.embedding.len()
                            ),
                        });
                    }
                }
                *dim = Some(p.embedding.len());
                queries::upsert_pattern(conn, p, false)?;
            }
            Change::PatternDeleted(id) => {
                queries::delete_pattern(conn, id)?;
            }
            Change::Config(c) => queries::upsert_config(conn, c)?,
            Change::ConfigDeleted(id) => {
                queries::delete_config(conn, id)?;
            }
            Change::Used {
                id,
                usage_count,
                success_count,
                last_used,
            } => {
                queries::set_counters(conn, id, *usage_count, *success_count, *last_used)?;
            }
        }
    }
    Ok(())
}

fn dimension_besides(conn: &Connection, id: &str) -> Result<Option<usize>> {
    let len: Option<i64> = conn
        .query_row(
            "SELECT length(embedding) FROM patterns WHERE id <> ?1 LIMIT 1",
            [id],
            |r| r.get(0),
        )
        .optional()?;
    Ok(len.map(|l| l as usize / 4))
}

/// Pins the triggers to `to` (a `big` pass defers its checkpoint; a `quiet`
/// one drops the change triggers for the transaction, and sets the log's
/// floor to `to`, so that readers of older files rebuild; binding the database to the bank first when
/// it is not yet), runs `body`, then sets the generation and time to the
/// remote's.
fn in_pinned_transaction(
    db: &Database,
    local: &LocalReplica,
    remote: &RemoteState,
    big: bool,
    quiet: bool,
    reset: Option<Reset>,
    body: impl FnOnce(&Connection) -> Result<u64>,
) -> Result<SyncOutcome> {
    db.write_once(big, |conn| {
        if local.bound_to.is_none() {
            conn.execute(
                "INSERT INTO replica_of (singleton, source_id) VALUES (1, ?1)",
                [&remote.source_id[..]],
            )?;
            // Files and logs of the database's life before are of another source now.
            conn.execute_batch("DELETE FROM pattern_changes; DELETE FROM usage_changes; DELETE FROM config_changes;")?;
            conn.execute(
                "UPDATE cache_state SET source_id = ?1, log_floor = 0 WHERE singleton = 1",
                [&remote.source_id[..]],
            )?;
        }
        conn.execute(
            "UPDATE cache_state SET pinned = ?1 WHERE singleton = 1",
            [remote.generation],
        )?;
        let triggers = if quiet { schema::change_triggers() } else { Vec::new() };
        for (name, _) in &triggers {
            conn.execute_batch(&format!("DROP TRIGGER {name}"))?;
        }
        let applied = body(conn)?;
        if quiet {
            for (_, create) in &triggers {
                conn.execute_batch(create)?;
            }
            conn.execute_batch(
                "DELETE FROM pattern_changes; DELETE FROM usage_changes; DELETE FROM config_changes;",
            )?;
            conn.execute(
                "UPDATE cache_state SET log_floor = ?1, pattern_count = (SELECT count(*) FROM patterns) WHERE singleton = 1",
                [remote.generation],
            )?;
        }
        conn.execute(
            "UPDATE cache_state SET pinned = NULL, generation = ?1, changed_at = ?2 WHERE singleton = 1",
            params![remote.generation, remote.changed_at],
        )?;
        note_pass(conn, remote.generation)?;
        conn.execute(
            "UPDATE replica_of SET head = ?1 WHERE singleton = 1",
            [remote.head.as_ref().map(|h| &h[..])],
        )?;
        Ok(SyncOutcome {
            from_generation: local.generation,
            to_generation: remote.generation as u64,
            rows_applied: applied,
            local: queries::generation(conn)?,
            reset,
        })
    })
}

/// One pass: brings the replica to the remote's newest generation. The
/// caller holds `lock_passes`.
pub fn pull(rt: &Runtime, client: &Client, target: &Target, db: &Database) -> Result<SyncOutcome> {
    let local = db.read(local_replica)?;
    let statement = |sql: &'static str| {
        rt.block_on(super::timed(target, async {
            client.batch_execute(sql).await.map_err(|e| target.error(&e))
        }))
    };
    statement("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")?;
    match pull_in_snapshot(rt, client, target, db, &local) {
        // A read-only snapshot has nothing to commit; it ends either way.
        Ok(outcome) => statement("COMMIT").map(|()| outcome),
        // A broken connection is dropped by the caller, its snapshot with it.
        Err(e @ Error::RemoteUnavailable(_)) => Err(e),
        Err(e) => {
            let _ = statement("ROLLBACK");
            Err(e)
        }
    }
}

fn pull_in_snapshot(
    rt: &Runtime,
    client: &Client,
    target: &Target,
    db: &Database,
    local: &LocalReplica,
) -> Result<SyncOutcome> {
    let remote = rt.block_on(super::timed(target, read_state(client, target)))?;
    check_pairing(local, &remote, target)?;
    let reset = rt.block_on(super::timed(target, divergence(client, target, local, &remote)))?;
    // A replica that follows the bank pulls what came after it; one that
    // does not takes the whole bank again (a reset).
    let follows = local.bound_to.is_some() && reset.is_none();
    let since = if follows { local.generation as i64 } else { 0 };
    if follows && remote.generation == since {
        // An idle poll writes nothing, but now and then the time of the
        // last pass, which the machine's other processes report.
        let noted = db.read(last_pass)?.map_or(0, |(at, _)| at);
        if crate::clock::now_ms() - noted >= IDLE_NOTE_EVERY_MS {
            db.write_statement(|c| note_pass(c, remote.generation), |_| Ok(()))?;
        }
        return Ok(SyncOutcome {
            from_generation: local.generation,
            to_generation: local.generation,
            rows_applied: 0,
            local: db.generation()?,
            reset: None,
        });
    }
    // Pages are fetched and validated on a thread of their own while the
    // previous page is applied, so the pass costs about the larger of the two.
    let pending: i64 = rt
        .block_on(super::timed(target, async {
            client
                .query_typed_one(
                    &format!(
                        "SELECT (SELECT count(*) FROM {s}.patterns WHERE generation > $1) \
                         + (SELECT count(*) FROM {s}.agent_configs WHERE generation > $1)",
                        s = target.schema()
                    ),
                    &[(&since, Type::INT8)],
                )
                .await
                .map_err(|e| target.error(&e))
        }))?
        .get(0);
    // A reset runs quiet: its changes are logged nowhere, and the log's
    // floor at its generation makes every older cache file rebuild.
    let quiet = reset.is_some() || pending > QUIET_PASS_ROWS;
    std::thread::scope(|scope| {
        let (pages, next_page) = std::sync::mpsc::sync_channel::<Result<Vec<(i64, Change)>>>(2);
        scope.spawn(move || fetch_pages(rt, client, target, since, &pages));
        in_pinned_transaction(db, local, &remote, true, quiet, reset, |conn| {
            if reset.is_some() {
                // The bank's whole content replaces the replica's (triggers
                // are off: nothing is logged, and the count is redone).
                conn.execute_batch("DELETE FROM patterns; DELETE FROM agent_configs;")?;
            }
            let mut dim = queries::embedding_dim(conn)?;
            let mut applied = 0u64;
            for page in next_page {
                let changes = page?;
                if let Some(&(g, _)) = changes.iter().find(|(g, _)| *g > remote.generation) {
                    return Err(Error::RemoteMismatch(format!(
                        "{}: a row carries generation {g}, past the bank's {}",
                        target.describe(),
                        remote.generation
                    )));
                }
                apply(conn, &changes, &mut dim)?;
                applied += changes.len() as u64;
                crate::faults::hit(crate::faults::Step::ReplicaPage)
                    .map_err(|e| Error::io("applying a page of remote rows", e))?;
            }
            Ok(applied)
        })
    })
}

/// Sends the changed pattern rows, then config rows, after `since`, a
/// validated page at a time; stops at the first error (sent) or when the
/// receiver is gone.
fn fetch_pages(
    rt: &Runtime,
    client: &Client,
    target: &Target,
    since: i64,
    pages: &std::sync::mpsc::SyncSender<Result<Vec<(i64, Change)>>>,
) {
    let patterns_sql = rows::changed_patterns_sql(target.schema(), PAGE_ROWS);
    let configs_sql = rows::changed_configs_sql(target.schema(), PAGE_ROWS);
    for (sql, convert) in [
        (
            &patterns_sql,
            rows::pattern as fn(&tokio_postgres::Row) -> Result<Change>,
        ),
        (&configs_sql, rows::config),
    ] {
        let mut after = (since, String::new());
        loop {
            let page = rt
                .block_on(super::timed(target, async {
                    client
                        .query_typed(
                            sql.as_str(),
                            &[(&since, Type::INT8), (&after.0, Type::INT8), (&after.1, Type::TEXT)],
                        )
                        .await
                        .map_err(|e| target.error(&e))
                }))
                .and_then(|page| {
                    if let Some(last) = page.last() {
                        after = (last.try_get(1).unwrap_or(i64::MAX), last.try_get(0).unwrap_or_default());
                    }
                    let full = page.len() as i64 == PAGE_ROWS;
                    let changes = page
                        .iter()
                        .map(|row| Ok((row.try_get::<_, i64>(1).unwrap_or(-1), convert(row)?)))
                        .collect::<Result<Vec<_>>>()?;
                    Ok((changes, full))
                });
            match page {
                Ok((changes, full)) => {
                    let empty = changes.is_empty();
                    if !empty && pages.send(Ok(changes)).is_err() {
                        return;
                    }
                    if !full {
                        break;
                    }
                }
                Err(e) => {
                    let _ = pages.send(Err(e));
                    return;
                }
            }
        }
    }
}

/// After this machine's own write committed remotely as `generation` with
/// `changes`: when the replica is right behind it, applies those rows
/// (no pull); otherwise pulls. The caller holds `lock_passes`.
pub fn apply_own_write(
    rt: &Runtime,
    client: &Client,
    target: &Target,
    db: &Database,
    remote: &RemoteState,
    key: &[u8; 16],
    changes: &[(i64, Change)],
) -> Result<SyncOutcome> {
    let local = db.read(local_replica)?;
    let next = local.generation + 1 == remote.generation as u64;
    // Right after the replica in the bank's history too: the write's head
    // follows from the replica's (unless the replica's is not known).
    let chained = local.head.is_none_or(|h| remote.head == Some(chain(&h, key)));
    if local.bound_to != Some(remote.source_id) || !next || !chained {
        return pull(rt, client, target, db);
    }
    in_pinned_transaction(db, &local, remote, false, false, None, |conn| {
        let mut dim = queries::embedding_dim(conn)?;
        apply(conn, changes, &mut dim)?;
        Ok(changes.len() as u64)
    })
}

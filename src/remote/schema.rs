//! The remote's tables, in a PostgreSQL schema of their own, and their
//! forward-only migrations: one transaction each, under an advisory lock so
//! that machines starting at once migrate exactly once.
//!
//! Every change advances `state.generation` in the same transaction (the
//! row lock on `state` serializes writers, so commit order is generation
//! order); changed rows carry that generation; deletes leave tombstones
//! (`deleted`), so a replica pulls "everything after generation G" and
//! nothing else.

use tokio_postgres::Client;

use super::connect::Target;
use crate::error::{Error, Result};

/// The schema the package owns on the remote.
pub const SCHEMA: &str = "pattern_cache";
/// The NOTIFY channel: the payload is the new generation.
pub const CHANNEL: &str = "pattern_cache";
/// pg_advisory_xact_lock key for migrations ("pcmigrat" in ASCII).
const MIGRATION_LOCK: i64 = 0x7063_6d69_6772_6174;

fn migrations() -> Vec<String> {
    let s = SCHEMA;
    vec![format!(
        "CREATE TABLE {s}.state (
            singleton  boolean PRIMARY KEY CHECK (singleton),
            generation bigint  NOT NULL,
            -- server time (Unix ms) of the latest change: cache files built at a generation carry it
            changed_at bigint  NOT NULL,
            -- the bank's identity: every replica's cache files carry it
            source_id  bytea   NOT NULL
        );
        INSERT INTO {s}.state VALUES (true, 0, (extract(epoch FROM clock_timestamp()) * 1000)::bigint,
            decode(md5(random()::text || clock_timestamp()::text || pg_backend_pid()::text), 'hex'));
        CREATE TABLE {s}.patterns (
            id              text    PRIMARY KEY,
            generation      bigint  NOT NULL,
            deleted         boolean NOT NULL DEFAULT false,
            type            text,
            domain          text,
            framework       text,
            content         text,
            embedding       bytea,
            coverage        double precision,
            flakiness_score double precision,
            verdict         text,
            created_at      bigint,
            last_used       bigint,
            usage_count     bigint  NOT NULL DEFAULT 0,
            success_count   bigint  NOT NULL DEFAULT 0,
            metadata        text
        );
        CREATE INDEX patterns_by_generation ON {s}.patterns (generation, id);
        CREATE TABLE {s}.agent_configs (
            agent_id    text    PRIMARY KEY,
            generation  bigint  NOT NULL,
            deleted     boolean NOT NULL DEFAULT false,
            type        text,
            config_json text,
            version     text,
            updated_at  bigint
        );
        CREATE INDEX agent_configs_by_generation ON {s}.agent_configs (generation, agent_id);"
    )]
}

/// The remote schema version this release writes.
pub fn latest_version() -> i64 {
    migrations().len() as i64
}

/// The version the remote is at (0: no schema yet), read without locks or DDL.
async fn version(client: &Client, target: &Target) -> Result<i64> {
    let exists: bool = client
        .query_one(
            "SELECT to_regclass($1) IS NOT NULL",
            &[&format!("{SCHEMA}.schema_migrations")],
        )
        .await
        .map_err(|e| target.error(&e))?
        .get(0);
    if !exists {
        return Ok(0);
    }
    let v: Option<i32> = client
        .query_one(&format!("SELECT max(version) FROM {SCHEMA}.schema_migrations"), &[])
        .await
        .map_err(|e| target.error(&e))?
        .get(0);
    Ok(i64::from(v.unwrap_or(0)))
}

/// Checks the remote is at this release's version; migrates it when it is
/// behind and `migrate` is allowed. Returns the version found.
pub async fn ensure(client: &Client, target: &Target, migrate: bool) -> Result<i64> {
    let found = version(client, target).await?;
    let latest = latest_version();
    if found > latest {
        return Err(Error::RemoteMismatch(format!(
            "the remote schema {SCHEMA} is at version {found}; this release knows up to {latest}: upgrade pattern-cache"
        )));
    }
    if found == latest {
        return Ok(found);
    }
    if !migrate {
        return Err(Error::Remote(format!(
            "the remote schema {SCHEMA} is at version {found}; this release needs {latest}: run `pattern-cache remote migrate`"
        )));
    }
    run(client, target).await.map_err(|e| match e {
        Error::Remote(m) if m.contains("[42501]") => Error::Remote(format!(
            "{m}: this role may not create the schema; run `pattern-cache remote migrate` as its owner (see README, \"A shared bank\")"
        )),
        other => other,
    })?;
    Ok(found)
}

/// Runs every missing migration, each in its own transaction holding the
/// migration lock (a second machine waits, then finds nothing to do).
async fn run(client: &Client, target: &Target) -> Result<()> {
    let err = |e: tokio_postgres::Error| target.error(&e);
    client
        .batch_execute(&format!(
            "BEGIN; SELECT pg_advisory_xact_lock({MIGRATION_LOCK});
             CREATE SCHEMA IF NOT EXISTS {SCHEMA};
             CREATE TABLE IF NOT EXISTS {SCHEMA}.schema_migrations (
                 version    integer     PRIMARY KEY,
                 applied_at timestamptz NOT NULL DEFAULT now());
             COMMIT;"
        ))
        .await
        .map_err(err)?;
    for (i, step) in migrations().iter().enumerate() {
        let v = i as i32 + 1;
        let outcome = async {
            client
                .batch_execute(&format!("BEGIN; SELECT pg_advisory_xact_lock({MIGRATION_LOCK});"))
                .await?;
            let done: bool = client
                .query_one(
                    &format!("SELECT EXISTS (SELECT 1 FROM {SCHEMA}.schema_migrations WHERE version = $1)"),
                    &[&v],
                )
                .await?
                .get(0);
            if !done {
                client.batch_execute(step).await?;
                client
                    .execute(
                        &format!("INSERT INTO {SCHEMA}.schema_migrations (version) VALUES ($1)"),
                        &[&v],
                    )
                    .await?;
            }
            client.batch_execute("COMMIT").await
        }
        .await;
        if let Err(e) = outcome {
            let _ = client.batch_execute("ROLLBACK").await;
            return Err(err(e));
        }
    }
    Ok(())
}

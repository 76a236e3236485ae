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

/// The PostgreSQL schema a bank lives in (`remote.schema`; by default
/// `pattern_cache`). One database can hold several banks, one per schema.
/// Validated once into this type: a plain lower-case identifier, so it is
/// written into SQL as it is, never quoted or escaped. Its NOTIFY channel
/// and its migration lock follow it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SchemaName(String);

impl SchemaName {
    pub const DEFAULT: &'static str = "pattern_cache";

    pub fn parse(name: &str) -> Result<SchemaName> {
        let ok = (1..=63).contains(&name.len())
            && name.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
            && !name.starts_with("pg_");
        if !ok {
            return Err(Error::InvalidArgument(format!(
                "remote.schema must be a lower-case identifier (a-z, 0-9, _; 1 to 63 characters; not starting with a digit or pg_), got '{}'",
                name.escape_debug()
            )));
        }
        Ok(SchemaName(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The NOTIFY channel: the payload is the new generation.
    pub fn channel(&self) -> &str {
        &self.0
    }

    /// pg_advisory_xact_lock key for this schema's migrations: "pcmigrat" in
    /// ASCII for the default (as before there was a choice), else derived
    /// from the name.
    pub fn migration_lock(&self) -> i64 {
        if self.0 == Self::DEFAULT {
            return 0x7063_6d69_6772_6174;
        }
        use sha2::{Digest, Sha256};
        let hash = Sha256::new()
            .chain_update(b"pattern-cache migrations ")
            .chain_update(self.0.as_bytes())
            .finalize();
        let mut first = [0u8; 8];
        first.copy_from_slice(&hash[..8]);
        i64::from_le_bytes(first)
    }
}

impl Default for SchemaName {
    fn default() -> Self {
        SchemaName(Self::DEFAULT.to_owned())
    }
}

impl std::fmt::Display for SchemaName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn migrations(schema: &SchemaName) -> Vec<String> {
    let s = schema;
    vec![
        format!(
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
        ),
        writes_in_one_call(schema),
    ]
}

/// Version 2: every write is one call of a function that does all of it on
/// the server (so the bank's lock is held only while the server executes,
/// never across a round trip to a client that may vanish), carries a random
/// key logged in `writes` in the same transaction (so a write whose reply
/// was lost can be looked up, and a re-sent one fails harmlessly on the
/// unique key), and advances a chain head `sha256(previous head || key)`.
/// `state` holds the live pattern count and the embedding dimension they
/// have, so the dimension check reads one row, not the table.
///
/// Every function returns one row (`WRITTEN`), or none when the write
/// changed nothing (an unknown id); errors a caller must tell apart carry
/// SQLSTATEs of their own: `PCU01` an unknown id in a strict batch of uses
/// (message: the id), `PCD01` another embedding dimension (message: the
/// dimension held).
fn writes_in_one_call(schema: &SchemaName) -> String {
    let s = schema;
    let c = schema.channel();
    let now_ms = "(extract(epoch FROM clock_timestamp()) * 1000)::bigint";
    let written = WRITTEN;
    // The answer of a write that returns nothing but its generation.
    let written_plain = "RETURN QUERY SELECT a.o_generation, a.o_changed_at, a.o_source_id, a.o_head, \
        NULL::bigint[], NULL::bigint[], NULL::bigint[], NULL::bigint[];";
    format!(
        "ALTER TABLE {s}.state
             ADD COLUMN head bytea   NOT NULL DEFAULT ''::bytea,
             ADD COLUMN live bigint  NOT NULL DEFAULT 0,
             ADD COLUMN dim  integer,
             -- tombstones and write records at or below it were pruned (0: none)
             ADD COLUMN floor bigint NOT NULL DEFAULT 0;
        UPDATE {s}.state SET
             live = (SELECT count(*) FROM {s}.patterns WHERE NOT deleted),
             dim = (SELECT length(embedding) / 4 FROM {s}.patterns WHERE NOT deleted LIMIT 1);
        CREATE TABLE {s}.writes (
            key        bytea  PRIMARY KEY CHECK (length(key) = 16),
            generation bigint NOT NULL UNIQUE,
            head       bytea  NOT NULL,
            at         bigint NOT NULL
        );

        -- Takes the bank's write lock (every write first, so writes are
        -- serial and commit order is generation order).
        CREATE FUNCTION {s}.lock_bank() RETURNS void LANGUAGE plpgsql AS $fn$
        BEGIN
            PERFORM 1 FROM {s}.state WHERE singleton FOR UPDATE;
        END $fn$;

        -- The next generation, its chain head and the key logged (a key
        -- seen before fails here, rolling the whole write back), and the
        -- notification (sent at commit).
        CREATE FUNCTION {s}.advance(p_key bytea, OUT o_generation bigint, OUT o_changed_at bigint, OUT o_source_id bytea,
            OUT o_head bytea)
        LANGUAGE plpgsql AS $fn$
        BEGIN
            UPDATE {s}.state st SET generation = st.generation + 1,
                   changed_at = greatest(st.changed_at, {now_ms}),
                   head = sha256(st.head || p_key)
             WHERE st.singleton
            RETURNING st.generation, st.changed_at, st.source_id, st.head
                 INTO o_generation, o_changed_at, o_source_id, o_head;
            INSERT INTO {s}.writes (key, generation, head, at) VALUES (p_key, o_generation, o_head, o_changed_at);
            PERFORM pg_notify('{c}', o_generation::text);
        END $fn$;

        CREATE FUNCTION {s}.record_uses(p_key bytea, p_ids text[], p_success bigint[], p_at bigint[], p_strict boolean)
        RETURNS TABLE ({written}) LANGUAGE plpgsql AS $fn$
        DECLARE a record; i integer; u bigint; sc bigint; lu bigint;
                uc bigint[] := '{{}}'; scs bigint[] := '{{}}'; lus bigint[] := '{{}}';
        BEGIN
            PERFORM {s}.lock_bank();
            FOR i IN 1 .. coalesce(array_length(p_ids, 1), 0) LOOP
                IF NOT EXISTS (SELECT 1 FROM {s}.patterns p WHERE p.id = p_ids[i] AND NOT p.deleted) THEN
                    IF p_strict THEN
                        RAISE EXCEPTION USING ERRCODE = 'PCU01', MESSAGE = p_ids[i];
                    END IF;
                    RETURN;
                END IF;
            END LOOP;
            SELECT * INTO a FROM {s}.advance(p_key);
            FOR i IN 1 .. coalesce(array_length(p_ids, 1), 0) LOOP
                UPDATE {s}.patterns p SET usage_count = p.usage_count + 1, success_count = p.success_count + p_success[i],
                       last_used = greatest(coalesce(p.last_used, p_at[i]), p_at[i]), generation = a.o_generation
                 WHERE p.id = p_ids[i] AND NOT p.deleted
                RETURNING p.usage_count, p.success_count, p.last_used INTO u, sc, lu;
                uc := uc || u; scs := scs || sc; lus := lus || lu;
            END LOOP;
            RETURN QUERY SELECT a.o_generation, a.o_changed_at, a.o_source_id, a.o_head, NULL::bigint[], uc, scs, lus;
        END $fn$;

        CREATE FUNCTION {s}.store_patterns(p_key bytea, p_ids text[], p_types text[], p_domains text[],
            p_frameworks text[], p_contents text[], p_embeddings bytea[], p_coverage float8[], p_flakiness float8[],
            p_verdicts text[], p_created bigint[], p_last_used bigint[], p_usage bigint[], p_success bigint[],
            p_metadata text[], p_keep boolean[])
        RETURNS TABLE ({written}) LANGUAGE plpgsql AS $fn$
        DECLARE a record; held integer; wanted integer; added bigint; created bigint[];
        BEGIN
            PERFORM {s}.lock_bank();
            SELECT st.dim INTO held FROM {s}.state st WHERE st.singleton;
            wanted := length(p_embeddings[1]) / 4;
            IF held IS NOT NULL AND held <> wanted THEN
                RAISE EXCEPTION USING ERRCODE = 'PCD01', MESSAGE = held::text;
            END IF;
            SELECT * INTO a FROM {s}.advance(p_key);
            SELECT count(DISTINCT u.id) INTO added FROM unnest(p_ids) u(id)
             WHERE NOT EXISTS (SELECT 1 FROM {s}.patterns p WHERE p.id = u.id AND NOT p.deleted);
            WITH stored AS (
                INSERT INTO {s}.patterns AS p (id, generation, deleted, type, domain, framework, content, embedding,
                       coverage, flakiness_score, verdict, created_at, last_used, usage_count, success_count, metadata)
                SELECT u.id, a.o_generation, false, u.type, u.domain, u.framework, u.content, u.embedding, u.coverage,
                       u.flakiness_score, u.verdict,
                       CASE WHEN u.keep THEN coalesce(
                           (SELECT q.created_at FROM {s}.patterns q WHERE q.id = u.id AND NOT q.deleted), u.created_at)
                       ELSE u.created_at END,
                       u.last_used, u.usage_count, u.success_count, u.metadata
                  FROM unnest(p_ids, p_types, p_domains, p_frameworks, p_contents, p_embeddings, p_coverage,
                              p_flakiness, p_verdicts, p_created, p_last_used, p_usage, p_success, p_metadata, p_keep)
                    AS u(id, type, domain, framework, content, embedding, coverage, flakiness_score, verdict,
                         created_at, last_used, usage_count, success_count, metadata, keep)
                ON CONFLICT (id) DO UPDATE SET generation = excluded.generation, deleted = false,
                   type = excluded.type, domain = excluded.domain, framework = excluded.framework,
                   content = excluded.content, embedding = excluded.embedding, coverage = excluded.coverage,
                   flakiness_score = excluded.flakiness_score, verdict = excluded.verdict,
                   created_at = excluded.created_at, last_used = excluded.last_used,
                   usage_count = excluded.usage_count, success_count = excluded.success_count,
                   metadata = excluded.metadata
                RETURNING p.id, p.created_at)
            SELECT array_agg(stored.created_at ORDER BY o.n) INTO created
              FROM unnest(p_ids) WITH ORDINALITY o(id, n) JOIN stored ON stored.id = o.id;
            UPDATE {s}.state st SET live = st.live + added, dim = wanted WHERE st.singleton;
            RETURN QUERY SELECT a.o_generation, a.o_changed_at, a.o_source_id, a.o_head, created,
                NULL::bigint[], NULL::bigint[], NULL::bigint[];
        END $fn$;

        CREATE FUNCTION {s}.delete_pattern(p_key bytea, p_id text)
        RETURNS TABLE ({written}) LANGUAGE plpgsql AS $fn$
        DECLARE a record;
        BEGIN
            PERFORM {s}.lock_bank();
            IF NOT EXISTS (SELECT 1 FROM {s}.patterns p WHERE p.id = p_id AND NOT p.deleted) THEN
                RETURN;
            END IF;
            SELECT * INTO a FROM {s}.advance(p_key);
            UPDATE {s}.patterns p SET deleted = true, generation = a.o_generation, type = NULL, domain = NULL,
                   framework = NULL, content = NULL, embedding = NULL, coverage = NULL, flakiness_score = NULL,
                   verdict = NULL, created_at = NULL, last_used = NULL, usage_count = 0, success_count = 0,
                   metadata = NULL
             WHERE p.id = p_id;
            UPDATE {s}.state st SET live = st.live - 1, dim = CASE WHEN st.live - 1 > 0 THEN st.dim END
             WHERE st.singleton;
            {written_plain}
        END $fn$;

        CREATE FUNCTION {s}.store_config(p_key bytea, p_agent_id text, p_type text, p_config_json text,
            p_version text, p_updated_at bigint)
        RETURNS TABLE ({written}) LANGUAGE plpgsql AS $fn$
        DECLARE a record;
        BEGIN
            PERFORM {s}.lock_bank();
            SELECT * INTO a FROM {s}.advance(p_key);
            INSERT INTO {s}.agent_configs AS c (agent_id, generation, deleted, type, config_json, version, updated_at)
            VALUES (p_agent_id, a.o_generation, false, p_type, p_config_json, p_version, p_updated_at)
            ON CONFLICT (agent_id) DO UPDATE SET generation = excluded.generation, deleted = false,
               type = excluded.type, config_json = excluded.config_json, version = excluded.version,
               updated_at = excluded.updated_at;
            {written_plain}
        END $fn$;

        -- Removes tombstones and write records of the generations written
        -- more than p_keep_ms ago; the floor rises to the newest of them
        -- (a replica below it resets to the bank at its next pass). Run by
        -- the owner: it deletes rows.
        CREATE FUNCTION {s}.prune(p_keep_ms bigint)
        RETURNS TABLE (p_floor bigint, p_tombstones bigint, p_writes bigint) LANGUAGE plpgsql AS $fn$
        DECLARE old_floor bigint; new_floor bigint; t1 bigint; t2 bigint; w bigint;
        BEGIN
            PERFORM {s}.lock_bank();
            SELECT st.floor INTO old_floor FROM {s}.state st WHERE st.singleton;
            SELECT max(wr.generation) INTO new_floor FROM {s}.writes wr WHERE wr.at <= {now_ms} - p_keep_ms;
            IF new_floor IS NULL OR new_floor <= old_floor THEN
                RETURN QUERY SELECT old_floor, 0::bigint, 0::bigint;
                RETURN;
            END IF;
            DELETE FROM {s}.patterns p WHERE p.deleted AND p.generation <= new_floor;
            GET DIAGNOSTICS t1 = ROW_COUNT;
            DELETE FROM {s}.agent_configs c WHERE c.deleted AND c.generation <= new_floor;
            GET DIAGNOSTICS t2 = ROW_COUNT;
            -- The record at the floor stays: a replica there can still check its head.
            DELETE FROM {s}.writes wr WHERE wr.generation < new_floor;
            GET DIAGNOSTICS w = ROW_COUNT;
            UPDATE {s}.state st SET floor = new_floor WHERE st.singleton;
            RETURN QUERY SELECT new_floor, t1 + t2, w;
        END $fn$;

        CREATE FUNCTION {s}.delete_config(p_key bytea, p_agent_id text)
        RETURNS TABLE ({written}) LANGUAGE plpgsql AS $fn$
        DECLARE a record;
        BEGIN
            PERFORM {s}.lock_bank();
            IF NOT EXISTS (SELECT 1 FROM {s}.agent_configs c WHERE c.agent_id = p_agent_id AND NOT c.deleted) THEN
                RETURN;
            END IF;
            SELECT * INTO a FROM {s}.advance(p_key);
            UPDATE {s}.agent_configs c SET deleted = true, generation = a.o_generation, type = NULL,
                   config_json = NULL, version = NULL, updated_at = NULL
             WHERE c.agent_id = p_agent_id;
            {written_plain}
        END $fn$;"
    )
}

/// What every write function returns: the write's generation, the bank's
/// time of it, identity and chain head, and what the replica cannot know by itself (the
/// created_at a stored pattern kept; a used pattern's counters), each in
/// the order of the call's arrays.
const WRITTEN: &str =
    "w_generation bigint, w_changed_at bigint, w_source_id bytea, w_head bytea, w_created_at bigint[], \
     w_usage_count bigint[], w_success_count bigint[], w_last_used bigint[]";

/// The remote schema version this release writes.
pub fn latest_version() -> i64 {
    migrations(&SchemaName::default()).len() as i64
}

/// The version the remote is at (0: no schema yet), read without locks or DDL.
async fn version(client: &Client, target: &Target) -> Result<i64> {
    let schema = target.schema();
    let exists: bool = client
        .query_one(
            "SELECT to_regclass($1) IS NOT NULL",
            &[&format!("{schema}.schema_migrations")],
        )
        .await
        .map_err(|e| target.error(&e))?
        .get(0);
    if !exists {
        return Ok(0);
    }
    let v: Option<i32> = client
        .query_one(&format!("SELECT max(version) FROM {schema}.schema_migrations"), &[])
        .await
        .map_err(|e| target.error(&e))?
        .get(0);
    Ok(i64::from(v.unwrap_or(0)))
}

/// Checks the remote is at this release's version; migrates it when it is
/// behind and `migrate` is allowed. Returns the version found.
pub async fn ensure(client: &Client, target: &Target, migrate: bool) -> Result<i64> {
    let schema = target.schema();
    let found = version(client, target).await?;
    let latest = latest_version();
    if found > latest {
        return Err(Error::RemoteMismatch(format!(
            "the remote schema {schema} is at version {found}; this release knows up to {latest}: upgrade pattern-cache"
        )));
    }
    if found == latest {
        return Ok(found);
    }
    if !migrate {
        return Err(Error::Remote(format!(
            "the remote schema {schema} is at version {found}; this release needs {latest}: run `pattern-cache remote migrate`"
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
    let schema = target.schema();
    let lock = schema.migration_lock();
    let err = |e: tokio_postgres::Error| target.error(&e);
    client
        .batch_execute(&format!(
            "BEGIN; SELECT pg_advisory_xact_lock({lock});
             CREATE SCHEMA IF NOT EXISTS {schema};
             CREATE TABLE IF NOT EXISTS {schema}.schema_migrations (
                 version    integer     PRIMARY KEY,
                 applied_at timestamptz NOT NULL DEFAULT now());
             COMMIT;"
        ))
        .await
        .map_err(err)?;
    for (i, step) in migrations(schema).iter().enumerate() {
        let v = i as i32 + 1;
        let outcome = async {
            client
                .batch_execute(&format!("BEGIN; SELECT pg_advisory_xact_lock({lock});"))
                .await?;
            let done: bool = client
                .query_one(
                    &format!("SELECT EXISTS (SELECT 1 FROM {schema}.schema_migrations WHERE version = $1)"),
                    &[&v],
                )
                .await?
                .get(0);
            if !done {
                client.batch_execute(step).await?;
                client
                    .execute(
                        &format!("INSERT INTO {schema}.schema_migrations (version) VALUES ($1)"),
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

//! Schema versions (`PRAGMA user_version`) and the forward migrations
//! between them. Each migration runs inside the caller's IMMEDIATE
//! transaction, so concurrent openers migrate exactly once.

use rusqlite::Connection;

use crate::error::{Error, Result};

/// The statement every change trigger runs: one more generation, and when.
/// `julianday` rather than `unixepoch('subsec')` so that writes from an older
/// sqlite3 shell advance the counter too.
const BUMP: &str = "UPDATE cache_state SET generation = generation + 1, \
     changed_at = CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER) WHERE singleton = 1;";

/// Migration `i` takes the schema from version `i` to `i + 1`.
fn migrations() -> Vec<String> {
    let mut v1 = String::from(
        "CREATE TABLE patterns (
            id              TEXT    NOT NULL PRIMARY KEY CHECK (length(id) > 0),
            type            TEXT    NOT NULL CHECK (length(type) > 0),
            domain          TEXT    NOT NULL CHECK (length(domain) > 0),
            framework       TEXT    NOT NULL CHECK (length(framework) > 0),
            content         TEXT    NOT NULL,
            embedding       BLOB    NOT NULL CHECK (typeof(embedding) = 'blob' AND length(embedding) > 0 AND length(embedding) % 4 = 0),
            coverage        REAL    CHECK (coverage IS NULL OR (coverage >= 0 AND coverage <= 1)),
            flakiness_score REAL    CHECK (flakiness_score IS NULL OR (flakiness_score >= 0 AND flakiness_score <= 1)),
            verdict         TEXT    NOT NULL CHECK (verdict IN ('success', 'failure', 'flaky', 'unknown')),
            created_at      INTEGER NOT NULL CHECK (typeof(created_at) = 'integer'),
            last_used       INTEGER CHECK (last_used IS NULL OR typeof(last_used) = 'integer'),
            usage_count     INTEGER NOT NULL CHECK (typeof(usage_count) = 'integer' AND usage_count >= 0),
            success_count   INTEGER NOT NULL CHECK (typeof(success_count) = 'integer' AND success_count >= 0),
            metadata        TEXT    CHECK (metadata IS NULL OR json_valid(metadata))
        );
        -- (field, id): lookups come out in id order without a sort.
        CREATE INDEX patterns_by_domain ON patterns(domain, id);
        CREATE INDEX patterns_by_type ON patterns(type, id);
        CREATE INDEX patterns_by_framework ON patterns(framework, id);
        CREATE TABLE agent_configs (
            agent_id    TEXT    NOT NULL PRIMARY KEY CHECK (length(agent_id) > 0),
            type        TEXT    NOT NULL,
            config_json TEXT    NOT NULL CHECK (json_valid(config_json)),
            version     TEXT    NOT NULL,
            updated_at  INTEGER NOT NULL
        );
        CREATE TABLE cache_state (
            singleton     INTEGER PRIMARY KEY CHECK (singleton = 1),
            generation    INTEGER NOT NULL,
            changed_at    INTEGER NOT NULL,
            pattern_count INTEGER NOT NULL,
            -- Random identity of this database, written into every cache file built from it.
            source_id     BLOB    NOT NULL CHECK (length(source_id) = 16)
        );
        INSERT INTO cache_state VALUES (1, 0, CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER), 0, randomblob(16));
        ",
    );
    for table in ["patterns", "agent_configs"] {
        for (suffix, event) in [("ins", "INSERT"), ("upd", "UPDATE"), ("del", "DELETE")] {
            let count = count_statement(table, event);
            v1.push_str(&format!(
                "CREATE TRIGGER {table}_{suffix}_generation AFTER {event} ON {table} BEGIN {BUMP} {count} END;\n"
            ));
        }
    }
    vec![
        v1,
        v2_change_log(),
        v3_usage_log(),
        v4_replica(),
        // v5: what the machine's last sync pass saw, for every process's metrics.
        "ALTER TABLE replica_of ADD COLUMN synced_at INTEGER NOT NULL DEFAULT 0;
         ALTER TABLE replica_of ADD COLUMN remote_generation INTEGER NOT NULL DEFAULT 0;"
            .to_owned(),
        // v6: the bank's chain head at the replica's generation (NULL: not
        // known), which every pass compares with the bank's history.
        "ALTER TABLE replica_of ADD COLUMN head BLOB;".to_owned(),
    ]
}

/// v4's trigger statement: as `BUMP`, except while `cache_state.pinned` is
/// set. A replica applying a remote generation sets it, so every row it
/// applies is logged at that generation and the local generation ends equal
/// to the remote one (`remote::replica`).
const PINNABLE_BUMP: &str = "UPDATE cache_state SET generation = coalesce(pinned, generation + 1), \
     changed_at = CASE WHEN pinned IS NULL THEN CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER) \
     ELSE changed_at END WHERE singleton = 1;";

/// v4: a database can be a replica of a remote bank (`replica_of` holds the
/// bank's identity), and its triggers can be pinned to a generation.
fn v4_replica() -> String {
    let mut v4 = String::from(
        "ALTER TABLE cache_state ADD COLUMN pinned INTEGER;
        CREATE TABLE replica_of (
            singleton INTEGER PRIMARY KEY CHECK (singleton = 1),
            source_id BLOB NOT NULL CHECK (length(source_id) = 16)
        );
        ",
    );
    for (name, create) in change_triggers() {
        v4.push_str(&format!("DROP TRIGGER {name};\n{create}\n"));
    }
    v4
}

/// The change triggers as v4 left them (and later versions keep): (name,
/// CREATE statement). A replica applying a very large pass drops them for
/// its transaction and makes them again at its end (`remote::replica`).
pub fn change_triggers() -> Vec<(&'static str, String)> {
    let log = |table: &str, key: &str, row: &str| {
        format!(
            "INSERT INTO {table} ({key}, generation) SELECT {row}.{key}, generation FROM cache_state WHERE singleton = 1 \
             ON CONFLICT({key}) DO UPDATE SET generation = excluded.generation;"
        )
    };
    let same = CONTENT_COLUMNS
        .iter()
        .map(|c| format!("OLD.{c} IS NEW.{c}"))
        .collect::<Vec<_>>()
        .join(" AND ");
    let count =
        |delta: &str| format!("UPDATE cache_state SET pattern_count = pattern_count {delta} 1 WHERE singleton = 1;");
    let b = PINNABLE_BUMP;
    let triggers = [
        (
            "patterns_ins_generation",
            "AFTER INSERT ON patterns".to_owned(),
            format!("{b} {} {}", count("+"), log("pattern_changes", "id", "NEW")),
        ),
        (
            "patterns_upd_generation",
            format!("AFTER UPDATE ON patterns WHEN NOT ({same})"),
            format!(
                "{b} {}{}",
                log("pattern_changes", "id", "OLD"),
                log("pattern_changes", "id", "NEW")
            ),
        ),
        (
            "patterns_use_generation",
            format!("AFTER UPDATE ON patterns WHEN {same}"),
            format!("{b} {}", log("usage_changes", "id", "NEW")),
        ),
        (
            "patterns_del_generation",
            "AFTER DELETE ON patterns".to_owned(),
            format!("{b} {} {}", count("-"), log("pattern_changes", "id", "OLD")),
        ),
        (
            "agent_configs_ins_generation",
            "AFTER INSERT ON agent_configs".to_owned(),
            format!("{b} {}", log("config_changes", "agent_id", "NEW")),
        ),
        (
            "agent_configs_upd_generation",
            "AFTER UPDATE ON agent_configs".to_owned(),
            format!(
                "{b} {}{}",
                log("config_changes", "agent_id", "OLD"),
                log("config_changes", "agent_id", "NEW")
            ),
        ),
        (
            "agent_configs_del_generation",
            "AFTER DELETE ON agent_configs".to_owned(),
            format!("{b} {}", log("config_changes", "agent_id", "OLD")),
        ),
    ];
    triggers
        .into_iter()
        .map(|(name, when, body)| (name, format!("CREATE TRIGGER {name} {when} BEGIN {body} END;")))
        .collect()
}

/// Every column but the counters a use changes (`usage_count`,
/// `success_count`, `last_used`): an update that leaves these alone is a use.
const CONTENT_COLUMNS: [&str; 11] = [
    "id",
    "type",
    "domain",
    "framework",
    "content",
    "embedding",
    "coverage",
    "flakiness_score",
    "verdict",
    "created_at",
    "metadata",
];

/// v3: updates that change only the counters are logged apart
/// (`usage_changes`), so a reader amends its file with just the counters of
/// thousands of used patterns (no full rows, no rebuild per use).
fn v3_usage_log() -> String {
    let same = CONTENT_COLUMNS
        .iter()
        .map(|c| format!("OLD.{c} IS NEW.{c}"))
        .collect::<Vec<_>>()
        .join(" AND ");
    let log = |table: &str, key: &str, row: &str| {
        format!(
            "INSERT INTO {table} ({key}, generation) SELECT {row}.{key}, generation FROM cache_state WHERE singleton = 1 \
             ON CONFLICT({key}) DO UPDATE SET generation = excluded.generation;"
        )
    };
    let content_logged = format!(
        "{}{}",
        log("pattern_changes", "id", "OLD"),
        log("pattern_changes", "id", "NEW")
    );
    let usage_logged = log("usage_changes", "id", "NEW");
    format!(
        "CREATE TABLE usage_changes (id TEXT NOT NULL PRIMARY KEY, generation INTEGER NOT NULL);
        CREATE INDEX usage_changes_by_generation ON usage_changes(generation);
        DROP TRIGGER patterns_upd_generation;
        CREATE TRIGGER patterns_upd_generation AFTER UPDATE ON patterns WHEN NOT ({same})
            BEGIN {BUMP} {content_logged} END;
        CREATE TRIGGER patterns_use_generation AFTER UPDATE ON patterns WHEN {same}
            BEGIN {BUMP} {usage_logged} END;
        "
    )
}

/// v2: a change log, so a reader can amend an older cache file with just
/// the rows that changed since it was built (instead of abandoning it).
/// `<table>_changes` holds, per key, the generation of its latest change;
/// `cache_state.log_floor` is the generation up to which the log was pruned.
fn v2_change_log() -> String {
    let mut v2 = String::from(
        "CREATE TABLE pattern_changes (id TEXT NOT NULL PRIMARY KEY, generation INTEGER NOT NULL);
        CREATE INDEX pattern_changes_by_generation ON pattern_changes(generation);
        CREATE TABLE config_changes (agent_id TEXT NOT NULL PRIMARY KEY, generation INTEGER NOT NULL);
        CREATE INDEX config_changes_by_generation ON config_changes(generation);
        -- Changes before the log existed are not in it: readers of older files must rebuild.
        ALTER TABLE cache_state ADD COLUMN log_floor INTEGER NOT NULL DEFAULT 0;
        UPDATE cache_state SET log_floor = generation;
        ",
    );
    for (table, log, key) in [
        ("patterns", "pattern_changes", "id"),
        ("agent_configs", "config_changes", "agent_id"),
    ] {
        let log_row = |row: &str| {
            format!(
                "INSERT INTO {log} ({key}, generation) SELECT {row}.{key}, generation FROM cache_state WHERE singleton = 1 \
                 ON CONFLICT({key}) DO UPDATE SET generation = excluded.generation;"
            )
        };
        for (suffix, event, rows) in [
            ("ins", "INSERT", vec!["NEW"]),
            ("upd", "UPDATE", vec!["OLD", "NEW"]),
            ("del", "DELETE", vec!["OLD"]),
        ] {
            let count = count_statement(table, event);
            let logged: String = rows.iter().map(|r| log_row(r)).collect();
            v2.push_str(&format!(
                "DROP TRIGGER {table}_{suffix}_generation;
                 CREATE TRIGGER {table}_{suffix}_generation AFTER {event} ON {table} BEGIN {BUMP} {count} {logged} END;\n"
            ));
        }
    }
    v2
}

/// The schema version this release writes.
pub fn latest_version() -> i64 {
    migrations().len() as i64
}

/// Brings the schema to the latest version. Returns the version found.
/// Must run inside an IMMEDIATE transaction.
pub fn migrate(conn: &Connection) -> Result<i64> {
    migrate_to(conn, latest_version())
}

/// Brings the schema to version `target` (tests use it to make old databases).
pub fn migrate_to(conn: &Connection, target: i64) -> Result<i64> {
    let found: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    let all = migrations();
    let latest = all.len() as i64;
    if found > latest {
        return Err(Error::SchemaTooNew {
            found,
            supported: latest,
        });
    }
    let target = target.clamp(0, latest);
    for step in all.iter().take(target as usize).skip(found.max(0) as usize) {
        conn.execute_batch(step)?;
    }
    if found < target {
        conn.pragma_update(None, "user_version", target)?;
    }
    Ok(found)
}

/// The statement a trigger on `table` for `event` runs to keep
/// `cache_state.pattern_count` (nobody has to count(*) 100,000 rows).
fn count_statement(table: &str, event: &str) -> &'static str {
    match (table, event) {
        ("patterns", "INSERT") => "UPDATE cache_state SET pattern_count = pattern_count + 1 WHERE singleton = 1;",
        ("patterns", "DELETE") => "UPDATE cache_state SET pattern_count = pattern_count - 1 WHERE singleton = 1;",
        _ => "",
    }
}

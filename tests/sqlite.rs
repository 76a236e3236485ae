//! Tier 2: the bundled SQLite, schema migrations, and the change triggers
//! that let writes from other tools (the sqlite3 shell) reach the loader.

mod common;

use common::*;
use pattern_cache::db::{queries, schema, Database};
use pattern_cache::{PatternFilter, Tier, Verdict};
use rusqlite::{params, Connection};

fn version_triple(v: &str) -> (u32, u32, u32) {
    let mut parts = v.split('.').map(|p| p.parse::<u32>().expect("numeric part"));
    let mut next = || parts.next().unwrap_or(0);
    (next(), next(), next())
}

#[test]
fn bundled_sqlite_is_at_least_3_51_3() {
    let conn = Connection::open_in_memory().unwrap();
    let version: String = conn.query_row("SELECT sqlite_version()", [], |r| r.get(0)).unwrap();
    assert!(
        version_triple(&version) >= (3, 51, 3),
        "bundled SQLite is {version}, need >= 3.51.3"
    );
    // The numeric comparison, not a string one: 3.100.0 > 3.51.3.
    assert!(version_triple("3.100.0") > version_triple("3.51.3"));
    assert!(version_triple("3.9.9") < version_triple("3.51.3"));
}

fn user_version(conn: &Connection) -> i64 {
    conn.query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap()
}

#[test]
fn new_database_gets_the_latest_schema() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(dir.path());
    let opened = Database::open(&path).unwrap();
    assert_eq!(opened.previous_schema, 0, "a new database has no schema");
    drop(opened);
    let conn = Connection::open(&path).unwrap();
    assert_eq!(user_version(&conn), schema::latest_version());
    assert!(schema::latest_version() >= 1);
    let journal: String = conn.query_row("PRAGMA journal_mode", [], |r| r.get(0)).unwrap();
    assert_eq!(journal.to_lowercase(), "wal");
}

#[test]
fn newer_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(dir.path());
    drop(Database::open(&path).unwrap());
    let conn = Connection::open(&path).unwrap();
    conn.pragma_update(None, "user_version", schema::latest_version() + 1)
        .unwrap();
    drop(conn);

    let err = Database::open(&path).err().expect("newer schema must fail");
    assert_eq!(err.code(), "SCHEMA_TOO_NEW");
    let err = pattern_cache::PatternCache::open(config(dir.path(), |_| {}), None)
        .err()
        .expect("newer schema must fail the loader too");
    assert_eq!(err.code(), "SCHEMA_TOO_NEW");

    // Refusing changed nothing: the version is still the newer one.
    let conn = Connection::open(&path).unwrap();
    assert_eq!(user_version(&conn), schema::latest_version() + 1);
}

#[test]
fn reopening_migrates_once_and_keeps_data() {
    let dir = tempfile::tempdir().unwrap();
    let inputs = gen_inputs(7, 20, DIM);
    fill_db(dir.path(), &inputs, 20, &[gen_config(1)]);
    let generation_before = Database::open(&db_path(dir.path())).unwrap().db.generation().unwrap();

    let second = Database::open(&db_path(dir.path())).unwrap();
    assert_eq!(second.previous_schema, schema::latest_version());
    // No migration ran again: nothing was rewritten.
    assert_eq!(second.db.generation().unwrap(), generation_before);
    drop(second);

    let cache = open(dir.path(), |_| {});
    assert_eq!(
        cache.query(&PatternFilter::default()).unwrap(),
        Model::from_inputs(&inputs).all()
    );
    assert_eq!(
        cache.load_agent_config(&gen_config(1).agent_id).unwrap(),
        Some(expected_config(&gen_config(1)))
    );
    cache.shutdown();
    let conn = Connection::open(db_path(dir.path())).unwrap();
    assert_eq!(user_version(&conn), schema::latest_version());
}

fn state(conn: &Connection) -> (i64, i64) {
    conn.query_row(
        "SELECT generation, pattern_count FROM cache_state WHERE singleton = 1",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
    .unwrap()
}

fn count_rows(conn: &Connection) -> i64 {
    conn.query_row("SELECT count(*) FROM patterns", [], |r| r.get(0))
        .unwrap()
}

/// What someone at the sqlite3 shell would type to add a pattern.
fn shell_insert(conn: &Connection, id: &str, domain: &str) {
    let embedding: Vec<u8> = (0..DIM).flat_map(|i| (i as f32).to_le_bytes()).collect();
    conn.execute(
        "INSERT INTO patterns (id, type, domain, framework, content, embedding, verdict,
             created_at, usage_count, success_count)
         VALUES (?1, 'unit', ?2, 'jest', 'from the shell', ?3, 'success', 1700000000000, 0, 0)",
        params![id, domain, embedding],
    )
    .unwrap();
}

#[test]
fn triggers_count_every_change_from_any_connection() {
    let dir = tempfile::tempdir().unwrap();
    fill_db(dir.path(), &gen_inputs(3, 10, DIM), 10, &[]);
    let conn = Connection::open(db_path(dir.path())).unwrap();
    let (g0, n0) = state(&conn);
    assert_eq!(n0, 10);

    shell_insert(&conn, "shell-1", "auth");
    assert_eq!(state(&conn), (g0 + 1, n0 + 1));

    conn.execute("UPDATE patterns SET content = 'edited' WHERE id = 'shell-1'", [])
        .unwrap();
    assert_eq!(state(&conn), (g0 + 2, n0 + 1));

    conn.execute(
        "INSERT INTO agent_configs VALUES ('shell-agent', 't', '{}', '1', 5)",
        [],
    )
    .unwrap();
    assert_eq!(state(&conn), (g0 + 3, n0 + 1));

    conn.execute("DELETE FROM patterns WHERE id = 'shell-1'", []).unwrap();
    assert_eq!(state(&conn), (g0 + 4, n0));
    assert_eq!(count_rows(&conn), n0);

    // A statement that changes nothing advances nothing.
    conn.execute("DELETE FROM patterns WHERE id = 'absent'", []).unwrap();
    assert_eq!(state(&conn), (g0 + 4, n0));
}

#[test]
fn pattern_count_tracks_rows_through_loader_upserts() {
    let dir = tempfile::tempdir().unwrap();
    let inputs = gen_inputs(11, 30, DIM);
    let cache = open(dir.path(), |c| c.enabled = Some(false));
    cache.store_patterns(&inputs).unwrap();
    // Re-storing existing ids updates rows; it must not count them twice.
    cache.store_patterns(&inputs[..10]).unwrap();
    assert!(cache.delete_pattern(&inputs[0].id).unwrap());
    assert!(!cache.delete_pattern(&inputs[0].id).unwrap());
    cache.shutdown();

    let conn = Connection::open(db_path(dir.path())).unwrap();
    let (_, count) = state(&conn);
    assert_eq!(count, 29);
    assert_eq!(count, count_rows(&conn));
}

#[test]
fn loader_sees_shell_writes_on_the_next_read() {
    let dir = tempfile::tempdir().unwrap();
    let inputs = gen_inputs(5, 50, DIM);
    fill_db(dir.path(), &inputs, 50, &[]);
    let cache = open(dir.path(), |_| {});
    assert!(cache.rebuild(pattern_cache::Trigger::Manual).unwrap().success);
    assert_eq!(cache.metrics().unwrap().tier, Tier::Cache);
    assert_eq!(cache.load_pattern("shell-new").unwrap(), None);

    let conn = Connection::open(db_path(dir.path())).unwrap();
    shell_insert(&conn, "shell-new", "auth");
    conn.execute(
        "UPDATE patterns SET content = 'edited in the shell' WHERE id = ?1",
        [&inputs[0].id],
    )
    .unwrap();

    // check_interval 0: the very next read checks the generation, so the
    // (now stale) cache file is not served.
    let got = cache.load_pattern("shell-new").unwrap().expect("shell row");
    assert_eq!(got.domain, "auth");
    assert_eq!(got.verdict, Verdict::Success);
    assert_eq!(got.embedding.len(), DIM);
    assert_eq!(
        cache.load_pattern(&inputs[0].id).unwrap().unwrap().content,
        "edited in the shell"
    );
    // Served by tier 1 amended with the shell's changes, not by SQLite.
    let report = cache.metrics().unwrap();
    assert_eq!(report.tier, Tier::Cache);
    assert_eq!(report.pattern_count, 51);
    assert_eq!(report.counters.cache_misses, 0);
    assert!(cache
        .load_by(pattern_cache::IndexKind::Domain, "auth")
        .unwrap()
        .iter()
        .any(|p| p.id == "shell-new"));

    // After a rebuild tier 1 serves again, with the shell's rows.
    assert!(cache.rebuild(pattern_cache::Trigger::Manual).unwrap().success);
    assert_eq!(cache.metrics().unwrap().tier, Tier::Cache);
    assert_eq!(
        cache.load_pattern("shell-new").unwrap().unwrap().content,
        "from the shell"
    );
    assert_eq!(
        cache.query(&PatternFilter::default()).unwrap(),
        sqlite_all(&db_path(dir.path()))
    );

    // And a shell delete is seen at once as well.
    conn.execute("DELETE FROM patterns WHERE id = 'shell-new'", []).unwrap();
    assert_eq!(cache.load_pattern("shell-new").unwrap(), None);
    let direct = Database::open(&db_path(dir.path())).unwrap();
    assert_eq!(direct.db.read(|c| queries::get_pattern(c, "shell-new")).unwrap(), None);
}

#[test]
fn a_shell_replace_into_miscounts_until_the_next_rebuild_repairs_it() {
    let dir = tempfile::tempdir().unwrap();
    let inputs = gen_inputs(21, 10, DIM);
    fill_db(dir.path(), &inputs, 10, &[]);
    let conn = Connection::open(db_path(dir.path())).unwrap();
    let embedding: Vec<u8> = (0..DIM).flat_map(|i| (i as f32).to_le_bytes()).collect();
    conn.execute(
        "REPLACE INTO patterns (id, type, domain, framework, content, embedding, verdict,
             created_at, usage_count, success_count)
         VALUES (?1, 'unit', 'auth', 'jest', 'replaced', ?2, 'success', 1700000000000, 0, 0)",
        params![inputs[0].id, embedding],
    )
    .unwrap();
    // SQLite fires no delete trigger for the replaced row: the counter drifts.
    assert_eq!(state(&conn).1, 11);
    assert_eq!(count_rows(&conn), 10);

    let cache = open(dir.path(), |_| {});
    assert_eq!(cache.metrics().unwrap().pattern_count, 10, "the cache file counts rows");
    assert_eq!(state(&conn).1, 10, "the build repaired the counter");
    cache.shutdown();
}

#[test]
fn a_version_1_database_is_migrated_and_its_cache_rebuilt_for_schema_migration() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(dir.path());
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    {
        let conn = Connection::open(&path).unwrap();
        pattern_cache::db::schema::migrate_to(&conn, 1).unwrap();
        shell_insert(&conn, "old-1", "auth");
        shell_insert(&conn, "old-2", "search");
    }
    let events = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink_events = events.clone();
    let sink: pattern_cache::EventSink = std::sync::Arc::new(move |e| sink_events.lock().unwrap().push(e));
    let config = pattern_cache::Config::resolve(
        &pattern_cache::ConfigInput {
            db_path: Some(path.to_string_lossy().into_owned()),
            background_rebuild: Some(false),
            ..Default::default()
        },
        dir.path(),
    )
    .unwrap();
    let cache = pattern_cache::PatternCache::open(config, Some(sink)).unwrap();
    assert!(events
        .lock()
        .unwrap()
        .contains(&pattern_cache::CacheEvent::RebuildStarted {
            reason: pattern_cache::Trigger::SchemaMigration
        }));
    let conn = Connection::open(&path).unwrap();
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
    assert_eq!(version, pattern_cache::db::schema::latest_version());
    assert_eq!(cache.load_pattern("old-2").unwrap().unwrap().domain, "search");
    assert_eq!(cache.metrics().unwrap().tier, Tier::Cache);
    // The change log now works: a shell write after the migration is logged.
    shell_insert(&conn, "new-1", "auth");
    let logged: i64 = conn
        .query_row("SELECT count(*) FROM pattern_changes WHERE id = 'new-1'", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(logged, 1);
    // v3: an update of the counters alone is a use (logged apart, no row),
    // any other update is content.
    let count = |sql: &str| -> i64 { conn.query_row(sql, [], |r| r.get(0)).unwrap() };
    let generation = count("SELECT generation FROM cache_state");
    conn.execute(
        "UPDATE patterns SET usage_count = usage_count + 1 WHERE id = 'old-1'",
        [],
    )
    .unwrap();
    assert_eq!(count("SELECT count(*) FROM usage_changes WHERE id = 'old-1'"), 1);
    assert_eq!(count("SELECT count(*) FROM pattern_changes WHERE id = 'old-1'"), 0);
    assert_eq!(count("SELECT generation FROM cache_state"), generation + 1);
    conn.execute("UPDATE patterns SET content = 'changed' WHERE id = 'old-1'", [])
        .unwrap();
    assert_eq!(count("SELECT count(*) FROM pattern_changes WHERE id = 'old-1'"), 1);
    assert_eq!(count("SELECT generation FROM cache_state"), generation + 2);
    cache.shutdown();
}

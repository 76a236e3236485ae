//! The remote bank against a real PostgreSQL that this test starts (initdb
//! and pg_ctl as the `postgres` user, on 127.0.0.1 and a free port) and
//! stops at the end, also when a case fails: every case runs inside one
//! test that owns the server.
//!
//! Without PostgreSQL installed the test is skipped, except under CI
//! (`CI` set), where it fails.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::proxy::{Fault, Proxy};
use common::*;
use pattern_cache::{AgentConfig, ConfigInput, PatternCache, PatternFilter, PatternInput, UsageInput};

/// A PostgreSQL cluster in a temp directory; stopped when dropped.
struct Server {
    bin: PathBuf,
    data: PathBuf,
    port: u16,
    _dir: tempfile::TempDir,
}

fn postgres_bin() -> Option<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|b| b.join("initdb").exists())
        .collect();
    found.sort_by_key(|p| {
        p.parent()
            .and_then(|v| v.file_name())
            .and_then(|v| v.to_str())
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(0)
    });
    found.pop().or_else(|| {
        let out = Command::new("sh").args(["-c", "command -v initdb"]).output().ok()?;
        let path = PathBuf::from(String::from_utf8(out.stdout).ok()?.trim());
        path.parent().map(Path::to_path_buf).filter(|_| out.status.success())
    })
}

fn as_postgres(args: &[&str]) -> std::process::Output {
    Command::new("runuser")
        .args(["-u", "postgres", "--"])
        .args(args)
        .output()
        .expect("run a command as the postgres user")
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    l.local_addr().expect("local addr").port()
}

impl Server {
    fn start(bin: PathBuf, tls: bool) -> Server {
        let dir = tempfile::tempdir().expect("temp dir");
        let data = dir.path().join("data");
        std::fs::create_dir(&data).expect("data dir");
        for p in [dir.path(), data.as_path()] {
            let ok = Command::new("chown")
                .arg("postgres")
                .arg(p)
                .status()
                .expect("chown")
                .success();
            assert!(ok, "chown postgres {}", p.display());
        }
        let initdb = bin.join("initdb");
        let out = as_postgres(&[
            initdb.to_str().unwrap(),
            "-D",
            data.to_str().unwrap(),
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
        ]);
        assert!(out.status.success(), "initdb: {}", String::from_utf8_lossy(&out.stderr));
        if tls {
            // A CA, and a server certificate it signed for localhost and 127.0.0.1.
            let run = |args: &[&str]| {
                let out = Command::new("openssl")
                    .args(args)
                    .current_dir(&data)
                    .output()
                    .expect("openssl");
                assert!(
                    out.status.success(),
                    "openssl {args:?}: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            };
            run(&[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "2",
                "-subj",
                "/CN=pattern-cache test CA",
                "-keyout",
                "ca.key",
                "-out",
                "ca.crt",
            ]);
            run(&[
                "req",
                "-new",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-subj",
                "/CN=localhost",
                "-keyout",
                "server.key",
                "-out",
                "server.csr",
            ]);
            std::fs::write(data.join("san.ext"), "subjectAltName=DNS:localhost,IP:127.0.0.1\n").expect("san");
            run(&[
                "x509",
                "-req",
                "-in",
                "server.csr",
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-days",
                "2",
                "-extfile",
                "san.ext",
                "-out",
                "server.crt",
            ]);
            for f in ["server.key", "server.crt"] {
                Command::new("chown")
                    .arg("postgres")
                    .arg(data.join(f))
                    .status()
                    .expect("chown");
            }
            Command::new("chmod")
                .arg("600")
                .arg(data.join("server.key"))
                .status()
                .expect("chmod");
            std::fs::write(
                data.join("postgresql.auto.conf"),
                "ssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n",
            )
            .expect("ssl config");
        }
        let server = Server {
            bin,
            data,
            port: free_port(),
            _dir: dir,
        };
        server.pg_ctl_start();
        server
    }

    fn pg_ctl_start(&self) {
        let options = format!(
            "-c listen_addresses=127.0.0.1 -p {} -c unix_socket_directories={} -c fsync=off",
            self.port,
            self.data.display()
        );
        let pg_ctl = self.bin.join("pg_ctl");
        let log = self.data.join("log");
        let out = as_postgres(&[
            pg_ctl.to_str().unwrap(),
            "-D",
            self.data.to_str().unwrap(),
            "-w",
            "-l",
            log.to_str().unwrap(),
            "-o",
            &options,
            "start",
        ]);
        assert!(
            out.status.success(),
            "pg_ctl start: {} {}",
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(&log).unwrap_or_default()
        );
    }

    fn pg_ctl_stop(&self, mode: &str) {
        let pg_ctl = self.bin.join("pg_ctl");
        as_postgres(&[
            pg_ctl.to_str().unwrap(),
            "-D",
            self.data.to_str().unwrap(),
            "-m",
            mode,
            "-w",
            "stop",
        ]);
    }

    fn url(&self, db: &str, user: &str) -> String {
        format!("postgres://{user}@127.0.0.1:{}/{db}?sslmode=disable", self.port)
    }

    /// Runs SQL with psql (ON_ERROR_STOP); returns stdout.
    fn psql(&self, db: &str, sql: &str) -> String {
        let out = Command::new(self.bin.join("psql"))
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
                "-d",
                db,
            ])
            .args(["-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1", "-c", sql])
            .output()
            .expect("psql");
        assert!(
            out.status.success(),
            "psql {sql}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// Runs one of the cluster's tools (pg_dump, pg_restore) against `db`.
    fn tool(&self, name: &str, db: &str, args: &[&str]) {
        let out = Command::new(self.bin.join(name))
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
                "-d",
                db,
            ])
            .args(args)
            .output()
            .expect(name);
        assert!(out.status.success(), "{name}: {}", String::from_utf8_lossy(&out.stderr));
    }

    fn create_db(&self, name: &str) {
        self.psql("postgres", &format!("CREATE DATABASE {name}"));
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.pg_ctl_stop("immediate");
    }
}

fn replica(dir: &Path, url: &str, edit: impl FnOnce(&mut ConfigInput)) -> PatternCache {
    open(dir, |c| {
        c.remote_url = Some(url.to_owned());
        c.remote_poll_interval_ms = Some(100.0);
        edit(c);
    })
}

#[test]
fn against_a_real_postgres() {
    let Some(bin) = postgres_bin() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "PostgreSQL is not installed (CI installs Debian's postgresql)"
        );
        eprintln!("skipped: PostgreSQL is not installed");
        return;
    };
    let server = Server::start(bin.clone(), false);
    replicas_converge_on_a_model(&server);
    hostile_rows_are_rejected_and_change_nothing(&server);
    a_row_only_role_works_after_migrate(&server);
    a_big_pass_drops_and_restores_the_triggers(&server);
    a_server_that_goes_away(&server);
    writes_under_network_faults(&server);
    a_restored_bank_resets_its_replicas(&server);
    pruning_resets_the_replicas_below_the_floor(&server);
    two_banks_in_one_database(&server);
    drop(server);
    tls(bin);
}

/// Random writes from two replicas; afterwards both, a third fresh replica
/// and a plain model agree on every read, on both tiers, and the three
/// build byte-identical cache files.
fn replicas_converge_on_a_model(server: &Server) {
    server.create_db("converge");
    let url = server.url("converge", "postgres");
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().expect("temp dir")).collect();
    let a = replica(dirs[0].path(), &url, |_| {});
    let b = replica(dirs[1].path(), &url, |_| {});
    let pool = gen_inputs(12, 40, DIM);
    let configs: Vec<_> = (0..5).map(gen_config).collect();
    let mut model = Model::default();
    let mut model_configs: BTreeMap<String, AgentConfig> = BTreeMap::new();
    let mut rng = Rng::new(99);
    for step in 0..300 {
        let w = if rng.chance(2) { &a } else { &b };
        match rng.below(10) {
            0..=2 => {
                let n = 1 + rng.below(5);
                let start = rng.below(pool.len() - n);
                let batch: Vec<PatternInput> = pool[start..start + n].to_vec();
                w.store_patterns(&batch).expect("store");
                model.store(&batch);
            }
            3 => {
                let id = &pool[rng.below(pool.len())].id;
                let deleted = w.delete_pattern(id).expect("delete");
                assert_eq!(deleted, model.0.remove(id).is_some(), "delete {id} at step {step}");
            }
            4..=6 => {
                let id = pool[rng.below(pool.len())].id.clone();
                let success = rng.chance(2);
                let at = 1_800_000_000_000 + step;
                let found = w
                    .record_usage(&UsageInput {
                        id: id.clone(),
                        success,
                        at: Some(at as f64),
                    })
                    .expect("use");
                assert_eq!(found, model.0.contains_key(&id), "use {id} at step {step}");
                if let Some(p) = model.0.get_mut(&id) {
                    p.usage_count += 1;
                    p.success_count += i64::from(success);
                    p.last_used = Some(p.last_used.map_or(at, |l| l.max(at)));
                }
            }
            7 => {
                let c = &configs[rng.below(configs.len())];
                w.store_agent_config(c).expect("config");
                model_configs.insert(c.agent_id.clone(), expected_config(c));
            }
            8 => {
                let c = &configs[rng.below(configs.len())];
                let deleted = w.delete_agent_config(&c.agent_id).expect("delete config");
                assert_eq!(deleted, model_configs.remove(&c.agent_id).is_some());
            }
            _ => {
                // A writer reads its own write at once.
                let id = &pool[rng.below(pool.len())].id;
                assert_eq!(
                    w.load_pattern(id).expect("read").as_ref(),
                    model.0.get(id),
                    "read {id} at step {step}"
                );
            }
        }
    }
    let c = replica(dirs[2].path(), &url, |_| {});
    let mut generation = None;
    for r in [&a, &b, &c] {
        let synced = r.sync_remote().expect("sync");
        assert!(generation.is_none_or(|g| g == synced.to_generation));
        generation = Some(synced.to_generation);
    }
    let everything = PatternFilter::default();
    for (name, r, dir) in [("a", &a, &dirs[0]), ("b", &b, &dirs[1]), ("c", &c, &dirs[2])] {
        assert_eq!(r.query(&everything).expect("query"), model.all(), "replica {name}");
        assert_eq!(
            r.list_agent_configs().expect("configs"),
            model_configs.values().cloned().collect::<Vec<_>>()
        );
        assert_eq!(sqlite_all(&db_path(dir.path())), model.all(), "replica {name}'s SQLite");
        for d in DOMAINS {
            let f = PatternFilter {
                domain: Some(d.to_string()),
                ..Default::default()
            };
            assert_eq!(r.query(&f).expect("query"), model.query(&f));
        }
        // Tier 2 alone agrees with tier 1 (amended by the change log the pinned triggers kept).
        let direct = open(dir.path(), |c| c.enabled = Some(false));
        assert_eq!(direct.query(&everything).expect("query"), model.all());
        assert_eq!(direct.stats().expect("stats"), r.stats().expect("stats"));
        direct.shutdown();
    }
    let files: Vec<Vec<u8>> = [&a, &b, &c]
        .iter()
        .zip(&dirs)
        .map(|(r, d)| {
            assert!(r.rebuild(pattern_cache::Trigger::Manual).expect("rebuild").success);
            std::fs::read(cache_path(d.path())).expect("read cache file")
        })
        .collect();
    assert!(
        files[0] == files[1] && files[1] == files[2],
        "the replicas built different files"
    );
    for r in [a, b, c] {
        r.shutdown();
    }
}

/// Each kind of bad row on the remote: the sync fails naming it, and the
/// replica stays as it was; once the row is mended the sync goes through.
fn hostile_rows_are_rejected_and_change_nothing(server: &Server) {
    server.create_db("hostile");
    let url = server.url("hostile", "postgres");
    let dir = tempfile::tempdir().expect("temp dir");
    let r = replica(dir.path(), &url, |c| c.background_rebuild = Some(false));
    let good = gen_inputs(3, 4, DIM);
    r.store_patterns(&good).expect("store");
    let before = r.query(&PatternFilter::default()).expect("query");
    let floats = |n: usize| format!("'\\x{}'::bytea", "0000803f".repeat(n));
    let row = |id: &str, column: &str, value: &str| {
        format!(
            "INSERT INTO pattern_cache.patterns (id, generation, deleted, type, domain, framework, content, embedding, \
             verdict, created_at, usage_count, success_count) SELECT '{id}', g, false, 't', 'd', 'jest', 'c', {}, \
             'unknown', 1, 0, 0 FROM pattern_cache.state; UPDATE pattern_cache.patterns SET {column} = {value} WHERE id = '{id}'",
            floats(DIM)
        )
    };
    let cases = [
        ("bad-json", row("bad-json", "metadata", "'not json'")),
        ("other-dim", row("other-dim", "embedding", &floats(DIM + 1))),
        ("ragged", row("ragged", "embedding", "'\\x000080'::bytea")),
        ("nan", row("nan", "embedding", &format!("'\\x0000c07f{}'::bytea", "0000803f".repeat(DIM - 1)))),
        ("verdict", row("verdict", "verdict", "'bogus'")),
        ("coverage", row("coverage", "coverage", "7")),
        ("null-type", row("null-type", "type", "NULL")),
        ("big", row("big", "content", "repeat('x', 2000000)")),
        ("counts", row("counts", "usage_count", "-1")),
        (
            "",
            format!(
                "INSERT INTO pattern_cache.patterns (id, generation, deleted, type, domain, framework, content, embedding, \
                 verdict, created_at) SELECT '', g, false, 't', 'd', 'jest', 'c', {}, 'unknown', 1 FROM pattern_cache.state",
                floats(DIM)
            ),
        ),
    ];
    for (id, sql) in cases {
        let generation = r.metrics().expect("metrics").remote.expect("remote").generation;
        server.psql(
            "hostile",
            &format!(
                "BEGIN; UPDATE pattern_cache.state SET generation = generation + 1;
                 CREATE TEMP TABLE g_now AS SELECT generation AS g FROM pattern_cache.state;
                 {} ; COMMIT;",
                sql.replace("FROM pattern_cache.state", "FROM g_now")
            ),
        );
        let e = r.sync_remote().expect_err(&format!("a sync over the bad row '{id}'"));
        assert_eq!(e.code(), "REMOTE_INVALID_ROW", "{id}: {e}");
        assert!(e.to_string().contains(&format!("'{id}'")), "{id}: {e}");
        assert_eq!(r.query(&PatternFilter::default()).expect("query"), before, "{id}");
        assert_eq!(
            r.metrics().expect("metrics").remote.expect("remote").generation,
            generation
        );
        // Mended: a tombstone in a new generation.
        server.psql(
            "hostile",
            &format!(
                "BEGIN; UPDATE pattern_cache.state SET generation = generation + 1;
                 UPDATE pattern_cache.patterns SET deleted = true, embedding = NULL, metadata = NULL,
                   generation = (SELECT generation FROM pattern_cache.state) WHERE id = '{id}'; COMMIT;"
            ),
        );
        r.sync_remote().expect("a sync after the row was mended");
        assert_eq!(r.query(&PatternFilter::default()).expect("query"), before, "{id}");
    }
    r.shutdown();
}

/// The grants README documents: after `remote migrate` by the owner, a role
/// that may only read and write rows runs a replica. Without the schema, that
/// role is told to run the migration.
fn a_row_only_role_works_after_migrate(server: &Server) {
    server.create_db("granted");
    server.create_db("ungranted");
    server.psql("postgres", "CREATE ROLE app LOGIN");
    server.psql(
        "ungranted",
        "REVOKE CREATE ON SCHEMA public FROM PUBLIC; REVOKE CREATE ON DATABASE ungranted FROM PUBLIC",
    );
    let (from, to) =
        pattern_cache::remote::migrate(&server.url("granted", "postgres"), &Default::default()).expect("migrate");
    assert_eq!((from, to), (0, 2));
    assert_eq!(
        pattern_cache::remote::migrate(&server.url("granted", "postgres"), &Default::default()).expect("again"),
        (2, 2)
    );
    server.psql(
        "granted",
        "GRANT USAGE ON SCHEMA pattern_cache TO app;
         GRANT SELECT, INSERT, UPDATE ON ALL TABLES IN SCHEMA pattern_cache TO app",
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let r = replica(dir.path(), &server.url("granted", "app"), |_| {});
    r.store_patterns(&gen_inputs(4, 3, DIM)).expect("store as app");
    assert!(r.delete_pattern(&gen_inputs(4, 3, DIM)[0].id).expect("delete as app"));
    assert_eq!(r.sync_remote().expect("sync as app").to_generation, 2);
    r.shutdown();
    let dir = tempfile::tempdir().expect("temp dir");
    let r = replica(dir.path(), &server.url("ungranted", "app"), |_| {});
    let e = r
        .store_patterns(&gen_inputs(4, 1, DIM))
        .expect_err("no schema, no right to make it");
    assert_eq!(e.code(), "REMOTE_ERROR", "{e}");
    assert!(e.to_string().contains("pattern-cache remote migrate"), "{e}");
    assert!(sqlite_all(&db_path(dir.path())).is_empty());
    r.shutdown();
}

/// A pass of more changes than a cache file could be amended with runs with
/// the change triggers dropped; afterwards they are back, the log floor says
/// older files must be rebuilt, and small passes are amended as before.
fn a_big_pass_drops_and_restores_the_triggers(server: &Server) {
    server.create_db("big");
    let url = server.url("big", "postgres");
    let dirs: Vec<_> = (0..2).map(|_| tempfile::tempdir().expect("temp dir")).collect();
    let a = replica(dirs[0].path(), &url, |c| c.background_rebuild = Some(false));
    // No notifications and no polls: the passes below are this test's own.
    let b = replica(dirs[1].path(), &url, |c| {
        c.background_rebuild = Some(false);
        c.remote_listen = Some(false);
        c.remote_poll_interval_ms = Some(600_000.0);
    });
    let inputs = gen_inputs(21, 5000, 4);
    a.store_patterns(&inputs[..10]).expect("store");
    b.sync_remote().expect("sync");
    assert!(b.rebuild(pattern_cache::Trigger::Manual).expect("rebuild").success);
    for chunk in inputs[10..].chunks(1000) {
        a.store_patterns(chunk).expect("store");
    }
    let mut model = Model::from_inputs(&inputs);
    let synced = b.sync_remote().expect("a big pass");
    assert_eq!(synced.rows_applied, 4990);
    assert_eq!(b.query(&PatternFilter::default()).expect("read"), model.all());
    assert_eq!(b.stats().expect("stats").pattern_count, 5000);
    let db = pattern_cache::db::Database::open(&db_path(dirs[1].path()))
        .expect("open")
        .db;
    let (triggers, floor): (i64, i64) = db
        .read(|c| {
            Ok((
                c.query_row("SELECT count(*) FROM sqlite_master WHERE type = 'trigger'", [], |r| {
                    r.get(0)
                })?,
                c.query_row("SELECT log_floor FROM cache_state", [], |r| r.get(0))?,
            ))
        })
        .expect("read schema");
    assert_eq!((triggers, floor), (7, synced.to_generation as i64));
    // A small pass again: logged, and tier 1 amended with it.
    assert!(b.rebuild(pattern_cache::Trigger::Manual).expect("rebuild").success);
    let changed = gen_inputs(22, 3, 4);
    a.store_patterns(&changed).expect("store");
    model.store(&changed);
    b.sync_remote().expect("a small pass");
    assert_eq!(b.query(&PatternFilter::default()).expect("read"), model.all());
    assert_eq!(b.metrics().expect("metrics").tier, pattern_cache::Tier::Cache);
    a.shutdown();
    b.shutdown();
}

/// The server stops: reads go on, writes and syncs fail with
/// REMOTE_UNAVAILABLE and write nothing; once it is back, all converge.
fn a_server_that_goes_away(server: &Server) {
    server.create_db("outage");
    let url = server.url("outage", "postgres");
    let dirs: Vec<_> = (0..2).map(|_| tempfile::tempdir().expect("temp dir")).collect();
    let a = replica(dirs[0].path(), &url, |_| {});
    let b = replica(dirs[1].path(), &url, |_| {});
    let inputs = gen_inputs(5, 20, DIM);
    a.store_patterns(&inputs[..10]).expect("store");
    b.sync_remote().expect("sync");
    server.pg_ctl_stop("fast");
    let seen = b.query(&PatternFilter::default()).expect("reads go on");
    assert_eq!(seen.len(), 10);
    for e in [
        b.store_patterns(&inputs[10..]).expect_err("write while down"),
        b.sync_remote().expect_err("sync while down"),
        b.record_usage(&UsageInput {
            id: inputs[0].id.clone(),
            success: true,
            at: None,
        })
        .expect_err("use while down"),
    ] {
        assert_eq!(e.code(), "REMOTE_UNAVAILABLE", "{e}");
    }
    assert_eq!(b.query(&PatternFilter::default()).expect("reads go on"), seen);
    assert_eq!(sqlite_all(&db_path(dirs[1].path())), seen, "nothing written locally");
    server.pg_ctl_start();
    b.store_patterns(&inputs[10..]).expect("write once it is back");
    assert_eq!(a.sync_remote().expect("sync").to_generation, 2);
    assert_eq!(
        a.query(&PatternFilter::default()).expect("read"),
        Model::from_inputs(&inputs).all()
    );
    a.shutdown();
    b.shutdown();
}

/// sslmode require and verify-full (rustls), against a server with a
/// self-signed certificate for localhost.
fn tls(bin: PathBuf) {
    let server = Server::start(bin, true);
    server.create_db("tls");
    let cert = server.data.join("ca.crt");
    let base = format!("postgres://postgres@localhost:{}/tls", server.port);
    let dir = tempfile::tempdir().expect("temp dir");
    for (i, url) in [
        format!("{base}?sslmode=require"),
        format!("{base}?sslmode=verify-full&sslrootcert={}", cert.display()),
        format!("{base}?sslmode=verify-ca&sslrootcert={}", cert.display()),
    ]
    .iter()
    .enumerate()
    {
        let r = replica(&dir.path().join(i.to_string()), url, |_| {});
        r.store_patterns(&gen_inputs(i as u64, 1, DIM))
            .unwrap_or_else(|e| panic!("{url}: {e}"));
        r.shutdown();
    }
    // Not signed by a trusted root: refused.
    let r = replica(
        &dir.path().join("untrusted"),
        &format!("{base}?sslmode=verify-full"),
        |_| {},
    );
    let e = r.sync_remote().expect_err("an untrusted certificate");
    assert_eq!(e.code(), "REMOTE_UNAVAILABLE", "{e}");
    r.shutdown();
}

/// A write caught by the network (its request held mid-flight with the
/// sockets left open, or its answer lost after it ran): the caller is told
/// the truth and the use is counted exactly once; another machine writes
/// meanwhile, never held behind the vanished one (its own timeout is short:
/// waiting for a lock would fail it). With the network gone altogether the
/// caller learns `REMOTE_OUTCOME_UNKNOWN`, and nothing was applied twice.
fn writes_under_network_faults(server: &Server) {
    server.create_db("faults");
    let proxy = Proxy::start(server.port);
    let (d1, d2) = (
        tempfile::tempdir().expect("temp dir"),
        tempfile::tempdir().expect("temp dir"),
    );
    let caught = replica(d1.path(), &proxy.url("faults", "postgres"), |c| {
        c.remote_timeout_ms = Some(1000.0);
        c.remote_listen = Some(false);
        c.remote_poll_interval_ms = Some(3_600_000.0);
    });
    let other = replica(d2.path(), &server.url("faults", "postgres"), |c| {
        c.remote_timeout_ms = Some(2000.0);
    });
    let stored = gen_inputs(7, 3, DIM);
    caught.store_patterns(&stored).expect("store through the proxy");
    let id = stored[0].id.clone();
    let on_bank = || -> i64 {
        server
            .psql(
                "faults",
                &format!("SELECT usage_count FROM pattern_cache.patterns WHERE id = '{id}'"),
            )
            .parse()
            .expect("a count")
    };
    let used = UsageInput {
        id: id.clone(),
        success: true,
        at: None,
    };
    for (n, fault) in [Fault::Hold, Fault::DropReply].into_iter().enumerate() {
        let before = on_bank();
        proxy.arm("record_uses", fault);
        let outcome = std::thread::scope(|s| {
            let write = s.spawn(|| caught.record_usage(&used));
            while proxy.fired() <= n {
                std::thread::yield_now();
            }
            other
                .store_patterns(&gen_inputs(100 + n as u64, 1, DIM))
                .expect("another machine writes while this one's write hangs");
            write.join().expect("no panic")
        });
        assert!(outcome.expect("resolved by its key"), "{fault:?}");
        assert_eq!(on_bank(), before + 1, "{fault:?}: counted exactly once");
        let local = caught.load_pattern(&id).expect("read").expect("there");
        assert_eq!(local.usage_count, before + 1, "{fault:?}: the writer reads its write");
    }
    let before = on_bank();
    proxy.black_hole(true);
    let e = caught.record_usage(&used).expect_err("no network, no answer");
    assert_eq!(e.code(), "REMOTE_OUTCOME_UNKNOWN", "{e}");
    assert!(e.to_string().contains("write key"), "{e}");
    proxy.black_hole(false);
    caught.sync_remote().expect("the network is back");
    assert_eq!(on_bank(), before, "a request that never arrived was not applied");
    caught.shutdown();
    other.shutdown();
}

/// The bank restored from a dump taken earlier, while one replica runs and
/// another is offline; then written past their generation with other
/// content. Every replica resets to the bank (the pass says why), a second
/// instance on a reset replica's database stops serving its old file, and
/// all agree with a fresh replica, down to byte-identical cache files.
fn a_restored_bank_resets_its_replicas(server: &Server) {
    server.create_db("restore");
    let url = server.url("restore", "postgres");
    let dirs: Vec<_> = (0..4).map(|_| tempfile::tempdir().expect("temp dir")).collect();
    let (a, a_resets) = replica_noting_resets(dirs[0].path(), &url);
    let b = replica(dirs[1].path(), &url, |_| {});
    a.store_patterns(&gen_inputs(1, 10, DIM)).expect("store");
    let dump = dirs[3].path().join("bank.dump");
    server.tool("pg_dump", "restore", &["-Fc", "-f", dump.to_str().expect("path")]);
    let later = gen_inputs(2, 6, DIM);
    for p in &later {
        a.store_patterns(std::slice::from_ref(p)).expect("store after the dump");
    }
    let at = b.sync_remote().expect("sync").to_generation;
    assert_eq!(at, 7);
    b.shutdown();
    // A second instance on a's database, reading (tier 1) as of every call.
    let beside = open(dirs[0].path(), |c| c.check_interval_ms = Some(0.0));
    assert_eq!(beside.query(&PatternFilter::default()).expect("query").len(), 16);

    // Restored beside it, then swapped in: a replica reconnecting meanwhile
    // must not find (and migrate) an empty database under the bank's name.
    server.create_db("restored");
    server.tool("pg_restore", "restored", &[dump.to_str().expect("path")]);
    server.psql("postgres", "DROP DATABASE restore WITH (FORCE)");
    server.psql("postgres", "ALTER DATABASE restored RENAME TO restore");
    let bank = |r: &PatternCache| r.query(&PatternFilter::default()).expect("query");
    a.sync_remote().expect("a pass after the restore");
    let why = next_reset(&a_resets);
    assert!(why.contains("generation 1, behind this replica's 7"), "{why}");
    assert_eq!(bank(&a).len(), 10, "back to the dump's content");
    assert_eq!(
        bank(&beside).len(),
        10,
        "the other instance stopped serving the old file"
    );

    // Written past the old generation with other content, by a fresh machine.
    let c = replica(dirs[2].path(), &url, |_| {});
    for p in gen_inputs(3, 9, DIM) {
        c.store_patterns(std::slice::from_ref(&p))
            .expect("store on the restored bank");
    }
    let (b, b_resets) = replica_noting_resets(dirs[1].path(), &url);
    assert_eq!(b.sync_remote().expect("b's pass").to_generation, 10);
    let why = next_reset(&b_resets);
    assert!(why.contains("history at generation 7 is not this replica's"), "{why}");
    assert_eq!(
        a.sync_remote().expect("a's pass").reset,
        None,
        "a follows the new history"
    );
    assert!(a_resets.try_recv().is_err(), "a was reset once");
    let d = tempfile::tempdir().expect("temp dir");
    let fresh = replica(d.path(), &url, |_| {});
    fresh.sync_remote().expect("fresh");
    let want = bank(&fresh);
    assert!(want.len() > 10, "the bank holds the dump and the later writes");
    let mut files = Vec::new();
    for (r, dir) in [
        (&a, dirs[0].path()),
        (&b, dirs[1].path()),
        (&c, dirs[2].path()),
        (&fresh, d.path()),
    ] {
        assert_eq!(bank(r), want);
        assert_eq!(sqlite_all(&db_path(dir)), want);
        assert!(r.rebuild(pattern_cache::Trigger::Manual).expect("rebuild").success);
        files.push(std::fs::read(cache_path(dir)).expect("read cache file"));
    }
    assert!(
        files.windows(2).all(|w| w[0] == w[1]),
        "the replicas built different files"
    );
    assert_eq!(bank(&beside), want);
    for r in [a, b, c, fresh, beside] {
        r.shutdown();
    }
}

/// A replica whose `remote_reset` events arrive on the returned channel.
fn replica_noting_resets(dir: &Path, url: &str) -> (PatternCache, std::sync::mpsc::Receiver<String>) {
    let (tx, rx) = std::sync::mpsc::channel();
    let tx = std::sync::Mutex::new(tx);
    let sink: pattern_cache::EventSink = std::sync::Arc::new(move |e| {
        if let pattern_cache::CacheEvent::RemoteReset { reason } = e {
            let _ = tx.lock().expect("sender").send(reason);
        }
    });
    let config = common::config(dir, |c| {
        c.remote_url = Some(url.to_owned());
        c.remote_poll_interval_ms = Some(100.0);
    });
    (PatternCache::open(config, Some(sink)).expect("open"), rx)
}

/// The next reset's reason (the pass that made it may be the syncer's,
/// which reports it just after it lets go of the pass lock).
fn next_reset(resets: &std::sync::mpsc::Receiver<String>) -> String {
    resets
        .recv_timeout(std::time::Duration::from_secs(60))
        .expect("a remote_reset event")
}

/// `prune` removes the tombstones and write records of older generations; a
/// replica at the new floor goes on, one below it (which would miss the
/// pruned deletes) resets to the bank.
fn pruning_resets_the_replicas_below_the_floor(server: &Server) {
    server.create_db("prune");
    let url = server.url("prune", "postgres");
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().expect("temp dir")).collect();
    let (a, a_resets) = replica_noting_resets(dirs[0].path(), &url);
    let stored = gen_inputs(41, 6, DIM);
    a.store_patterns(&stored).expect("store");
    let (b, _) = replica_noting_resets(dirs[1].path(), &url);
    b.sync_remote().expect("b syncs");
    b.shutdown();
    assert!(a.delete_pattern(&stored[0].id).expect("delete"));
    assert!(a.delete_pattern(&stored[1].id).expect("delete"));
    let tombstones = || server.psql("prune", "SELECT count(*) FROM pattern_cache.patterns WHERE deleted");
    assert_eq!(tombstones(), "2");
    let kept = pattern_cache::remote::prune(&url, &Default::default(), std::time::Duration::from_secs(3600))
        .expect("prune, keeping an hour");
    assert_eq!(
        (kept.floor, kept.tombstones, kept.writes),
        (0, 0, 0),
        "nothing is an hour old"
    );
    let pruned =
        pattern_cache::remote::prune(&url, &Default::default(), std::time::Duration::ZERO).expect("prune everything");
    assert_eq!(pruned.floor, 3);
    assert_eq!(pruned.tombstones, 2);
    assert_eq!(pruned.writes, 2, "the records below the floor; the floor's own stays");
    assert_eq!(tombstones(), "0");
    assert_eq!(a.sync_remote().expect("a at the floor").reset, None);
    assert!(a_resets.try_recv().is_err());
    let (b, b_resets) = replica_noting_resets(dirs[1].path(), &url);
    b.sync_remote().expect("b below the floor");
    let why = next_reset(&b_resets);
    assert!(why.contains("below the bank's prune floor 3"), "{why}");
    let all = PatternFilter::default();
    assert_eq!(b.query(&all).expect("b"), a.query(&all).expect("a"));
    assert_eq!(
        b.query(&all).expect("b").len(),
        4,
        "the pruned deletes are deletes on b too"
    );
    for r in [a, b] {
        r.shutdown();
    }
}

/// `remote.schema`: two banks in one database, each in its own schema with
/// its own notifications and migrations, never see each other's rows; a
/// name that is not a plain identifier is refused before anything connects.
fn two_banks_in_one_database(server: &Server) {
    use pattern_cache::remote::schema::SchemaName;
    server.create_db("shared");
    let url = server.url("shared", "postgres");
    for bad in ["", "Team", "1team", "pg_team", "team-a", "a;drop", &"x".repeat(64)] {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut input = base_input();
        input.remote_url = Some(url.clone());
        input.remote_schema = Some(bad.to_owned());
        let e = pattern_cache::Config::resolve(&input, dir.path()).expect_err("refused");
        assert_eq!(e.code(), "INVALID_ARGUMENT", "{bad}: {e}");
    }
    let team = |name: &str, dir: &Path| {
        replica(dir, &url, |c| {
            c.remote_schema = Some(name.to_owned());
            c.remote_poll_interval_ms = Some(60_000.0);
        })
    };
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().expect("temp dir")).collect();
    let (a, b) = (team("team_a", dirs[0].path()), team("team_b", dirs[1].path()));
    a.store_patterns(&gen_inputs(51, 4, DIM)).expect("store in team_a");
    b.store_patterns(&gen_inputs(52, 3, 16))
        .expect("store in team_b, another dimension");
    let (_, at) = pattern_cache::remote::probe(&url, &SchemaName::parse("team_b").expect("name")).expect("probe");
    assert_eq!(at, 1);
    let a2 = team("team_a", dirs[2].path());
    assert_eq!(a2.sync_remote().expect("sync").to_generation, 1);
    let all = PatternFilter::default();
    assert_eq!(a2.query(&all).expect("a2"), a.query(&all).expect("a"));
    assert_eq!(a.query(&all).expect("a").len(), 4);
    assert_eq!(b.query(&all).expect("b").len(), 3);
    assert_eq!(
        server.psql(
            "shared",
            "SELECT count(*) FROM pg_namespace WHERE nspname IN ('team_a', 'team_b', 'pattern_cache')"
        ),
        "2"
    );
    for r in [a, b, a2] {
        r.shutdown();
    }
}

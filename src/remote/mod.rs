//! One pattern bank across machines: PostgreSQL (or a server speaking its
//! protocol) as the shared source of truth, this machine's SQLite database
//! as its replica. Both local tiers keep serving reads from the replica
//! exactly as without a remote; reads never wait on the network.
//!
//! * `connect`: the connection string and connections; the password never
//!   leaves tokio-postgres's config. `tls`: TLS by rustls, libpq's sslmodes.
//! * `history`: the bank's chain of write keys, and when a replica resets.
//! * `schema`: the remote tables and their migrations.
//! * `writes`: one remote transaction per write, advancing the generation.
//! * `rows`: remote rows validated like local writes.
//! * `replica`: sync passes that apply remote generations locally.
//! * `syncer`: the background thread (one per machine) that LISTENs, polls
//!   and reconnects.

pub mod connect;
mod history;
pub mod replica;
pub mod rows;
pub mod schema;
pub mod syncer;
mod tls;
pub mod writes;

use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::runtime::Runtime;
use tokio_postgres::Client;

use crate::db::Database;
use crate::error::{Error, Result};
use connect::Target;
use replica::SyncOutcome;
use writes::{Called, Write};

/// How long, in timeouts, a write whose outcome is unknown keeps trying to
/// learn it (reconnecting, looking its key up, re-sending) before it gives
/// up with `RemoteOutcomeUnknown`.
const OUTCOME_DEADLINE_TIMEOUTS: u32 = 2;

/// `remote` of `PatternCache.open`.
#[derive(Clone, PartialEq)]
pub struct RemoteConfig {
    pub url: String,
    pub poll_interval: Duration,
    /// LISTEN for notifications (off for pgbouncer in transaction mode).
    pub listen: bool,
    /// The longest one call may take (a write, a page, a connection) before
    /// the remote is taken for unavailable; also the server's statement timeout.
    pub timeout: Duration,
    /// The schema the bank lives in.
    pub schema: schema::SchemaName,
}

impl std::fmt::Debug for RemoteConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteConfig")
            .field("url", &"(redacted)")
            .field("poll_interval", &self.poll_interval)
            .field("listen", &self.listen)
            .field("timeout", &self.timeout)
            .field("schema", &self.schema)
            .finish()
    }
}

/// What `getMetrics().remote` reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RemoteStatus {
    /// The newest remote generation this instance has seen.
    pub remote_generation: u64,
    /// Unix ms of the last pass that completed here (0: none yet).
    pub last_sync_at: i64,
    pub connected: bool,
}

/// This instance's side of the remote.
pub struct Remote {
    target: Target,
    pub config: RemoteConfig,
    db_path: PathBuf,
    /// The connection for writes, opened at first use and again after it
    /// breaks; and `syncRemote`'s own (a write never queues behind a long pass).
    writer: Mutex<Option<Arc<Client>>>,
    syncing: Mutex<Option<Arc<Client>>>,
    remote_generation: AtomicU64,
    last_sync_at: AtomicI64,
    connected: AtomicBool,
}

impl Remote {
    pub fn new(config: RemoteConfig, db_path: &Path) -> Result<Remote> {
        Ok(Remote {
            target: Target::parse(&config.url)?
                .with_timeout(config.timeout)
                .with_schema(config.schema.clone()),
            config,
            db_path: db_path.to_owned(),
            writer: Mutex::new(None),
            syncing: Mutex::new(None),
            remote_generation: AtomicU64::new(0),
            last_sync_at: AtomicI64::new(0),
            connected: AtomicBool::new(false),
        })
    }

    pub fn target(&self) -> &Target {
        &self.target
    }

    pub fn db_path(&self) -> &Path {
        &self.db_path
    }

    pub fn status(&self) -> RemoteStatus {
        RemoteStatus {
            remote_generation: self.remote_generation.load(Ordering::Relaxed),
            last_sync_at: self.last_sync_at.load(Ordering::Relaxed),
            connected: self.connected.load(Ordering::Relaxed),
        }
    }

    /// Notes a generation the remote has reached (from a write, a pass or a notification).
    pub fn saw_generation(&self, generation: u64) {
        self.remote_generation.fetch_max(generation, Ordering::Relaxed);
    }

    pub fn set_connected(&self, up: bool) {
        self.connected.store(up, Ordering::Relaxed);
    }

    /// What the machine's last pass saw (any process's: the syncer may be another).
    pub fn saw_pass(&self, at_ms: i64, remote_generation: u64) {
        self.saw_generation(remote_generation);
        self.last_sync_at.fetch_max(at_ms, Ordering::Relaxed);
    }

    pub fn synced(&self, outcome: &SyncOutcome) {
        self.saw_generation(outcome.to_generation);
        self.last_sync_at.store(crate::clock::now_ms(), Ordering::Relaxed);
    }

    /// Connects, makes sure the remote schema is this release's (migrating
    /// it when allowed) and that this database can replicate that bank.
    pub async fn connect_checked(&self, db: &Database, notified: Option<connect::OnNotify>) -> Result<Client> {
        let client = self.target.connect(notified).await?;
        schema::ensure(&client, &self.target, true).await?;
        let state = replica::read_state(&client, &self.target).await?;
        let local = db.read(replica::local_replica)?;
        replica::check_pairing(&local, &state, &self.target)?;
        self.saw_generation(state.generation as u64);
        Ok(client)
    }

    /// Runs `f` with the write connection, connecting first when needed; a
    /// broken connection is dropped (the next call reconnects).
    fn with_client<T>(
        &self,
        slot: &Mutex<Option<Arc<Client>>>,
        db: &Database,
        f: impl FnOnce(&Runtime, &Client) -> Result<T>,
    ) -> Result<T> {
        let rt = crate::runtime::required()?;
        let mut slot = slot.lock().unwrap_or_else(|p| p.into_inner());
        if slot.as_ref().is_some_and(|c| c.is_closed()) {
            *slot = None;
        }
        let client = match slot.as_ref() {
            Some(c) => Arc::clone(c),
            None => {
                let c = Arc::new(rt.block_on(timed(&self.target, self.connect_checked(db, None)))?);
                *slot = Some(Arc::clone(&c));
                c
            }
        };
        let out = f(rt, &client);
        if matches!(out, Err(Error::RemoteUnavailable(_))) || client.is_closed() {
            *slot = None;
        }
        self.set_connected(slot.is_some());
        out
    }

    /// One write on the remote, then on the replica (the writer reads it at
    /// once). `Ok(None)`: the write changed nothing. Exactly once: a call
    /// whose outcome is unknown is resolved by its key (looked up after a
    /// reconnect; re-sent only when absent) until the deadline, then
    /// `RemoteOutcomeUnknown`. `RemoteUnavailable`: nothing was written.
    pub fn write(&self, db: &Database, write: Write<'_>) -> Result<Option<SyncOutcome>> {
        let key = writes::new_key()?;
        let deadline = Instant::now() + self.target.timeout() * OUTCOME_DEADLINE_TIMEOUTS;
        // Whether a call of this write may have reached the bank.
        let sent = Cell::new(false);
        let mut pause = Duration::from_millis(50);
        loop {
            let called = self.with_client(&self.writer, db, |rt, client| {
                if sent.get()
                    && rt
                        .block_on(timed(&self.target, writes::lookup(client, &self.target, &key)))?
                        .is_some()
                {
                    return Ok(Called::AlreadyApplied);
                }
                sent.set(true);
                rt.block_on(timed(&self.target, writes::call(client, &self.target, &key, write)))
            });
            let committed = match called {
                Ok(Called::Committed(committed)) => committed,
                Ok(Called::Unchanged) => return Ok(None),
                Ok(Called::Busy(detail)) => {
                    return Err(Error::RemoteUnavailable(format!(
                        "{detail}: the bank stayed busy past the timeout (nothing was written)"
                    )))
                }
                // Applied by an earlier call whose answer was lost: the rows
                // come with a pass.
                Ok(Called::AlreadyApplied) => return self.sync(db).or_else(|_| unmoved(db)).map(Some),
                Err(Error::RemoteUnavailable(detail)) if sent.get() => {
                    if Instant::now() + pause >= deadline {
                        return Err(Error::RemoteOutcomeUnknown {
                            key: writes::key_hex(&key),
                            detail,
                        });
                    }
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_secs(1));
                    continue;
                }
                Err(e) => return Err(e),
            };
            self.saw_generation(committed.state.generation as u64);
            // The write is on the bank now: whatever fails locally from here
            // on is not the write's failure (the replica catches up at its
            // next pass).
            return self
                .apply_committed(db, &key, &committed)
                .or_else(|_| unmoved(db))
                .map(Some);
        }
    }

    /// Applies this machine's committed write to the replica, under the pass lock.
    fn apply_committed(
        &self,
        db: &Database,
        key: &writes::WriteKey,
        committed: &writes::Committed,
    ) -> Result<SyncOutcome> {
        let _pass = replica::lock_passes(&self.db_path)?;
        self.with_client(&self.writer, db, |rt, client| {
            let outcome =
                replica::apply_own_write(rt, client, &self.target, db, &committed.state, key, &committed.changes)?;
            self.synced(&outcome);
            Ok(outcome)
        })
    }

    /// `syncRemote()`: one pass now.
    pub fn sync(&self, db: &Database) -> Result<SyncOutcome> {
        self.with_client(&self.syncing, db, |rt, client| self.pass(rt, client, db))
    }

    /// One pass with `client`, under the machine's pass lock.
    pub fn pass(&self, rt: &Runtime, client: &Client, db: &Database) -> Result<SyncOutcome> {
        let _pass = replica::lock_passes(&self.db_path)?;
        let outcome = replica::pull(rt, client, &self.target, db)?;
        self.synced(&outcome);
        Ok(outcome)
    }
}

/// `pattern-cache remote migrate`: brings the remote schema to this
/// release's version. Returns (version found, version now).
pub fn migrate(url: &str, schema: &schema::SchemaName) -> Result<(i64, i64)> {
    let target = Target::parse(url)?.with_schema(schema.clone());
    let rt = crate::runtime::required()?;
    rt.block_on(timed(&target, async {
        let client = target.connect(None).await?;
        let found = schema::ensure(&client, &target, true).await?;
        Ok((found, schema::latest_version()))
    }))
}

/// The outcome of a write that is on the bank but not yet in the replica
/// (its local step failed: the next pass brings it). The write succeeded;
/// what fails locally from there on is not its failure.
fn unmoved(db: &Database) -> Result<SyncOutcome> {
    db.generation().map(|local| SyncOutcome {
        from_generation: local.generation,
        to_generation: local.generation,
        rows_applied: 0,
        local,
        reset: None,
    })
}

/// What `prune` removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pruned {
    /// The bank's prune floor now.
    pub floor: u64,
    /// Tombstones (patterns and agent configs) removed.
    pub tombstones: u64,
    /// Write records removed.
    pub writes: u64,
}

/// `pattern-cache remote prune --keep <duration>`: removes the tombstones and
/// write records of the generations written more than `keep` ago; replicas
/// below the new floor reset to the bank at their next pass. Run as the
/// schema's owner (it deletes rows).
pub fn prune(url: &str, schema: &schema::SchemaName, keep: Duration) -> Result<Pruned> {
    let target = Target::parse(url)?.with_schema(schema.clone());
    let rt = crate::runtime::required()?;
    rt.block_on(timed(&target, async {
        let client = target.connect(None).await?;
        schema::ensure(&client, &target, false).await?;
        let keep_ms = i64::try_from(keep.as_millis()).unwrap_or(i64::MAX);
        let row = client
            .query_typed_one(
                &format!("SELECT * FROM {}.prune($1)", target.schema()),
                &[(&keep_ms, tokio_postgres::types::Type::INT8)],
            )
            .await
            .map_err(|e| target.error(&e))?;
        let count = |i: usize| row.get::<_, i64>(i).max(0) as u64;
        Ok(Pruned {
            floor: count(0),
            tombstones: count(1),
            writes: count(2),
        })
    }))
}

/// `pattern-cache remote status`: the remote's schema version and
/// generation, read without changing anything.
pub fn probe(url: &str, schema: &schema::SchemaName) -> Result<(i64, u64)> {
    let target = Target::parse(url)?.with_schema(schema.clone());
    let rt = crate::runtime::required()?;
    rt.block_on(timed(&target, async {
        let client = target.connect(None).await?;
        let version = schema::ensure(&client, &target, false).await?;
        let state = replica::read_state(&client, &target).await?;
        Ok((version, state.generation as u64))
    }))
}

/// `fut`, or `RemoteUnavailable` once the target's timeout has passed (a
/// silent network, not only a closed one).
pub(crate) async fn timed<T>(target: &Target, fut: impl std::future::Future<Output = Result<T>>) -> Result<T> {
    tokio::time::timeout(target.timeout(), fut).await.unwrap_or_else(|_| {
        Err(Error::RemoteUnavailable(format!(
            "{}: no answer within {} ms",
            target.describe(),
            target.timeout().as_millis()
        )))
    })
}

//! Tier 2: the SQLite database, the source of truth.
//!
//! WAL mode so readers never wait for the writer; every write is one
//! `BEGIN IMMEDIATE` transaction, retried while another process holds the
//! write lock. Reads use a small pool of connections so concurrent async
//! calls do not queue behind one another.

pub mod queries;
pub mod schema;
pub mod write;

pub use write::{apply, Write};

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use rusqlite::{Connection, ErrorCode, OpenFlags, TransactionBehavior};

use crate::error::{Error, Result};

/// How long SQLite itself waits on a lock before reporting SQLITE_BUSY.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// Extra attempts at `BEGIN IMMEDIATE` after SQLITE_BUSY, with backoff.
const WRITE_RETRIES: u32 = 8;
/// SQLite's default automatic checkpoint threshold (WAL pages).
const AUTOCHECKPOINT_PAGES: i64 = 1000;
/// Idle read connections kept for reuse.
const READ_POOL_MAX: usize = 4;

/// The database's change counter: advanced by triggers on every committed
/// row change of patterns or agent configs, from any process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Generation {
    pub generation: u64,
    /// Unix ms of the last change.
    pub changed_at_ms: i64,
    /// Patterns in the database (kept by the same triggers).
    pub pattern_count: u64,
    /// The database's random identity.
    pub source_id: [u8; 16],
    /// The change log holds every change after this generation.
    pub log_floor: u64,
}

pub struct Database {
    path: PathBuf,
    writer: Mutex<Connection>,
    readers: Mutex<Vec<Connection>>,
    /// For reads on the JavaScript thread: never waits on a lock.
    direct: Mutex<Option<Connection>>,
}

/// What opening found.
pub struct Opened {
    pub db: Database,
    /// The schema version before this open (0: a new database).
    pub previous_schema: i64,
}

/// The file a `Database` was opened on: a path now naming another file (the
/// database deleted and made again) must not get the old connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileKey {
    dev: u64,
    ino: u64,
}

impl FileKey {
    fn of(path: &Path) -> Option<FileKey> {
        let m = std::fs::metadata(path).ok()?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            Some(FileKey {
                dev: m.dev(),
                ino: m.ino(),
            })
        }
        #[cfg(not(unix))]
        {
            // No stable identity here: never share (each open is its own).
            let _ = m;
            None
        }
    }
}

/// The databases this process opened lately, by path: every instance on
/// one database shares its connections, and a reopen after the last
/// instance shut down finds them still open (opening SQLite and parsing its
/// schema is most of a second `PatternCache.open`). Instances stay
/// independent: shutting one down leaves the others' connections alone; an
/// entry leaves when a newer one pushes it out or its path names another
/// file. Unix only (elsewhere files have no cheap identity, and an open
/// connection would keep the file from being deleted).
type SharedTable = lru::LruCache<PathBuf, (FileKey, std::sync::Arc<Database>)>;
static SHARED: Mutex<Option<SharedTable>> = Mutex::new(None);
const SHARED_MAX: usize = 4;

impl Database {
    /// The process's `Database` on the file at `path`, if it has one open.
    pub fn shared(path: &Path) -> Option<std::sync::Arc<Database>> {
        let file = FileKey::of(path)?;
        let mut table = lock(&SHARED).ok()?;
        let (k, db) = table.as_mut()?.get(path)?;
        (*k == file).then(|| std::sync::Arc::clone(db))
    }

    /// `open`, or the process's `Database` on that same file when it has
    /// one (then `previous_schema` is the current version: the first opener
    /// migrated).
    pub fn open_shared(path: &Path) -> Result<(std::sync::Arc<Database>, i64)> {
        // The path as configured (absolute already): another spelling of it
        // only misses the sharing, and the file key guards the rest.
        let key_path = path.to_owned();
        if let Some(db) = Database::shared(path) {
            return Ok((db, schema::latest_version()));
        }
        let opened = Database::open(path)?;
        // Opened here, on the pool, so that a later open or read on the
        // JavaScript thread does not pay for opening SQLite and parsing its schema.
        opened.db.warm_direct();
        let db = std::sync::Arc::new(opened.db);
        if let Some(file) = FileKey::of(path) {
            let mut table = lock(&SHARED)?;
            table
                .get_or_insert_with(|| {
                    lru::LruCache::new(std::num::NonZeroUsize::new(SHARED_MAX).unwrap_or(std::num::NonZeroUsize::MIN))
                })
                .put(key_path, (file, std::sync::Arc::clone(&db)));
        }
        Ok((db, opened.previous_schema))
    }

    /// Opens or creates the database (and its directory), sets WAL and
    /// migrates the schema.
    pub fn open(path: &Path) -> Result<Opened> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            crate::fsutil::create_dir(dir)?;
        }
        let writer = open_connection(path)?;
        // journal_mode needs a moment of exclusivity; other openers may hold it.
        with_busy_retry(|| {
            let mode: String = writer.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
            Ok(mode)
        })?;
        let db = Database {
            path: path.to_owned(),
            writer: Mutex::new(writer),
            readers: Mutex::new(Vec::new()),
            direct: Mutex::new(None),
        };
        // Most opens find the schema current: look first without the write
        // lock, so many workers opening at once do not queue behind it.
        let found: i64 = {
            let conn = lock(&db.writer)?;
            conn.query_row("PRAGMA user_version", [], |r| r.get(0))?
        };
        let previous_schema = if found == schema::latest_version() {
            found
        } else {
            db.write(schema::migrate)?
        };
        Ok(Opened { db, previous_schema })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `f` in one IMMEDIATE transaction; commits when it returns Ok,
    /// rolls back (writing nothing) when it returns Err.
    pub fn write<T>(&self, f: impl Fn(&Connection) -> Result<T>) -> Result<T> {
        let mut conn = lock(&self.writer)?;
        with_busy_retry(|| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let out = f(&tx)?;
            tx.commit()?;
            Ok(out)
        })
    }

    /// Like `write`, for work that cannot be repeated (it consumes a
    /// stream): only taking the write lock is retried, `f` runs once. With
    /// `big`, the checkpoint that would copy its pages from the WAL into the
    /// database runs afterwards on a thread of its own, not before this returns.
    pub fn write_once<T>(&self, big: bool, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        let conn = lock(&self.writer)?;
        if big {
            conn.pragma_update(None, "wal_autocheckpoint", 0)?;
        }
        let out = with_busy_retry(|| Ok(conn.execute_batch("BEGIN IMMEDIATE")?)).and_then(|()| {
            let v = f(&conn)?;
            conn.execute_batch("COMMIT")?;
            Ok(v)
        });
        if !conn.is_autocommit() {
            let _ = conn.execute_batch("ROLLBACK");
        }
        if !big {
            return out;
        }
        let _ = conn.pragma_update(None, "wal_autocheckpoint", AUTOCHECKPOINT_PAGES);
        drop(conn);
        if out.is_ok() {
            let path = self.path.clone();
            // Best effort: any later commit's automatic checkpoint does the same.
            let _ = std::thread::Builder::new()
                .name("pattern-cache-checkpoint".into())
                .spawn(move || {
                    if let Ok(c) = open_connection(&path) {
                        let _ = c.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
                    }
                });
        }
        out
    }

    /// Runs one statement that is a transaction by itself (autocommit), then
    /// `after` on the same connection outside any transaction: for a use,
    /// whose UPDATE is atomic alone, so the write lock is held for just it.
    pub fn write_statement<T, U>(
        &self,
        f: impl Fn(&Connection) -> Result<T>,
        after: impl FnOnce(&Connection) -> Result<U>,
    ) -> Result<(T, U)> {
        let conn = lock(&self.writer)?;
        let out = with_busy_retry(|| f(&conn))?;
        Ok((out, after(&conn)?))
    }

    /// Runs `f` on a pooled read connection inside one read transaction, so
    /// everything it reads is one consistent snapshot.
    pub fn read<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        let conn = match lock(&self.readers)?.pop() {
            Some(c) => c,
            None => open_connection(&self.path)?,
        };
        let out = (|| {
            conn.prepare_cached("BEGIN DEFERRED")?.execute([])?;
            let out = f(&conn);
            // A read transaction has nothing to commit; end it either way.
            conn.prepare_cached("COMMIT")?.execute([])?;
            out
        })();
        if conn.is_autocommit() {
            let mut pool = lock(&self.readers)?;
            if pool.len() < READ_POOL_MAX {
                pool.push(conn);
            }
        }
        out
    }

    /// Runs one read statement without ever waiting: `None` when another
    /// thread is using the direct connection or SQLite reports a lock. For
    /// the JavaScript thread, which must not block.
    pub fn try_read_now<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Option<Result<T>> {
        let mut slot = self.direct.try_lock().ok()?;
        if slot.is_none() {
            let conn = match open_connection(&self.path) {
                Ok(c) => c,
                Err(e) => return Some(Err(e)),
            };
            if let Err(e) = conn.busy_timeout(Duration::ZERO) {
                return Some(Err(e.into()));
            }
            *slot = Some(conn);
        }
        let conn = slot.as_ref()?;
        match f(conn) {
            Err(e) if is_busy(&e) => None,
            other => Some(other),
        }
    }

    /// Opens the connection `try_read_now` uses, if it is not yet.
    fn warm_direct(&self) {
        let _ = self.try_read_now(|c| queries::generation(c).map(|_| ()));
    }

    pub fn generation(&self) -> Result<Generation> {
        self.read(queries::generation)
    }
}

/// How long a statement waits for another connection's lock, sleeping
/// `busy_wait(n)` before retry `n`: as `busy_timeout` does, but starting at
/// 50 us instead of SQLite's 1 ms, because the locks here are held for tens
/// of microseconds (a use is one UPDATE) and 8 processes recording uses at
/// once would otherwise spend most of their time asleep.
fn busy_wait(n: i32) -> Duration {
    match n {
        0..=9 => Duration::from_micros(50 * (n as u64 + 1)),
        _ => Duration::from_millis(5),
    }
}

/// The busy handler: false (give up: SQLITE_BUSY) once `BUSY_TIMEOUT` of sleeps is spent.
fn wait_while_busy(n: i32) -> bool {
    let spent: Duration =
        (0..n.clamp(0, 10)).map(busy_wait).sum::<Duration>() + busy_wait(10) * (n.max(10) - 10) as u32;
    if spent >= BUSY_TIMEOUT {
        return false;
    }
    std::thread::sleep(busy_wait(n));
    true
}

fn open_connection(path: &Path) -> Result<Connection> {
    let mut conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_handler(Some(wait_while_busy))?;
    // NORMAL in WAL mode: a committed transaction survives a process crash
    // (SIGKILL); only an OS crash or power loss can take the last ones back.
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    // Checkpoints (SQLite's automatic PASSIVE ones, every 1,000 pages) reset
    // the WAL; this bounds what the file keeps on disk after a large burst.
    conn.pragma_update(None, "journal_size_limit", 64i64 << 20)?;
    Ok(conn)
}

fn is_busy(e: &Error) -> bool {
    matches!(
        e,
        Error::Db(rusqlite::Error::SqliteFailure(f, _))
            if matches!(f.code, ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)
    )
}

fn with_busy_retry<T>(mut f: impl FnMut() -> Result<T>) -> Result<T> {
    let mut attempt = 0;
    loop {
        match f() {
            Err(e) if is_busy(&e) => {
                if attempt >= WRITE_RETRIES {
                    return Err(Error::DbBusy(e.to_string()));
                }
                attempt += 1;
                std::thread::sleep(Duration::from_millis(5 << attempt.min(6)));
            }
            other => return other,
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> Result<MutexGuard<'_, T>> {
    // A poisoned lock only means another call panicked while holding it; the
    // connection itself is still sound (SQLite rolls back open transactions).
    Ok(m.lock().unwrap_or_else(|poisoned| poisoned.into_inner()))
}

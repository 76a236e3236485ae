//! Tier-1 file I/O: building a cache file from the database atomically,
//! and opening one as a memory-mapped, validated view.
//!
//! A build holds an exclusive `flock` on `<cache>.lock` (per open file, so
//! it works across processes and worker threads alike), writes a temp file
//! in the same directory, fsyncs it, keeps the previous file as `.bak`,
//! renames the new one over the old and fsyncs the directory. A file is
//! never rewritten or truncated in place, so a reader's mapping stays valid.

use std::fs::{self, File};
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use crate::clock;
use crate::db::{queries, Database, Generation};
use crate::error::{Error, Result};
use crate::faults::{self, Step};
use crate::format::writer::{CacheMeta, CacheWriter};
use crate::format::{CacheView, Header};
pub use crate::fsutil::create_dir;
use crate::fsutil::{open_lock_file, FILE_MODE};

/// The package version written into every header.
pub const PRODUCER: &str = env!("CARGO_PKG_VERSION");

/// A cache file's companions: lock, backup, and temp name prefix.
#[derive(Debug, Clone)]
pub struct CachePaths {
    pub file: PathBuf,
    pub lock: PathBuf,
    pub backup: PathBuf,
    pub dir: PathBuf,
    pub temp_prefix: String,
}

impl CachePaths {
    pub fn new(file: &Path) -> CachePaths {
        let name = file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "patterns.pcache".into());
        let dir = file
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        CachePaths {
            file: file.to_owned(),
            lock: dir.join(format!("{name}.lock")),
            backup: dir.join(format!("{name}.bak")),
            temp_prefix: format!("{name}.tmp-"),
            dir,
        }
    }
}

/// A freshly built file and what it holds.
#[derive(Debug)]
pub struct Built {
    pub header: Header,
    pub file_size: u64,
    /// False when a valid file of the current generation was already there
    /// (another process built it while this one waited for the lock).
    pub wrote: bool,
    /// The database's trigger-kept pattern count disagreed with the rows
    /// the build read (`REPLACE INTO` from another tool counts as an insert).
    pub count_drifted: bool,
}

/// Which file is at a path, so a reader notices when another process renames
/// a new one into place.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FileIdentity {
    dev: u64,
    ino: u64,
    len: u64,
    /// mtime, Unix ms: when the file was written.
    pub modified_ms: i64,
    /// mtime to the nanosecond, so two writes in one millisecond differ.
    modified_ns: u128,
}

impl FileIdentity {
    pub fn of(path: &Path) -> std::io::Result<FileIdentity> {
        Ok(Self::from_metadata(&fs::metadata(path)?))
    }

    fn from_metadata(m: &fs::Metadata) -> FileIdentity {
        #[cfg(unix)]
        let (dev, ino) = {
            use std::os::unix::fs::MetadataExt;
            (m.dev(), m.ino())
        };
        #[cfg(not(unix))]
        let (dev, ino) = (0, 0);
        let modified = m.modified().unwrap_or(std::time::UNIX_EPOCH);
        FileIdentity {
            dev,
            ino,
            len: m.len(),
            modified_ms: clock::unix_ms(modified),
            modified_ns: clock::unix_ns(modified),
        }
    }
}

/// Opens and validates a cache file (header, section hashes, structure),
/// with the identity of exactly the file that was mapped.
pub fn open_view(path: &Path) -> Result<(CacheView, FileIdentity)> {
    let file = File::open(path).map_err(|e| Error::io(format!("opening {}", path.display()), e))?;
    let identity = FileIdentity::from_metadata(
        &file
            .metadata()
            .map_err(|e| Error::io(format!("reading metadata of {}", path.display()), e))?,
    );
    // SAFETY: cache files are only ever replaced by rename, never modified or
    // truncated in place (this module is their only writer), so the mapped
    // bytes cannot change under the view. Every byte is validated before use.
    let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| Error::io(format!("mapping {}", path.display()), e))?;
    Ok((CacheView::open(Box::new(map))?, identity))
}

/// Validated views shared by every instance in this process, keyed by the
/// identity of the file each maps: a second `open` of an unchanged file
/// costs a `stat`, not a validation and an id table. Files are never
/// modified in place, so an identity always means the same bytes. Views no
/// instance uses are kept (up to the capacity) for the next open, and
/// dropped when their file is replaced.
static SHARED_VIEWS: std::sync::Mutex<Option<lru::LruCache<FileIdentity, SharedView>>> = std::sync::Mutex::new(None);
const SHARED_VIEWS_MAX: usize = 4;
/// How long a file must have been unchanged before its view is shared.
const STABLE_FOR: std::time::Duration = std::time::Duration::from_millis(50);

struct SharedView {
    path: PathBuf,
    view: std::sync::Arc<CacheView>,
}

/// The validated view of the file at `path` when the process table has it
/// (a look, no validation: `None` otherwise).
pub fn shared_view_if_cached(path: &Path) -> Option<(std::sync::Arc<CacheView>, FileIdentity)> {
    let identity = FileIdentity::of(path).ok()?;
    let mut table = SHARED_VIEWS.lock().unwrap_or_else(|p| p.into_inner());
    let shared = table.as_mut()?.get(&identity)?;
    Some((std::sync::Arc::clone(&shared.view), identity))
}

/// `open_view`, through the process-wide table of validated views.
pub fn open_shared_view(path: &Path) -> Result<(std::sync::Arc<CacheView>, FileIdentity)> {
    let identity = FileIdentity::of(path).map_err(|e| Error::io(format!("opening {}", path.display()), e))?;
    {
        let mut table = SHARED_VIEWS.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(shared) = table.as_mut().and_then(|t| t.get(&identity)) {
            return Ok((std::sync::Arc::clone(&shared.view), identity));
        }
    }
    let (view, identity) = open_view(path)?;
    let view = std::sync::Arc::new(view);
    // File times tick coarsely (a few ms): a file rewritten in place (by
    // something else: this package only renames) within one tick would keep
    // its identity. So only a file unchanged for longer than a tick is
    // shared; one written just now is validated again at the next open.
    if clock::now_ns().saturating_sub(identity.modified_ns) < STABLE_FOR.as_nanos() {
        return Ok((view, identity));
    }
    let mut guard = SHARED_VIEWS.lock().unwrap_or_else(|p| p.into_inner());
    let table = guard.get_or_insert_with(|| {
        lru::LruCache::new(std::num::NonZeroUsize::new(SHARED_VIEWS_MAX).unwrap_or(std::num::NonZeroUsize::MIN))
    });
    // The file at this path was replaced: its old views go once unused.
    let replaced: Vec<FileIdentity> = table
        .iter()
        .filter(|(id, s)| s.path == path && **id != identity && std::sync::Arc::strong_count(&s.view) == 1)
        .map(|(id, _)| *id)
        .collect();
    for id in replaced {
        table.pop(&id);
    }
    table.put(
        identity,
        SharedView {
            path: path.to_owned(),
            view: std::sync::Arc::clone(&view),
        },
    );
    Ok((view, identity))
}

/// Whether a file could be of the database's history at `g`: not from past
/// its generation, and at its generation, from the same change (a replica
/// reset to its bank can be back at a generation with other content).
pub fn of_history(file: &Header, g: &Generation) -> bool {
    file.source_id == g.source_id
        && (file.generation < g.generation
            || (file.generation == g.generation && file.created_at_ms == g.changed_at_ms))
}

/// Whether a file is the database as of `g`.
pub fn is_current(file: &Header, g: &Generation) -> bool {
    file.generation == g.generation && of_history(file, g)
}

/// Builds the cache file from the database unless (with `force` false) a
/// valid file of the database's current generation is already in place.
/// `cancel` abandons the build (and its temp file) at the next record.
pub fn build(db: &Database, paths: &CachePaths, force: bool, cancel: &AtomicBool) -> Result<Built> {
    let fault = |step: Step, what: &str| faults::hit(step).map_err(|e| Error::io(what.to_owned(), e));
    fault(Step::CreateDir, "creating the cache directory")?;
    create_dir(&paths.dir)?;
    fault(Step::OpenLock, "opening the lock file")?;
    let lock = open_lock_file(&paths.lock)?;
    fault(Step::Lock, "locking the cache for a build")?;
    lock.lock().map_err(|e| Error::io("locking the cache for a build", e))?;
    // Dropping `lock` closes it, which releases the flock on every path out.

    remove_stale_temps(paths);
    db.read(|conn| {
        let generation = queries::generation(conn)?;
        if !force {
            if let Ok((view, _)) = open_view(&paths.file) {
                if is_current(view.header(), &generation) {
                    return Ok(Built {
                        header: view.header().clone(),
                        file_size: view.file_size(),
                        wrote: false,
                        count_drifted: false,
                    });
                }
            }
        }
        let configs = queries::all_configs(conn)?;
        let meta = CacheMeta {
            producer: PRODUCER.to_owned(),
            created_at_ms: generation.changed_at_ms,
            generation: generation.generation,
            source_id: generation.source_id,
        };
        fault(Step::CreateTemp, "creating a temp file")?;
        let temp = temp_file(paths)?;
        let mut out = BufWriter::with_capacity(1 << 20, temp);
        // The vector rows wait in an unnamed file beside the cache (nothing
        // to clean up after a crash) until the records are written.
        let spill = tempfile::tempfile_in(&paths.dir).map_err(|e| Error::io("creating the vectors spill file", e))?;
        let mut writer = CacheWriter::new(&mut out, Box::new(BufWriter::with_capacity(1 << 20, spill)), &meta)?;
        queries::for_each_pattern_ref(conn, |p| match cancel.load(Ordering::Acquire) {
            true => Err(Error::Closed),
            false => {
                fault(Step::WriteRecords, "writing a record")?;
                writer.add(p)
            }
        })?;
        fault(Step::WriteSections, "writing the index sections")?;
        let header = writer.finish(&configs)?;
        fault(Step::Flush, "flushing the cache file")?;
        let temp = out
            .into_inner()
            .map_err(|e| Error::io("flushing the cache file", e.into_error()))?;
        fault(Step::SyncFile, "syncing the cache file")?;
        temp.as_file()
            .sync_all()
            .map_err(|e| Error::io("syncing the cache file", e))?;
        let file_size = temp
            .as_file()
            .metadata()
            .map_err(|e| Error::io("sizing the cache file", e))?
            .len();
        keep_backup(paths);
        fault(Step::Rename, "renaming the cache file into place")?;
        temp.persist(&paths.file)
            .map_err(|e| Error::io(format!("renaming into {}", paths.file.display()), e.error))?;
        fault(Step::SyncDir, "syncing the cache directory")?;
        sync_dir(&paths.dir)?;
        Ok(Built {
            count_drifted: header.pattern_count != generation.pattern_count,
            header,
            file_size,
            wrote: true,
        })
    })
}

fn temp_file(paths: &CachePaths) -> Result<tempfile::NamedTempFile> {
    let mut builder = tempfile::Builder::new();
    builder.prefix(&paths.temp_prefix);
    #[cfg(unix)]
    {
        // The caller's umask applies, and the file is never world-writable.
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(fs::Permissions::from_mode(FILE_MODE));
    }
    builder
        .tempfile_in(&paths.dir)
        .map_err(|e| Error::io(format!("creating a temp file in {}", paths.dir.display()), e))
}

/// Removes the temp files of builders that died, when no build is running
/// (a non-blocking try of the build lock: opening never waits for a
/// builder). Without it, a killed build's full-size temp file would stay
/// until the next build.
pub fn remove_dead_builds(paths: &CachePaths) {
    if !paths.lock.exists() {
        return; // no build ever ran here, so none died
    }
    let Ok(lock) = open_lock_file(&paths.lock) else {
        return;
    };
    if lock.try_lock().is_ok() {
        remove_stale_temps(paths);
    }
}

/// Temp files can only be left by a writer that died: the build lock is held.
fn remove_stale_temps(paths: &CachePaths) {
    let Ok(entries) = fs::read_dir(&paths.dir) else {
        return;
    };
    for entry in entries.flatten() {
        if entry.file_name().to_string_lossy().starts_with(&paths.temp_prefix) {
            let _ = fs::remove_file(entry.path());
        }
    }
}

/// The file being replaced stays readable as `.bak` (best effort: a backup
/// that cannot be made never fails a build).
fn keep_backup(paths: &CachePaths) {
    if !paths.file.exists() || faults::hit(Step::Backup).is_err() {
        return;
    }
    let _ = fs::remove_file(&paths.backup);
    if fs::hard_link(&paths.file, &paths.backup).is_err() {
        let _ = fs::copy(&paths.file, &paths.backup);
    }
}

fn sync_dir(dir: &Path) -> Result<()> {
    #[cfg(unix)]
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io(format!("syncing {}", dir.display()), e))?;
    let _ = dir;
    Ok(())
}

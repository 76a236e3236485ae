//! File-system helpers shared by the database and the cache file (below
//! both, so neither imports the other for them).

use std::fs::{self, File, OpenOptions};
use std::path::Path;

use crate::error::{Error, Result};

/// Mode asked for new files (then narrowed by the umask): never world-writable.
#[cfg(unix)]
pub const FILE_MODE: u32 = 0o664;
/// Mode asked for new directories (then narrowed by the umask).
#[cfg(unix)]
const DIR_MODE: u32 = 0o775;

/// Creates a directory (and its parents) that is never world-writable.
pub fn create_dir(dir: &Path) -> Result<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(DIR_MODE);
    }
    builder
        .create(dir)
        .map_err(|e| Error::io(format!("creating {}", dir.display()), e))
}

/// A lock file beside the database or cache file (for `flock`): created
/// with `FILE_MODE` when absent, and never followed through a symlink, so a
/// planted link cannot make this package create or open a file elsewhere.
pub fn open_lock_file(path: &Path) -> Result<File> {
    let mut options = OpenOptions::new();
    options.create(true).truncate(false).write(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(FILE_MODE).custom_flags(libc::O_NOFOLLOW);
    }
    options
        .open(path)
        .map_err(|e| Error::io(format!("opening {}", path.display()), e))
}

/// `path` with `suffix` appended to its file name (`a.db` -> `a.db.lock`).
pub fn with_suffix(path: &Path, suffix: &str) -> std::path::PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    name.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lock_file_is_created_and_reopened() {
        let dir = tempfile::tempdir().unwrap();
        let path = with_suffix(&dir.path().join("a.db"), ".lock");
        assert_eq!(path.file_name().unwrap(), "a.db.lock");
        open_lock_file(&path).unwrap();
        open_lock_file(&path).unwrap();
        assert!(path.is_file());
    }

    #[cfg(unix)]
    #[test]
    fn a_symlinked_lock_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("elsewhere");
        let link = dir.path().join("a.db.lock");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let err = open_lock_file(&link).unwrap_err();
        assert_eq!(err.code(), "IO_ERROR");
        assert!(!target.exists(), "the link's target must not be created");
        // An existing target is refused the same way.
        fs::write(&target, b"x").unwrap();
        assert!(open_lock_file(&link).is_err());
        assert_eq!(fs::read(&target).unwrap(), b"x");
    }
}

//! File-system helpers shared by the database and the cache file (below
//! both, so neither imports the other for them).

use std::fs;
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

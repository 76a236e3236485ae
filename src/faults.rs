//! Fault injection for the reliability battery: with the cargo feature
//! `fault-injection`, a test can make one step of a cache build fail with an
//! OS error (ENOSPC, EIO, EROFS, ...) or panic. Without the feature, `hit`
//! is an empty inline function and nothing here exists at run time.

use std::io;

/// The steps of a cache build (in order), and other places a test can break.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    CreateDir,
    OpenLock,
    Lock,
    CreateTemp,
    WriteRecords,
    WriteSections,
    Flush,
    SyncFile,
    Backup,
    Rename,
    SyncDir,
    /// Inside a rebuild, before it reads the database (for panics).
    Rebuild,
    /// Inside a read served by tier 1 (for panics).
    Read,
    /// After a replica applied a page of remote rows, before it commits.
    ReplicaPage,
}

impl Step {
    pub const BUILD: [Step; 11] = [
        Step::CreateDir,
        Step::OpenLock,
        Step::Lock,
        Step::CreateTemp,
        Step::WriteRecords,
        Step::WriteSections,
        Step::Flush,
        Step::SyncFile,
        Step::Backup,
        Step::Rename,
        Step::SyncDir,
    ];

    /// The steps the Node tests break by name (`injectFault`).
    pub fn parse(name: &str) -> Option<Step> {
        Some(match name {
            "read" => Step::Read,
            "rebuild" => Step::Rebuild,
            "write_records" => Step::WriteRecords,
            "rename" => Step::Rename,
            _ => return None,
        })
    }
}

#[cfg(feature = "fault-injection")]
mod plan {
    use super::Step;
    use std::sync::Mutex;

    /// What to break: an OS error number, or a panic (`None`).
    pub static PLAN: Mutex<Option<(Step, Option<i32>)>> = Mutex::new(None);
}

/// Breaks `step` with OS error `errno`, or with a panic when `errno` is
/// `None`; `set(None)` heals. Process-wide: tests that use it run one at a time.
#[cfg(feature = "fault-injection")]
pub fn set(fault: Option<(Step, Option<i32>)>) {
    *plan::PLAN.lock().unwrap_or_else(|p| p.into_inner()) = fault;
}

/// Called at each step; fails or panics there when a test asked for it.
#[cfg(feature = "fault-injection")]
pub fn hit(step: Step) -> io::Result<()> {
    let planned = *plan::PLAN.lock().unwrap_or_else(|p| p.into_inner());
    match planned {
        Some((s, Some(errno))) if s == step => Err(io::Error::from_raw_os_error(errno)),
        Some((s, None)) if s == step => panic!("injected panic at {step:?}"), // ok: fault injection, test builds only
        _ => Ok(()),
    }
}

#[cfg(not(feature = "fault-injection"))]
#[inline(always)]
pub fn hit(_step: Step) -> io::Result<()> {
    Ok(())
}

//! The package's one tokio runtime: the scheduler's rebuild tasks and the
//! remote's connections and syncer run on it. Started at first use; a
//! process that never rebuilds in the background nor has a remote starts none.

use std::sync::OnceLock;

use tokio::runtime::Runtime;

use crate::error::{Error, Result};

/// The runtime, or `None` when the OS refused its threads.
pub fn get() -> Option<&'static Runtime> {
    static RUNTIME: OnceLock<Option<Runtime>> = OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .max_blocking_threads(4)
                .thread_name("pattern-cache-bg")
                .enable_time()
                .enable_io()
                .build()
                .ok()
        })
        .as_ref()
}

/// `get`, for callers that must have it.
pub fn required() -> Result<&'static Runtime> {
    get().ok_or_else(|| Error::Internal("no tokio runtime could be started".into()))
}

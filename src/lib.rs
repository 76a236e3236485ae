//! pattern-cache: a two-tier store for test patterns.
//!
//! # How data flows
//!
//! ```text
//!  JavaScript ──> src/napi (binding: convert, call, map errors)
//!                    │
//!                    ▼
//!               loader::PatternCache ──writes──> db (SQLite, WAL; tier 2, the truth)
//!                    │    ▲                         │ triggers advance a generation
//!              reads │    │ rebuild                 ▼ counter on every change
//!                    ▼    └──── cache_file::build <─┘ (one read transaction)
//!               format::CacheView  <── mmap ── <cache>.pcache (tier 1)
//!                    │                             RECORDS + VECTORS + indexes
//!                    ▼
//!               search (filter, scan the VECTORS rows in place, rescore, MMR)
//! ```
//!
//! * Writes are validated whole (`validate`) into one `db::Write`, which the
//!   loader's one `commit` (`loader::writes`) sends where the truth is: to
//!   SQLite (`db::apply`, one `BEGIN IMMEDIATE` transaction) or, with a
//!   remote, to the bank (`remote::writes::commit`). Triggers advance
//!   `cache_state.generation` for every row change, whichever process or
//!   tool made it.
//! * A cache file records the generation (and the database's random
//!   identity) it was built from. The loader serves from it while that is
//!   the newest generation it knows (its own writes update that at once;
//!   other processes' at most every `checkInterval`), or, when the file is a
//!   few changes behind, from the file amended with the changed rows read
//!   from the change log the triggers keep (`overlay`). Otherwise SQLite.
//! * Building streams every pattern, in id order, from one SQLite read
//!   transaction into a temp file (`format::writer`), then renames it into
//!   place under a cross-process file lock. Readers map the file
//!   (`memmap2`), validate the header and small sections at open, and hash
//!   each record the first time it is read. Other processes notice the new
//!   file at their next check and map it.
//! * Similarity search (`search`) reads the same tiers: on tier 1 it
//!   intersects the index lists, scans only those rows of the VECTORS section
//!   as `&[f32]` straight from the map (hashing each block on first touch),
//!   leaves out rows the overlay changed and scores the overlay's instead; on
//!   tier 2 it streams the matching embeddings from SQLite. Both rank with a
//!   float32 SIMD kernel widened by its error bound and rescore the survivors
//!   in float64, so both give the exact answer, bit for bit.
//! * `scheduler` runs rebuilds in the background (tokio): after writes,
//!   invalidations and at 80% of `maxAge`, debounced and one at a time.
//! * With a remote (`remote`, docs/REMOTE.md), PostgreSQL is the truth and
//!   SQLite its replica: a write is one call of a server-side function
//!   (one transaction, advancing the remote generation and its chain head,
//!   carrying a random key that makes it exactly-once), then applied
//!   locally before it resolves; the syncer (`remote::syncer`, one per
//!   machine) and `syncRemote()` pull newer rows and apply them in one local
//!   transaction pinned to the remote generation (`remote::replica`), or
//!   reset the replica when the bank's history is not its own
//!   (`remote::history`), so from the loader's side a pass is one more
//!   database change: overlay, rebuild and reads work as above.
//! * Anything wrong with tier 1 (missing, corrupt, other major, too far
//!   behind, unwritable directory) sends reads to SQLite; the reason is in
//!   the metrics and in a `fallback` event.
//!
//! * The loader (`loader/`) is split by responsibility: `reads` (which tier
//!   answers), `writes` (the commit), `freshness` (database checks, the
//!   overlay, and the pure decisions: is a check due, has the file expired,
//!   is a rebuild due), `rebuild` and `report`.
//!
//! Everything here is plain Rust; only `src/napi` (feature `napi`) touches
//! N-API, so `cargo test` runs without Node. The modules below are listed in
//! layers, and imports only point up the list (`tests/module_graph.rs`).

// Modules are listed in layers: each imports only from the layers above it
// (tests/module_graph.rs checks this).
//
// Leaves: errors, time, the runtime, files, the data model.
pub mod clock;
pub mod error;
pub mod faults;
pub(crate) mod fsutil;
pub(crate) mod metrics;
pub mod model;
pub(crate) mod runtime;
// Storage and its readers: the file format, SQLite, the cache file's
// build and views, the overlay, search, input validation.
pub mod cache_file;
pub mod db;
pub mod format;
pub(crate) mod index;
pub mod overlay;
pub mod search;
pub(crate) mod validate;
// The remote bank, and the configuration (which names it).
pub mod config;
pub mod remote;
// Background rebuilds, then the loader that ties it all together.
pub mod loader;
pub(crate) mod scheduler;
// The Node binding (feature `napi`): convert, call, map errors.
#[cfg(feature = "napi")]
mod napi;

// The embedding API. The modules above stay public for the integration
// tests and the fuzz and torture harnesses, which check the format, the
// database and search directly.
pub use config::{Config, ConfigInput};
pub use error::{Error, Result};
pub use loader::{
    EventSink, FileInfo, FileState, Inspection, LogSink, MetricsReport, PatternCache, RemoteReport, Tier,
};
pub use model::*;
pub use remote::replica::SyncOutcome;
pub use remote::RemoteConfig;
pub use search::SearchQuery;

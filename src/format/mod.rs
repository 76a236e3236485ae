//! The tier-1 file format: a fixed binary header, a fixed-width record
//! directory, and MessagePack sections. `docs/FORMAT.md` is the specification;
//! this module is its only implementation.
//!
//! Layout (all integers little-endian):
//!
//! ```text
//! [header 512 B][RECORDS][VECTORS][DIRECTORY][IDS][INDEXES][CONFIGS][VECTOR_INDEX]
//! ```
//!
//! Records come first so a build can stream them to disk; the header is
//! written last, at offset 0, once every section's offset and hash is known.
//! A reader verifies the header and the small sections (directory, ids,
//! indexes, configs, vector index) when it opens a file, each record's own
//! SHA-256 (over the record and its vector row) the first time that record
//! is read, and each block of vector rows the first time a scan reads it, so
//! opening does not hash the whole file.

pub mod codec;
pub mod header;
pub mod reader;
pub mod record;
pub mod vectors;
pub mod writer;

pub use header::{FormatVersion, Header, SectionId, FORMAT_VERSION, HEADER_LEN, MAGIC};
pub use reader::CacheView;
pub use writer::write_cache;

/// Size of one directory entry: record offset u64, record length u32,
/// id offset u32, id length u32, reserved u32, record SHA-256 [32].
pub const DIR_ENTRY_LEN: usize = 56;

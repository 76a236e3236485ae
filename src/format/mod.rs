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

/// Serde helper: a `Vec<f32>` as one MessagePack `bin` of little-endian f32s.
pub mod f32_bytes {
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[f32], s: S) -> Result<S::Ok, S::Error> {
        let mut bytes = Vec::with_capacity(v.len() * 4);
        for x in v {
            bytes.extend_from_slice(&x.to_le_bytes());
        }
        s.serialize_bytes(&bytes)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<f32>, D::Error> {
        d.deserialize_bytes(F32Visitor)
    }

    /// Converts straight from whatever byte slice the decoder has, borrowed
    /// or copied, without an intermediate buffer.
    struct F32Visitor;

    impl serde::de::Visitor<'_> for F32Visitor {
        type Value = Vec<f32>;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a byte array of little-endian f32s")
        }

        fn visit_bytes<E: serde::de::Error>(self, bytes: &[u8]) -> Result<Vec<f32>, E> {
            if !bytes.len().is_multiple_of(4) {
                return Err(E::custom("embedding length is not a multiple of 4"));
            }
            Ok(from_le_bytes(bytes))
        }
    }

    /// Little-endian f32 bytes (as in the database's BLOB column) to floats.
    pub fn from_le_bytes(bytes: &[u8]) -> Vec<f32> {
        bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect()
    }

    /// Floats to little-endian bytes.
    pub fn to_le_bytes(v: &[f32]) -> Vec<u8> {
        // Filled in place (one pass the compiler turns into a copy on
        // little-endian machines), not grown four bytes at a time.
        let mut out = vec![0u8; v.len() * 4];
        for (bytes, x) in out.chunks_exact_mut(4).zip(v) {
            bytes.copy_from_slice(&x.to_le_bytes());
        }
        out
    }
}

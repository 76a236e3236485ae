//! Embeddings as bytes: little-endian f32s, as the database's BLOB column,
//! the cache file's VECTORS rows and the remote's `bytea` hold them; and the
//! serde helper that writes a `Vec<f32>` as one MessagePack `bin`.

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

//! The fixed 512-byte header: identity, version, provenance, section table,
//! and a SHA-256 over all of it.

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

pub const MAGIC: [u8; 8] = *b"\x89PCACHE\n";
pub const HEADER_LEN: usize = 512;
/// Bytes covered by the header's own checksum (everything before it).
const HEADER_HASHED: usize = HEADER_LEN - 32;
const PRODUCER_LEN: usize = 32;
const SECTION_COUNT: usize = 7;
const SECTION_TABLE_AT: usize = 88;
const SECTION_ENTRY_LEN: usize = 48;
const SOURCE_ID_AT: usize = 424;
/// Flag bits this reader understands (none in 2.x). A later minor may set a
/// bit to say "readers that do not know this bit must not use the file".
const KNOWN_FLAGS: u32 = 0;

/// Semantic version of the file format. Another major cannot be read; a
/// newer minor or patch can (it only adds what older readers may ignore).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FormatVersion {
    pub major: u16,
    pub minor: u16,
    pub patch: u16,
}

pub const FORMAT_VERSION: FormatVersion = FormatVersion {
    major: 2,
    minor: 0,
    patch: 0,
};

impl std::fmt::Display for FormatVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// The sections, in file order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SectionId {
    Records = 0,
    Vectors = 1,
    Directory = 2,
    Ids = 3,
    Indexes = 4,
    Configs = 5,
    VectorIndex = 6,
}

impl SectionId {
    pub const ALL: [SectionId; SECTION_COUNT] = [
        SectionId::Records,
        SectionId::Vectors,
        SectionId::Directory,
        SectionId::Ids,
        SectionId::Indexes,
        SectionId::Configs,
        SectionId::VectorIndex,
    ];
}

/// Where a section is and what it hashes to. The records and vectors
/// sections' hashes are all zero: each record carries its own hash in the
/// directory, and each block of vector rows in the vector index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Section {
    pub offset: u64,
    pub len: u64,
    pub sha256: [u8; 32],
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub version: FormatVersion,
    /// The pattern-cache package version that wrote the file.
    pub producer: String,
    /// Unix ms at which the database content this file holds was committed
    /// (recorded by the database's triggers), so that equal content gives an
    /// equal file. The time the file itself was written is its mtime.
    pub created_at_ms: i64,
    /// The database generation the file was built from.
    pub generation: u64,
    pub pattern_count: u64,
    pub config_count: u64,
    /// Dimension of every embedding in the file (0 when there are none).
    pub embedding_dim: u32,
    /// The identity of the database the file was built from (random, made
    /// when the database was created), so a file is never taken for the
    /// cache of another database that happens to be at the same generation.
    pub source_id: [u8; 16],
    pub sections: [Section; SECTION_COUNT],
}

impl Header {
    pub fn section(&self, id: SectionId) -> Section {
        self.sections[id as usize]
    }

    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        b[0..8].copy_from_slice(&MAGIC);
        b[8..10].copy_from_slice(&self.version.major.to_le_bytes());
        b[10..12].copy_from_slice(&self.version.minor.to_le_bytes());
        b[12..14].copy_from_slice(&self.version.patch.to_le_bytes());
        b[14..16].copy_from_slice(&(HEADER_LEN as u16).to_le_bytes());
        let producer = self.producer.as_bytes();
        let n = producer.len().min(PRODUCER_LEN);
        b[16..16 + n].copy_from_slice(&producer[..n]);
        b[48..56].copy_from_slice(&self.created_at_ms.to_le_bytes());
        b[56..64].copy_from_slice(&self.generation.to_le_bytes());
        b[64..72].copy_from_slice(&self.pattern_count.to_le_bytes());
        b[72..80].copy_from_slice(&self.config_count.to_le_bytes());
        b[80..84].copy_from_slice(&self.embedding_dim.to_le_bytes());
        // 84..88: flags, zero in 2.0
        for (i, s) in self.sections.iter().enumerate() {
            let at = SECTION_TABLE_AT + i * SECTION_ENTRY_LEN;
            b[at..at + 8].copy_from_slice(&s.offset.to_le_bytes());
            b[at + 8..at + 16].copy_from_slice(&s.len.to_le_bytes());
            b[at + 16..at + 48].copy_from_slice(&s.sha256);
        }
        b[SOURCE_ID_AT..SOURCE_ID_AT + 16].copy_from_slice(&self.source_id);
        // 440..480 reserved, zero
        let digest = Sha256::digest(&b[..HEADER_HASHED]);
        b[HEADER_HASHED..].copy_from_slice(&digest);
        b
    }

    /// Parses and checks a header: magic, major version, checksum, and that
    /// the sections tile the file exactly, in order, from the end of the header.
    pub fn decode(bytes: &[u8]) -> Result<Header> {
        if bytes.len() < 16 || bytes[0..8] != MAGIC {
            // Whatever sits where the cache file should be is not one: corrupt.
            return Err(Error::CacheCorrupt("not a pattern-cache file (bad magic)".into()));
        }
        let version = FormatVersion {
            major: u16_at(bytes, 8),
            minor: u16_at(bytes, 10),
            patch: u16_at(bytes, 12),
        };
        if version.major != FORMAT_VERSION.major {
            return Err(Error::CacheIncompatible(format!(
                "format {version} is not readable by format {FORMAT_VERSION} (another major)"
            )));
        }
        let header_len = u16_at(bytes, 14) as usize;
        if header_len != HEADER_LEN {
            return Err(Error::CacheCorrupt(format!(
                "header length {header_len}, expected {HEADER_LEN}"
            )));
        }
        if bytes.len() < HEADER_LEN {
            return Err(Error::CacheCorrupt(format!(
                "file of {} bytes is shorter than its header",
                bytes.len()
            )));
        }
        let digest = Sha256::digest(&bytes[..HEADER_HASHED]);
        if digest.as_slice() != &bytes[HEADER_HASHED..HEADER_LEN] {
            return Err(Error::CacheCorrupt("header checksum mismatch".into()));
        }
        let flags = u32_at(bytes, 84);
        if flags & !KNOWN_FLAGS != 0 {
            return Err(Error::CacheIncompatible(format!(
                "format {version} uses features (flags {flags:#x}) this reader does not know"
            )));
        }
        let mut source_id = [0u8; 16];
        source_id.copy_from_slice(&bytes[SOURCE_ID_AT..SOURCE_ID_AT + 16]);
        let producer_raw = &bytes[16..16 + PRODUCER_LEN];
        let end = producer_raw.iter().position(|&c| c == 0).unwrap_or(PRODUCER_LEN);
        let producer = String::from_utf8_lossy(&producer_raw[..end]).into_owned();
        let mut sections = [Section::default(); SECTION_COUNT];
        for (i, s) in sections.iter_mut().enumerate() {
            let at = SECTION_TABLE_AT + i * SECTION_ENTRY_LEN;
            s.offset = u64_at(bytes, at);
            s.len = u64_at(bytes, at + 8);
            s.sha256.copy_from_slice(&bytes[at + 16..at + 48]);
        }
        let header = Header {
            version,
            producer,
            created_at_ms: u64_at(bytes, 48) as i64,
            generation: u64_at(bytes, 56),
            pattern_count: u64_at(bytes, 64),
            config_count: u64_at(bytes, 72),
            embedding_dim: u32_at(bytes, 80),
            source_id,
            sections,
        };
        header.check_layout(bytes.len() as u64)?;
        Ok(header)
    }

    fn check_layout(&self, file_len: u64) -> Result<()> {
        let mut expected = HEADER_LEN as u64;
        for (i, s) in self.sections.iter().enumerate() {
            if s.offset != expected {
                return Err(Error::CacheCorrupt(format!(
                    "section {i} at offset {}, expected {expected}",
                    s.offset
                )));
            }
            expected = s
                .offset
                .checked_add(s.len)
                .ok_or_else(|| Error::CacheCorrupt(format!("section {i} length overflows")))?;
        }
        if expected != file_len {
            return Err(Error::CacheCorrupt(format!(
                "sections end at {expected} but the file has {file_len} bytes"
            )));
        }
        let dir_len = self.section(SectionId::Directory).len;
        if Some(dir_len) != self.pattern_count.checked_mul(super::DIR_ENTRY_LEN as u64) {
            return Err(Error::CacheCorrupt(format!(
                "directory of {dir_len} bytes does not hold {} patterns",
                self.pattern_count
            )));
        }
        Ok(())
    }
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(a)
}

pub(crate) fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> (Header, u64) {
        let mut sections = [Section::default(); SECTION_COUNT];
        let mut at = HEADER_LEN as u64;
        for (i, s) in sections.iter_mut().enumerate() {
            s.offset = at;
            s.len = if i == SectionId::Directory as usize { 56 } else { 10 };
            s.sha256 = [i as u8; 32];
            at += s.len;
        }
        let h = Header {
            version: FORMAT_VERSION,
            producer: "0.1.0".into(),
            created_at_ms: 1_700_000_000_000,
            generation: 42,
            pattern_count: 1,
            config_count: 0,
            embedding_dim: 8,
            source_id: [7; 16],
            sections,
        };
        (h, at)
    }

    #[test]
    fn round_trip() {
        let (h, len) = sample();
        let mut file = h.encode().to_vec();
        file.resize(len as usize, 0);
        assert_eq!(Header::decode(&file).unwrap(), h);
    }

    #[test]
    fn rejects_bad_magic_other_major_and_flipped_bits() {
        let (h, len) = sample();
        let mut file = h.encode().to_vec();
        file.resize(len as usize, 0);
        let mut bad = file.clone();
        bad[0] ^= 1;
        assert_eq!(Header::decode(&bad).unwrap_err().code(), "CACHE_CORRUPT");
        let mut other = h.clone();
        other.version.major = 1;
        let mut f2 = other.encode().to_vec();
        f2.resize(len as usize, 0);
        assert_eq!(Header::decode(&f2).unwrap_err().code(), "CACHE_INCOMPATIBLE");
        for at in [20, 60, 100, 300, 430, 470] {
            let mut flipped = file.clone();
            flipped[at] ^= 0x10;
            assert_eq!(
                Header::decode(&flipped).unwrap_err().code(),
                "CACHE_CORRUPT",
                "byte {at}"
            );
        }
        assert_eq!(
            Header::decode(&file[..len as usize - 1]).unwrap_err().code(),
            "CACHE_CORRUPT"
        );
        assert_eq!(Header::decode(&file[..100]).unwrap_err().code(), "CACHE_CORRUPT");
    }

    #[test]
    fn unknown_flags_make_a_file_incompatible() {
        let (h, len) = sample();
        let mut file = h.encode().to_vec();
        file.resize(len as usize, 0);
        file[84] = 1;
        let digest = Sha256::digest(&file[..HEADER_HASHED]);
        file[HEADER_HASHED..HEADER_LEN].copy_from_slice(&digest);
        assert_eq!(Header::decode(&file).unwrap_err().code(), "CACHE_INCOMPATIBLE");
    }

    #[test]
    fn newer_minor_is_accepted() {
        let (mut h, len) = sample();
        h.version.minor = 7;
        let mut file = h.encode().to_vec();
        file.resize(len as usize, 0);
        assert_eq!(Header::decode(&file).unwrap().version.minor, 7);
    }
}

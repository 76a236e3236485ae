//! Streams a cache file: records first (hashed one by one), then the
//! directory, ids, indexes and configs, then the header at offset 0.
//! Equal inputs give equal bytes: every part is in a canonical order and
//! nothing time- or machine-dependent is written beyond what `CacheMeta` says.

use std::io::{Seek, SeekFrom, Write};

use sha2::{Digest, Sha256};

use super::codec;
use super::header::{Header, Section, SectionId, FORMAT_VERSION, HEADER_LEN};
use super::DIR_ENTRY_LEN;
use crate::error::{Error, Result};
use crate::index::IndexBuilder;
use crate::model::{AgentConfig, Pattern};

/// What the header records about the source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheMeta {
    pub producer: String,
    pub created_at_ms: i64,
    pub generation: u64,
    pub source_id: [u8; 16],
}

/// Writes a whole cache file to `out` (positioned anywhere; it seeks).
/// `patterns` must come in strictly ascending id order and share one
/// embedding dimension; `configs` in ascending agent id order.
pub fn write_cache<W: Write + Seek>(
    out: &mut W,
    meta: &CacheMeta,
    patterns: impl Iterator<Item = Result<Pattern>>,
    configs: &[AgentConfig],
) -> Result<Header> {
    let io = |e| Error::io("writing cache file", e);
    out.seek(SeekFrom::Start(HEADER_LEN as u64)).map_err(io)?;

    let mut directory = Vec::new();
    let mut ids = Vec::new();
    let mut index = IndexBuilder::default();
    let mut record = Vec::new();
    let mut records_len: u64 = 0;
    let mut count: u64 = 0;
    let mut dim: Option<usize> = None;
    let mut last_id: Option<String> = None;

    for p in patterns {
        let p = p?;
        // The reader rejects what breaks these; never write such a file.
        if p.id.is_empty() || p.embedding.is_empty() {
            return Err(Error::Internal(format!(
                "record '{}' has an empty id or embedding",
                p.id
            )));
        }
        if last_id.as_deref().is_some_and(|last| last >= p.id.as_str()) {
            return Err(Error::Internal(format!("records out of id order at '{}'", p.id)));
        }
        if *dim.get_or_insert(p.embedding.len()) != p.embedding.len() {
            return Err(Error::Internal(format!(
                "record '{}' has another embedding dimension",
                p.id
            )));
        }
        record.clear();
        codec::encode_record(&p, &mut record)?;
        out.write_all(&record).map_err(io)?;

        let too_big = || Error::Internal("cache file exceeds the format's 4 GiB id/record limits".into());
        let rec_len = u32::try_from(record.len()).map_err(|_| too_big())?;
        let id_off = u32::try_from(ids.len()).map_err(|_| too_big())?;
        let id_len = u32::try_from(p.id.len()).map_err(|_| too_big())?;
        directory.extend_from_slice(&records_len.to_le_bytes());
        directory.extend_from_slice(&rec_len.to_le_bytes());
        directory.extend_from_slice(&id_off.to_le_bytes());
        directory.extend_from_slice(&id_len.to_le_bytes());
        directory.extend_from_slice(&0u32.to_le_bytes());
        directory.extend_from_slice(&Sha256::digest(&record));
        ids.extend_from_slice(p.id.as_bytes());
        index.add(u32::try_from(count).map_err(|_| too_big())?, &p);

        records_len += record.len() as u64;
        count += 1;
        last_id = Some(p.id);
    }
    debug_assert_eq!(directory.len() as u64, count * DIR_ENTRY_LEN as u64);

    if configs.windows(2).any(|w| w[0].agent_id >= w[1].agent_id) {
        return Err(Error::Internal("agent configs out of id order".into()));
    }
    let mut indexes = Vec::new();
    codec::encode_indexes(&index.finish(), &mut indexes)?;
    let mut configs_bytes = Vec::new();
    codec::encode_configs(configs, &mut configs_bytes)?;

    let mut sections = [Section::default(); 5];
    sections[SectionId::Records as usize] = Section {
        offset: HEADER_LEN as u64,
        len: records_len,
        sha256: [0; 32],
    };
    let mut at = HEADER_LEN as u64 + records_len;
    for (id, bytes) in [
        (SectionId::Directory, &directory),
        (SectionId::Ids, &ids),
        (SectionId::Indexes, &indexes),
        (SectionId::Configs, &configs_bytes),
    ] {
        out.write_all(bytes).map_err(io)?;
        sections[id as usize] = Section {
            offset: at,
            len: bytes.len() as u64,
            sha256: Sha256::digest(bytes).into(),
        };
        at += bytes.len() as u64;
    }

    let header = Header {
        version: FORMAT_VERSION,
        producer: meta.producer.clone(),
        created_at_ms: meta.created_at_ms,
        generation: meta.generation,
        pattern_count: count,
        config_count: configs.len() as u64,
        embedding_dim: dim.unwrap_or(0) as u32,
        source_id: meta.source_id,
        sections,
    };
    out.seek(SeekFrom::Start(0)).map_err(io)?;
    out.write_all(&header.encode()).map_err(io)?;
    out.seek(SeekFrom::Start(at)).map_err(io)?;
    Ok(header)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    /// The appendix of docs/FORMAT.md, byte for byte.
    #[test]
    fn empty_store_matches_the_spec_vector() {
        let spec = include_str!("../../docs/FORMAT.md");
        let appendix = &spec[spec.find("## Appendix: empty-store test vector").expect("appendix")..];
        let mut expected = Vec::new();
        for line in appendix.lines().filter(|l| l.len() > 6 && l.as_bytes()[4] == b':') {
            for byte in line[5..].split_whitespace() {
                expected.push(u8::from_str_radix(byte, 16).expect("hex"));
            }
        }
        assert_eq!(expected.len(), 389);
        let meta = CacheMeta {
            producer: "0.1.0".into(),
            created_at_ms: 1_700_000_000_000,
            generation: 7,
            source_id: [0; 16],
        };
        let mut out = Cursor::new(Vec::new());
        write_cache(&mut out, &meta, std::iter::empty(), &[]).expect("write");
        assert_eq!(out.into_inner(), expected);
    }
}

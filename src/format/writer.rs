//! Streams a cache file: records first (hashed one by one, each with its
//! vector row), the vector rows (spilled to a side file while the records
//! stream, then appended), the directory, ids, indexes, configs and the
//! vector index, then the header at offset 0.
//! Equal inputs give equal bytes: every part is in a canonical order and
//! nothing time- or machine-dependent is written beyond what `CacheMeta` says.

use std::io::{Read, Seek, SeekFrom, Write};

use sha2::{Digest, Sha256};

use super::codec;
use super::header::{Header, Section, SectionId, FORMAT_VERSION, HEADER_LEN};
use super::record::{self, PatternRef};
use super::vectors::{VectorLayout, VectorsBuilder, ROW_ALIGN};
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

fn io(e: std::io::Error) -> Error {
    Error::io("writing cache file", e)
}

fn too_big() -> Error {
    Error::Internal("cache file exceeds the format's 4 GiB id/record limits".into())
}

/// Where vector rows wait while the records stream: the vectors section
/// follows the records, whose length is known only at the end.
pub trait Spill: Write {
    /// Appends everything written so far to `out`.
    fn append_to(&mut self, out: &mut dyn Write) -> std::io::Result<()>;
}

impl Spill for Vec<u8> {
    fn append_to(&mut self, out: &mut dyn Write) -> std::io::Result<()> {
        out.write_all(self)
    }
}

/// An unnamed temp file (nothing to clean up after a crash).
impl Spill for std::io::BufWriter<std::fs::File> {
    fn append_to(&mut self, out: &mut dyn Write) -> std::io::Result<()> {
        self.flush()?;
        let file = self.get_mut();
        file.seek(SeekFrom::Start(0))?;
        let mut buf = vec![0u8; 1 << 20];
        loop {
            match file.read(&mut buf)? {
                0 => return Ok(()),
                n => out.write_all(&buf[..n])?,
            }
        }
    }
}

/// Writes a cache file record by record. Records must come in strictly
/// ascending id order and share one embedding dimension.
pub struct CacheWriter<'w, W: Write + Seek> {
    out: &'w mut W,
    spill: Box<dyn Spill + 'w>,
    vectors: Option<VectorsBuilder>,
    meta: CacheMeta,
    directory: Vec<u8>,
    ids: Vec<u8>,
    index: IndexBuilder,
    record: Vec<u8>,
    records_len: u64,
    count: u64,
    dim: Option<usize>,
    last_id: Vec<u8>,
}

impl<'w, W: Write + Seek> CacheWriter<'w, W> {
    /// `spill` holds the vector rows until the records are written.
    pub fn new(out: &'w mut W, spill: Box<dyn Spill + 'w>, meta: &CacheMeta) -> Result<Self> {
        out.seek(SeekFrom::Start(HEADER_LEN as u64)).map_err(io)?;
        Ok(CacheWriter {
            out,
            spill,
            vectors: None,
            meta: meta.clone(),
            directory: Vec::new(),
            ids: Vec::new(),
            index: IndexBuilder::default(),
            record: Vec::new(),
            records_len: 0,
            count: 0,
            dim: None,
            last_id: Vec::new(),
        })
    }

    pub fn add(&mut self, p: &PatternRef<'_>) -> Result<()> {
        // The reader rejects what breaks these; never write such a file.
        if p.id.is_empty() || p.embedding.is_empty() {
            return Err(Error::Internal(format!(
                "record '{}' has an empty id or embedding",
                p.id
            )));
        }
        if self.count > 0 && self.last_id.as_slice() >= p.id.as_bytes() {
            return Err(Error::Internal(format!("records out of id order at '{}'", p.id)));
        }
        if *self.dim.get_or_insert(p.embedding.len()) != p.embedding.len() {
            return Err(Error::Internal(format!(
                "record '{}' has another embedding dimension",
                p.id
            )));
        }
        self.record.clear();
        record::encode_ref(p, &mut self.record);
        self.out.write_all(&self.record).map_err(io)?;
        let dim = p.embedding.len();
        self.vectors
            .get_or_insert_with(|| VectorsBuilder::new(dim))
            .add(&p.embedding, &mut self.spill)
            .map_err(io)?;
        // The directory hash covers the record and its row's floats, so a
        // record read checks both at once.
        let mut hash = Sha256::new();
        hash.update(&self.record);
        let at = self.record.len();
        self.record.resize(at + dim * 4, 0);
        p.embedding.write_le(&mut self.record[at..]);
        hash.update(&self.record[at..]);
        self.record.truncate(at);

        let rec_len = u32::try_from(self.record.len()).map_err(|_| too_big())?;
        let id_off = u32::try_from(self.ids.len()).map_err(|_| too_big())?;
        let id_len = u32::try_from(p.id.len()).map_err(|_| too_big())?;
        let ordinal = u32::try_from(self.count).map_err(|_| too_big())?;
        self.directory.extend_from_slice(&self.records_len.to_le_bytes());
        self.directory.extend_from_slice(&rec_len.to_le_bytes());
        self.directory.extend_from_slice(&id_off.to_le_bytes());
        self.directory.extend_from_slice(&id_len.to_le_bytes());
        self.directory.extend_from_slice(&0u32.to_le_bytes());
        self.directory.extend_from_slice(&hash.finalize());
        self.ids.extend_from_slice(p.id.as_bytes());
        self.index
            .add(ordinal, p.domain, p.pattern_type, p.framework, p.verdict.as_str());

        self.records_len += self.record.len() as u64;
        self.count += 1;
        self.last_id.clear();
        self.last_id.extend_from_slice(p.id.as_bytes());
        Ok(())
    }

    /// Writes the remaining sections and the header; returns the header.
    pub fn finish(mut self, configs: &[AgentConfig]) -> Result<Header> {
        if configs.windows(2).any(|w| w[0].agent_id >= w[1].agent_id) {
            return Err(Error::Internal("agent configs out of id order".into()));
        }
        debug_assert_eq!(self.directory.len() as u64, self.count * DIR_ENTRY_LEN as u64);
        let mut indexes = Vec::new();
        codec::encode_indexes(&self.index.finish(), &mut indexes)?;
        let mut configs_bytes = Vec::new();
        codec::encode_configs(configs, &mut configs_bytes)?;
        let vector_index = match self.vectors.take() {
            Some(v) => v.finish(),
            None => VectorLayout::empty_index(),
        };

        let mut sections = [Section::default(); 7];
        sections[SectionId::Records as usize] = Section {
            offset: HEADER_LEN as u64,
            len: self.records_len,
            sha256: [0; 32],
        };
        let mut at = HEADER_LEN as u64 + self.records_len;
        let layout = VectorLayout::new(self.dim.unwrap_or(0), self.count as usize, at);
        if self.count > 0 {
            self.out.write_all(&[0u8; ROW_ALIGN][..layout.pad]).map_err(io)?;
            self.spill.append_to(&mut *self.out).map_err(io)?;
        }
        let vectors_len = layout.section_len();
        sections[SectionId::Vectors as usize] = Section {
            offset: at,
            len: vectors_len,
            sha256: [0; 32],
        };
        at += vectors_len;
        for (id, bytes) in [
            (SectionId::Directory, &self.directory),
            (SectionId::Ids, &self.ids),
            (SectionId::Indexes, &indexes),
            (SectionId::Configs, &configs_bytes),
            (SectionId::VectorIndex, &vector_index),
        ] {
            self.out.write_all(bytes).map_err(io)?;
            sections[id as usize] = Section {
                offset: at,
                len: bytes.len() as u64,
                sha256: Sha256::digest(bytes).into(),
            };
            at += bytes.len() as u64;
        }

        let header = Header {
            version: FORMAT_VERSION,
            producer: self.meta.producer.clone(),
            created_at_ms: self.meta.created_at_ms,
            generation: self.meta.generation,
            pattern_count: self.count,
            config_count: configs.len() as u64,
            embedding_dim: self.dim.unwrap_or(0) as u32,
            source_id: self.meta.source_id,
            sections,
        };
        self.out.seek(SeekFrom::Start(0)).map_err(io)?;
        self.out.write_all(&header.encode()).map_err(io)?;
        self.out.seek(SeekFrom::Start(at)).map_err(io)?;
        Ok(header)
    }
}

/// Writes a whole cache file from owned patterns (tests and tools; the
/// database build streams borrowed rows through `CacheWriter`).
pub fn write_cache<W: Write + Seek>(
    out: &mut W,
    meta: &CacheMeta,
    patterns: impl Iterator<Item = Result<Pattern>>,
    configs: &[AgentConfig],
) -> Result<Header> {
    let mut writer = CacheWriter::new(out, Box::new(Vec::new()), meta)?;
    for p in patterns {
        writer.add(&p?.as_ref())?;
    }
    writer.finish(configs)
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
        let appendix = &appendix[..appendix.find("## Appendix B").unwrap_or(appendix.len())];
        let mut expected = Vec::new();
        for line in appendix.lines().filter(|l| l.len() > 6 && l.as_bytes()[4] == b':') {
            for byte in line[5..].split_whitespace() {
                expected.push(u8::from_str_radix(byte, 16).expect("hex"));
            }
        }
        assert_eq!(expected.len(), 526);
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

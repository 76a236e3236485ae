//! A validated, read-only view of a cache file held in memory or mapped.
//!
//! `CacheView::open` checks the header, the hashes of the directory, ids,
//! indexes, configs and vector index sections, and every structural
//! invariant a lookup relies on. Record bytes (with their vector row) are
//! hashed the first time each record is read, and blocks of vector rows the
//! first time a scan reads them: no byte is decoded, let alone returned,
//! before its SHA-256 matched.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

use sha2::{Digest, Sha256};

use super::codec;
use super::header::{u64_at, Header, SectionId};
use super::record::{self, PatternRef};
use super::vectors::VectorsView;
use super::DIR_ENTRY_LEN;
use crate::error::{Error, Result};
use crate::index::{intersect, Indexes};
use crate::model::{AgentConfig, IndexKind, Pattern, PatternFilter};

/// The bytes behind a view: a memory map or an owned buffer.
pub trait Backing: Send + Sync {
    fn bytes(&self) -> &[u8];
}

impl Backing for Vec<u8> {
    fn bytes(&self) -> &[u8] {
        self
    }
}

impl Backing for memmap2::Mmap {
    fn bytes(&self) -> &[u8] {
        self
    }
}

pub struct CacheView {
    backing: Box<dyn Backing>,
    header: Header,
    indexes: Indexes,
    configs: HashMap<String, AgentConfig>,
    vectors: VectorsView,
    /// One bit per record: its hash has been checked.
    verified: Vec<AtomicU64>,
    /// Id -> ordinal, built at open: a lookup touches a few cache lines
    /// instead of the ~17 a binary search over a large file does.
    by_id: IdTable,
}

/// An open-addressing hash table of ordinals keyed by id bytes (which stay
/// in the file: a slot holds only the ordinal).
#[derive(Default)]
struct IdTable {
    slots: Vec<u32>,
    mask: usize,
}

const EMPTY: u32 = u32::MAX;

fn hash_id(id: &[u8]) -> usize {
    use std::hash::Hasher;
    let mut h = rustc_hash::FxHasher::default();
    h.write(id);
    h.finish() as usize
}

impl IdTable {
    fn with_capacity(n: u32) -> IdTable {
        let size = (n as usize * 2).next_power_of_two().max(8);
        IdTable {
            slots: vec![EMPTY; size],
            mask: size - 1,
        }
    }

    /// Ids are unique (checked strictly ascending before insertion).
    fn insert(&mut self, id: &[u8], ordinal: u32) {
        let mut at = hash_id(id) & self.mask;
        while self.slots[at] != EMPTY {
            at = (at + 1) & self.mask;
        }
        self.slots[at] = ordinal;
    }
}

impl std::fmt::Debug for CacheView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CacheView")
            .field("header", &self.header)
            .finish_non_exhaustive()
    }
}

struct DirEntry {
    rec_off: u64,
    rec_len: u64,
    id_off: u64,
    id_len: u64,
    sha256: [u8; 32],
}

impl CacheView {
    pub fn open(backing: Box<dyn Backing>) -> Result<CacheView> {
        let bytes = backing.bytes();
        let header = Header::decode(bytes)?;
        for id in [
            SectionId::Directory,
            SectionId::Ids,
            SectionId::Indexes,
            SectionId::Configs,
            SectionId::VectorIndex,
        ] {
            let s = header.section(id);
            let data = &bytes[s.offset as usize..(s.offset + s.len) as usize];
            if Sha256::digest(data).as_slice() != s.sha256 {
                return Err(Error::CacheCorrupt(format!("{id:?} section checksum mismatch")));
            }
        }
        let count = header.pattern_count;
        let indexes = codec::decode_indexes(section(bytes, &header, SectionId::Indexes), count)?;
        let config_list = codec::decode_configs(section(bytes, &header, SectionId::Configs))?;
        if config_list.len() as u64 != header.config_count
            || config_list.windows(2).any(|w| w[0].agent_id >= w[1].agent_id)
        {
            return Err(Error::CacheCorrupt(
                "configs section disagrees with the header or is unordered".into(),
            ));
        }
        let configs = config_list.into_iter().map(|c| (c.agent_id.clone(), c)).collect();
        let span = |id: SectionId| (header.section(id).offset, header.section(id).len);
        let vectors = VectorsView::open(
            bytes,
            header.embedding_dim as usize,
            usize::try_from(count).map_err(|_| Error::CacheCorrupt("pattern count out of range".into()))?,
            span(SectionId::Vectors),
            span(SectionId::VectorIndex),
        )?;
        let words = count.div_ceil(64) as usize;
        let mut view = CacheView {
            backing,
            header,
            indexes,
            configs,
            vectors,
            verified: (0..words).map(|_| AtomicU64::new(0)).collect(),
            by_id: IdTable::default(),
        };
        view.by_id = view.check_directory()?;
        Ok(view)
    }

    /// Records and ids must tile their sections exactly, in order, and ids
    /// must be UTF-8 in strictly ascending byte order (binary search needs it).
    /// Also builds the id table.
    fn check_directory(&self) -> Result<IdTable> {
        let records_len = self.header.section(SectionId::Records).len;
        let ids_len = self.header.section(SectionId::Ids).len;
        let (mut rec_end, mut id_end) = (0u64, 0u64);
        let mut prev: Option<&str> = None;
        let mut table = IdTable::with_capacity(self.len());
        for ordinal in 0..self.len() {
            let e = self.entry(ordinal);
            if e.rec_off != rec_end || e.id_off != id_end || e.rec_len == 0 || e.id_len == 0 {
                return Err(Error::CacheCorrupt(format!(
                    "directory entry {ordinal} does not follow the previous one"
                )));
            }
            rec_end += e.rec_len;
            id_end += e.id_len;
            if rec_end > records_len || id_end > ids_len {
                return Err(Error::CacheCorrupt(format!(
                    "directory entry {ordinal} points past its section"
                )));
            }
            let id = std::str::from_utf8(self.id_bytes(&e))
                .map_err(|_| Error::CacheCorrupt(format!("id {ordinal} is not UTF-8")))?;
            if prev.is_some_and(|p| p >= id) {
                return Err(Error::CacheCorrupt(format!("ids not ascending at {ordinal}")));
            }
            prev = Some(id);
            table.insert(id.as_bytes(), ordinal);
        }
        if rec_end != records_len || id_end != ids_len {
            return Err(Error::CacheCorrupt(
                "directory does not cover the records and ids sections".into(),
            ));
        }
        Ok(table)
    }

    pub fn header(&self) -> &Header {
        &self.header
    }

    pub fn len(&self) -> u32 {
        self.header.pattern_count as u32
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn file_size(&self) -> u64 {
        self.backing.bytes().len() as u64
    }

    fn entry(&self, ordinal: u32) -> DirEntry {
        let dir = section(self.backing.bytes(), &self.header, SectionId::Directory);
        let at = ordinal as usize * DIR_ENTRY_LEN;
        let e = &dir[at..at + DIR_ENTRY_LEN];
        let u32_at = |i: usize| u64::from(u32::from_le_bytes([e[i], e[i + 1], e[i + 2], e[i + 3]]));
        let mut sha256 = [0u8; 32];
        sha256.copy_from_slice(&e[24..56]);
        DirEntry {
            rec_off: u64_at(e, 0),
            rec_len: u32_at(8),
            id_off: u32_at(12),
            id_len: u32_at(16),
            sha256,
        }
    }

    fn id_bytes(&self, e: &DirEntry) -> &[u8] {
        let ids = section(self.backing.bytes(), &self.header, SectionId::Ids);
        &ids[e.id_off as usize..(e.id_off + e.id_len) as usize]
    }

    /// The id bytes of a record, read straight from its directory entry.
    fn raw_id(&self, ordinal: u32) -> &[u8] {
        let bytes = self.backing.bytes();
        let dir = self.header.section(SectionId::Directory).offset as usize + ordinal as usize * DIR_ENTRY_LEN;
        let u32_at = |i: usize| u32::from_le_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]) as usize;
        let (off, len) = (u32_at(dir + 12), u32_at(dir + 16));
        let ids = self.header.section(SectionId::Ids).offset as usize;
        // In range: `check_directory` tiled the ids section with these at open.
        &bytes[ids + off..ids + off + len]
    }

    /// The id of a record (validated UTF-8 at open).
    pub fn id_at(&self, ordinal: u32) -> &str {
        std::str::from_utf8(self.raw_id(ordinal)).unwrap_or_default()
    }

    /// The ordinal of the record with this id.
    pub fn find(&self, id: &str) -> Option<u32> {
        let t = &self.by_id;
        let mut at = hash_id(id.as_bytes()) & t.mask;
        loop {
            let ordinal = *t.slots.get(at)?;
            if ordinal == EMPTY {
                return None;
            }
            if self.raw_id(ordinal) == id.as_bytes() {
                return Some(ordinal);
            }
            at = (at + 1) & t.mask;
        }
    }

    /// Decodes one record after checking its hash (once per view).
    pub fn record(&self, ordinal: u32) -> Result<Pattern> {
        self.record_ref(ordinal).map(|r| r.to_owned())
    }

    /// A record borrowed from the file, after checking its hash (once per view).
    pub fn record_ref(&self, ordinal: u32) -> Result<PatternRef<'_>> {
        let e = self.entry(ordinal);
        let records = section(self.backing.bytes(), &self.header, SectionId::Records);
        let bytes = &records[e.rec_off as usize..(e.rec_off + e.rec_len) as usize];
        let row = self.vectors.row_le(self.backing.bytes(), ordinal);
        let (word, bit) = ((ordinal / 64) as usize, 1u64 << (ordinal % 64));
        if self.verified[word].load(Ordering::Acquire) & bit == 0 {
            let mut hash = Sha256::new();
            hash.update(bytes);
            hash.update(row);
            if hash.finalize().as_slice() != e.sha256 {
                return Err(Error::CacheCorrupt(format!("record {ordinal} checksum mismatch")));
            }
            self.verified[word].fetch_or(bit, Ordering::Release);
        }
        let p = record::decode_ref(bytes, row)?;
        if p.id.as_bytes() != self.id_bytes(&e) {
            return Err(Error::CacheCorrupt(format!(
                "record {ordinal} disagrees with the directory"
            )));
        }
        Ok(p)
    }

    pub fn get(&self, id: &str) -> Result<Option<Pattern>> {
        self.find(id).map(|o| self.record(o)).transpose()
    }

    pub fn records(&self, ordinals: &[u32]) -> Result<Vec<Pattern>> {
        ordinals.iter().map(|&o| self.record(o)).collect()
    }

    pub fn by_index(&self, kind: IndexKind, name: &str) -> Result<Vec<Pattern>> {
        self.records(self.indexes.get(kind, name))
    }

    /// The index list of each field the filter gives (ascending ordinals).
    pub fn filter_lists(&self, filter: &PatternFilter) -> Vec<&[u32]> {
        filter
            .fields()
            .map(|(kind, value)| self.indexes.get(kind, value))
            .collect()
    }

    /// Ordinals matching every field of the filter, ascending (= id order).
    pub fn query_ordinals(&self, filter: &PatternFilter) -> Vec<u32> {
        let limit = filter.limit.unwrap_or(usize::MAX);
        let lists = self.filter_lists(filter);
        if lists.is_empty() {
            return (0..self.len()).take(limit).collect();
        }
        intersect(&lists, limit)
    }

    pub fn query(&self, filter: &PatternFilter) -> Result<Vec<Pattern>> {
        self.records(&self.query_ordinals(filter))
    }

    pub fn config(&self, agent_id: &str) -> Option<AgentConfig> {
        self.configs.get(agent_id).cloned()
    }

    /// Every agent config, in no particular order.
    pub fn configs(&self) -> impl Iterator<Item = &AgentConfig> {
        self.configs.values()
    }

    /// The first ordinal whose id is after `after` (ids ascend with ordinals).
    pub fn first_after(&self, after: &str) -> u32 {
        let (mut lo, mut hi) = (0u32, self.len());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.raw_id(mid) <= after.as_bytes() {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo
    }

    /// Checks every record's hash and decoding and every vector block: a
    /// full integrity check.
    pub fn verify_all(&self) -> Result<()> {
        for o in 0..self.len() {
            self.record(o)?;
        }
        for b in 0..self.vectors.layout.blocks() {
            self.vectors.verify_block(self.backing.bytes(), b)?;
        }
        Ok(())
    }

    /// The vectors section and its index.
    pub fn vectors(&self) -> &VectorsView {
        &self.vectors
    }

    /// The file's bytes (what the vectors view's offsets point into).
    pub fn bytes(&self) -> &[u8] {
        self.backing.bytes()
    }

    /// The domain/type/framework index lists.
    pub fn indexes(&self) -> &Indexes {
        &self.indexes
    }
}

fn section<'a>(bytes: &'a [u8], header: &Header, id: SectionId) -> &'a [u8] {
    let s = header.section(id);
    // In range: Header::decode checked that the sections tile the file.
    &bytes[s.offset as usize..(s.offset + s.len) as usize]
}

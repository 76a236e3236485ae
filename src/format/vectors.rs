//! The VECTORS section and its VECTOR_INDEX (§7.6-7.7 of docs/FORMAT.md):
//! every embedding once, as a row of little-endian f32s, 64-byte aligned in
//! the file, in record order; per row its norm; per block of rows a SHA-256.
//!
//! A similarity scan reads the rows straight from the map as `&[f32]`
//! (no decoding, no copy) and hashes each block the first time it touches
//! it, so opening a file never hashes its (possibly 300 MB) vectors.
//! A record read hashes its own row with its record (the directory hash
//! covers both), so a cache hit never hashes a whole block.

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};

use sha2::{Digest, Sha256};

use super::record::EmbeddingRef;
use crate::error::{Error, Result};

/// Rows start on this boundary in the file (a cache line; what AVX-512 loads like).
pub const ROW_ALIGN: usize = 64;
/// Bytes of rows per integrity block, about: big enough that hashing runs
/// long, small enough that a scan over a few matches hashes little.
const BLOCK_TARGET: usize = 256 * 1024;
/// Fixed fields at the start of VECTOR_INDEX: stride u32, block_rows u32.
const INDEX_FIXED: usize = 8;

/// Where rows are, given the dimension, the count and the section's offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct VectorLayout {
    pub dim: usize,
    pub count: usize,
    /// Bytes from one row to the next: `4 * dim` rounded up to `ROW_ALIGN`.
    pub stride: usize,
    pub block_rows: usize,
    /// Zero bytes at the start of the section, so rows are aligned in the file.
    pub pad: usize,
}

impl VectorLayout {
    pub fn new(dim: usize, count: usize, section_offset: u64) -> VectorLayout {
        if count == 0 {
            return VectorLayout::default();
        }
        let stride = (dim * 4).div_ceil(ROW_ALIGN) * ROW_ALIGN;
        VectorLayout {
            dim,
            count,
            stride,
            block_rows: (BLOCK_TARGET / stride.max(1)).max(1),
            pad: pad_for(section_offset),
        }
    }

    pub fn blocks(&self) -> usize {
        if self.count == 0 {
            0
        } else {
            self.count.div_ceil(self.block_rows)
        }
    }

    pub fn section_len(&self) -> u64 {
        if self.count == 0 {
            0
        } else {
            // Saturating: a hostile header must fail the length check, not overflow.
            (self.count as u64)
                .checked_mul(self.stride as u64)
                .and_then(|n| n.checked_add(self.pad as u64))
                .unwrap_or(u64::MAX)
        }
    }

    pub fn index_len(&self) -> u64 {
        (INDEX_FIXED + self.count * 4 + self.blocks() * 32) as u64
    }

    /// VECTOR_INDEX of a file without patterns.
    pub fn empty_index() -> Vec<u8> {
        vec![0; INDEX_FIXED]
    }

    /// The rows of block `b`: ordinals `first..end`.
    pub fn block_rows_range(&self, b: usize) -> (usize, usize) {
        let first = b * self.block_rows;
        (first, (first + self.block_rows).min(self.count))
    }
}

/// Zero bytes that bring `offset` to the next row boundary.
pub fn pad_for(offset: u64) -> usize {
    ((ROW_ALIGN as u64 - offset % ROW_ALIGN as u64) % ROW_ALIGN as u64) as usize
}

/// The norm the index stores for an embedding: accumulated in f64 (so it
/// is the same on every CPU, whatever SIMD the scan uses), rounded to f32.
pub fn norm(v: impl Iterator<Item = f32>) -> f32 {
    v.map(|x| f64::from(x) * f64::from(x)).sum::<f64>().sqrt() as f32
}

pub fn norm_of(e: &EmbeddingRef<'_>) -> f32 {
    match e {
        EmbeddingRef::F32(v) => norm(v.iter().copied()),
        EmbeddingRef::Le(b) => norm(b.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))),
    }
}

/// Streams rows (to a side file during a build: the section is placed after
/// the records, whose length is known only at the end) and collects the index.
pub struct VectorsBuilder {
    stride: usize,
    block_rows: usize,
    count: usize,
    row: Vec<u8>,
    block: Sha256,
    norms: Vec<u8>,
    hashes: Vec<u8>,
}

impl VectorsBuilder {
    pub fn new(dim: usize) -> VectorsBuilder {
        let layout = VectorLayout::new(dim, 1, 0);
        VectorsBuilder {
            stride: layout.stride,
            block_rows: layout.block_rows,
            count: 0,
            row: vec![0; layout.stride],
            block: Sha256::new(),
            norms: Vec::new(),
            hashes: Vec::new(),
        }
    }

    /// Writes one row (its floats, then zeros to the stride) to `sink`.
    pub fn add(&mut self, e: &EmbeddingRef<'_>, sink: &mut impl Write) -> std::io::Result<()> {
        let n = e.len() * 4;
        e.write_le(&mut self.row[..n]);
        self.row[n..].fill(0);
        sink.write_all(&self.row)?;
        self.block.update(&self.row);
        self.norms.extend_from_slice(&norm_of(e).to_le_bytes());
        self.count += 1;
        if self.count.is_multiple_of(self.block_rows) {
            self.hashes
                .extend_from_slice(&std::mem::take(&mut self.block).finalize());
        }
        Ok(())
    }

    /// The VECTOR_INDEX section's bytes.
    pub fn finish(mut self) -> Vec<u8> {
        if self.count == 0 {
            return VectorLayout::empty_index();
        }
        if !self.count.is_multiple_of(self.block_rows) {
            self.hashes.extend_from_slice(&self.block.finalize());
        }
        let mut out = Vec::with_capacity(INDEX_FIXED + self.norms.len() + self.hashes.len());
        out.extend_from_slice(&(self.stride as u32).to_le_bytes());
        out.extend_from_slice(&(self.block_rows as u32).to_le_bytes());
        out.extend_from_slice(&self.norms);
        out.extend_from_slice(&self.hashes);
        out
    }
}

/// The vectors of an open file: where rows, norms and block hashes are, and
/// which blocks have been checked.
#[derive(Debug, Default)]
pub struct VectorsView {
    pub layout: VectorLayout,
    /// Absolute file offsets.
    rows_at: usize,
    norms_at: usize,
    hashes_at: usize,
    verified: Vec<AtomicU64>,
}

fn corrupt(what: &str) -> Error {
    Error::CacheCorrupt(format!("vectors: {what}"))
}

impl VectorsView {
    /// Checks the index (whose section hash the caller checked) against the
    /// header: stride, block size, lengths, padding, and finite norms.
    pub fn open(bytes: &[u8], dim: usize, count: usize, vectors: (u64, u64), index: (u64, u64)) -> Result<VectorsView> {
        if dim == 0 && count > 0 {
            return Err(corrupt("patterns without an embedding dimension"));
        }
        let expected = VectorLayout::new(dim, count, vectors.0);
        let ix = &bytes[index.0 as usize..(index.0 + index.1) as usize];
        if ix.len() < INDEX_FIXED {
            return Err(corrupt("index shorter than its fixed fields"));
        }
        let u32_at = |i: usize| u32::from_le_bytes([ix[i], ix[i + 1], ix[i + 2], ix[i + 3]]) as usize;
        let (stride, block_rows) = (u32_at(0), u32_at(4));
        if stride != expected.stride || (count > 0 && block_rows == 0) || (count == 0 && block_rows != 0) {
            return Err(corrupt("row stride or block size disagrees with the header"));
        }
        let layout = VectorLayout { block_rows, ..expected };
        if vectors.1 != layout.section_len() || index.1 != layout.index_len() {
            return Err(corrupt("section lengths disagree with the pattern count"));
        }
        let start = vectors.0 as usize;
        if bytes[start..start + layout.pad.min(vectors.1 as usize)]
            .iter()
            .any(|&b| b != 0)
        {
            return Err(corrupt("alignment padding is not zero"));
        }
        let norms_at = index.0 as usize + INDEX_FIXED;
        let view = VectorsView {
            layout,
            rows_at: start + layout.pad,
            norms_at,
            hashes_at: norms_at + count * 4,
            verified: (0..layout.blocks().div_ceil(64)).map(|_| AtomicU64::new(0)).collect(),
        };
        if (0..count).any(|o| {
            let n = view.norm(bytes, o as u32);
            !n.is_finite() || n < 0.0
        }) {
            return Err(corrupt("a norm is not a finite non-negative number"));
        }
        Ok(view)
    }

    /// Row `o`'s floats as little-endian bytes (not the padding). Unchecked:
    /// a record read checks it with its record, a scan with its block.
    pub fn row_le<'a>(&self, bytes: &'a [u8], o: u32) -> &'a [u8] {
        let at = self.rows_at + o as usize * self.layout.stride;
        &bytes[at..at + self.layout.dim * 4]
    }

    pub fn norm(&self, bytes: &[u8], o: u32) -> f32 {
        let at = self.norms_at + o as usize * 4;
        f32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
    }

    /// Checks block `b`'s hash, and its rows' norms, the first time it is
    /// asked (once per view).
    pub fn verify_block(&self, bytes: &[u8], b: usize) -> Result<()> {
        let (word, bit) = (b / 64, 1u64 << (b % 64));
        if self.verified[word].load(Ordering::Acquire) & bit != 0 {
            return Ok(());
        }
        let (first, end) = self.layout.block_rows_range(b);
        let rows = &bytes[self.rows_at + first * self.layout.stride..self.rows_at + end * self.layout.stride];
        let want = &bytes[self.hashes_at + b * 32..self.hashes_at + b * 32 + 32];
        if Sha256::digest(rows).as_slice() != want {
            return Err(Error::CacheCorrupt(format!("vector block {b} checksum mismatch")));
        }
        // The scan trusts the stored norms for its error bounds: a file whose
        // hashes were forged must not be able to make it drop a result.
        for o in first..end {
            let row = self.row_le(bytes, o as u32);
            if norm_of(&EmbeddingRef::Le(row)).to_bits() != self.norm(bytes, o as u32).to_bits() {
                return Err(Error::CacheCorrupt(format!(
                    "vector {o}: stored norm disagrees with the row"
                )));
            }
        }
        self.verified[word].fetch_or(bit, Ordering::Release);
        Ok(())
    }

    /// All rows, as mapped (for the floor measurement and full scans).
    pub fn rows<'a>(&self, bytes: &'a [u8]) -> &'a [u8] {
        &bytes[self.rows_at..self.rows_at + self.layout.count * self.layout.stride]
    }
}

/// Row bytes as f32s without copying when they are aligned (always, for a
/// mapped file on a little-endian CPU); otherwise copied into `scratch`.
pub fn as_f32s<'a>(le: &'a [u8], scratch: &'a mut Vec<f32>) -> &'a [f32] {
    #[cfg(target_endian = "little")]
    {
        // SAFETY: every bit pattern is a valid f32, and align_to only hands
        // out the properly aligned middle part.
        let (head, mid, tail) = unsafe { le.align_to::<f32>() };
        if head.is_empty() && tail.is_empty() {
            return mid;
        }
    }
    scratch.clear();
    scratch.extend(le.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])));
    scratch
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_aligns_rows_and_sizes_blocks() {
        let l = VectorLayout::new(768, 1000, 1000);
        assert_eq!(l.stride, 3072);
        assert_eq!(l.pad, 24);
        assert_eq!((1000 + l.pad) % ROW_ALIGN, 0);
        assert_eq!(l.block_rows, 85);
        assert_eq!(l.blocks(), 12);
        assert_eq!(l.block_rows_range(11), (935, 1000));
        assert_eq!(VectorLayout::new(3, 5, 64).stride, 64);
        assert_eq!(VectorLayout::new(3, 0, 7).section_len(), 0);
    }

    #[test]
    fn builder_hashes_whole_and_partial_blocks() {
        let mut b = VectorsBuilder::new(3);
        let mut sink = Vec::new();
        let rows = b.block_rows + 1;
        for i in 0..rows {
            b.add(&EmbeddingRef::F32(&[i as f32, 0.0, 0.0]), &mut sink).unwrap();
        }
        let ix = b.finish();
        assert_eq!(sink.len(), rows * 64);
        assert_eq!(ix.len(), INDEX_FIXED + rows * 4 + 2 * 32);
        let first_block = Sha256::digest(&sink[..(rows - 1) * 64]);
        assert_eq!(
            &ix[INDEX_FIXED + rows * 4..INDEX_FIXED + rows * 4 + 32],
            first_block.as_slice()
        );
    }

    /// Appendix B of docs/FORMAT.md, byte for byte.
    #[test]
    fn two_rows_match_the_spec_vector() {
        let spec = include_str!("../../docs/FORMAT.md");
        let appendix = &spec[spec.find("## Appendix B").expect("appendix B")..];
        let hex = |name: &str| -> Vec<u8> {
            let block = &appendix[appendix.find(name).expect(name)..];
            let block = &block[block.find("```text").expect("block") + 7..];
            let block = &block[..block.find("```").expect("end")];
            block
                .lines()
                .filter(|l| l.len() > 6 && l.as_bytes()[4] == b':')
                .flat_map(|l| {
                    l[5..]
                        .split_whitespace()
                        .map(|b| u8::from_str_radix(b, 16).expect("hex"))
                        .collect::<Vec<_>>()
                })
                .collect()
        };
        let layout = VectorLayout::new(3, 2, 600);
        let mut vectors = vec![0u8; layout.pad];
        let mut b = VectorsBuilder::new(3);
        b.add(&EmbeddingRef::F32(&[1.0, 2.0, 3.0]), &mut vectors).unwrap();
        b.add(&EmbeddingRef::F32(&[0.0, -0.5, 0.0]), &mut vectors).unwrap();
        assert_eq!(vectors.len() as u64, layout.section_len());
        assert_eq!(vectors, hex("VECTORS at file offset 600"));
        assert_eq!(b.finish(), hex("VECTOR_INDEX"));
    }

    #[test]
    fn norms_are_f64_accumulated() {
        assert_eq!(norm([3.0f32, 4.0].into_iter()), 5.0);
        assert_eq!(norm_of(&EmbeddingRef::Le(&[0; 8])), 0.0);
    }
}

//! The record: a pattern's MessagePack encoding (§8.1 of docs/FORMAT.md),
//! and a strict, zero-copy decoder for it.
//!
//! Records are the hot path (every cache hit decodes one), so they are read
//! by a small hand-written parser that borrows strings and the embedding
//! straight from the mapped file, accepts exactly the canonical encoding the
//! writer produces (rmp-serde: a 13-element array), checks every length
//! against the input before using it, and rejects trailing bytes.
//!
//! The embedding is not in the record: it is a row of the vectors section
//! (`format::vectors`), which the reader attaches to the decoded record.

use crate::error::{Error, Result};
use crate::model::{Pattern, Verdict};

/// An embedding as stored (little-endian f32 bytes) or as held in memory.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum EmbeddingRef<'a> {
    Le(&'a [u8]),
    F32(&'a [f32]),
}

impl EmbeddingRef<'_> {
    pub fn len(&self) -> usize {
        match self {
            EmbeddingRef::Le(b) => b.len() / 4,
            EmbeddingRef::F32(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Writes the floats as little-endian bytes into `out` (`4 * len()` long).
    pub fn write_le(&self, out: &mut [u8]) {
        match self {
            EmbeddingRef::Le(b) => out.copy_from_slice(b),
            EmbeddingRef::F32(v) => {
                for (chunk, x) in out.chunks_exact_mut(4).zip(v.iter()) {
                    chunk.copy_from_slice(&x.to_le_bytes());
                }
            }
        }
    }

    pub fn to_vec(&self) -> Vec<f32> {
        match self {
            EmbeddingRef::Le(b) => crate::model::f32_bytes::from_le_bytes(b),
            EmbeddingRef::F32(v) => v.to_vec(),
        }
    }
}

/// A pattern borrowed from a record (or from an owned `Pattern`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PatternRef<'a> {
    pub id: &'a str,
    pub pattern_type: &'a str,
    pub domain: &'a str,
    pub framework: &'a str,
    pub content: &'a str,
    pub embedding: EmbeddingRef<'a>,
    pub coverage: Option<f64>,
    pub flakiness_score: Option<f64>,
    pub verdict: Verdict,
    pub created_at: i64,
    pub last_used: Option<i64>,
    pub usage_count: i64,
    pub success_count: i64,
    pub metadata_json: Option<&'a str>,
}

impl PatternRef<'_> {
    pub fn to_owned(&self) -> Pattern {
        Pattern {
            id: self.id.to_owned(),
            pattern_type: self.pattern_type.to_owned(),
            domain: self.domain.to_owned(),
            framework: self.framework.to_owned(),
            content: self.content.to_owned(),
            embedding: self.embedding.to_vec(),
            coverage: self.coverage,
            flakiness_score: self.flakiness_score,
            verdict: self.verdict,
            created_at: self.created_at,
            last_used: self.last_used,
            usage_count: self.usage_count,
            success_count: self.success_count,
            metadata_json: self.metadata_json.map(str::to_owned),
        }
    }
}

impl Pattern {
    pub fn as_ref(&self) -> PatternRef<'_> {
        PatternRef {
            id: &self.id,
            pattern_type: &self.pattern_type,
            domain: &self.domain,
            framework: &self.framework,
            content: &self.content,
            embedding: EmbeddingRef::F32(&self.embedding),
            coverage: self.coverage,
            flakiness_score: self.flakiness_score,
            verdict: self.verdict,
            created_at: self.created_at,
            last_used: self.last_used,
            usage_count: self.usage_count,
            success_count: self.success_count,
            metadata_json: self.metadata_json.as_deref(),
        }
    }
}

const FIELDS: u8 = 13;
const NIL: u8 = 0xc0;

/// A cursor over one record's bytes.
struct Input<'a>(&'a [u8]);

fn bad(what: &str) -> Error {
    Error::CacheCorrupt(format!("record: {what}"))
}

impl<'a> Input<'a> {
    fn byte(&mut self) -> Result<u8> {
        let (&b, rest) = self.0.split_first().ok_or_else(|| bad("ends early"))?;
        self.0 = rest;
        Ok(b)
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if n > self.0.len() {
            return Err(bad("a length runs past the record"));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn be(&mut self, n: usize) -> Result<u64> {
        Ok(self.take(n)?.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b)))
    }

    fn peek_nil(&mut self) -> bool {
        if self.0.first() == Some(&NIL) {
            self.0 = &self.0[1..];
            true
        } else {
            false
        }
    }

    fn str(&mut self) -> Result<&'a str> {
        let len = match self.byte()? {
            m @ 0xa0..=0xbf => usize::from(m & 0x1f),
            0xd9 => self.be(1)? as usize,
            0xda => self.be(2)? as usize,
            0xdb => self.be(4)? as usize,
            _ => return Err(bad("expected a string")),
        };
        std::str::from_utf8(self.take(len)?).map_err(|_| bad("a string is not UTF-8"))
    }

    fn int(&mut self) -> Result<i64> {
        let m = self.byte()?;
        Ok(match m {
            0x00..=0x7f => i64::from(m),
            0xe0..=0xff => i64::from(m as i8),
            0xcc => self.be(1)? as i64,
            0xcd => self.be(2)? as i64,
            0xce => self.be(4)? as i64,
            0xcf => i64::try_from(self.be(8)?).map_err(|_| bad("an integer is out of range"))?,
            0xd0 => i64::from(self.be(1)? as u8 as i8),
            0xd1 => i64::from(self.be(2)? as u16 as i16),
            0xd2 => i64::from(self.be(4)? as u32 as i32),
            0xd3 => self.be(8)? as i64,
            _ => return Err(bad("expected an integer")),
        })
    }

    fn f64(&mut self) -> Result<f64> {
        match self.byte()? {
            0xcb => Ok(f64::from_bits(self.be(8)?)),
            _ => Err(bad("expected a float64")),
        }
    }

    fn opt<T>(&mut self, read: impl FnOnce(&mut Self) -> Result<T>) -> Result<Option<T>> {
        if self.peek_nil() {
            Ok(None)
        } else {
            read(self).map(Some)
        }
    }
}

/// Appends the canonical encoding of a record: byte for byte what rmp-serde
/// writes for the same `Pattern` (checked by a property test), without
/// building one. The cache build streams database rows through this.
pub fn encode_ref(p: &PatternRef<'_>, out: &mut Vec<u8>) {
    out.push(0x90 | FIELDS);
    for s in [p.id, p.pattern_type, p.domain, p.framework, p.content] {
        put_str(out, s);
    }
    put_opt(out, p.coverage, put_f64);
    put_opt(out, p.flakiness_score, put_f64);
    put_str(out, p.verdict.as_str());
    put_int(out, p.created_at);
    put_opt(out, p.last_used, put_int);
    put_int(out, p.usage_count);
    put_int(out, p.success_count);
    put_opt(out, p.metadata_json, put_str);
}

fn put_len(out: &mut Vec<u8>, len: usize, markers: [u8; 3]) {
    if len < 256 {
        out.extend_from_slice(&[markers[0], len as u8]);
    } else if len < 65_536 {
        out.push(markers[1]);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(markers[2]);
        out.extend_from_slice(&(len as u32).to_be_bytes());
    }
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    if s.len() < 32 {
        out.push(0xa0 | s.len() as u8);
    } else {
        put_len(out, s.len(), [0xd9, 0xda, 0xdb]);
    }
    out.extend_from_slice(s.as_bytes());
}

fn put_f64(out: &mut Vec<u8>, x: f64) {
    out.push(0xcb);
    out.extend_from_slice(&x.to_bits().to_be_bytes());
}

/// The smallest form, as rmp's `write_sint` chooses it.
fn put_int(out: &mut Vec<u8>, v: i64) {
    match v {
        -32..=-1 => out.push(v as i8 as u8),
        -128..=-33 => out.extend_from_slice(&[0xd0, v as i8 as u8]),
        -32_768..=-129 => {
            out.push(0xd1);
            out.extend_from_slice(&(v as i16).to_be_bytes());
        }
        -2_147_483_648..=-32_769 => {
            out.push(0xd2);
            out.extend_from_slice(&(v as i32).to_be_bytes());
        }
        i64::MIN..=-2_147_483_649 => {
            out.push(0xd3);
            out.extend_from_slice(&v.to_be_bytes());
        }
        0..=127 => out.push(v as u8),
        128..=255 => out.extend_from_slice(&[0xcc, v as u8]),
        256..=65_535 => {
            out.push(0xcd);
            out.extend_from_slice(&(v as u16).to_be_bytes());
        }
        65_536..=4_294_967_295 => {
            out.push(0xce);
            out.extend_from_slice(&(v as u32).to_be_bytes());
        }
        _ => {
            out.push(0xcf);
            out.extend_from_slice(&(v as u64).to_be_bytes());
        }
    }
}

fn put_opt<T>(out: &mut Vec<u8>, v: Option<T>, put: impl FnOnce(&mut Vec<u8>, T)) {
    match v {
        Some(v) => put(out, v),
        None => out.push(NIL),
    }
}

/// Decodes one record that fills `bytes` exactly, borrowing from it, with
/// `embedding` (little-endian f32 bytes: its row of the vectors section).
pub fn decode_ref<'a>(bytes: &'a [u8], embedding: &'a [u8]) -> Result<PatternRef<'a>> {
    let mut r = Input(bytes);
    if r.byte()? != 0x90 | FIELDS {
        return Err(bad("not a 13-field array"));
    }
    let id = r.str()?;
    let pattern_type = r.str()?;
    let domain = r.str()?;
    let framework = r.str()?;
    let content = r.str()?;
    if !embedding.len().is_multiple_of(4) {
        return Err(bad("embedding length is not a multiple of 4"));
    }
    let coverage = r.opt(Input::f64)?;
    let flakiness_score = r.opt(Input::f64)?;
    let verdict = Verdict::parse(r.str()?).ok_or_else(|| bad("unknown verdict"))?;
    let created_at = r.int()?;
    let last_used = r.opt(Input::int)?;
    let usage_count = r.int()?;
    let success_count = r.int()?;
    let metadata_json = r.opt(Input::str)?;
    if !r.0.is_empty() {
        return Err(bad("trailing bytes"));
    }
    Ok(PatternRef {
        id,
        pattern_type,
        domain,
        framework,
        content,
        embedding: EmbeddingRef::Le(embedding),
        coverage,
        flakiness_score,
        verdict,
        created_at,
        last_used,
        usage_count,
        success_count,
        metadata_json,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn encode(p: &Pattern) -> Vec<u8> {
        let mut out = Vec::new();
        super::super::codec::encode_record(p, &mut out).unwrap();
        out
    }

    /// Integers around every boundary of the MessagePack int forms.
    fn edge_int() -> impl Strategy<Value = i64> {
        let edges = [
            i64::MIN,
            -2_147_483_649,
            -2_147_483_648,
            -32_769,
            -32_768,
            -129,
            -128,
            -33,
            -32,
            -1,
            0,
            127,
            128,
            255,
            256,
            65_535,
            65_536,
            4_294_967_295,
            4_294_967_296,
            i64::MAX,
        ];
        prop_oneof![proptest::sample::select(edges.to_vec()), any::<i64>()]
    }

    fn arb_pattern() -> impl Strategy<Value = Pattern> {
        (
            ("[a-zé😀]{1,40}", "[a-z]{1,8}", ".{0,300}"),
            proptest::collection::vec(-1e30f32..1e30, 1..70),
            (proptest::option::of(0.0f64..=1.0), proptest::option::of(0.0f64..=1.0)),
            (edge_int(), proptest::option::of(edge_int()), 0i64..i64::MAX, edge_int()),
            proptest::option::of("\\{\"[a-z]{0,5}\":[0-9]{1,9}\\}"),
            0usize..4,
        )
            .prop_map(
                |(
                    (id, word, content),
                    embedding,
                    (coverage, flakiness_score),
                    (created_at, last_used, usage_count, success_count),
                    metadata_json,
                    v,
                )| Pattern {
                    id,
                    pattern_type: word.clone(),
                    domain: word.clone(),
                    framework: word,
                    content,
                    embedding,
                    coverage,
                    flakiness_score,
                    verdict: [Verdict::Success, Verdict::Failure, Verdict::Flaky, Verdict::Unknown][v],
                    created_at,
                    last_used,
                    usage_count,
                    success_count,
                    metadata_json,
                },
            )
    }

    proptest! {
        /// The strict decoder reads back exactly what the writer (rmp-serde) wrote.
        #[test]
        fn decodes_what_the_writer_writes(p in arb_pattern()) {
            let bytes = encode(&p);
            let row = crate::model::f32_bytes::to_le_bytes(&p.embedding);
            prop_assert_eq!(decode_ref(&bytes, &row).unwrap().to_owned(), p.clone());
            prop_assert_eq!(p.as_ref().to_owned(), p);
        }

        /// The hand-written encoder writes exactly rmp-serde's bytes.
        #[test]
        fn encode_ref_matches_rmp_serde(p in arb_pattern()) {
            let mut mine = Vec::new();
            encode_ref(&p.as_ref(), &mut mine);
            prop_assert_eq!(mine, encode(&p));
        }

        /// Any truncation or appended byte is an error, never a panic.
        #[test]
        fn truncated_or_extended_records_are_rejected(p in arb_pattern(), cut in any::<prop::sample::Index>()) {
            let bytes = encode(&p);
            let at = cut.index(bytes.len());
            prop_assert!(decode_ref(&bytes[..at], &[]).is_err());
            let mut longer = bytes.clone();
            longer.push(0);
            prop_assert!(decode_ref(&longer, &[]).is_err());
        }

        /// Arbitrary bytes never panic.
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = decode_ref(&bytes, &[]);
        }
    }
}

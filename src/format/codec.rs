//! MessagePack encoding of the sections (rmp-serde, structs as arrays), and
//! bounded decoding: a hostile section is rejected with an error, never with
//! a large allocation or a deep recursion.

use std::io::Cursor;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::index::Indexes;
use crate::model::AgentConfig;
#[cfg(test)]
use crate::model::Pattern;

/// Every type in the format nests at most this deep; anything deeper is hostile.
const MAX_DEPTH: usize = 8;

pub fn encode<T: Serialize>(value: &T, out: &mut Vec<u8>) -> Result<()> {
    rmp_serde::encode::write(out, value).map_err(|e| Error::Internal(format!("encode: {e}")))
}

/// Decodes exactly one value that fills `bytes` completely.
///
/// Bounded because: the reader copies at most what `bytes` holds (a length
/// prefix larger than the rest of the input fails with end-of-input before
/// anything is allocated for it); serde's sequence visitors cap their
/// pre-allocation; and nesting past `MAX_DEPTH` is refused.
pub fn decode_exact<T: DeserializeOwned>(bytes: &[u8], what: &str) -> Result<T> {
    let mut cursor = Cursor::new(bytes);
    let mut de = rmp_serde::Deserializer::new(&mut cursor);
    de.set_max_depth(MAX_DEPTH);
    let value = T::deserialize(&mut de).map_err(|e| Error::CacheCorrupt(format!("{what}: {e}")))?;
    if cursor.position() != bytes.len() as u64 {
        return Err(Error::CacheCorrupt(format!(
            "{what}: {} trailing bytes",
            bytes.len() as u64 - cursor.position()
        )));
    }
    Ok(value)
}

/// A record as rmp-serde writes it: a pattern without its embedding, which
/// is a row of the vectors section. The reference for `record::encode_ref`.
#[cfg(test)]
#[derive(Serialize)]
struct RecordFields<'a> {
    id: &'a str,
    pattern_type: &'a str,
    domain: &'a str,
    framework: &'a str,
    content: &'a str,
    coverage: Option<f64>,
    flakiness_score: Option<f64>,
    verdict: crate::model::Verdict,
    created_at: i64,
    last_used: Option<i64>,
    usage_count: i64,
    success_count: i64,
    metadata_json: Option<&'a str>,
}

/// The canonical record of a pattern, through rmp-serde: the reference the
/// hand-written writer (`record::encode`) is tested against.
#[cfg(test)]
pub fn encode_record(p: &Pattern, out: &mut Vec<u8>) -> Result<()> {
    encode(
        &RecordFields {
            id: &p.id,
            pattern_type: &p.pattern_type,
            domain: &p.domain,
            framework: &p.framework,
            content: &p.content,
            coverage: p.coverage,
            flakiness_score: p.flakiness_score,
            verdict: p.verdict,
            created_at: p.created_at,
            last_used: p.last_used,
            usage_count: p.usage_count,
            success_count: p.success_count,
            metadata_json: p.metadata_json.as_deref(),
        },
        out,
    )
}

/// Decodes a record, with its embedding row, to an owned pattern (see
/// `record::decode_ref`); for tests.
#[cfg(test)]
pub fn decode_record(bytes: &[u8], embedding: &[u8]) -> Result<Pattern> {
    super::record::decode_ref(bytes, embedding).map(|r| r.to_owned())
}

/// The indexes section: `[domain, type, framework, verdict]`, each an array
/// of `[name, [ordinal, ...]]` pairs sorted by name; ordinals ascend.
pub fn encode_indexes(ix: &Indexes, out: &mut Vec<u8>) -> Result<()> {
    encode(&ix.as_sections(), out)
}

type IndexSection = Vec<(String, Vec<u32>)>;

/// Decodes and validates the indexes of a file holding `count` records.
///
/// Hand-written (the section is most of what `open` decodes: four ordinals
/// per record): it accepts what rmp-serde accepts for this shape and writes
/// (checked against it by a property test), allocates no more than the
/// input can hold, and rejects trailing bytes.
pub fn decode_indexes(bytes: &[u8], count: u64) -> Result<Indexes> {
    let [d, t, f, v] = decode_index_sections(bytes)?;
    Indexes::from_sections((d, t, f, v), count)
}

/// The four sections' pairs, as written (not yet validated).
fn decode_index_sections(bytes: &[u8]) -> Result<[IndexSection; 4]> {
    let mut r = IndexInput(bytes);
    if r.array()? != 4 {
        return Err(bad_indexes("not an array of 4 indexes"));
    }
    let mut sections: [IndexSection; 4] = Default::default();
    for section in &mut sections {
        let pairs = r.array()?;
        // Each pair takes at least 3 bytes, so the input bounds the allocation.
        section.reserve(pairs.min(r.0.len() / 3));
        for _ in 0..pairs {
            if r.array()? != 2 {
                return Err(bad_indexes("an index entry is not a [name, ordinals] pair"));
            }
            let name = r.str()?.to_owned();
            let n = r.array()?;
            let mut ordinals = Vec::with_capacity(n.min(r.0.len()));
            for _ in 0..n {
                ordinals.push(r.u32()?);
            }
            section.push((name, ordinals));
        }
    }
    if !r.0.is_empty() {
        return Err(bad_indexes("trailing bytes"));
    }
    Ok(sections)
}

fn bad_indexes(what: &str) -> Error {
    Error::CacheCorrupt(format!("indexes: {what}"))
}

/// A cursor over the indexes section.
struct IndexInput<'a>(&'a [u8]);

impl<'a> IndexInput<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if n > self.0.len() {
            return Err(bad_indexes("a length runs past the section"));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn be(&mut self, n: usize) -> Result<u64> {
        Ok(self.take(n)?.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b)))
    }

    fn marker(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }

    fn array(&mut self) -> Result<usize> {
        Ok(match self.marker()? {
            m @ 0x90..=0x9f => usize::from(m & 0x0f),
            0xdc => self.be(2)? as usize,
            0xdd => self.be(4)? as usize,
            _ => return Err(bad_indexes("expected an array")),
        })
    }

    fn str(&mut self) -> Result<&'a str> {
        let len = match self.marker()? {
            m @ 0xa0..=0xbf => usize::from(m & 0x1f),
            0xd9 => self.be(1)? as usize,
            0xda => self.be(2)? as usize,
            0xdb => self.be(4)? as usize,
            _ => return Err(bad_indexes("expected a name")),
        };
        std::str::from_utf8(self.take(len)?).map_err(|_| bad_indexes("a name is not UTF-8"))
    }

    fn u32(&mut self) -> Result<u32> {
        let v = match self.marker()? {
            m @ 0x00..=0x7f => u64::from(m),
            0xcc => self.be(1)?,
            0xcd => self.be(2)?,
            0xce => self.be(4)?,
            0xcf => self.be(8)?,
            _ => return Err(bad_indexes("expected an ordinal")),
        };
        u32::try_from(v).map_err(|_| bad_indexes("an ordinal is out of range"))
    }
}

/// The configs section: an array of agent configs sorted by agent id.
pub fn encode_configs(configs: &[AgentConfig], out: &mut Vec<u8>) -> Result<()> {
    encode(&configs, out)
}

pub fn decode_configs(bytes: &[u8]) -> Result<Vec<AgentConfig>> {
    decode_exact(bytes, "configs")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Verdict;

    fn pattern() -> Pattern {
        Pattern {
            id: "p1".into(),
            pattern_type: "unit".into(),
            domain: "auth".into(),
            framework: "jest".into(),
            content: "expect(x).toBe(1)".into(),
            embedding: vec![0.5, -1.25, 3.0],
            coverage: Some(0.75),
            flakiness_score: None,
            verdict: Verdict::Flaky,
            created_at: 1_700_000_000_000,
            last_used: Some(1_700_000_000_500),
            usage_count: 3,
            success_count: 2,
            metadata_json: Some(r#"{"a":1}"#.into()),
        }
    }

    proptest::proptest! {
        /// The hand-written index decoder reads exactly what rmp-serde reads.
        #[test]
        fn index_decoder_agrees_with_rmp_serde(
            raw in proptest::collection::vec(
                proptest::collection::vec(("[a-zé]{0,40}", proptest::collection::vec(0u32..u32::MAX, 0..40)), 0..6),
                4..=4,
            ),
            cut in proptest::prelude::any::<proptest::sample::Index>(),
        ) {
            let t = (raw[0].clone(), raw[1].clone(), raw[2].clone(), raw[3].clone());
            let mut bytes = Vec::new();
            encode(&t, &mut bytes).unwrap();
            type Raw = (IndexSection, IndexSection, IndexSection, IndexSection);
            let reference = |b: &[u8]| decode_exact::<Raw>(b, "indexes").map(|(d, t, f, v)| [d, t, f, v]);
            proptest::prop_assert_eq!(decode_index_sections(&bytes).unwrap(), reference(&bytes).unwrap());
            // Cut anywhere or extended: both refuse.
            for b in [bytes[..cut.index(bytes.len())].to_vec(), [bytes.clone(), vec![0]].concat()] {
                proptest::prop_assert!(reference(&b).is_err());
                proptest::prop_assert!(decode_index_sections(&b).is_err());
            }
        }
    }

    #[test]
    fn record_round_trip() {
        let mut buf = Vec::new();
        encode_record(&pattern(), &mut buf).unwrap();
        let row = crate::model::f32_bytes::to_le_bytes(&pattern().embedding);
        assert_eq!(decode_record(&buf, &row).unwrap(), pattern());
    }

    #[test]
    fn trailing_bytes_and_truncation_rejected() {
        let mut buf = Vec::new();
        encode_record(&pattern(), &mut buf).unwrap();
        let mut longer = buf.clone();
        longer.push(0xc0);
        assert_eq!(decode_record(&longer, &[]).unwrap_err().code(), "CACHE_CORRUPT");
        for cut in 0..buf.len() {
            assert!(decode_record(&buf[..cut], &[]).is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn huge_length_prefixes_fail_fast() {
        // array32 claiming 4 billion entries, str32 claiming 4 GiB, bin32 likewise.
        for bytes in [
            vec![0xdd, 0xff, 0xff, 0xff, 0xff],
            vec![0xdb, 0xff, 0xff, 0xff, 0xff, b'a'],
            vec![0xc6, 0xff, 0xff, 0xff, 0xff, 0],
            vec![0xdf, 0xff, 0xff, 0xff, 0xff],
        ] {
            assert!(decode_configs(&bytes).is_err());
            assert!(decode_indexes(&bytes, 10).is_err());
            assert!(decode_record(&bytes, &[]).is_err());
        }
    }

    #[test]
    fn deep_nesting_rejected_without_overflow() {
        // 100,000 nested one-element arrays.
        let mut bytes = vec![0x91u8; 100_000];
        bytes.push(0xc0);
        assert!(decode_indexes(&bytes, 10).is_err());
        assert!(decode_configs(&bytes).is_err());
        assert!(decode_record(&bytes, &[]).is_err());
    }
}

//! MessagePack encoding of the sections (rmp-serde, structs as arrays), and
//! bounded decoding: a hostile section is rejected with an error, never with
//! a large allocation or a deep recursion.

use std::io::Cursor;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::index::Indexes;
use crate::model::{AgentConfig, Pattern};

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

/// The canonical record of a pattern, through rmp-serde.
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
/// `record::decode_ref`).
pub fn decode_record(bytes: &[u8], embedding: &[u8]) -> Result<Pattern> {
    super::record::decode_ref(bytes, embedding).map(|r| r.to_owned())
}

/// The indexes section: `[domain, type, framework, verdict]`, each an array
/// of `[name, [ordinal, ...]]` pairs sorted by name; ordinals ascend.
pub fn encode_indexes(ix: &Indexes, out: &mut Vec<u8>) -> Result<()> {
    encode(&ix.as_sections(), out)
}

/// Decodes and validates the indexes of a file holding `count` records.
pub fn decode_indexes(bytes: &[u8], count: u64) -> Result<Indexes> {
    type Raw = (
        Vec<(String, Vec<u32>)>,
        Vec<(String, Vec<u32>)>,
        Vec<(String, Vec<u32>)>,
        Vec<(String, Vec<u32>)>,
    );
    let raw: Raw = decode_exact(bytes, "indexes")?;
    Indexes::from_sections(raw, count)
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

    #[test]
    fn record_round_trip() {
        let mut buf = Vec::new();
        encode_record(&pattern(), &mut buf).unwrap();
        let row = crate::format::f32_bytes::to_le_bytes(&pattern().embedding);
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

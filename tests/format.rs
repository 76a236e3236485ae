//! Tier 1: cache files built from SQLite hold exactly what SQLite holds, are
//! deterministic, and every kind of damage is refused with a cache error code.

mod common;

use std::path::Path;
use std::sync::OnceLock;

use common::*;
use pattern_cache::cache_file::open_view;
use pattern_cache::format::{Header, SectionId, DIR_ENTRY_LEN, HEADER_LEN};
use pattern_cache::{AgentConfig, Error, IndexKind, Pattern, PatternFilter};
use proptest::prelude::{any, prop_assert, prop_assert_eq, proptest, ProptestConfig};

const CACHE_CODES: [&str; 2] = ["CACHE_CORRUPT", "CACHE_INCOMPATIBLE"];

/// Opens `bytes` as a cache file and checks every record.
fn open_and_verify(dir: &Path, bytes: &[u8]) -> Result<pattern_cache::format::CacheView, Error> {
    let path = dir.join("probe.pcache");
    std::fs::write(&path, bytes).unwrap();
    let view = open_view(&path)?.0;
    view.verify_all()?;
    Ok(view)
}

#[track_caller]
fn assert_rejected(dir: &Path, bytes: &[u8], what: &str) -> &'static str {
    match open_and_verify(dir, bytes) {
        Ok(_) => panic!("{what}: damaged file accepted"),
        Err(e) => {
            assert!(CACHE_CODES.contains(&e.code()), "{what}: got {e:?}");
            e.code()
        }
    }
}

/// A small database (patterns + configs) and the cache file built from it.
struct Fixture {
    dir: tempfile::TempDir,
    bytes: Vec<u8>,
    patterns: Vec<Pattern>,
    configs: Vec<AgentConfig>,
}

fn fixture(n: usize) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let configs: Vec<_> = (0..4).map(gen_config).collect();
    fill_db(dir.path(), &gen_inputs(42, n, DIM), 64, &configs);
    let bytes = build_file(dir.path());
    Fixture {
        patterns: sqlite_all(&db_path(dir.path())),
        configs: sqlite_configs(&db_path(dir.path())),
        dir,
        bytes,
    }
}

fn header_of(bytes: &[u8]) -> Header {
    Header::decode(bytes).expect("valid header")
}

#[test]
fn every_record_equals_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let inputs = gen_inputs(1, 300, DIM);
    let configs: Vec<_> = (0..5).map(gen_config).collect();
    fill_db(dir.path(), &inputs, 37, &configs);
    build_file(dir.path());

    let rows = sqlite_all(&db_path(dir.path()));
    assert_eq!(rows, Model::from_inputs(&inputs).all(), "SQLite vs model");
    let view = open_view(&cache_path(dir.path())).unwrap().0;
    assert_eq!(view.len() as usize, rows.len());
    assert_eq!(view.header().pattern_count, 300);
    assert_eq!(view.header().embedding_dim as usize, DIM);
    for (ordinal, row) in rows.iter().enumerate() {
        let ordinal = ordinal as u32;
        assert_eq!(view.id_at(ordinal), row.id);
        assert_eq!(&view.record(ordinal).unwrap(), row);
        assert_eq!(view.get(&row.id).unwrap().as_ref(), Some(row));
    }
    assert_eq!(view.get("not-there").unwrap(), None);
    view.verify_all().unwrap();

    // Indexes agree with the rows.
    for kind in IndexKind::ALL {
        for name in DOMAINS.iter().chain(TYPES).chain(FRAMEWORKS) {
            let want: Vec<_> = rows.iter().filter(|p| kind.key_of(p) == *name).cloned().collect();
            assert_eq!(view.by_index(kind, name).unwrap(), want, "{kind:?}={name}");
        }
    }
    assert_eq!(view.query(&PatternFilter::default()).unwrap(), rows);

    for c in sqlite_configs(&db_path(dir.path())) {
        assert_eq!(view.config(&c.agent_id), Some(c));
    }
    assert_eq!(view.header().config_count, 5);
    assert_eq!(view.config("nobody"), None);
}

#[test]
fn empty_database_gives_a_valid_empty_file() {
    let dir = tempfile::tempdir().unwrap();
    fill_db(dir.path(), &[], 1, &[]);
    build_file(dir.path());
    let view = open_view(&cache_path(dir.path())).unwrap().0;
    assert!(view.is_empty());
    assert_eq!(view.header().embedding_dim, 0);
    assert!(view.query(&PatternFilter::default()).unwrap().is_empty());
    view.verify_all().unwrap();
}

#[test]
fn rebuilding_the_same_database_is_byte_identical() {
    let f = fixture(120);
    let again = build_file(f.dir.path());
    assert_eq!(f.bytes, again);
}

#[test]
fn insertion_order_does_not_change_the_file() {
    let inputs = gen_inputs(9, 250, DIM);
    let configs: Vec<_> = (0..6).map(gen_config).collect();

    let a = tempfile::tempdir().unwrap();
    fill_db(a.path(), &inputs, 250, &configs);

    let b = tempfile::tempdir().unwrap();
    let mut shuffled = inputs.clone();
    Rng::new(99).shuffle(&mut shuffled);
    let mut shuffled_configs = configs.clone();
    shuffled_configs.reverse();
    fill_db(b.path(), &shuffled, 7, &shuffled_configs);
    // Re-storing rows with the same values changes the history (generation), not the content.
    fill_db(b.path(), &shuffled[..10], 10, &shuffled_configs[..2]);

    let (fa, fb) = (build_file(a.path()), build_file(b.path()));
    assert_ne!(
        header_of(&fa).generation,
        header_of(&fb).generation,
        "the two databases took different paths"
    );
    assert_eq!(fa.len(), fb.len());
    assert!(fa[HEADER_LEN..] == fb[HEADER_LEN..], "sections differ");

    // The headers agree on everything but provenance (generation, time, source id).
    let (mut ha, hb) = (header_of(&fa), header_of(&fb));
    ha.generation = hb.generation;
    ha.created_at_ms = hb.created_at_ms;
    ha.source_id = hb.source_id;
    assert_eq!(ha, hb);
}

fn flip(bytes: &[u8], at: usize, mask: u8) -> Vec<u8> {
    let mut out = bytes.to_vec();
    out[at] ^= mask;
    out
}

#[test]
fn wrong_magic_and_other_major_are_refused() {
    let f = fixture(10);
    let d = f.dir.path();
    // Not a cache file at all: either cache code will do.
    assert_rejected(d, &flip(&f.bytes, 0, 0xff), "magic");
    let mut other = header_of(&f.bytes);
    other.version.major = 3;
    let mut bytes = f.bytes.clone();
    bytes[..HEADER_LEN].copy_from_slice(&other.encode());
    assert_eq!(assert_rejected(d, &bytes, "major 3"), "CACHE_INCOMPATIBLE");
    // A file of format 1 (no vectors section) is another major too.
    other.version.major = 1;
    bytes[..HEADER_LEN].copy_from_slice(&other.encode());
    assert_eq!(assert_rejected(d, &bytes, "major 1"), "CACHE_INCOMPATIBLE");
    // A newer minor of the same major stays readable.
    let mut newer = header_of(&f.bytes);
    newer.version.minor += 1;
    bytes[..HEADER_LEN].copy_from_slice(&newer.encode());
    let view = open_and_verify(d, &bytes).expect("newer minor is readable");
    assert_eq!(view.record(0).unwrap(), f.patterns[0]);
}

#[test]
fn a_flipped_bit_anywhere_in_the_header_is_refused() {
    let f = fixture(10);
    for at in 0..HEADER_LEN {
        let mask = 1u8 << (at % 8);
        assert_rejected(f.dir.path(), &flip(&f.bytes, at, mask), &format!("header byte {at}"));
    }
}

#[test]
fn a_flipped_bit_in_each_small_section_is_refused_at_open() {
    let f = fixture(30);
    let header = header_of(&f.bytes);
    for id in [
        SectionId::Directory,
        SectionId::Ids,
        SectionId::Indexes,
        SectionId::Configs,
    ] {
        let s = header.section(id);
        assert!(s.len > 0, "{id:?} is empty");
        let (start, len) = (s.offset as usize, s.len as usize);
        for at in [start, start + len / 2, start + len - 1] {
            let path = f.dir.path().join("section.pcache");
            std::fs::write(&path, flip(&f.bytes, at, 0x04)).unwrap();
            let err = open_view(&path).expect_err(&format!("{id:?} byte {at}"));
            assert_eq!(err.code(), "CACHE_CORRUPT", "{id:?} byte {at}: {err}");
        }
    }
}

/// (offset, length) of record `ordinal`, from the directory.
fn record_span(bytes: &[u8], ordinal: usize) -> (usize, usize) {
    let header = header_of(bytes);
    let dir = header.section(SectionId::Directory).offset as usize + ordinal * DIR_ENTRY_LEN;
    let rec_off = u64::from_le_bytes(bytes[dir..dir + 8].try_into().unwrap()) as usize;
    let rec_len = u32::from_le_bytes(bytes[dir + 8..dir + 12].try_into().unwrap()) as usize;
    (HEADER_LEN + rec_off, rec_len)
}

#[test]
fn a_flipped_bit_in_a_record_is_caught_when_that_record_is_read() {
    let f = fixture(20);
    let path = f.dir.path().join("record.pcache");
    for victim in [0usize, 7, 19] {
        let (start, len) = record_span(&f.bytes, victim);
        for at in [start, start + len / 2, start + len - 1] {
            std::fs::write(&path, flip(&f.bytes, at, 0x80)).unwrap();
            // The header and small sections are intact: opening succeeds.
            let view = open_view(&path).unwrap().0;
            for (ordinal, want) in f.patterns.iter().enumerate() {
                let got = view.record(ordinal as u32);
                if ordinal == victim {
                    assert_eq!(got.unwrap_err().code(), "CACHE_CORRUPT");
                    // Still refused on a second read (not cached as good).
                    assert_eq!(view.get(&want.id).unwrap_err().code(), "CACHE_CORRUPT");
                } else {
                    assert_eq!(&got.unwrap(), want);
                }
            }
            assert_eq!(view.verify_all().unwrap_err().code(), "CACHE_CORRUPT");
        }
    }
}

#[test]
fn truncation_is_refused() {
    let f = fixture(25);
    let header = header_of(&f.bytes);
    let mut cuts = vec![0, 1, 8, 15, 16, HEADER_LEN - 1, HEADER_LEN, HEADER_LEN + 1];
    for id in SectionId::ALL {
        let s = header.section(id);
        let (start, end) = (s.offset as usize, (s.offset + s.len) as usize);
        cuts.extend([start.saturating_sub(1), start, start + 1, end - 1]);
        cuts.push(end);
    }
    let mut rng = Rng::new(5);
    cuts.extend((0..20).map(|_| rng.below(f.bytes.len())));
    cuts.retain(|&c| c < f.bytes.len());
    for cut in cuts {
        assert_rejected(f.dir.path(), &f.bytes[..cut], &format!("cut at {cut}"));
    }
}

#[test]
fn empty_random_and_padded_files_are_refused() {
    let f = fixture(5);
    let d = f.dir.path();
    assert_rejected(d, &[], "empty file");
    let mut rng = Rng::new(77);
    for len in [1, 15, 16, 100, HEADER_LEN, 4096] {
        let noise: Vec<u8> = (0..len).map(|_| rng.next_u64() as u8).collect();
        assert_rejected(d, &noise, &format!("{len} random bytes"));
        // Random bytes behind a valid magic and version.
        let mut disguised = noise.clone();
        let n = 16.min(len);
        disguised[..n].copy_from_slice(&f.bytes[..n]);
        assert_rejected(d, &disguised, &format!("{len} disguised bytes"));
    }
    for garbage in [&[0u8][..], b"trailing garbage", &[0xc0; 4096]] {
        let mut longer = f.bytes.clone();
        longer.extend_from_slice(garbage);
        assert_eq!(assert_rejected(d, &longer, "trailing garbage"), "CACHE_CORRUPT");
    }
    // The untouched file is fine (the checks above are not vacuous).
    let view = open_and_verify(d, &f.bytes).unwrap();
    assert_eq!(view.query(&PatternFilter::default()).unwrap(), f.patterns);
}

/// A small valid file, built once for the property test.
fn small_file() -> &'static (Vec<u8>, Vec<Pattern>, Vec<AgentConfig>) {
    static FILE: OnceLock<(Vec<u8>, Vec<Pattern>, Vec<AgentConfig>)> = OnceLock::new();
    FILE.get_or_init(|| {
        let f = fixture(6);
        (f.bytes, f.patterns, f.configs)
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// One damaged byte anywhere: either refused with a cache code, or every
    /// record read back is exactly the original. Never a wrong answer.
    #[test]
    fn a_damaged_byte_never_yields_a_wrong_record(
        position in any::<proptest::sample::Index>(),
        mask in 1u8..=255,
    ) {
        let (bytes, patterns, configs) = small_file();
        let at = position.index(bytes.len());
        let damaged = flip(bytes, at, mask);
        let dir = tempfile::tempdir().unwrap();
        match open_and_verify(dir.path(), &damaged) {
            Err(e) => prop_assert!(CACHE_CODES.contains(&e.code()), "byte {}: {:?}", at, e),
            Ok(view) => {
                prop_assert_eq!(view.len() as usize, patterns.len());
                for (ordinal, want) in patterns.iter().enumerate() {
                    prop_assert_eq!(&view.record(ordinal as u32).unwrap(), want);
                    prop_assert_eq!(view.get(&want.id).unwrap(), Some(want.clone()));
                }
                for c in configs {
                    prop_assert_eq!(view.config(&c.agent_id), Some(c.clone()));
                }
            }
        }
    }
}

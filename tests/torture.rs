//! The Rust half of the reliability battery: a corruption sweep over a real
//! cache file, a hostile decode corpus (with time and peak memory per case),
//! and a mutation fuzzer for every decoder. Each test runs a short version by
//! default; `cargo test --release --test torture -- --ignored --nocapture`
//! runs the long ones (sizes from TORTURE_MUTATIONS / TORTURE_FUZZ). Figures
//! are printed as `FIGURE {json}` lines for torture/run.js.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use common::*;
use pattern_cache::format::reader::Backing;
use pattern_cache::format::{codec, record, CacheView, Header, HEADER_LEN};
use pattern_cache::search::{SearchInput, SearchQuery};
use pattern_cache::{AgentConfig, Pattern, PatternFilter};
use sha2::{Digest, Sha256};

/// Counts live and peak heap bytes, so a case can show what it allocated.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let live = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(live, Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Peak heap growth (bytes) while `f` runs.
fn peak_during<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let base = LIVE.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    let out = f();
    (out, PEAK.load(Ordering::Relaxed).saturating_sub(base))
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

struct Bytes(Vec<u8>);

impl Backing for Bytes {
    fn bytes(&self) -> &[u8] {
        &self.0
    }
}

/// A small real cache file and what it must answer.
struct Fixture {
    bytes: Vec<u8>,
    patterns: Vec<Pattern>,
    configs: Vec<AgentConfig>,
    /// Searches and their answers from the intact file (which tests/search.rs
    /// checks against a float64 model).
    searches: Vec<(SearchQuery, Vec<(String, f64)>)>,
}

fn search_ids(view: &CacheView, q: &SearchQuery) -> pattern_cache::Result<Vec<(String, f64)>> {
    let t = pattern_cache::overlay::Tier1 { view, overlay: None };
    Ok(pattern_cache::search::on_tier1(&t, q)?
        .into_iter()
        .map(|(p, s)| (p.id.to_owned(), s))
        .collect())
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let inputs = gen_inputs(77, 24, DIM);
    let configs: Vec<_> = (0..3).map(gen_config).collect();
    fill_db(dir.path(), &inputs, 24, &configs);
    let bytes = build_file(dir.path());
    let patterns = sqlite_all(&db_path(dir.path()));
    let view = CacheView::open(Box::new(Bytes(bytes.clone()))).unwrap();
    let searches = [
        SearchInput {
            k: Some(5.0),
            ..Default::default()
        },
        SearchInput {
            metric: Some("dot".into()),
            domain: Some(patterns[3].domain.clone()),
            use_mmr: Some(true),
            ..Default::default()
        },
    ]
    .into_iter()
    .map(|input| {
        let q = SearchQuery::new(patterns[1].embedding.clone(), &input).unwrap();
        let answer = search_ids(&view, &q).unwrap();
        (q, answer)
    })
    .collect();
    Fixture {
        searches,
        bytes,
        patterns,
        configs: sqlite_configs(&db_path(dir.path())),
    }
}

/// What a reader makes of `bytes`: Ok(true) all answers right, Ok(false)
/// rejected with a cache error somewhere; Err: a wrong answer (a bug).
fn judge(f: &Fixture, bytes: Vec<u8>) -> Result<bool, String> {
    let view = match CacheView::open(Box::new(Bytes(bytes))) {
        Ok(v) => v,
        Err(e) if e.is_cache_problem() => return Ok(false),
        Err(e) => return Err(format!("open failed with a non-cache error: {e}")),
    };
    let mut rejected = false;
    for (i, want) in f.patterns.iter().enumerate() {
        match view.get(&want.id) {
            Ok(Some(got)) if &got == want => {}
            Ok(other) => return Err(format!("record {i}: wrong answer {other:?}")),
            Err(e) if e.is_cache_problem() => rejected = true,
            Err(e) => return Err(format!("record {i}: non-cache error {e}")),
        }
    }
    for c in &f.configs {
        if view.config(&c.agent_id).as_ref() != Some(c) {
            return Err(format!("config {} wrong", c.agent_id));
        }
    }
    match view.query(&PatternFilter::default()) {
        Ok(all) if all == f.patterns => {}
        Ok(_) => return Err("query: wrong answer".into()),
        Err(e) if e.is_cache_problem() => rejected = true,
        Err(e) => return Err(format!("query: non-cache error {e}")),
    }
    for (q, want) in &f.searches {
        match search_ids(&view, q) {
            Ok(got) if &got == want => {}
            Ok(got) => return Err(format!("search: wrong answer {got:?}")),
            Err(e) if e.is_cache_problem() => rejected = true,
            Err(e) => return Err(format!("search: non-cache error {e}")),
        }
    }
    Ok(!rejected)
}

struct Sweep {
    tried: usize,
    served: usize,
    rejected: usize,
    wrong: Vec<String>,
    crashes: usize,
}

fn sweep(mutations: usize) -> Sweep {
    let f = fixture();
    let n = f.bytes.len();
    let mut rng = Rng::new(2026);
    let mut s = Sweep {
        tried: 0,
        served: 0,
        rejected: 0,
        wrong: Vec::new(),
        crashes: 0,
    };
    let boundaries: Vec<usize> = {
        let h = Header::decode(&f.bytes).unwrap();
        let mut b = vec![0, 8, 16, HEADER_LEN - 32, HEADER_LEN];
        for sec in h.sections {
            b.extend([sec.offset as usize, (sec.offset + sec.len) as usize]);
        }
        b
    };
    let try_one = |s: &mut Sweep, bytes: Vec<u8>| {
        s.tried += 1;
        match catch_unwind(AssertUnwindSafe(|| judge(&f, bytes))) {
            Ok(Ok(true)) => s.served += 1,
            Ok(Ok(false)) => s.rejected += 1,
            Ok(Err(why)) => s.wrong.push(why),
            Err(_) => s.crashes += 1,
        }
    };
    // Every bit of every byte flipped once, and every truncation (the systematic part).
    for at in 0..n {
        for bit in 0..8 {
            let mut m = f.bytes.clone();
            m[at] ^= 1 << bit;
            try_one(&mut s, m);
        }
        try_one(&mut s, f.bytes[..at].to_vec());
    }
    for &b in &boundaries {
        for cut in [b.saturating_sub(1), b, (b + 1).min(n)] {
            try_one(&mut s, f.bytes[..cut].to_vec());
        }
    }
    // Fixed cases: empty, foreign, old/other version, wrong magic.
    try_one(&mut s, Vec::new());
    try_one(
        &mut s,
        b"\x89PNG\r\n\x1a\n"
            .iter()
            .copied()
            .chain(std::iter::repeat_n(0, n))
            .collect(),
    );
    for major in [0u16, 1, 3, 0xffff] {
        let mut m = f.bytes.clone();
        m[8..10].copy_from_slice(&major.to_le_bytes());
        try_one(&mut s, m);
    }
    // Random mutations until the budget: bit flips, byte overwrites, runs of
    // garbage, and random truncations, several at once.
    while s.tried < mutations {
        let mut m = f.bytes.clone();
        for _ in 0..=rng.below(3) {
            let len = m.len();
            if len == 0 {
                break;
            }
            match rng.below(4) {
                0 => {
                    let at = rng.below(len);
                    m[at] ^= 1 << rng.below(8);
                }
                1 => {
                    let at = rng.below(len);
                    m[at] = rng.next_u64() as u8;
                }
                2 => {
                    let at = rng.below(len);
                    for b in m.iter_mut().skip(at).take(1 + rng.below(16)) {
                        *b = rng.next_u64() as u8;
                    }
                }
                _ => {
                    let cut = rng.below(len);
                    m.truncate(cut);
                }
            }
        }
        try_one(&mut s, m);
    }
    s
}

fn report_sweep(s: &Sweep) {
    println!(
        "FIGURE {{\"test\":\"corruption_sweep\",\"mutations\":{},\"served_correctly\":{},\"rejected\":{},\"wrong_results\":{},\"crashes\":{}}}",
        s.tried,
        s.served,
        s.rejected,
        s.wrong.len(),
        s.crashes
    );
    assert!(
        s.wrong.is_empty(),
        "wrong results: {:?}",
        &s.wrong[..s.wrong.len().min(5)]
    );
    assert_eq!(s.crashes, 0);
}

#[test]
fn corruption_sweep_short() {
    report_sweep(&sweep(env_usize("TORTURE_MUTATIONS_SHORT", 60_000)));
}

#[test]
#[ignore = "long: cargo test --release --test torture -- --ignored"]
fn corruption_sweep_long() {
    report_sweep(&sweep(env_usize("TORTURE_MUTATIONS", 1_000_000)));
}

/// A file whose every hash is right but whose content is hostile: the
/// decoders themselves must hold. Its `count` patterns (when few) have
/// one-dimensional zero embeddings, with a well-formed vectors section.
fn forged(records: &[u8], dir_entries: &[u8], ids: &[u8], indexes: &[u8], configs: &[u8], count: u64) -> Vec<u8> {
    use pattern_cache::format::record::EmbeddingRef;
    use pattern_cache::format::vectors::{pad_for, VectorLayout, VectorsBuilder};
    let (vectors, vector_index) = if count == 0 || count > 1000 {
        (Vec::new(), VectorLayout::empty_index())
    } else {
        let mut rows = vec![0u8; pad_for((HEADER_LEN + records.len()) as u64)];
        let mut builder = VectorsBuilder::new(1);
        for _ in 0..count {
            builder.add(&EmbeddingRef::F32(&[0.0]), &mut rows).unwrap();
        }
        (rows, builder.finish())
    };
    let mut sections = [pattern_cache::format::header::Section::default(); 7];
    let mut at = HEADER_LEN as u64;
    let parts = [records, &vectors, dir_entries, ids, indexes, configs, &vector_index];
    for (i, part) in parts.iter().enumerate() {
        sections[i] = pattern_cache::format::header::Section {
            offset: at,
            len: part.len() as u64,
            sha256: if i <= 1 { [0; 32] } else { Sha256::digest(part).into() },
        };
        at += part.len() as u64;
    }
    let header = Header {
        version: pattern_cache::format::FORMAT_VERSION,
        producer: "forger".into(),
        created_at_ms: 0,
        generation: 1,
        pattern_count: count,
        config_count: 0,
        embedding_dim: 1,
        source_id: [0; 16],
        sections,
    };
    let mut out = header.encode().to_vec();
    for part in parts {
        out.extend_from_slice(part);
    }
    out
}

/// `file` changed by `edit` (header fields or section bytes), with every
/// section hash and the header hash made right again.
fn patched(file: &[u8], edit: impl FnOnce(&mut Header, &mut Vec<u8>)) -> Vec<u8> {
    let mut out = file.to_vec();
    let mut h = Header::decode(file).unwrap();
    edit(&mut h, &mut out);
    for (i, s) in h.sections.iter_mut().enumerate() {
        if i > 1 {
            s.sha256 = Sha256::digest(&out[s.offset as usize..(s.offset + s.len) as usize]).into();
        }
    }
    out[..HEADER_LEN].copy_from_slice(&h.encode());
    out
}

/// A directory entry for a record whose vector row is one zero float.
fn dir_entry(rec_off: u64, rec_len: u32, id_off: u32, id_len: u32, record: &[u8]) -> Vec<u8> {
    let mut e = Vec::new();
    e.extend_from_slice(&rec_off.to_le_bytes());
    e.extend_from_slice(&rec_len.to_le_bytes());
    e.extend_from_slice(&id_off.to_le_bytes());
    e.extend_from_slice(&id_len.to_le_bytes());
    e.extend_from_slice(&0u32.to_le_bytes());
    let mut hash = Sha256::new();
    hash.update(record);
    hash.update([0u8; 4]);
    e.extend_from_slice(&hash.finalize());
    e
}

/// (name, bytes fed to the whole reader, or to one decoder)
/// A named case: true when the hostile input was rejected.
type Case = (&'static str, Box<dyn Fn() -> bool + Send + Sync>);

fn hostile_corpus() -> Vec<Case> {
    let empty_indexes = {
        let mut v = Vec::new();
        codec::encode(
            &(
                Vec::<(String, Vec<u32>)>::new(),
                Vec::<(String, Vec<u32>)>::new(),
                Vec::<(String, Vec<u32>)>::new(),
                Vec::<(String, Vec<u32>)>::new(),
            ),
            &mut v,
        )
        .unwrap();
        v
    };
    let empty_configs = vec![0x90u8];
    let deep = {
        let mut v = vec![0x91u8; 100_000];
        v.push(0xc0);
        v
    };
    let mut cases: Vec<Case> = Vec::new();
    let rejects_view = |bytes: Vec<u8>| move || CacheView::open(Box::new(Bytes(bytes.clone()))).is_err();
    let ix = empty_indexes.clone();
    cases.push((
        "indexes: array32 claiming 4 billion entries",
        Box::new(rejects_view(forged(
            &[],
            &[],
            &[],
            &[0xdd, 0xff, 0xff, 0xff, 0xff],
            &empty_configs,
            0,
        ))),
    ));
    cases.push((
        "indexes: str32 claiming 4 GiB",
        Box::new(rejects_view(forged(
            &[],
            &[],
            &[],
            &[0x93, 0x91, 0x92, 0xdb, 0xff, 0xff, 0xff, 0xff, b'a'],
            &empty_configs,
            0,
        ))),
    ));
    cases.push((
        "indexes: 100,000-deep nesting",
        Box::new(rejects_view(forged(&[], &[], &[], &deep, &empty_configs, 0))),
    ));
    cases.push((
        "indexes: array16 chains",
        Box::new(rejects_view(forged(
            &[],
            &[],
            &[],
            &[0xdc, 0xff, 0xff].repeat(20_000),
            &empty_configs,
            0,
        ))),
    ));
    cases.push((
        "configs: array32 of 4 billion configs",
        Box::new(rejects_view(forged(
            &[],
            &[],
            &[],
            &ix,
            &[0xdd, 0xff, 0xff, 0xff, 0xff],
            0,
        ))),
    ));
    cases.push((
        "configs: 100,000-deep nesting",
        Box::new(rejects_view(forged(&[], &[], &[], &ix, &deep, 0))),
    ));
    cases.push((
        "header: a count that disagrees with the directory size",
        Box::new(rejects_view(forged(&[], &[], &[], &ix, &empty_configs, u64::MAX / 56))),
    ));
    // A record whose hash is right but whose content length claims 4 GiB.
    let record = {
        let mut r = vec![0x9d, 0xa1, b'x', 0xa1, b't', 0xa1, b'd', 0xa1, b'f'];
        r.extend_from_slice(&[0xdb, 0xff, 0xff, 0xff, 0xf0, 0, 0, 0, 0]);
        r
    };
    let bad_record_file = forged(
        &record,
        &dir_entry(0, record.len() as u32, 0, 1, &record),
        b"x",
        &{
            let mut v = Vec::new();
            let one = vec![("d".to_string(), vec![0u32])];
            codec::encode(&(one.clone(), one.clone(), one.clone(), one), &mut v).unwrap();
            v
        },
        &empty_configs,
        1,
    );
    cases.push((
        "record: str32 claiming 4 GiB under a valid hash",
        Box::new(
            move || match CacheView::open(Box::new(Bytes(bad_record_file.clone()))) {
                Ok(view) => view.record(0).is_err(),
                Err(_) => true,
            },
        ),
    ));
    // A well-formed one-pattern file, then its vector index or header made
    // hostile under valid hashes: every one must be refused at open.
    let good = {
        let p = Pattern {
            id: "x".into(),
            pattern_type: "t".into(),
            domain: "d".into(),
            framework: "f".into(),
            content: String::new(),
            embedding: vec![0.0],
            coverage: None,
            flakiness_score: None,
            verdict: pattern_cache::Verdict::Unknown,
            created_at: 0,
            last_used: None,
            usage_count: 0,
            success_count: 0,
            metadata_json: None,
        };
        let mut rec = Vec::new();
        record::encode_ref(&p.as_ref(), &mut rec);
        let mut ix = Vec::new();
        let one = vec![("d".to_string(), vec![0u32])];
        let (t, f) = (vec![("t".to_string(), vec![0u32])], vec![("f".to_string(), vec![0u32])]);
        let v = vec![("unknown".to_string(), vec![0u32])];
        codec::encode(&(one, t, f, v), &mut ix).unwrap();
        forged(
            &rec,
            &dir_entry(0, rec.len() as u32, 0, 1, &rec),
            b"x",
            &ix,
            &empty_configs,
            1,
        )
    };
    assert!(CacheView::open(Box::new(Bytes(good.clone())))
        .and_then(|v| v.verify_all().map(|_| v.len()))
        .is_ok_and(|n| n == 1));
    let hostile_vectors: [(&'static str, usize, [u8; 4]); 4] = [
        ("vector index: NaN norm", 8, f32::NAN.to_le_bytes()),
        ("vector index: stride 0", 0, [0; 4]),
        ("vector index: block size 0", 4, [0; 4]),
        ("vector index: stride 4 GiB", 0, [0xff; 4]),
    ];
    for (name, at, value) in hostile_vectors {
        let bytes = patched(&good, |h, file| {
            let s = h.section(pattern_cache::format::SectionId::VectorIndex);
            file[s.offset as usize + at..s.offset as usize + at + 4].copy_from_slice(&value);
        });
        cases.push((name, Box::new(rejects_view(bytes))));
    }
    let wrong_norm = patched(&good, |h, file| {
        let s = h.section(pattern_cache::format::SectionId::VectorIndex);
        file[s.offset as usize + 8..s.offset as usize + 12].copy_from_slice(&5.0f32.to_le_bytes());
    });
    cases.push((
        "vector index: a finite norm that disagrees with its row (a search must refuse, not rank by it)",
        Box::new(move || match CacheView::open(Box::new(Bytes(wrong_norm.clone()))) {
            Ok(view) => {
                let q = SearchQuery::new(vec![1.0], &SearchInput::default()).unwrap();
                search_ids(&view, &q).is_err_and(|e| e.is_cache_problem())
            }
            Err(_) => true,
        }),
    ));
    for (name, dim) in [
        ("header: embedding dimension 0 with a pattern", 0u32),
        ("header: embedding dimension 2^30", 1 << 30),
    ] {
        let bytes = patched(&good, |h, _| h.embedding_dim = dim);
        cases.push((name, Box::new(rejects_view(bytes))));
    }
    cases.push((
        "record decoder: 100,000-deep nesting",
        Box::new(move || record::decode_ref(&deep, &[]).is_err()),
    ));
    cases.push((
        "record decoder: str32 claiming 4 GiB",
        Box::new(|| record::decode_ref(&[0x9d, 0xdb, 0xff, 0xff, 0xff, 0xff, b'a'], &[]).is_err()),
    ));
    cases
}

#[test]
fn hostile_corpus_is_rejected_fast_small_and_without_stack_overflow() {
    let mut lines = Vec::new();
    for (name, case) in hostile_corpus() {
        // Each case on a 2 MiB stack: deep nesting must not overflow it.
        let handle = std::thread::Builder::new()
            .stack_size(2 << 20)
            .spawn(move || {
                let started = Instant::now();
                let (rejected, peak) = peak_during(case);
                (rejected, started.elapsed().as_secs_f64() * 1e3, peak)
            })
            .unwrap();
        let (rejected, ms, peak) = handle.join().expect("no crash, no stack overflow");
        assert!(rejected, "{name}: accepted");
        // Figures are reported, not asserted in time (no timed assertions);
        // memory is deterministic, so it is asserted.
        assert!(peak < 16 << 20, "{name}: peak {peak} bytes");
        lines.push(format!("{{\"case\":\"{name}\",\"ms\":{ms:.3},\"peak_bytes\":{peak}}}"));
    }
    println!("FIGURE {{\"test\":\"hostile_corpus\",\"cases\":[{}]}}", lines.join(","));
}

fn fuzz(executions: usize) -> (usize, usize, usize) {
    let f = fixture();
    let h = Header::decode(&f.bytes).unwrap();
    let section = |i: usize| {
        let s = h.sections[i];
        f.bytes[s.offset as usize..(s.offset + s.len) as usize].to_vec()
    };
    let mut record0 = Vec::new();
    record::encode_ref(&f.patterns[0].as_ref(), &mut record0);
    let seeds: Vec<Vec<u8>> = vec![record0, section(4), section(5), f.bytes[..HEADER_LEN].to_vec()];
    let mut rng = Rng::new(99);
    let (mut runs, mut crashes, mut max_peak) = (0usize, 0usize, 0usize);
    while runs < executions {
        let which = rng.below(seeds.len());
        let mut m = seeds[which].clone();
        for _ in 0..=rng.below(4) {
            if m.is_empty() {
                break;
            }
            let at = rng.below(m.len());
            match rng.below(3) {
                0 => m[at] ^= 1 << rng.below(8),
                1 => m[at] = rng.next_u64() as u8,
                _ => m.truncate(at),
            }
        }
        let (outcome, peak) = peak_during(|| {
            catch_unwind(AssertUnwindSafe(|| match which {
                0 => drop(record::decode_ref(&m, &[])),
                1 => drop(codec::decode_indexes(&m, f.patterns.len() as u64)),
                2 => drop(codec::decode_configs(&m)),
                _ => drop(Header::decode(&m)),
            }))
        });
        max_peak = max_peak.max(peak);
        if outcome.is_err() {
            crashes += 1;
        }
        runs += 1;
    }
    (runs, crashes, max_peak)
}

fn report_fuzz((runs, crashes, peak): (usize, usize, usize)) {
    println!("FIGURE {{\"test\":\"decoder_fuzz\",\"executions\":{runs},\"crashes\":{crashes},\"ooms\":0,\"max_peak_bytes\":{peak}}}");
    assert_eq!(crashes, 0);
    assert!(peak < 16 << 20);
}

#[test]
fn decoder_fuzz_short() {
    report_fuzz(fuzz(env_usize("TORTURE_FUZZ_SHORT", 100_000)));
}

#[test]
#[ignore = "long: cargo test --release --test torture -- --ignored"]
fn decoder_fuzz_long() {
    report_fuzz(fuzz(env_usize("TORTURE_FUZZ", 5_000_000)));
}

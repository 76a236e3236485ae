//! Criterion benchmarks of the core's hot paths, without Node: record
//! decode, record hash verification, opening a 10,000-pattern file, and a
//! lookup by id. Run: `cargo bench --bench core`.

use std::io::Cursor;

use criterion::{criterion_group, criterion_main, Criterion};
use sha2::{Digest, Sha256};

use pattern_cache::format::reader::Backing;
use pattern_cache::format::record::decode_ref;
use pattern_cache::format::writer::{write_cache, CacheMeta};
use pattern_cache::format::CacheView;
use pattern_cache::{Pattern, Verdict};

fn pattern(i: usize) -> Pattern {
    Pattern {
        id: format!("pattern-{i:06}"),
        pattern_type: ["unit", "e2e", "integration"][i % 3].into(),
        domain: format!("domain-{}", i % 20),
        framework: "vitest".into(),
        content: "x".repeat(100 + i % 400),
        embedding: (0..768).map(|d| ((i * 31 + d) % 1000) as f32 / 1000.0).collect(),
        coverage: Some(0.5),
        flakiness_score: None,
        verdict: Verdict::Success,
        created_at: 1_700_000_000_000 + i as i64,
        last_used: Some(1_750_000_000_000),
        usage_count: 3,
        success_count: 2,
        metadata_json: Some(r#"{"owner":"team-a"}"#.into()),
    }
}

fn file(n: usize) -> Vec<u8> {
    let meta = CacheMeta {
        producer: "bench".into(),
        created_at_ms: 0,
        generation: 1,
        source_id: [0; 16],
    };
    let mut out = Cursor::new(Vec::new());
    write_cache(&mut out, &meta, (0..n).map(|i| Ok(pattern(i))), &[]).expect("write");
    out.into_inner()
}

struct Shared(std::sync::Arc<Vec<u8>>);

impl Backing for Shared {
    fn bytes(&self) -> &[u8] {
        &self.0
    }
}

fn benches(c: &mut Criterion) {
    let mut record = Vec::new();
    let p = pattern(7);
    pattern_cache::format::record::encode_ref(&p.as_ref(), &mut record);
    let row = pattern_cache::model::f32_bytes::to_le_bytes(&p.embedding);
    c.bench_function("record: decode_ref (768-dim row beside it)", |b| {
        b.iter(|| decode_ref(std::hint::black_box(&record), std::hint::black_box(&row)))
    });
    c.bench_function("record: SHA-256 verify (record and 768-dim row)", |b| {
        b.iter(|| {
            let mut h = Sha256::new();
            h.update(std::hint::black_box(&record));
            h.update(std::hint::black_box(&row));
            h.finalize()
        })
    });

    let bytes = std::sync::Arc::new(file(10_000));
    c.bench_function("file: open and validate, 10,000 patterns", |b| {
        b.iter(|| CacheView::open(Box::new(Shared(bytes.clone()))).expect("open"))
    });
    let view = CacheView::open(Box::new(Shared(bytes.clone()))).expect("open");
    view.verify_all().expect("verify");
    let mut i = 0usize;
    c.bench_function("view: get_ref by id (verified), 10,000 patterns", |b| {
        b.iter(|| {
            i = (i + 7919) % 10_000;
            let ordinal = view.find(&format!("pattern-{i:06}")).expect("present");
            view.record_ref(ordinal).expect("record").embedding.len()
        })
    });
}

criterion_group!(core, benches);
criterion_main!(core);

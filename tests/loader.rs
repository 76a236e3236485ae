//! The two-tier loader as callers use it: what is stored is what is loaded,
//! both tiers and a plain model agree, writes are all-or-nothing and visible
//! at once, and a broken or unwritable tier 1 never costs correct answers.

mod common;

use std::sync::{Arc, Mutex};

use common::*;
use pattern_cache::cache_file::open_view;
use pattern_cache::clock::now_ms;
use pattern_cache::format::{Header, SectionId};
use pattern_cache::{
    CacheEvent, EventSink, IndexKind, PatternCache, PatternFilter, PatternInput, Tier, Trigger, Verdict,
};

fn minimal(id: &str) -> PatternInput {
    PatternInput {
        id: id.into(),
        pattern_type: "unit".into(),
        domain: "auth".into(),
        content: "expect(true)".into(),
        embedding: vec![0.25; DIM],
        ..Default::default()
    }
}

fn all(cache: &PatternCache) -> Vec<pattern_cache::Pattern> {
    cache.query(&PatternFilter::default()).unwrap()
}

#[test]
fn round_trip_fills_defaults_and_keeps_created_at() {
    for enabled in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        let cache = open(dir.path(), |c| c.enabled = Some(enabled));

        let before = now_ms();
        cache.store_patterns(&[minimal("p1")]).unwrap();
        let after = now_ms();
        let p = cache.load_pattern("p1").unwrap().expect("stored");
        assert_eq!(p.framework, "unknown");
        assert_eq!(p.verdict, Verdict::Unknown);
        assert_eq!((p.usage_count, p.success_count), (0, 0));
        assert_eq!((p.coverage, p.flakiness_score, p.last_used), (None, None, None));
        assert_eq!(p.metadata_json, None);
        assert_eq!(p.embedding, vec![0.25; DIM]);
        assert!(
            (before..=after).contains(&p.created_at),
            "createdAt defaults to the time of the write"
        );

        // Re-storing without createdAt keeps the original one.
        let mut edited = minimal("p1");
        edited.content = "changed".into();
        edited.verdict = Some("flaky".into());
        cache.store_patterns(&[edited]).unwrap();
        let q = cache.load_pattern("p1").unwrap().unwrap();
        assert_eq!(q.content, "changed");
        assert_eq!(q.verdict, Verdict::Flaky);
        assert_eq!(q.created_at, p.created_at, "createdAt kept (enabled={enabled})");

        // An explicit createdAt replaces it.
        let mut dated = minimal("p1");
        dated.created_at = Some(5.0);
        cache.store_patterns(&[dated]).unwrap();
        assert_eq!(cache.load_pattern("p1").unwrap().unwrap().created_at, 5);

        // A fully specified pattern comes back as the model says.
        let full = gen_inputs(3, 1, DIM).remove(0);
        cache.store_patterns(std::slice::from_ref(&full)).unwrap();
        assert_eq!(cache.load_pattern(&full.id).unwrap(), Some(expected(&full, 0)));
        assert_eq!(
            cache
                .load_patterns(&[full.id.clone(), "missing".into(), "p1".into()])
                .unwrap()
                .iter()
                .map(|p| p.as_ref().map(|p| p.id.as_str()))
                .collect::<Vec<_>>(),
            vec![Some(full.id.as_str()), None, Some("p1")]
        );
    }
}

/// Filters over the generated vocabulary, plus names nobody uses.
fn filters(rng: &mut Rng) -> Vec<PatternFilter> {
    let mut out = vec![PatternFilter::default()];
    for _ in 0..150 {
        let maybe = |rng: &mut Rng, names: &[&str]| {
            rng.chance(2)
                .then(|| (*rng.pick(names)).to_string())
                .or_else(|| rng.chance(20).then(|| "nobody-uses-this".to_string()))
        };
        out.push(PatternFilter {
            domain: maybe(rng, DOMAINS),
            pattern_type: maybe(rng, TYPES),
            framework: maybe(rng, FRAMEWORKS),
            limit: match rng.below(4) {
                0 => None,
                1 => Some(0),
                2 => Some(1 + rng.below(5)),
                _ => Some(rng.below(3000)),
            },
        });
    }
    out
}

#[test]
fn both_tiers_agree_with_a_model() {
    let dir = tempfile::tempdir().unwrap();
    let inputs = gen_inputs(2024, 2000, DIM);
    let model = Model::from_inputs(&inputs);
    let tier1 = open(dir.path(), |_| {});
    for chunk in inputs.chunks(500) {
        tier1.store_patterns(chunk).unwrap();
    }
    assert!(tier1.rebuild(Trigger::Manual).unwrap().success);
    let tier2 = open(dir.path(), |c| c.enabled = Some(false));
    assert_eq!(tier2.metrics().unwrap().tier, Tier::Sqlite);

    let everything = all(&tier1);
    assert_eq!(everything.len(), 2000);
    assert_eq!(everything, model.all());
    assert!(
        everything.windows(2).all(|w| w[0].id.as_bytes() < w[1].id.as_bytes()),
        "results come in UTF-8 byte order of ids"
    );
    assert!(everything.iter().any(|p| !p.id.is_ascii()));
    // No Unicode normalisation: "é" and "e\u{301}" are different ids.
    assert!(everything.iter().any(|p| p.id.starts_with('é')));
    assert!(everything.iter().any(|p| p.id.starts_with("e\u{301}")));
    assert_eq!(all(&tier2), everything);

    for (kind, names) in [
        (IndexKind::Domain, DOMAINS),
        (IndexKind::Type, TYPES),
        (IndexKind::Framework, FRAMEWORKS),
    ] {
        for name in names.iter().copied().chain(["nobody-uses-this"]) {
            let want: Vec<_> = model.all().into_iter().filter(|p| kind.key_of(p) == name).collect();
            assert_eq!(tier1.load_by(kind, name).unwrap(), want, "{kind:?}={name}");
            assert_eq!(tier2.load_by(kind, name).unwrap(), want, "{kind:?}={name}");
        }
    }

    let mut rng = Rng::new(1);
    for filter in filters(&mut rng) {
        let want = model.query(&filter);
        assert_eq!(tier1.query(&filter).unwrap(), want, "{filter:?}");
        assert_eq!(tier2.query(&filter).unwrap(), want, "{filter:?}");
    }

    let ids: Vec<String> = (0..200)
        .map(|_| {
            if rng.chance(4) {
                format!("absent-{}", rng.next_u64())
            } else {
                inputs[rng.below(inputs.len())].id.clone()
            }
        })
        .collect();
    let want: Vec<_> = ids.iter().map(|id| model.0.get(id).cloned()).collect();
    assert_eq!(tier1.load_patterns(&ids).unwrap(), want);
    assert_eq!(tier2.load_patterns(&ids).unwrap(), want);

    // Tier 1 really answered: it is still current and counted hits.
    let report = tier1.metrics().unwrap();
    assert_eq!(report.tier, Tier::Cache);
    assert_eq!(report.pattern_count, 2000);
    assert!(report.counters.cache_hits > 0);
    assert_eq!(report.counters.cache_misses, 0);
    assert_eq!(tier2.metrics().unwrap().counters.cache_hits, 0);
}

#[test]
fn own_writes_are_read_back_at_once() {
    let dir = tempfile::tempdir().unwrap();
    // The default checkInterval: read-your-writes must not depend on polling.
    let cache = open(dir.path(), |c| c.check_interval_ms = None);
    let inputs = gen_inputs(8, 100, DIM);
    let mut model = Model::from_inputs(&inputs);
    cache.store_patterns(&inputs).unwrap();
    assert!(cache.rebuild(Trigger::Manual).unwrap().success);
    assert_eq!(cache.metrics().unwrap().tier, Tier::Cache);
    assert_eq!(all(&cache), model.all());

    let mut changed = gen_inputs(9, 10, DIM);
    changed[0].id = inputs[0].id.clone(); // an update
    changed[0].content = "updated".into();
    cache.store_patterns(&changed).unwrap();
    model.store(&changed);
    assert_eq!(cache.load_pattern(&inputs[0].id).unwrap().unwrap().content, "updated");
    assert_eq!(all(&cache), model.all());

    assert!(cache.delete_pattern(&inputs[1].id).unwrap());
    model.0.remove(&inputs[1].id);
    assert_eq!(cache.load_pattern(&inputs[1].id).unwrap(), None);
    assert_eq!(all(&cache), model.all());
    assert!(!cache.delete_pattern(&inputs[1].id).unwrap());

    let config = gen_config(3);
    cache.store_agent_config(&config).unwrap();
    assert_eq!(
        cache.load_agent_config(&config.agent_id).unwrap(),
        Some(expected_config(&config))
    );

    // The file on disk is older than the writes, yet tier 1 kept answering
    // (amended from the change log, or rebuilt in the background): no read
    // above went to SQLite.
    let report = cache.metrics().unwrap();
    assert_eq!(report.tier, Tier::Cache);
    assert_eq!(report.counters.cache_misses, 0);
    // A rebuild brings the file itself up to date.
    assert!(cache.rebuild(Trigger::Manual).unwrap().success);
    assert_eq!(cache.metrics().unwrap().tier, Tier::Cache);
    assert_eq!(all(&cache), model.all());
    assert_eq!(
        cache.load_agent_config(&config.agent_id).unwrap(),
        Some(expected_config(&config))
    );
}

#[test]
fn an_invalid_pattern_fails_the_whole_batch() {
    let dir = tempfile::tempdir().unwrap();
    let cache = open(dir.path(), |_| {});
    let existing = gen_inputs(1, 20, DIM);
    cache.store_patterns(&existing).unwrap();
    let before = all(&cache);
    let count_before = cache.metrics().unwrap().pattern_count;

    let batch = gen_inputs(2, 100, DIM)
        .into_iter()
        .map(|mut p| {
            p.id = format!("new-{}", p.id);
            p
        })
        .collect::<Vec<_>>();
    let mut bad_batches = Vec::new();
    for (at, spoil) in [
        (
            57usize,
            (|p: &mut PatternInput| p.coverage = Some(1.5)) as fn(&mut PatternInput),
        ),
        (0, |p| p.verdict = Some("great".into())),
        (99, |p| p.embedding = vec![0.5; DIM + 1]),
        (42, |p| p.metadata_json = Some("[1]".into())),
        (13, |p| p.id = "new-dup".into()),
    ] {
        let mut b = batch.clone();
        spoil(&mut b[at]);
        if b[at].id == "new-dup" {
            b[at + 1].id = "new-dup".into();
        }
        bad_batches.push(b);
    }
    // Valid on its own, but not the database's embedding dimension.
    bad_batches.push(
        batch
            .iter()
            .cloned()
            .map(|mut p| {
                p.embedding = vec![1.0; DIM / 2];
                p
            })
            .collect(),
    );

    for b in &bad_batches {
        let err = cache.store_patterns(b).unwrap_err();
        assert_eq!(err.code(), "INVALID_PATTERN", "{err}");
        assert_eq!(all(&cache), before, "nothing written");
        assert_eq!(cache.metrics().unwrap().pattern_count, count_before);
        assert_eq!(sqlite_all(&db_path(dir.path())), before);
    }
    // The good batch itself is fine.
    cache.store_patterns(&batch).unwrap();
    assert_eq!(all(&cache).len(), 120);
}

fn recording_sink() -> (EventSink, Arc<Mutex<Vec<CacheEvent>>>) {
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink_events = Arc::clone(&events);
    let sink: EventSink = Arc::new(move |e| sink_events.lock().unwrap().push(e));
    (sink, events)
}

/// A database with patterns and a current cache file beside it.
fn populated(dir: &std::path::Path) -> Model {
    let inputs = gen_inputs(77, 150, DIM);
    let cache = open(dir, |_| {});
    cache.store_patterns(&inputs).unwrap();
    assert!(cache.rebuild(Trigger::Manual).unwrap().success);
    cache.shutdown();
    Model::from_inputs(&inputs)
}

#[test]
fn a_corrupt_cache_file_is_rebuilt_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let model = populated(dir.path());
    let path = cache_path(dir.path());
    let mut bytes = std::fs::read(&path).unwrap();
    let dir_section = Header::decode(&bytes).unwrap().section(SectionId::Directory);
    bytes[dir_section.offset as usize + 3] ^= 0x20;
    std::fs::write(&path, &bytes).unwrap();
    assert_eq!(open_view(&path).unwrap_err().code(), "CACHE_CORRUPT");

    let (sink, events) = recording_sink();
    let cache = PatternCache::open(config(dir.path(), |_| {}), Some(sink)).unwrap();
    let report = cache.metrics().unwrap();
    assert_eq!(report.counters.cache_corruption_count, 1);
    assert_eq!(report.tier, Tier::Cache);
    assert_eq!(report.cache_unavailable_reason, None);
    assert_eq!(all(&cache), model.all());
    assert_eq!(cache.metrics().unwrap().tier, Tier::Cache);
    // The file on disk was replaced by a sound one.
    open_view(&path).unwrap().0.verify_all().unwrap();
    let events = events.lock().unwrap();
    assert!(events
        .iter()
        .any(|e| matches!(e, CacheEvent::CorruptionDetected { .. })));
    assert!(events.iter().any(|e| matches!(
        e,
        CacheEvent::RebuildStarted {
            reason: Trigger::Corruption
        }
    )));
}

#[test]
fn a_corrupt_record_is_answered_from_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let model = populated(dir.path());
    let path = cache_path(dir.path());
    let mut bytes = std::fs::read(&path).unwrap();
    // A byte inside the first record: only reading that record notices.
    bytes[pattern_cache::format::HEADER_LEN + 10] ^= 0x01;
    std::fs::write(&path, &bytes).unwrap();

    let cache = open(dir.path(), |c| c.background_rebuild = Some(false));
    assert_eq!(cache.metrics().unwrap().tier, Tier::Cache);
    let first = model.all().remove(0);
    assert_eq!(cache.load_pattern(&first.id).unwrap(), Some(first));
    let report = cache.metrics().unwrap();
    assert_eq!(report.counters.cache_corruption_count, 1);
    assert_eq!(report.tier, Tier::Sqlite);
    assert!(report.cache_unavailable_reason.is_some());
    assert_eq!(all(&cache), model.all());

    assert!(cache.rebuild(Trigger::Manual).unwrap().success);
    assert_eq!(cache.metrics().unwrap().tier, Tier::Cache);
    assert_eq!(all(&cache), model.all());
}

#[test]
fn an_unwritable_cache_directory_still_serves_from_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("blocker"), b"a regular file").unwrap();
    let cache = open(dir.path(), |c| {
        c.cache_path = Some("blocker/sub/patterns.pcache".into())
    });
    let inputs = gen_inputs(4, 60, DIM);
    cache.store_patterns(&inputs).unwrap();
    let model = Model::from_inputs(&inputs);
    assert_eq!(all(&cache), model.all());
    assert_eq!(
        cache.load_by(IndexKind::Domain, DOMAINS[0]).unwrap(),
        model.query(&PatternFilter {
            domain: Some(DOMAINS[0].into()),
            ..Default::default()
        })
    );

    let report = cache.metrics().unwrap();
    assert_eq!(report.tier, Tier::Sqlite);
    assert!(report.cache_unavailable_reason.is_some());
    assert_eq!(report.pattern_count, 60);

    let built = cache.rebuild(Trigger::Manual).unwrap();
    assert!(!built.success);
    assert!(built.error.is_some());
    assert_eq!(cache.metrics().unwrap().tier, Tier::Sqlite);
    assert_eq!(all(&cache), model.all());
}

#[test]
fn after_shutdown_every_call_is_closed() {
    let dir = tempfile::tempdir().unwrap();
    let cache = open(dir.path(), |_| {});
    cache.store_patterns(&[minimal("p1")]).unwrap();
    assert!(!cache.is_closed());
    cache.shutdown();
    cache.shutdown(); // idempotent
    assert!(cache.is_closed());

    let filter = PatternFilter::default();
    let codes = [
        cache.load_pattern("p1").err().map(|e| e.code()),
        cache.load_patterns(&["p1".into()]).err().map(|e| e.code()),
        cache.load_by(IndexKind::Domain, "auth").err().map(|e| e.code()),
        cache.query(&filter).err().map(|e| e.code()),
        cache.load_agent_config("a").err().map(|e| e.code()),
        cache.store_patterns(&[minimal("p2")]).err().map(|e| e.code()),
        cache.delete_pattern("p1").err().map(|e| e.code()),
        cache.store_agent_config(&gen_config(1)).err().map(|e| e.code()),
        cache.mark_stale(Trigger::Manual, true).err().map(|e| e.code()),
        cache.rebuild(Trigger::Manual).err().map(|e| e.code()),
        cache.metrics().err().map(|e| e.code()),
        cache.cache_path().err().map(|e| e.code()),
    ];
    for (i, code) in codes.iter().enumerate() {
        assert_eq!(*code, Some("CLOSED"), "call {i}");
    }
    cache.shutdown();
    assert!(cache.is_closed());

    // Nothing was written after the shutdown; the data is intact.
    let reopened = open(dir.path(), |_| {});
    assert_eq!(
        all(&reopened).iter().map(|p| p.id.as_str()).collect::<Vec<_>>(),
        vec!["p1"]
    );
}

#[test]
fn manual_rebuild_puts_tier_one_in_service() {
    let dir = tempfile::tempdir().unwrap();
    let cache = open(dir.path(), |_| {});
    let inputs = gen_inputs(6, 80, DIM);
    cache.store_patterns(&inputs).unwrap();
    cache.mark_stale(Trigger::Manual, false).unwrap();
    assert_eq!(cache.metrics().unwrap().tier, Tier::Sqlite);

    let rebuilds_before = cache.metrics().unwrap().counters.cache_rebuild_count;
    let built = cache.rebuild(Trigger::Manual).unwrap();
    assert!(built.success, "{:?}", built.error);
    assert_eq!(built.pattern_count, 80);
    assert_eq!(
        built.cache_file_size,
        std::fs::metadata(cache.cache_path().unwrap()).unwrap().len()
    );
    let report = cache.metrics().unwrap();
    assert_eq!(report.tier, Tier::Cache);
    assert_eq!(report.cache_unavailable_reason, None);
    assert_eq!(report.pattern_count, 80);
    assert_eq!(report.cache_file_size, built.cache_file_size);
    assert_eq!(report.counters.cache_rebuild_count, rebuilds_before + 1);
    assert_eq!(all(&cache), Model::from_inputs(&inputs).all());

    // With the cache disabled a rebuild reports failure instead of building.
    let disabled = open(dir.path(), |c| c.enabled = Some(false));
    let built = disabled.rebuild(Trigger::Manual).unwrap();
    assert!(!built.success && built.error.is_some());
}

#[test]
fn without_fallback_tier_one_is_rebuilt_and_answers() {
    let dir = tempfile::tempdir().unwrap();
    let cache = open(dir.path(), |c| c.fallback_to_sqlite = Some(false));
    let inputs = gen_inputs(10, 120, DIM);
    let mut model = Model::from_inputs(&inputs);
    cache.store_patterns(&inputs).unwrap();
    assert_eq!(all(&cache), model.all());
    assert_eq!(cache.metrics().unwrap().tier, Tier::Cache);

    let more = gen_inputs(11, 5, DIM)
        .into_iter()
        .map(|mut p| {
            p.id = format!("more-{}", p.id);
            p
        })
        .collect::<Vec<_>>();
    cache.store_patterns(&more).unwrap();
    model.store(&more);
    assert!(cache.delete_pattern(&inputs[3].id).unwrap());
    model.0.remove(&inputs[3].id);
    assert_eq!(cache.load_pattern(&inputs[3].id).unwrap(), None);
    assert_eq!(all(&cache), model.all());
    let mut rng = Rng::new(3);
    for filter in filters(&mut rng).into_iter().take(30) {
        assert_eq!(cache.query(&filter).unwrap(), model.query(&filter));
    }
    let report = cache.metrics().unwrap();
    assert_eq!(report.tier, Tier::Cache);
    assert_eq!(report.counters.cache_misses, 0, "never answered from SQLite");
}

#[test]
fn open_removes_dead_builders_temp_files_unless_a_build_is_running() {
    let dir = tempfile::tempdir().unwrap();
    fill_db(dir.path(), &gen_inputs(31, 20, DIM), 10, &[]);
    drop(open(dir.path(), |_| {}));
    let cache = cache_path(dir.path());
    let name = cache.file_name().unwrap().to_string_lossy().into_owned();
    let litter = cache.with_file_name(format!("{name}.tmp-dead01"));
    // A build that is running holds the lock: its temp file stays, and open does not wait.
    std::fs::write(&litter, vec![7u8; 4096]).unwrap();
    let lock = std::fs::OpenOptions::new()
        .write(true)
        .open(cache.with_file_name(format!("{name}.lock")))
        .unwrap();
    lock.lock().unwrap();
    drop(open(dir.path(), |c| c.background_rebuild = Some(false)));
    assert!(litter.exists(), "a running build's temp file is left alone");
    // The builder died (its lock is released): the next open removes it.
    drop(lock);
    let reopened = open(dir.path(), |c| c.background_rebuild = Some(false));
    assert!(!litter.exists(), "a dead builder's temp file is removed at open");
    assert_eq!(reopened.metrics().unwrap().tier, Tier::Cache);
}

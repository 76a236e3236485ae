//! The rest of a store's API, differentially: uses, stats, paging and agent
//! configs give the same answers on tier 1 (the file, amended), tier 2
//! (SQLite) and a plain model, and thousands of uses stay on tier 1.

mod common;

use std::collections::BTreeMap;

use common::*;
use pattern_cache::{Pattern, PatternCache, PatternFilter, Stats, Tier, UsageInput};

fn model_stats(all: &[Pattern], configs: usize) -> Stats {
    let mut s = Stats {
        pattern_count: all.len() as u64,
        dimension: all.first().map_or(0, |p| p.embedding.len() as u32),
        by_verdict: ["success", "failure", "flaky", "unknown"]
            .into_iter()
            .map(|v| (v.to_owned(), 0))
            .collect(),
        agent_config_count: configs as u64,
        ..Stats::default()
    };
    for p in all {
        *s.by_domain.entry(p.domain.clone()).or_default() += 1;
        *s.by_type.entry(p.pattern_type.clone()).or_default() += 1;
        *s.by_framework.entry(p.framework.clone()).or_default() += 1;
        *s.by_verdict.entry(p.verdict.as_str().to_owned()).or_default() += 1;
    }
    s
}

fn page_all(cache: &PatternCache, filter: &PatternFilter) -> Vec<Pattern> {
    let mut out = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let (page, more) = cache.list_patterns(filter, after.as_deref()).unwrap();
        assert!(page.len() <= filter.limit.unwrap_or(1000));
        after = page.last().map(|p| p.id.clone());
        out.extend(page);
        if !more {
            return out;
        }
    }
}

fn use_of(id: &str, i: usize) -> UsageInput {
    UsageInput {
        id: id.to_owned(),
        success: i.is_multiple_of(3),
        at: Some(1_800_000_000_000.0 + (i % 977) as f64),
    }
}

/// What the uses do to a pattern, by the contract.
fn apply_use(p: &mut Pattern, u: &UsageInput) {
    p.usage_count += 1;
    p.success_count += i64::from(u.success);
    let at = u.at.unwrap() as i64;
    p.last_used = Some(p.last_used.map_or(at, |l| l.max(at)));
}

#[test]
fn thousands_of_uses_stay_on_tier_1_and_match_sqlite_and_the_model() {
    let dir = tempfile::tempdir().unwrap();
    let inputs = gen_inputs(21, 6000, DIM);
    fill_db(dir.path(), &inputs, 1000, &[]);
    let tier1 = open(dir.path(), |_| {});
    let tier2 = open(dir.path(), |c| c.enabled = Some(false));
    let mut model: BTreeMap<String, Pattern> = sqlite_all(&db_path(dir.path()))
        .into_iter()
        .map(|p| (p.id.clone(), p))
        .collect();
    let ids: Vec<String> = model.keys().cloned().collect();
    // 10,000 uses over 5,000 distinct patterns: past the 4,096 changed rows
    // the overlay holds, so only the counters overlay keeps tier 1 serving.
    let mut rng = Rng::new(3);
    let mut batch = Vec::new();
    for i in 0..10_000 {
        let id = &ids[if i < 5000 { i } else { rng.below(5000) }];
        let u = use_of(id, i);
        apply_use(model.get_mut(id).unwrap(), &u);
        if i % 4 == 0 {
            assert!(tier1.record_usage(&u).unwrap());
        } else {
            batch.push(u);
            if batch.len() == 250 {
                tier1.record_usages(&batch).unwrap();
                batch.clear();
            }
        }
    }
    tier1.record_usages(&batch).unwrap();
    let misses = tier1.metrics().unwrap().counters.cache_misses;
    let want: Vec<Pattern> = model.values().cloned().collect();
    assert_eq!(tier1.query(&PatternFilter::default()).unwrap(), want, "tier 1");
    assert_eq!(tier2.query(&PatternFilter::default()).unwrap(), want, "tier 2");
    for id in ids.iter().step_by(97) {
        assert_eq!(tier1.load_pattern(id).unwrap().as_ref(), model.get(id));
    }
    let m = tier1.metrics().unwrap();
    assert_eq!(m.tier, Tier::Cache);
    assert_eq!(m.counters.cache_misses, misses, "reads after the uses stayed on tier 1");
    assert_eq!(m.counters.cache_misses, 0, "no read went to SQLite");
    assert_eq!(tier1.stats().unwrap(), model_stats(&want, 0));
    assert_eq!(tier2.stats().unwrap(), model_stats(&want, 0));

    // Unknown ids: false, or (in a batch) an error that writes nothing.
    assert!(!tier1.record_usage(&use_of("no such id", 1)).unwrap());
    let e = tier1
        .record_usages(&[use_of(&ids[0], 1), use_of("no such id", 2)])
        .unwrap_err();
    assert_eq!(e.code(), "INVALID_ARGUMENT");
    assert_eq!(tier2.load_pattern(&ids[0]).unwrap().as_ref(), model.get(&ids[0]));
    for bad in [-1.0, 0.5, f64::NAN, f64::INFINITY, 9e15] {
        let u = UsageInput {
            at: Some(bad),
            ..use_of(&ids[0], 0)
        };
        assert_eq!(
            tier1.record_usage(&u).unwrap_err().code(),
            "INVALID_ARGUMENT",
            "at {bad}"
        );
    }
    assert_eq!(tier2.load_pattern(&ids[0]).unwrap().as_ref(), model.get(&ids[0]));
}

#[test]
fn a_file_behind_only_by_uses_is_served_at_open_without_a_rebuild() {
    let dir = tempfile::tempdir().unwrap();
    fill_db(dir.path(), &gen_inputs(22, 300, DIM), 100, &[]);
    drop(open(dir.path(), |_| {}));
    let before = std::fs::read(cache_path(dir.path())).unwrap();
    let writer = open(dir.path(), |c| c.enabled = Some(false));
    let ids: Vec<String> = sqlite_all(&db_path(dir.path())).into_iter().map(|p| p.id).collect();
    for (i, id) in ids.iter().enumerate() {
        assert!(writer.record_usage(&use_of(id, i)).unwrap());
    }
    let reader = open(dir.path(), |c| c.background_rebuild = Some(false));
    assert_eq!(reader.metrics().unwrap().counters.cache_rebuild_count, 0);
    assert_eq!(
        std::fs::read(cache_path(dir.path())).unwrap(),
        before,
        "the file was not rebuilt"
    );
    assert_eq!(
        reader.query(&PatternFilter::default()).unwrap(),
        sqlite_all(&db_path(dir.path()))
    );
    assert_eq!(reader.metrics().unwrap().tier, Tier::Cache);
    assert_eq!(reader.metrics().unwrap().counters.cache_misses, 0);
}

#[test]
fn stats_paging_and_configs_agree_across_tiers_through_writes_and_deletes() {
    let dir = tempfile::tempdir().unwrap();
    let inputs = gen_inputs(23, 1500, DIM);
    let configs: Vec<_> = (0..5).map(gen_config).collect();
    fill_db(dir.path(), &inputs, 500, &configs);
    let tier1 = open(dir.path(), |c| c.background_rebuild = Some(false));
    let tier2 = open(dir.path(), |c| c.enabled = Some(false));
    // Behind the file: new, changed and deleted patterns and configs.
    tier1.store_patterns(&gen_inputs(24, 40, DIM)).unwrap();
    for p in inputs.iter().step_by(7) {
        assert!(tier1.delete_pattern(&p.id).unwrap());
    }
    assert!(tier1.delete_agent_config(&configs[1].agent_id).unwrap());
    assert!(!tier1.delete_agent_config("no such agent").unwrap());
    tier1.store_agent_config(&gen_config(9)).unwrap();
    let all = sqlite_all(&db_path(dir.path()));
    let all_configs = sqlite_configs(&db_path(dir.path()));
    for cache in [&tier1, &tier2] {
        assert_eq!(cache.stats().unwrap(), model_stats(&all, all_configs.len()));
        assert_eq!(cache.list_agent_configs().unwrap(), all_configs);
        for limit in [1, 7, 1000, 10_000] {
            let f = PatternFilter {
                limit: Some(limit),
                ..Default::default()
            };
            assert_eq!(page_all(cache, &f), all, "limit {limit}");
        }
        for d in DOMAINS {
            for t in [None, Some("unit")] {
                let f = PatternFilter {
                    domain: Some(d.to_string()),
                    pattern_type: t.map(str::to_owned),
                    limit: Some(13),
                    ..Default::default()
                };
                let want = Model(all.iter().map(|p| (p.id.clone(), p.clone())).collect()).query(&PatternFilter {
                    limit: None,
                    ..f.clone()
                });
                assert_eq!(page_all(cache, &f), want, "{d} {t:?}");
            }
        }
    }
    assert_eq!(tier1.metrics().unwrap().counters.cache_misses, 0);
    for bad in [0, 10_001] {
        let f = PatternFilter {
            limit: Some(bad),
            ..Default::default()
        };
        assert_eq!(tier1.list_patterns(&f, None).unwrap_err().code(), "INVALID_ARGUMENT");
    }
}

#[test]
fn paging_while_writing_never_repeats_or_skips_an_id_that_existed_throughout() {
    let dir = tempfile::tempdir().unwrap();
    let inputs = gen_inputs(25, 800, DIM);
    fill_db(dir.path(), &inputs, 400, &[]);
    let cache = open(dir.path(), |c| c.background_rebuild = Some(false));
    let steady: Vec<String> = sqlite_all(&db_path(dir.path()))
        .into_iter()
        .map(|p| p.id)
        .filter(|id| id.len() % 2 == 0)
        .collect();
    let churn: Vec<PatternInput> = inputs.iter().filter(|p| p.id.len() % 2 == 1).cloned().collect();
    let mut seen: Vec<String> = Vec::new();
    let mut after: Option<String> = None;
    let f = PatternFilter {
        limit: Some(25),
        ..Default::default()
    };
    let mut round = 0;
    loop {
        let (page, more) = cache.list_patterns(&f, after.as_deref()).unwrap();
        // Between pages: delete some of the churn, put some back, add new ids.
        let p = &churn[round % churn.len()];
        let _ = cache.delete_pattern(&p.id).unwrap();
        if round % 3 == 0 {
            cache
                .store_patterns(std::slice::from_ref(&churn[(round * 7) % churn.len()]))
                .unwrap();
        }
        let mut extra = gen_input(&mut Rng::new(round as u64), 0, DIM);
        extra.id = format!("{}-{round}", p.id);
        cache.store_patterns(&[extra]).unwrap();
        round += 1;
        after = page.last().map(|p| p.id.clone());
        seen.extend(page.into_iter().map(|p| p.id));
        if !more {
            break;
        }
    }
    assert!(seen.windows(2).all(|w| w[0] < w[1]), "ascending, so no id twice");
    let seen: std::collections::HashSet<_> = seen.into_iter().collect();
    for id in &steady {
        assert!(seen.contains(id), "{id} existed throughout and was skipped");
    }
}

use pattern_cache::PatternInput;

//! Similarity search, differentially: tier 1 (the mapped file, amended by the
//! overlay when behind) == tier 2 (SQLite) == a float64 brute-force model that
//! shares no code with the search module.

mod common;

use common::*;
use pattern_cache::search::{SearchInput, SearchQuery};
use pattern_cache::{Pattern, PatternCache, PatternFilter, PatternInput, Tier};

/// What the spec says a search returns, computed the slow, obvious way.
fn model_search(patterns: &[Pattern], vector: &[f32], input: &SearchInput) -> Vec<(String, f64)> {
    let q: Vec<f64> = vector.iter().map(|&x| f64::from(x)).collect();
    let dot = |a: &[f64], b: &[f32]| a.iter().zip(b).map(|(x, &y)| x * f64::from(y)).sum::<f64>();
    let norm = |b: &[f32]| b.iter().map(|&y| f64::from(y) * f64::from(y)).sum::<f64>().sqrt();
    let qn = q.iter().map(|x| x * x).sum::<f64>().sqrt();
    let cos = |p: &[f32]| {
        let pn = norm(p);
        if qn == 0.0 || pn == 0.0 {
            0.0
        } else {
            dot(&q, p) / (qn * pn)
        }
    };
    let metric = input.metric.clone().unwrap_or_else(|| "cosine".into());
    let score = |p: &[f32]| match metric.as_str() {
        "dot" => dot(&q, p),
        "euclidean" => q
            .iter()
            .zip(p)
            .map(|(x, &y)| (x - f64::from(y)) * (x - f64::from(y)))
            .sum::<f64>()
            .sqrt(),
        _ => cos(p),
    };
    let bigger_better = metric != "euclidean";
    let mut hits: Vec<(&Pattern, f64)> = patterns
        .iter()
        .filter(|p| input.domain.as_ref().is_none_or(|d| *d == p.domain))
        .filter(|p| input.pattern_type.as_ref().is_none_or(|t| *t == p.pattern_type))
        .filter(|p| input.framework.as_ref().is_none_or(|f| *f == p.framework))
        .map(|p| (p, score(&p.embedding)))
        .filter(|(_, s)| match input.threshold {
            None => true,
            Some(t) if bigger_better => *s >= t,
            Some(t) => *s <= t,
        })
        .collect();
    hits.sort_by(|a, b| {
        let by_score = if bigger_better {
            b.1.total_cmp(&a.1)
        } else {
            a.1.total_cmp(&b.1)
        };
        by_score.then_with(|| a.0.id.as_bytes().cmp(b.0.id.as_bytes()))
    });
    let k = input.k.unwrap_or(10.0) as usize;
    if !input.use_mmr.unwrap_or(false) {
        return hits.into_iter().take(k).map(|(p, s)| (p.id.clone(), s)).collect();
    }
    let lambda = input.mmr_lambda.unwrap_or(0.5);
    let pool: Vec<(&Pattern, f64)> = hits.into_iter().take(3 * k).collect();
    let pair = |a: &[f32], b: &[f32]| {
        let (na, nb) = (norm(a), norm(b));
        if na == 0.0 || nb == 0.0 {
            0.0
        } else {
            a.iter().zip(b).map(|(&x, &y)| f64::from(x) * f64::from(y)).sum::<f64>() / (na * nb)
        }
    };
    let mut picked: Vec<usize> = Vec::new();
    while picked.len() < k.min(pool.len()) {
        let mut best: Option<(f64, usize)> = None;
        for (i, (p, _)) in pool.iter().enumerate() {
            if picked.contains(&i) {
                continue;
            }
            let redundancy = picked
                .iter()
                .map(|&j| pair(&p.embedding, &pool[j].0.embedding))
                .fold(None, |m: Option<f64>, s| Some(m.map_or(s, |m| m.max(s))))
                .unwrap_or(0.0);
            let value = lambda * cos(&p.embedding) - (1.0 - lambda) * redundancy;
            let better = match best {
                None => true,
                Some((v, j)) => value > v || (value == v && p.id.as_bytes() < pool[j].0.id.as_bytes()),
            };
            if better {
                best = Some((value, i));
            }
        }
        picked.push(best.map(|b| b.1).unwrap_or(0));
    }
    picked.into_iter().map(|i| (pool[i].0.id.clone(), pool[i].1)).collect()
}

fn search(cache: &PatternCache, vector: &[f32], input: &SearchInput) -> Vec<(String, f64)> {
    let q = SearchQuery::new(vector.to_vec(), input).expect("valid query");
    cache
        .search_similar(&q)
        .expect("search")
        .into_iter()
        .map(|(p, s)| (p.id, s))
        .collect()
}

fn assert_same(got: &[(String, f64)], want: &[(String, f64)], what: &str) {
    let ids = |v: &[(String, f64)]| v.iter().map(|(id, _)| id.clone()).collect::<Vec<_>>();
    assert_eq!(ids(got), ids(want), "{what}");
    for ((_, a), (_, b)) in got.iter().zip(want) {
        assert!((a - b).abs() <= 1e-9 * b.abs().max(1.0), "{what}: score {a} vs {b}");
    }
}

/// Patterns with exact duplicates, zero vectors and the usual unicode ids.
fn data(seed: u64, n: usize) -> Vec<PatternInput> {
    let mut inputs = gen_inputs(seed, n, DIM);
    for i in (0..n).step_by(17) {
        let j = (i * 7 + 3) % n;
        inputs[j].embedding = inputs[i].embedding.clone();
    }
    for i in (5..n).step_by(53) {
        inputs[i].embedding = vec![0.0; DIM];
    }
    inputs
}

fn queries(rng: &mut Rng, stored: &[Pattern]) -> Vec<(Vec<f32>, SearchInput)> {
    let mut out = Vec::new();
    for round in 0..120 {
        let vector = if round % 4 == 0 {
            // A stored vector: exact ties with its duplicates.
            rng.pick(stored).embedding.clone()
        } else {
            (0..DIM).map(|_| rng.unit_f32()).collect()
        };
        let metric = ["cosine", "dot", "euclidean"][round % 3];
        if metric == "cosine" && vector.iter().all(|&x| x == 0.0) {
            continue;
        }
        let mut input = SearchInput {
            metric: Some(metric.into()),
            k: Some([1.0, 3.0, 10.0, 50.0, 1000.0][rng.below(5)]),
            ..Default::default()
        };
        if rng.chance(2) {
            input.domain = Some(rng.pick(DOMAINS).to_string());
        }
        if rng.chance(3) {
            input.pattern_type = Some(rng.pick(TYPES).to_string());
        }
        if rng.chance(4) {
            input.framework = Some(rng.pick(FRAMEWORKS).to_string());
        }
        if rng.chance(4) {
            input.threshold = Some(match metric {
                "euclidean" => 1.5 + rng.unit_f32() as f64,
                "dot" => rng.unit_f32() as f64,
                _ => rng.unit_f32() as f64 * 0.5,
            });
        }
        if rng.chance(4) {
            input.use_mmr = Some(true);
            input.mmr_lambda = Some([0.0, 0.3, 0.5, 1.0][rng.below(4)]);
        }
        out.push((vector, input));
    }
    out
}

#[test]
fn tiers_and_model_agree_on_every_search() {
    let dir = tempfile::tempdir().unwrap();
    let inputs = data(11, 700);
    fill_db(dir.path(), &inputs, 100, &[]);
    let tier1 = open(dir.path(), |c| c.background_rebuild = Some(false));
    let tier2 = open(dir.path(), |c| c.enabled = Some(false));
    assert_eq!(tier1.metrics().unwrap().tier, Tier::Cache);
    let stored = sqlite_all(&db_path(dir.path()));
    let mut rng = Rng::new(5);
    for (i, (vector, input)) in queries(&mut rng, &stored).iter().enumerate() {
        let want = model_search(&stored, vector, input);
        let what = format!("query {i}: {input:?}");
        assert_same(&search(&tier1, vector, input), &want, &format!("tier 1, {what}"));
        assert_same(&search(&tier2, vector, input), &want, &format!("tier 2, {what}"));
    }
    assert_eq!(
        tier1.metrics().unwrap().counters.cache_misses,
        0,
        "tier 1 answered every search"
    );
}

#[test]
fn a_file_behind_the_database_is_amended_with_new_and_deleted_vectors() {
    let dir = tempfile::tempdir().unwrap();
    let inputs = data(12, 400);
    fill_db(dir.path(), &inputs, 100, &[]);
    let cache = open(dir.path(), |c| c.background_rebuild = Some(false));
    let mut rng = Rng::new(9);
    // Updates (new vectors), inserts and deletes the file does not know.
    let mut changed: Vec<PatternInput> = inputs.iter().step_by(9).cloned().collect();
    for p in &mut changed {
        p.embedding = (0..DIM).map(|_| rng.unit_f32()).collect();
    }
    changed.extend(gen_inputs(99, 30, DIM).into_iter().map(|mut p| {
        p.id = format!("new-{}", p.id);
        p
    }));
    cache.store_patterns(&changed).unwrap();
    for p in inputs.iter().skip(4).step_by(11) {
        assert!(cache.delete_pattern(&p.id).unwrap());
    }
    let stored = sqlite_all(&db_path(dir.path()));
    let before = cache.metrics().unwrap().counters.cache_misses;
    for (i, (vector, input)) in queries(&mut rng, &stored).iter().enumerate() {
        let want = model_search(&stored, vector, input);
        assert_same(
            &search(&cache, vector, input),
            &want,
            &format!("amended, query {i}: {input:?}"),
        );
    }
    let m = cache.metrics().unwrap();
    assert_eq!(m.tier, Tier::Cache, "served from the amended file");
    assert_eq!(m.counters.cache_misses, before, "no search went to SQLite");
}

#[test]
fn a_corrupt_vector_block_sends_the_search_to_sqlite_with_the_same_answer() {
    let dir = tempfile::tempdir().unwrap();
    let inputs = data(13, 300);
    fill_db(dir.path(), &inputs, 100, &[]);
    drop(open(dir.path(), |_| {}));
    // Flip one byte in the middle of the vectors section.
    let path = cache_path(dir.path());
    let mut bytes = std::fs::read(&path).unwrap();
    let h = pattern_cache::format::Header::decode(&bytes).unwrap();
    let v = h.section(pattern_cache::format::SectionId::Vectors);
    bytes[(v.offset + v.len / 2) as usize] ^= 0x40;
    std::fs::write(&path, &bytes).unwrap();
    // The header and small sections are intact, so the file is adopted at open.
    let cache = open(dir.path(), |c| c.background_rebuild = Some(false));
    assert_eq!(cache.metrics().unwrap().tier, Tier::Cache);
    let stored = sqlite_all(&db_path(dir.path()));
    let query = stored[7].embedding.clone();
    let input = SearchInput::default();
    assert_same(
        &search(&cache, &query, &input),
        &model_search(&stored, &query, &input),
        "after corruption",
    );
    let m = cache.metrics().unwrap();
    assert_eq!(m.counters.cache_corruption_count, 1);
    assert_eq!(m.tier, Tier::Sqlite);
}

#[test]
fn bad_queries_are_invalid_arguments_and_an_empty_store_answers_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let cache = open(dir.path(), |_| {});
    let ok = vec![0.5f32; DIM];
    assert!(search(&cache, &ok, &SearchInput::default()).is_empty());
    let bad = |v: Vec<f32>, input: SearchInput| SearchQuery::new(v, &input).unwrap_err().code();
    assert_eq!(bad(vec![], SearchInput::default()), "INVALID_ARGUMENT");
    assert_eq!(bad(vec![f32::NAN; DIM], SearchInput::default()), "INVALID_ARGUMENT");
    assert_eq!(bad(vec![0.0; DIM], SearchInput::default()), "INVALID_ARGUMENT");
    for k in [0.0, 1001.0, 2.5, -1.0, f64::NAN] {
        let input = SearchInput {
            k: Some(k),
            ..Default::default()
        };
        assert_eq!(bad(ok.clone(), input), "INVALID_ARGUMENT", "k {k}");
    }
    for l in [-0.1, 1.1, f64::NAN] {
        let input = SearchInput {
            use_mmr: Some(true),
            mmr_lambda: Some(l),
            ..Default::default()
        };
        assert_eq!(bad(ok.clone(), input), "INVALID_ARGUMENT", "lambda {l}");
    }
    let input = SearchInput {
        metric: Some("manhattan".into()),
        ..Default::default()
    };
    assert_eq!(bad(ok.clone(), input), "INVALID_ARGUMENT");
    let input = SearchInput {
        threshold: Some(f64::INFINITY),
        ..Default::default()
    };
    assert_eq!(bad(ok.clone(), input), "INVALID_ARGUMENT");
    // A zero vector is fine under dot and euclidean.
    let zero_dot = SearchInput {
        metric: Some("dot".into()),
        ..Default::default()
    };
    assert!(SearchQuery::new(vec![0.0; DIM], &zero_dot).is_ok());

    fill_db(dir.path(), &data(14, 20), 10, &[]);
    let cache = open(dir.path(), |_| {});
    let wrong = SearchQuery::new(vec![0.5; DIM + 1], &SearchInput::default()).unwrap();
    assert_eq!(cache.search_similar(&wrong).unwrap_err().code(), "INVALID_ARGUMENT");
    let tier2 = open(dir.path(), |c| c.enabled = Some(false));
    assert_eq!(tier2.search_similar(&wrong).unwrap_err().code(), "INVALID_ARGUMENT");
}

#[test]
fn filters_that_match_few_or_none_return_every_match() {
    let dir = tempfile::tempdir().unwrap();
    let inputs = data(15, 500);
    fill_db(dir.path(), &inputs, 100, &[]);
    let cache = open(dir.path(), |_| {});
    let stored = sqlite_all(&db_path(dir.path()));
    for d in DOMAINS {
        for t in TYPES {
            for f in FRAMEWORKS {
                let input = SearchInput {
                    domain: Some(d.to_string()),
                    pattern_type: Some(t.to_string()),
                    framework: Some(f.to_string()),
                    k: Some(1000.0),
                    ..Default::default()
                };
                let matching = Model(stored.iter().map(|p| (p.id.clone(), p.clone())).collect())
                    .query(&PatternFilter {
                        domain: input.domain.clone(),
                        pattern_type: input.pattern_type.clone(),
                        framework: input.framework.clone(),
                        limit: None,
                    })
                    .len();
                let got = search(&cache, &stored[0].embedding, &input);
                assert_eq!(got.len(), matching, "{d}/{t}/{f}");
                assert_same(&got, &model_search(&stored, &stored[0].embedding, &input), "filtered");
            }
        }
    }
}

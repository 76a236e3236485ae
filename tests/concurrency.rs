//! Several instances on one database and one cache file, writing and
//! rebuilding at the same time, end up agreeing with SQLite.

mod common;

use std::collections::BTreeMap;
use std::thread;

use common::*;
use pattern_cache::{IndexKind, Pattern, PatternCache, PatternFilter, PatternInput, Trigger};

const THREADS: usize = 4;
const ROUNDS: usize = 25;
const SHARED: usize = 8;

fn shared_id(i: usize) -> String {
    format!("shared-{i}")
}

/// One worker: its own instance, its own ids (which only it writes, so it
/// can check them exactly), and shared ids every worker overwrites.
fn worker(t: usize, dir: std::path::PathBuf) -> (PatternCache, BTreeMap<String, Pattern>) {
    let cache = open(&dir, |_| {});
    let mut rng = Rng::new(1000 + t as u64);
    let mut mine: BTreeMap<String, Pattern> = BTreeMap::new();
    for round in 0..ROUNDS {
        let mut batch: Vec<PatternInput> = (0..4)
            .map(|k| {
                let mut p = gen_input(&mut rng, round * 4 + k, DIM);
                p.id = format!("t{t}-{}", p.id);
                p
            })
            .collect();
        let mut shared = gen_input(&mut rng, round, DIM);
        shared.id = shared_id(rng.below(SHARED));
        shared.content = format!("written by {t} in round {round}");
        batch.push(shared);
        cache.store_patterns(&batch).unwrap();
        for p in &batch[..4] {
            mine.insert(p.id.clone(), expected(p, 0));
        }

        if rng.chance(3) {
            if let Some(id) = mine.keys().nth(rng.below(mine.len())).cloned() {
                assert!(cache.delete_pattern(&id).unwrap());
                mine.remove(&id);
            }
        }
        if round % 5 == t % 5 {
            let built = cache.rebuild(Trigger::Manual).unwrap();
            assert!(built.success, "{:?}", built.error);
        }

        // Read-your-writes holds with others writing and rebuilding around us.
        let prefix = format!("t{t}-");
        let own: Vec<Pattern> = cache
            .query(&PatternFilter::default())
            .unwrap()
            .into_iter()
            .filter(|p| p.id.starts_with(&prefix))
            .collect();
        assert_eq!(own, mine.values().cloned().collect::<Vec<_>>());
    }
    (cache, mine)
}

#[test]
fn instances_sharing_a_database_converge_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    // Create the database first so the workers only race on data, not on creation.
    fill_db(dir.path(), &gen_inputs(1, 20, DIM), 20, &[]);

    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let dir = dir.path().to_path_buf();
            thread::spawn(move || worker(t, dir))
        })
        .collect();
    let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();

    let truth = sqlite_all(&db_path(dir.path()));
    let expected_count = 20 + results.iter().map(|(_, m)| m.len()).sum::<usize>();
    let shared_present = truth.iter().filter(|p| p.id.starts_with("shared-")).count();
    assert_eq!(truth.len(), expected_count + shared_present);
    for p in truth.iter().filter(|p| p.id.starts_with("shared-")) {
        assert!(p.content.starts_with("written by "), "{}", p.content);
    }

    for (t, (cache, mine)) in results.iter().enumerate() {
        assert_eq!(cache.query(&PatternFilter::default()).unwrap(), truth, "instance {t}");
        for (id, p) in mine {
            assert_eq!(cache.load_pattern(id).unwrap().as_ref(), Some(p));
        }
        for (kind, names) in [
            (IndexKind::Domain, DOMAINS),
            (IndexKind::Type, TYPES),
            (IndexKind::Framework, FRAMEWORKS),
        ] {
            for name in names {
                let want: Vec<_> = truth.iter().filter(|p| kind.key_of(p) == *name).cloned().collect();
                assert_eq!(cache.load_by(kind, name).unwrap(), want, "instance {t}");
            }
        }
        assert_eq!(cache.metrics().unwrap().pattern_count, truth.len() as u64);
    }

    // One final rebuild: every instance's own rebuild then serves the same file.
    for (cache, _) in &results {
        assert!(cache.rebuild(Trigger::Manual).unwrap().success);
        assert_eq!(cache.metrics().unwrap().tier, pattern_cache::Tier::Cache);
        assert_eq!(cache.query(&PatternFilter::default()).unwrap(), truth);
    }
    let view = pattern_cache::cache_file::open_view(&cache_path(dir.path())).unwrap().0;
    view.verify_all().unwrap();
    assert_eq!(view.query(&PatternFilter::default()).unwrap(), truth);
}

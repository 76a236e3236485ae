//! I/O faults and panics injected into the cache build (feature
//! `fault-injection`): at every step of writing a cache file, ENOSPC, EIO and
//! EROFS fail the build with IO_ERROR and leave the previous file serving,
//! intact, with no temp file behind; a panic in a background rebuild becomes
//! a `rebuild_failed` event. Run: `cargo test --features fault-injection --test faults`.
#![cfg(feature = "fault-injection")]

mod common;

use std::sync::{Arc, Mutex};

use common::*;
use pattern_cache::faults::{self, Step};
use pattern_cache::{CacheEvent, Tier, Trigger};

/// Faults are process-wide: one test at a time.
static SERIAL: Mutex<()> = Mutex::new(());

const ENOSPC: i32 = 28;
const EIO: i32 = 5;
const EROFS: i32 = 30;

fn temp_files(dir: &std::path::Path) -> Vec<String> {
    let cache_dir = cache_path(dir).parent().unwrap().to_owned();
    std::fs::read_dir(cache_dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp-"))
        .collect()
}

#[test]
fn every_build_step_fails_cleanly_with_every_errno() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let mut covered = 0;
    for step in Step::BUILD {
        for errno in [ENOSPC, EIO, EROFS] {
            let dir = tempfile::tempdir().unwrap();
            let inputs = gen_inputs(3, 40, DIM);
            let cache = open(dir.path(), |c| c.background_rebuild = Some(false));
            cache.store_patterns(&inputs).unwrap();
            assert!(cache.rebuild(Trigger::Manual).unwrap().success);
            let before = std::fs::read(cache_path(dir.path())).unwrap();
            let model = Model::from_inputs(&inputs);

            let mut more = gen_inputs(4, 5, DIM);
            for p in &mut more {
                p.id = format!("more-{}", p.id);
            }
            cache.store_patterns(&more).unwrap();

            faults::set(Some((step, Some(errno))));
            let result = cache.rebuild(Trigger::Manual).unwrap();
            faults::set(None);

            let after = std::fs::read(cache_path(dir.path())).unwrap();
            if step == Step::Backup {
                // The backup is best effort: the build itself succeeds.
                assert!(result.success, "{step:?}");
            } else {
                assert!(!result.success, "{step:?} errno {errno}");
                assert!(
                    result.error.as_deref().unwrap_or("").contains("IO_ERROR"),
                    "{step:?}: {:?}",
                    result.error
                );
                if step != Step::SyncDir {
                    // Before the rename, the previous file is untouched; after
                    // it (only the directory fsync failed) the new one is in place.
                    assert!(after == before, "{step:?} errno {errno}: the previous file changed");
                }
                let (view, _) = pattern_cache::cache_file::open_view(&cache_path(dir.path())).unwrap();
                view.verify_all().unwrap();
            }
            assert!(temp_files(dir.path()).is_empty(), "{step:?}: temp files left");

            // Every read is still right (from SQLite, or the old file amended).
            let mut want = model.clone();
            want.store(&more);
            assert_eq!(cache.query(&Default::default()).unwrap(), want.all(), "{step:?}");

            // And the next build, healed, succeeds and serves.
            assert!(cache.rebuild(Trigger::Manual).unwrap().success);
            assert_eq!(cache.metrics().unwrap().tier, Tier::Cache);
            cache.shutdown();
            covered += 1;
        }
    }
    println!(
        "FIGURE {{\"test\":\"io_faults\",\"fault_points\":{},\"errnos\":3,\"cases\":{covered},\"corruptions\":0}}",
        Step::BUILD.len()
    );
}

#[test]
fn a_panic_in_a_background_rebuild_becomes_an_event() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink_events = events.clone();
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let tx = Mutex::new(tx);
    let sink: pattern_cache::EventSink = Arc::new(move |e: CacheEvent| {
        let failed = matches!(e, CacheEvent::RebuildFailed { .. });
        sink_events.lock().unwrap().push(e);
        if failed {
            let _ = tx.lock().unwrap().send(());
        }
    });
    let cache = pattern_cache::PatternCache::open(config(dir.path(), |_| {}), Some(sink)).unwrap();
    let inputs = gen_inputs(5, 20, DIM);
    cache.store_patterns(&inputs).unwrap();

    faults::set(Some((Step::Rebuild, None)));
    cache.mark_stale(Trigger::Manual, true).unwrap();
    rx.recv_timeout(std::time::Duration::from_secs(30))
        .expect("a rebuild_failed event");
    faults::set(None);

    let failed: Vec<_> = events
        .lock()
        .unwrap()
        .iter()
        .filter_map(|e| match e {
            CacheEvent::RebuildFailed { error } => Some(error.clone()),
            _ => None,
        })
        .collect();
    assert!(
        failed
            .iter()
            .any(|e| e.starts_with("[INTERNAL]") && e.contains("injected panic")),
        "{failed:?}"
    );
    // The process and the instance are fine: reads are right, rebuilds work.
    assert_eq!(
        cache.query(&Default::default()).unwrap(),
        Model::from_inputs(&inputs).all()
    );
    assert!(cache.rebuild(Trigger::Manual).unwrap().success);
    cache.shutdown();
    println!(
        "FIGURE {{\"test\":\"panics\",\"path\":\"background rebuild\",\"aborts\":0,\"rebuild_failed_events\":{}}}",
        failed.len()
    );
}

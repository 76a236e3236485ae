//! `open` (on the thread pool) and `tryOpen` (a second open answered on the
//! JavaScript thread), and the callbacks they hand the core.

use std::sync::Arc;

use napi::bindgen_prelude::*;
use napi::threadsafe_function::ThreadsafeFunctionCallMode;
use napi_derive::napi;

use super::build::Factories;
use super::convert::JsOpenConfig;
use super::job::{guarded, job, js_error, Job};
use super::results::JsCacheEvent;
use super::NativePatternCache;
use crate::config::Config;
use crate::loader::{EventSink, LogSink, PatternCache};

/// Opens the database and cache. `onEvent` is held weakly: it never keeps
/// the process alive.
#[napi(ts_return_type = "Promise<NativePatternCache>")]
pub fn open(
    make_pattern: Function<(), Unknown<'static>>,
    make_patterns: Function<(), Unknown<'static>>,
    config: Option<JsOpenConfig>,
    on_event: Option<Function<JsCacheEvent, ()>>,
    on_log: Option<Function<String, ()>>,
) -> napi::Result<AsyncTask<Job<PatternCache, NativePatternCache>>> {
    let factory = factories(make_pattern, make_patterns)?;
    let input = config.map(JsOpenConfig::into_core).unwrap_or_default();
    let (sink, log) = (event_sink(on_event)?, log_sink(on_log)?);
    let cwd = cwd();
    Ok(job(
        move || PatternCache::open_logged(Config::resolve(&input, &cwd)?, sink, log),
        move |_, core| Ok(NativePatternCache::new(core, factory)),
    ))
}

/// `open` on this thread when the process has the database and the current
/// cache file open already (a second open): `null` when it would have to
/// wait or work (then index.js calls `open`).
#[napi(ts_return_type = "NativePatternCache | null")]
pub fn try_open(
    env: Env,
    make_pattern: Function<(), Unknown<'static>>,
    make_patterns: Function<(), Unknown<'static>>,
    config: Option<JsOpenConfig>,
    on_event: Option<Function<JsCacheEvent, ()>>,
    on_log: Option<Function<String, ()>>,
) -> napi::Result<Option<NativePatternCache>> {
    if on_log.is_some() {
        return Ok(None);
    }
    let input = config.map(JsOpenConfig::into_core).unwrap_or_default();
    let Ok(resolved) = Config::resolve(&input, &cwd()) else {
        return Ok(None); // open reports the error
    };
    // Cheap looks first: nothing is made unless the fast path can serve.
    if !resolved.enabled || crate::db::Database::shared(&resolved.db_path).is_none() {
        return Ok(None);
    }
    let factory = factories(make_pattern, make_patterns)?;
    let sink = event_sink(on_event)?;
    match guarded(|| PatternCache::try_open_now(&resolved, sink, None).transpose()) {
        Ok(Some(core)) => Ok(Some(NativePatternCache::new(core, factory))),
        Ok(None) => Ok(None),
        Err(e) => Err(js_error(&env, &e)),
    }
}

impl NativePatternCache {
    fn new(core: PatternCache, factory: Arc<Factories>) -> NativePatternCache {
        NativePatternCache {
            core: Arc::new(core),
            factory,
        }
    }
}

fn cwd() -> std::path::PathBuf {
    std::env::current_dir().unwrap_or_else(|_| ".".into())
}

// The errors below are N-API's own (a reference or a threadsafe function
// it could not make), with nothing of the core's to map.

/// index.js's `makePattern` and `makePatterns`, kept for building results.
fn factories(
    make_pattern: Function<(), Unknown<'static>>,
    make_patterns: Function<(), Unknown<'static>>,
) -> napi::Result<Arc<Factories>> {
    Ok(Arc::new(Factories {
        one: make_pattern.create_ref()?,
        many: make_patterns.create_ref()?,
    }))
}

/// A JS callback the core may call from any thread. Held weakly: it never
/// keeps the process alive; calls never block the caller.
fn weak_callback<T: JsValuesTupleIntoVec + Send + 'static>(
    f: Function<T, ()>,
) -> napi::Result<impl Fn(T) + Send + Sync> {
    let tsfn = f
        .build_threadsafe_function::<T>()
        .callee_handled::<false>()
        .weak::<true>()
        .build()?;
    Ok(move |value: T| {
        tsfn.call(value, ThreadsafeFunctionCallMode::NonBlocking);
    })
}

fn event_sink(on_event: Option<Function<JsCacheEvent, ()>>) -> napi::Result<Option<EventSink>> {
    let Some(f) = on_event else { return Ok(None) };
    let call = weak_callback(f)?;
    Ok(Some(Arc::new(move |event| call(JsCacheEvent::from(event)))))
}

fn log_sink(on_log: Option<Function<String, ()>>) -> napi::Result<Option<LogSink>> {
    let Some(f) = on_log else { return Ok(None) };
    let call = weak_callback(f)?;
    Ok(Some(Arc::new(move |line: &str| call(line.to_owned()))))
}

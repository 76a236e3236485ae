//! The Node binding: converts JavaScript values to core types and back,
//! runs core calls off the JavaScript thread, and turns core errors into JS
//! errors with a stable `code`. No logic of its own lives here.

mod build;
mod convert;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use napi::bindgen_prelude::*;
use napi::threadsafe_function::ThreadsafeFunctionCallMode;
use napi_derive::napi;

use crate::config::Config;
use crate::error::Error as CoreError;
use crate::loader::{EventSink, PatternCache};
use crate::model::{IndexKind, Trigger};
use build::{Builder, Factories, RawJs};
use convert::*;

/// A JS `Error` whose `code` is the core error's stable code. Returned as
/// `Err`, napi throws or rejects with exactly this object.
fn js_error(env: &Env, e: &CoreError) -> napi::Error {
    let made = env
        .create_error(napi::Error::new(Status::GenericFailure, e.to_string()))
        .and_then(|mut obj| {
            obj.set_named_property("code", e.code())?;
            Ok(obj)
        });
    match made {
        Ok(obj) => napi::Error::from(obj.to_unknown()),
        Err(fallback) => fallback,
    }
}

/// Runs core work, turning a panic into `INTERNAL` rather than an abort.
fn guarded<T>(work: impl FnOnce() -> crate::Result<T>) -> crate::Result<T> {
    catch_unwind(AssertUnwindSafe(work))
        .unwrap_or_else(|panic| Err(CoreError::Internal(crate::error::panic_message(&*panic))))
}

/// Results up to this size are built on the JavaScript thread directly;
/// larger ones are decoded on the thread pool first.
const FAST_MAX_RESULTS: usize = 200_000;

/// Searches that scan at most this many floats (4 MiB: a fraction of a
/// millisecond) run on the JavaScript thread; larger ones on the pool.
const FAST_SEARCH_FLOATS: usize = 1 << 20;

type Work<T> = Box<dyn FnOnce() -> crate::Result<T> + Send>;
type ToJs<T, J> = Box<dyn FnOnce(&Env, T) -> napi::Result<J> + Send>;

/// A core call on the libuv thread pool; `to_js` builds the result on the
/// JavaScript thread.
pub struct Job<T: Send + 'static, J> {
    work: Option<Work<T>>,
    to_js: Option<ToJs<T, J>>,
}

impl<T: Send + 'static, J: ToNapiValue + TypeName> Task for Job<T, J> {
    type Output = crate::Result<T>;
    type JsValue = J;

    fn compute(&mut self) -> napi::Result<Self::Output> {
        let work = self.work.take();
        Ok(guarded(|| match work {
            Some(w) => w(),
            None => Err(CoreError::Internal("job ran twice".into())),
        }))
    }

    fn resolve(&mut self, env: Env, output: Self::Output) -> napi::Result<J> {
        match (output, self.to_js.take()) {
            (Ok(v), Some(to_js)) => to_js(&env, v),
            (Ok(_), None) => Err(js_error(&env, &CoreError::Internal("job resolved twice".into()))),
            (Err(e), _) => Err(js_error(&env, &e)),
        }
    }
}

fn job<T: Send + 'static, J>(
    work: impl FnOnce() -> crate::Result<T> + Send + 'static,
    to_js: impl FnOnce(&Env, T) -> napi::Result<J> + Send + 'static,
) -> AsyncTask<Job<T, J>>
where
    J: ToNapiValue + TypeName,
{
    AsyncTask::new(Job {
        work: Some(Box::new(work)),
        to_js: Some(Box::new(to_js)),
    })
}

fn unit(_: &Env, _: ()) -> napi::Result<()> {
    Ok(())
}

fn same<T>(_: &Env, v: T) -> napi::Result<T> {
    Ok(v)
}

type Factory = Arc<Factories>;

fn build_patterns(b: &Builder, ps: &[crate::Pattern]) -> napi::Result<napi::sys::napi_value> {
    let refs: Vec<_> = ps.iter().map(|p| p.as_ref()).collect();
    b.patterns(&refs)
}

#[napi]
pub struct NativePatternCache {
    core: Arc<PatternCache>,
    /// index.js's `makePattern`, which turns a pattern's fields into an object.
    factory: Factory,
}

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
    let (factory, input, sink, log) = open_parts(make_pattern, make_patterns, config, on_event, on_log)?;
    let cwd = std::env::current_dir().unwrap_or_else(|_| ".".into());
    Ok(job(
        move || PatternCache::open_logged(Config::resolve(&input, &cwd)?, sink, log),
        move |_, core| {
            Ok(NativePatternCache {
                core: Arc::new(core),
                factory,
            })
        },
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
    let input = match &config {
        Some(c) => c.core_input(),
        None => Default::default(),
    };
    let cwd = std::env::current_dir().unwrap_or_else(|_| ".".into());
    let Ok(resolved) = Config::resolve(&input, &cwd) else {
        return Ok(None); // open reports the error
    };
    // Cheap looks first: nothing is made unless the fast path can serve.
    if !resolved.enabled || crate::db::Database::shared(&resolved.db_path).is_none() {
        return Ok(None);
    }
    let (factory, _, sink, _) = open_parts(make_pattern, make_patterns, config, on_event, None)?;
    match guarded(|| PatternCache::try_open_now(&resolved, sink, None).transpose()) {
        Ok(Some(core)) => Ok(Some(NativePatternCache {
            core: Arc::new(core),
            factory,
        })),
        Ok(None) => Ok(None),
        Err(e) => Err(js_error(&env, &e)),
    }
}

type OpenParts = (
    Factory,
    crate::config::ConfigInput,
    Option<EventSink>,
    Option<crate::loader::LogSink>,
);

fn open_parts(
    make_pattern: Function<(), Unknown<'static>>,
    make_patterns: Function<(), Unknown<'static>>,
    config: Option<JsOpenConfig>,
    on_event: Option<Function<JsCacheEvent, ()>>,
    on_log: Option<Function<String, ()>>,
) -> napi::Result<OpenParts> {
    let factory: Factory = Arc::new(Factories {
        one: make_pattern.create_ref()?,
        many: make_patterns.create_ref()?,
    });
    let input = config.map(JsOpenConfig::into_core).unwrap_or_default();
    let sink: Option<EventSink> = match on_event {
        Some(f) => {
            let tsfn = f
                .build_threadsafe_function::<JsCacheEvent>()
                .callee_handled::<false>()
                .weak::<true>()
                .build()?;
            Some(Arc::new(move |event| {
                tsfn.call(JsCacheEvent::from(event), ThreadsafeFunctionCallMode::NonBlocking);
            }))
        }
        None => None,
    };
    let log: Option<crate::loader::LogSink> = match on_log {
        Some(f) => {
            let tsfn = f
                .build_threadsafe_function::<String>()
                .callee_handled::<false>()
                .weak::<true>()
                .build()?;
            Some(Arc::new(move |line: &str| {
                tsfn.call(line.to_owned(), ThreadsafeFunctionCallMode::NonBlocking);
            }))
        }
        None => None,
    };
    Ok((factory, input, sink, log))
}

#[napi]
impl NativePatternCache {
    fn run<T: Send + 'static, J: ToNapiValue + TypeName>(
        &self,
        work: impl FnOnce(&PatternCache) -> crate::Result<T> + Send + 'static,
        to_js: impl FnOnce(&Env, T) -> napi::Result<J> + Send + 'static,
    ) -> AsyncTask<Job<T, J>> {
        let core = Arc::clone(&self.core);
        job(move || work(&core), to_js)
    }

    /// Runs a core call whose result is patterns, built by the factory.
    fn run_patterns<T: Send + 'static>(
        &self,
        work: impl FnOnce(&PatternCache) -> crate::Result<T> + Send + 'static,
        build: fn(&Builder, &T) -> napi::Result<napi::sys::napi_value>,
    ) -> AsyncTask<Job<T, RawJs>> {
        let factory = Arc::clone(&self.factory);
        self.run(work, move |env, value| {
            Ok(RawJs(build(&Builder::new(env, &factory)?, &value)?))
        })
    }

    /// Answers on this thread from tier 1, building the result inside the
    /// read (it borrows the mapped file); `undefined` when only the full
    /// (async) call can answer.
    fn fast(
        &self,
        env: &Env,
        read: impl Fn(&Builder, &crate::overlay::Tier1<'_>) -> crate::Result<napi::Result<napi::sys::napi_value>>,
    ) -> napi::Result<Either<RawJs, ()>> {
        let b = Builder::new(env, &self.factory)?;
        match guarded(|| Ok(self.core.try_cached(|t| read(&b, t)))) {
            Ok(Some(Ok(Ok(v)))) => Ok(Either::A(RawJs(v))),
            Ok(Some(Ok(Err(e)))) => Err(e),
            Ok(None) => Ok(Either::B(())),
            Ok(Some(Err(e))) | Err(e) => Err(js_error(env, &e)),
        }
    }

    /// A cache hit (or miss) answered on the JavaScript thread, without a
    /// thread hop: the pattern, `null` when absent, `undefined` when only
    /// the full (async) call can answer.
    #[napi(ts_return_type = "StoredPattern | null | undefined")]
    pub fn try_load_pattern(&self, env: Env, id: Unknown<'_>) -> napi::Result<Either<RawJs, ()>> {
        // The id is read into a stack buffer: no allocation on the hit path.
        let mut buf = [0u8; crate::validate::MAX_ID_BYTES + 4];
        let mut len = 0usize;
        check_status!(unsafe {
            napi::sys::napi_get_value_string_utf8(env.raw(), id.raw(), buf.as_mut_ptr().cast(), buf.len(), &mut len)
        })?;
        if len > crate::validate::MAX_ID_BYTES {
            // The buffer only held the start: ask for the whole length for the message.
            let mut full = 0usize;
            check_status!(unsafe {
                napi::sys::napi_get_value_string_utf8(env.raw(), id.raw(), std::ptr::null_mut(), 0, &mut full)
            })?;
            let e = CoreError::InvalidArgument(format!(
                "id is {full} bytes, more than {}",
                crate::validate::MAX_ID_BYTES
            ));
            return Err(js_error(&env, &e));
        }
        let id = std::str::from_utf8(&buf[..len]).unwrap_or_default();
        if let Err(e) = crate::validate::id_argument(id) {
            return Err(js_error(&env, &e));
        }
        let answer = self.fast(&env, |b, t| Ok(b.maybe_pattern(t.get_ref(id)?.as_ref())))?;
        if let Either::B(()) = answer {
            // Cache disabled: a point read of SQLite here costs less than the thread hop.
            let b = Builder::new(&env, &self.factory)?;
            let direct = guarded(|| {
                Ok(self
                    .core
                    .try_sqlite_now(|c| crate::db::queries::with_pattern_ref(c, id, |p| b.maybe_pattern(p))))
            });
            return match direct {
                Ok(Some(Ok(Ok(v)))) => Ok(Either::A(RawJs(v))),
                Ok(Some(Ok(Err(e)))) => Err(e),
                Ok(None) => Ok(Either::B(())),
                Ok(Some(Err(e))) | Err(e) => Err(js_error(&env, &e)),
            };
        }
        Ok(answer)
    }

    /// `loadPatterns` on the JavaScript thread for up to 2,000 ids;
    /// `undefined` when only the full (async) call can answer.
    #[napi(ts_return_type = "Array<StoredPattern | null> | undefined")]
    pub fn try_load_patterns(&self, env: Env, ids: Vec<String>) -> napi::Result<Either<RawJs, ()>> {
        for id in &ids {
            crate::validate::id_argument(id).map_err(|e| js_error(&env, &e))?;
        }
        if ids.len() > FAST_MAX_RESULTS {
            return Ok(Either::B(()));
        }
        self.fast(&env, |b, t| {
            let found = ids.iter().map(|id| t.get_ref(id)).collect::<crate::Result<Vec<_>>>()?;
            Ok(b.array(found.iter().map(|p| b.maybe_pattern(p.as_ref()))))
        })
    }

    /// `query` on the JavaScript thread for small results; `undefined` when
    /// only the full (async) call can answer.
    #[napi(ts_return_type = "StoredPattern[] | undefined")]
    pub fn try_query(&self, env: Env, filter: JsPatternFilter) -> napi::Result<Either<RawJs, ()>> {
        let filter = filter.into_core().map_err(|e| js_error(&env, &e))?;
        if let Err(e) = crate::validate::filter(&filter) {
            return Err(js_error(&env, &e));
        }
        // Sized first, without decoding: a large result is decoded off this thread.
        match self.core.try_peek(|t| t.size_hint(&filter) <= FAST_MAX_RESULTS) {
            Some(true) => {}
            _ => return Ok(Either::B(())),
        }
        self.fast(&env, |b, t| {
            let ps = t.query_refs(&filter)?;
            Ok(b.patterns(&ps))
        })
    }

    #[napi(ts_return_type = "Promise<StoredPattern | null>")]
    pub fn load_pattern(&self, id: String) -> AsyncTask<Job<Option<crate::Pattern>, RawJs>> {
        self.run_patterns(
            move |c| c.load_pattern(&id),
            |b, p| b.maybe_pattern(p.as_ref().map(|p| p.as_ref()).as_ref()),
        )
    }

    #[napi(ts_return_type = "Promise<Array<StoredPattern | null>>")]
    pub fn load_patterns(&self, ids: Vec<String>) -> AsyncTask<Job<Vec<Option<crate::Pattern>>, RawJs>> {
        self.run_patterns(
            move |c| c.load_patterns(&ids),
            |b, ps| {
                b.array(
                    ps.iter()
                        .map(|p| b.maybe_pattern(p.as_ref().map(|p| p.as_ref()).as_ref())),
                )
            },
        )
    }

    /// `kind` is "domain", "type" or "framework".
    #[napi(ts_return_type = "Promise<StoredPattern[]>")]
    pub fn load_by(&self, kind: String, name: String) -> napi::Result<AsyncTask<Job<Vec<crate::Pattern>, RawJs>>> {
        let kind = match kind.as_str() {
            "domain" => IndexKind::Domain,
            "type" => IndexKind::Type,
            "framework" => IndexKind::Framework,
            _ => return Err(napi::Error::new(Status::InvalidArg, format!("unknown index '{kind}'"))),
        };
        Ok(self.run_patterns(move |c| c.load_by(kind, &name), |b, ps| build_patterns(b, ps)))
    }

    #[napi(ts_return_type = "Promise<StoredPattern[]>")]
    pub fn query(&self, filter: JsPatternFilter) -> AsyncTask<Job<Vec<crate::Pattern>, RawJs>> {
        let filter = filter.into_core();
        self.run_patterns(move |c| c.query(&filter?), |b, ps| build_patterns(b, ps))
    }

    /// The most similar patterns, best first, as `[patterns, scores]`;
    /// scanned on the thread pool.
    #[napi(ts_return_type = "Promise<[StoredPattern[], number[]]>")]
    pub fn search_similar(
        &self,
        embedding: Float32Array,
        options: Option<JsSearchOptions>,
    ) -> AsyncTask<Job<Vec<(crate::Pattern, f64)>, RawJs>> {
        let vector = embedding.to_vec();
        let input = options.map(JsSearchOptions::into_core).unwrap_or_default();
        self.run_patterns(
            move |c| c.search_similar(&crate::search::SearchQuery::new(vector, &input)?),
            |b, hits| {
                let refs: Vec<_> = hits.iter().map(|(p, s)| (p.as_ref(), *s)).collect();
                b.search_results(&refs)
            },
        )
    }

    /// `searchSimilar` on the JavaScript thread when tier 1 can answer
    /// without the database and the scan is small (a thread hop would cost
    /// more than the scan); `undefined` otherwise.
    #[napi(ts_return_type = "[StoredPattern[], number[]] | undefined")]
    pub fn try_search_similar(
        &self,
        env: Env,
        embedding: Float32Array,
        options: Option<JsSearchOptions>,
    ) -> napi::Result<Either<RawJs, ()>> {
        let input = options.map(JsSearchOptions::into_core).unwrap_or_default();
        let query = crate::search::SearchQuery::new(embedding.to_vec(), &input).map_err(|e| js_error(&env, &e))?;
        match self
            .core
            .try_peek(|t| crate::search::scan_floats(t) <= FAST_SEARCH_FLOATS)
        {
            Some(true) => {}
            _ => return Ok(Either::B(())),
        }
        self.fast(&env, |b, t| {
            let hits = crate::search::on_tier1(t, &query)?;
            Ok(b.search_results(&hits))
        })
    }

    /// One pass reading the mapped vectors section on this thread: the floor
    /// a search is measured against (benchmark only). `null` without a file.
    #[napi]
    pub fn scan_floor(&self, env: Env) -> napi::Result<Option<f64>> {
        guarded(|| self.core.scan_floor())
            .map(|sum| sum.map(|s| (s % (1 << 52)) as f64))
            .map_err(|e| js_error(&env, &e))
    }

    #[napi(ts_return_type = "Promise<boolean>")]
    pub fn record_usage(&self, entry: JsUsageEntry) -> AsyncTask<Job<bool, bool>> {
        let input = entry.into_core();
        self.run(move |c| c.record_usage(&input), same)
    }

    #[napi(ts_return_type = "Promise<void>")]
    pub fn record_usages(&self, entries: Vec<JsUsageEntry>) -> AsyncTask<Job<(), ()>> {
        let inputs: Vec<_> = entries.into_iter().map(JsUsageEntry::into_core).collect();
        self.run(move |c| c.record_usages(&inputs), unit)
    }

    #[napi(ts_return_type = "Promise<JsPatternStats>")]
    pub fn get_stats(&self) -> AsyncTask<Job<crate::model::Stats, JsPatternStats>> {
        self.run(|c| c.stats(), |_, s| Ok(JsPatternStats::from(s)))
    }

    /// A page after the id `after`: `[patterns, more]`.
    #[napi(ts_return_type = "Promise<[StoredPattern[], boolean]>")]
    pub fn list_patterns(
        &self,
        filter: JsPatternFilter,
        after: Option<String>,
    ) -> AsyncTask<Job<(Vec<crate::Pattern>, bool), RawJs>> {
        let filter = filter.into_core();
        self.run_patterns(
            move |c| c.list_patterns(&filter?, after.as_deref()),
            |b, (ps, more)| b.page(ps, *more),
        )
    }

    #[napi(ts_return_type = "Promise<AgentConfigEntry[]>")]
    pub fn list_agent_configs(&self) -> AsyncTask<Job<Vec<crate::AgentConfig>, Vec<JsAgentConfig>>> {
        self.run(
            |c| c.list_agent_configs(),
            |_, cs| Ok(cs.into_iter().map(JsAgentConfig::from).collect()),
        )
    }

    #[napi(ts_return_type = "Promise<boolean>")]
    pub fn delete_agent_config(&self, agent_id: String) -> AsyncTask<Job<bool, bool>> {
        self.run(move |c| c.delete_agent_config(&agent_id), same)
    }

    #[napi(ts_return_type = "Promise<void>")]
    pub fn store_patterns(&self, patterns: Vec<JsTestPattern>) -> AsyncTask<Job<(), ()>> {
        let inputs: Vec<_> = patterns.into_iter().map(JsTestPattern::into_core).collect();
        self.run(move |c| c.store_patterns(&inputs), unit)
    }

    #[napi(ts_return_type = "Promise<boolean>")]
    pub fn delete_pattern(&self, id: String) -> AsyncTask<Job<bool, bool>> {
        self.run(move |c| c.delete_pattern(&id), same)
    }

    #[napi(ts_return_type = "Promise<AgentConfigEntry | null>")]
    pub fn load_agent_config(
        &self,
        agent_id: String,
    ) -> AsyncTask<Job<Option<crate::AgentConfig>, Option<JsAgentConfig>>> {
        self.run(
            move |c| c.load_agent_config(&agent_id),
            |_, c| Ok(c.map(JsAgentConfig::from)),
        )
    }

    #[napi(ts_return_type = "Promise<void>")]
    pub fn store_agent_config(&self, config: JsAgentConfig) -> AsyncTask<Job<(), ()>> {
        let input = config.into_core();
        self.run(move |c| c.store_agent_config(&input), unit)
    }

    /// Pulls the remote's changes now; resolves once reads here see them.
    #[napi(ts_return_type = "Promise<JsSyncResult>")]
    pub fn sync_remote(&self) -> AsyncTask<Job<(crate::remote::replica::SyncOutcome, f64), JsSyncResult>> {
        self.run(
            |c| {
                let started = std::time::Instant::now();
                let outcome = c.sync_remote()?;
                Ok((outcome, started.elapsed().as_secs_f64() * 1e3))
            },
            |_, (o, ms)| {
                Ok(JsSyncResult {
                    from_generation: o.from_generation as f64,
                    to_generation: o.to_generation as f64,
                    rows_applied: o.rows_applied as f64,
                    duration: ms,
                })
            },
        )
    }

    #[napi(ts_return_type = "Promise<CacheBuildResult>")]
    pub fn rebuild_cache(&self) -> AsyncTask<Job<crate::BuildResult, JsBuildResult>> {
        self.run(|c| c.rebuild(Trigger::Manual), |_, r| Ok(JsBuildResult::from(r)))
    }

    #[napi]
    pub fn mark_stale(&self, env: Env, trigger: String, requires_rebuild: bool) -> napi::Result<()> {
        let core = &self.core;
        guarded(|| {
            let trigger = Trigger::parse_invalidation(&trigger)
                .ok_or_else(|| CoreError::InvalidArgument(format!("unknown invalidation trigger '{trigger}'")))?;
            core.mark_stale(trigger, requires_rebuild)
        })
        .map_err(|e| js_error(&env, &e))
    }

    #[napi]
    pub fn get_metrics(&self, env: Env) -> napi::Result<JsCacheMetrics> {
        guarded(|| self.core.metrics())
            .map(JsCacheMetrics::from)
            .map_err(|e| js_error(&env, &e))
    }

    #[napi(ts_return_type = "Promise<void>")]
    pub fn shutdown(&self) -> AsyncTask<Job<(), ()>> {
        self.run(
            |c| {
                c.shutdown();
                Ok(())
            },
            unit,
        )
    }

    #[napi(ts_return_type = "Promise<JsInspection>")]
    pub fn inspect(&self) -> AsyncTask<Job<crate::loader::Inspection, JsInspection>> {
        self.run(|c| c.inspect(), |_, i| Ok(JsInspection::from(i)))
    }

    /// Verifies every record of the cache file on disk; resolves with the
    /// number of patterns it holds, rejects with CACHE_CORRUPT (or another
    /// code) on the first problem.
    #[napi(ts_return_type = "Promise<number>")]
    pub fn verify(&self) -> AsyncTask<Job<u64, f64>> {
        self.run(|c| c.verify_file(), |_, n| Ok(n as f64))
    }

    #[napi(getter)]
    pub fn closed(&self) -> bool {
        self.core.is_closed()
    }
}

/// `pattern-cache remote migrate`: creates or migrates the remote schema;
/// resolves with the version found and the version now.
#[napi(ts_return_type = "Promise<number[]>")]
pub fn remote_migrate(url: String) -> AsyncTask<Job<(i64, i64), Vec<f64>>> {
    job(
        move || crate::remote::migrate(&url),
        |_, (a, b)| Ok(vec![a as f64, b as f64]),
    )
}

/// `pattern-cache remote status`: resolves with [schema version, generation].
#[napi(ts_return_type = "Promise<number[]>")]
pub fn remote_probe(url: String) -> AsyncTask<Job<(i64, u64), Vec<f64>>> {
    job(
        move || crate::remote::probe(&url),
        |_, (a, b)| Ok(vec![a as f64, b as f64]),
    )
}

/// Test builds only (feature `fault-injection`): make a step fail with an OS
/// error number, or panic when `errno` is absent; `step` "none" heals.
#[cfg(feature = "fault-injection")]
#[napi]
pub fn inject_fault(step: String, errno: Option<i32>) -> napi::Result<()> {
    use crate::faults::{set, Step};
    let step = match step.as_str() {
        "none" => return Ok(set(None)),
        "read" => Step::Read,
        "rebuild" => Step::Rebuild,
        "write_records" => Step::WriteRecords,
        "rename" => Step::Rename,
        other => return Err(napi::Error::new(Status::InvalidArg, format!("unknown step '{other}'"))),
    };
    set(Some((step, errno)));
    Ok(())
}

/// Every `code` an error from this package can carry (`ERROR_CODES` in JS).
#[napi]
pub fn error_codes() -> Vec<&'static str> {
    crate::error::CODES.to_vec()
}

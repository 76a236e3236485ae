//! The synchronous fast paths (`try*`, answered on the JavaScript thread)
//! and the thread policy that decides when they may answer.
//!
//! # Thread policy
//!
//! A call on the libuv thread pool never blocks the event loop but costs a
//! thread hop and a promise tick; a call on the JavaScript thread costs
//! neither but stops the whole process while it runs. A cache hit costs
//! less than the hop. Hence:
//!
//! * Everything that may wait (a lock, SQLite, the remote, the disk) or run
//!   long runs on the pool: the async methods (`methods.rs`) and `open`.
//! * The `try*` methods here answer on this thread only what cannot wait and
//!   is small: tier 1 must answer without a database check (the core's
//!   `try_cached` / `try_peek` say `None` when no file is mapped, a
//!   freshness check is due, the file has expired or the overlay is
//!   behind); a result holds at most `FAST_MAX_RESULTS` patterns; a search
//!   scans at most `FAST_SEARCH_FLOATS` floats. With the cache disabled,
//!   `tryLoadPattern` reads SQLite here only when the connection and the
//!   database are free (`try_sqlite_now` never waits). Otherwise they return
//!   `undefined` and index.js calls the async method, which gives the same
//!   answer or the same error. `tryOpen` (`open.rs`) applies the same rule
//!   to a second open.
//! * `markStale`, `getMetrics` and `closed` are synchronous in the public API
//!   and only read or set the instance's state in memory; `scanFloor` (a
//!   benchmark's measure) reads the mapped file here on purpose.

use napi::bindgen_prelude::*;
use napi::sys::napi_value;
use napi_derive::napi;

use super::build::{Builder, RawJs};
use super::convert::{JsPatternFilter, JsSearchOptions};
use super::job::{guarded, js_error};
use super::NativePatternCache;
use crate::error::Error as CoreError;
use crate::overlay::Tier1;
use crate::validate::MAX_ID_BYTES;

/// Results up to this many patterns are built on the JavaScript thread
/// directly; larger ones are decoded on the thread pool first.
const FAST_MAX_RESULTS: usize = 200_000;

/// Searches that scan at most this many floats (4 MiB: a fraction of a
/// millisecond) run on the JavaScript thread; larger ones on the pool.
const FAST_SEARCH_FLOATS: usize = 1 << 20;

/// What a read on this thread gave: `undefined` (`Either::B`) when only the
/// async call can answer. A core error goes through `js_error`; an error of
/// the value build is N-API's own (or the factory's exception) and stays so.
fn answer(
    env: &Env,
    got: crate::Result<Option<crate::Result<napi::Result<napi_value>>>>,
) -> napi::Result<Either<RawJs, ()>> {
    match got {
        Ok(Some(Ok(Ok(v)))) => Ok(Either::A(RawJs(v))),
        Ok(Some(Ok(Err(e)))) => Err(e),
        Ok(None) => Ok(Either::B(())),
        Ok(Some(Err(e))) | Err(e) => Err(js_error(env, &e)),
    }
}

/// The id argument as a `&str` in `buf`: no allocation on the hit path.
fn read_id<'b>(env: &Env, id: &Unknown<'_>, buf: &'b mut [u8; MAX_ID_BYTES + 4]) -> napi::Result<&'b str> {
    // N-API refuses only a value that is not a string: a bad argument.
    let not_a_string = |_| js_error(env, &CoreError::InvalidArgument("id must be a string".into()));
    let mut len = 0usize;
    check_status!(unsafe {
        napi::sys::napi_get_value_string_utf8(env.raw(), id.raw(), buf.as_mut_ptr().cast(), buf.len(), &mut len)
    })
    .map_err(not_a_string)?;
    if len > MAX_ID_BYTES {
        // The buffer only held the start: ask for the whole length for the message.
        let mut full = 0usize;
        check_status!(unsafe {
            napi::sys::napi_get_value_string_utf8(env.raw(), id.raw(), std::ptr::null_mut(), 0, &mut full)
        })
        .map_err(not_a_string)?;
        let e = CoreError::InvalidArgument(format!("id is {full} bytes, more than {MAX_ID_BYTES}"));
        return Err(js_error(env, &e));
    }
    let id = std::str::from_utf8(&buf[..len]).unwrap_or_default();
    crate::validate::id_argument(id).map_err(|e| js_error(env, &e))?;
    Ok(id)
}

impl NativePatternCache {
    /// Answers on this thread from tier 1, building the result inside the
    /// read (it borrows the mapped file).
    fn fast(
        &self,
        env: &Env,
        read: impl Fn(&Builder, &Tier1<'_>) -> crate::Result<napi::Result<napi_value>>,
    ) -> napi::Result<Either<RawJs, ()>> {
        let b = Builder::new(env, &self.factory)?;
        answer(env, guarded(|| Ok(self.core.try_cached(|t| read(&b, t)))))
    }
}

#[napi]
impl NativePatternCache {
    /// A cache hit (or miss) answered on the JavaScript thread, without a
    /// thread hop: the pattern, `null` when absent, `undefined` when only
    /// the full (async) call can answer.
    #[napi(ts_return_type = "StoredPattern | null | undefined")]
    pub fn try_load_pattern(&self, env: Env, id: Unknown<'_>) -> napi::Result<Either<RawJs, ()>> {
        let mut buf = [0u8; MAX_ID_BYTES + 4];
        let id = read_id(&env, &id, &mut buf)?;
        let answer_now = self.fast(&env, |b, t| Ok(b.maybe_pattern(t.get_ref(id)?.as_ref())))?;
        if let Either::B(()) = answer_now {
            // Cache disabled: a point read of SQLite here costs less than the thread hop.
            let b = Builder::new(&env, &self.factory)?;
            let direct = guarded(|| {
                Ok(self
                    .core
                    .try_sqlite_now(|c| crate::db::queries::with_pattern_ref(c, id, |p| b.maybe_pattern(p))))
            });
            return answer(&env, direct);
        }
        Ok(answer_now)
    }

    /// `loadPatterns` on the JavaScript thread for up to `FAST_MAX_RESULTS`
    /// ids; `undefined` when only the full (async) call can answer.
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
        crate::validate::filter(&filter).map_err(|e| js_error(&env, &e))?;
        // Sized first, without decoding: a large result is decoded off this thread.
        if self.core.try_peek(|t| t.size_hint(&filter) <= FAST_MAX_RESULTS) != Some(true) {
            return Ok(Either::B(()));
        }
        self.fast(&env, |b, t| Ok(b.patterns(&t.query_refs(&filter)?)))
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
        if self
            .core
            .try_peek(|t| crate::search::scan_floats(t) <= FAST_SEARCH_FLOATS)
            != Some(true)
        {
            return Ok(Either::B(()));
        }
        self.fast(&env, |b, t| Ok(b.search_results(&crate::search::on_tier1(t, &query)?)))
    }

    /// One pass reading the mapped vectors section on this thread: the floor
    /// a search is measured against (benchmark only). `null` without a file.
    #[napi]
    pub fn scan_floor(&self, env: Env) -> napi::Result<Option<f64>> {
        guarded(|| self.core.scan_floor())
            .map(|sum| sum.map(|s| (s % (1 << 52)) as f64))
            .map_err(|e| js_error(&env, &e))
    }
}

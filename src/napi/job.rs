//! The plumbing every call shares: the one error mapper (`js_error`), the
//! panic guard (`guarded`), and `Job`, a core call run on the libuv thread
//! pool whose result is built on the JavaScript thread.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use napi::bindgen_prelude::*;

use super::build::{Builder, RawJs};
use super::NativePatternCache;
use crate::error::Error as CoreError;
use crate::loader::PatternCache;

/// The one way a core error becomes a JS error: a JS `Error` whose `code` is
/// the core error's stable code (one of `crate::error::CODES`). Returned as
/// `Err`, napi throws or rejects with exactly this object.
pub fn js_error(env: &Env, e: &CoreError) -> napi::Error {
    let made = env
        .create_error(napi::Error::new(Status::GenericFailure, e.to_string()))
        .and_then(|mut obj| {
            obj.set_named_property("code", e.code())?;
            Ok(obj)
        });
    match made {
        Ok(obj) => napi::Error::from(obj.to_unknown()),
        // N-API itself failed to make the object (out of memory, a pending
        // exception): its own error is all there is to report.
        Err(fallback) => fallback,
    }
}

/// Runs core work, turning a panic into `INTERNAL` rather than an abort.
pub fn guarded<T>(work: impl FnOnce() -> crate::Result<T>) -> crate::Result<T> {
    catch_unwind(AssertUnwindSafe(work))
        .unwrap_or_else(|panic| Err(CoreError::Internal(crate::error::panic_message(&*panic))))
}

type Work<T> = Box<dyn FnOnce() -> crate::Result<T> + Send>;
type ToJs<T, J> = Box<dyn FnOnce(&Env, T) -> napi::Result<J> + Send>;

/// A core call on the libuv thread pool; `to_js` builds the result on the
/// JavaScript thread. A core error rejects the promise through `js_error`;
/// an error of `to_js` is N-API's own (a failed value build) and stays so.
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

pub fn job<T: Send + 'static, J>(
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

/// `to_js` for a call that resolves with nothing.
pub fn unit(_: &Env, _: ()) -> napi::Result<()> {
    Ok(())
}

/// `to_js` for a value napi converts by itself.
pub fn same<T>(_: &Env, v: T) -> napi::Result<T> {
    Ok(v)
}

impl NativePatternCache {
    /// A `Job` on this instance's core.
    pub(super) fn run<T: Send + 'static, J: ToNapiValue + TypeName>(
        &self,
        work: impl FnOnce(&PatternCache) -> crate::Result<T> + Send + 'static,
        to_js: impl FnOnce(&Env, T) -> napi::Result<J> + Send + 'static,
    ) -> AsyncTask<Job<T, J>> {
        let core = Arc::clone(&self.core);
        job(move || work(&core), to_js)
    }

    /// A `Job` whose result is patterns, built by the factories.
    pub(super) fn run_patterns<T: Send + 'static>(
        &self,
        work: impl FnOnce(&PatternCache) -> crate::Result<T> + Send + 'static,
        build: fn(&Builder, &T) -> napi::Result<napi::sys::napi_value>,
    ) -> AsyncTask<Job<T, RawJs>> {
        let factory = Arc::clone(&self.factory);
        self.run(work, move |env, value| {
            Ok(RawJs(build(&Builder::new(env, &factory)?, &value)?))
        })
    }
}

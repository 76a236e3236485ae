//! The Node binding, and the only code that touches N-API. It converts
//! JavaScript values to core types and back (`convert`, `results`,
//! `build`), calls the core, and maps every core error to a JS error with a
//! stable `code` (`job::js_error`). The one decision it makes is the thread policy (see
//! `fast`): which calls are answered on the JavaScript thread and which run
//! on the libuv thread pool.
//!
//! * `job`: the error mapper, the panic guard, and `Job` (a core call on
//!   the thread pool, its result built on the JavaScript thread).
//! * `open`: `open` and `tryOpen`.
//! * `methods`: the instance's methods (async, and the few synchronous ones).
//! * `fast`: the `try*` fast paths and the thread policy.
//! * `tools`: `remoteMigrate`, `remoteProbe`, `remotePrune`, `errorCodes`,
//!   `injectFault`.
//! * `convert`: arguments (JS-shaped mirrors of the core's inputs);
//!   `results`: what goes back (stats, metrics, events, ...); `build`:
//!   patterns, made by index.js's factories.
//!
//! Errors raised by napi-rs itself, before or after a core call (an argument
//! of the wrong type, a value it could not make), keep napi's own form;
//! index.js checks argument types before it calls, so what a caller of the
//! package sees is a coded error.

mod build;
mod convert;
mod fast;
mod job;
mod methods;
mod open;
mod results;
mod tools;

use std::sync::Arc;

use napi_derive::napi;

#[napi]
pub struct NativePatternCache {
    core: Arc<crate::loader::PatternCache>,
    /// index.js's `makePattern` and `makePatterns`, which turn fields into patterns.
    factory: Arc<build::Factories>,
}

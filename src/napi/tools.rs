//! Functions that need no instance: the remote tools behind
//! `pattern-cache remote ...`, the list of error codes, and (test builds
//! only) fault injection.

use napi::bindgen_prelude::*;
use napi_derive::napi;

use super::job::{job, Job};

/// `pattern-cache remote migrate`: creates or migrates the remote schema;
/// resolves with the version found and the version now.
#[napi(ts_return_type = "Promise<number[]>")]
pub fn remote_migrate(url: String, schema: Option<String>) -> AsyncTask<Job<(i64, i64), Vec<f64>>> {
    job(
        move || crate::remote::migrate(&url, &schema_name(schema)?),
        |_, (a, b)| Ok(vec![a as f64, b as f64]),
    )
}

/// `pattern-cache remote status`: resolves with [schema version, generation].
#[napi(ts_return_type = "Promise<number[]>")]
pub fn remote_probe(url: String, schema: Option<String>) -> AsyncTask<Job<(i64, u64), Vec<f64>>> {
    job(
        move || crate::remote::probe(&url, &schema_name(schema)?),
        |_, (a, b)| Ok(vec![a as f64, b as f64]),
    )
}

/// `pattern-cache remote prune --keep <duration>`: resolves with [floor,
/// tombstones removed, write records removed]. `keep_ms` is checked in JS.
#[napi(ts_return_type = "Promise<number[]>")]
pub fn remote_prune(
    url: String,
    schema: Option<String>,
    keep_ms: f64,
) -> AsyncTask<Job<crate::remote::Pruned, Vec<f64>>> {
    let keep = std::time::Duration::from_millis(keep_ms.clamp(0.0, u64::MAX as f64) as u64);
    job(
        move || crate::remote::prune(&url, &schema_name(schema)?, keep),
        |_, p| Ok(vec![p.floor as f64, p.tombstones as f64, p.writes as f64]),
    )
}

/// The schema a remote tool works on: the default when none is named.
fn schema_name(name: Option<String>) -> crate::Result<crate::remote::schema::SchemaName> {
    name.map_or_else(
        || Ok(Default::default()),
        |n| crate::remote::schema::SchemaName::parse(&n),
    )
}

/// Every `code` an error from this package can carry (`ERROR_CODES` in JS).
#[napi]
pub fn error_codes() -> Vec<&'static str> {
    crate::error::CODES.to_vec()
}

/// Test builds only (feature `fault-injection`): make a step fail with an OS
/// error number, or panic when `errno` is absent; `step` "none" heals.
#[cfg(feature = "fault-injection")]
#[napi]
pub fn inject_fault(env: Env, step: String, errno: Option<i32>) -> napi::Result<()> {
    use crate::error::Error as CoreError;
    use crate::faults::{set, Step};
    let step = match step.as_str() {
        "none" => None,
        name => match Step::parse(name) {
            Some(step) => Some(step),
            None => {
                let e = CoreError::InvalidArgument(format!("unknown step '{name}'"));
                return Err(super::job::js_error(&env, &e));
            }
        },
    };
    set(step.map(|s| (s, errno)));
    Ok(())
}

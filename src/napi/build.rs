//! Building result values fast: a pattern becomes one call of a JavaScript
//! factory (index.js's `makePattern`) with its fields as arguments, instead of
//! a property-by-property object build through N-API (several times slower).
//! The embedding goes over as an ArrayBuffer the factory views as a
//! Float32Array, so it is a Float32Array of the caller's own realm.
//!
//! No core error arises here: an error of a build is N-API's own (a value
//! it could not make) or the exception a factory threw, and reaches JS as
//! napi gives it.

use std::ptr;

use napi::bindgen_prelude::*;
use napi::sys;

use crate::format::record::PatternRef;

/// A value already made on the JavaScript side.
pub struct RawJs(pub sys::napi_value);

impl ToNapiValue for RawJs {
    unsafe fn to_napi_value(_env: sys::napi_env, val: Self) -> Result<sys::napi_value> {
        Ok(val.0)
    }
}

impl TypeName for RawJs {
    fn type_name() -> &'static str {
        "unknown"
    }
    fn value_type() -> ValueType {
        ValueType::Unknown
    }
}

/// index.js's two factories: one pattern from its fields, and many
/// patterns (13 fields each) appended to an array, embeddings in one buffer.
pub struct Factories {
    pub one: FunctionRef<(), Unknown<'static>>,
    pub many: FunctionRef<(), Unknown<'static>>,
}

/// Patterns per call of the batch factory (arguments stay well under V8's limits).
const BATCH: usize = 256;
/// Fields per pattern in a batch call: all but the embedding.
const BATCH_FIELDS: usize = 13;

/// What a pattern build needs: the env, the factories, and `undefined`.
pub struct Builder {
    env: sys::napi_env,
    one: sys::napi_value,
    many: sys::napi_value,
    undefined: sys::napi_value,
}

impl Builder {
    pub fn new(env: &Env, factories: &Factories) -> Result<Builder> {
        let mut undefined = ptr::null_mut();
        check_status!(unsafe { sys::napi_get_undefined(env.raw(), &mut undefined) })?;
        Ok(Builder {
            env: env.raw(),
            one: factories.one.borrow_back(env)?.raw(),
            many: factories.many.borrow_back(env)?.raw(),
            undefined,
        })
    }

    fn string(&self, s: &str) -> Result<sys::napi_value> {
        let mut v = ptr::null_mut();
        if s.is_ascii() {
            // ASCII is Latin-1 too: V8 copies it without decoding UTF-8.
            check_status!(unsafe {
                sys::napi_create_string_latin1(self.env, s.as_ptr().cast(), s.len() as isize, &mut v)
            })?;
            return Ok(v);
        }
        check_status!(unsafe { sys::napi_create_string_utf8(self.env, s.as_ptr().cast(), s.len() as isize, &mut v) })?;
        Ok(v)
    }

    fn number(&self, x: f64) -> Result<sys::napi_value> {
        let mut v = ptr::null_mut();
        check_status!(unsafe { sys::napi_create_double(self.env, x, &mut v) })?;
        Ok(v)
    }

    fn opt<T>(&self, x: Option<T>, make: impl FnOnce(T) -> Result<sys::napi_value>) -> Result<sys::napi_value> {
        x.map_or(Ok(self.undefined), make)
    }

    pub fn pattern(&self, p: &PatternRef<'_>) -> Result<sys::napi_value> {
        let bytes = p.embedding.len() * 4;
        let mut data = ptr::null_mut();
        let mut buffer = ptr::null_mut();
        check_status!(unsafe { sys::napi_create_arraybuffer(self.env, bytes, &mut data, &mut buffer) })?;
        if bytes > 0 {
            // SAFETY: V8 just allocated `bytes` writable bytes at `data` for this buffer.
            let out = unsafe { std::slice::from_raw_parts_mut(data.cast::<u8>(), bytes) };
            p.embedding.write_le(out);
        }
        let f = self.fields(p, &mut Names::default())?;
        let args = [
            buffer, f[0], f[1], f[2], f[3], f[4], f[5], f[6], f[7], f[8], f[9], f[10], f[11], f[12],
        ];
        self.call(self.one, &args)
    }

    fn call(&self, f: sys::napi_value, args: &[sys::napi_value]) -> Result<sys::napi_value> {
        let mut result = ptr::null_mut();
        check_status!(unsafe {
            sys::napi_call_function(self.env, self.undefined, f, args.len(), args.as_ptr(), &mut result)
        })?;
        Ok(result)
    }

    /// The 13 fields other than the embedding, in the factories' order.
    fn fields<'a>(&self, p: &PatternRef<'a>, names: &mut Names<'a>) -> Result<[sys::napi_value; BATCH_FIELDS]> {
        Ok([
            self.string(p.id)?,
            names.get(self, p.pattern_type)?,
            names.get(self, p.domain)?,
            names.get(self, p.framework)?,
            self.string(p.content)?,
            self.opt(p.coverage, |x| self.number(x))?,
            self.opt(p.flakiness_score, |x| self.number(x))?,
            names.get(self, p.verdict.as_str())?,
            self.number(p.created_at as f64)?,
            self.opt(p.last_used, |x| self.number(x as f64))?,
            self.number(p.usage_count as f64)?,
            self.number(p.success_count as f64)?,
            self.opt(p.metadata_json, |s| self.string(s))?,
        ])
    }

    /// Many patterns as one JS array: one factory call per `BATCH`, each
    /// with one buffer holding all of its embeddings.
    pub fn patterns(&self, ps: &[PatternRef<'_>]) -> Result<sys::napi_value> {
        let mut out = ptr::null_mut();
        check_status!(unsafe { sys::napi_create_array(self.env, &mut out) })?;
        let mut names = Names::default();
        for chunk in ps.chunks(BATCH) {
            let dim = chunk[0].embedding.len();
            if chunk.iter().any(|p| p.embedding.len() != dim) {
                // Never in practice (one dimension per database), but exact anyway.
                for p in chunk {
                    let v = self.pattern(p)?;
                    let mut len = 0u32;
                    check_status!(unsafe { sys::napi_get_array_length(self.env, out, &mut len) })?;
                    check_status!(unsafe { sys::napi_set_element(self.env, out, len, v) })?;
                }
                continue;
            }
            let bytes = chunk.len() * dim * 4;
            let mut data = ptr::null_mut();
            let mut buffer = ptr::null_mut();
            check_status!(unsafe { sys::napi_create_arraybuffer(self.env, bytes, &mut data, &mut buffer) })?;
            if bytes > 0 {
                // SAFETY: V8 just allocated `bytes` writable bytes at `data` for this buffer.
                let all = unsafe { std::slice::from_raw_parts_mut(data.cast::<u8>(), bytes) };
                for (p, out) in chunk.iter().zip(all.chunks_exact_mut(dim * 4)) {
                    p.embedding.write_le(out);
                }
            }
            let mut args = Vec::with_capacity(3 + chunk.len() * BATCH_FIELDS);
            args.extend([out, buffer, self.number(dim as f64)?]);
            for p in chunk {
                args.extend(self.fields(p, &mut names)?);
            }
            self.call(self.many, &args)?;
        }
        Ok(out)
    }

    pub fn array(&self, items: impl ExactSizeIterator<Item = Result<sys::napi_value>>) -> Result<sys::napi_value> {
        let mut array = ptr::null_mut();
        check_status!(unsafe { sys::napi_create_array_with_length(self.env, items.len(), &mut array) })?;
        for (i, item) in items.enumerate() {
            check_status!(unsafe { sys::napi_set_element(self.env, array, i as u32, item?) })?;
        }
        Ok(array)
    }

    /// Search hits as `[patterns, scores]` (index.js pairs them up).
    pub fn search_results(&self, hits: &[(PatternRef<'_>, f64)]) -> Result<sys::napi_value> {
        let refs: Vec<PatternRef<'_>> = hits.iter().map(|(p, _)| *p).collect();
        let patterns = self.patterns(&refs)?;
        let scores = self.array(hits.iter().map(|(_, s)| self.number(*s)))?;
        self.array([Ok(patterns), Ok(scores)].into_iter())
    }

    /// A page as `[patterns, more]` (index.js makes the cursor).
    pub fn page(&self, ps: &[crate::Pattern], more: bool) -> Result<sys::napi_value> {
        let refs: Vec<PatternRef<'_>> = ps.iter().map(|p| p.as_ref()).collect();
        let patterns = self.patterns(&refs)?;
        let mut flag = ptr::null_mut();
        check_status!(unsafe { sys::napi_get_boolean(self.env, more, &mut flag) })?;
        self.array([Ok(patterns), Ok(flag)].into_iter())
    }

    pub fn null(&self) -> Result<sys::napi_value> {
        let mut v = ptr::null_mut();
        check_status!(unsafe { sys::napi_get_null(self.env, &mut v) })?;
        Ok(v)
    }

    pub fn maybe_pattern(&self, p: Option<&PatternRef<'_>>) -> Result<sys::napi_value> {
        match p {
            Some(p) => self.pattern(p),
            None => self.null(),
        }
    }
}

/// JS strings already made for the short names that repeat across a result
/// (type, domain, framework, verdict), so each is made once per result.
/// Fixed size, on the stack: the hot path makes no heap allocation.
struct Names<'a> {
    made: [(&'a str, sys::napi_value); 16],
    len: usize,
}

impl Default for Names<'_> {
    fn default() -> Self {
        Names {
            made: [("", ptr::null_mut()); 16],
            len: 0,
        }
    }
}

impl<'a> Names<'a> {
    fn get(&mut self, b: &Builder, name: &'a str) -> Result<sys::napi_value> {
        if let Some((_, v)) = self.made[..self.len].iter().find(|(n, _)| *n == name) {
            return Ok(*v);
        }
        let v = b.string(name)?;
        if self.len < self.made.len() {
            self.made[self.len] = (name, v);
            self.len += 1;
        }
        Ok(v)
    }
}

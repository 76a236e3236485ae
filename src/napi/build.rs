//! Building result values fast: a pattern becomes one call of a JavaScript
//! factory (index.js's `makePattern`) with its fields as arguments, instead of
//! a property-by-property object build through N-API (several times slower).
//! The embedding goes over as an ArrayBuffer the factory views as a
//! Float32Array, so it is a Float32Array of the caller's own realm.

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

/// What a pattern build needs: the env, the factory, and `undefined`.
pub struct Builder {
    env: sys::napi_env,
    factory: sys::napi_value,
    undefined: sys::napi_value,
}

impl Builder {
    pub fn new(env: &Env, factory: &FunctionRef<(), Unknown<'static>>) -> Result<Builder> {
        let f = factory.borrow_back(env)?;
        let mut undefined = ptr::null_mut();
        check_status!(unsafe { sys::napi_get_undefined(env.raw(), &mut undefined) })?;
        Ok(Builder {
            env: env.raw(),
            factory: f.raw(),
            undefined,
        })
    }

    fn string(&self, s: &str) -> Result<sys::napi_value> {
        let mut v = ptr::null_mut();
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
        let args = [
            self.string(p.id)?,
            self.string(p.pattern_type)?,
            self.string(p.domain)?,
            self.string(p.framework)?,
            self.string(p.content)?,
            buffer,
            self.opt(p.coverage, |x| self.number(x))?,
            self.opt(p.flakiness_score, |x| self.number(x))?,
            self.string(p.verdict.as_str())?,
            self.number(p.created_at as f64)?,
            self.opt(p.last_used, |x| self.number(x as f64))?,
            self.number(p.usage_count as f64)?,
            self.number(p.success_count as f64)?,
            self.opt(p.metadata_json, |s| self.string(s))?,
        ];
        let mut result = ptr::null_mut();
        check_status!(unsafe {
            sys::napi_call_function(
                self.env,
                self.undefined,
                self.factory,
                args.len(),
                args.as_ptr(),
                &mut result,
            )
        })?;
        Ok(result)
    }

    pub fn array(&self, items: impl ExactSizeIterator<Item = Result<sys::napi_value>>) -> Result<sys::napi_value> {
        let mut array = ptr::null_mut();
        check_status!(unsafe { sys::napi_create_array_with_length(self.env, items.len(), &mut array) })?;
        for (i, item) in items.enumerate() {
            check_status!(unsafe { sys::napi_set_element(self.env, array, i as u32, item?) })?;
        }
        Ok(array)
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

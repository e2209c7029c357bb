//! Exported hooks of one HTTP stream (worker thread): create and drop the `HttpFilter`, and
//! hand each request/response event to it over an `EnvoyStream`. Nothing unwinds into Envoy.

use std::ffi::c_void;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr;
use std::sync::Arc;

use super::envoy_stream::{log, EnvoyStream};
use crate::config::FilterConfig;
use crate::filter::{panic_message, HttpFilter};
use crate::stream::{HeadersStatus, LogLevel};

/// `Continue` of the body and trailers status enums (doc §3: 0 in all of them).
const CONTINUE: u32 = 0;

/// Turn a module pointer back into our filter. `fm` is what on_http_filter_new returned.
///
/// # Safety
/// `fm` must be null or a live pointer from `on_http_filter_new`, used only on its worker
/// thread, with no other reference to the filter alive.
unsafe fn filter<'a>(fm: *const c_void) -> Option<&'a mut HttpFilter> {
    // SAFETY: guaranteed by the caller; Envoy calls one stream's hooks serially.
    unsafe { fm.cast_mut().cast::<HttpFilter>().as_mut() }
}

/// A new stream: its filter, which holds the config's `Arc`. NULL makes Envoy close it.
///
/// # Safety
/// Called by Envoy only: `config` is null or what config_new returned, alive for the call.
#[no_mangle]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_new(
    config: *const c_void,
    _fe: *mut c_void,
) -> *const c_void {
    let r = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: `config` is our live Box<Arc<FilterConfig>> (Envoy keeps the config alive
        // while filters are created from it); we only clone the Arc.
        let cfg = unsafe { config.cast::<Arc<FilterConfig>>().as_ref() }?;
        let f = Box::new(HttpFilter::new(Arc::clone(cfg)));
        Some(Box::into_raw(f).cast_const().cast::<c_void>())
    }));
    match r {
        Ok(Some(p)) => p,
        _ => {
            log(
                LogLevel::Error,
                "waypoint: could not create the stream filter",
            );
            ptr::null()
        }
    }
}

/// # Safety
/// Called by Envoy only: `fe`/`fm` are the live pointers of one stream on its worker thread.
#[no_mangle]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_request_headers(
    fe: *mut c_void,
    fm: *const c_void,
    end_of_stream: bool,
) -> u32 {
    // SAFETY: `fm` is our filter, on its own worker thread (the hook's contract).
    let Some(f) = (unsafe { filter(fm) }) else {
        return HeadersStatus::Continue as u32;
    };
    // SAFETY: `fe` is this hook's live filter pointer; `s` is dropped when the hook returns.
    let mut s = unsafe { EnvoyStream::new(fe) };
    // on_request_headers catches its own panics; this outer guard covers the rest.
    match catch_unwind(AssertUnwindSafe(|| {
        f.on_request_headers(&mut s, end_of_stream)
    })) {
        Ok(st) => st as u32,
        Err(p) => {
            let why = panic_message(&p);
            let st = catch_unwind(AssertUnwindSafe(|| {
                f.fail_closed(&mut s, "request_headers", &why)
            }));
            st.unwrap_or(HeadersStatus::StopIteration) as u32
        }
    }
}

/// # Safety
/// Called by Envoy only: `fe`/`fm` are the live pointers of one stream on its worker thread.
#[no_mangle]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_request_body(
    fe: *mut c_void,
    fm: *const c_void,
    end_of_stream: bool,
) -> u32 {
    // SAFETY: `fm` is our filter, on its own worker thread (the hook's contract).
    if let Some(f) = unsafe { filter(fm) } {
        // SAFETY: `fe` is this hook's live filter pointer; `s` is dropped before it returns.
        let mut s = unsafe { EnvoyStream::new(fe) };
        f.on_request_body(&mut s, end_of_stream);
    }
    // Continue: the body streams on; only a copy is kept for a mirror.
    CONTINUE
}

/// # Safety
/// Called by Envoy only: `fe`/`fm` are the live pointers of one stream on its worker thread.
#[no_mangle]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_request_trailers(
    fe: *mut c_void,
    fm: *const c_void,
) -> u32 {
    // SAFETY: `fm` is our filter, on its own worker thread (the hook's contract).
    if let Some(f) = unsafe { filter(fm) } {
        // SAFETY: `fe` is this hook's live filter pointer; `s` is dropped before it returns.
        let mut s = unsafe { EnvoyStream::new(fe) };
        f.on_request_trailers(&mut s);
    }
    CONTINUE
}

/// # Safety
/// Called by Envoy only: `fe`/`fm` are the live pointers of one stream on its worker thread.
#[no_mangle]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_response_headers(
    fe: *mut c_void,
    fm: *const c_void,
    _end_of_stream: bool,
) -> u32 {
    // SAFETY: `fm` is our filter, on its own worker thread (the hook's contract).
    let Some(f) = (unsafe { filter(fm) }) else {
        return HeadersStatus::Continue as u32;
    };
    // SAFETY: `fe` is this hook's live filter pointer; `s` is dropped when the hook returns.
    let mut s = unsafe { EnvoyStream::new(fe) };
    match catch_unwind(AssertUnwindSafe(|| f.on_response_headers(&mut s))) {
        Ok(st) => st as u32,
        Err(_) => HeadersStatus::Continue as u32,
    }
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_response_body(
    _fe: *mut c_void,
    _fm: *const c_void,
    _end_of_stream: bool,
) -> u32 {
    CONTINUE
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_response_trailers(
    _fe: *mut c_void,
    _fm: *const c_void,
) -> u32 {
    CONTINUE
}

/// The stream is done (the last hook with a live stream in 1.40): Istio's metrics.
///
/// # Safety
/// Called by Envoy only: `fe`/`fm` are the live pointers of one stream on its worker thread.
#[no_mangle]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_stream_complete(
    fe: *mut c_void,
    fm: *const c_void,
) {
    // SAFETY: `fm` is our filter, on its own worker thread (the hook's contract).
    let Some(f) = (unsafe { filter(fm) }) else {
        return;
    };
    // SAFETY: `fe` is this hook's live filter pointer; `s` is dropped when the hook returns.
    let mut s = unsafe { EnvoyStream::new(fe) };
    if catch_unwind(AssertUnwindSafe(|| f.on_stream_complete(&mut s))).is_err() {
        log(LogLevel::Error, "waypoint: panic in stream_complete");
    }
}

/// Drop a stream's filter. In 1.40 this runs after the stream is gone: no stream callbacks.
///
/// # Safety
/// Called by Envoy only, once per filter: `fm` is null or what on_http_filter_new returned,
/// and Envoy never passes it again afterwards.
#[no_mangle]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_destroy(fm: *const c_void) {
    if fm.is_null() {
        return;
    }
    let r = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: `fm` is the Box<HttpFilter> we leaked in on_http_filter_new; Envoy calls
        // destroy once and never uses the pointer afterwards.
        drop(unsafe { Box::from_raw(fm.cast_mut().cast::<HttpFilter>()) });
    }));
    if r.is_err() {
        log(
            LogLevel::Error,
            "waypoint: panic while dropping a stream filter",
        );
    }
}

/// A wake-up the stream's scheduler was committed for (the fault delay's end).
///
/// # Safety
/// Called by Envoy only: `fe`/`fm` are the live pointers of one stream on its worker thread.
#[no_mangle]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_scheduled(
    fe: *mut c_void,
    fm: *const c_void,
    event_id: u64,
) {
    // SAFETY: `fm` is our filter, on its own worker thread (the hook's contract).
    let Some(f) = (unsafe { filter(fm) }) else {
        return;
    };
    // SAFETY: `fe` is this hook's live filter pointer; `s` is dropped when the hook returns.
    let mut s = unsafe { EnvoyStream::new(fe) };
    if catch_unwind(AssertUnwindSafe(|| f.on_scheduled(&mut s, event_id))).is_err() {
        log(LogLevel::Error, "waypoint: panic in on_scheduled");
    }
}

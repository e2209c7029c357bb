//! The Envoy 1.40 dynamic-module C ABI (our own declarations, written from the interface facts;
//! no Envoy header or SDK code): exported hooks, imported callbacks, and `EnvoyStream`.
#![allow(unsafe_code)]

use std::ffi::{c_char, c_void};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr;
use std::sync::Arc;

use crate::config::FilterConfig;
use crate::filter::{panic_message, HttpFilter};
use crate::header_block::{HeaderBlock, HeaderView};
use crate::stream::{Attribute, HeaderKind, HeadersStatus, LogLevel, StreamHandle, Wake};

/// ABI version string of Envoy 1.40.0's dynamic modules (NUL-terminated).
static ABI_VERSION: &[u8] = b"v0.2.0\0";

/// `envoy_dynamic_module_type_envoy_buffer`: memory owned by Envoy, valid during the hook.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct EnvoyBuffer {
    ptr: *const c_char,
    length: usize,
}

/// `envoy_dynamic_module_type_module_buffer`: memory owned by us, valid during the call.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct ModuleBuffer {
    ptr: *const c_char,
    length: usize,
}

impl ModuleBuffer {
    fn of(s: &str) -> Self {
        ModuleBuffer {
            ptr: s.as_ptr().cast(),
            length: s.len(),
        }
    }
    const NULL: ModuleBuffer = ModuleBuffer {
        ptr: ptr::null(),
        length: 0,
    };
}

/// `envoy_dynamic_module_type_{module,envoy}_http_header` and `..._module_key_value_pair`
/// (all three have this layout).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct HttpHeader {
    key_ptr: *const c_char,
    key_length: usize,
    value_ptr: *const c_char,
    value_length: usize,
}

const EMPTY: EnvoyBuffer = EnvoyBuffer {
    ptr: ptr::null(),
    length: 0,
};
const EMPTY_HEADER: HttpHeader = HttpHeader {
    key_ptr: ptr::null(),
    key_length: 0,
    value_ptr: ptr::null(),
    value_length: 0,
};

// `envoy_dynamic_module_type_http_body_type`: the data of the current request-body call.
const RECEIVED_REQUEST_BODY: u32 = 0;

// `envoy_dynamic_module_type_http_header_type`.
const REQUEST_HEADER: u32 = 0;
const RESPONSE_HEADER: u32 = 2;
// `envoy_dynamic_module_type_attribute_id` positions (checked against 1.40.0 by running).
const ATTR_SOURCE_ADDRESS: u32 = 24;
const ATTR_DESTINATION_ADDRESS: u32 = 26;
const ATTR_REQUESTED_SERVER_NAME: u32 = 30;
const ATTR_URI_SAN_PEER_CERTIFICATE: u32 = 37;
// `envoy_dynamic_module_type_http_callout_init_result`.
const CALLOUT_SUCCESS: u32 = 0;
// `envoy_dynamic_module_type_metrics_result`.
const METRICS_SUCCESS: u32 = 0;

extern "C" {
    fn envoy_dynamic_module_callback_log(level: u32, message: ModuleBuffer);
    fn envoy_dynamic_module_callback_http_get_header(
        fe: *mut c_void,
        kind: u32,
        key: ModuleBuffer,
        result: *mut EnvoyBuffer,
        index: usize,
        optional_size: *mut usize,
    ) -> bool;
    fn envoy_dynamic_module_callback_http_get_headers_size(fe: *mut c_void, kind: u32) -> usize;
    fn envoy_dynamic_module_callback_http_get_headers(
        fe: *mut c_void,
        kind: u32,
        result_headers: *mut HttpHeader,
    ) -> bool;
    fn envoy_dynamic_module_callback_http_set_header(
        fe: *mut c_void,
        kind: u32,
        key: ModuleBuffer,
        value: ModuleBuffer,
    ) -> bool;
    fn envoy_dynamic_module_callback_http_add_header(
        fe: *mut c_void,
        kind: u32,
        key: ModuleBuffer,
        value: ModuleBuffer,
    ) -> bool;
    fn envoy_dynamic_module_callback_http_send_response(
        fe: *mut c_void,
        status_code: u32,
        headers: *mut HttpHeader,
        headers_size: usize,
        body: ModuleBuffer,
        details: ModuleBuffer,
    );
    fn envoy_dynamic_module_callback_http_set_dynamic_metadata_string(
        fe: *mut c_void,
        namespace: ModuleBuffer,
        key: ModuleBuffer,
        value: ModuleBuffer,
    );
    fn envoy_dynamic_module_callback_http_set_dynamic_metadata_string_batch(
        fe: *mut c_void,
        namespace: ModuleBuffer,
        entries: *const HttpHeader,
        entries_size: usize,
    );
    fn envoy_dynamic_module_callback_http_filter_get_attribute_string(
        fe: *mut c_void,
        id: u32,
        result: *mut EnvoyBuffer,
    ) -> bool;
    fn envoy_dynamic_module_callback_http_get_filter_state_bytes(
        fe: *mut c_void,
        key: ModuleBuffer,
        result: *mut EnvoyBuffer,
    ) -> bool;
    fn envoy_dynamic_module_callback_http_clear_route_cache(fe: *mut c_void);
    fn envoy_dynamic_module_callback_http_clear_route_cluster_cache(fe: *mut c_void);
    fn envoy_dynamic_module_callback_http_get_body_chunks_size(fe: *mut c_void, kind: u32)
        -> usize;
    fn envoy_dynamic_module_callback_http_get_body_chunks(
        fe: *mut c_void,
        kind: u32,
        out: *mut EnvoyBuffer,
    ) -> bool;
    fn envoy_dynamic_module_callback_http_filter_config_define_counter(
        config_envoy: *mut c_void,
        name: ModuleBuffer,
        label_names: *mut ModuleBuffer,
        label_names_size: usize,
        counter_id: *mut usize,
    ) -> u32;
    fn envoy_dynamic_module_callback_http_filter_increment_counter(
        fe: *mut c_void,
        id: usize,
        label_values: *mut ModuleBuffer,
        label_values_size: usize,
        value: u64,
    ) -> u32;
    fn envoy_dynamic_module_callback_http_filter_config_increment_counter(
        config_envoy: *mut c_void,
        id: usize,
        label_values: *mut ModuleBuffer,
        label_values_size: usize,
        value: u64,
    ) -> u32;
    fn envoy_dynamic_module_callback_http_filter_config_scheduler_new(
        config_envoy: *mut c_void,
    ) -> *mut c_void;
    fn envoy_dynamic_module_callback_http_filter_config_scheduler_commit(
        scheduler: *mut c_void,
        event_id: u64,
    );
    fn envoy_dynamic_module_callback_http_filter_config_scheduler_delete(scheduler: *mut c_void);
    fn envoy_dynamic_module_callback_http_filter_scheduler_new(fe: *mut c_void) -> *mut c_void;
    fn envoy_dynamic_module_callback_http_filter_scheduler_commit(
        scheduler: *mut c_void,
        event_id: u64,
    );
    fn envoy_dynamic_module_callback_http_filter_scheduler_delete(scheduler: *mut c_void);
    fn envoy_dynamic_module_callback_http_filter_continue_decoding(fe: *mut c_void);
    fn envoy_dynamic_module_callback_http_filter_http_callout(
        fe: *mut c_void,
        callout_id: *mut u64,
        cluster_name: ModuleBuffer,
        headers: *mut HttpHeader,
        headers_size: usize,
        body: ModuleBuffer,
        timeout_milliseconds: u64,
    ) -> u32;
}

/// Log through Envoy's `dynamic_modules` logger.
pub fn log(level: LogLevel, msg: &str) {
    let lvl = match level {
        LogLevel::Trace => 0,
        LogLevel::Debug => 1,
        LogLevel::Info => 2,
        LogLevel::Warn => 3,
        LogLevel::Error => 4,
    };
    // SAFETY: the callback copies the message before returning; the buffer points at `msg`,
    // which outlives the call. Envoy exports this symbol (checked by the symbols test).
    unsafe { envoy_dynamic_module_callback_log(lvl, ModuleBuffer::of(msg)) }
}

/// Copy an Envoy-owned buffer into a String (lossy on invalid UTF-8).
/// Bytes Envoy lent us for the current hook.
///
/// # Safety
/// `ptr` must be null or point at `len` readable bytes that stay valid while the result is used.
unsafe fn borrow<'a>(ptr: *const c_char, len: usize) -> &'a [u8] {
    if ptr.is_null() || len == 0 {
        return &[];
    }
    // SAFETY: guaranteed by the caller.
    unsafe { std::slice::from_raw_parts(ptr.cast::<u8>(), len) }
}

/// Header bytes as text: ASCII (nearly every header) is checked a word at a time and taken as
/// is; anything else goes through UTF-8 validation, invalid bytes becoming U+FFFD.
fn as_str(b: &[u8]) -> Option<&str> {
    if b.is_ascii() {
        // SAFETY: every ASCII byte sequence is valid UTF-8.
        Some(unsafe { std::str::from_utf8_unchecked(b) })
    } else {
        std::str::from_utf8(b).ok()
    }
}

fn text(b: &[u8]) -> std::borrow::Cow<'_, str> {
    if b.is_ascii() {
        // SAFETY: every ASCII byte sequence is valid UTF-8.
        std::borrow::Cow::Borrowed(unsafe { std::str::from_utf8_unchecked(b) })
    } else {
        String::from_utf8_lossy(b)
    }
}

fn copy(buf: EnvoyBuffer) -> String {
    if buf.ptr.is_null() || buf.length == 0 {
        return String::new();
    }
    // SAFETY: Envoy returned this (ptr, length) pair for memory it keeps valid until the end
    // of the current hook; we copy it out immediately and never keep the pointer.
    let bytes = unsafe { std::slice::from_raw_parts(buf.ptr.cast::<u8>(), buf.length) };
    text(bytes).into_owned()
}

fn header_kind(kind: HeaderKind) -> u32 {
    match kind {
        HeaderKind::Request => REQUEST_HEADER,
        HeaderKind::Response => RESPONSE_HEADER,
    }
}

/// The stream handle over the C ABI for one hook invocation.
pub struct EnvoyStream {
    fe: *mut c_void,
}

/// On the stack for ordinary requests (Envoy's default limit is 100 headers).
type RawHeaders = smallvec::SmallVec<[HttpHeader; 32]>;

impl EnvoyStream {
    /// Envoy's (ptr, length) pairs of every header of one map into `raw` (left empty when
    /// there is none). Filled in place: the array is 1 KiB, too much to move by value.
    fn raw_headers(&self, kind: HeaderKind, raw: &mut RawHeaders) {
        // SAFETY: `fe` is the live filter pointer of the current hook.
        let n = unsafe {
            envoy_dynamic_module_callback_http_get_headers_size(self.fe, header_kind(kind))
        };
        if n == 0 {
            return;
        }
        raw.resize(n, EMPTY_HEADER);
        // SAFETY: `raw` has room for exactly the `n` entries Envoy said it would write.
        let ok = unsafe {
            envoy_dynamic_module_callback_http_get_headers(
                self.fe,
                header_kind(kind),
                raw.as_mut_ptr(),
            )
        };
        if !ok {
            raw.clear();
        }
    }
}

impl StreamHandle for EnvoyStream {
    fn header_values(&self, kind: HeaderKind, name: &str) -> Vec<String> {
        let mut out = Vec::new();
        let mut count: usize = 0;
        let mut buf = EMPTY;
        // SAFETY: `fe` is the live filter pointer Envoy passed to the current hook; `buf` and
        // `count` are valid for writes; the key buffer points at `name` for the call.
        let found = unsafe {
            envoy_dynamic_module_callback_http_get_header(
                self.fe,
                header_kind(kind),
                ModuleBuffer::of(name),
                &mut buf,
                0,
                &mut count,
            )
        };
        if !found {
            return out;
        }
        out.push(copy(buf));
        for i in 1..count {
            let mut b = EMPTY;
            // SAFETY: as above, with an index below the count Envoy reported.
            let ok = unsafe {
                envoy_dynamic_module_callback_http_get_header(
                    self.fe,
                    header_kind(kind),
                    ModuleBuffer::of(name),
                    &mut b,
                    i,
                    ptr::null_mut(),
                )
            };
            if ok {
                out.push(copy(b));
            }
        }
        out
    }

    fn headers(&self, kind: HeaderKind) -> HeaderBlock {
        let mut raw = RawHeaders::new();
        self.raw_headers(kind, &mut raw);
        let bytes = raw.iter().map(|h| h.key_length + h.value_length).sum();
        let mut block = HeaderBlock::with_capacity(raw.len(), bytes);
        for h in &raw {
            // SAFETY: Envoy wrote these (ptr, length) pairs for header memory it keeps valid
            // until the end of the current hook; they are copied into `block` right here.
            let (k, v) = unsafe {
                (
                    borrow(h.key_ptr, h.key_length),
                    borrow(h.value_ptr, h.value_length),
                )
            };
            block.push(&text(k), &text(v));
        }
        block
    }

    fn with_headers<R>(&self, kind: HeaderKind, f: impl FnOnce(&HeaderView<'_>) -> R) -> R {
        let mut raw = RawHeaders::new();
        self.raw_headers(kind, &mut raw);
        let mut view = HeaderView::with_capacity(raw.len());
        for h in &raw {
            // SAFETY: Envoy wrote these (ptr, length) pairs for its header memory, valid until
            // the current hook returns or the header map changes. The view lives only inside
            // this call, and while it runs `self` is borrowed shared, so no header-changing
            // method (all take `&mut self`) can run before `f` returns.
            let (k, v) = unsafe {
                (
                    borrow(h.key_ptr, h.key_length),
                    borrow(h.value_ptr, h.value_length),
                )
            };
            match (as_str(k), as_str(v)) {
                (Some(k), Some(v)) => view.push(k, v),
                // Bytes that are not UTF-8 (rare): an owned copy with U+FFFD for them.
                _ => {
                    let block = self.headers(kind);
                    let view = block.view();
                    return f(&view);
                }
            }
        }
        f(&view)
    }

    fn set_header(&mut self, kind: HeaderKind, name: &str, value: &str) {
        // SAFETY: live `fe`; key and value buffers point at borrowed strs that Envoy copies.
        unsafe {
            envoy_dynamic_module_callback_http_set_header(
                self.fe,
                header_kind(kind),
                ModuleBuffer::of(name),
                ModuleBuffer::of(value),
            );
        }
    }

    fn add_header(&mut self, kind: HeaderKind, name: &str, value: &str) {
        // SAFETY: as for set_header.
        unsafe {
            envoy_dynamic_module_callback_http_add_header(
                self.fe,
                header_kind(kind),
                ModuleBuffer::of(name),
                ModuleBuffer::of(value),
            );
        }
    }

    fn remove_header(&mut self, kind: HeaderKind, name: &str) {
        // SAFETY: live `fe`; a NULL value buffer is the ABI's documented "remove" (there is
        // no remove callback in 1.40; verified by running).
        unsafe {
            envoy_dynamic_module_callback_http_set_header(
                self.fe,
                header_kind(kind),
                ModuleBuffer::of(name),
                ModuleBuffer::NULL,
            );
        }
    }

    fn send_local_reply(
        &mut self,
        status: u16,
        headers: &[(String, String)],
        body: &str,
        details: &str,
    ) {
        let mut raw: Vec<HttpHeader> = headers
            .iter()
            .map(|(k, v)| HttpHeader {
                key_ptr: k.as_ptr().cast(),
                key_length: k.len(),
                value_ptr: v.as_ptr().cast(),
                value_length: v.len(),
            })
            .collect();
        // SAFETY: live `fe`; `raw` and the strings it points into, `body` and `details` all
        // outlive the call, and Envoy copies them before returning.
        unsafe {
            envoy_dynamic_module_callback_http_send_response(
                self.fe,
                u32::from(status),
                raw.as_mut_ptr(),
                raw.len(),
                ModuleBuffer::of(body),
                ModuleBuffer::of(details),
            );
        }
    }

    fn set_metadata_batch(&mut self, ns: &str, entries: &[(&str, &str)]) {
        let mut pairs = [EMPTY_HEADER; 8];
        for chunk in entries.chunks(pairs.len()) {
            for (slot, (k, v)) in pairs.iter_mut().zip(chunk) {
                *slot = HttpHeader {
                    key_ptr: k.as_ptr().cast(),
                    key_length: k.len(),
                    value_ptr: v.as_ptr().cast(),
                    value_length: v.len(),
                };
            }
            // SAFETY: live `fe`; `pairs[..chunk.len()]` are key/value pairs (the ABI's
            // module_key_value_pair has the module_http_header layout) pointing at strs that
            // outlive the call; Envoy copies them.
            unsafe {
                envoy_dynamic_module_callback_http_set_dynamic_metadata_string_batch(
                    self.fe,
                    ModuleBuffer::of(ns),
                    pairs.as_ptr(),
                    chunk.len(),
                );
            }
        }
    }

    fn set_metadata(&mut self, ns: &str, key: &str, value: &str) {
        // SAFETY: live `fe`; the three buffers borrow strs that outlive the call.
        unsafe {
            envoy_dynamic_module_callback_http_set_dynamic_metadata_string(
                self.fe,
                ModuleBuffer::of(ns),
                ModuleBuffer::of(key),
                ModuleBuffer::of(value),
            );
        }
    }

    fn attribute(&self, attr: Attribute) -> Option<String> {
        let id = match attr {
            Attribute::SourceAddress => ATTR_SOURCE_ADDRESS,
            Attribute::DestinationAddress => ATTR_DESTINATION_ADDRESS,
            Attribute::PeerUriSan => ATTR_URI_SAN_PEER_CERTIFICATE,
            Attribute::RequestedServerName => ATTR_REQUESTED_SERVER_NAME,
        };
        let mut buf = EMPTY;
        // SAFETY: live `fe`; `buf` is valid for writes; the id is a valid enum position.
        let ok = unsafe {
            envoy_dynamic_module_callback_http_filter_get_attribute_string(self.fe, id, &mut buf)
        };
        ok.then(|| copy(buf))
    }

    fn filter_state(&self, key: &str) -> Option<String> {
        let mut buf = EMPTY;
        // SAFETY: live `fe`; the key borrows `key`; `buf` is valid for writes.
        let ok = unsafe {
            envoy_dynamic_module_callback_http_get_filter_state_bytes(
                self.fe,
                ModuleBuffer::of(key),
                &mut buf,
            )
        };
        ok.then(|| copy(buf))
    }

    fn clear_route_cache(&mut self) {
        // SAFETY: live `fe`.
        unsafe { envoy_dynamic_module_callback_http_clear_route_cache(self.fe) }
    }

    fn append_received_request_body(&self, out: &mut Vec<u8>) {
        // SAFETY: live `fe` inside its on_request_body hook.
        let n = unsafe {
            envoy_dynamic_module_callback_http_get_body_chunks_size(self.fe, RECEIVED_REQUEST_BODY)
        };
        if n == 0 {
            return;
        }
        let mut chunks = vec![EMPTY; n];
        // SAFETY: `chunks` has room for exactly the `n` buffers Envoy said it would write.
        let ok = unsafe {
            envoy_dynamic_module_callback_http_get_body_chunks(
                self.fe,
                RECEIVED_REQUEST_BODY,
                chunks.as_mut_ptr(),
            )
        };
        if !ok {
            return;
        }
        for c in &chunks {
            // SAFETY: Envoy wrote these (ptr, length) pairs for body memory it keeps valid
            // until the end of the current hook; they are copied right here.
            out.extend_from_slice(unsafe { borrow(c.ptr, c.length) });
        }
    }

    fn refresh_route_cluster(&mut self) {
        // SAFETY: live `fe`.
        unsafe { envoy_dynamic_module_callback_http_clear_route_cluster_cache(self.fe) }
    }

    fn increment_counter(&mut self, id: usize, labels: &[&str], by: u64) {
        let mut values: Vec<ModuleBuffer> = labels.iter().map(|l| ModuleBuffer::of(l)).collect();
        // SAFETY: live `fe`; `id` came from define_counter with this many labels; `values`
        // and the strs it points into outlive the call.
        let r = unsafe {
            envoy_dynamic_module_callback_http_filter_increment_counter(
                self.fe,
                id,
                values.as_mut_ptr(),
                values.len(),
                by,
            )
        };
        if r != METRICS_SUCCESS {
            log(
                LogLevel::Debug,
                &format!("waypoint: increment_counter returned {r}"),
            );
        }
    }

    fn scheduler(&mut self) -> Option<Box<dyn Wake>> {
        // SAFETY: live `fe`; the returned scheduler is ours until scheduler_delete.
        let s = unsafe { envoy_dynamic_module_callback_http_filter_scheduler_new(self.fe) };
        if s.is_null() {
            return None;
        }
        Some(Box::new(EnvoyScheduler(s)))
    }

    fn callout(
        &mut self,
        cluster: &str,
        headers: &[(String, String)],
        body: &[u8],
        timeout_ms: u64,
    ) -> bool {
        let mut raw: Vec<HttpHeader> = headers
            .iter()
            .map(|(k, v)| HttpHeader {
                key_ptr: k.as_ptr().cast(),
                key_length: k.len(),
                value_ptr: v.as_ptr().cast(),
                value_length: v.len(),
            })
            .collect();
        let mut id: u64 = 0;
        let body = if body.is_empty() {
            ModuleBuffer::NULL
        } else {
            ModuleBuffer {
                ptr: body.as_ptr().cast(),
                length: body.len(),
            }
        };
        // SAFETY: live `fe`; `id` is valid for writes; `raw`, the strings it points into,
        // `cluster` and `body` outlive the call, and Envoy copies them into its own request
        // message.
        let r = unsafe {
            envoy_dynamic_module_callback_http_filter_http_callout(
                self.fe,
                &mut id,
                ModuleBuffer::of(cluster),
                raw.as_mut_ptr(),
                raw.len(),
                body,
                timeout_ms,
            )
        };
        if r != CALLOUT_SUCCESS {
            log(
                LogLevel::Debug,
                &format!("waypoint: callout to {cluster} refused ({r})"),
            );
        }
        r == CALLOUT_SUCCESS
    }

    fn continue_decoding(&mut self) {
        // SAFETY: live `fe`, called on its worker thread from on_scheduled.
        unsafe { envoy_dynamic_module_callback_http_filter_continue_decoding(self.fe) }
    }

    fn log(&self, level: LogLevel, msg: &str) {
        log(level, msg);
    }
}

/// An Envoy HTTP-filter scheduler, owned by us until `wake` deletes it.
struct EnvoyScheduler(*mut c_void);

// SAFETY: Envoy documents scheduler_commit as safe to call from any thread (a no-op once the
// filter is gone) and scheduler_delete frees the object wherever it is called; the pointer is
// used by exactly one owner (the timer thread) after it leaves the worker.
unsafe impl Send for EnvoyScheduler {}

impl Wake for EnvoyScheduler {
    fn wake(self: Box<Self>, event_id: u64) {
        // SAFETY: the scheduler pointer is live (deleted only here or in cancel, once, since
        // `self` is consumed); commit is thread-safe per the ABI.
        unsafe {
            envoy_dynamic_module_callback_http_filter_scheduler_commit(self.0, event_id);
            envoy_dynamic_module_callback_http_filter_scheduler_delete(self.0);
        }
    }

    fn cancel(self: Box<Self>) {
        // SAFETY: as in wake; deleting without a commit only frees the scheduler.
        unsafe { envoy_dynamic_module_callback_http_filter_scheduler_delete(self.0) }
    }
}

/// Envoy's main-thread scheduler of one filter config, shared by the config's flush closure and
/// the timer thread's pending wake-up; deleted when the last holder lets go.
struct ConfigScheduler(*mut c_void);

// SAFETY: Envoy's config scheduler may be committed from any thread (it posts to the main
// dispatcher and holds only a weak reference to the config, so a commit after the config is
// gone does nothing) and deleted from any thread; `Drop` deletes it exactly once.
unsafe impl Send for ConfigScheduler {}
// SAFETY: as above; commit takes no lock of ours and Envoy's post is thread-safe.
unsafe impl Sync for ConfigScheduler {}

impl Drop for ConfigScheduler {
    fn drop(&mut self) {
        // SAFETY: the pointer came from config_scheduler_new and is deleted only here, once.
        unsafe { envoy_dynamic_module_callback_http_filter_config_scheduler_delete(self.0) }
    }
}

/// The timer's wake-up for a counter flush: commits the config scheduler.
struct FlushWake(Arc<ConfigScheduler>);

impl Wake for FlushWake {
    fn wake(self: Box<Self>, event_id: u64) {
        // SAFETY: the scheduler is alive while this Arc holds it; commit is thread-safe.
        unsafe {
            envoy_dynamic_module_callback_http_filter_config_scheduler_commit(self.0 .0, event_id)
        }
    }
}

/// Event id of the counter flush on the config's main-thread scheduler.
const FLUSH_EVENT: u64 = 1;

/// Make `cfg.counts` schedule its flushes through a main-thread scheduler of `config_envoy`.
fn install_counter_flush(config_envoy: *mut c_void, cfg: &FilterConfig) {
    // SAFETY: `config_envoy` is Envoy's live config pointer in the running config_new hook.
    let raw =
        unsafe { envoy_dynamic_module_callback_http_filter_config_scheduler_new(config_envoy) };
    if raw.is_null() {
        log(
            LogLevel::Warn,
            "waypoint: no config scheduler; requests are counted one by one",
        );
        return;
    }
    let sched = Arc::new(ConfigScheduler(raw));
    cfg.counts.set_arm(Box::new(move || {
        crate::timer::schedule(
            crate::counts::FLUSH_DELAY,
            FLUSH_EVENT,
            Box::new(FlushWake(sched.clone())),
        )
    }));
}

/// Filter configs alive (created by config_new, not yet destroyed).
static LIVE_CONFIGS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

fn status_code(s: HeadersStatus) -> u32 {
    s as u32
}

/// Borrow an Envoy buffer as bytes for the duration of a hook.
///
/// # Safety
/// `buf` must be a (ptr, length) pair Envoy passed to the current hook.
unsafe fn bytes<'a>(buf: EnvoyBuffer) -> &'a [u8] {
    if buf.ptr.is_null() || buf.length == 0 {
        return &[];
    }
    // SAFETY: guaranteed by the caller.
    unsafe { std::slice::from_raw_parts(buf.ptr.cast::<u8>(), buf.length) }
}

/// Turn a module pointer back into our filter. `fm` is what on_http_filter_new returned.
///
/// # Safety
/// `fm` must be a live pointer from `on_http_filter_new`, used only on its worker thread.
unsafe fn filter<'a>(fm: *const c_void) -> Option<&'a mut HttpFilter> {
    // SAFETY: guaranteed by the caller; Envoy calls one stream's hooks serially.
    unsafe { fm.cast_mut().cast::<HttpFilter>().as_mut() }
}

// ---------------------------------------------------------------------------------------
// Exported hooks. Each one catches panics; nothing unwinds into Envoy.
// ---------------------------------------------------------------------------------------

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_program_init() -> *const c_char {
    ABI_VERSION.as_ptr().cast()
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_config_new(
    config_envoy: *mut c_void,
    name: EnvoyBuffer,
    config: EnvoyBuffer,
) -> *const c_void {
    let result = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: both buffers are Envoy's arguments to this hook.
        let (name, raw) = unsafe { (bytes(name), bytes(config)) };
        let name = String::from_utf8_lossy(name).into_owned();
        match FilterConfig::from_bytes(&name, raw) {
            Ok(mut cfg) => {
                for w in &cfg.warnings {
                    log(
                        LogLevel::Warn,
                        &format!("waypoint filter {name}: warning: {w}"),
                    );
                }
                cfg.metrics.requests = define_counter(
                    config_envoy,
                    "waypoint_requests_total",
                    &["decision", "route"],
                );
                if cfg.metrics.requests.is_some() {
                    install_counter_flush(config_envoy, &cfg);
                }
                log(
                    LogLevel::Info,
                    &format!(
                        "waypoint filter {name}: config loaded for waypoint {} ({} resources, {} services bound)",
                        cfg.engine.waypoint_name(),
                        cfg.engine.resource_count(),
                        cfg.engine.bound_services()
                    ),
                );
                Box::into_raw(Box::new(Arc::new(cfg)))
                    .cast_const()
                    .cast::<c_void>()
            }
            Err(e) => {
                log(
                    LogLevel::Error,
                    &format!("waypoint filter {name}: rejected: {e}"),
                );
                ptr::null()
            }
        }
    }));
    match result {
        Ok(p) => p,
        Err(p) => {
            log(
                LogLevel::Error,
                &format!(
                    "waypoint: panic while loading config: {}",
                    panic_message(&p)
                ),
            );
            ptr::null()
        }
    }
}

fn define_counter(config_envoy: *mut c_void, name: &str, labels: &[&str]) -> Option<usize> {
    let mut names: Vec<ModuleBuffer> = labels.iter().map(|l| ModuleBuffer::of(l)).collect();
    let mut id: usize = 0;
    // SAFETY: `config_envoy` is Envoy's config pointer for the running config_new hook;
    // `names` and `id` are valid for the call.
    let r = unsafe {
        envoy_dynamic_module_callback_http_filter_config_define_counter(
            config_envoy,
            ModuleBuffer::of(name),
            names.as_mut_ptr(),
            names.len(),
            &mut id,
        )
    };
    if r == METRICS_SUCCESS {
        Some(id)
    } else {
        log(
            LogLevel::Warn,
            &format!("waypoint: define_counter({name}) returned {r}"),
        );
        None
    }
}

/// Main thread, after a `FLUSH_EVENT` commit: move the module's request counts into Envoy's
/// `waypoint_requests_total{decision, route}`.
///
/// # Safety
/// Called by Envoy only, on the main thread, with the live config pointers.
#[no_mangle]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_config_scheduled(
    config_envoy: *mut c_void,
    config: *const c_void,
    event_id: u64,
) {
    if event_id != FLUSH_EVENT {
        return;
    }
    let r = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: `config` is our live Box<Arc<FilterConfig>>: Envoy runs this hook only
        // while the config exists (its scheduler holds a weak reference to it).
        let Some(cfg) = (unsafe { config.cast::<Arc<FilterConfig>>().as_ref() }) else {
            return;
        };
        let Some(id) = cfg.metrics.requests else {
            return;
        };
        cfg.counts.drain(|decision, route, n| {
            let mut labels = [ModuleBuffer::of(decision), ModuleBuffer::of(route)];
            // SAFETY: live config pointer of this hook; `id` was defined with two labels;
            // `labels` and the strs it points at outlive the call.
            let r = unsafe {
                envoy_dynamic_module_callback_http_filter_config_increment_counter(
                    config_envoy,
                    id,
                    labels.as_mut_ptr(),
                    labels.len(),
                    n,
                )
            };
            if r != METRICS_SUCCESS {
                log(
                    LogLevel::Debug,
                    &format!("waypoint: config increment_counter returned {r}"),
                );
            }
        });
    }));
    if r.is_err() {
        log(LogLevel::Error, "waypoint: panic while flushing counters");
    }
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_config_destroy(config: *const c_void) {
    if config.is_null() {
        return;
    }
    let r = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: `config` is the Box<Arc<FilterConfig>> we leaked in config_new; Envoy calls
        // destroy exactly once, after which it never passes the pointer again.
        drop(unsafe { Box::from_raw(config.cast_mut().cast::<Arc<FilterConfig>>()) });
        if LIVE_CONFIGS.fetch_sub(1, std::sync::atomic::Ordering::SeqCst) == 1 {
            // The last config is gone, so are all its streams: quiesce the timer thread.
            let n = crate::timer::cancel_all();
            if n > 0 {
                log(
                    LogLevel::Debug,
                    &format!("waypoint: cancelled {n} pending fault delays"),
                );
            }
        }
    }));
    if r.is_err() {
        log(LogLevel::Error, "waypoint: panic while dropping config");
    }
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_new(
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
    // SAFETY: `fm` is our filter, on its own worker thread.
    let Some(f) = (unsafe { filter(fm) }) else {
        return status_code(HeadersStatus::Continue);
    };
    let mut s = EnvoyStream { fe };
    // on_request_headers catches its own panics; this outer guard covers the rest.
    match catch_unwind(AssertUnwindSafe(|| {
        f.on_request_headers(&mut s, end_of_stream)
    })) {
        Ok(st) => status_code(st),
        Err(p) => {
            let why = panic_message(&p);
            let st = catch_unwind(AssertUnwindSafe(|| {
                f.fail_closed(&mut s, "request_headers", &why)
            }));
            status_code(st.unwrap_or(HeadersStatus::StopIteration))
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
    // SAFETY: `fm` is our filter, on its own worker thread.
    if let Some(f) = unsafe { filter(fm) } {
        let mut s = EnvoyStream { fe };
        f.on_request_body(&mut s, end_of_stream);
    }
    // Continue: the body streams on; only a copy is kept for a mirror.
    0
}

/// # Safety
/// Called by Envoy only: `fe`/`fm` are the live pointers of one stream on its worker thread.
#[no_mangle]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_request_trailers(
    fe: *mut c_void,
    fm: *const c_void,
) -> u32 {
    // SAFETY: `fm` is our filter, on its own worker thread.
    if let Some(f) = unsafe { filter(fm) } {
        let mut s = EnvoyStream { fe };
        f.on_request_trailers(&mut s);
    }
    0
}

/// # Safety
/// Called by Envoy only: `fe`/`fm` are the live pointers of one stream on its worker thread.
#[no_mangle]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_response_headers(
    fe: *mut c_void,
    fm: *const c_void,
    _end_of_stream: bool,
) -> u32 {
    // SAFETY: `fm` is our filter, on its own worker thread.
    let Some(f) = (unsafe { filter(fm) }) else {
        return status_code(HeadersStatus::Continue);
    };
    let mut s = EnvoyStream { fe };
    match catch_unwind(AssertUnwindSafe(|| f.on_response_headers(&mut s))) {
        Ok(st) => status_code(st),
        Err(_) => status_code(HeadersStatus::Continue),
    }
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_response_body(
    _fe: *mut c_void,
    _fm: *const c_void,
    _end_of_stream: bool,
) -> u32 {
    0
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_response_trailers(
    _fe: *mut c_void,
    _fm: *const c_void,
) -> u32 {
    0
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_stream_complete(
    _fe: *mut c_void,
    _fm: *const c_void,
) {
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_destroy(fm: *const c_void) {
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

/// # Safety
/// Called by Envoy only: `fe`/`fm` are the live pointers of one stream on its worker thread.
#[no_mangle]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_scheduled(
    fe: *mut c_void,
    fm: *const c_void,
    event_id: u64,
) {
    // SAFETY: `fm` is our filter, on its own worker thread.
    let Some(f) = (unsafe { filter(fm) }) else {
        return;
    };
    let mut s = EnvoyStream { fe };
    if catch_unwind(AssertUnwindSafe(|| f.on_scheduled(&mut s, event_id))).is_err() {
        log(LogLevel::Error, "waypoint: panic in on_scheduled");
    }
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_http_callout_done(
    _fe: *mut c_void,
    _fm: *const c_void,
    _callout_id: u64,
    _result: u32,
    _headers: *mut HttpHeader,
    _headers_size: usize,
    _body_chunks: *mut EnvoyBuffer,
    _body_chunks_size: usize,
) {
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_http_stream_headers(
    _fe: *mut c_void,
    _fm: *const c_void,
    _stream_id: u64,
    _headers: *mut HttpHeader,
    _headers_size: usize,
    _end_stream: bool,
) {
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_http_stream_data(
    _fe: *mut c_void,
    _fm: *const c_void,
    _stream_id: u64,
    _data: *const EnvoyBuffer,
    _data_count: usize,
    _end_stream: bool,
) {
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_http_stream_trailers(
    _fe: *mut c_void,
    _fm: *const c_void,
    _stream_id: u64,
    _trailers: *mut HttpHeader,
    _trailers_size: usize,
) {
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_http_stream_complete(
    _fe: *mut c_void,
    _fm: *const c_void,
    _stream_id: u64,
) {
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_http_stream_reset(
    _fe: *mut c_void,
    _fm: *const c_void,
    _stream_id: u64,
    _reason: u32,
) {
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_downstream_above_write_buffer_high_watermark(
    _fe: *mut c_void,
    _fm: *const c_void,
) {
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_downstream_below_write_buffer_low_watermark(
    _fe: *mut c_void,
    _fm: *const c_void,
) {
}

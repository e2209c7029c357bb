//! `EnvoyStream`: the `StreamHandle` the filter logic uses, over Envoy's callbacks for one
//! stream during one hook; and `log` through Envoy's logger.

use std::ffi::c_void;
use std::ptr;

use super::bytes::{as_str, text};
use super::callbacks::*;
use super::scheduler::StreamScheduler;
use super::types::{
    AttributeId, BodyType, EnvoyBuffer, HttpHeader, ModuleBuffer, CALLOUT_SUCCESS, METRICS_SUCCESS,
};
use crate::header_block::{HeaderBlock, HeaderView};
use crate::stream::{Attribute, HeaderKind, LogLevel, StreamHandle, Wake};

/// Log through Envoy's `dynamic_modules` logger.
pub fn log(level: LogLevel, msg: &str) {
    // SAFETY: the callback copies the message before returning; the buffer points at `msg`,
    // which outlives the call. Envoy exports this symbol (checked by the symbols test).
    unsafe { envoy_dynamic_module_callback_log(level.into(), ModuleBuffer::of(msg)) }
}

/// The stream handle over the C ABI for one hook invocation.
pub struct EnvoyStream {
    /// Envoy's filter pointer (`filter_envoy_ptr`) of the running hook.
    fe: *mut c_void,
}

/// On the stack for ordinary requests (Envoy's default limit is 100 headers).
type RawHeaders = smallvec::SmallVec<[HttpHeader; 32]>;

impl EnvoyStream {
    /// The handle for one hook call.
    ///
    /// # Safety
    /// `fe` must be the filter pointer Envoy passed to the running hook, and the handle must
    /// not outlive that hook: every callback below is made with it.
    pub unsafe fn new(fe: *mut c_void) -> Self {
        EnvoyStream { fe }
    }

    /// Envoy's (ptr, length) pairs of every header of one map into `raw` (left empty when
    /// there is none). Filled in place: the array is 1 KiB, too much to move by value.
    fn raw_headers(&self, kind: HeaderKind, raw: &mut RawHeaders) {
        // SAFETY: `fe` is the live filter pointer of the current hook (`new`'s contract).
        let n =
            unsafe { envoy_dynamic_module_callback_http_get_headers_size(self.fe, kind.into()) };
        if n == 0 {
            return;
        }
        raw.resize(n, HttpHeader::EMPTY);
        // SAFETY: live `fe`; `raw` has room for exactly the `n` entries Envoy said it would
        // write.
        let ok = unsafe {
            envoy_dynamic_module_callback_http_get_headers(self.fe, kind.into(), raw.as_mut_ptr())
        };
        if !ok {
            raw.clear();
        }
    }

    /// The `index`th value of header `name` (and, when asked, how many values it has).
    fn header_at(
        &self,
        kind: HeaderKind,
        name: &str,
        index: usize,
        count: Option<&mut usize>,
    ) -> Option<String> {
        let mut buf = EnvoyBuffer::EMPTY;
        let count = count.map_or(ptr::null_mut(), ptr::from_mut);
        // SAFETY: live `fe`; `buf` and `count` (null or a live `usize`) are valid for writes;
        // the key buffer points at `name` for the call.
        let found = unsafe {
            envoy_dynamic_module_callback_http_get_header(
                self.fe,
                kind.into(),
                ModuleBuffer::of(name),
                &mut buf,
                index,
                count,
            )
        };
        // SAFETY: Envoy just wrote `buf` for header memory it keeps valid until the current
        // hook returns; it is copied right here.
        found.then(|| unsafe { buf.to_text() })
    }
}

/// Key/value pairs of ours lent to Envoy for one call.
fn raw_pairs(headers: &[(String, String)]) -> Vec<HttpHeader> {
    headers.iter().map(|(k, v)| HttpHeader::of(k, v)).collect()
}

impl StreamHandle for EnvoyStream {
    fn header_values(&self, kind: HeaderKind, name: &str) -> Vec<String> {
        let mut count: usize = 0;
        let Some(first) = self.header_at(kind, name, 0, Some(&mut count)) else {
            return Vec::new();
        };
        let mut out = vec![first];
        // Indexes below the count Envoy reported.
        out.extend((1..count).filter_map(|i| self.header_at(kind, name, i, None)));
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
            let (k, v) = unsafe { h.bytes() };
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
            let (k, v) = unsafe { h.bytes() };
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
                kind.into(),
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
                kind.into(),
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
                kind.into(),
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
        let mut raw = raw_pairs(headers);
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
        let mut pairs = [HttpHeader::EMPTY; 8];
        for chunk in entries.chunks(pairs.len()) {
            for (slot, (k, v)) in pairs.iter_mut().zip(chunk) {
                *slot = HttpHeader::of(k, v);
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
        let mut buf = EnvoyBuffer::EMPTY;
        // SAFETY: live `fe`; `buf` is valid for writes; the id is a declared enum position.
        let ok = unsafe {
            envoy_dynamic_module_callback_http_filter_get_attribute_string(
                self.fe,
                AttributeId::from(attr),
                &mut buf,
            )
        };
        // SAFETY: Envoy wrote `buf` for memory valid during the hook; copied right here.
        ok.then(|| unsafe { buf.to_text() })
    }

    fn attribute_int(&self, attr: Attribute) -> Option<u64> {
        let mut v: u64 = 0;
        // SAFETY: live `fe`; `v` is valid for writes; the id is a declared enum position.
        let ok = unsafe {
            envoy_dynamic_module_callback_http_filter_get_attribute_int(
                self.fe,
                AttributeId::from(attr),
                &mut v,
            )
        };
        ok.then_some(v)
    }

    fn filter_state(&self, key: &str) -> Option<String> {
        let mut buf = EnvoyBuffer::EMPTY;
        // SAFETY: live `fe`; the key borrows `key`; `buf` is valid for writes.
        let ok = unsafe {
            envoy_dynamic_module_callback_http_get_filter_state_bytes(
                self.fe,
                ModuleBuffer::of(key),
                &mut buf,
            )
        };
        // SAFETY: Envoy wrote `buf` for memory valid during the hook; copied right here.
        ok.then(|| unsafe { buf.to_text() })
    }

    fn clear_route_cache(&mut self) {
        // SAFETY: live `fe`.
        unsafe { envoy_dynamic_module_callback_http_clear_route_cache(self.fe) }
    }

    fn refresh_route_cluster(&mut self) {
        // SAFETY: live `fe`.
        unsafe { envoy_dynamic_module_callback_http_clear_route_cluster_cache(self.fe) }
    }

    fn append_received_request_body(&self, out: &mut Vec<u8>) {
        let kind = BodyType::ReceivedRequestBody;
        // SAFETY: live `fe` inside its on_request_body hook.
        let n = unsafe { envoy_dynamic_module_callback_http_get_body_chunks_size(self.fe, kind) };
        if n == 0 {
            return;
        }
        let mut chunks = vec![EnvoyBuffer::EMPTY; n];
        // SAFETY: live `fe`; `chunks` has room for exactly the `n` buffers Envoy said it
        // would write.
        let ok = unsafe {
            envoy_dynamic_module_callback_http_get_body_chunks(self.fe, kind, chunks.as_mut_ptr())
        };
        if !ok {
            return;
        }
        for c in &chunks {
            // SAFETY: Envoy wrote these (ptr, length) pairs for body memory it keeps valid
            // until the end of the current hook; they are copied right here.
            out.extend_from_slice(unsafe { c.bytes() });
        }
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
        Some(Box::new(StreamScheduler(s)))
    }

    fn callout(
        &mut self,
        cluster: &str,
        headers: &[(String, String)],
        body: &[u8],
        timeout_ms: u64,
    ) -> bool {
        let mut raw = raw_pairs(headers);
        let mut id: u64 = 0;
        let body = if body.is_empty() {
            ModuleBuffer::NULL
        } else {
            ModuleBuffer::of_bytes(body)
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

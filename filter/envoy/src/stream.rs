//! The stream handle: everything the filter logic asks of Envoy for one HTTP stream, as a
//! safe trait. `abi::EnvoyStream` implements it over the C ABI; `fake::FakeStream` in tests.

use crate::header_block::{HeaderBlock, HeaderView};
use std::time::Duration;

/// Which header map a call works on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderKind {
    Request,
    Response,
}

/// Connection / request attributes we read (positions in Envoy's `attribute_id` enum are
/// mapped in `abi.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attribute {
    /// `source.address`; includes the port in Envoy 1.40 (`127.0.0.1:38278`).
    SourceAddress,
    /// `destination.address` (`ip:port`), the listener's local address (or the address an
    /// `original_dst` listener filter restored).
    DestinationAddress,
    /// URI SAN of the peer certificate (the SPIFFE id on an mTLS listener).
    PeerUriSan,
    /// SNI; only set when the listener has `tls_inspector`.
    RequestedServerName,
    /// `response.code` (int).
    ResponseCode,
    /// `response.flags` (int): Envoy's core response flags as a bit set (`1 << flag`).
    ResponseFlags,
    /// `request.total_size` (int): headers and body.
    RequestTotalSize,
    /// `response.total_size` (int): headers and body.
    ResponseTotalSize,
    /// `upstream.address`: the endpoint the router sent the request to.
    UpstreamAddress,
}

/// Log level, same order as Envoy's `log_level` enum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
}

/// A wake-up that the shared timer thread fires once (commit + delete of an Envoy scheduler).
pub trait Wake: Send {
    /// Ask Envoy to call `on_scheduled(event_id)` on the stream's worker thread.
    fn wake(self: Box<Self>, event_id: u64);
    /// Release without waking (nothing is left to wake: every filter config is gone).
    fn cancel(self: Box<Self>) {}
}

/// What the filter logic may do to one HTTP stream.
pub trait StreamHandle {
    /// All values of a header, in order (empty when absent). Names are lower case.
    fn header_values(&self, kind: HeaderKind, name: &str) -> Vec<String>;
    /// First value of a header.
    fn header(&self, kind: HeaderKind, name: &str) -> Option<String> {
        self.header_values(kind, name).into_iter().next()
    }
    /// Every header, pseudo-headers included, in order (an owned copy).
    fn headers(&self, kind: HeaderKind) -> HeaderBlock;
    /// Run `f` over every header without copying them: the view borrows the host's header
    /// memory, which stays unchanged while `f` runs (every header change takes `&mut self`,
    /// which the borrow of `self` keeps out until `f` returns).
    fn with_headers<R>(&self, kind: HeaderKind, f: impl FnOnce(&HeaderView<'_>) -> R) -> R {
        let block = self.headers(kind);
        let view = block.view();
        f(&view)
    }
    /// Replace all values of `name` with `value`.
    fn set_header(&mut self, kind: HeaderKind, name: &str, value: &str);
    /// Append a value to `name`.
    fn add_header(&mut self, kind: HeaderKind, name: &str, value: &str);
    /// Remove every value of `name`.
    fn remove_header(&mut self, kind: HeaderKind, name: &str);
    /// Send a local reply; the stream stops iterating afterwards.
    fn send_local_reply(
        &mut self,
        status: u16,
        headers: &[(String, String)],
        body: &str,
        details: &str,
    );
    /// Set a string under the dynamic-metadata namespace `ns`.
    fn set_metadata(&mut self, ns: &str, key: &str, value: &str);
    /// Set several strings under `ns` in one call (one metadata merge in Envoy).
    fn set_metadata_batch(&mut self, ns: &str, entries: &[(&str, &str)]);
    /// A connection or request attribute as a string.
    fn attribute(&self, attr: Attribute) -> Option<String>;
    /// An integer attribute (`response.code`, sizes).
    fn attribute_int(&self, attr: Attribute) -> Option<u64>;
    /// A filter-state object (as bytes / its string form).
    fn filter_state(&self, key: &str) -> Option<String>;
    /// Re-run route matching after header changes.
    fn clear_route_cache(&mut self);
    /// Make Envoy recompute the cluster of the route it already matched (no re-match).
    fn refresh_route_cluster(&mut self);
    /// Add `by` to counter `id` with the given label values.
    fn increment_counter(&mut self, id: usize, labels: &[&str], by: u64);
    /// A wake-up handle for this stream (None if Envoy could not make one).
    fn scheduler(&mut self) -> Option<Box<dyn Wake>>;
    /// Fire-and-forget HTTP request to `cluster` (pseudo-headers included; `body` may be
    /// empty). Returns false when Envoy refused to start it.
    fn callout(
        &mut self,
        cluster: &str,
        headers: &[(String, String)],
        body: &[u8],
        timeout_ms: u64,
    ) -> bool;
    /// Append the request body data of the current `on_request_body` call to `out`.
    fn append_received_request_body(&self, out: &mut Vec<u8>);
    /// Resume a request stopped with StopAllIterationAndBuffer.
    fn continue_decoding(&mut self);
    /// Log through Envoy's logger.
    fn log(&self, level: LogLevel, msg: &str);
}

/// Status returned from request-headers processing (values of Envoy's enum).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeadersStatus {
    Continue = 0,
    StopIteration = 1,
    StopAllIterationAndBuffer = 3,
}

/// A delay the filter wants before continuing (fault injection).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PendingDelay {
    pub delay: Duration,
    pub event_id: u64,
}

//! A fake `StreamHandle` that records every effect, for unit tests of the filter logic
//! without Envoy.

use crate::header_block::HeaderBlock;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use crate::stream::{Attribute, HeaderKind, LogLevel, StreamHandle, Wake};

/// A local reply the filter sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentReply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
    pub details: String,
}

/// Recorded stream state and effects.
/// One callout: (cluster, headers, body).
pub type Callout = (String, Vec<(String, String)>, Vec<u8>);

#[derive(Debug, Default)]
pub struct FakeStream {
    pub request: Vec<(String, String)>,
    pub response: Vec<(String, String)>,
    pub attributes: BTreeMap<&'static str, String>,
    pub filter_state: BTreeMap<String, String>,
    pub reply: Option<SentReply>,
    pub metadata: BTreeMap<(String, String), String>,
    /// Number of batched metadata writes (the filter writes once per decision).
    pub metadata_calls: usize,
    pub counters: Vec<(usize, Vec<String>, u64)>,
    pub route_cache_cleared: usize,
    /// Calls of `refresh_route_cluster`.
    pub route_cluster_refreshed: usize,
    pub continued: usize,
    /// Callouts started.
    pub callouts: Vec<Callout>,
    /// Request body data of the current body call.
    pub received_body: Vec<u8>,
    pub logs: std::cell::RefCell<Vec<(LogLevel, String)>>,
    /// Event ids fired by wake-ups (shared with the timer thread).
    pub woken: Arc<Mutex<Vec<u64>>>,
}

impl FakeStream {
    /// A request with pseudo-headers and extra headers.
    pub fn request(method: &str, authority: &str, path: &str, extra: &[(&str, &str)]) -> Self {
        let mut request = vec![
            (":method".to_string(), method.to_string()),
            (":scheme".to_string(), "http".to_string()),
            (":authority".to_string(), authority.to_string()),
            (":path".to_string(), path.to_string()),
        ];
        request.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        FakeStream {
            request,
            ..Default::default()
        }
    }

    fn map(&self, kind: HeaderKind) -> &Vec<(String, String)> {
        match kind {
            HeaderKind::Request => &self.request,
            HeaderKind::Response => &self.response,
        }
    }

    fn map_mut(&mut self, kind: HeaderKind) -> &mut Vec<(String, String)> {
        match kind {
            HeaderKind::Request => &mut self.request,
            HeaderKind::Response => &mut self.response,
        }
    }

    /// Metadata value under the `waypoint` namespace.
    pub fn meta(&self, key: &str) -> Option<&str> {
        self.metadata
            .get(&("waypoint".to_string(), key.to_string()))
            .map(String::as_str)
    }
}

fn attr_key(a: Attribute) -> &'static str {
    match a {
        Attribute::SourceAddress => "source.address",
        Attribute::DestinationAddress => "destination.address",
        Attribute::PeerUriSan => "connection.uri_san_peer_certificate",
        Attribute::RequestedServerName => "connection.requested_server_name",
        Attribute::ResponseCode => "response.code",
        Attribute::ResponseFlags => "response.flags",
        Attribute::RequestTotalSize => "request.total_size",
        Attribute::ResponseTotalSize => "response.total_size",
        Attribute::UpstreamAddress => "upstream.address",
    }
}

impl FakeStream {
    pub fn with_attribute(mut self, a: Attribute, v: &str) -> Self {
        self.attributes.insert(attr_key(a), v.to_string());
        self
    }

    /// The peer's principal as each listener kind hands it over: the certificate's URI SAN
    /// (a listener terminating mTLS) and/or the filter state an HBONE listener sets.
    pub fn with_peer(mut self, san: Option<&str>, filter_state: Option<&str>) -> Self {
        if let Some(san) = san {
            self = self.with_attribute(Attribute::PeerUriSan, san);
        }
        if let Some(p) = filter_state {
            self.filter_state.insert(
                crate::config::DEFAULT_PRINCIPAL_KEY.to_string(),
                p.to_string(),
            );
        }
        self
    }
}

struct FakeWake(Arc<Mutex<Vec<u64>>>);

impl Wake for FakeWake {
    fn wake(self: Box<Self>, event_id: u64) {
        if let Ok(mut w) = self.0.lock() {
            w.push(event_id);
        }
    }
}

impl StreamHandle for FakeStream {
    fn header_values(&self, kind: HeaderKind, name: &str) -> Vec<String> {
        self.map(kind)
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
            .collect()
    }
    fn headers(&self, kind: HeaderKind) -> HeaderBlock {
        self.map(kind)
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect()
    }
    fn set_header(&mut self, kind: HeaderKind, name: &str, value: &str) {
        let m = self.map_mut(kind);
        match m.iter().position(|(k, _)| k.eq_ignore_ascii_case(name)) {
            Some(i) => {
                m[i].1 = value.to_string();
                let mut j = m.len();
                while j > i + 1 {
                    j -= 1;
                    if m[j].0.eq_ignore_ascii_case(name) {
                        m.remove(j);
                    }
                }
            }
            None => m.push((name.to_string(), value.to_string())),
        }
    }
    fn add_header(&mut self, kind: HeaderKind, name: &str, value: &str) {
        self.map_mut(kind)
            .push((name.to_string(), value.to_string()));
    }
    fn remove_header(&mut self, kind: HeaderKind, name: &str) {
        self.map_mut(kind)
            .retain(|(k, _)| !k.eq_ignore_ascii_case(name));
    }
    fn send_local_reply(
        &mut self,
        status: u16,
        headers: &[(String, String)],
        body: &str,
        details: &str,
    ) {
        self.reply = Some(SentReply {
            status,
            headers: headers.to_vec(),
            body: body.to_string(),
            details: details.to_string(),
        });
    }
    fn set_metadata(&mut self, ns: &str, key: &str, value: &str) {
        self.metadata
            .insert((ns.to_string(), key.to_string()), value.to_string());
    }
    fn set_metadata_batch(&mut self, ns: &str, entries: &[(&str, &str)]) {
        self.metadata_calls += 1;
        for (k, v) in entries {
            self.metadata
                .insert((ns.to_string(), k.to_string()), v.to_string());
        }
    }
    fn attribute(&self, attr: Attribute) -> Option<String> {
        self.attributes.get(attr_key(attr)).cloned()
    }
    fn attribute_int(&self, attr: Attribute) -> Option<u64> {
        self.attributes.get(attr_key(attr))?.parse().ok()
    }
    fn filter_state(&self, key: &str) -> Option<String> {
        self.filter_state.get(key).cloned()
    }
    fn clear_route_cache(&mut self) {
        self.route_cache_cleared += 1;
    }
    fn append_received_request_body(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.received_body);
    }
    fn refresh_route_cluster(&mut self) {
        self.route_cluster_refreshed += 1;
    }
    fn increment_counter(&mut self, id: usize, labels: &[&str], by: u64) {
        self.counters
            .push((id, labels.iter().map(|l| l.to_string()).collect(), by));
    }
    fn scheduler(&mut self) -> Option<Box<dyn Wake>> {
        Some(Box::new(FakeWake(Arc::clone(&self.woken))))
    }
    fn callout(
        &mut self,
        cluster: &str,
        headers: &[(String, String)],
        body: &[u8],
        _timeout_ms: u64,
    ) -> bool {
        self.callouts
            .push((cluster.to_string(), headers.to_vec(), body.to_vec()));
        true
    }
    fn continue_decoding(&mut self) {
        self.continued += 1;
    }
    fn log(&self, level: LogLevel, msg: &str) {
        self.logs.borrow_mut().push((level, msg.to_string()));
    }
}

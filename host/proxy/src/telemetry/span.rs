//! The waypoint's server span for one request, Envoy-like: started when the request arrives
//! (trace context continued or begun, child context sent upstream), finished with the
//! response's facts and queued for the OTLP exporter when sampled.

use std::time::{SystemTime, UNIX_EPOCH};

use http::HeaderMap;
use waypoint_core::telemetry::{TagValue, TracingPolicy};

use super::exporter::{Destination, Exporter};
use super::otlp::{KeyValue, Span, Status, SPAN_KIND_SERVER, STATUS_CODE_ERROR};
use super::request_id::{with_rng, X_REQUEST_ID};
use super::trace_context::{self, SpanContext};

/// A span in progress.
#[derive(Debug)]
pub struct ActiveSpan {
    pub context: SpanContext,
    start_ns: u64,
    /// Attributes known at the start: request id, user agent, custom tags.
    early: Vec<KeyValue>,
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

fn header<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

fn clip(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

/// Start the span when tracing is on (the caller checks); rewrites the trace headers.
pub fn start(t: &TracingPolicy, headers: &mut HeaderMap) -> ActiveSpan {
    with_rng(|r| start_with(t, headers, r))
}

/// [`start`] with the random source given (tests).
pub fn start_with(
    t: &TracingPolicy,
    headers: &mut HeaderMap,
    rng: &mut dyn waypoint_core::RandomSource,
) -> ActiveSpan {
    let context = trace_context::start(headers, t.sampling_percent, rng);
    let max = t.provider.max_tag_length as usize;
    let mut early = Vec::new();
    if context.sampled {
        if let Some(id) = header(headers, X_REQUEST_ID.as_str()) {
            early.push(KeyValue::string("guid:x-request-id", clip(id, max)));
        }
        if let Some(ua) = header(headers, "user-agent") {
            early.push(KeyValue::string("user_agent", clip(ua, max)));
        }
        for tag in &t.custom_tags {
            let v = match &tag.value {
                TagValue::Literal(v) => Some(v.clone()),
                TagValue::Header { name, default } => header(headers, name)
                    .map(str::to_string)
                    .or_else(|| default.clone()),
                TagValue::Environment { name, default } => {
                    std::env::var(name).ok().or_else(|| default.clone())
                }
            };
            if let Some(v) = v {
                early.push(KeyValue::string(tag.tag.clone(), clip(&v, max)));
            }
        }
    }
    ActiveSpan {
        context,
        start_ns: now_ns(),
        early,
    }
}

/// What the finished request adds to its span.
#[derive(Debug)]
pub struct Facts<'a> {
    pub method: &'a str,
    pub authority: &'a str,
    pub path: &'a str,
    pub protocol: &'a str,
    pub status: u16,
    /// Envoy's cluster name for the destination (`outbound|port||host`), or `-`.
    pub upstream_cluster: &'a str,
    pub response_flags: &'a str,
}

impl ActiveSpan {
    /// The finished span (Envoy's tag names: `http.method`, `http.url`, `http.protocol`,
    /// `http.status_code`, `upstream_cluster`, `response_flags`, `component`, `error` on 5xx).
    pub fn finish(self, t: &TracingPolicy, f: &Facts<'_>) -> Span {
        let max = t.provider.max_tag_length as usize;
        let mut attributes = vec![
            KeyValue::string("component", "proxy"),
            KeyValue::string("http.method", f.method),
            KeyValue::string(
                "http.url",
                clip(&format!("http://{}{}", f.authority, f.path), max),
            ),
            KeyValue::string("http.protocol", f.protocol),
            KeyValue::string("http.status_code", f.status.to_string()),
            KeyValue::string("upstream_cluster", f.upstream_cluster),
            KeyValue::string("response_flags", f.response_flags),
        ];
        let error = f.status >= 500 || f.status == 0;
        if error {
            attributes.push(KeyValue::string("error", "true"));
        }
        attributes.extend(self.early);
        let c = self.context;
        Span {
            trace_id: c.trace_id.to_vec(),
            span_id: c.span_id.to_vec(),
            trace_state: c.trace_state,
            parent_span_id: c.parent_span_id.map(|p| p.to_vec()).unwrap_or_default(),
            // Envoy names a span after the route's decorator; Istio's default decorator is
            // `<host>:<port>/*`.
            name: format!("{}/*", f.authority),
            kind: SPAN_KIND_SERVER,
            start_time_unix_nano: self.start_ns,
            end_time_unix_nano: now_ns().max(self.start_ns),
            attributes,
            dropped_attributes_count: 0,
            status: error.then(|| Status {
                message: String::new(),
                code: STATUS_CODE_ERROR,
            }),
            flags: if c.sampled { 1 } else { 0 },
        }
    }
}

/// Finish `span` and queue it when sampled.
pub fn report(
    exporter: &Exporter,
    t: &TracingPolicy,
    service_name: &str,
    span: ActiveSpan,
    f: &Facts<'_>,
) {
    if !span.context.sampled {
        return;
    }
    let dest = Destination {
        host: t.provider.host.clone(),
        port: t.provider.port,
        service_name: service_name.to_string(),
    };
    exporter.export(&dest, span.finish(t, f));
}

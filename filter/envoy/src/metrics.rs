//! Istio's request metrics from the module (`istio_requests_total`, the duration and size
//! histograms): what a stream keeps from its decision, and its key when it completes.

use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use waypoint_core::decision::{Action, Decision};
use waypoint_core::service::ServiceInfo;
use waypoint_core::telemetry_labels::denying_policy;

use crate::config::FilterConfig;
use crate::istio_batch::{identity, CounterSink, Sample, SeriesKey};
use crate::stream::{Attribute, StreamHandle};

pub use crate::istio_batch::{HistogramIds, IstioMetricIds};

/// The counter's name. Envoy names a module metric `<metrics_namespace>.<name>` and registers
/// the namespace as a custom stat namespace, which `/stats/prometheus` strips: the series is
/// `istio_requests_total{...}` as Istio's proxies report it (counters get no `_total` added).
pub const REQUESTS: &str = "istio_requests_total";
/// The histograms; each is exported as three counters, `<name>_bucket`, `_sum` and `_count`.
pub const DURATION: &str = "istio_request_duration_milliseconds";
pub const REQUEST_BYTES: &str = "istio_request_bytes";
pub const RESPONSE_BYTES: &str = "istio_response_bytes";

/// What one stream keeps from its decision until it completes (no strings but the principal).
#[derive(Debug)]
pub struct StreamTelemetry {
    start: Instant,
    /// Index of the resolved service in the registry.
    service: Option<u32>,
    principal: Option<String>,
    source_ip: Option<IpAddr>,
    flags: &'static str,
    grpc: bool,
    /// The policy a deny is counted under (`telemetry_labels::denying_policy`).
    denied_by: Option<String>,
}

impl StreamTelemetry {
    /// The facts of `decision` (over the registry's `services`) for a request that started at
    /// `start`.
    pub fn new(
        start: Instant,
        decision: &Decision<'_>,
        services: &[ServiceInfo],
        principal: Option<&str>,
        source_ip: Option<IpAddr>,
        grpc: bool,
    ) -> Self {
        StreamTelemetry {
            start,
            service: decision.service.and_then(|s| index_in(services, s)),
            principal: principal.map(str::to_string),
            source_ip,
            flags: flag_of(decision.action),
            grpc,
            denied_by: denying_policy(decision),
        }
    }
}

/// The index of `item` in `slice`, found by its address (the decision borrows the registry's
/// service, so no name look-up is needed).
fn index_in<T>(slice: &[T], item: &T) -> Option<u32> {
    let size = std::mem::size_of::<T>().max(1);
    let offset = (item as *const T as usize).checked_sub(slice.as_ptr() as usize)?;
    let i = offset / size;
    let found = offset % size == 0 && slice.get(i).is_some_and(|s| std::ptr::eq(s, item));
    found.then(|| u32::try_from(i).ok()).flatten()
}

/// Envoy's `CoreResponseFlag` bits in `response.flags` (`RateLimited` is flag 11,
/// `RateLimitServiceError` flag 13 in `stream_info.h`).
const RATE_LIMITED: u64 = 1 << 11;
const RATE_LIMIT_SERVICE_ERROR: u64 = 1 << 13;

/// Envoy's response flag for a decision the module answers itself (the host's the same:
/// `NR` no route, `FI` fault abort, `-` otherwise, an RBAC deny included).
fn flag_of(action: Action) -> &'static str {
    match action {
        Action::NotFound => "NR",
        Action::FaultAbort => "FI",
        _ => "-",
    }
}

/// The IP of Envoy's `upstream.address`: `ip:port`, or an internal address whose last part is
/// the endpoint (`envoy://listener/ip:port`).
fn upstream_ip(address: &str) -> Option<IpAddr> {
    let last = address.rsplit('/').next()?;
    last.parse::<SocketAddr>()
        .map(|a| a.ip())
        .or_else(|_| last.parse::<IpAddr>())
        .ok()
}

/// A stream's counters as a flush target (when no main-thread flush can be scheduled).
struct StreamSink<'a, S>(&'a mut S);

impl<S: StreamHandle> CounterSink for StreamSink<'_, S> {
    fn add(&mut self, id: usize, labels: &[&str], n: u64) {
        self.0.increment_counter(id, labels, n);
    }
}

/// Count the completed stream in Istio's metrics: its key and values go to the config's
/// batch, which a main-thread flush moves into Envoy's counters.
pub fn record<S: StreamHandle>(
    s: &mut S,
    cfg: &FilterConfig,
    ids: &IstioMetricIds,
    t: StreamTelemetry,
) {
    let registry = cfg.engine.registry();
    let workloads = &registry.workloads;
    let source = t
        .source_ip
        .and_then(|ip| workloads.id_by_ip(ip))
        .or_else(|| {
            let (_, ns, sa) = identity(t.principal.as_deref()?)?;
            workloads.id_by_identity(ns, sa)
        });
    let upstream = s.attribute(Attribute::UpstreamAddress);
    let destination = upstream
        .as_deref()
        .and_then(upstream_ip)
        .and_then(|ip| workloads.id_by_ip(ip));
    let status = s
        .attribute_int(Attribute::ResponseCode)
        .and_then(|c| u16::try_from(c).ok())
        .unwrap_or(0);
    let key = SeriesKey {
        source,
        destination,
        service: t.service,
        status,
        flags: match s.attribute_int(Attribute::ResponseFlags) {
            // Envoy's ratelimit filter (after the module) answered: its flags.
            Some(bits) if t.flags == "-" && bits & RATE_LIMITED != 0 => "RL",
            Some(bits) if t.flags == "-" && bits & RATE_LIMIT_SERVICE_ERROR != 0 => "RLSE",
            // Routed, but no upstream answered: Envoy's upstream connection failure.
            _ if status == 503 && upstream.is_none() && t.flags == "-" => "UF",
            _ => t.flags,
        },
        grpc: t.grpc,
    };
    let sample = Sample {
        duration_ms: u64::try_from(t.start.elapsed().as_millis()).unwrap_or(u64::MAX),
        request_bytes: s.attribute_int(Attribute::RequestTotalSize).unwrap_or(0),
        response_bytes: s.attribute_int(Attribute::ResponseTotalSize).unwrap_or(0),
    };
    if !cfg
        .istio
        .add(t.principal.as_deref(), key, sample, t.denied_by)
    {
        cfg.istio.flush(registry, ids, &mut StreamSink(s));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_addresses_parse() {
        assert_eq!(
            upstream_ip("127.10.0.4:9080"),
            Some(IpAddr::from([127, 10, 0, 4]))
        );
        assert_eq!(
            upstream_ip("envoy://connect_originate/10.0.0.7:9080"),
            Some(IpAddr::from([10, 0, 0, 7]))
        );
        assert_eq!(
            upstream_ip("[::1]:80"),
            Some(IpAddr::from(std::net::Ipv6Addr::LOCALHOST))
        );
        assert_eq!(upstream_ip("nonsense"), None);
    }

    #[test]
    fn items_are_found_by_address() {
        let v = vec![10u64, 20, 30];
        assert_eq!(index_in(&v, &v[2]), Some(2));
        assert_eq!(index_in(&v, &v[0]), Some(0));
        let other = 20u64;
        assert_eq!(index_in(&v, &other), None);
        let empty: Vec<u64> = Vec::new();
        assert_eq!(index_in(&empty, &other), None);
    }
}

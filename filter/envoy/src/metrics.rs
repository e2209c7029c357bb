//! Istio's request metrics from the module (`istio_requests_total`, the duration and size
//! histograms), with the label values the host computes (`waypoint_core::telemetry_labels`).

use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use waypoint_core::decision::{Action, Decision};
use waypoint_core::telemetry_labels::{
    denying_policy, request_labels, RequestFacts, SourceFacts, REPORTER, UNKNOWN,
};

use crate::config::FilterConfig;
use crate::stream::{Attribute, StreamHandle};

/// The counter's name. Envoy names a module metric `<metrics_namespace>.<name>` and registers
/// the namespace as a custom stat namespace, which `/stats/prometheus` strips: the series is
/// `istio_requests_total{...}` as Istio's proxies report it (counters get no `_total` added).
pub const REQUESTS: &str = "istio_requests_total";
pub const DURATION: &str = "istio_request_duration_milliseconds";
pub const REQUEST_BYTES: &str = "istio_request_bytes";
pub const RESPONSE_BYTES: &str = "istio_response_bytes";

/// Envoy's ids of the four metrics, defined in `on_http_filter_config_new`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IstioMetricIds {
    pub requests: usize,
    pub duration: usize,
    pub request_bytes: usize,
    pub response_bytes: usize,
    /// `waypoint_policy_denials_total{reporter, policy, destination_service}`.
    pub denials: usize,
}

/// What one stream keeps from its decision until it completes.
#[derive(Debug)]
pub struct StreamTelemetry {
    start: Instant,
    /// The resolved service: (hostname, name, namespace).
    service: Option<(String, String, String)>,
    principal: Option<String>,
    source_ip: Option<IpAddr>,
    flags: &'static str,
    grpc: bool,
    /// The policy a deny is counted under (`telemetry_labels::denying_policy`).
    denied_by: Option<String>,
}

impl StreamTelemetry {
    /// The facts of `decision` for a request that started at `start`.
    pub fn new(
        start: Instant,
        decision: &Decision<'_>,
        principal: Option<&str>,
        source_ip: Option<IpAddr>,
        grpc: bool,
    ) -> Self {
        StreamTelemetry {
            start,
            service: decision
                .service
                .map(|s| (s.hostname.clone(), s.name.clone(), s.namespace.clone())),
            principal: principal.map(str::to_string),
            source_ip,
            flags: flag_of(decision.action),
            grpc,
            denied_by: denying_policy(decision),
        }
    }
}

/// Envoy's response flag for a decision the module answers itself (the host's the same:
/// `NR` no route, `FI` fault abort, `-` otherwise, an RBAC deny included).
fn flag_of(action: Action) -> &'static str {
    match action {
        Action::NotFound => "NR",
        Action::FaultAbort => "FI",
        _ => "-",
    }
}

/// (namespace, service account) of an Istio SPIFFE principal.
fn identity(principal: &str) -> Option<(&str, &str, &str)> {
    let rest = principal.strip_prefix("spiffe://")?;
    let (td, rest) = rest.split_once("/ns/")?;
    let (ns, sa) = rest.split_once("/sa/")?;
    Some((td, ns, sa))
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

/// Count the completed stream in Istio's metrics.
pub fn record<S: StreamHandle>(
    s: &mut S,
    cfg: &FilterConfig,
    ids: IstioMetricIds,
    t: &StreamTelemetry,
) {
    let workloads = &cfg.engine.registry().workloads;
    let peer = t.principal.as_deref().and_then(identity);
    let source = t
        .source_ip
        .and_then(|ip| workloads.by_ip(ip))
        .or_else(|| peer.and_then(|(_, ns, sa)| workloads.by_identity(ns, sa)));
    let upstream = s.attribute(Attribute::UpstreamAddress);
    let destination = upstream
        .as_deref()
        .and_then(upstream_ip)
        .and_then(|ip| workloads.by_ip(ip));
    let status = s
        .attribute_int(Attribute::ResponseCode)
        .and_then(|c| u16::try_from(c).ok())
        .unwrap_or(0);
    let facts = RequestFacts {
        source: SourceFacts {
            principal: t.principal.as_deref(),
            namespace: peer.map(|(_, ns, _)| ns),
            workload: source,
            baggage: "",
        },
        service: t
            .service
            .as_ref()
            .map(|(h, n, ns)| (h.as_str(), n.as_str(), ns.as_str())),
        destination,
        destination_principal: None,
        trust_domain: peer.map_or("cluster.local", |(td, _, _)| td),
        grpc: t.grpc,
        status,
        flags: if status == 503 && upstream.is_none() && t.flags == "-" {
            // Routed, but no upstream answered: Envoy's upstream connection failure.
            "UF"
        } else {
            t.flags
        },
    };
    let labels = request_labels(&facts);
    let values: Vec<&str> = labels.values.iter().map(String::as_str).collect();
    let millis = t.start.elapsed().as_millis();
    s.increment_counter(ids.requests, &values, 1);
    s.record_histogram(
        ids.duration,
        &values,
        u64::try_from(millis).unwrap_or(u64::MAX),
    );
    let req_size = s.attribute_int(Attribute::RequestTotalSize).unwrap_or(0);
    let resp_size = s.attribute_int(Attribute::ResponseTotalSize).unwrap_or(0);
    s.record_histogram(ids.request_bytes, &values, req_size);
    s.record_histogram(ids.response_bytes, &values, resp_size);
    if let Some(policy) = &t.denied_by {
        let service = t.service.as_ref().map_or(UNKNOWN, |(h, _, _)| h.as_str());
        s.increment_counter(ids.denials, &[REPORTER, policy, service], 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn principals_and_upstream_addresses_parse() {
        assert_eq!(
            identity("spiffe://cluster.local/ns/default/sa/curl"),
            Some(("cluster.local", "default", "curl"))
        );
        assert_eq!(identity("spiffe://td/ns/x"), None);
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
}

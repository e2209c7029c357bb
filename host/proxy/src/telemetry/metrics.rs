//! Istio standard metrics with `reporter="waypoint"`: `istio_requests_total`,
//! `istio_request_duration_milliseconds`, `istio_request_bytes`, `istio_response_bytes` and
//! the `istio_tcp_*` counters, in Prometheus text. Every family is bounded (`bounded.rs`):
//! sanitized label values, capped series. The label values come from `waypoint_core::
//! telemetry_labels`, which the Envoy module uses too.

use std::net::IpAddr;
use std::sync::Mutex;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::admin::bounded::{clean, is_dirty, BoundedFamily, BoundedLabels, OVERFLOW};

use waypoint_core::telemetry_labels::{
    tcp_labels as core_tcp_labels, IstioLabels, RequestFacts, SourceFacts, UNKNOWN,
};

use crate::connect::context::{ConnectContext, Resolution};
use crate::telemetry::response_flag::ResponseFlag;

/// Istio's standard label set for request metrics
/// (https://istio.io/latest/docs/reference/config/metrics/).
#[derive(Debug, Clone, Default, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub reporter: String,
    pub source_workload: String,
    pub source_canonical_service: String,
    pub source_canonical_revision: String,
    pub source_workload_namespace: String,
    pub source_principal: String,
    pub source_app: String,
    pub source_version: String,
    pub source_cluster: String,
    pub destination_workload: String,
    pub destination_workload_namespace: String,
    pub destination_principal: String,
    pub destination_app: String,
    pub destination_version: String,
    pub destination_service: String,
    pub destination_service_name: String,
    pub destination_service_namespace: String,
    pub destination_canonical_service: String,
    pub destination_canonical_revision: String,
    pub destination_cluster: String,
    pub request_protocol: String,
    pub response_code: String,
    pub grpc_response_status: String,
    pub response_flags: String,
    pub connection_security_policy: String,
}

/// Labels of `waypoint_policy_denials_total` (`telemetry_labels::DENIAL_LABELS`).
#[derive(Debug, Clone, Default, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DenialLabels {
    pub reporter: String,
    pub policy: String,
    pub destination_service: String,
}

impl BoundedLabels for DenialLabels {
    fn needs_sanitizing(&self) -> bool {
        [&self.reporter, &self.policy, &self.destination_service]
            .iter()
            .any(|v| is_dirty(v))
    }

    fn sanitize(&mut self) {
        for v in [
            &mut self.reporter,
            &mut self.policy,
            &mut self.destination_service,
        ] {
            clean(v);
        }
    }

    fn overflow(&self) -> Self {
        DenialLabels {
            reporter: self.reporter.clone(),
            policy: OVERFLOW.into(),
            destination_service: OVERFLOW.into(),
        }
    }
}

impl From<IstioLabels> for RequestLabels {
    /// The core's values, in `REQUEST_LABELS` order (the same order as these fields).
    fn from(l: IstioLabels) -> Self {
        let mut out = RequestLabels::default();
        for (slot, v) in out.values_mut().into_iter().zip(l.values) {
            *slot = v;
        }
        out
    }
}

impl RequestLabels {
    fn values_mut(&mut self) -> [&mut String; 25] {
        [
            &mut self.reporter,
            &mut self.source_workload,
            &mut self.source_canonical_service,
            &mut self.source_canonical_revision,
            &mut self.source_workload_namespace,
            &mut self.source_principal,
            &mut self.source_app,
            &mut self.source_version,
            &mut self.source_cluster,
            &mut self.destination_workload,
            &mut self.destination_workload_namespace,
            &mut self.destination_principal,
            &mut self.destination_app,
            &mut self.destination_version,
            &mut self.destination_service,
            &mut self.destination_service_name,
            &mut self.destination_service_namespace,
            &mut self.destination_canonical_service,
            &mut self.destination_canonical_revision,
            &mut self.destination_cluster,
            &mut self.request_protocol,
            &mut self.response_code,
            &mut self.grpc_response_status,
            &mut self.response_flags,
            &mut self.connection_security_policy,
        ]
    }

    fn values(&self) -> [&String; 25] {
        [
            &self.reporter,
            &self.source_workload,
            &self.source_canonical_service,
            &self.source_canonical_revision,
            &self.source_workload_namespace,
            &self.source_principal,
            &self.source_app,
            &self.source_version,
            &self.source_cluster,
            &self.destination_workload,
            &self.destination_workload_namespace,
            &self.destination_principal,
            &self.destination_app,
            &self.destination_version,
            &self.destination_service,
            &self.destination_service_name,
            &self.destination_service_namespace,
            &self.destination_canonical_service,
            &self.destination_canonical_revision,
            &self.destination_cluster,
            &self.request_protocol,
            &self.response_code,
            &self.grpc_response_status,
            &self.response_flags,
            &self.connection_security_policy,
        ]
    }

    /// No service resolved (`destination_service_name` is `unknown`) but `destination_service`
    /// holds the peer's CONNECT authority: Istio labels such a destination `unknown`.
    fn unresolved_destination(&self) -> bool {
        self.destination_service_name == UNKNOWN && self.destination_service != UNKNOWN
    }
}

impl BoundedLabels for RequestLabels {
    fn needs_sanitizing(&self) -> bool {
        self.unresolved_destination() || self.values().iter().any(|v| is_dirty(v))
    }

    fn sanitize(&mut self) {
        if self.unresolved_destination() {
            self.destination_service = UNKNOWN.into();
        }
        for v in self.values_mut() {
            clean(v);
        }
    }

    fn overflow(&self) -> Self {
        let other = || OVERFLOW.to_string();
        RequestLabels {
            reporter: self.reporter.clone(),
            request_protocol: self.request_protocol.clone(),
            response_code: self.response_code.clone(),
            grpc_response_status: self.grpc_response_status.clone(),
            response_flags: self.response_flags.clone(),
            connection_security_policy: self.connection_security_policy.clone(),
            source_workload: other(),
            source_canonical_service: other(),
            source_canonical_revision: other(),
            source_workload_namespace: other(),
            source_principal: other(),
            source_app: other(),
            source_version: other(),
            source_cluster: other(),
            destination_workload: other(),
            destination_workload_namespace: other(),
            destination_principal: other(),
            destination_app: other(),
            destination_version: other(),
            destination_service: other(),
            destination_service_name: other(),
            destination_service_namespace: other(),
            destination_canonical_service: other(),
            destination_canonical_revision: other(),
            destination_cluster: other(),
        }
    }
}

/// Istio's labels of an opaque TCP tunnel to `endpoint`: the core's TCP set
/// (`request_protocol="tcp"`); the service's hostname, `unknown` when the destination is no
/// service (never the raw CONNECT authority: peer-controlled, unbounded).
pub fn tcp_labels(
    ctx: &ConnectContext,
    res: &Resolution,
    endpoint: Option<IpAddr>,
) -> RequestLabels {
    let policy = &res.config.policy;
    let workloads = &policy.snapshot.registry.workloads;
    let peer = ctx.peer.identity.as_ref();
    let source = ctx
        .peer
        .source_ip
        .and_then(|ip| workloads.by_ip(ip))
        .or_else(|| peer.and_then(|i| workloads.by_identity(&i.namespace, &i.service_account)));
    let service = res.destination.service();
    let facts = RequestFacts {
        source: SourceFacts {
            principal: ctx.peer.principal.as_deref(),
            namespace: peer.map(|i| i.namespace.as_str()),
            workload: source,
            baggage: ctx.baggage.as_deref().unwrap_or(""),
        },
        service: service.map(|s| (s.hostname.as_str(), s.name.as_str(), s.namespace.as_str())),
        destination: endpoint.and_then(|ip| workloads.by_ip(ip)),
        destination_principal: None,
        trust_domain: &policy.options.trust_domain,
        grpc: false,
        status: 0,
        flags: ResponseFlag::None.as_str(),
    };
    RequestLabels::from(core_tcp_labels(&facts))
}

/// Istio's default duration buckets, in milliseconds.
const DURATION_BUCKETS: [f64; 19] = [
    0.5, 1.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0, 30000.0,
    60000.0, 300000.0, 600000.0, 1800000.0, 3600000.0,
];

fn duration_histogram() -> Histogram {
    Histogram::new(DURATION_BUCKETS.into_iter())
}

/// Size buckets in bytes: Envoy's default histogram buckets, which the Envoy mode's
/// `istio_request_bytes`/`istio_response_bytes` use, so both modes bucket alike.
fn size_histogram() -> Histogram {
    Histogram::new(DURATION_BUCKETS.into_iter())
}

/// The metric families and their registry.
pub struct Metrics {
    registry: Mutex<Registry>,
    pub requests: BoundedFamily<RequestLabels, Counter>,
    pub duration: BoundedFamily<RequestLabels, Histogram, fn() -> Histogram>,
    pub request_bytes: BoundedFamily<RequestLabels, Histogram, fn() -> Histogram>,
    pub response_bytes: BoundedFamily<RequestLabels, Histogram, fn() -> Histogram>,
    pub tcp_opened: BoundedFamily<RequestLabels, Counter>,
    /// `waypoint_policy_denials_total{reporter, policy, destination_service}`.
    pub policy_denials: BoundedFamily<DenialLabels, Counter>,
    pub tcp_closed: BoundedFamily<RequestLabels, Counter>,
    pub tcp_sent: BoundedFamily<RequestLabels, Counter>,
    pub tcp_received: BoundedFamily<RequestLabels, Counter>,
    /// The local rate limit filter's counters (Envoy's names).
    pub ratelimit: crate::telemetry::ratelimit_stats::RateLimitStats,
    /// The global rate limit filter's counters (Envoy's names).
    pub global_ratelimit: crate::telemetry::global_ratelimit_stats::GlobalRateLimitStats,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let requests = BoundedFamily::<RequestLabels, Counter>::default();
        let duration =
            BoundedFamily::<RequestLabels, Histogram, fn() -> Histogram>::new_with_constructor(
                duration_histogram as fn() -> Histogram,
            );
        let sizes = || {
            BoundedFamily::<RequestLabels, Histogram, fn() -> Histogram>::new_with_constructor(
                size_histogram as fn() -> Histogram,
            )
        };
        let (request_bytes, response_bytes) = (sizes(), sizes());
        let tcp_opened = BoundedFamily::<RequestLabels, Counter>::default();
        let policy_denials = BoundedFamily::<DenialLabels, Counter>::default();
        registry.register(
            "waypoint_policy_denials",
            "Requests denied by AuthorizationPolicy, by the policy that denied",
            policy_denials.family().clone(),
        );
        let tcp_closed = BoundedFamily::<RequestLabels, Counter>::default();
        let tcp_sent = BoundedFamily::<RequestLabels, Counter>::default();
        let tcp_received = BoundedFamily::<RequestLabels, Counter>::default();
        // The text encoder appends `_total` to counters.
        registry.register(
            "istio_requests",
            "Requests handled",
            requests.family().clone(),
        );
        registry.register(
            "istio_request_duration_milliseconds",
            "Request duration",
            duration.family().clone(),
        );
        registry.register(
            "istio_request_bytes",
            "Request sizes (headers and body)",
            request_bytes.family().clone(),
        );
        registry.register(
            "istio_response_bytes",
            "Response sizes (headers and body)",
            response_bytes.family().clone(),
        );
        registry.register(
            "istio_tcp_connections_opened",
            "TCP tunnels opened",
            tcp_opened.family().clone(),
        );
        registry.register(
            "istio_tcp_connections_closed",
            "TCP tunnels closed",
            tcp_closed.family().clone(),
        );
        registry.register(
            "istio_tcp_sent_bytes",
            "Bytes sent to the downstream on TCP tunnels",
            tcp_sent.family().clone(),
        );
        registry.register(
            "istio_tcp_received_bytes",
            "Bytes received from the downstream on TCP tunnels",
            tcp_received.family().clone(),
        );
        Metrics {
            registry: Mutex::new(registry),
            requests,
            duration,
            request_bytes,
            response_bytes,
            tcp_opened,
            policy_denials,
            tcp_closed,
            tcp_sent,
            tcp_received,
            ratelimit: Default::default(),
            global_ratelimit: Default::default(),
        }
    }

    /// Count one finished request.
    pub fn record_request(&self, labels: &RequestLabels, millis: f64) {
        self.requests.get_or_create(labels).inc();
        self.duration.get_or_create(labels).observe(millis);
    }

    /// Prometheus text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        let registry = self.registry.lock().unwrap_or_else(|p| p.into_inner());
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &registry) {
            tracing::warn!(error = %e, "metrics: encoding failed");
        }
        out.push_str(&self.ratelimit.encode());
        out.push_str(&self.global_ratelimit.encode());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposes_istio_names() {
        let m = Metrics::new();
        let labels = RequestLabels {
            reporter: "waypoint".into(),
            response_code: "200".into(),
            ..Default::default()
        };
        m.record_request(&labels, 3.0);
        let text = m.encode();
        assert!(
            text.contains("istio_requests_total{reporter=\"waypoint\""),
            "{text}"
        );
        assert!(
            text.contains("istio_request_duration_milliseconds_bucket{"),
            "{text}"
        );
        assert!(text.contains("response_code=\"200\""), "{text}");
    }

    fn tcp(dest: &str) -> RequestLabels {
        RequestLabels {
            reporter: "waypoint".into(),
            source_principal: "spiffe://cluster.local/ns/default/sa/sleep".into(),
            source_workload_namespace: "default".into(),
            destination_service: dest.into(),
            destination_service_name: "svc".into(),
            request_protocol: "tcp".into(),
            response_flags: "-".into(),
            connection_security_policy: "mutual_tls".into(),
            ..Default::default()
        }
    }

    #[test]
    fn field_order_is_the_cores_label_order() {
        let mut values: [String; 25] = Default::default();
        for (i, v) in values.iter_mut().enumerate() {
            *v = format!("v{i}");
        }
        let labels = RequestLabels::from(IstioLabels { values });
        let m = Metrics::new();
        m.record_request(&labels, 1.0);
        let text = m.encode();
        let line = text
            .lines()
            .find(|l| l.starts_with("istio_requests_total{"))
            .unwrap_or_default();
        for (i, name) in waypoint_core::telemetry_labels::REQUEST_LABELS
            .iter()
            .enumerate()
        {
            assert!(line.contains(&format!("{name}=\"v{i}\"")), "{name}: {line}");
        }
    }

    #[test]
    fn unresolved_request_destination_is_unknown_and_values_are_capped() {
        let m = Metrics::new();
        let huge = "a".repeat(30_000);
        for i in 0..20 {
            let labels = RequestLabels {
                reporter: "waypoint".into(),
                destination_service: format!("{huge}{i}:80"),
                destination_service_name: "unknown".into(),
                source_workload: format!("{huge}{i}\"injected"),
                response_code: "503".into(),
                ..Default::default()
            };
            m.record_request(&labels, 1.0);
        }
        let text = m.encode();
        assert!(text.len() < 64 * 1024, "{} bytes", text.len());
        assert!(!text.contains(&"a".repeat(300)), "uncapped value");
        assert!(!text.contains("\"injected"), "unescaped quote");
        assert!(text.contains("destination_service=\"unknown\""), "{text}");
        // A resolved service keeps its hostname.
        let known = RequestLabels {
            destination_service: "reviews.default.svc.cluster.local".into(),
            destination_service_name: "reviews".into(),
            ..Default::default()
        };
        m.record_request(&known, 1.0);
        assert!(m
            .encode()
            .contains("destination_service=\"reviews.default.svc.cluster.local\""));
    }

    #[test]
    fn series_past_the_cap_count_into_one_overflow_set() {
        let m = Metrics::new();
        let n = crate::admin::bounded::MAX_SERIES + 50;
        for i in 0..n {
            m.tcp_opened
                .get_or_create(&tcp(&format!("10.{}.{}.1:80", i / 256, i % 256)))
                .inc();
        }
        // A label set admitted before the cap still counts into its own series.
        m.tcp_opened.get_or_create(&tcp("10.0.0.1:80")).inc();
        let text = m.encode();
        let lines: Vec<_> = text
            .lines()
            .filter(|l| l.starts_with("istio_tcp_connections_opened_total{"))
            .collect();
        assert_eq!(lines.len(), crate::admin::bounded::MAX_SERIES + 1);
        let overflow = lines
            .iter()
            .find(|l| l.contains("destination_service=\"other\""))
            .expect("overflow series");
        assert!(overflow.ends_with(" 50"), "{overflow}");
        assert!(overflow.contains("reporter=\"waypoint\""), "{overflow}");
        let first = lines
            .iter()
            .find(|l| l.contains("destination_service=\"10.0.0.1:80\""))
            .expect("first series");
        assert!(first.ends_with(" 2"), "{first}");
        // An implausible TCP destination (a 30 KB authority) is `unknown`.
        m.tcp_opened
            .get_or_create(&tcp(&format!("{}:80", "b".repeat(30_000))))
            .inc();
        assert!(!m.encode().contains(&"b".repeat(300)));
    }
}

//! Istio's request metrics from the module over the fake stream (no flush scheduler, so each
//! completed stream is flushed at once): the request counter and each histogram's cumulative
//! buckets, sum and count, labelled from the core with the chosen pod.

use std::sync::Arc;

use crate::config::FilterConfig;
use crate::fake::FakeStream;
use crate::filter::HttpFilter;
use crate::istio_batch::LE;
use crate::metrics::{HistogramIds, IstioMetricIds};
use crate::stream::Attribute;
use waypoint_core::telemetry_labels::REQUEST_LABELS;

/// The waypoint, reviews with its v2 pod (a Deployment's) at 127.0.0.1, and sleep's pod.
const MESH: &str = concat!(
    waypoint_core::waypoint_gateway_yaml!("bookinfo"),
    r#"apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: bookinfo, labels: {istio.io/use-waypoint: waypoint}}
spec: {clusterIP: 10.96.0.11, selector: {app: reviews}, ports: [{port: 9080, name: http}]}
---
apiVersion: v1
kind: Pod
metadata:
  name: reviews-v2-6d8f7-abcde
  generateName: reviews-v2-6d8f7-
  namespace: bookinfo
  labels: {app: reviews, version: v2, pod-template-hash: 6d8f7}
  ownerReferences: [{apiVersion: apps/v1, kind: ReplicaSet, name: reviews-v2-6d8f7, uid: u, controller: true}]
spec: {serviceAccountName: bookinfo-reviews, containers: [{name: app, image: reviews}]}
status: {podIP: 127.0.0.1}
---
apiVersion: v1
kind: Pod
metadata: {name: sleep-0, namespace: bookinfo, labels: {app: sleep, version: v1}}
spec: {serviceAccountName: sleep, containers: [{name: app, image: sleep}]}
status: {podIP: 127.0.0.9}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-admin, namespace: bookinfo}
spec:
  targetRefs: [{kind: Service, group: "", name: reviews}]
  action: DENY
  rules: [{to: [{operation: {paths: [/admin]}}]}]
"#
);

const IDS: IstioMetricIds = IstioMetricIds {
    requests: 11,
    duration: HistogramIds {
        bucket: 21,
        sum: 22,
        count: 23,
    },
    request_bytes: HistogramIds {
        bucket: 31,
        sum: 32,
        count: 33,
    },
    response_bytes: HistogramIds {
        bucket: 41,
        sum: 42,
        count: 43,
    },
    denials: 15,
};

fn filter() -> HttpFilter {
    let spec = serde_json::json!({"waypoint": "bookinfo/waypoint", "config_inline": MESH});
    let mut cfg =
        FilterConfig::from_bytes("waypoint", spec.to_string().as_bytes()).expect("config");
    cfg.metrics.istio = Some(IDS);
    HttpFilter::new(Arc::new(cfg))
}

fn label<'a>(values: &'a [String], name: &str) -> &'a str {
    let i = REQUEST_LABELS
        .iter()
        .position(|n| *n == name)
        .expect("label name");
    &values[i]
}

#[test]
fn a_completed_stream_counts_once_with_the_chosen_pods_labels() {
    let mut f = filter();
    let mut s = FakeStream::request("GET", "reviews:9080", "/r", &[])
        .with_peer(Some("spiffe://cluster.local/ns/bookinfo/sa/sleep"), None)
        .with_attribute(Attribute::DestinationAddress, "10.96.0.11:9080");
    f.on_request_headers(&mut s, true);
    assert!(s.counters.iter().all(|(id, _, _)| *id != IDS.requests));
    s = s
        .with_attribute(Attribute::ResponseCode, "200")
        .with_attribute(Attribute::UpstreamAddress, "127.0.0.1:9080")
        .with_attribute(Attribute::RequestTotalSize, "120")
        .with_attribute(Attribute::ResponseTotalSize, "345");
    f.on_stream_complete(&mut s);
    f.on_stream_complete(&mut s);
    let counted: Vec<_> = s
        .counters
        .iter()
        .filter(|(id, _, _)| *id == IDS.requests)
        .collect();
    assert_eq!(counted.len(), 1, "counted once: {:?}", s.counters);
    let (_, values, by) = counted[0];
    assert_eq!(*by, 1);
    assert_eq!(values.len(), REQUEST_LABELS.len());
    for (name, want) in [
        ("reporter", "waypoint"),
        ("source_workload", "sleep-0"),
        ("source_canonical_service", "sleep"),
        ("source_canonical_revision", "v1"),
        (
            "source_principal",
            "spiffe://cluster.local/ns/bookinfo/sa/sleep",
        ),
        ("source_workload_namespace", "bookinfo"),
        ("destination_workload", "reviews-v2"),
        ("destination_version", "v2"),
        ("destination_canonical_service", "reviews"),
        ("destination_canonical_revision", "v2"),
        (
            "destination_principal",
            "spiffe://cluster.local/ns/bookinfo/sa/bookinfo-reviews",
        ),
        ("destination_service", "reviews.bookinfo.svc.cluster.local"),
        ("destination_service_name", "reviews"),
        ("response_code", "200"),
        ("response_flags", "-"),
        ("request_protocol", "http"),
    ] {
        assert_eq!(label(values, name), want, "{name}");
    }
    // Each histogram: its 20 cumulative buckets (`le` after Istio's labels), sum and count.
    let of = |id: usize| {
        s.counters
            .iter()
            .filter(|(i, _, _)| *i == id)
            .collect::<Vec<_>>()
    };
    for (h, value, first_le) in [
        (IDS.request_bytes, 120, "250"),
        (IDS.response_bytes, 345, "500"),
    ] {
        let buckets = of(h.bucket);
        assert_eq!(buckets.len(), LE.len(), "every bucket of a new series");
        let first = LE.iter().position(|le| *le == first_le).expect("le");
        for (i, (_, l, n)) in buckets.iter().enumerate() {
            assert_eq!(&l[..25], &values[..], "Istio's labels, then le");
            assert_eq!(l[25], LE[i]);
            assert_eq!(*n, u64::from(i >= first), "le={}: {n}", LE[i]);
        }
        assert_eq!(of(h.sum), vec![&(h.sum, values.clone(), value)]);
        assert_eq!(of(h.count), vec![&(h.count, values.clone(), 1)]);
    }
    assert_eq!(of(IDS.duration.count).len(), 1);
    assert_eq!(of(IDS.duration.bucket).len(), LE.len());
    assert!(
        s.counters.iter().all(|(id, _, _)| *id != IDS.denials),
        "an allowed request is no denial"
    );
}

#[test]
fn a_local_reply_to_an_unknown_destination_is_counted_with_its_status() {
    let mut f = filter();
    // No principal, and a destination that is no service: the core answers it locally.
    let mut s = FakeStream::request("GET", "nowhere:80", "/", &[])
        .with_attribute(Attribute::DestinationAddress, "10.1.2.3:80");
    f.on_request_headers(&mut s, true);
    let status = s.reply.as_ref().map(|r| r.status).unwrap_or(0);
    assert!(status >= 400, "a local reply: {status}");
    s = s.with_attribute(Attribute::ResponseCode, &status.to_string());
    f.on_stream_complete(&mut s);
    let (_, values, _) = s
        .counters
        .iter()
        .find(|(id, _, _)| *id == IDS.requests)
        .expect("counted");
    assert_eq!(label(values, "response_code"), status.to_string());
    assert_eq!(label(values, "destination_workload"), "unknown");
    assert_eq!(label(values, "destination_service"), "unknown");
    assert_eq!(label(values, "source_principal"), "unknown");
}

#[test]
fn a_deny_is_counted_under_its_policy() {
    let mut f = filter();
    let mut s = FakeStream::request("GET", "reviews:9080", "/admin", &[])
        .with_peer(Some("spiffe://cluster.local/ns/bookinfo/sa/sleep"), None)
        .with_attribute(Attribute::DestinationAddress, "10.96.0.11:9080");
    f.on_request_headers(&mut s, true);
    assert_eq!(s.reply.as_ref().map(|r| r.status), Some(403));
    s = s.with_attribute(Attribute::ResponseCode, "403");
    f.on_stream_complete(&mut s);
    let denials: Vec<_> = s
        .counters
        .iter()
        .filter(|(id, _, _)| *id == IDS.denials)
        .map(|(_, l, n)| (l.clone(), *n))
        .collect();
    assert_eq!(
        denials,
        vec![(
            vec![
                "waypoint".to_string(),
                "bookinfo/deny-admin".to_string(),
                "reviews.bookinfo.svc.cluster.local".to_string()
            ],
            1
        )]
    );
}

#[test]
fn the_ratelimit_filters_replies_are_counted_with_their_flags() {
    // Envoy's ratelimit filter runs after the module: a forwarded request it answers 429 (flag
    // bit 11) or 500 on a failing service (bit 13) is counted RL / RLSE.
    for (status, bits, want) in [("429", 1u64 << 11, "RL"), ("500", 1 << 13, "RLSE")] {
        let mut f = filter();
        let mut s = FakeStream::request("GET", "reviews:9080", "/", &[])
            .with_peer(Some("spiffe://cluster.local/ns/bookinfo/sa/sleep"), None)
            .with_attribute(Attribute::DestinationAddress, "10.96.0.11:9080");
        f.on_request_headers(&mut s, true);
        assert!(s.reply.is_none(), "forwarded");
        s = s
            .with_attribute(Attribute::ResponseCode, status)
            .with_attribute(Attribute::ResponseFlags, &bits.to_string());
        f.on_stream_complete(&mut s);
        let (_, values, _) = s
            .counters
            .iter()
            .find(|(id, _, _)| *id == IDS.requests)
            .expect("counted");
        assert_eq!(label(values, "response_code"), status);
        assert_eq!(label(values, "response_flags"), want);
    }
}

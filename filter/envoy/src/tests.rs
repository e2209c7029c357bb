//! Table-driven unit tests of the filter logic over the fake stream handle: decision input,
//! local replies, forwarding mutations, cluster choice, delay, and failing closed on panics.

use std::sync::Arc;
use std::time::Duration;

use waypoint_core::decision::{Action, Decision, Forwarding, LocalResponse};
use waypoint_core::route::{BackendRef, HeaderOps, RetryPolicy, RuleId};

use crate::config::FilterConfig;
use crate::fake::FakeStream;
use crate::filter::{HttpFilter, CLUSTER_HEADER, DENY_BODY, TEST_PANIC_HEADER};
use crate::stream::{Attribute, HeaderKind, HeadersStatus, StreamHandle};

fn config() -> Arc<FilterConfig> {
    let spec = serde_json::json!({
        "waypoint": "bookinfo/waypoint",
        "config_inline": "apiVersion: v1\nkind: Service\nmetadata: {name: reviews}\n",
    });
    let mut cfg =
        FilterConfig::from_bytes("waypoint", spec.to_string().as_bytes()).expect("config");
    cfg.metrics.requests = Some(7);
    Arc::new(cfg)
}

fn local(action: Action, status: u16, body: &str, headers: &[(&str, &str)]) -> Decision<'static> {
    Decision {
        action,
        local: Some(LocalResponse {
            status,
            body: body.to_string(),
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            grpc_status: None,
        }),
        forward: None,
        matched_rule: None,
        service: None,
        policies: Vec::new(),
        trace: Vec::new(),
    }
}

#[test]
fn local_replies_carry_status_headers_and_body() {
    for (decision, status, body, header) in [
        (
            local(Action::Deny, 403, DENY_BODY, &[]),
            403,
            DENY_BODY,
            None,
        ),
        (local(Action::Deny, 403, "", &[]), 403, DENY_BODY, None),
        (local(Action::NotFound, 404, "", &[]), 404, "", None),
        (
            local(Action::Redirect, 301, "", &[("location", "http://x/y")]),
            301,
            "",
            Some(("location", "http://x/y")),
        ),
        (
            local(Action::DirectResponse, 418, "teapot", &[]),
            418,
            "teapot",
            None,
        ),
        (
            local(Action::FaultAbort, 503, "fault filter abort", &[]),
            503,
            "fault filter abort",
            None,
        ),
        (local(Action::Error, 500, "", &[]), 500, "", None),
    ] {
        let mut s = FakeStream::request("GET", "reviews:9080", "/", &[]);
        let mut f = HttpFilter::new(config());
        let headers = s.headers(HeaderKind::Request);
        let st = f.apply(&mut s, &decision, &headers);
        assert_eq!(st, HeadersStatus::StopIteration);
        let reply = s.reply.clone().expect("reply");
        assert_eq!(reply.status, status, "{:?}", decision.action);
        assert_eq!(reply.body, body);
        assert_eq!(
            reply.details,
            format!("waypoint_{}", decision.action.as_str())
        );
        if let Some((k, v)) = header {
            assert!(reply.headers.contains(&(k.to_string(), v.to_string())));
        }
        assert_eq!(s.meta("decision"), Some(decision.action.as_str()));
        assert_eq!(
            s.counters,
            vec![(
                7,
                vec![decision.action.as_str().to_string(), "none".to_string()],
                1
            )]
        );
        assert_eq!(s.route_cache_cleared, 0);
    }
}

struct Fixture {
    backend: BackendRef,
    route_ops: HeaderOps,
    backend_ops: HeaderOps,
    resp_ops: HeaderOps,
    empty: HeaderOps,
    rule: RuleId,
    retries: RetryPolicy,
}

fn fixture() -> Fixture {
    Fixture {
        backend: BackendRef {
            name: "reviews".into(),
            namespace: "bookinfo".into(),
            host: "reviews.bookinfo.svc.cluster.local".into(),
            subset: Some("v2".into()),
            port: Some(9080),
        },
        route_ops: HeaderOps {
            set: vec![("x-set".into(), "one".into())],
            add: vec![("x-add".into(), "a2".into())],
            remove: vec!["x-drop".into()],
        },
        backend_ops: HeaderOps {
            set: vec![("x-backend".into(), "v2".into())],
            ..Default::default()
        },
        resp_ops: HeaderOps {
            set: vec![("x-resp".into(), "r".into())],
            remove: vec!["server".into()],
            ..Default::default()
        },
        empty: HeaderOps::default(),
        rule: RuleId {
            kind: "VirtualService",
            namespace: "bookinfo".into(),
            name: "reviews".into(),
            rule: "0".into(),
        },
        retries: RetryPolicy {
            attempts: 3,
            per_try_timeout: Some(Duration::from_millis(250)),
            retry_on: vec!["5xx".into()],
            codes: vec![503],
            backoff: None,
        },
    }
}

fn route<'s>(fx: &'s Fixture, delay: Option<Duration>) -> Decision<'s> {
    Decision {
        action: Action::Route,
        local: None,
        forward: Some(Forwarding {
            backend: &fx.backend,
            service: None,
            port: 9080,
            endpoints: Vec::new(),
            candidates: &[],
            request_headers: [&fx.route_ops, &fx.backend_ops],
            response_headers: [&fx.resp_ops, &fx.empty],
            path: Some("/v2/reviews?x=1".into()),
            authority: Some("reviews.internal".into()),
            timeout: Some(Duration::from_secs(2)),
            backend_timeout: None,
            retries: Some(&fx.retries),
            fault_delay: delay,
            mirrors: &[],
            cors: None,
            traffic_policy: None,
        }),
        matched_rule: Some(&fx.rule),
        service: None,
        policies: Vec::new(),
        trace: Vec::new(),
    }
}

#[test]
fn route_applies_mutations_rewrites_cluster_and_router_headers() {
    let fx = fixture();
    let mut s = FakeStream::request(
        "GET",
        "reviews:9080",
        "/reviews",
        &[
            ("x-set", "old"),
            ("x-add", "a1"),
            ("x-drop", "bye"),
            ("x-envoy-max-retries", "99"),
        ],
    );
    let mut f = HttpFilter::new(config());
    let headers = s.headers(HeaderKind::Request);
    assert_eq!(
        f.apply(&mut s, &route(&fx, None), &headers),
        HeadersStatus::Continue
    );
    let h = |n: &str| s.header_values(HeaderKind::Request, n);
    assert_eq!(h("x-set"), vec!["one"]);
    assert_eq!(h("x-add"), vec!["a1", "a2"]);
    assert!(h("x-drop").is_empty());
    assert_eq!(h("x-backend"), vec!["v2"]);
    assert_eq!(h(":path"), vec!["/v2/reviews?x=1"]);
    assert_eq!(h(":authority"), vec!["reviews.internal"]);
    assert_eq!(
        h(CLUSTER_HEADER),
        vec!["outbound|9080|v2|reviews.bookinfo.svc.cluster.local"]
    );
    assert_eq!(h("x-envoy-upstream-rq-timeout-ms"), vec!["2000"]);
    assert_eq!(h("x-envoy-upstream-rq-per-try-timeout-ms"), vec!["250"]);
    assert_eq!(h("x-envoy-max-retries"), vec!["3"]);
    assert_eq!(h("x-envoy-retry-on"), vec!["5xx,retriable-status-codes"]);
    assert_eq!(h("x-envoy-retriable-status-codes"), vec!["503"]);
    assert_eq!(s.route_cache_cleared, 1);
    assert!(s.reply.is_none());
    assert_eq!(s.meta("route"), Some("VirtualService/bookinfo/reviews#0"));
    assert_eq!(s.meta("decision"), Some("route"));

    s.response = vec![
        (":status".into(), "200".into()),
        ("server".into(), "echo".into()),
    ];
    assert_eq!(f.on_response_headers(&mut s), HeadersStatus::Continue);
    assert_eq!(s.header_values(HeaderKind::Response, "x-resp"), vec!["r"]);
    assert!(s.header_values(HeaderKind::Response, "server").is_empty());
}

#[test]
fn fault_delay_waits_on_the_shared_timer_then_continues() {
    let fx = fixture();
    let mut s = FakeStream::request("GET", "reviews:9080", "/", &[]);
    let mut f = HttpFilter::new(config());
    let headers = s.headers(HeaderKind::Request);
    let st = f.apply(
        &mut s,
        &route(&fx, Some(Duration::from_millis(30))),
        &headers,
    );
    assert_eq!(st, HeadersStatus::StopAllIterationAndBuffer);
    let woken = Arc::clone(&s.woken);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while woken.lock().map(|w| w.is_empty()).unwrap_or(true) {
        assert!(std::time::Instant::now() < deadline, "wake-up never fired");
        std::thread::sleep(Duration::from_millis(5));
    }
    let ids = woken.lock().map(|w| w.clone()).unwrap_or_default();
    for id in ids {
        f.on_scheduled(&mut s, id);
    }
    assert_eq!(s.continued, 1);
    // A second wake-up does nothing.
    f.on_scheduled(&mut s, 1);
    assert_eq!(s.continued, 1);
}

#[test]
fn decision_input_comes_from_the_connection() {
    // The interim engine answers 404 for everything; this checks the adapter's plumbing.
    let mut s = FakeStream::request("GET", "reviews:9080", "/", &[])
        .with_attribute(
            Attribute::PeerUriSan,
            "spiffe://cluster.local/ns/bookinfo/sa/productpage",
        )
        .with_attribute(Attribute::SourceAddress, "10.0.0.7:40000");
    let mut f = HttpFilter::new(config());
    assert_eq!(f.on_request_headers(&mut s), HeadersStatus::StopIteration);
    assert_eq!(s.reply.as_ref().map(|r| r.status), Some(404));
}

#[test]
fn panics_fail_closed() {
    for (trigger, status) in [("decide", 403), ("apply", 500)] {
        let mut s =
            FakeStream::request("GET", "reviews:9080", "/", &[(TEST_PANIC_HEADER, trigger)]);
        let mut f = HttpFilter::new(config());
        assert_eq!(
            f.on_request_headers(&mut s),
            HeadersStatus::StopIteration,
            "{trigger}"
        );
        let reply = s.reply.clone().expect("reply");
        assert_eq!(reply.status, status, "{trigger}");
        assert_eq!(reply.details, "waypoint_failed_closed");
        assert!(s
            .logs
            .borrow()
            .iter()
            .any(|(_, m)| m.contains("failing closed") && m.contains("test panic")));
    }
}

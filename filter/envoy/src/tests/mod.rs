//! Table-driven unit tests of the filter logic over the fake stream handle: decision input,
//! local replies, forwarding mutations, cluster choice, delay, and failing closed on panics.

use std::sync::Arc;
use std::time::Duration;

use waypoint_core::decision::{Action, Decision, Forwarding, LocalResponse};
use waypoint_core::route::{BackendRef, HeaderOps, RetryPolicy, RuleId};

use crate::config::FilterConfig;
use crate::fake::FakeStream;
use crate::filter::{HttpFilter, DENY_BODY, TEST_PANIC_HEADER};
use crate::router::{CLUSTER_HEADER, RETRY_HEADER};
use crate::stream::{Attribute, HeaderKind, HeadersStatus, StreamHandle};

mod ext_authz;
mod hash;
mod istio_metrics;
mod jwt;
mod rule_route;

/// A waypoint, one bound service, and a policy allowing only `sa/sleep` to call it.
pub(super) const MINI: &str = concat!(
    waypoint_core::waypoint_gateway_yaml!("bookinfo"),
    r#"apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: bookinfo, labels: {istio.io/use-waypoint: waypoint}}
spec: {clusterIP: 10.96.0.11, ports: [{port: 9080, name: http}]}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: allow-sleep, namespace: bookinfo}
spec:
  targetRefs: [{kind: Service, group: "", name: reviews}]
  action: ALLOW
  rules: [{from: [{source: {principals: [cluster.local/ns/bookinfo/sa/sleep]}}]}]
"#
);

fn config() -> Arc<FilterConfig> {
    let spec = serde_json::json!({"waypoint": "bookinfo/waypoint", "config_inline": MINI});
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
        passthrough: None,
        forward: None,
        matched_rule: None,
        rule_position: None,
        service: None,
        policies: Default::default(),
        ext_authz: None,
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
        (local(Action::DirectResponse, 500, "", &[]), 500, "", None),
    ] {
        let mut s = FakeStream::request("GET", "reviews:9080", "/", &[]);
        let cfg = config();
        let mut f = HttpFilter::new(cfg.clone());
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
        // Counted in the module (flushed to Envoy's counter later), not per request.
        assert!(s.counters.is_empty(), "{:?}", s.counters);
        let mut counted = Vec::new();
        cfg.counts
            .drain(|d, r, n| counted.push((d.to_string(), r.to_string(), n)));
        assert_eq!(
            counted,
            vec![(decision.action.as_str().to_string(), "none".to_string(), 1)]
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
        passthrough: None,
        forward: Some(Forwarding {
            backend: &fx.backend,
            service: None,
            port: 9080,
            endpoints: waypoint_core::decision::Endpoints::None,
            candidates: &[],
            backend_index: 0,
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
        rule_position: None,
        service: None,
        policies: Default::default(),
        ext_authz: None,
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
fn mirrors_are_sent_as_shadow_callouts_with_the_whole_body() {
    use waypoint_core::route::Mirror;
    let fx = fixture();
    let mirrors: &'static [Mirror] = Box::leak(Box::new([Mirror {
        backend: BackendRef {
            name: "shadow".into(),
            namespace: "bookinfo".into(),
            host: "shadow.bookinfo.svc.cluster.local".into(),
            subset: None,
            port: None,
        },
        percent: 100.0,
    }]));
    let big = vec![b'z'; crate::filter::MIRROR_BODY_LIMIT];
    // (body chunks, trailers end the body, expected mirrored body; None = no mirror)
    type Case<'a> = (Vec<&'a [u8]>, bool, Option<Vec<u8>>);
    let cases: Vec<Case> = vec![
        (vec![], false, Some(Vec::new())),
        (
            vec![b"hello ", b"world"],
            false,
            Some(b"hello world".to_vec()),
        ),
        (
            vec![b"with ", b"trailers"],
            true,
            Some(b"with trailers".to_vec()),
        ),
        (vec![&big, b"!"], false, None),
    ];
    for (chunks, trailers, want) in cases {
        let case = format!("{} chunks, trailers {trailers}", chunks.len());
        let extra: &[(&str, &str)] = if chunks.is_empty() {
            &[]
        } else {
            &[("content-length", "999"), ("x-waypoint-retry", "1")]
        };
        let mut s = FakeStream::request("POST", "reviews:9080", "/reviews", extra);
        let mut f = HttpFilter::new(config());
        let mut d = route(&fx, None);
        if let Some(fw) = d.forward.as_mut() {
            fw.mirrors = mirrors;
        }
        let headers = s.headers(HeaderKind::Request);
        // The body flag comes from on_request_headers; set it as Envoy would.
        f.set_bodiless(chunks.is_empty());
        assert_eq!(f.apply(&mut s, &d, &headers), HeadersStatus::Continue);
        for (i, c) in chunks.iter().enumerate() {
            assert!(s.callouts.is_empty(), "{case}: sent before the body ended");
            s.received_body = c.to_vec();
            f.on_request_body(&mut s, !trailers && i + 1 == chunks.len());
        }
        if trailers {
            f.on_request_trailers(&mut s);
        }
        match &want {
            None => assert!(
                s.callouts.is_empty(),
                "{case}: over the limit, not mirrored"
            ),
            Some(body) => {
                assert_eq!(s.callouts.len(), 1, "{case}");
                let (cluster, h, sent) = &s.callouts[0];
                assert_eq!(cluster, "outbound|9080||shadow.bookinfo.svc.cluster.local");
                assert_eq!(sent, body, "{case}");
                let get = |n: &str| h.iter().find(|(k, _)| k == n).map(|(_, v)| v.as_str());
                assert_eq!(get(":authority"), Some("reviews.internal-shadow"));
                assert_eq!(get(":path"), Some("/v2/reviews?x=1"));
                assert_eq!(get("x-set"), Some("one"));
                assert_eq!(get(CLUSTER_HEADER), None);
                assert_eq!(get(RETRY_HEADER), None);
                let len = body.len().to_string();
                let want_len = (!body.is_empty()).then_some(len.as_str());
                assert_eq!(get("content-length"), want_len, "{case}");
            }
        }
        // Later body calls change nothing.
        f.on_request_body(&mut s, true);
        assert!(s.callouts.len() <= 1, "{case}");
    }
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
fn fault_abort_after_delay_replies_when_the_timer_fires() {
    let fx = fixture();
    let mut d = route(&fx, Some(Duration::from_millis(20)));
    d.action = Action::FaultAbort;
    d.local = Some(LocalResponse {
        status: 500,
        body: "fault filter abort".into(),
        headers: Vec::new(),
        grpc_status: None,
    });
    let mut s = FakeStream::request("GET", "reviews:9080", "/", &[]);
    let mut f = HttpFilter::new(config());
    let headers = s.headers(HeaderKind::Request);
    assert_eq!(
        f.apply(&mut s, &d, &headers),
        HeadersStatus::StopAllIterationAndBuffer
    );
    assert!(s.reply.is_none(), "abort must wait for the delay");
    f.on_scheduled(&mut s, 1);
    assert_eq!(s.reply.as_ref().map(|r| r.status), Some(500));
    assert_eq!(s.continued, 0);
    assert!(s.header(HeaderKind::Request, CLUSTER_HEADER).is_none());
}

#[test]
fn decision_input_comes_from_the_connection() {
    // (peer URI SAN, filter-state principal, destination header, expected status, cluster)
    let cluster = "outbound|9080||reviews.bookinfo.svc.cluster.local";
    for (san, fs_principal, dst, status, want_cluster) in [
        // mTLS peer certificate SAN is the source principal.
        (
            Some("spiffe://cluster.local/ns/bookinfo/sa/sleep"),
            None,
            None,
            None,
            Some(cluster),
        ),
        (
            Some("spiffe://cluster.local/ns/bookinfo/sa/other"),
            None,
            None,
            Some(403),
            None,
        ),
        // No identity at all: denied by the ALLOW policy.
        (None, None, None, Some(403), None),
        // Identity from filter state (HBONE-terminating listener in front).
        (
            None,
            Some("spiffe://cluster.local/ns/bookinfo/sa/sleep"),
            None,
            None,
            Some(cluster),
        ),
        // Destination from x-envoy-original-dst-host (VIP:port) when the authority is opaque.
        (
            Some("spiffe://cluster.local/ns/bookinfo/sa/sleep"),
            None,
            Some("10.96.0.11:9080"),
            None,
            Some(cluster),
        ),
    ] {
        let authority = if dst.is_some() {
            "opaque.example:80"
        } else {
            "reviews.bookinfo.svc.cluster.local:9080"
        };
        let extra: Vec<(&str, &str)> = dst
            .map(|d| vec![("x-envoy-original-dst-host", d)])
            .unwrap_or_default();
        let mut s = FakeStream::request("GET", authority, "/", &extra)
            .with_attribute(Attribute::SourceAddress, "10.0.0.7:40000")
            .with_peer(san, fs_principal);
        let mut f = HttpFilter::new(config());
        let st = f.on_request_headers(&mut s, true);
        let case = format!("{san:?} {fs_principal:?} {dst:?}");
        assert_eq!(
            s.reply.as_ref().map(|r| r.status),
            status,
            "{case}: {:?}",
            s.reply
        );
        if status == Some(403) {
            assert_eq!(
                s.reply.as_ref().map(|r| r.body.as_str()),
                Some(DENY_BODY),
                "{case}"
            );
            assert_eq!(s.meta("decision"), Some("deny"), "{case}");
        }
        assert_eq!(
            s.header(HeaderKind::Request, CLUSTER_HEADER).as_deref(),
            want_cluster,
            "{case}"
        );
        let want_st = if status.is_some() {
            HeadersStatus::StopIteration
        } else {
            HeadersStatus::Continue
        };
        assert_eq!(st, want_st, "{case}");
    }
}

#[test]
fn principal_from_picks_certificate_or_filter_state() {
    // The certificate says "sleep" (allowed), the filter state "other" (denied), or the
    // other way round: which one decides depends on `principal_from`.
    let sleep = "spiffe://cluster.local/ns/bookinfo/sa/sleep";
    let other = "spiffe://cluster.local/ns/bookinfo/sa/other";
    for (from, san, state, want) in [
        ("auto", Some(sleep), Some(other), 200),
        ("auto", None, Some(sleep), 200),
        ("auto", Some(other), Some(sleep), 403),
        ("filter_state", Some(sleep), Some(other), 403),
        ("filter_state", Some(other), Some(sleep), 200),
        ("filter_state", Some(sleep), None, 403),
        ("peer_certificate", Some(sleep), Some(other), 200),
        ("peer_certificate", None, Some(sleep), 403),
    ] {
        let spec = serde_json::json!({"waypoint": "bookinfo/waypoint", "config_inline": MINI,
            "principal_from": from});
        let cfg =
            FilterConfig::from_bytes("waypoint", spec.to_string().as_bytes()).expect("config");
        let mut s = FakeStream::request("GET", "reviews.bookinfo.svc.cluster.local:9080", "/", &[])
            .with_peer(san, state);
        let mut f = HttpFilter::new(Arc::new(cfg));
        f.on_request_headers(&mut s, true);
        let got = s.reply.as_ref().map_or(200, |r| r.status);
        assert_eq!(got, want, "{from} cert={san:?} state={state:?}");
    }
    let bad = serde_json::json!({"config_inline": MINI, "principal_from": "header"});
    let err = FilterConfig::from_bytes("waypoint", bad.to_string().as_bytes())
        .expect_err("unknown principal_from");
    assert!(err.to_string().contains("principal_from"), "{err}");
}

#[test]
fn a_peer_with_several_spiffe_ids_is_refused() {
    // A certificate with two URI SANs: Envoy lists both, comma-separated, in the peer
    // attribute and in `%DOWNSTREAM_PEER_URI_SAN%` (the HBONE listener's filter state).
    let sleep = "spiffe://cluster.local/ns/bookinfo/sa/sleep";
    let two = "spiffe://cluster.local/ns/bookinfo/sa/sleep,spiffe://cluster.local/ns/x/sa/y";
    let with_dns = "spiffe://cluster.local/ns/bookinfo/sa/sleep,localhost";
    for (from, san, state, want) in [
        ("filter_state", None, Some(two), 403),
        ("filter_state", None, Some(sleep), 200),
        ("peer_certificate", Some(two), None, 403),
        ("peer_certificate", Some(with_dns), None, 200),
        ("auto", Some(two), Some(sleep), 403),
    ] {
        let spec = serde_json::json!({"waypoint": "bookinfo/waypoint", "config_inline": MINI,
            "principal_from": from});
        let cfg =
            FilterConfig::from_bytes("waypoint", spec.to_string().as_bytes()).expect("config");
        let mut s = FakeStream::request("GET", "reviews.bookinfo.svc.cluster.local:9080", "/", &[])
            .with_peer(san, state);
        let mut f = HttpFilter::new(Arc::new(cfg));
        f.on_request_headers(&mut s, true);
        let got = s.reply.as_ref().map_or(200, |r| r.status);
        assert_eq!(got, want, "{from} cert={san:?} state={state:?}");
    }
}

#[test]
fn panics_fail_closed() {
    // A panic before the decision is a 403; while applying, it is a 403 when the decision was
    // a deny (no identity here) and a 500 for an allowed, routed request.
    let sleep = Some("spiffe://cluster.local/ns/bookinfo/sa/sleep");
    for (trigger, san, status) in [
        ("decide", sleep, 403),
        ("apply", None, 403),
        ("apply", sleep, 500),
    ] {
        let mut s = FakeStream::request(
            "GET",
            "reviews.bookinfo.svc.cluster.local:9080",
            "/",
            &[(TEST_PANIC_HEADER, trigger)],
        );
        if let Some(san) = san {
            s = s.with_attribute(Attribute::PeerUriSan, san);
        }
        let mut f = HttpFilter::new(config());
        assert_eq!(
            f.on_request_headers(&mut s, true),
            HeadersStatus::StopIteration,
            "{trigger}"
        );
        let reply = s.reply.clone().expect("reply");
        assert_eq!(reply.status, status, "{trigger} {san:?}");
        assert_eq!(reply.details, "waypoint_failed_closed");
        assert!(s
            .logs
            .borrow()
            .iter()
            .any(|(_, m)| m.contains("failing closed") && m.contains("test panic")));
    }
}

#[test]
fn cors_preflight_is_answered_and_actual_requests_get_allow_origin() {
    use waypoint_core::matchers::StringMatch;
    use waypoint_core::route::Cors;
    let fx = fixture();
    let cors = Cors {
        allow_origins: vec![StringMatch::Exact("https://shop.example".into())],
        allow_methods: vec!["GET".into(), "POST".into()],
        allow_headers: vec!["x-token".into()],
        expose_headers: vec!["x-trace".into()],
        max_age: Some(Duration::from_secs(600)),
        allow_credentials: Some(true),
    };
    let with_cors = |d: &mut Decision<'_>, c: &'static Cors| {
        if let Some(f) = d.forward.as_mut() {
            f.cors = Some(c);
        }
    };
    let cors: &'static Cors = Box::leak(Box::new(cors));
    // (method, origin, request-method header, expect local 200, expect allow-origin on response)
    for (method, origin, acrm, preflight, allow) in [
        ("OPTIONS", "https://shop.example", Some("POST"), true, false),
        (
            "OPTIONS",
            "https://evil.example",
            Some("POST"),
            false,
            false,
        ),
        ("GET", "https://shop.example", None, false, true),
        ("GET", "https://evil.example", None, false, false),
        // Envoy compares the method with `OPTIONS` exactly: `options` is an actual request
        // (the host agreed, this module used to answer it as a preflight).
        ("options", "https://shop.example", Some("POST"), false, true),
    ] {
        let mut extra = vec![("origin", origin)];
        if let Some(m) = acrm {
            extra.push(("access-control-request-method", m));
        }
        let mut s = FakeStream::request(method, "reviews:9080", "/", &extra);
        let mut f = HttpFilter::new(config());
        let mut d = route(&fx, None);
        with_cors(&mut d, cors);
        let headers = s.headers(HeaderKind::Request);
        let st = f.apply(&mut s, &d, &headers);
        let case = format!("{method} {origin}");
        if preflight {
            assert_eq!(st, HeadersStatus::StopIteration, "{case}");
            let r = s.reply.clone().expect("preflight reply");
            assert_eq!(r.status, 200, "{case}");
            for (k, v) in [
                ("access-control-allow-origin", "https://shop.example"),
                ("access-control-allow-methods", "GET,POST"),
                ("access-control-allow-headers", "x-token"),
                ("access-control-max-age", "600"),
                ("access-control-allow-credentials", "true"),
            ] {
                assert!(
                    r.headers.contains(&(k.into(), v.into())),
                    "{case}: {k} in {:?}",
                    r.headers
                );
            }
            continue;
        }
        assert_eq!(st, HeadersStatus::Continue, "{case}");
        s.response = vec![(":status".into(), "200".into())];
        f.on_response_headers(&mut s);
        let got = s.header(HeaderKind::Response, "access-control-allow-origin");
        assert_eq!(got.is_some(), allow, "{case}: {got:?}");
    }
}

#[test]
fn metadata_level_chooses_the_keys_written_in_one_batch() {
    let sleep = "spiffe://cluster.local/ns/bookinfo/sa/sleep";
    let other = "spiffe://cluster.local/ns/bookinfo/sa/other";
    // (level, principal, keys expected)
    for (level, principal, want) in [
        ("none", sleep, vec![]),
        ("none", other, vec![]),
        ("decision", sleep, vec!["decision", "route"]),
        ("decision", other, vec!["decision", "policy", "route"]),
        (
            "full",
            sleep,
            vec!["cluster", "decision", "policy", "route", "service"],
        ),
        (
            "full",
            other,
            vec!["decision", "policy", "route", "service"],
        ),
    ] {
        let spec = serde_json::json!({
            "waypoint": "bookinfo/waypoint", "config_inline": MINI, "metadata": level});
        let cfg =
            FilterConfig::from_bytes("waypoint", spec.to_string().as_bytes()).expect("config");
        let mut s = FakeStream::request("GET", "reviews.bookinfo.svc.cluster.local:9080", "/", &[])
            .with_attribute(Attribute::PeerUriSan, principal);
        HttpFilter::new(Arc::new(cfg)).on_request_headers(&mut s, true);
        let keys: Vec<&str> = s.metadata.keys().map(|(_, k)| k.as_str()).collect();
        assert_eq!(keys, want, "{level} {principal}");
        assert_eq!(
            s.metadata_calls,
            usize::from(!want.is_empty()),
            "{level}: one batch"
        );
        if principal == other && level != "none" {
            assert_eq!(s.meta("decision"), Some("deny"));
            assert!(
                s.meta("policy")
                    .is_some_and(|p| p.contains("bookinfo/allow-sleep")),
                "{:?}",
                s.meta("policy")
            );
        }
    }
    // An unknown level is a config error naming the field.
    let spec = serde_json::json!({"config_inline": MINI, "metadata": "verbose"});
    let err =
        FilterConfig::from_bytes("waypoint", spec.to_string().as_bytes()).expect_err("bad level");
    assert!(err.to_string().contains("metadata"), "{err}");
}

#[test]
fn client_sent_control_headers_never_steer_the_router() {
    let cluster = "outbound|9080||reviews.bookinfo.svc.cluster.local";
    let sleep = "spiffe://cluster.local/ns/bookinfo/sa/sleep";
    for extra in [
        vec![],
        vec![("x-other", "1")],
        vec![
            (
                CLUSTER_HEADER,
                "outbound|9080||evil.bookinfo.svc.cluster.local",
            ),
            ("x-envoy-max-retries", "9"),
            ("x-envoy-upstream-rq-timeout-ms", "1"),
        ],
        vec![("X-Waypoint-Cluster", "evil")],
    ] {
        let mut s = FakeStream::request(
            "GET",
            "reviews.bookinfo.svc.cluster.local:9080",
            "/",
            &extra,
        )
        .with_attribute(Attribute::PeerUriSan, sleep);
        let st = HttpFilter::new(config()).on_request_headers(&mut s, true);
        assert_eq!(st, HeadersStatus::Continue, "{extra:?}");
        // Exactly our value, whether it was appended (nothing there) or set (replacing).
        assert_eq!(
            s.header_values(HeaderKind::Request, CLUSTER_HEADER),
            vec![cluster],
            "{extra:?}"
        );
        for h in ["x-envoy-max-retries", "x-envoy-upstream-rq-timeout-ms"] {
            let v = s.header_values(HeaderKind::Request, h);
            assert!(
                v.len() <= 1 && !v.contains(&"9".to_string()) && !v.contains(&"1".to_string()),
                "{extra:?} {h}: {v:?}"
            );
        }
    }
}

#[test]
fn route_table_chooses_how_envoy_picks_up_cluster_and_retries() {
    let sleep = "spiffe://cluster.local/ns/bookinfo/sa/sleep";
    // MINI's service has no VirtualService: Istio's default retry policy applies.
    for (table, cleared, refreshed, retry_headers) in [
        (None, 1, 0, true),
        (Some("rematch"), 1, 0, true),
        (Some("waypoint"), 0, 1, false),
    ] {
        let mut spec = serde_json::json!({"waypoint": "bookinfo/waypoint", "config_inline": MINI});
        if let Some(t) = table {
            spec["route_table"] = t.into();
        }
        let cfg =
            FilterConfig::from_bytes("waypoint", spec.to_string().as_bytes()).expect("config");
        let mut s = FakeStream::request("GET", "reviews.bookinfo.svc.cluster.local:9080", "/", &[])
            .with_attribute(Attribute::PeerUriSan, sleep);
        HttpFilter::new(Arc::new(cfg)).on_request_headers(&mut s, true);
        assert_eq!(
            (s.route_cache_cleared, s.route_cluster_refreshed),
            (cleared, refreshed),
            "{table:?}"
        );
        let retry_on = s.header_values(HeaderKind::Request, "x-envoy-retry-on");
        assert_eq!(
            !retry_on.is_empty(),
            retry_headers,
            "{table:?}: {retry_on:?}"
        );
        assert!(s
            .header_values(HeaderKind::Request, RETRY_HEADER)
            .is_empty());
        assert_eq!(
            s.header_values(HeaderKind::Request, CLUSTER_HEADER).len(),
            1
        );
    }
    // A VirtualService with its own retries: the waypoint table needs the retry route.
    let vs = format!(
        "{MINI}---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: reviews, namespace: bookinfo}}\nspec:\n  hosts: [reviews]\n  http: [{{route: [{{destination: {{host: reviews}}}}], retries: {{attempts: 4, retryOn: 5xx}}}}]\n"
    );
    let spec = serde_json::json!({"waypoint": "bookinfo/waypoint", "config_inline": vs, "route_table": "waypoint"});
    let cfg = FilterConfig::from_bytes("waypoint", spec.to_string().as_bytes()).expect("config");
    let mut s = FakeStream::request("GET", "reviews.bookinfo.svc.cluster.local:9080", "/", &[])
        .with_attribute(Attribute::PeerUriSan, sleep);
    HttpFilter::new(Arc::new(cfg)).on_request_headers(&mut s, true);
    assert_eq!((s.route_cache_cleared, s.route_cluster_refreshed), (1, 0));
    assert_eq!(
        s.header_values(HeaderKind::Request, RETRY_HEADER),
        vec!["1"]
    );
    assert_eq!(
        s.header_values(HeaderKind::Request, "x-envoy-max-retries"),
        vec!["4"]
    );
    assert_eq!(
        s.header_values(HeaderKind::Request, "x-envoy-retry-on"),
        vec!["5xx"]
    );

    let spec = serde_json::json!({"config_inline": MINI, "route_table": "fancy"});
    let err = FilterConfig::from_bytes("waypoint", spec.to_string().as_bytes())
        .expect_err("bad route_table");
    assert!(err.to_string().contains("route_table"), "{err}");
}

#[test]
fn source_address_decides_when_a_policy_matches_on_it() {
    let ip_policy = format!(
        "{MINI}---\napiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {{name: no-10, namespace: bookinfo}}\nspec:\n  targetRefs: [{{kind: Service, group: \"\", name: reviews}}]\n  action: DENY\n  rules: [{{from: [{{source: {{ipBlocks: [10.0.0.0/8]}}}}]}}]\n"
    );
    let sleep = "spiffe://cluster.local/ns/bookinfo/sa/sleep";
    for (config_text, source, status) in [
        (MINI.to_string(), "10.0.0.7:40000", None),
        (ip_policy.clone(), "10.0.0.7:40000", Some(403)),
        (ip_policy.clone(), "192.168.0.7:40000", None),
        (ip_policy, "[fd00::7]:40000", None),
    ] {
        let spec =
            serde_json::json!({"waypoint": "bookinfo/waypoint", "config_inline": config_text});
        let cfg =
            FilterConfig::from_bytes("waypoint", spec.to_string().as_bytes()).expect("config");
        let mut s = FakeStream::request("GET", "reviews.bookinfo.svc.cluster.local:9080", "/", &[])
            .with_attribute(Attribute::PeerUriSan, sleep)
            .with_attribute(Attribute::SourceAddress, source);
        HttpFilter::new(Arc::new(cfg)).on_request_headers(&mut s, true);
        assert_eq!(s.reply.as_ref().map(|r| r.status), status, "{source}");
    }
}

/// A workload-addressed request (the core's `Passthrough`) goes as it came to its original
/// destination's cluster: nothing but the cluster header changes, a client's router control
/// headers are dropped.
#[test]
fn passthrough_goes_to_the_original_destination_cluster_unchanged() {
    let d = Decision {
        action: Action::Passthrough,
        local: None,
        forward: None,
        passthrough: Some("10.1.0.1:8080".parse().expect("addr")),
        matched_rule: None,
        rule_position: None,
        service: None,
        policies: Default::default(),
        ext_authz: None,
        trace: Vec::new(),
    };
    let mut s = FakeStream::request(
        "GET",
        "10.1.0.1:8080",
        "/old/x",
        &[
            ("x-envoy-max-retries", "9"),
            (
                CLUSTER_HEADER,
                "outbound|9080||evil.bookinfo.svc.cluster.local",
            ),
        ],
    );
    let mut f = HttpFilter::new(config());
    let headers = s.headers(HeaderKind::Request);
    assert_eq!(f.apply(&mut s, &d, &headers), HeadersStatus::Continue);
    let h = |n: &str| s.header_values(HeaderKind::Request, n);
    assert_eq!(h(CLUSTER_HEADER), vec!["passthrough|10.1.0.1:8080"]);
    assert!(h("x-envoy-max-retries").is_empty());
    assert_eq!(h(":path"), vec!["/old/x"]);
    assert_eq!(h(":authority"), vec!["10.1.0.1:8080"]);
    assert!(s.reply.is_none());
    assert_eq!(s.meta("decision"), Some("passthrough"));
}

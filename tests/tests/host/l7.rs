//! End-to-end L7 behaviour of the host driven by an HTTPRoute (GAMMA, attached to the
//! Service): header mutations both ways, prefix rewrite, mirroring, request timeout,
//! redirects, and a weighted split.

use std::time::Duration;

use waypoint_hbone::HboneClient;
use waypoint_tests::echo::http_echo;
use waypoint_tests::hbone_client::{collect, http1_get, http1_over, tunnel};
use waypoint_tests::pki::Pki;
use waypoint_tests::waypoint::{eventually, TestWaypoint};

const LIMIT: Duration = Duration::from_secs(60);

use waypoint_tests::manifests::plain_service as service;

const ROUTE: &str = r#"
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: front
  namespace: default
spec:
  parentRefs:
  - group: ""
    kind: Service
    name: front
    port: 80
  rules:
  - matches:
    - path: {type: PathPrefix, value: /api}
    filters:
    - type: RequestHeaderModifier
      requestHeaderModifier:
        set: [{name: x-set, value: from-route}]
        add: [{name: x-add, value: added}]
        remove: [x-remove]
    - type: ResponseHeaderModifier
      responseHeaderModifier:
        add: [{name: x-resp, value: by-waypoint}]
    - type: URLRewrite
      urlRewrite:
        path: {type: ReplacePrefixMatch, replacePrefixMatch: /v2}
    - type: RequestMirror
      requestMirror:
        backendRef: {name: shadow, port: 80}
    backendRefs:
    - {name: one, port: 80}
  - matches:
    - path: {type: PathPrefix, value: /delay}
    timeouts: {request: 300ms}
    backendRefs:
    - {name: one, port: 80}
  - matches:
    - path: {type: PathPrefix, value: /moved}
    filters:
    - type: RequestRedirect
      requestRedirect: {hostname: example.com, statusCode: 301}
  - matches:
    - path: {type: PathPrefix, value: /split}
    backendRefs:
    - {name: one, port: 80, weight: 1}
    - {name: two, port: 80, weight: 1}
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn httproute_filters_timeouts_redirects_and_splits() {
    tokio::time::timeout(LIMIT, async {
        let pki = Pki::new("cluster.local");
        let one = http_echo("127.0.0.21:0".parse().expect("addr"), "one").await;
        let two = http_echo("127.0.0.22:0".parse().expect("addr"), "two").await;
        let shadow = http_echo("127.0.0.23:0".parse().expect("addr"), "shadow").await;
        let yaml = [
            service("front", "10.96.5.1", "127.0.0.20", 1),
            service("one", "10.96.5.2", "127.0.0.21", one.addr.port()),
            service("two", "10.96.5.3", "127.0.0.22", two.addr.port()),
            service("shadow", "10.96.5.4", "127.0.0.23", shadow.addr.port()),
            ROUTE.to_string(),
        ]
        .concat();
        let wp = TestWaypoint::start(&pki, &yaml, 15008).await;
        let errs = wp.running.config.last_errors();
        assert!(
            wp.running.config.current().is_some(),
            "config rejected: {errs:?}"
        );
        let client = HboneClient::new(pki.store("default", "sleep"));
        let front = "10.96.5.1:80";

        // Header mutations, rewrite and mirror.
        let s = tunnel(&client, wp.running.hbone_addr, &[], front)
            .await
            .expect("tunnel");
        let mut send = http1_over(s).await.expect("h1");
        let req = http::Request::builder()
            .uri("/api/items?q=1")
            .header("host", "front")
            .header("x-set", "from-client")
            .header("x-remove", "secret")
            .header("x-add", "client")
            .body(waypoint_tests::echo::empty())
            .expect("req");
        let r = collect(send.send_request(req).await.expect("send"))
            .await
            .expect("collect");
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.header("x-served-by"), Some("one"));
        let body = r.text();
        assert!(body.contains("path=/v2/items?q=1"), "{body}");
        assert!(body.contains("x-set=from-route"), "{body}");
        assert!(!body.contains("x-set=from-client"), "{body}");
        assert!(!body.contains("x-remove="), "{body}");
        assert!(
            body.contains("x-add=client") && body.contains("x-add=added"),
            "{body}"
        );
        assert_eq!(r.header("x-resp"), Some("by-waypoint"));
        assert!(
            eventually(Duration::from_secs(5), || async { shadow.hits() == 1 }).await,
            "mirror must receive one copy"
        );

        // Request timeout: the upstream takes 3 s, the route allows 300 ms.
        let started = std::time::Instant::now();
        let r = http1_get(&client, wp.running.hbone_addr, front, "/delay/3000")
            .await
            .expect("req");
        assert_eq!(r.status, 504, "{}", r.text());
        assert_eq!(r.text(), "upstream request timeout");
        assert!(started.elapsed() < Duration::from_secs(2));

        // Redirect.
        let r = http1_get(&client, wp.running.hbone_addr, front, "/moved/x")
            .await
            .expect("req");
        assert_eq!(r.status, 301);
        let loc = r.header("location").unwrap_or_default().to_string();
        assert!(
            loc.contains("example.com") && loc.ends_with("/moved/x"),
            "{loc}"
        );

        // Unmatched path: 404 from the route table.
        let r = http1_get(&client, wp.running.hbone_addr, front, "/nothing")
            .await
            .expect("req");
        assert_eq!(r.status, 404);

        // Weighted split 1:1 over 40 requests reaches both.
        let before = (one.hits(), two.hits());
        for i in 0..40 {
            let r = http1_get(
                &client,
                wp.running.hbone_addr,
                front,
                &format!("/split/{i}"),
            )
            .await
            .expect("req");
            assert_eq!(r.status, 200);
        }
        let (a, b) = (one.hits() - before.0, two.hits() - before.1);
        assert_eq!(a + b, 40);
        assert!(a >= 5 && b >= 5, "split {a}/{b}");
    })
    .await
    .expect("test timed out");
}

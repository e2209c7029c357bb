//! End-to-end Istio APIs through the host: VirtualService fault delay + abort and header
//! mutations, DestinationRule outlier detection with retries, AuthorizationPolicy at L7
//! (403) and at L4 on a TCP port (401 at CONNECT).

use std::time::{Duration, Instant};

use waypoint_hbone::HboneClient;
use waypoint_tests::echo::{http_echo, http_fixed_status, tcp_echo};
use waypoint_tests::hbone_client::{collect, http1_get, http1_over, tunnel};
use waypoint_tests::pki::Pki;
use waypoint_tests::waypoint::TestWaypoint;

const LIMIT: Duration = Duration::from_secs(60);

fn service(name: &str, vip: &str, port_name: &str, target_port: u16, pods: &[&str]) -> String {
    waypoint_tests::manifests::service_with_pods(name, vip, port_name, target_port, pods, false)
}

const ISTIO: &str = r#"
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: api
  namespace: default
spec:
  hosts: [api]
  http:
  - name: faults
    match:
    - headers:
        x-fault: {exact: "yes"}
    fault:
      delay:
        percentage: {value: 100.0}
        fixedDelay: 300ms
      abort:
        percentage: {value: 100.0}
        httpStatus: 418
    route:
    - destination: {host: api}
  - name: default
    headers:
      request:
        set: {x-from-vs: "1"}
      response:
        add: {x-vs-resp: "yes"}
    retries:
      attempts: 3
      retryOn: 5xx
    route:
    - destination: {host: api}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: api
  namespace: default
spec:
  host: api
  trafficPolicy:
    outlierDetection:
      consecutive5xxErrors: 1
      interval: 1s
      baseEjectionTime: 60s
      maxEjectionPercent: 100
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: api-no-admin
  namespace: default
spec:
  targetRefs:
  - {kind: Service, group: "", name: api}
  action: DENY
  rules:
  - to:
    - operation:
        paths: ["/admin*"]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: db-only-app
  namespace: default
spec:
  targetRefs:
  - {kind: Service, group: "", name: db}
  action: ALLOW
  rules:
  - from:
    - source:
        principals: ["cluster.local/ns/default/sa/app"]
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn virtual_service_destination_rule_and_authorization() {
    tokio::time::timeout(LIMIT, async {
        let pki = Pki::new("cluster.local");
        let good = http_echo("127.0.0.31:0".parse().expect("addr"), "good").await;
        let port = good.addr.port();
        let bad = http_fixed_status(format!("127.0.0.32:{port}").parse().expect("addr"), 500).await;
        let db = tcp_echo("127.0.0.33:0".parse().expect("addr")).await;
        let yaml = [
            service(
                "api",
                "10.96.7.1",
                "http",
                port,
                &["127.0.0.31", "127.0.0.32"],
            ),
            service("db", "10.96.7.2", "tcp", db.addr.port(), &["127.0.0.33"]),
            ISTIO.to_string(),
        ]
        .concat();
        let wp = TestWaypoint::start(&pki, &yaml, 15008).await;
        assert!(
            wp.running.config.current().is_some(),
            "config rejected: {:?}",
            wp.running.config.last_errors()
        );
        let client = HboneClient::new(pki.store("default", "sleep"));
        let api = "10.96.7.1:80";

        // Retries on 5xx, and outlier detection ejects the failing endpoint after one error.
        for i in 0..10 {
            let r = http1_get(&client, wp.running.hbone_addr, api, &format!("/x/{i}"))
                .await
                .expect("req");
            assert_eq!(r.status, 200, "request {i}: {}", r.text());
            assert_eq!(r.header("x-served-by"), Some("good"));
            assert_eq!(r.header("x-vs-resp"), Some("yes"));
            assert!(r.text().contains("x-from-vs=1"), "{}", r.text());
        }
        assert!(bad.hits() <= 1, "ejected endpoint hit {} times", bad.hits());

        // Fault: delay 300 ms, then abort 418.
        let s = tunnel(&client, wp.running.hbone_addr, &[], api)
            .await
            .expect("tunnel");
        let mut send = http1_over(s).await.expect("h1");
        let req = http::Request::builder()
            .uri("/f")
            .header("host", "api")
            .header("x-fault", "yes")
            .body(waypoint_tests::echo::empty())
            .expect("req");
        let started = Instant::now();
        let r = collect(send.send_request(req).await.expect("send"))
            .await
            .expect("collect");
        assert_eq!(r.status, 418);
        assert!(
            started.elapsed() >= Duration::from_millis(300),
            "delay applied first"
        );

        // L7 DENY policy.
        let r = http1_get(&client, wp.running.hbone_addr, api, "/admin/users")
            .await
            .expect("req");
        assert_eq!(r.status, 403);
        assert_eq!(r.text(), "RBAC: access denied");

        // L4: the TCP port only admits sa/app; sa/sleep is refused at CONNECT with 401.
        let err = tunnel(&client, wp.running.hbone_addr, &[], "10.96.7.2:80")
            .await
            .expect_err("denied");
        assert_eq!(err.status().map(|s| s.as_u16()), Some(401), "{err}");
        let app = HboneClient::new(pki.store("default", "app"));
        let mut s = tunnel(&app, wp.running.hbone_addr, &[], "10.96.7.2:80")
            .await
            .expect("allowed");
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        s.write_all(b"ping").await.expect("write");
        s.shutdown().await.expect("shutdown");
        let mut got = Vec::new();
        s.read_to_end(&mut got).await.expect("read");
        assert_eq!(&got, b"ping");
    })
    .await
    .expect("test timed out");
}

//! Istio telemetry of the standalone host: the chosen pod's workload and version, the source
//! workload, the size histograms, and `x-request-id` generated and forwarded upstream.

use std::time::Duration;

use waypoint_tests::telemetry::{find, host_scrape};

const LIMIT: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_labels_name_the_chosen_pod_and_count_sizes() {
    tokio::time::timeout(LIMIT, async {
        let (scrape, first) = host_scrape(3).await;
        let s = &scrape.series;
        let ok = find(
            s,
            "istio_requests_total",
            &[
                ("reporter", "waypoint"),
                ("destination_service", "echo.default.svc.cluster.local"),
                ("response_code", "200"),
            ],
        )
        .unwrap_or_else(|| panic!("no 200 series:\n{}", scrape.text));
        for (k, v) in [
            ("destination_workload", "echo-v2"),
            ("destination_workload_namespace", "default"),
            ("destination_version", "v2"),
            ("destination_app", "echo"),
            ("destination_canonical_service", "echo"),
            ("destination_canonical_revision", "v2"),
            ("destination_service_name", "echo"),
            // ztunnel's baggage names the source (the test client sends Istio's keys).
            ("source_workload", "sleep"),
            ("source_canonical_service", "sleep"),
            ("source_canonical_revision", "v1"),
            (
                "source_principal",
                "spiffe://cluster.local/ns/default/sa/sleep",
            ),
            ("request_protocol", "http"),
        ] {
            assert_eq!(
                ok.labels.get(k).map(String::as_str),
                Some(v),
                "{k} in {ok:?}"
            );
        }
        assert_eq!(ok.value, 3.0, "{ok:?}");
        let denied = find(
            s,
            "istio_requests_total",
            &[
                ("response_code", "403"),
                ("destination_service_name", "echo"),
            ],
        )
        .unwrap_or_else(|| panic!("no 403 series:\n{}", scrape.text));
        assert_eq!(denied.value, 1.0);
        let by_policy = find(
            s,
            "waypoint_policy_denials_total",
            &[
                ("reporter", "waypoint"),
                ("policy", "default/deny-admin"),
                ("destination_service", "echo.default.svc.cluster.local"),
            ],
        )
        .unwrap_or_else(|| panic!("no denial by policy:\n{}", scrape.text));
        assert_eq!(by_policy.value, 1.0);
        // Denied before any pod was chosen: no destination workload.
        assert_eq!(
            denied
                .labels
                .get("destination_workload")
                .map(String::as_str),
            Some("unknown")
        );
        for name in [
            "istio_request_bytes_count",
            "istio_response_bytes_count",
            "istio_request_duration_milliseconds_count",
        ] {
            let n: f64 = s.iter().filter(|x| x.name == name).map(|x| x.value).sum();
            assert_eq!(n, 4.0, "{name}:\n{}", scrape.text);
        }
        let response_bytes = find(
            s,
            "istio_response_bytes_sum",
            &[
                ("response_code", "200"),
                ("destination_workload", "echo-v2"),
            ],
        )
        .expect("response bytes of the 200s");
        assert!(response_bytes.value > 3.0 * 50.0, "{response_bytes:?}");
        // x-request-id: generated (a UUID v4) and forwarded to the upstream.
        let id = first
            .header("x-echo-h-x-request-id")
            .unwrap_or_else(|| panic!("the upstream got no x-request-id: {:?}", first.headers));
        assert_eq!(id.len(), 36, "{id}");
        assert_eq!(id.as_bytes()[14], b'4', "version 4: {id}");
    })
    .await
    .expect("timed out");
}

/// A TCP service whose pod a StatefulSet owns (`db-0` → workload `db`).
fn tcp_manifests(port: u16) -> String {
    format!(
        r#"
apiVersion: v1
kind: Service
metadata:
  name: db
  namespace: default
  labels: {{istio.io/use-waypoint: waypoint}}
spec:
  clusterIP: 10.96.1.2
  selector: {{app: db}}
  ports: [{{name: tcp-db, port: 80, targetPort: {port}}}]
---
apiVersion: v1
kind: Pod
metadata:
  name: db-0
  generateName: db-
  namespace: default
  labels: {{app: db, app.kubernetes.io/name: database, app.kubernetes.io/version: "7.2", istio.io/dataplane-mode: none}}
  ownerReferences: [{{apiVersion: apps/v1, kind: StatefulSet, name: db, uid: u1, controller: true}}]
spec: {{serviceAccountName: db, containers: [{{name: db, image: db}}]}}
status: {{podIP: 127.0.0.1}}
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_tcp_metrics_name_the_pod_and_count_bytes() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use waypoint_hbone::HboneClient;
    use waypoint_tests::echo::tcp_echo;
    use waypoint_tests::hbone_client::tunnel;
    use waypoint_tests::pki::Pki;
    use waypoint_tests::telemetry::parse_prometheus;
    use waypoint_tests::waypoint::{admin_get, eventually, TestWaypoint};

    tokio::time::timeout(LIMIT, async {
        let pki = Pki::new("cluster.local");
        let echo = tcp_echo("127.0.0.1:0".parse().expect("addr")).await;
        let wp = TestWaypoint::start(&pki, &tcp_manifests(echo.addr.port()), 15008).await;
        let client = HboneClient::new(pki.store("default", "sleep"));
        let mut s = tunnel(&client, wp.running.hbone_addr, &[], "10.96.1.2:80")
            .await
            .expect("tunnel");
        let msg = b"twelve bytes";
        s.write_all(msg).await.expect("write");
        s.shutdown().await.expect("shutdown");
        let mut got = Vec::new();
        s.read_to_end(&mut got).await.expect("read");
        assert_eq!(&got, msg);
        let stats = wp.running.stats_addr.expect("stats addr");
        let want = [
            ("reporter", "waypoint"),
            ("request_protocol", "tcp"),
            ("destination_service", "db.default.svc.cluster.local"),
            ("destination_workload", "db"),
            ("destination_canonical_service", "database"),
            ("destination_version", "7.2"),
            (
                "destination_principal",
                "spiffe://cluster.local/ns/default/sa/db",
            ),
            (
                "source_principal",
                "spiffe://cluster.local/ns/default/sa/sleep",
            ),
        ];
        let closed = eventually(Duration::from_secs(10), || async {
            let (_, text) = admin_get(stats, "/stats/prometheus").await.expect("stats");
            let series = parse_prometheus(&text).unwrap_or_default();
            find(&series, "istio_tcp_connections_closed_total", &want).is_some()
        })
        .await;
        let (_, text) = admin_get(stats, "/stats/prometheus").await.expect("stats");
        assert!(
            closed,
            "no closed TCP connection with the pod's labels:\n{text}"
        );
        let series = parse_prometheus(&text).expect("parse");
        for (name, value) in [
            ("istio_tcp_connections_opened_total", 1.0),
            ("istio_tcp_received_bytes_total", msg.len() as f64),
            ("istio_tcp_sent_bytes_total", msg.len() as f64),
        ] {
            let s = find(&series, name, &want).unwrap_or_else(|| panic!("{name}:\n{text}"));
            assert_eq!(s.value, value, "{name}");
        }
    })
    .await
    .expect("timed out");
}

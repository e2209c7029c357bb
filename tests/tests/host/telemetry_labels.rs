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

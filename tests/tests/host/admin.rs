//! End-to-end admin and config lifecycle: readiness only with certificates and a valid
//! config, Istio metrics with `reporter="waypoint"`, `/config_dump`, and a bad resource in a
//! config change rejected alone while the rest of the change applies.

use std::time::Duration;
use waypoint_tests::manifests::plain_service;

use waypoint_hbone::HboneClient;
use waypoint_tests::echo::http_echo;
use waypoint_tests::hbone_client::http1_get;
use waypoint_tests::pki::Pki;
use waypoint_tests::waypoint::{admin_get, eventually, TestWaypoint, WAYPOINT_GATEWAY};

const LIMIT: Duration = Duration::from_secs(60);

/// A non-mesh Service `name` with one pod on 127.0.0.1 at `port`.
fn service(name: &str, vip: &str, port: u16) -> String {
    plain_service(name, vip, "127.0.0.1", port)
}

/// Replace a file in one step (temp file + rename), as config management tools do.
fn write_atomic(path: &std::path::Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).expect("write temp");
    std::fs::rename(&tmp, path).expect("rename");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_metrics_and_config_dump() {
    tokio::time::timeout(LIMIT, async {
        let pki = Pki::new("cluster.local");
        let echo = http_echo("127.0.0.1:0".parse().expect("addr"), "echo").await;
        let wp =
            TestWaypoint::start(&pki, &service("echo", "10.96.1.1", echo.addr.port()), 15008).await;
        let ready = wp.running.ready_addr.expect("ready addr");
        let stats = wp.running.stats_addr.expect("stats addr");
        let admin = wp.running.admin_addr.expect("admin addr");
        assert_eq!(
            admin_get(ready, "/healthz/ready").await.expect("ready").0,
            200
        );

        let client = HboneClient::new(pki.store("default", "sleep"));
        for _ in 0..2 {
            let r = http1_get(&client, wp.running.hbone_addr, "10.96.1.1:80", "/")
                .await
                .expect("request");
            assert_eq!(r.status, 200, "{}", r.text());
        }
        let (code, text) = admin_get(stats, "/stats/prometheus").await.expect("stats");
        assert_eq!(code, 200);
        let line = text
            .lines()
            .find(|l| {
                l.starts_with("istio_requests_total{")
                    && l.contains("destination_service=\"echo.default.svc.cluster.local\"")
            })
            .unwrap_or_else(|| panic!("no istio_requests_total for echo:\n{text}"));
        for want in [
            "reporter=\"waypoint\"",
            "source_principal=\"spiffe://cluster.local/ns/default/sa/sleep\"",
            "source_workload_namespace=\"default\"",
            "source_workload=\"sleep\"",
            "destination_service_name=\"echo\"",
            "destination_service_namespace=\"default\"",
            "response_code=\"200\"",
            "request_protocol=\"http\"",
            "connection_security_policy=\"mutual_tls\"",
        ] {
            assert!(line.contains(want), "missing {want} in {line}");
        }
        assert!(line.ends_with(" 2"), "two requests counted: {line}");
        assert!(
            text.contains("istio_request_duration_milliseconds_bucket{"),
            "{text}"
        );

        let (code, dump) = admin_get(admin, "/config_dump").await.expect("dump");
        assert_eq!(code, 200);
        let v: serde_json::Value = serde_json::from_str(&dump).expect("json");
        assert_eq!(v["ready"], true);
        assert_eq!(
            v["certificates"]["identity"],
            "spiffe://cluster.local/ns/default/sa/waypoint"
        );
        let services = v["policy"]["services"].as_array().expect("services");
        let echo_svc = services
            .iter()
            .find(|s| s["hostname"] == "echo.default.svc.cluster.local")
            .expect("echo service in dump");
        assert_eq!(echo_svc["bound"], true);
        assert_eq!(echo_svc["endpoints"][0]["ip"], "127.0.0.1");
        assert_eq!(v["policy"]["waypoint"], "default/waypoint");
    })
    .await
    .expect("test timed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_resource_is_rejected_alone_and_the_rest_applies() {
    tokio::time::timeout(LIMIT, async {
        let pki = Pki::new("cluster.local");
        let a = http_echo("127.0.0.1:0".parse().expect("addr"), "a").await;
        let b = http_echo("127.0.0.1:0".parse().expect("addr"), "b").await;
        let wp = TestWaypoint::start(&pki, &service("svc-a", "10.96.2.1", a.addr.port()), 15008).await;
        let client = HboneClient::new(pki.store("default", "sleep"));
        let gen0 = wp.running.config.current().expect("config").generation;

        // A change with one broken resource: an unsupported apiVersion rejects that
        // VirtualService alone (reported by name and field); the rest of the change applies.
        let bad = format!(
            "{}\n---\napiVersion: networking.istio.io/v0alpha9\nkind: VirtualService\nmetadata: {{name: broken, namespace: default}}\nspec: {{}}\n",
            service("svc-b", "10.96.2.2", b.addr.port())
        );
        write_atomic(&wp.config_file(), &bad);
        let cfg = wp.running.config.clone();
        assert!(
            eventually(Duration::from_secs(30), || {
                let cfg = cfg.clone();
                async move { !cfg.last_errors().is_empty() }
            })
            .await,
            "bad change must be noticed"
        );
        let errs = wp.running.config.last_errors();
        assert!(errs.iter().any(|e| e.kind == "VirtualService" && e.name == "broken" && e.field == "apiVersion"), "{errs:?}");
        let gen1 = wp.running.config.current().expect("config").generation;
        assert!(gen1 > gen0, "the rest of the change applies");
        let r = http1_get(&client, wp.running.hbone_addr, "10.96.2.2:80", "/").await.expect("b");
        assert_eq!(r.header("x-served-by"), Some("b"), "{}", r.text());
        let ready = wp.running.ready_addr.expect("ready");
        assert_eq!(admin_get(ready, "/healthz/ready").await.expect("ready").0, 200);

        // A good change is picked up.
        let good = format!("{}{}", service("svc-a", "10.96.2.1", a.addr.port()), service("svc-b", "10.96.2.2", b.addr.port()));
        write_atomic(&wp.config_file(), &good);
        assert!(
            eventually(Duration::from_secs(30), || {
                let cfg = cfg.clone();
                async move { cfg.current().is_some_and(|c| c.generation > gen1) }
            })
            .await,
            "good change must be applied"
        );
        assert!(wp.running.config.last_errors().is_empty());
        let r = http1_get(&client, wp.running.hbone_addr, "10.96.2.1:80", "/").await.expect("a");
        assert_eq!(r.header("x-served-by"), Some("a"));
        let r = http1_get(&client, wp.running.hbone_addr, "10.96.2.2:80", "/").await.expect("b");
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.header("x-served-by"), Some("b"));
    })
    .await
    .expect("test timed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_ready_until_config_is_valid() {
    tokio::time::timeout(LIMIT, async {
        let pki = Pki::new("cluster.local");
        let wp = TestWaypoint::start(&pki, "", 15008).await;
        // Remove the waypoint Gateway: the config is invalid from the start of a fresh host.
        std::fs::remove_file(wp.config_dir.path().join("gateway.yaml")).expect("rm");
        let certs = pki.issue("default", "waypoint");
        let mut opts =
            waypoint_proxy::run::RunOptions::new(vec![wp.config_dir.path().to_path_buf()], certs)
                .loopback();
        opts.watch_interval = Duration::from_millis(200);
        let fresh = waypoint_proxy::run::start(opts).await.expect("start");
        let ready = fresh.ready_addr.expect("ready");
        assert_eq!(
            admin_get(ready, "/healthz/ready").await.expect("ready").0,
            503
        );
        // CONNECTs are refused while not ready.
        let client = HboneClient::new(pki.store("default", "sleep"));
        let err =
            waypoint_tests::hbone_client::tunnel(&client, fresh.hbone_addr, &[], "127.0.0.1:9")
                .await
                .expect_err("not ready");
        assert_eq!(err.status().map(|s| s.as_u16()), Some(503));
        // Writing the Gateway makes it ready.
        std::fs::write(wp.config_dir.path().join("gateway.yaml"), WAYPOINT_GATEWAY).expect("write");
        assert!(
            eventually(Duration::from_secs(30), || async move {
                admin_get(ready, "/healthz/ready")
                    .await
                    .map(|r| r.0)
                    .unwrap_or(0)
                    == 200
            })
            .await,
            "must become ready"
        );
    })
    .await
    .expect("test timed out");
}

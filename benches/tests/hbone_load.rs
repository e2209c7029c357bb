//! The HBONE load generator against the host on loopback: a bounded closed-loop run over two
//! connections with several streams each; every request answered 200, none lost.

use std::time::Duration;

use waypoint_benches::hbone_load::{run, LoadConfig, Mode};
use waypoint_tests::echo::http_echo;
use waypoint_tests::pki::Pki;
use waypoint_tests::waypoint::TestWaypoint;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drives_the_host_with_every_request_answered() {
    tokio::time::timeout(Duration::from_secs(120), async {
        let pki = Pki::new("cluster.local");
        // No config: the echo's address is forwarded as is (pass-through), over HTTP/1.1.
        let wp = TestWaypoint::start(&pki, "", 15008).await;
        let echo = http_echo("127.0.0.1:0".parse().expect("addr"), "echo").await;
        let cfg = LoadConfig {
            addr: wp.running.hbone_addr,
            store: pki.store("default", "productpage"),
            expected: vec![pki.id("default", "waypoint")],
            authority: echo.addr.to_string(),
            host: "echo".into(),
            path: "/".into(),
            conns: 2,
            streams: 8,
            mode: Mode::Count { total: 400 },
        };
        let report = run(&cfg, &[]).await.expect("load run");
        assert_eq!(report.errors, 0, "failed exchanges");
        assert_eq!(report.non_200, 0, "responses other than 200");
        assert_eq!(report.ok, 400, "every request answered");
        assert_eq!(report.latency.len(), 400, "one latency per request");
        let json = report.to_json(&cfg);
        assert_eq!(json["requests"], 400);
        assert_eq!(json["streams_per_conn"], 8);
        // The echo saw them all (plus nothing else).
        assert_eq!(echo.hits(), 400);
    })
    .await
    .expect("test timed out");
}

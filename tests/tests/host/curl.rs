//! `waypoint curl`'s client (`waypoint_devtools::curl`) against the host: a request with a
//! method, headers and body reaches the upstream through the waypoint and the answer comes
//! back whole; a refused tunnel is an error carrying the waypoint's CONNECT status.

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Method, StatusCode};
use waypoint_devtools::curl::{head, send, CurlError, Outgoing};
use waypoint_hbone::HboneClient;
use waypoint_tests::echo::http_echo;
use waypoint_tests::pki::Pki;
use waypoint_tests::waypoint::TestWaypoint;

const LIMIT: Duration = Duration::from_secs(60);

fn outgoing(waypoint: std::net::SocketAddr, authority: &str) -> Outgoing {
    Outgoing {
        waypoint,
        expected: Vec::new(),
        authority: authority.to_string(),
        method: Method::GET,
        path: "/".into(),
        host: authority.to_string(),
        headers: Vec::new(),
        body: Bytes::new(),
        timeout: Duration::from_secs(20),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_sends_method_headers_and_body_and_gets_the_whole_answer() {
    tokio::time::timeout(LIMIT, async {
        let pki = Pki::new("cluster.local");
        let wp = TestWaypoint::start(&pki, "", 15008).await;
        let echo = http_echo("127.0.0.1:0".parse().expect("addr"), "echo-curl").await;
        let client = HboneClient::new(pki.store("default", "curl"));
        let mut out = outgoing(wp.running.hbone_addr, &echo.addr.to_string());
        out.method = Method::POST;
        out.path = "/echo/orders?id=7".into();
        out.headers = vec![(
            HeaderName::from_static("end-user"),
            HeaderValue::from_static("jason"),
        )];
        out.body = Bytes::from_static(b"{\"qty\": 2}");
        // The waypoint must present its own identity when the client asks for it.
        out.expected = vec![pki.id("default", "waypoint")];
        let a = send(&client, &out).await.expect("answer");
        assert_eq!(a.status, StatusCode::OK, "{}", head(&a));
        assert_eq!(a.headers["x-served-by"], "echo-curl");
        assert_eq!(a.headers["x-echo-method"], "POST");
        assert_eq!(a.headers["x-echo-pathq"], "/echo/orders?id=7");
        assert_eq!(a.headers["x-echo-h-end-user"], "jason");
        assert_eq!(a.body.as_ref(), b"{\"qty\": 2}", "the body came back whole");
        let printed = head(&a);
        assert!(printed.starts_with("HTTP/1.1 200 OK\n"), "{printed}");
        assert!(printed.contains("x-served-by: echo-curl\n"), "{printed}");

        // Another identity expected of the waypoint: no tunnel, and the error says so.
        out.expected = vec![pki.id("default", "not-the-waypoint")];
        let e = send(&client, &out)
            .await
            .expect_err("wrong waypoint identity");
        assert!(matches!(e, CurlError::Tunnel { .. }), "{e}");
    })
    .await
    .expect("test timed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_reports_a_refused_tunnel_with_its_status() {
    tokio::time::timeout(LIMIT, async {
        let pki = Pki::new("cluster.local");
        let wp = TestWaypoint::start(&pki, "", 15008).await;
        let client = HboneClient::new(pki.store("default", "curl"));
        // Port 0 is no destination: the waypoint answers the CONNECT with 400.
        let e = send(&client, &outgoing(wp.running.hbone_addr, "127.0.0.1:0"))
            .await
            .expect_err("refused");
        match &e {
            CurlError::Refused { status, .. } => assert_eq!(*status, StatusCode::BAD_REQUEST),
            other => panic!("expected a refusal, got {other}"),
        }
        assert!(
            e.to_string()
                .contains("refused the tunnel to 127.0.0.1:0: 400"),
            "{e}"
        );
        // Nothing listening: the error names the address and what to start.
        let closed = waypoint_tests::echo::closed_port().await;
        let e = send(&client, &outgoing(closed, "10.0.0.1:80"))
            .await
            .expect_err("no waypoint");
        assert!(
            e.to_string().contains("is `waypoint run` listening there?"),
            "{e}"
        );
    })
    .await
    .expect("test timed out");
}

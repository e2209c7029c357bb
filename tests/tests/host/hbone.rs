//! End-to-end: our HBONE client → the waypoint host → plaintext upstreams, over loopback;
//! CONNECT refusals (400, 503), HTTP/1.1 and HTTP/2 inside the tunnel, and TCP relay.

use std::time::Duration;

use http::{Method, Request};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use waypoint_hbone::HboneClient;
use waypoint_tests::echo::{closed_port, http_echo, tcp_echo};
use waypoint_tests::hbone_client::{
    collect, get, http1_get, http1_over, http2_over, raw_h2, raw_status, tunnel,
};
use waypoint_tests::pki::Pki;
use waypoint_tests::waypoint::TestWaypoint;

const LIMIT: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http1_through_waypoint_to_plaintext_upstream() {
    tokio::time::timeout(LIMIT, async {
        let pki = Pki::new("cluster.local");
        let wp = TestWaypoint::start(&pki, "", 15008).await;
        let echo = http_echo("127.0.0.1:0".parse().expect("addr"), "echo-1").await;
        let client = HboneClient::new(pki.store("default", "sleep"));
        let r = http1_get(
            &client,
            wp.running.hbone_addr,
            &echo.addr.to_string(),
            "/hello?x=1",
        )
        .await
        .expect("request");
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.header("x-served-by"), Some("echo-1"));
        assert!(r.text().contains("path=/hello?x=1"), "{}", r.text());
        assert!(
            r.text().contains(&format!("host={}", echo.addr)),
            "{}",
            r.text()
        );
        // The waypoint must present its own identity; the client may require it.
        let wp_id = pki.id("default", "waypoint");
        let s = tunnel(
            &client,
            wp.running.hbone_addr,
            &[wp_id],
            &echo.addr.to_string(),
        )
        .await
        .expect("tunnel with expected SAN");
        let mut send = http1_over(s).await.expect("h1");
        let r = collect(
            send.send_request(get("echo", "/again"))
                .await
                .expect("send"),
        )
        .await
        .expect("collect");
        assert_eq!(r.status, 200);
        assert!(r.text().contains("host=echo"), "{}", r.text());
    })
    .await
    .expect("test timed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_prior_knowledge_inside_tunnel() {
    tokio::time::timeout(LIMIT, async {
        let pki = Pki::new("cluster.local");
        let wp = TestWaypoint::start(&pki, "", 15008).await;
        let echo = http_echo("127.0.0.1:0".parse().expect("addr"), "echo-h2").await;
        let client = HboneClient::new(pki.store("default", "sleep"));
        let s = tunnel(&client, wp.running.hbone_addr, &[], &echo.addr.to_string())
            .await
            .expect("tunnel");
        let mut send = http2_over(s).await.expect("h2");
        for i in 0..3 {
            let req = Request::builder()
                .uri(format!("http://echo.default:80/h2/{i}"))
                .body(waypoint_tests::echo::empty())
                .expect("req");
            let r = collect(send.send_request(req).await.expect("send"))
                .await
                .expect("collect");
            assert_eq!(r.status, 200);
            assert!(r.text().contains("version=HTTP/2.0"), "{}", r.text());
            assert!(r.text().contains(&format!("path=/h2/{i}")), "{}", r.text());
        }
        assert_eq!(echo.hits(), 3);
    })
    .await
    .expect("test timed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opaque_tcp_is_relayed_with_half_close() {
    tokio::time::timeout(LIMIT, async {
        let pki = Pki::new("cluster.local");
        let wp = TestWaypoint::start(&pki, "", 15008).await;
        let echo = tcp_echo("127.0.0.1:0".parse().expect("addr")).await;
        let client = HboneClient::new(pki.store("default", "sleep"));
        let mut s = tunnel(&client, wp.running.hbone_addr, &[], &echo.addr.to_string())
            .await
            .expect("tunnel");
        let msg = b"\x00\x01binary protocol hello\xff";
        s.write_all(msg).await.expect("write");
        // Half-close our side; the echo answers and closes, which must reach us intact.
        s.shutdown().await.expect("shutdown");
        let mut got = Vec::new();
        s.read_to_end(&mut got).await.expect("read");
        assert_eq!(&got, msg);
    })
    .await
    .expect("test timed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_400_and_503() {
    tokio::time::timeout(LIMIT, async {
        let pki = Pki::new("cluster.local");
        let wp = TestWaypoint::start(&pki, "", 15008).await;
        let client = HboneClient::new(pki.store("default", "sleep"));
        // Nothing listens at the destination: 503.
        let dead = closed_port().await;
        let err = tunnel(&client, wp.running.hbone_addr, &[], &dead.to_string())
            .await
            .expect_err("must be refused");
        assert_eq!(err.status().map(|s| s.as_u16()), Some(503), "{err}");
        // Authority without a port: 400.
        let err = tunnel(&client, wp.running.hbone_addr, &[], "reviews")
            .await
            .expect_err("must be refused");
        assert_eq!(err.status().map(|s| s.as_u16()), Some(400), "{err}");
        // A non-CONNECT request: 400.
        let mut raw = raw_h2(pki.store("default", "sleep"), wp.running.hbone_addr)
            .await
            .expect("raw h2");
        let req = Request::builder()
            .method(Method::GET)
            .uri("https://127.0.0.1/")
            .body(())
            .expect("req");
        assert_eq!(raw_status(&mut raw, req).await.expect("status"), 400);
        // The connection still serves good CONNECTs afterwards.
        let echo = http_echo("127.0.0.1:0".parse().expect("addr"), "after").await;
        let r = http1_get(&client, wp.running.hbone_addr, &echo.addr.to_string(), "/")
            .await
            .expect("request");
        assert_eq!(r.status, 200);
    })
    .await
    .expect("test timed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_upgrade_is_spliced() {
    tokio::time::timeout(LIMIT, async {
        let pki = Pki::new("cluster.local");
        let wp = TestWaypoint::start(&pki, "", 15008).await;
        let echo = http_echo("127.0.0.1:0".parse().expect("addr"), "ws").await;
        let client = HboneClient::new(pki.store("default", "sleep"));
        let mut s = tunnel(&client, wp.running.hbone_addr, &[], &echo.addr.to_string())
            .await
            .expect("tunnel");
        s.write_all(b"GET /chat HTTP/1.1\r\nhost: echo\r\nconnection: Upgrade\r\nupgrade: websocket\r\n\r\n")
            .await
            .expect("write");
        // Read the 101 head.
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            s.read_exact(&mut byte).await.expect("read head");
            head.push(byte[0]);
        }
        let head = String::from_utf8_lossy(&head).to_lowercase();
        assert!(head.starts_with("http/1.1 101"), "{head}");
        assert!(head.contains("upgrade: echo"), "{head}");
        // Bytes now flow both ways verbatim.
        s.write_all(b"\x81\x05hello").await.expect("write frame");
        let mut got = [0u8; 7];
        s.read_exact(&mut got).await.expect("read frame");
        assert_eq!(&got, b"\x81\x05hello");
    })
    .await
    .expect("test timed out");
}

//! The waypoint's admin (`status --admin HOST:PORT`, e.g. through `kubectl port-forward`):
//! one `GET /config_dump` over plain HTTP/1, bounded in time and size.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::rt::TokioIo;
use serde_json::Value;

/// The admin's answer is refused beyond this size.
const MAX_BODY: usize = 16 * 1024 * 1024;

/// `HOST:PORT` or `http://HOST:PORT[/]`, without the scheme and trailing slash.
fn authority(addr: &str) -> Result<&str, String> {
    let a = addr
        .strip_prefix("http://")
        .unwrap_or(addr)
        .trim_end_matches('/');
    if a.is_empty() || a.contains('/') || !a.contains(':') || addr.starts_with("https://") {
        return Err(format!(
            "admin address {addr:?}: expected HOST:PORT (plain HTTP, as the waypoint's :15000)"
        ));
    }
    Ok(a)
}

/// `GET http://<addr>/config_dump` as JSON, within `timeout`; the error says what failed.
pub async fn config_dump(addr: &str, timeout: Duration) -> Result<Value, String> {
    let auth = authority(addr)?.to_string();
    let get = async {
        let tcp = tokio::net::TcpStream::connect(&auth)
            .await
            .map_err(|e| format!("connecting to {auth}: {e}"))?;
        let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
            .await
            .map_err(|e| format!("HTTP to {auth}: {e}"))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let req = http::Request::builder()
            .uri("/config_dump")
            .header(http::header::HOST, auth.as_str())
            .body(Empty::<Bytes>::new())
            .map_err(|e| format!("building the request: {e}"))?;
        let resp = send
            .send_request(req)
            .await
            .map_err(|e| format!("GET http://{auth}/config_dump: {e}"))?;
        let status = resp.status();
        let body = Limited::new(resp.into_body(), MAX_BODY)
            .collect()
            .await
            .map_err(|e| format!("reading http://{auth}/config_dump: {e}"))?
            .to_bytes();
        if !status.is_success() {
            return Err(format!("GET http://{auth}/config_dump: HTTP {status}"));
        }
        serde_json::from_slice(&body)
            .map_err(|e| format!("http://{auth}/config_dump is not JSON: {e}"))
    };
    tokio::time::timeout(timeout, get)
        .await
        .map_err(|_| format!("no answer from http://{auth}/config_dump in {timeout:?}"))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_host_port_with_an_optional_http_scheme() {
        assert_eq!(authority("127.0.0.1:15000"), Ok("127.0.0.1:15000"));
        assert_eq!(authority("http://localhost:15000/"), Ok("localhost:15000"));
        for bad in ["", "localhost", "https://a:1", "a:1/config_dump"] {
            let e = authority(bad).expect_err("an error");
            assert!(e.contains("HOST:PORT"), "{bad}: {e}");
        }
    }

    #[tokio::test]
    async fn an_unreachable_admin_is_an_error_naming_it() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = l.local_addr().expect("addr").to_string();
        drop(l);
        let e = config_dump(&addr, Duration::from_secs(5))
            .await
            .expect_err("an error");
        assert!(e.contains(&addr), "{e}");
    }
}

//! Harness of the security suite: a backend that records every byte it receives (so a test can
//! assert nothing forbidden reached it), raw HTTP/1.1 over a tunnel, and a waypoint started
//! with short timeouts.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use waypoint_hbone::timeouts::Timeouts;

use crate::pki::Pki;
use crate::waypoint::TestWaypoint;

/// A plaintext backend that logs every byte received and the request target of every
/// HTTP/1.1 request head, answering each with `200` and the request target as body.
#[derive(Debug)]
pub struct Recorder {
    pub addr: SocketAddr,
    log: Arc<Mutex<Log>>,
    task: JoinHandle<()>,
}

#[derive(Debug, Default)]
struct Log {
    bytes: Vec<u8>,
    targets: Vec<String>,
    connections: usize,
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Recorder {
    /// Listen on `bind` (loopback).
    pub async fn start(bind: SocketAddr) -> Recorder {
        let listener = TcpListener::bind(bind).await.expect("bind recorder");
        let addr = listener.local_addr().expect("addr");
        let log = Arc::new(Mutex::new(Log::default()));
        let l = log.clone();
        let task = tokio::spawn(async move {
            let mut conns = tokio::task::JoinSet::new();
            loop {
                while conns.try_join_next().is_some() {}
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                if let Ok(mut g) = l.lock() {
                    g.connections += 1;
                }
                conns.spawn(serve(tcp, l.clone()));
            }
        });
        Recorder { addr, log, task }
    }

    /// Every byte received so far, lossily as text.
    pub fn received(&self) -> String {
        self.log
            .lock()
            .map(|g| String::from_utf8_lossy(&g.bytes).into_owned())
            .unwrap_or_default()
    }

    /// Request targets of the request heads received, in order.
    pub fn targets(&self) -> Vec<String> {
        self.log
            .lock()
            .map(|g| g.targets.clone())
            .unwrap_or_default()
    }

    /// Connections accepted.
    pub fn connections(&self) -> usize {
        self.log.lock().map(|g| g.connections).unwrap_or(0)
    }

    /// Forget what was recorded.
    pub fn clear(&self) {
        if let Ok(mut g) = self.log.lock() {
            *g = Log::default();
        }
    }
}

async fn serve(mut tcp: tokio::net::TcpStream, log: Arc<Mutex<Log>>) {
    let mut pending: Vec<u8> = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = match tcp.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        pending.extend_from_slice(&buf[..n]);
        if let Ok(mut g) = log.lock() {
            g.bytes.extend_from_slice(&buf[..n]);
        }
        // Answer every complete head (the suite sends no request bodies).
        while let Some(end) = find(&pending, b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&pending[..end]).into_owned();
            pending.drain(..end + 4);
            let target = head
                .lines()
                .next()
                .and_then(|l| l.split(' ').nth(1))
                .unwrap_or("")
                .to_string();
            if let Ok(mut g) = log.lock() {
                g.targets.push(target.clone());
            }
            let resp = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: {}\r\n\r\n{target}",
                target.len()
            );
            if tcp.write_all(resp.as_bytes()).await.is_err() {
                return;
            }
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// A response read off a raw HTTP/1.1 connection.
#[derive(Debug, Clone)]
pub struct RawResponse {
    pub status: u16,
    pub head: String,
    pub body: String,
}

/// Read one HTTP/1.1 response (head and `content-length` body) from `s`; `None` when the
/// connection closes (or errs) first or nothing arrives within `limit`.
pub async fn read_response<S: AsyncRead + Unpin>(
    s: &mut S,
    limit: Duration,
) -> Option<RawResponse> {
    tokio::time::timeout(limit, async {
        let mut data = Vec::new();
        let mut buf = [0u8; 4096];
        let end = loop {
            if let Some(e) = find(&data, b"\r\n\r\n") {
                break e;
            }
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return None,
                Ok(n) => data.extend_from_slice(&buf[..n]),
            }
        };
        let head = String::from_utf8_lossy(&data[..end]).into_owned();
        let status = head.split(' ').nth(1)?.parse().ok()?;
        let len: usize = head
            .lines()
            .filter_map(|l| l.split_once(':'))
            .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-length"))
            .and_then(|(_, v)| v.trim().parse().ok())
            .unwrap_or(0);
        let mut body = data[end + 4..].to_vec();
        while body.len() < len {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => body.extend_from_slice(&buf[..n]),
            }
        }
        Some(RawResponse {
            status,
            head,
            body: String::from_utf8_lossy(&body).into_owned(),
        })
    })
    .await
    .ok()
    .flatten()
}

/// Write `GET`-style request bytes for `method target` with `host` and extra header lines.
pub async fn write_request<S: AsyncWrite + Unpin>(
    s: &mut S,
    method: &str,
    target: &str,
    host: &str,
    extra: &str,
) -> std::io::Result<()> {
    let req = format!("{method} {target} HTTP/1.1\r\nhost: {host}\r\n{extra}\r\n");
    s.write_all(req.as_bytes()).await?;
    s.flush().await
}

/// True when the peer closes `s` (EOF or error) within `limit` without sending a byte.
pub async fn closed_without_reply<S: AsyncRead + Unpin>(s: &mut S, limit: Duration) -> bool {
    let mut buf = [0u8; 256];
    matches!(
        tokio::time::timeout(limit, s.read(&mut buf)).await,
        Ok(Ok(0)) | Ok(Err(_))
    )
}

/// Start the waypoint (`default/waypoint`, every listener on loopback) with the waypoint
/// Gateway, `yaml`, and `timeouts`.
pub async fn start_waypoint(pki: &Pki, yaml: &str, timeouts: Timeouts) -> TestWaypoint {
    let wp = TestWaypoint::start_with(pki, yaml, |o| o.timeouts = timeouts).await;
    let errs = wp.running.config.last_errors();
    assert!(
        wp.running.config.current().is_some(),
        "config rejected: {errs:?}"
    );
    wp
}

/// The mesh ConfigMap (`istio-system/istio`) with `pathNormalization` set to `mode`.
pub fn mesh_config(mode: &str) -> String {
    format!(
        r#"
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: istio
  namespace: istio-system
data:
  mesh: |
    pathNormalization:
      normalization: {mode}
"#
    )
}

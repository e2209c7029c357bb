//! Client side of the tests: HTTP/1.1 and HTTP/2 over an HBONE tunnel opened with the host's
//! own pooled [`HboneClient`], plus a raw TLS+HTTP/2 connection for protocol-error cases.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, Request, Response};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use waypoint_hbone::tls::{CertStore, Identity};
use waypoint_hbone::{H2Stream, HboneClient, HboneError};

use crate::echo::Body;

/// Headers ztunnel sends on CONNECT.
pub fn ztunnel_headers(src: SocketAddr, host: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    if let Ok(v) = format!("for=\"{src}\";host={host}").parse() {
        h.insert("forwarded", v);
    }
    if let Ok(v) =
        "k8s.namespace.name=default,k8s.deployment.name=sleep,service.name=sleep,service.version=v1"
            .parse()
    {
        h.insert("baggage", v);
    }
    if let Ok(v) = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".parse() {
        h.insert("traceparent", v);
    }
    h
}

/// Open a tunnel to `authority` through the waypoint at `waypoint`.
pub async fn tunnel(
    client: &HboneClient,
    waypoint: SocketAddr,
    expected: &[Identity],
    authority: &str,
) -> Result<H2Stream, HboneError> {
    let src: SocketAddr = "10.0.0.7:43210".parse().expect("addr");
    client
        .connect(
            waypoint,
            expected,
            authority,
            ztunnel_headers(src, "echo.default.svc.cluster.local"),
        )
        .await
}

/// An HTTP/1.1 sender over a fresh tunnel.
pub async fn http1_over(
    stream: H2Stream,
) -> anyhow::Result<hyper::client::conn::http1::SendRequest<Body>> {
    let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(send)
}

/// An HTTP/2 (prior knowledge) sender over a fresh tunnel.
pub async fn http2_over(
    stream: H2Stream,
) -> anyhow::Result<hyper::client::conn::http2::SendRequest<Body>> {
    let (send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(send)
}

/// A response with its body collected.
#[derive(Debug)]
pub struct Collected {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Collected {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

pub async fn collect(resp: Response<Incoming>) -> anyhow::Result<Collected> {
    let (parts, body) = resp.into_parts();
    Ok(Collected {
        status: parts.status.as_u16(),
        headers: parts.headers,
        body: body.collect().await?.to_bytes(),
    })
}

/// A GET request with a Host header.
pub fn get(host: &str, path: &str) -> Request<Body> {
    Request::builder()
        .uri(path)
        .header("host", host)
        .body(crate::echo::empty())
        .expect("request")
}

/// One HTTP/1.1 GET through a new tunnel.
pub async fn http1_get(
    client: &HboneClient,
    waypoint: SocketAddr,
    authority: &str,
    path: &str,
) -> anyhow::Result<Collected> {
    http1_get_as(client, waypoint, &[], authority, authority, path).await
}

/// One HTTP/1.1 GET with Host `host` through a new tunnel to `authority`, the waypoint
/// expected to present one of `expected` (any mesh identity when empty).
pub async fn http1_get_as(
    client: &HboneClient,
    waypoint: SocketAddr,
    expected: &[Identity],
    authority: &str,
    host: &str,
    path: &str,
) -> anyhow::Result<Collected> {
    let s = tunnel(client, waypoint, expected, authority).await?;
    let mut send = http1_over(s).await?;
    collect(send.send_request(get(host, path)).await?).await
}

/// A raw mTLS + HTTP/2 connection (no CONNECT semantics), for sending malformed requests.
pub async fn raw_h2(
    store: Arc<CertStore>,
    addr: SocketAddr,
) -> anyhow::Result<h2::client::SendRequest<Bytes>> {
    let cfg = waypoint_hbone::tls::config::client_config(store, vec![])?;
    let tcp = TcpStream::connect(addr).await?;
    let tls = tokio_rustls::TlsConnector::from(cfg)
        .connect(ServerName::IpAddress(addr.ip().into()), tcp)
        .await?;
    let (send, conn) = h2::client::handshake(tls).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(send)
}

/// Send one request on a raw HTTP/2 connection; return its status.
pub async fn raw_status(
    send: &mut h2::client::SendRequest<Bytes>,
    req: Request<()>,
) -> anyhow::Result<u16> {
    let mut ready = send.clone().ready().await?;
    let (resp, _stream) = ready.send_request(req, true)?;
    Ok(resp.await?.status().as_u16())
}

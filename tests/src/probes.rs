//! Raw probes of the host's listeners, as an attacker sends them: HTTP/1.1 bytes written
//! verbatim (no client-side path normalization), mTLS with any certificate or ALPN, and waits
//! for the server to close a connection.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::ClientConfig;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use waypoint_hbone::tls::verify::MeshServerVerifier;
use waypoint_hbone::tls::CertStore;
use waypoint_proxy::run::{start, RunOptions, Running};

use crate::pki::{Pki, TempDir};
use crate::waypoint::WAYPOINT_GATEWAY;

/// Start `default/waypoint` of `pki` with the waypoint Gateway plus `yaml`, every listener on
/// loopback, after `tune` adjusted the options (timeouts, addresses).
pub async fn start_with(
    pki: &Pki,
    yaml: &str,
    tune: impl FnOnce(&mut RunOptions),
) -> (Running, TempDir) {
    let dir = TempDir::new("config");
    write(dir.path(), "gateway.yaml", WAYPOINT_GATEWAY);
    write(dir.path(), "config.yaml", yaml);
    let mut opts = RunOptions::new(
        vec![dir.path().to_path_buf()],
        pki.issue("default", "waypoint"),
    )
    .loopback();
    opts.watch_interval = Duration::from_millis(200);
    tune(&mut opts);
    (start(opts).await.expect("start waypoint"), dir)
}

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).expect("write config");
}

/// Send `request` (raw bytes, e.g. `GET /x HTTP/1.1\r\n...`) and read until the server closes
/// or 5 s pass; returns the status code (0 if none) and the whole response text.
pub async fn raw_http(addr: SocketAddr, request: &str) -> (u16, String) {
    let Ok(mut tcp) = TcpStream::connect(addr).await else {
        return (0, String::new());
    };
    if tcp.write_all(request.as_bytes()).await.is_err() {
        return (0, String::new());
    }
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut out)).await;
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, text)
}

/// Read from `io` until the peer closes (EOF or error). `true` if that happened within
/// `limit`; data received meanwhile is discarded.
pub async fn closed_within<R: AsyncRead + Unpin>(io: &mut R, limit: Duration) -> bool {
    let mut buf = [0u8; 4096];
    let until_closed = async {
        loop {
            match io.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    tokio::time::timeout(limit, until_closed).await.is_ok()
}

/// A mesh client TLS config presenting `cert_pem`/`key_pem` (any SANs), verifying the server
/// against `trust`'s roots, offering ALPN `h2` when `alpn_h2`.
pub fn client_tls(
    trust: Arc<CertStore>,
    cert_pem: &str,
    key_pem: &str,
    alpn_h2: bool,
) -> Arc<ClientConfig> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
        .collect::<Result<_, _>>()
        .expect("certificate PEM");
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).expect("key PEM");
    let mut cfg = ClientConfig::builder_with_provider(waypoint_hbone::tls::config::provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("TLS 1.3")
        .dangerous()
        .with_custom_certificate_verifier(MeshServerVerifier::new(trust, vec![]))
        .with_client_auth_cert(chain, key)
        .expect("client certificate");
    if alpn_h2 {
        cfg.alpn_protocols = vec![b"h2".to_vec()];
    }
    cfg.enable_sni = false;
    Arc::new(cfg)
}

/// Open TLS with `tls` to `addr`.
pub async fn tls_connect(
    tls: Arc<ClientConfig>,
    addr: SocketAddr,
) -> anyhow::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    Ok(tokio_rustls::TlsConnector::from(tls)
        .connect(ServerName::IpAddress(addr.ip().into()), tcp)
        .await?)
}

/// TLS with `tls`, HTTP/2, one `CONNECT authority`: the response status, or why none came.
pub async fn connect_status(
    tls: Arc<ClientConfig>,
    addr: SocketAddr,
    authority: &str,
) -> anyhow::Result<u16> {
    let io = tls_connect(tls, addr).await?;
    let (send, conn) = h2::client::handshake(io).await?;
    let conn = tokio::spawn(conn);
    let req = http::Request::builder()
        .method(http::Method::CONNECT)
        .uri(authority)
        .body(())?;
    let status = tokio::time::timeout(Duration::from_secs(5), async {
        let mut send = send.ready().await?;
        let (resp, _stream) = send.send_request(req, false)?;
        Ok::<_, anyhow::Error>(resp.await?.status().as_u16())
    })
    .await
    .map_err(|_| anyhow::anyhow!("no CONNECT response in 5 s"))?;
    conn.abort();
    status
}

/// An HTTP/2 connection over `tls` whose connection task's end can be awaited.
pub async fn h2_connection(
    tls: Arc<ClientConfig>,
    addr: SocketAddr,
) -> anyhow::Result<(
    h2::client::SendRequest<Bytes>,
    tokio::task::JoinHandle<Result<(), h2::Error>>,
)> {
    let io = tls_connect(tls, addr).await?;
    let (send, conn) = h2::client::handshake(io).await?;
    Ok((send, tokio::spawn(conn)))
}

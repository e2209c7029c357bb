//! Attacker-side harness of the Envoy security rows: a backend that records every request it
//! receives, and raw TLS / HTTP/2 clients of the HBONE port with any ALPN and any certificate.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_rustls::client::TlsStream;

/// One request as the backend received it.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: String,
    /// Path and query exactly as received.
    pub path: String,
    /// Header names lowercased.
    pub headers: Vec<(String, String)>,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// What a [`Recorder`] received, shareable with other threads.
#[derive(Debug, Clone, Default)]
pub struct Log(Arc<Mutex<Vec<Received>>>);

impl Log {
    fn push(&self, r: Received) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).push(r);
    }

    /// Every request received so far.
    pub fn requests(&self) -> Vec<Received> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The paths received so far.
    pub fn paths(&self) -> Vec<String> {
        self.requests().into_iter().map(|r| r.path).collect()
    }
}

/// A backend (HTTP/1.1 and HTTP/2 prior knowledge, no upgrades) that answers every request
/// `200 path=<path>` and records it; aborted on drop.
#[derive(Debug)]
pub struct Recorder {
    pub addr: SocketAddr,
    pub log: Log,
    task: JoinHandle<()>,
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Recorder {
    pub async fn start(bind: SocketAddr) -> Recorder {
        let listener = TcpListener::bind(bind).await.expect("bind recorder");
        let addr = listener.local_addr().expect("addr");
        let received = Log::default();
        let log = received.clone();
        let task = tokio::spawn(async move {
            let mut conns = tokio::task::JoinSet::new();
            loop {
                while conns.try_join_next().is_some() {}
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let log = log.clone();
                conns.spawn(async move {
                    let svc = service_fn(move |req: Request<Incoming>| {
                        let path = req
                            .uri()
                            .path_and_query()
                            .map_or("/".to_string(), |p| p.as_str().to_string());
                        let r = Received {
                            method: req.method().to_string(),
                            path: path.clone(),
                            headers: req
                                .headers()
                                .iter()
                                .map(|(k, v)| {
                                    (
                                        k.as_str().to_string(),
                                        v.to_str().unwrap_or("?").to_string(),
                                    )
                                })
                                .collect(),
                        };
                        log.push(r);
                        async move {
                            Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(format!(
                                "path={path}\n"
                            )))))
                        }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(tcp), svc)
                        .await;
                });
            }
        });
        Recorder {
            addr,
            log: received,
            task,
        }
    }
}

/// A client certificate and its PKCS#8 key.
#[derive(Debug, Clone)]
pub struct ClientCert {
    pub cert: CertificateDer<'static>,
    pub key: Vec<u8>,
}

/// A client certificate signed by the mesh CA in `ca_dir` (a [`crate::pki::Pki`]'s directory)
/// with one URI SAN per entry of `uris` (the mesh CA itself never issues more than one).
pub fn client_cert(ca_dir: &Path, uris: &[&str]) -> ClientCert {
    let ca_pem = std::fs::read_to_string(ca_dir.join("ca.pem")).expect("read ca.pem");
    let ca_key_pem = std::fs::read_to_string(ca_dir.join("ca-key.pem")).expect("read ca-key.pem");
    let ca_key = rcgen::KeyPair::from_pem(&ca_key_pem).expect("CA key");
    let ca = rcgen::CertificateParams::from_ca_cert_pem(&ca_pem)
        .expect("CA params")
        .self_signed(&ca_key)
        .expect("CA issuer");
    let key = rcgen::KeyPair::generate().expect("key");
    let mut params = rcgen::CertificateParams::default();
    for u in uris {
        params.subject_alt_names.push(rcgen::SanType::URI(
            rcgen::Ia5String::try_from(*u).expect("URI SAN"),
        ));
    }
    params.extended_key_usages = vec![
        rcgen::ExtendedKeyUsagePurpose::ServerAuth,
        rcgen::ExtendedKeyUsagePurpose::ClientAuth,
    ];
    let cert = params.signed_by(&key, &ca, &ca_key).expect("sign");
    ClientCert {
        cert: CertificateDer::from(cert.der().to_vec()),
        key: key.serialize_der(),
    }
}

/// Accepts any server certificate: these clients attack the waypoint, they do not check it.
#[derive(Debug)]
struct AnyServer(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AnyServer {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// TLS to `addr` presenting `cert`, offering `alpn` (empty: no ALPN extension at all).
pub async fn tls_connect(
    addr: SocketAddr,
    cert: &ClientCert,
    alpn: &[&[u8]],
) -> std::io::Result<TlsStream<TcpStream>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(std::io::Error::other)?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyServer(provider)))
        .with_client_auth_cert(
            vec![cert.cert.clone()],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(cert.key.clone())),
        )
        .map_err(std::io::Error::other)?;
    cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::IpAddress(addr.ip().into());
    tokio_rustls::TlsConnector::from(Arc::new(cfg))
        .connect(name, tcp)
        .await
}

/// What a raw CONNECT + one HTTP/1.1 request got back.
#[derive(Debug)]
pub enum Tunnelled {
    /// The CONNECT itself was answered with this non-2xx status.
    Refused(u16),
    /// The tunnel opened; the bytes read back until the stream ended (or 5 s passed).
    Opened(Vec<u8>),
}

/// On an established TLS connection: HTTP/2, `CONNECT authority`, then `request` (raw
/// HTTP/1.1 bytes) inside the tunnel.
pub async fn raw_connect(
    tls: TlsStream<TcpStream>,
    authority: &str,
    request: &[u8],
) -> anyhow::Result<Tunnelled> {
    let (send, conn) = h2::client::handshake(tls).await?;
    let conn = tokio::spawn(async move {
        let _ = conn.await;
    });
    let mut send = send.ready().await?;
    let req = Request::builder()
        .method(http::Method::CONNECT)
        .uri(authority)
        .body(())?;
    let (resp, mut stream) = send.send_request(req, false)?;
    let resp = resp.await?;
    if !resp.status().is_success() {
        conn.abort();
        return Ok(Tunnelled::Refused(resp.status().as_u16()));
    }
    stream.send_data(Bytes::copy_from_slice(request), false)?;
    let mut body = resp.into_body();
    let mut out = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while let Ok(Some(chunk)) = tokio::time::timeout_at(deadline, body.data()).await {
        let chunk = chunk?;
        let _ = body.flow_control().release_capacity(chunk.len());
        out.extend_from_slice(&chunk);
        if response_complete(&out) {
            break;
        }
    }
    conn.abort();
    Ok(Tunnelled::Opened(out))
}

/// A whole HTTP/1.1 response with a content-length is in `raw`.
fn response_complete(raw: &[u8]) -> bool {
    let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") else {
        return false;
    };
    let head = String::from_utf8_lossy(&raw[..end]).to_ascii_lowercase();
    head.split("\r\n")
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok())
        .is_some_and(|n| raw.len() >= end + 4 + n)
}

/// Read from `io` until it ends (EOF or error); the time that took, or `None` if it was
/// still open after `limit`.
pub async fn time_to_close<R: AsyncRead + Unpin>(io: &mut R, limit: Duration) -> Option<Duration> {
    let start = Instant::now();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(deadline, io.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some(start.elapsed()),
            Ok(Ok(_)) => {}
        }
    }
}

/// Write `bytes` one at a time, `gap` apart, until the peer closes or everything is sent;
/// returns the bytes the peer sent back meanwhile and whether it closed.
pub async fn dribble<S: AsyncRead + tokio::io::AsyncWrite + Unpin>(
    io: &mut S,
    bytes: &[u8],
    gap: Duration,
) -> (Vec<u8>, bool) {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    for b in bytes {
        if io.write_all(&[*b]).await.is_err() || io.flush().await.is_err() {
            return (got, true);
        }
        let deadline = tokio::time::Instant::now() + gap;
        loop {
            match tokio::time::timeout_at(deadline, io.read(&mut buf)).await {
                Err(_) => break,
                Ok(Ok(0)) | Ok(Err(_)) => return (got, true),
                Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
            }
        }
    }
    (got, false)
}

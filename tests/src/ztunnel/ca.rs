//! A stand-in for istiod's CA: `istio.v1.auth.IstioCertificateService/CreateCertificate` over
//! gRPC (HTTP/2, TLS) signing ztunnel's CSRs with the test mesh CA ([`DevCa::sign_csr`]).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use bytes::{Bytes, BytesMut};
use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair, SanType};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;
use waypoint_devtools::dev_ca::DevCa;

use super::proto;

const METHOD: &str = "/istio.v1.auth.IstioCertificateService/CreateCertificate";

/// A running CA endpoint; aborted on drop.
#[derive(Debug)]
pub struct CaServer {
    pub addr: SocketAddr,
    /// Root of the CA endpoint's own TLS certificate (ztunnel's `CA_ROOT_CA`).
    pub tls_root: PathBuf,
    /// SPIFFE identities signed so far, in order.
    pub issued: Arc<Mutex<Vec<String>>>,
    task: JoinHandle<()>,
}

impl Drop for CaServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A TLS server config for `ip` (IP SAN) with a fresh control-plane root written to `root`.
fn tls_config(ip: std::net::IpAddr, root: &Path) -> anyhow::Result<Arc<rustls::ServerConfig>> {
    let ca_key = KeyPair::generate()?;
    let mut ca = CertificateParams::default();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca.self_signed(&ca_key)?;
    std::fs::write(root, ca_cert.pem())?;
    let key = KeyPair::generate()?;
    let mut leaf = CertificateParams::new(vec!["istiod.istio-system.svc".to_string()])?;
    leaf.subject_alt_names.push(SanType::IpAddress(ip));
    let cert = leaf.signed_by(&key, &ca_cert, &ca_key)?;
    let key_der = rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into());
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_no_client_auth()
        .with_single_cert(vec![cert.der().clone()], key_der)?;
    cfg.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(cfg))
}

impl CaServer {
    /// Serve on `bind` (its IP goes into the TLS certificate), signing with `ca`.
    pub async fn start(bind: SocketAddr, ca: DevCa, dir: &Path) -> anyhow::Result<CaServer> {
        let tls_root = dir.join("ca-endpoint-root.pem");
        let acceptor = TlsAcceptor::from(tls_config(bind.ip(), &tls_root)?);
        let listener = TcpListener::bind(bind).await?;
        let addr = listener.local_addr()?;
        let issued = Arc::new(Mutex::new(Vec::new()));
        let ca = Arc::new(ca);
        let log = issued.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let (acceptor, ca, log) = (acceptor.clone(), ca.clone(), log.clone());
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let Ok(mut conn) = h2::server::handshake(tls).await else {
                        return;
                    };
                    while let Some(Ok((req, respond))) = conn.accept().await {
                        let (ca, log) = (ca.clone(), log.clone());
                        tokio::spawn(async move {
                            let _ = answer(req, respond, &ca, &log).await;
                        });
                    }
                });
            }
        });
        Ok(CaServer {
            addr,
            tls_root,
            issued,
            task,
        })
    }

    /// The `CA_ADDRESS` ztunnel dials.
    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    pub fn issued(&self) -> Vec<String> {
        self.issued.lock().map(|v| v.clone()).unwrap_or_default()
    }
}

/// Sign the request's CSR: the chain is `[leaf, root]` (the last entry is the trust root, as
/// istiod answers).
fn sign(body: &[u8], ca: &DevCa) -> Result<(String, Vec<String>), String> {
    let msg = proto::grpc_unframe(body).ok_or("bad gRPC frame")?;
    let csr = proto::request_csr(msg).ok_or("no csr in request")?;
    let (id, leaf) = ca.sign_csr(&csr).map_err(|e| format!("{e:#}"))?;
    Ok((id.to_string(), vec![leaf, ca.ca_pem()]))
}

async fn answer(
    req: http::Request<h2::RecvStream>,
    mut respond: h2::server::SendResponse<Bytes>,
    ca: &DevCa,
    log: &Mutex<Vec<String>>,
) -> anyhow::Result<()> {
    let path = req.uri().path().to_string();
    let mut recv = req.into_body();
    let mut body = BytesMut::new();
    while let Some(chunk) = recv.data().await {
        let chunk = chunk?;
        let _ = recv.flow_control().release_capacity(chunk.len());
        body.extend_from_slice(&chunk);
    }
    let result = if path == METHOD {
        sign(&body, ca)
    } else {
        Err(format!("unknown method {path}"))
    };
    let resp = http::Response::builder()
        .status(200)
        .header("content-type", "application/grpc")
        .body(())?;
    let mut trailers = http::HeaderMap::new();
    match result {
        Ok((id, chain)) => {
            if let Ok(mut l) = log.lock() {
                l.push(id);
            }
            let mut send = respond.send_response(resp, false)?;
            send.send_data(
                Bytes::from(proto::grpc_frame(&proto::response(&chain))),
                false,
            )?;
            trailers.insert("grpc-status", http::HeaderValue::from_static("0"));
            send.send_trailers(trailers)?;
        }
        Err(msg) => {
            // Trailers-only error response: INVALID_ARGUMENT.
            let mut send = respond.send_response(resp, false)?;
            trailers.insert("grpc-status", http::HeaderValue::from_static("3"));
            trailers.insert(
                "grpc-message",
                http::HeaderValue::from_str(&msg.replace(['\r', '\n'], " "))
                    .unwrap_or(http::HeaderValue::from_static("error")),
            );
            send.send_trailers(trailers)?;
        }
    }
    Ok(())
}

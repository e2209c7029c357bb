//! A fake Istio sidecar (TLS on the pod's port requiring a mesh client certificate and Istio's
//! ALPN, answering HTTP with what it saw) and the sidecar scenario both modes run.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::server::{Acceptor, ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_rustls::LazyConfigAcceptor;
use waypoint_hbone::tls::san::spiffe_id;
use waypoint_hbone::tls::verify::MeshClientVerifier;
use waypoint_hbone::tls::CertStore;

use crate::echo::body;
use crate::pki::Pki;
use crate::traffic_policy::{get, Proxy};

/// The ALPN a sidecar's inbound listener offers (istiod `ALPNDownstreamWithMxc`).
const SIDECAR_ALPN: [&[u8]; 3] = [b"istio-peer-exchange", b"h2", b"http/1.1"];

/// A running fake sidecar; aborted on drop.
#[derive(Debug)]
pub struct FakeSidecar {
    pub addr: SocketAddr,
    /// TLS handshakes attempted (ClientHellos read).
    pub hellos: Arc<AtomicUsize>,
    /// HTTP requests answered.
    pub requests: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl Drop for FakeSidecar {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[derive(Debug)]
struct StoreCert(Arc<CertStore>);

impl ResolvesServerCert for StoreCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.current().material.certified_key.clone())
    }
}

/// Serve as a sidecar on `bind` presenting `store`'s identity: mTLS with a client certificate
/// of the mesh CA required, connections that do not offer the `istio` ALPN refused (a
/// sidecar's mTLS filter chain matches on it), then HTTP/1.1 or HTTP/2 (sniffed, as Envoy's
/// inbound does). Each response carries `x-sidecar-peer` (the client's SPIFFE identity),
/// `x-sidecar-alpn` (the ALPN list offered) and `x-sidecar-version`.
pub async fn fake_sidecar(bind: SocketAddr, store: Arc<CertStore>) -> FakeSidecar {
    let listener = TcpListener::bind(bind).await.expect("bind fake sidecar");
    let addr = listener.local_addr().expect("addr");
    let mut cfg = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
    .expect("versions")
    .with_client_cert_verifier(MeshClientVerifier::new(store.clone()))
    .with_cert_resolver(Arc::new(StoreCert(store)));
    cfg.alpn_protocols = SIDECAR_ALPN.iter().map(|a| a.to_vec()).collect();
    let cfg = Arc::new(cfg);
    let (hellos, requests) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (h, r) = (hellos.clone(), requests.clone());
    let task = tokio::spawn(async move {
        let mut conns = tokio::task::JoinSet::new();
        loop {
            while conns.try_join_next().is_some() {}
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            let (cfg, h, r) = (cfg.clone(), h.clone(), r.clone());
            conns.spawn(async move {
                let Ok(start) = LazyConfigAcceptor::new(Acceptor::default(), tcp).await else {
                    return;
                };
                h.fetch_add(1, Ordering::SeqCst);
                let offered: Vec<String> = start
                    .client_hello()
                    .alpn()
                    .map(|l| l.map(|a| String::from_utf8_lossy(a).into_owned()).collect())
                    .unwrap_or_default();
                if !offered.iter().any(|a| a == "istio") {
                    return;
                }
                let Ok(tls) = start.into_stream(cfg).await else {
                    return;
                };
                let peer = tls
                    .get_ref()
                    .1
                    .peer_certificates()
                    .and_then(|c| c.first())
                    .and_then(|c| spiffe_id(c).ok())
                    .map(|id| id.to_string())
                    .unwrap_or_default();
                let alpn = offered.join(",");
                let svc = service_fn(move |req: Request<Incoming>| {
                    r.fetch_add(1, Ordering::SeqCst);
                    let version = format!("{:?}", req.version());
                    let resp = Response::builder()
                        .header("x-sidecar-peer", peer.clone())
                        .header("x-sidecar-alpn", alpn.clone())
                        .header("x-sidecar-version", version)
                        .body(body("answered by the sidecar\n"));
                    async move { resp }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tls), svc)
                    .await;
            });
        }
    });
    FakeSidecar {
        addr,
        hellos,
        requests,
        task,
    }
}

/// A Service `name` (VIP `vip`, port 80 named `port_name` → `target_port`) with one pod at
/// `ip` running as `default/<name>` with an Istio sidecar (`security.istio.io/tlsMode: istio`,
/// no HBONE tunnel label, not ambient).
pub fn sidecar_service(
    name: &str,
    vip: &str,
    port_name: &str,
    target_port: u16,
    ip: IpAddr,
) -> String {
    // The Service alone (no pods of the common kind), then the sidecar pod.
    let service =
        crate::manifests::service_with_pods(name, vip, port_name, target_port, &[], false);
    format!(
        r#"{service}
---
apiVersion: v1
kind: Pod
metadata:
  name: {name}-0
  namespace: default
  labels:
    app: {name}
    security.istio.io/tlsMode: istio
    service.istio.io/canonical-name: {name}
  annotations:
    sidecar.istio.io/status: '{{"containers":["istio-proxy"]}}'
spec:
  serviceAccountName: {name}
  containers:
  - name: app
    image: example
  - name: istio-proxy
    image: proxyv2
status:
  podIP: {ip}
"#
    )
}

/// Three sidecar pods: `sidecar` (HTTP/1.1 port), `sidecar-h2` (`http2` port) and `imposter`,
/// whose sidecar presents `default/someone-else` instead of its service account.
#[derive(Debug)]
pub struct Sidecars {
    pub yaml: String,
    net: u8,
    http1: FakeSidecar,
    http2: FakeSidecar,
    imposter: FakeSidecar,
}

impl Sidecars {
    pub async fn setup(net: u8, pki: &Pki) -> Sidecars {
        let ip = |h: u8| IpAddr::from([127, net, 0, h]);
        let http1 = fake_sidecar(SocketAddr::new(ip(1), 0), pki.store("default", "sidecar")).await;
        let port = http1.addr.port();
        let http2 = fake_sidecar(
            SocketAddr::new(ip(2), port),
            pki.store("default", "sidecar-h2"),
        )
        .await;
        let imposter = fake_sidecar(
            SocketAddr::new(ip(3), port),
            pki.store("default", "someone-else"),
        )
        .await;
        let yaml = [
            sidecar_service("sidecar", &format!("10.96.{net}.1"), "http", port, ip(1)),
            sidecar_service(
                "sidecar-h2",
                &format!("10.96.{net}.2"),
                "http2",
                port,
                ip(2),
            ),
            sidecar_service("imposter", &format!("10.96.{net}.3"), "http", port, ip(3)),
        ]
        .concat();
        Sidecars {
            yaml,
            net,
            http1,
            http2,
            imposter,
        }
    }

    /// Each service through the waypoint `p` running as `waypoint` (a SPIFFE identity).
    pub async fn check(&self, p: &Proxy, waypoint: &str) {
        for (vip, alpn, version, fake) in [
            (1, "istio-peer-exchange,istio", "HTTP/1.1", &self.http1),
            (2, "istio-peer-exchange,istio,h2", "HTTP/2.0", &self.http2),
        ] {
            let authority = format!("10.96.{}.{vip}:80", self.net);
            let r = get(p, &authority, "/", &[])
                .await
                .unwrap_or_else(|e| panic!("{authority}: {e}"));
            assert_eq!(r.status, 200, "{authority}: {r:?}");
            assert_eq!(r.header("x-sidecar-peer"), Some(waypoint), "{authority}");
            assert_eq!(r.header("x-sidecar-alpn"), Some(alpn), "{authority}");
            assert_eq!(r.header("x-sidecar-version"), Some(version), "{authority}");
            assert!(fake.requests.load(Ordering::SeqCst) >= 1);
        }
        let authority = format!("10.96.{}.3:80", self.net);
        let r = get(p, &authority, "/", &[])
            .await
            .unwrap_or_else(|e| panic!("{authority}: {e}"));
        assert_eq!(r.status, 503, "wrong identity must not be served: {r:?}");
        assert!(
            self.imposter.hellos.load(Ordering::SeqCst) >= 1,
            "the waypoint tried the imposter"
        );
        assert_eq!(self.imposter.requests.load(Ordering::SeqCst), 0);
    }
}

//! rustls configurations for HBONE (TLS 1.3 only, AES-GCM suites only, as ztunnel, ALPN h2) and
//! for Istio mTLS to sidecars; certificates resolved from the live [`CertStore`] at each handshake.

use std::sync::Arc;

use rustls::client::ResolvesClientCert;
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, ServerConfig, SignatureScheme};

use super::identity::Identity;
use super::store::CertStore;
use super::verify::{MeshClientVerifier, MeshServerVerifier};

/// The ring provider limited to TLS 1.3 AES-256-GCM and AES-128-GCM (no ChaCha).
pub fn provider() -> Arc<CryptoProvider> {
    let mut p = rustls::crypto::ring::default_provider();
    p.cipher_suites = vec![
        rustls::crypto::ring::cipher_suite::TLS13_AES_256_GCM_SHA384,
        rustls::crypto::ring::cipher_suite::TLS13_AES_128_GCM_SHA256,
    ];
    Arc::new(p)
}

#[derive(Debug)]
struct StoreResolver(Arc<CertStore>);

impl ResolvesServerCert for StoreResolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.current().material.certified_key.clone())
    }
}

impl ResolvesClientCert for StoreResolver {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        Some(self.0.current().material.certified_key.clone())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// HBONE server: mTLS with a mandatory client certificate from our trust domain.
pub fn server_config(store: Arc<CertStore>) -> anyhow::Result<Arc<ServerConfig>> {
    let mut cfg = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(MeshClientVerifier::new(store.clone()))
        .with_cert_resolver(Arc::new(StoreResolver(store)));
    cfg.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(cfg))
}

/// HBONE client presenting the store's identity and requiring one of `expected` from the server.
pub fn client_config(
    store: Arc<CertStore>,
    expected: Vec<Identity>,
) -> anyhow::Result<Arc<ClientConfig>> {
    let mut cfg = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(MeshServerVerifier::new(store.clone(), expected))
        .with_client_cert_resolver(Arc::new(StoreResolver(store)));
    cfg.alpn_protocols = vec![b"h2".to_vec()];
    // ztunnel sends no SNI.
    cfg.enable_sni = false;
    Ok(Arc::new(cfg))
}

/// The ring provider's AES-GCM suites of TLS 1.3 and 1.2 (ECDHE), for sidecar upstreams.
fn provider_with_tls12() -> Arc<CryptoProvider> {
    use rustls::crypto::ring::cipher_suite as cs;
    let mut p = rustls::crypto::ring::default_provider();
    p.cipher_suites = vec![
        cs::TLS13_AES_256_GCM_SHA384,
        cs::TLS13_AES_128_GCM_SHA256,
        cs::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
        cs::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        cs::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
        cs::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
    ];
    Arc::new(p)
}

/// Istio's ALPN towards an in-mesh (sidecar) upstream with metadata exchange on (istiod
/// `cluster_tls.go`, ISTIO_MUTUAL: `ALPNInMeshWithMxc`, or `ALPNInMeshH2WithMxc` for an
/// HTTP/2 cluster; `pilot/pkg/networking/util/util.go`).
pub fn istio_alpn(h2: bool) -> Vec<Vec<u8>> {
    let mut alpn = vec![b"istio-peer-exchange".to_vec(), b"istio".to_vec()];
    if h2 {
        alpn.push(b"h2".to_vec());
    }
    alpn
}

/// Istio mutual TLS to a sidecar's port, as istiod's ISTIO_MUTUAL upstream context: TLS 1.2
/// to 1.3, our workload certificate, the server's SPIFFE identity one of `expected` (any of
/// our trust domain if empty), Istio's ALPN ([`istio_alpn`]). No SNI (Istio sends the cluster
/// name, which is not a DNS name; sidecars' inbound chains do not match on it).
pub fn istio_mtls_client_config(
    store: Arc<CertStore>,
    expected: Vec<Identity>,
    h2: bool,
) -> anyhow::Result<Arc<ClientConfig>> {
    let mut cfg = ClientConfig::builder_with_provider(provider_with_tls12())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .dangerous()
        .with_custom_certificate_verifier(MeshServerVerifier::new(store.clone(), expected))
        .with_client_cert_resolver(Arc::new(StoreResolver(store)));
    cfg.alpn_protocols = istio_alpn(h2);
    cfg.enable_sni = false;
    Ok(Arc::new(cfg))
}

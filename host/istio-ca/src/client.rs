//! One `CreateCertificate` call: read the token and the root, make a key and CSR, dial the
//! CA over TLS, send the request with Istio's auth metadata, and turn the answer into material.

use std::path::PathBuf;
use std::time::Duration;

use http::uri::PathAndQuery;
use tonic::metadata::MetadataValue;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};
use tracing::debug;
use waypoint_hbone::tls::Identity;

use crate::chain::{issued_from_chain, Issued};
use crate::error::{chain, CaError};
use crate::proto::{IstioCertificateRequest, IstioCertificateResponse, CREATE_CERTIFICATE};

/// istiod's CA port in a cluster (ztunnel's in-cluster default, `config.rs`).
pub const DEFAULT_ADDRESS: &str = "istiod.istio-system.svc:15012";
/// The root ConfigMap `istio-ca-root-cert` (key `root-cert.pem`) as Istio's waypoint mounts it.
pub const DEFAULT_ROOT: &str = "/var/run/secrets/istio/root-cert.pem";
/// The projected service-account token (audience `istio-ca`) as Istio's waypoint mounts it.
pub const DEFAULT_TOKEN: &str = "/var/run/secrets/tokens/istio-token";
/// `CLUSTER_ID`'s default in Istio.
pub const DEFAULT_CLUSTER_ID: &str = "Kubernetes";
/// istiod's default workload certificate lifetime (`DEFAULT_WORKLOAD_CERT_TTL`).
pub const DEFAULT_TTL: Duration = Duration::from_secs(24 * 3600);

/// Where the CA is and who we are.
#[derive(Debug, Clone)]
pub struct CaOptions {
    /// `host:port` (an `https://` prefix, as in ztunnel's `CA_ADDRESS`, is accepted).
    pub address: String,
    /// Name the CA's certificate must carry; default: the host of `address`.
    pub server_name: Option<String>,
    /// PEM roots the CA's serving certificate chains to (re-read on each request).
    pub root: PathBuf,
    /// Bearer token file (re-read on each request: kubelet rotates it).
    pub token: PathBuf,
    /// Sent as `clusterid` metadata (istiod picks the cluster whose API server reviews the
    /// token; empty means its own).
    pub cluster_id: String,
    /// The identity we ask for (istiod issues the token's identity whatever we ask).
    pub identity: Identity,
    /// Requested lifetime.
    pub ttl: Duration,
    /// Connect and request timeout.
    pub timeout: Duration,
}

impl CaOptions {
    /// Istio's in-cluster defaults for `identity`.
    pub fn new(identity: Identity) -> Self {
        CaOptions {
            address: DEFAULT_ADDRESS.into(),
            server_name: None,
            root: DEFAULT_ROOT.into(),
            token: DEFAULT_TOKEN.into(),
            cluster_id: DEFAULT_CLUSTER_ID.into(),
            identity,
            ttl: DEFAULT_TTL,
            timeout: Duration::from_secs(10),
        }
    }

    /// `host:port` without a scheme.
    fn authority(&self) -> &str {
        let a = self.address.trim();
        a.strip_prefix("https://")
            .unwrap_or(a)
            .trim_end_matches('/')
    }

    /// The name verified in the CA's certificate.
    pub fn server_name(&self) -> String {
        if let Some(n) = &self.server_name {
            return n.clone();
        }
        let a = self.authority();
        // `[v6]:port`, `host:port`, or a bare host.
        if let Some(rest) = a.strip_prefix('[') {
            return rest.split(']').next().unwrap_or(rest).to_string();
        }
        match a.rsplit_once(':') {
            Some((host, _)) => host.to_string(),
            None => a.to_string(),
        }
    }
}

/// A client for Istio's CA.
#[derive(Debug, Clone)]
pub struct CaClient {
    opts: CaOptions,
}

impl CaClient {
    pub fn new(opts: CaOptions) -> Self {
        CaClient { opts }
    }

    pub fn options(&self) -> &CaOptions {
        &self.opts
    }

    /// Ask for a certificate (a fresh key each time, as ztunnel does).
    pub async fn issue(&self) -> Result<Issued, CaError> {
        let o = &self.opts;
        // Small files, read synchronously (once per renewal).
        let token = std::fs::read_to_string(&o.token).map_err(|error| CaError::Token {
            path: o.token.clone(),
            error,
        })?;
        let token = token.trim();
        if token.is_empty() {
            return Err(CaError::EmptyToken(o.token.clone()));
        }
        let root = std::fs::read(&o.root).map_err(|error| CaError::Root {
            path: o.root.clone(),
            error,
        })?;
        let csr = crate::csr::generate(&o.identity)?;

        let mut request = tonic::Request::new(IstioCertificateRequest {
            csr: csr.pem.clone(),
            validity_duration: i64::try_from(o.ttl.as_secs()).unwrap_or(i64::MAX),
        });
        // Istio's authenticator (kubeauth/kube_jwt.go) reads these two; ztunnel sends them
        // from src/identity/auth.rs.
        let bearer = MetadataValue::try_from(format!("Bearer {token}"))
            .map_err(|_| CaError::Metadata("the CA token"))?;
        let cluster = MetadataValue::try_from(o.cluster_id.as_str())
            .map_err(|_| CaError::Metadata("the cluster id"))?;
        request.metadata_mut().insert("authorization", bearer);
        request.metadata_mut().insert("clusterid", cluster);
        request.set_timeout(o.timeout);

        let channel = self.connect(root).await?;
        let mut grpc = tonic::client::Grpc::new(channel);
        grpc.ready().await.map_err(|e| CaError::Connect {
            address: o.address.clone(),
            detail: chain(&e),
        })?;
        debug!(address = %o.address, identity = %o.identity, "requesting a certificate");
        let response: tonic::Response<IstioCertificateResponse> = grpc
            .unary(
                request,
                PathAndQuery::from_static(CREATE_CERTIFICATE),
                tonic_prost::ProstCodec::default(),
            )
            .await
            .map_err(CaError::from_status)?;
        let issued = issued_from_chain(
            &response.into_inner().cert_chain,
            &csr.key_pem,
            &csr.public_key,
        )?;
        if issued.material.identity != o.identity {
            // istiod signs the identity of the token, not the one asked for.
            tracing::warn!(asked = %o.identity, got = %issued.material.identity, "the CA issued another identity than requested; using it");
        }
        Ok(issued)
    }

    /// A TLS channel to the CA, verified against `root` (re-read each time, so a rotated
    /// root ConfigMap is picked up as ztunnel does by watching it).
    async fn connect(&self, root: Vec<u8>) -> Result<Channel, CaError> {
        let o = &self.opts;
        let bad = |reason: String| CaError::Address {
            address: o.address.clone(),
            reason,
        };
        let tls = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(root))
            .domain_name(self.opts.server_name());
        let endpoint = Endpoint::from_shared(format!("https://{}", o.authority()))
            .map_err(|e| bad(chain(&e)))?
            .tls_config(tls)
            .map_err(|e| bad(chain(&e)))?
            .connect_timeout(o.timeout)
            .timeout(o.timeout);
        endpoint.connect().await.map_err(|e| CaError::Connect {
            address: o.address.clone(),
            detail: chain(&e),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_name_from_address() {
        let mut o = CaOptions::new(Identity::new("cluster.local", "default", "waypoint"));
        assert_eq!(o.server_name(), "istiod.istio-system.svc");
        o.address = "https://istiod.istio-system.svc:15012".into();
        assert_eq!(o.authority(), "istiod.istio-system.svc:15012");
        assert_eq!(o.server_name(), "istiod.istio-system.svc");
        o.address = "[::1]:15012".into();
        assert_eq!(o.server_name(), "::1");
        o.address = "ca.example".into();
        assert_eq!(o.server_name(), "ca.example");
        o.server_name = Some("istiod.istio-system.svc".into());
        assert_eq!(o.server_name(), "istiod.istio-system.svc");
    }

    #[tokio::test]
    async fn local_files_are_checked_first() {
        let dir = std::env::temp_dir().join(format!("wp-ca-files-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let mut o = CaOptions::new(Identity::new("cluster.local", "default", "waypoint"));
        o.token = dir.join("missing-token");
        o.root = dir.join("missing-root");
        let e = CaClient::new(o.clone())
            .issue()
            .await
            .expect_err("no token");
        assert!(matches!(e, CaError::Token { .. }), "{e}");
        assert!(!e.is_retryable());
        std::fs::write(dir.join("token"), "\n").expect("write");
        o.token = dir.join("token");
        let e = CaClient::new(o.clone()).issue().await.expect_err("empty");
        assert!(matches!(e, CaError::EmptyToken(_)), "{e}");
        std::fs::write(dir.join("token"), "abc\n").expect("write");
        let e = CaClient::new(o).issue().await.expect_err("no root");
        assert!(matches!(e, CaError::Root { .. }), "{e}");
        std::fs::remove_dir_all(&dir).ok();
    }
}

//! The waypoint's identity from Istio's CA (`istio.v1.auth.IstioCertificateService`): the
//! first certificate before serving, then renewal at half-life into the live [`CertStore`].
//!
//! How it talks to istiod, as ztunnel does (`src/identity/caclient.rs`): gRPC over TLS rooted
//! in the `istio-ca-root-cert` ConfigMap, metadata `authorization: Bearer <projected token,
//! audience istio-ca>` and `clusterid`, a request `{csr, validity_duration}` and an answer
//! `cert_chain` (leaf first, roots last). Each request uses a fresh P-256 key.
//!
//! Why `rcgen` here (elsewhere only the dev CA and tests use it): the CA takes a PKCS#10
//! certificate signing request, and neither rustls nor ring can build one (ring makes and signs
//! with keys, but has no DER/X.509 encoder for the request and its SAN extension). rcgen is
//! the same builder ztunnel uses for this request (`src/tls/csr.rs`).

pub mod chain;
pub mod client;
pub mod csr;
pub mod error;
pub mod files;
pub mod proto;
pub mod rotate;

use std::sync::Arc;
use std::time::SystemTime;

use tokio::task::JoinHandle;
use tracing::{info, warn};
use waypoint_hbone::tls::CertStore;

pub use chain::{Issued, PemSet, Validity};
pub use client::{CaClient, CaOptions};
pub use error::CaError;
pub use rotate::Backoff;

/// The first certificate: retried with backoff while the CA is unreachable or unavailable;
/// a rejected token, a bad root or token file, or a bad answer fail at once.
pub async fn first_certificate(client: &CaClient) -> Result<Issued, CaError> {
    let mut backoff = Backoff::default();
    loop {
        match client.issue().await {
            Ok(issued) => return Ok(issued),
            Err(e) if e.is_retryable() => {
                let retry_in = backoff.next_delay();
                warn!(error = %e, ?retry_in, "no certificate from the CA yet; retrying");
                tokio::time::sleep(retry_in).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Rotate the certificate in `store` (issued with `validity`) from `client`, forever: the
/// returned task renews at half-life and backs off on failure, keeping the current
/// certificate. Abort it to stop.
pub fn spawn_rotation(
    client: CaClient,
    store: Arc<CertStore>,
    validity: Validity,
) -> JoinHandle<()> {
    tokio::spawn(rotate::keep_fresh(
        move || {
            let client = client.clone();
            async move { client.issue().await.map(|i| (i.material, i.validity)) }
        },
        move |material| {
            store
                .replace(material)
                .map_err(|e| CaError::Install(format!("{e:#}")))
        },
        validity,
        Backoff::default(),
        SystemTime::now,
    ))
}

/// Obtain the first certificate, build the store from it, and start its rotation.
pub async fn start(opts: CaOptions) -> Result<(Arc<CertStore>, JoinHandle<()>), CaError> {
    let client = CaClient::new(opts);
    info!(address = %client.options().address, identity = %client.options().identity, "requesting the first certificate from the CA");
    let issued = first_certificate(&client).await?;
    let store =
        CertStore::new(issued.material.clone()).map_err(|e| CaError::Install(format!("{e:#}")))?;
    info!(identity = %store.identity(), "certificate from the CA installed");
    let task = spawn_rotation(client, store.clone(), issued.validity);
    Ok((store, task))
}

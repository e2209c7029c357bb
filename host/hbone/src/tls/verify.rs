//! Certificate verification for the mesh, as ztunnel does it: chain to the mesh roots with
//! webpki (no DNS name check), then check the SPIFFE URI SAN (trust domain / expected identity).

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, Error, SignatureScheme};

use super::identity::Identity;
use super::san::spiffe_id;
use super::store::CertStore;

fn algorithms() -> WebPkiSupportedAlgorithms {
    rustls::crypto::ring::default_provider().signature_verification_algorithms
}

/// Verify `end_entity` chains to the store's roots for `usage`; return its SPIFFE identity.
fn verify_chain(
    store: &CertStore,
    end_entity: &CertificateDer<'_>,
    intermediates: &[CertificateDer<'_>],
    now: UnixTime,
    usage: webpki::KeyUsage,
) -> Result<Identity, Error> {
    let current = store.current();
    let cert = webpki::EndEntityCert::try_from(end_entity)
        .map_err(|e| Error::InvalidCertificate(webpki_error(e)))?;
    cert.verify_for_usage(
        algorithms().all,
        &current.anchors,
        intermediates,
        now,
        usage,
        None,
        None,
    )
    .map_err(|e| Error::InvalidCertificate(webpki_error(e)))?;
    spiffe_id(end_entity).map_err(san_error)
}

fn webpki_error(e: webpki::Error) -> CertificateError {
    match e {
        webpki::Error::CertExpired { .. } => CertificateError::Expired,
        webpki::Error::CertNotValidYet { .. } => CertificateError::NotValidYet,
        webpki::Error::UnknownIssuer => CertificateError::UnknownIssuer,
        webpki::Error::InvalidSignatureForPublicKey => CertificateError::BadSignature,
        other => {
            CertificateError::Other(rustls::OtherError(Arc::new(SanError(format!("{other:?}")))))
        }
    }
}

/// A SAN or identity mismatch.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct SanError(String);

fn san_error(msg: String) -> Error {
    Error::InvalidCertificate(CertificateError::Other(rustls::OtherError(Arc::new(
        SanError(msg),
    ))))
}

/// Server side: require a client certificate chaining to the mesh roots, in our trust domain.
#[derive(Debug)]
pub struct MeshClientVerifier {
    store: Arc<CertStore>,
}

impl MeshClientVerifier {
    pub fn new(store: Arc<CertStore>) -> Arc<Self> {
        Arc::new(MeshClientVerifier { store })
    }
}

impl ClientCertVerifier for MeshClientVerifier {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn client_auth_mandatory(&self) -> bool {
        true
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, Error> {
        let id = verify_chain(
            &self.store,
            end_entity,
            intermediates,
            now,
            webpki::KeyUsage::client_auth(),
        )?;
        let ours = self.store.identity();
        if id.trust_domain != ours.trust_domain {
            return Err(san_error(format!(
                "client identity {id} is not in trust domain {}",
                ours.trust_domain
            )));
        }
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &algorithms())
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &algorithms())
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        algorithms().supported_schemes()
    }
}

/// Client side: the server must chain to the mesh roots and present one of `expected`
/// (any identity of our trust domain when `expected` is empty).
#[derive(Debug)]
pub struct MeshServerVerifier {
    store: Arc<CertStore>,
    expected: Vec<Identity>,
}

impl MeshServerVerifier {
    pub fn new(store: Arc<CertStore>, expected: Vec<Identity>) -> Arc<Self> {
        Arc::new(MeshServerVerifier { store, expected })
    }
}

impl ServerCertVerifier for MeshServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        let id = verify_chain(
            &self.store,
            end_entity,
            intermediates,
            now,
            webpki::KeyUsage::server_auth(),
        )?;
        let ok = if self.expected.is_empty() {
            id.trust_domain == self.store.identity().trust_domain
        } else {
            self.expected.contains(&id)
        };
        if !ok {
            // ztunnel's wording: the server "did not present the expected SAN".
            return Err(san_error(format!(
                "server identity {id} did not present the expected SAN {:?}",
                self.expected
                    .iter()
                    .map(|i| i.to_string())
                    .collect::<Vec<_>>()
            )));
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &algorithms())
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &algorithms())
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        algorithms().supported_schemes()
    }
}

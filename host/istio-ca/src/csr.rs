//! A fresh P-256 key and a PKCS#10 request for our SPIFFE identity, as ztunnel asks istiod
//! (`src/tls/csr.rs`: ECDSA P-256 / SHA-256, empty subject, one URI SAN).

use rcgen::{CertificateParams, DistinguishedName, KeyPair, SanType, PKCS_ECDSA_P256_SHA256};
use waypoint_hbone::tls::Identity;

use crate::error::CaError;

/// A certificate request and the key it is for.
#[derive(Debug, Clone)]
pub struct Csr {
    /// The request, PEM (`CERTIFICATE REQUEST`).
    pub pem: String,
    /// The private key, PKCS#8 PEM.
    pub key_pem: String,
    /// The raw public key (uncompressed point), to check the CA certified this key.
    pub public_key: Vec<u8>,
}

/// A new key and a request for `id`.
pub fn generate(id: &Identity) -> Result<Csr, CaError> {
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params.subject_alt_names = vec![SanType::URI(id.to_string().try_into()?)];
    let csr = params.serialize_request(&key)?;
    Ok(Csr {
        pem: csr.pem()?,
        key_pem: key.serialize_pem(),
        public_key: key.public_key_raw().to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_carries_one_spiffe_uri_and_a_p256_key() {
        let id = Identity::new("cluster.local", "ns1", "waypoint");
        let csr = generate(&id).expect("csr");
        assert!(csr.pem.starts_with("-----BEGIN CERTIFICATE REQUEST-----"));
        let parsed = rcgen::CertificateSigningRequestParams::from_pem(&csr.pem).expect("parse");
        let uris: Vec<String> = parsed
            .params
            .subject_alt_names
            .iter()
            .filter_map(|s| match s {
                SanType::URI(u) => Some(u.as_str().to_string()),
                _ => None,
            })
            .collect();
        assert_eq!(
            uris,
            vec!["spiffe://cluster.local/ns/ns1/sa/waypoint".to_string()]
        );
        assert_eq!(
            rcgen::PublicKeyData::der_bytes(&parsed.public_key),
            csr.public_key.as_slice()
        );
        // Uncompressed P-256 point: 0x04 || X || Y.
        assert_eq!(csr.public_key.len(), 65);
        // Each request has its own key.
        assert_ne!(generate(&id).expect("csr").key_pem, csr.key_pem);
    }
}

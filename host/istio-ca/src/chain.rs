//! The CA's answer made usable: `cert_chain` (leaf first, roots last) plus our key become the
//! hbone [`Material`], and the leaf's validity window drives rotation.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use waypoint_hbone::tls::certs::{material_from_pem, parse_certs};
use waypoint_hbone::tls::Material;

use crate::error::CaError;

/// A certificate's validity window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Validity {
    pub not_before: SystemTime,
    pub not_after: SystemTime,
}

/// A certificate issued by the CA, ready for the store.
#[derive(Debug, Clone)]
pub struct Issued {
    pub material: Material,
    pub validity: Validity,
    /// The same certificate as PEM text, for a proxy that reads files (Envoy over SDS).
    pub pem: PemSet,
}

/// A certificate as PEM text: the chain we present (leaf first), our key, the mesh roots.
#[derive(Clone)]
pub struct PemSet {
    pub chain: String,
    pub key: String,
    pub roots: String,
}

/// Never prints the key.
impl std::fmt::Debug for PemSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PemSet")
            .field("chain", &self.chain)
            .field("key", &"<redacted>")
            .field("roots", &self.roots)
            .finish()
    }
}

/// Build material from `cert_chain` and the PKCS#8 key the CSR was made with. Istio's
/// contract (ca.proto; istiod `security/pkg/server/ca/server.go`): the leaf first, the root
/// last, and the last element may hold several concatenated roots. Everything before the last
/// element (leaf and intermediates) is the chain we present; the last element is the set of
/// mesh roots we verify peers with. `public_key` (raw, from the CSR's key) must be the leaf's.
pub fn issued_from_chain(
    chain: &[String],
    key_pem: &str,
    public_key: &[u8],
) -> Result<Issued, CaError> {
    let Some((roots, presented)) = chain.split_last() else {
        return Err(CaError::Chain("empty cert_chain".into()));
    };
    if presented.is_empty() {
        return Err(CaError::Chain(
            "one element only; expected the leaf first and the roots last".into(),
        ));
    }
    let presented = presented.join("\n");
    let leaf = parse_certs(&presented)
        .map_err(|e| CaError::Chain(format!("{e:#}")))?
        .into_iter()
        .next()
        .ok_or_else(|| CaError::Chain("no leaf certificate".into()))?;
    let (_, x509) = x509_parser::parse_x509_certificate(leaf.as_ref())
        .map_err(|e| CaError::Chain(format!("leaf: {e}")))?;
    if x509.public_key().subject_public_key.data.as_ref() != public_key {
        return Err(CaError::Chain(
            "the leaf does not certify the key of our request".into(),
        ));
    }
    let at = |t: x509_parser::time::ASN1Time| {
        let secs = t.timestamp();
        if secs >= 0 {
            UNIX_EPOCH + Duration::from_secs(secs.unsigned_abs())
        } else {
            UNIX_EPOCH
        }
    };
    let validity = Validity {
        not_before: at(x509.validity().not_before),
        not_after: at(x509.validity().not_after),
    };
    let material = material_from_pem(&presented, key_pem, roots)
        .map_err(|e| CaError::Chain(format!("{e:#}")))?;
    let pem = PemSet {
        chain: presented,
        key: key_pem.to_string(),
        roots: roots.clone(),
    };
    Ok(Issued {
        material,
        validity,
        pem,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{
        BasicConstraints, CertificateParams, IsCa, KeyPair, SanType, PKCS_ECDSA_P256_SHA256,
    };

    struct Ca {
        cert: rcgen::Certificate,
        key: KeyPair,
    }

    fn ca(name: &str, parent: Option<&Ca>) -> Ca {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).expect("key");
        let mut p = CertificateParams::new(Vec::<String>::new()).expect("params");
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.distinguished_name.push(rcgen::DnType::CommonName, name);
        let cert = match parent {
            Some(parent) => p.signed_by(&key, &parent.cert, &parent.key),
            None => p.self_signed(&key),
        }
        .expect("sign");
        Ca { cert, key }
    }

    fn leaf(issuer: &Ca, key: &KeyPair, secs: u64) -> (String, Validity) {
        let mut p = CertificateParams::new(Vec::<String>::new()).expect("params");
        p.subject_alt_names = vec![SanType::URI(
            "spiffe://cluster.local/ns/default/sa/waypoint"
                .to_string()
                .try_into()
                .expect("uri"),
        )];
        let nb = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        p.not_before = nb.into();
        p.not_after = (nb + Duration::from_secs(secs)).into();
        let cert = p.signed_by(key, &issuer.cert, &issuer.key).expect("leaf");
        (
            cert.pem(),
            Validity {
                not_before: nb,
                not_after: nb + Duration::from_secs(secs),
            },
        )
    }

    #[test]
    fn leaf_first_roots_last() {
        let root = ca("root", None);
        let other_root = ca("other root", None);
        let inter = ca("intermediate", Some(&root));
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).expect("key");
        let (leaf_pem, want) = leaf(&inter, &key, 7200);
        // The last element carries two concatenated roots, as istiod may send.
        let roots = format!("{}{}", root.cert.pem(), other_root.cert.pem());
        let chain = vec![leaf_pem, inter.cert.pem(), roots];
        let issued =
            issued_from_chain(&chain, &key.serialize_pem(), key.public_key_raw()).expect("issued");
        assert_eq!(issued.validity, want);
        assert_eq!(
            issued.material.identity.to_string(),
            "spiffe://cluster.local/ns/default/sa/waypoint"
        );
        // Presented: leaf + intermediate; trusted: both roots.
        assert_eq!(issued.material.certified_key.cert.len(), 2);
        assert_eq!(issued.material.roots.len(), 2);
        assert_eq!(issued.material.roots[0].as_ref(), root.cert.der().as_ref());
        // The PEM set carries the same three parts; its Debug form hides the key.
        assert_eq!(parse_certs(&issued.pem.chain).expect("chain").len(), 2);
        assert_eq!(parse_certs(&issued.pem.roots).expect("roots").len(), 2);
        assert_eq!(issued.pem.key, key.serialize_pem());
        let shown = format!("{:?}", issued.pem);
        assert!(
            !shown.contains("PRIVATE KEY") && shown.contains("<redacted>"),
            "{shown}"
        );
    }

    #[test]
    fn bad_chains_are_refused() {
        let root = ca("root", None);
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).expect("key");
        let (leaf_pem, _) = leaf(&root, &key, 60);
        let pem = key.serialize_pem();
        let raw = key.public_key_raw();
        for (chain, what) in [
            (vec![], "empty"),
            (vec![leaf_pem.clone()], "no roots"),
            (vec!["garbage".to_string(), root.cert.pem()], "not PEM"),
            (vec![leaf_pem.clone(), "garbage".to_string()], "bad roots"),
        ] {
            assert!(
                matches!(issued_from_chain(&chain, &pem, raw), Err(CaError::Chain(_))),
                "{what}"
            );
        }
        // A leaf for another key.
        let other = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).expect("key");
        let chain = vec![leaf_pem, root.cert.pem()];
        let r = issued_from_chain(&chain, &other.serialize_pem(), other.public_key_raw());
        assert!(matches!(r, Err(CaError::Chain(m)) if m.contains("does not certify")));
    }
}

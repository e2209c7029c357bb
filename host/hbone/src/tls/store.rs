//! The live certificate store: current material behind an `ArcSwap`, read by the TLS
//! resolvers and verifiers at each handshake, replaced on reload without touching connections.

use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::pki_types::TrustAnchor;

use super::certs::Material;
use super::identity::Identity;

/// Material plus the trust anchors derived from its roots.
#[derive(Debug)]
pub struct Current {
    pub material: Material,
    pub anchors: Vec<TrustAnchor<'static>>,
}

/// Shared, reloadable certificate state.
#[derive(Debug)]
pub struct CertStore {
    current: ArcSwap<Current>,
}

impl CertStore {
    pub fn new(material: Material) -> anyhow::Result<Arc<Self>> {
        Ok(Arc::new(CertStore {
            current: ArcSwap::from_pointee(current(material)?),
        }))
    }

    /// The material in force now.
    pub fn current(&self) -> Arc<Current> {
        self.current.load_full()
    }

    /// Our identity now.
    pub fn identity(&self) -> Identity {
        self.current.load().material.identity.clone()
    }

    /// Replace the material (new handshakes use it; open connections are untouched).
    pub fn replace(&self, material: Material) -> anyhow::Result<()> {
        self.current.store(Arc::new(current(material)?));
        Ok(())
    }
}

fn current(material: Material) -> anyhow::Result<Current> {
    let anchors = material
        .roots
        .iter()
        .map(|der| {
            webpki::anchor_from_trusted_cert(der)
                .map(|a| a.to_owned())
                .map_err(|e| anyhow::anyhow!("bad root certificate: {e}"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(Current { material, anchors })
}

//! Certificate material from files: the workload chain and key, the mesh roots, and the
//! identity the chain proves. Which files to read: [`super::layout`].

use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, Context};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;

use super::identity::Identity;
use super::layout::CertPaths;
use super::san::spiffe_id;

/// Parsed material, ready for rustls.
#[derive(Debug, Clone)]
pub struct Material {
    /// Our certificate chain and signing key.
    pub certified_key: Arc<CertifiedKey>,
    /// Mesh roots, DER.
    pub roots: Vec<CertificateDer<'static>>,
    /// Our identity (the one SPIFFE URI SAN of the leaf).
    pub identity: Identity,
}

/// Parse every `CERTIFICATE` block of a PEM text.
pub fn parse_certs(pem: &str) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .context("bad PEM certificate")?;
    if certs.is_empty() {
        bail!("no CERTIFICATE block found");
    }
    Ok(certs)
}

/// Build material from PEM texts (chain, key, roots).
pub fn material_from_pem(cert: &str, key: &str, roots: &str) -> anyhow::Result<Material> {
    let chain = parse_certs(cert).context("certificate chain")?;
    let key = PrivateKeyDer::from_pem_slice(key.as_bytes()).context("private key")?;
    let roots = parse_certs(roots).context("roots")?;
    let identity = spiffe_id(&chain[0]).map_err(|e| anyhow::anyhow!("our certificate: {e}"))?;
    let signing = rustls::crypto::ring::sign::any_supported_type(&key)
        .map_err(|e| anyhow::anyhow!("unsupported private key: {e}"))?;
    Ok(Material {
        certified_key: Arc::new(CertifiedKey::new(chain, signing)),
        roots,
        identity,
    })
}

/// Read and parse the files named by `paths`.
pub fn load(paths: &CertPaths) -> anyhow::Result<Material> {
    let read =
        |p: &Path| std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()));
    material_from_pem(
        &read(&paths.cert)?,
        &read(&paths.key)?,
        &read(&paths.roots)?,
    )
    .with_context(|| {
        format!(
            "loading certificates (chain {}, key {}, roots {})",
            paths.cert.display(),
            paths.key.display(),
            paths.roots.display()
        )
    })
}

//! `dev-ca`: a local mesh CA (root certificate and key) issuing workload certificates with
//! SPIFFE URI SANs, as istiod does, for demos and tests. Not for production use.
//!
//! Directory layout written by [`DevCa::write_workload`] and [`DevCa::save`]:
//! ```text
//! DIR/ca.pem                   root certificate (the mesh trust anchor)
//! DIR/ca-key.pem               root private key (PKCS#8), reused by later runs
//! DIR/<ns>.<sa>/cert-chain.pem workload certificate (leaf, URI SAN spiffe://TD/ns/NS/sa/SA)
//! DIR/<ns>.<sa>/key.pem        workload private key (PKCS#8)
//! DIR/<ns>.<sa>/root-cert.pem  copy of the root, so a workload directory is self-contained
//! ```
//! A workload directory uses Istio's file names, the layout every `--certs` flag reads
//! (`waypoint_hbone::tls::layout`).

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use anyhow::Context;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SanType,
};

use waypoint_hbone::tls::{CertPaths, Identity};

/// Default workload certificate lifetime (istiod's default is 24 h).
pub const WORKLOAD_VALIDITY: Duration = Duration::from_secs(24 * 3600);

/// A workload certificate and key, PEM encoded.
#[derive(Debug, Clone)]
pub struct IssuedCert {
    pub cert_pem: String,
    pub key_pem: String,
}

/// A mesh root CA.
pub struct DevCa {
    pub trust_domain: String,
    cert: rcgen::Certificate,
    key: KeyPair,
    /// The root as first written (re-signing on load would change its bytes).
    pem: String,
}

impl std::fmt::Debug for DevCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DevCa")
            .field("trust_domain", &self.trust_domain)
            .finish_non_exhaustive()
    }
}

impl DevCa {
    /// A fresh root CA for `trust_domain`, valid for ten years.
    pub fn generate(trust_domain: &str) -> anyhow::Result<Self> {
        let key = KeyPair::generate().context("generating CA key")?;
        let mut params = CertificateParams::default();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let mut dn = DistinguishedName::new();
        dn.push(DnType::OrganizationName, trust_domain);
        dn.push(DnType::CommonName, "waypoint dev-ca root");
        params.distinguished_name = dn;
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let now = SystemTime::now();
        params.not_before = (now - Duration::from_secs(3600)).into();
        params.not_after = (now + Duration::from_secs(10 * 365 * 24 * 3600)).into();
        let cert = params.self_signed(&key).context("self-signing CA")?;
        Ok(DevCa {
            trust_domain: trust_domain.to_string(),
            pem: cert.pem(),
            cert,
            key,
        })
    }

    /// Load a CA written by [`DevCa::save`] (`ca.pem`, `ca-key.pem` in `dir`).
    pub fn load(dir: &Path, trust_domain: &str) -> anyhow::Result<Self> {
        let cert_path = dir.join("ca.pem");
        let key_path = dir.join("ca-key.pem");
        let cert_pem = std::fs::read_to_string(&cert_path)
            .with_context(|| format!("reading {}", cert_path.display()))?;
        let key_pem = std::fs::read_to_string(&key_path)
            .with_context(|| format!("reading {}", key_path.display()))?;
        let key = KeyPair::from_pem(&key_pem)
            .with_context(|| format!("parsing {}", key_path.display()))?;
        let params = CertificateParams::from_ca_cert_pem(&cert_pem)
            .with_context(|| format!("parsing {}", cert_path.display()))?;
        // Re-signing the same subject and key yields an equivalent issuer for new leaves.
        let cert = params.self_signed(&key).context("re-creating CA issuer")?;
        Ok(DevCa {
            trust_domain: trust_domain.to_string(),
            cert,
            key,
            pem: cert_pem,
        })
    }

    /// Load the CA in `dir` if there is one, else generate and save a new one.
    pub fn load_or_generate(dir: &Path, trust_domain: &str) -> anyhow::Result<Self> {
        if dir.join("ca.pem").exists() && dir.join("ca-key.pem").exists() {
            Self::load(dir, trust_domain)
        } else {
            let ca = Self::generate(trust_domain)?;
            ca.save(dir)?;
            Ok(ca)
        }
    }

    /// Root certificate, PEM.
    pub fn ca_pem(&self) -> String {
        self.pem.clone()
    }

    /// Write `ca.pem` and `ca-key.pem` into `dir` (created if needed).
    pub fn save(&self, dir: &Path) -> anyhow::Result<()> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        write(&dir.join("ca.pem"), &self.ca_pem())?;
        write(&dir.join("ca-key.pem"), &self.key.serialize_pem())
    }

    /// Issue a certificate for `id`, valid from an hour ago for [`WORKLOAD_VALIDITY`].
    pub fn issue(&self, id: &Identity) -> anyhow::Result<IssuedCert> {
        let now = SystemTime::now();
        self.issue_with_validity(id, now - Duration::from_secs(3600), now + WORKLOAD_VALIDITY)
    }

    /// Issue a certificate for `id` with an explicit validity window (tests use an expired one).
    pub fn issue_with_validity(
        &self,
        id: &Identity,
        not_before: SystemTime,
        not_after: SystemTime,
    ) -> anyhow::Result<IssuedCert> {
        let key = KeyPair::generate().context("generating workload key")?;
        let uri = id.to_string();
        let params = workload_params(id, not_before, not_after)?;
        let cert = params
            .signed_by(&key, &self.cert, &self.key)
            .with_context(|| format!("signing certificate for {uri}"))?;
        Ok(IssuedCert {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    /// Sign a PEM certificate signing request as istiod's CA does for ztunnel
    /// (`istio.v1.auth.IstioCertificateService/CreateCertificate`): the certificate keeps the
    /// CSR's public key and exactly one SAN, the SPIFFE URI the CSR asks for, which must be an
    /// identity of this CA's trust domain. Returns that identity and the leaf, PEM.
    pub fn sign_csr(&self, csr_pem: &str) -> anyhow::Result<(Identity, String)> {
        let now = SystemTime::now();
        self.sign_csr_valid(
            csr_pem,
            now - Duration::from_secs(3600),
            now + WORKLOAD_VALIDITY,
        )
    }

    /// [`DevCa::sign_csr`] with an explicit validity window (tests: short-lived certificates
    /// to exercise rotation).
    pub fn sign_csr_valid(
        &self,
        csr_pem: &str,
        not_before: SystemTime,
        not_after: SystemTime,
    ) -> anyhow::Result<(Identity, String)> {
        let csr = rcgen::CertificateSigningRequestParams::from_pem(csr_pem)
            .context("parsing certificate signing request")?;
        let uris: Vec<String> = csr
            .params
            .subject_alt_names
            .iter()
            .filter_map(|s| match s {
                SanType::URI(u) => Some(u.as_str().to_string()),
                _ => None,
            })
            .collect();
        let [uri] = uris.as_slice() else {
            anyhow::bail!("CSR must carry exactly one URI SAN, found {uris:?}");
        };
        let id: Identity = uri
            .parse()
            .with_context(|| format!("CSR URI SAN {uri} is not a SPIFFE identity"))?;
        if id.trust_domain != self.trust_domain {
            anyhow::bail!(
                "CSR identity {id} is outside trust domain {}",
                self.trust_domain
            );
        }
        let params = workload_params(&id, not_before, not_after)?;
        let cert = params
            .signed_by(&csr.public_key, &self.cert, &self.key)
            .with_context(|| format!("signing CSR for {id}"))?;
        Ok((id, cert.pem()))
    }

    /// A serving certificate for the DNS name `dns` (tests: a fake istiod's CA endpoint, which
    /// Istio serves with a certificate for `istiod.istio-system.svc` under the mesh root).
    pub fn issue_server(&self, dns: &str) -> anyhow::Result<IssuedCert> {
        let key = KeyPair::generate().context("generating server key")?;
        let now = SystemTime::now();
        let mut params = base_params(now - Duration::from_secs(3600), now + WORKLOAD_VALIDITY);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.subject_alt_names = vec![SanType::DnsName(
            dns.try_into().with_context(|| format!("DNS name {dns}"))?,
        )];
        let cert = params
            .signed_by(&key, &self.cert, &self.key)
            .with_context(|| format!("signing server certificate for {dns}"))?;
        Ok(IssuedCert {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    /// Issue a certificate with exactly these URI SANs (tests: a certificate with two SPIFFE
    /// IDs, which verifiers must reject; istiod never issues one).
    pub fn issue_with_uri_sans(&self, uris: &[&str]) -> anyhow::Result<IssuedCert> {
        let key = KeyPair::generate().context("generating workload key")?;
        let now = SystemTime::now();
        let mut params = base_params(now - Duration::from_secs(3600), now + WORKLOAD_VALIDITY);
        params.subject_alt_names = uris
            .iter()
            .map(|u| {
                u.to_string()
                    .try_into()
                    .map(SanType::URI)
                    .with_context(|| format!("URI SAN {u}"))
            })
            .collect::<anyhow::Result<_>>()?;
        let cert = params
            .signed_by(&key, &self.cert, &self.key)
            .context("signing certificate")?;
        Ok(IssuedCert {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    /// Issue a certificate for `id` and write it into `dir/<ns>.<sa>/` ([`write_issued`]).
    /// Returns the workload directory.
    pub fn write_workload(&self, dir: &Path, id: &Identity) -> anyhow::Result<PathBuf> {
        let issued = self.issue(id)?;
        let wdir = workload_dir(dir, id);
        write_issued(&wdir, &issued, &self.ca_pem())?;
        Ok(wdir)
    }
}

/// Parameters of a workload certificate for `id`.
fn workload_params(
    id: &Identity,
    not_before: SystemTime,
    not_after: SystemTime,
) -> anyhow::Result<CertificateParams> {
    let mut params = base_params(not_before, not_after);
    let uri = id.to_string();
    params.subject_alt_names = vec![SanType::URI(
        uri.clone()
            .try_into()
            .with_context(|| format!("URI SAN {uri}"))?,
    )];
    Ok(params)
}

/// A workload certificate's parameters without its SANs.
fn base_params(not_before: SystemTime, not_after: SystemTime) -> CertificateParams {
    let mut params = CertificateParams::default();
    // Istio workload certificates carry an empty subject and the SPIFFE URI SAN only.
    params.distinguished_name = DistinguishedName::new();
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    params.not_before = not_before.into();
    params.not_after = not_after.into();
    params
}

/// The workload directory of `id` under a `dev-ca` output directory: `dir/<ns>.<sa>`.
pub fn workload_dir(dir: &Path, id: &Identity) -> PathBuf {
    dir.join(format!("{}.{}", id.namespace, id.service_account))
}

/// Write one workload's chain, key and roots into `wdir` under Istio's names
/// (`cert-chain.pem`, `key.pem`, `root-cert.pem`).
pub fn write_issued(wdir: &Path, issued: &IssuedCert, ca_pem: &str) -> anyhow::Result<()> {
    std::fs::create_dir_all(wdir).with_context(|| format!("creating {}", wdir.display()))?;
    let files = CertPaths::from_dir(wdir);
    write(&files.cert, &issued.cert_pem)?;
    write(&files.key, &issued.key_pem)?;
    write(&files.roots, ca_pem)
}

/// Write a file atomically (temp file + rename), so a watcher never reads half a PEM.
fn write(path: &Path, text: &str) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("renaming to {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issues_uri_san_and_reloads() {
        let dir = std::env::temp_dir().join(format!("wp-devca-{}", std::process::id()));
        let ca = DevCa::load_or_generate(&dir, "example.org").expect("ca");
        let id = Identity::new("example.org", "ns1", "sa1");
        let wdir = ca.write_workload(&dir, &id).expect("issue");
        assert!(wdir.ends_with("ns1.sa1"));
        // Istio's names, found by the layout every `--certs` flag reads.
        let files = CertPaths::find(&wdir).expect("layout");
        assert_eq!(files, CertPaths::from_dir(&wdir));
        assert!(wdir.join("cert-chain.pem").is_file() && wdir.join("root-cert.pem").is_file());
        let pem = std::fs::read_to_string(&files.cert).expect("read");
        let certs = waypoint_hbone::tls::certs::parse_certs(&pem).expect("parse");
        let sans = waypoint_hbone::tls::san::spiffe_sans(&certs[0]);
        assert_eq!(sans, vec![id.clone()]);
        // A second run reuses the same root.
        let again = DevCa::load_or_generate(&dir, "example.org").expect("reload");
        assert_eq!(again.ca_pem(), ca.ca_pem());
        std::fs::remove_dir_all(&dir).ok();
    }

    fn csr_for(uris: &[&str]) -> (KeyPair, String) {
        let key = KeyPair::generate().expect("key");
        let mut params = CertificateParams::default();
        params.subject_alt_names = uris
            .iter()
            .map(|u| SanType::URI((*u).to_string().try_into().expect("ia5")))
            .collect();
        let csr = params.serialize_request(&key).expect("csr");
        (key, csr.pem().expect("pem"))
    }

    #[test]
    fn signs_csrs_of_its_trust_domain_only() {
        let ca = DevCa::generate("cluster.local").expect("ca");
        let good = "spiffe://cluster.local/ns/default/sa/sleep";
        for (uris, ok) in [
            (vec![good], true),
            (vec!["spiffe://other.td/ns/default/sa/sleep"], false),
            (vec![], false),
            (vec![good, "spiffe://cluster.local/ns/default/sa/x"], false),
            (vec!["https://example.com/x"], false),
        ] {
            let (key, pem) = csr_for(&uris);
            let r = ca.sign_csr(&pem);
            assert_eq!(r.is_ok(), ok, "{uris:?}: {r:?}");
            if let Ok((id, leaf)) = r {
                assert_eq!(id.to_string(), good);
                let certs = waypoint_hbone::tls::certs::parse_certs(&leaf).expect("parse");
                assert_eq!(waypoint_hbone::tls::san::spiffe_sans(&certs[0]), vec![id]);
                // The certificate certifies the CSR's key.
                let (_, x509) =
                    x509_parser::parse_x509_certificate(certs[0].as_ref()).expect("x509");
                assert_eq!(
                    x509.public_key().subject_public_key.data.as_ref(),
                    key.public_key_raw()
                );
            }
        }
        assert!(ca.sign_csr("not a csr").is_err());
    }

    #[test]
    fn exactly_one_spiffe_uri_san() {
        let ca = DevCa::generate("cluster.local").expect("ca");
        let a = "spiffe://cluster.local/ns/default/sa/a";
        let b = "spiffe://cluster.local/ns/default/sa/b";
        for (uris, ok) in [
            (vec![a], true),
            (vec![a, b], false),
            (vec![a, "https://example.com/x"], false),
            (vec!["https://example.com/x"], false),
        ] {
            let issued = ca.issue_with_uri_sans(&uris).expect("issue");
            let certs = waypoint_hbone::tls::certs::parse_certs(&issued.cert_pem).expect("parse");
            let r = waypoint_hbone::tls::san::spiffe_id(&certs[0]);
            assert_eq!(r.is_ok(), ok, "{uris:?}: {r:?}");
            // Our own certificate is held to the same rule.
            let m = waypoint_hbone::tls::certs::material_from_pem(
                &issued.cert_pem,
                &issued.key_pem,
                &ca.ca_pem(),
            );
            assert_eq!(m.is_ok(), ok, "{uris:?}");
        }
    }
}

//! Test PKI: a dev CA in a temporary directory, workload certificate stores for any
//! identity, and the bad cases (untrusted CA, other trust domain, expired certificate).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use waypoint_devtools::dev_ca::{write_issued, DevCa};
use waypoint_hbone::tls::{certs, CertPaths, CertStore, Identity};

/// A fresh, unique temporary directory (removed on drop).
#[derive(Debug)]
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        let p = std::env::temp_dir().join(format!(
            "wp-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("create temp dir");
        TempDir(p)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A mesh CA with its directory.
#[derive(Debug)]
pub struct Pki {
    pub dir: TempDir,
    pub ca: DevCa,
    pub trust_domain: String,
}

impl Pki {
    pub fn new(trust_domain: &str) -> Self {
        let dir = TempDir::new("pki");
        let ca = DevCa::load_or_generate(dir.path(), trust_domain).expect("dev CA");
        Pki {
            dir,
            ca,
            trust_domain: trust_domain.to_string(),
        }
    }

    pub fn id(&self, ns: &str, sa: &str) -> Identity {
        Identity::new(&self.trust_domain, ns, sa)
    }

    /// Issue `ns/sa` into the CA directory; returns its cert paths.
    pub fn issue(&self, ns: &str, sa: &str) -> CertPaths {
        let dir = self
            .ca
            .write_workload(self.dir.path(), &self.id(ns, sa))
            .expect("issue");
        CertPaths::from_dir(&dir)
    }

    /// A cert store for `ns/sa`.
    pub fn store(&self, ns: &str, sa: &str) -> Arc<CertStore> {
        store_from(&self.issue(ns, sa))
    }

    /// A store for `id` (any trust domain) signed by this CA, trusting this CA.
    pub fn store_for(&self, id: &Identity, not_after: Option<SystemTime>) -> Arc<CertStore> {
        let now = SystemTime::now();
        let issued = self
            .ca
            .issue_with_validity(
                id,
                now - Duration::from_secs(7200),
                not_after.unwrap_or(now + Duration::from_secs(3600)),
            )
            .expect("issue");
        let dir = self.dir.path().join(format!(
            "custom-{}-{}-{}",
            id.trust_domain, id.namespace, id.service_account
        ));
        write_issued(&dir, &issued, &self.ca.ca_pem()).expect("write");
        store_from(&CertPaths::from_dir(&dir))
    }

    /// An expired certificate for `ns/sa` (ended an hour ago).
    pub fn expired_store(&self, ns: &str, sa: &str) -> Arc<CertStore> {
        self.store_for(
            &self.id(ns, sa),
            Some(SystemTime::now() - Duration::from_secs(3600)),
        )
    }
}

/// Load a store from files.
pub fn store_from(paths: &CertPaths) -> Arc<CertStore> {
    CertStore::new(certs::load(paths).expect("load certs")).expect("store")
}

//! The one certificate layout every command reads: a directory with the chain, the key and the
//! mesh roots under Istio's names (or an older alias), each file overridable, checked to exist.

use std::path::{Path, PathBuf};

/// The chain, key and roots file names of one layout, in the order `find` tries them.
/// The first is Istio's (what istio-agent writes and `dev-ca` writes now); the others are the
/// names older `dev-ca` and `bootstrap` directories used, still accepted.
pub const LAYOUTS: [[&str; 3]; 3] = [
    ["cert-chain.pem", "key.pem", "root-cert.pem"],
    ["cert.pem", "key.pem", "ca.pem"],
    ["waypoint.pem", "waypoint-key.pem", "ca.pem"],
];

/// Istio's file names, written by `dev-ca`: chain, key, roots.
pub const CANONICAL: [&str; 3] = LAYOUTS[0];

/// The three roles, with the flag that sets each file alone.
const ROLES: [(&str, &str); 3] = [
    ("certificate chain", "--cert"),
    ("private key", "--key"),
    ("root certificates", "--roots"),
];

/// Why the certificate files could not be resolved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LayoutError {
    /// Neither a directory nor a file was given for a role.
    #[error("no {what}: pass --certs DIR (with {canonical}) or {flag} FILE")]
    NotGiven {
        what: &'static str,
        flag: &'static str,
        canonical: &'static str,
    },
    /// `--certs DIR` is not a directory.
    #[error("--certs {}: not a directory", dir.display())]
    NoDirectory { dir: PathBuf },
    /// The directory holds no file for a role under any accepted name.
    #[error("--certs {}: no {what} ({names}); pass {flag} FILE to use another file", dir.display())]
    MissingInDir {
        dir: PathBuf,
        what: &'static str,
        flag: &'static str,
        names: String,
    },
    /// A file given with `--cert`/`--key`/`--roots` does not exist.
    #[error("{flag} {}: no such file", file.display())]
    MissingFile { flag: &'static str, file: PathBuf },
}

/// Where to read the chain, key and roots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertPaths {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub roots: PathBuf,
}

impl CertPaths {
    /// Istio's names in `dir` (`cert-chain.pem`, `key.pem`, `root-cert.pem`), not checked: a
    /// directory `dev-ca` wrote, or one that exists only where Envoy runs.
    pub fn from_dir(dir: &Path) -> Self {
        let [cert, key, roots] = CANONICAL.map(|f| dir.join(f));
        CertPaths { cert, key, roots }
    }

    /// The files in `dir`, under Istio's names or one of the older layouts ([`LAYOUTS`]):
    /// the first layout holding both a chain and a key gives them (a pair); the roots are
    /// the first accepted roots name present. A missing file is an error naming it.
    pub fn find(dir: &Path) -> Result<Self, LayoutError> {
        Self::resolve(Some(dir), None, None, None)
    }

    /// `--certs DIR` plus `--cert`/`--key`/`--roots` overrides, resolved to three existing
    /// files (an override wins over the directory).
    pub fn resolve(
        dir: Option<&Path>,
        cert: Option<&Path>,
        key: Option<&Path>,
        roots: Option<&Path>,
    ) -> Result<Self, LayoutError> {
        if let Some(d) = dir {
            if !d.is_dir() {
                return Err(LayoutError::NoDirectory {
                    dir: d.to_path_buf(),
                });
            }
        }
        // The chain and key go together: both from the first layout that has both; else each
        // under the first accepted name present.
        let layout = dir.and_then(|d| {
            LAYOUTS
                .iter()
                .find(|l| d.join(l[0]).is_file() && d.join(l[1]).is_file())
        });
        let pick = |role: usize, given: Option<&Path>| -> Result<PathBuf, LayoutError> {
            let (what, flag) = ROLES[role];
            if let Some(f) = given {
                return match f.is_file() {
                    true => Ok(f.to_path_buf()),
                    false => Err(LayoutError::MissingFile {
                        flag,
                        file: f.to_path_buf(),
                    }),
                };
            }
            let Some(d) = dir else {
                return Err(LayoutError::NotGiven {
                    what,
                    flag,
                    canonical: CANONICAL[role],
                });
            };
            let found = match (role, layout) {
                (0 | 1, Some(l)) => Some(d.join(l[role])),
                _ => names(role)
                    .into_iter()
                    .map(|n| d.join(n))
                    .find(|p| p.is_file()),
            };
            found.ok_or_else(|| LayoutError::MissingInDir {
                dir: d.to_path_buf(),
                what,
                flag,
                names: names(role).join(" or "),
            })
        };
        Ok(CertPaths {
            cert: pick(0, cert)?,
            key: pick(1, key)?,
            roots: pick(2, roots)?,
        })
    }

    pub fn all(&self) -> [&Path; 3] {
        [&self.cert, &self.key, &self.roots]
    }

    /// The command-line flags naming these files: `--certs DIR` when they are one layout's
    /// names in one directory, else `--cert F --key F --roots F`.
    pub fn flags(&self) -> String {
        let dir = self.cert.parent();
        let name = |p: &Path| p.file_name().and_then(|n| n.to_str()).map(str::to_string);
        let names = self.all().map(name);
        let one_dir = self.all().iter().all(|p| p.parent() == dir);
        let layout = LAYOUTS.iter().any(|l| {
            names
                .iter()
                .zip(l)
                .all(|(n, want)| n.as_deref() == Some(*want))
        });
        match (dir, one_dir && layout) {
            (Some(d), true) => format!("--certs {}", d.display()),
            _ => format!(
                "--cert {} --key {} --roots {}",
                self.cert.display(),
                self.key.display(),
                self.roots.display()
            ),
        }
    }
}

/// The accepted names of `role` (0 chain, 1 key, 2 roots), Istio's first, without repeats.
fn names(role: usize) -> Vec<&'static str> {
    let mut out: Vec<&'static str> = Vec::new();
    for l in LAYOUTS {
        if !out.contains(&l[role]) {
            out.push(l[role]);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Dir(PathBuf);

    impl Dir {
        fn with(name: &str, files: &[&str]) -> Dir {
            let d = std::env::temp_dir().join(format!("wp-layout-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&d);
            std::fs::create_dir_all(&d).expect("mkdir");
            for f in files {
                std::fs::write(d.join(f), "pem").expect("write");
            }
            Dir(d)
        }

        fn paths(&self, files: [&str; 3]) -> CertPaths {
            let [cert, key, roots] = files.map(|f| self.0.join(f));
            CertPaths { cert, key, roots }
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn every_accepted_layout_resolves_to_its_own_files() {
        for (i, layout) in LAYOUTS.iter().enumerate() {
            let d = Dir::with(&format!("l{i}"), layout);
            assert_eq!(CertPaths::find(&d.0), Ok(d.paths(*layout)), "{layout:?}");
        }
        // Istio's names win over an older layout in the same directory.
        let mixed = [
            "cert-chain.pem",
            "key.pem",
            "root-cert.pem",
            "waypoint.pem",
            "waypoint-key.pem",
            "ca.pem",
        ];
        let d = Dir::with("mixed", &mixed);
        assert_eq!(CertPaths::find(&d.0), Ok(d.paths(CANONICAL)));
        // envoy-configs/certs: other workloads' files beside the waypoint's.
        let example = ["ca.pem", "ca-key.pem", "curl.pem", "curl-key.pem"];
        let d = Dir::with("example", &[&example[..], &LAYOUTS[2][..2]].concat());
        assert_eq!(CertPaths::find(&d.0), Ok(d.paths(LAYOUTS[2])));
    }

    #[test]
    fn a_missing_file_is_named() {
        let d = Dir::with("nokey", &["cert-chain.pem", "root-cert.pem"]);
        let e = CertPaths::find(&d.0).expect_err("no key");
        assert!(
            matches!(
                &e,
                LayoutError::MissingInDir {
                    what: "private key",
                    ..
                }
            ),
            "{e:?}"
        );
        assert!(e.to_string().contains("key.pem or waypoint-key.pem"), "{e}");
        let d = Dir::with("noroots", &["cert.pem", "key.pem"]);
        let e = CertPaths::find(&d.0).expect_err("no roots").to_string();
        assert!(
            e.contains("no root certificates (root-cert.pem or ca.pem)"),
            "{e}"
        );
        let e = CertPaths::find(Path::new("/nonexistent/wp")).expect_err("no dir");
        assert_eq!(e.to_string(), "--certs /nonexistent/wp: not a directory");
    }

    #[test]
    fn flags_name_a_directory_only_for_one_layout_in_one_place() {
        let canonical = CertPaths::from_dir(Path::new("/etc/waypoint/certs"));
        assert_eq!(canonical.flags(), "--certs /etc/waypoint/certs");
        let old = Dir::with("flags", &[]).paths(LAYOUTS[2]);
        assert_eq!(
            old.flags(),
            format!(
                "--certs {}",
                old.cert
                    .parent()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default()
            )
        );
        let mixed = CertPaths {
            cert: "/a/cert-chain.pem".into(),
            key: "/b/key.pem".into(),
            roots: "/a/root-cert.pem".into(),
        };
        assert_eq!(
            mixed.flags(),
            "--cert /a/cert-chain.pem --key /b/key.pem --roots /a/root-cert.pem"
        );
    }

    #[test]
    fn overrides_win_and_are_checked() {
        let d = Dir::with(
            "over",
            &["cert-chain.pem", "key.pem", "root-cert.pem", "other.pem"],
        );
        let other = d.0.join("other.pem");
        let p = CertPaths::resolve(Some(&d.0), None, None, Some(&other)).expect("roots override");
        assert_eq!(p.roots, other);
        assert_eq!(p.cert, d.0.join("cert-chain.pem"));
        let all = CertPaths::resolve(None, Some(&other), Some(&other), Some(&other));
        assert_eq!(all.map(|p| p.key), Ok(other.clone()));
        let gone = d.0.join("gone.pem");
        let e = CertPaths::resolve(Some(&d.0), None, Some(&gone), None).expect_err("missing");
        assert_eq!(
            e.to_string(),
            format!("--key {}: no such file", gone.display())
        );
        let e = CertPaths::resolve(None, Some(&other), None, None).expect_err("no key");
        assert!(
            e.to_string()
                .starts_with("no private key: pass --certs DIR"),
            "{e}"
        );
    }
}

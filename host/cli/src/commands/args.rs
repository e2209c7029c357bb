//! Flags and flag parsers the commands share: a bad value is refused with the flag named,
//! before anything starts.

use std::path::PathBuf;

use waypoint_core::NamespacedName;
use waypoint_hbone::tls::{CertPaths, LayoutError};

/// `--waypoint NS/NAME`: a valid Kubernetes `namespace/name` (an invalid one used to be
/// ignored silently by `run`).
pub fn waypoint_name(s: &str) -> Result<String, String> {
    NamespacedName::parse(s)
        .map(|n| n.to_string())
        .map_err(|e| e.to_string())
}

/// `--watch-interval`: a Go duration (`500ms`, `2s`) or a plain number of seconds (`1`, as
/// before), between 100ms and 60s.
pub fn interval(s: &str) -> Result<std::time::Duration, String> {
    let d = match s.trim().parse::<f64>() {
        Ok(secs) if secs.is_finite() && secs >= 0.0 => std::time::Duration::from_secs_f64(secs),
        Ok(_) => return Err(format!("{s:?}: not a duration")),
        Err(_) => waypoint_core::istio::parse_duration(s)?,
    };
    let (min, max) = (
        std::time::Duration::from_millis(100),
        std::time::Duration::from_secs(60),
    );
    if d < min || d > max {
        return Err(format!("{s:?}: must be between 100ms and 60s"));
    }
    Ok(d)
}

/// The certificate flags of every command that presents the waypoint's identity (`run`,
/// `bootstrap`, `xds`, `originate`, `curl`): one directory, each file overridable.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct CertArgs {
    /// Certificate directory: Istio's `cert-chain.pem`, `key.pem`, `root-cert.pem` (what
    /// `dev-ca` writes); the older names `cert.pem`/`ca.pem` and `waypoint.pem`/
    /// `waypoint-key.pem` are accepted too.
    #[arg(long, value_name = "DIR")]
    pub certs: Option<PathBuf>,
    /// Certificate chain PEM, leaf first (instead of the one in `--certs`).
    #[arg(long, value_name = "FILE")]
    pub cert: Option<PathBuf>,
    /// Private key PEM (instead of the one in `--certs`).
    #[arg(long, value_name = "FILE")]
    pub key: Option<PathBuf>,
    /// Mesh root certificates PEM (instead of the one in `--certs`).
    #[arg(long, value_name = "FILE")]
    pub roots: Option<PathBuf>,
}

impl CertArgs {
    /// Whether any certificate flag was given.
    pub fn given(&self) -> bool {
        [&self.certs, &self.cert, &self.key, &self.roots]
            .iter()
            .any(|f| f.is_some())
    }

    /// The three files, each existing (an error names the missing one and its flag).
    pub fn resolve(&self) -> Result<CertPaths, LayoutError> {
        CertPaths::resolve(
            self.certs.as_deref(),
            self.cert.as_deref(),
            self.key.as_deref(),
            self.roots.as_deref(),
        )
    }

    /// The three files without checking them (they exist only where Envoy runs): the
    /// overrides, else Istio's names in `--certs`.
    pub fn unchecked(&self) -> Result<CertPaths, LayoutError> {
        let Some(dir) = &self.certs else {
            return match (&self.cert, &self.key, &self.roots) {
                (Some(c), Some(k), Some(r)) => Ok(CertPaths {
                    cert: c.clone(),
                    key: k.clone(),
                    roots: r.clone(),
                }),
                // Resolving names the first missing flag.
                _ => self.resolve(),
            };
        };
        let base = CertPaths::from_dir(dir);
        Ok(CertPaths {
            cert: self.cert.clone().unwrap_or(base.cert),
            key: self.key.clone().unwrap_or(base.key),
            roots: self.roots.clone().unwrap_or(base.roots),
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    #[test]
    fn interval_takes_durations_and_plain_seconds() {
        for (input, want) in [
            ("1", Some(Duration::from_secs(1))),
            ("0.5", Some(Duration::from_millis(500))),
            ("500ms", Some(Duration::from_millis(500))),
            ("2s", Some(Duration::from_secs(2))),
            ("1m", Some(Duration::from_secs(60))),
            ("10ms", None),
            ("5m", None),
            ("-1", None),
            ("soon", None),
        ] {
            assert_eq!(super::interval(input).ok(), want, "{input}");
        }
    }
}

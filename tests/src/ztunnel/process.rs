//! A real ztunnel (binary from `WAYPOINT_ZTUNNEL`) run in dedicated mode inside a test network
//! namespace: local config, certificates from our CA endpoint, logs kept in a file.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

/// The env var naming the ztunnel binary; the interop tests skip when it is unset.
pub const ZTUNNEL_ENV: &str = "WAYPOINT_ZTUNNEL";

/// The ztunnel binary, when configured and present.
pub fn binary() -> Option<PathBuf> {
    let p = PathBuf::from(std::env::var_os(ZTUNNEL_ENV)?);
    p.is_file().then_some(p)
}

/// The ztunnel binary, or `None` after printing a visible skip line (like
/// [`crate::netns::skip_unless_root`]) when `WAYPOINT_ZTUNNEL` is unset or not a file.
pub fn binary_or_skip(test: &str) -> Option<PathBuf> {
    let bin = binary();
    if bin.is_none() {
        let why = format!(
            "SKIP {test}: set {ZTUNNEL_ENV}=/path/to/ztunnel (a ztunnel binary built from istio/ztunnel) to run"
        );
        // Straight to stderr: the test harness captures `println!`/`eprintln!` of passing tests.
        use std::io::Write;
        let _ = writeln!(std::io::stderr().lock(), "{why}");
    }
    bin
}

/// One ztunnel process; killed on drop.
#[derive(Debug)]
pub struct Ztunnel {
    pub name: String,
    /// Its pod IP (readiness is served on `ip:15021`).
    pub ip: IpAddr,
    pub log: PathBuf,
    child: Child,
}

/// What one ztunnel serves.
#[derive(Debug, Clone)]
pub struct ZtunnelSpec<'a> {
    /// Network namespace to run in.
    pub netns: &'a str,
    /// `namespace/name/service-account` of the one workload it serves (dedicated mode).
    pub workload: String,
    pub ip: IpAddr,
    pub local_config: &'a Path,
    pub ca_url: String,
    pub ca_root: &'a Path,
}

impl Ztunnel {
    /// Start `bin` as described by `spec`, logging to `log_dir/<name>.log`.
    pub fn start(
        bin: &Path,
        name: &str,
        spec: &ZtunnelSpec<'_>,
        log_dir: &Path,
    ) -> anyhow::Result<Ztunnel> {
        let log = log_dir.join(format!("{name}.log"));
        let out = std::fs::File::create(&log)?;
        let err = out.try_clone()?;
        let child = crate::netns::exec(spec.netns, bin)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            // No istiod: config from a file, certificates from our CA endpoint.
            .env("XDS_ADDRESS", "")
            .env("LOCAL_XDS_PATH", spec.local_config)
            .env("CA_ADDRESS", &spec.ca_url)
            .env("CA_ROOT_CA", spec.ca_root)
            // One workload per ztunnel, no CNI: dedicated mode.
            .env("PROXY_MODE", "dedicated")
            .env("PROXY_WORKLOAD_INFO", &spec.workload)
            // Connect to the app from our own address (no transparent source spoofing).
            .env("ENABLE_ORIG_SRC", "false")
            .env(
                "RUST_LOG",
                std::env::var("WAYPOINT_ZTUNNEL_LOG").unwrap_or_else(|_| {
                    "info,ztunnel::proxy::inbound=debug,ztunnel::proxy::outbound=debug".into()
                }),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .spawn()?;
        Ok(Ztunnel {
            name: name.to_string(),
            ip: spec.ip,
            log,
            child,
        })
    }

    /// Wait until `ip:15021/healthz/ready` answers 200 (certificates fetched, config loaded).
    pub async fn wait_ready(&mut self, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        let addr = SocketAddr::new(self.ip, 15021);
        loop {
            if let Some(status) = self.child.try_wait()? {
                anyhow::bail!("{} exited ({status}):\n{}", self.name, self.log_text());
            }
            if let Ok((200, _)) = crate::waypoint::admin_get(addr, "/healthz/ready").await {
                return Ok(());
            }
            if Instant::now() > deadline {
                anyhow::bail!(
                    "{} not ready in {timeout:?}:\n{}",
                    self.name,
                    self.log_text()
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Ztunnel {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Log lines that report a broken stream or connection: ztunnel's plain format is
/// `<time>\t<level>\t<target>...`, problems are logged at `warn`/`error`, and access log lines
/// of failed connections carry `error=`.
pub fn error_lines(log: &str) -> Vec<String> {
    log.lines()
        .filter(|l| {
            let l = strip_ansi(l);
            l.contains("\twarn\t") || l.contains("\terror\t") || l.contains("error=")
        })
        .map(strip_ansi)
        .collect()
}

/// Remove terminal colour escapes.
pub fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut it = s.chars();
    while let Some(c) = it.next() {
        if c == '\u{1b}' {
            for d in it.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_error_lines() {
        let log = "2026-01-01T00:00:00Z\tinfo\taccess\tconnection complete src.addr=1\n\
                   2026-01-01T00:00:00Z\twarn\txds\tsomething\n\
                   2026-01-01T00:00:00Z\tinfo\taccess\tconnection complete error=\"io error\"\n\
                   2026-01-01T00:00:00Z\tinfo\tproxy\twarning-free line\n\
                   \u{1b}[2m2026\u{1b}[0m\t\u{1b}[31merror\u{1b}[0m\tx\n";
        let e = error_lines(log);
        assert_eq!(e.len(), 3, "{e:?}");
        assert!(e[2].contains("\terror\t"), "{e:?}");
        assert_eq!(strip_ansi("\u{1b}[1ma\u{1b}[0mb"), "ab");
    }
}

//! Network-namespace helpers for multi-host tests: whether we may create namespaces (root),
//! a visible SKIP line when we may not, a bridged topology removed on drop, and processes
//! started in its namespaces.

use std::ffi::OsStr;
use std::io::{BufRead, BufReader};
use std::net::IpAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use waypoint_hbone::tls::CertPaths;

/// True when running as root (needed for `ip netns`).
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(1).map(|u| u == "0"))
        })
        .unwrap_or(false)
}

/// Print a visible skip line; returns true when the test should skip.
pub fn skip_unless_root(test: &str) -> bool {
    if is_root() && Command::new("ip").arg("-V").output().is_ok() {
        return false;
    }
    // Straight to stderr: the test harness captures `println!`/`eprintln!` of passing tests.
    use std::io::Write;
    let _ = writeln!(
        std::io::stderr().lock(),
        "SKIP {test}: needs root and iproute2 for network namespaces"
    );
    true
}

/// Run `ip ARGS`; an error carries the command and what it printed on stderr.
pub fn ip(args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new("ip").args(args).output()?;
    if !out.status.success() {
        anyhow::bail!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// Hosts on one bridge: each a namespace with a veth and an address in `10.250.N.0/24`;
/// the root namespace has `.1` on the bridge. Everything is deleted on drop.
#[derive(Debug)]
pub struct Topology {
    pub prefix: String,
    pub subnet: u8,
    bridge: String,
    hosts: Vec<String>,
}

impl Topology {
    /// A bridge named after this process (unique per concurrent run).
    pub fn new() -> anyhow::Result<Topology> {
        let pid = std::process::id();
        let prefix = format!("wpt{}", pid % 100_000);
        let subnet = (pid % 200 + 20) as u8;
        let bridge = format!("{prefix}br");
        ip(&["link", "add", &bridge, "type", "bridge"])?;
        let t = Topology {
            prefix,
            subnet,
            bridge,
            hosts: Vec::new(),
        };
        ip(&[
            "addr",
            "add",
            &format!("10.250.{}.1/24", t.subnet),
            "dev",
            &t.bridge,
        ])?;
        ip(&["link", "set", &t.bridge, "up"])?;
        Ok(t)
    }

    /// The address of host number `n` (2..=254).
    pub fn addr(&self, n: u8) -> std::net::IpAddr {
        std::net::IpAddr::from([10, 250, self.subnet, n])
    }

    /// Add hosts `(name, n)` in order, as [`Topology::host`]; their namespace names.
    pub fn hosts<const N: usize>(&mut self, hosts: [(&str, u8); N]) -> anyhow::Result<[String; N]> {
        let mut names = Vec::with_capacity(N);
        for (name, n) in hosts {
            names.push(self.host(name, n)?);
        }
        names
            .try_into()
            .map_err(|_| anyhow::anyhow!("{N} hosts expected"))
    }

    /// Add host `name` with address number `n`; returns the namespace name.
    pub fn host(&mut self, name: &str, n: u8) -> anyhow::Result<String> {
        let ns = format!("{}{name}", self.prefix);
        let outside = format!("{}{n}o", self.prefix);
        ip(&["netns", "add", &ns])?;
        self.hosts.push(ns.clone());
        ip(&[
            "link", "add", &outside, "type", "veth", "peer", "name", "eth0", "netns", &ns,
        ])?;
        ip(&["link", "set", &outside, "master", &self.bridge])?;
        ip(&["link", "set", &outside, "up"])?;
        let cidr = format!("{}/24", self.addr(n));
        ip(&["-n", &ns, "addr", "add", &cidr, "dev", "eth0"])?;
        ip(&["-n", &ns, "link", "set", "eth0", "up"])?;
        ip(&["-n", &ns, "link", "set", "lo", "up"])?;
        Ok(ns)
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        for ns in &self.hosts {
            let _ = ip(&["netns", "del", ns]);
        }
        let _ = ip(&["link", "del", &self.bridge]);
    }
}

/// `bin` run in namespace `ns` (`ip netns exec NS BIN`): add arguments, then run it.
pub fn exec(ns: &str, bin: impl AsRef<OsStr>) -> Command {
    let mut c = Command::new("ip");
    c.args(["netns", "exec", ns]).arg(bin);
    c
}

/// The directory of a workload's certificate files (what `--certs` of a node takes).
pub fn cert_dir(p: &CertPaths) -> String {
    p.cert.parent().expect("cert dir").display().to_string()
}

/// Long-running processes of one binary started in namespaces, each waited for until it
/// prints "ready"; all killed on drop, whatever the test outcome.
#[derive(Debug)]
pub struct Nodes {
    bin: String,
    log: String,
    children: Vec<Child>,
}

impl Nodes {
    /// Nodes running `bin` with `RUST_LOG=log`.
    pub fn new(bin: &str, log: &str) -> Nodes {
        Nodes {
            bin: bin.to_string(),
            log: log.to_string(),
            children: Vec::new(),
        }
    }

    /// Start the binary with `args` in namespace `ns` and wait (30 s) for its "ready" line.
    pub fn spawn_ready(&mut self, ns: &str, args: &[String]) {
        let mut child = exec(ns, &self.bin)
            .args(args)
            .env("RUST_LOG", &self.log)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn node");
        let stdout = child.stdout.take().expect("stdout");
        self.children.push(child);
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line.trim() == "ready" {
                    let _ = tx.send(());
                }
            }
        });
        rx.recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| panic!("node in {ns} did not become ready: {args:?}"));
    }

    /// Start the node's waypoint role on `ip` with the manifests in `config`.
    pub fn spawn_waypoint(&mut self, ns: &str, ip: IpAddr, config: &Path, certs: &CertPaths) {
        self.spawn_ready(
            ns,
            &[
                "waypoint".into(),
                "--ip".into(),
                ip.to_string(),
                "--config".into(),
                config.display().to_string(),
                "--certs".into(),
                cert_dir(certs),
            ],
        );
    }
}

impl Drop for Nodes {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exec_runs_the_binary_inside_the_namespace() {
        for (ns, bin) in [("wpt1c", "/bin/node"), ("wpt2w", "node")] {
            let c = exec(ns, bin);
            assert_eq!(c.get_program(), "ip");
            let args: Vec<&OsStr> = c.get_args().collect();
            assert_eq!(args, ["netns", "exec", ns, bin]);
        }
    }

    #[test]
    fn cert_dir_is_the_directory_of_the_cert_file() {
        let p = CertPaths {
            cert: "/tmp/pki/web/cert-chain.pem".into(),
            key: "/tmp/pki/web/key.pem".into(),
            roots: "/tmp/pki/root-cert.pem".into(),
        };
        assert_eq!(cert_dir(&p), "/tmp/pki/web");
    }
}

//! Network-namespace helpers for multi-host tests: whether we may create namespaces (root),
//! a visible SKIP line when we may not, and a bridged topology removed on drop.

use std::process::Command;

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

fn ip(args: &[&str]) -> anyhow::Result<()> {
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

//! The `waypoint proxy-config` binary against `waypoint run` (both real processes) serving
//! examples/bookinfo: the routes with the 90/10 weights as JSON, the certificate's SPIFFE SAN
//! in the table, and a clear error for an address with no admin behind it.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_waypoint"))
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn temp(tag: &str) -> PathBuf {
    let p = std::env::temp_dir().join(format!("wp-pc-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&p);
    std::fs::create_dir_all(&p).expect("mkdir");
    p
}

fn free_port() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr")
}

fn proxy_config(args: &[&str]) -> Output {
    Command::new(bin())
        .arg("proxy-config")
        .args(args)
        .output()
        .expect("run proxy-config")
}

/// `waypoint run` on loopback; SIGTERM (via kill(1)) and reaped on drop.
struct Run(Child);

impl Drop for Run {
    fn drop(&mut self) {
        let _ = Command::new("kill").arg(self.0.id().to_string()).status();
        for _ in 0..50 {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn proxy_config_reads_a_running_host() {
    let dir = temp("ca");
    let out = Command::new(bin())
        .args(["dev-ca", "--out"])
        .arg(&dir)
        .args(["--workload", "default/waypoint"])
        .output()
        .expect("dev-ca");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let admin = free_port();
    let _run = Run(Command::new(bin())
        .arg("run")
        .arg("--config")
        .arg(repo_root().join("examples/bookinfo"))
        .arg("--certs")
        .arg(dir.join("default.waypoint"))
        .args(["--hbone-addr", &free_port().to_string()])
        .args(["--ready-addr", &free_port().to_string()])
        .args(["--stats-addr", &free_port().to_string()])
        .args(["--admin-addr", &admin.to_string()])
        .args(["--drain-duration", "1s"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn run"));
    let addr = admin.to_string();
    let deadline = Instant::now() + Duration::from_secs(30);
    let json = loop {
        let out = proxy_config(&["routes", "--admin", &addr, "-o", "json"]);
        if out.status.success() {
            break out;
        }
        assert!(
            Instant::now() < deadline,
            "proxy-config never succeeded: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).expect("JSON output");
    assert_eq!(v["mode"], "host");
    assert_eq!(v["waypoint"], "default/waypoint");
    assert!(v.get("secrets").is_none(), "only the routes section");
    let canary = v["routes"]
        .as_array()
        .expect("routes")
        .iter()
        .find(|r| r["resource"] == "VirtualService/default/reviews" && r["rule"] == "canary")
        .unwrap_or_else(|| panic!("no canary route: {v:#}"));
    let weights: Vec<(String, u64)> = canary["backends"]
        .as_array()
        .expect("backends")
        .iter()
        .map(|b| {
            (
                b["subset"].as_str().unwrap_or("").to_string(),
                b["weight"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    assert_eq!(weights, vec![("v1".into(), 90), ("v3".into(), 10)]);

    let table = proxy_config(&["secrets", "--admin", &addr]);
    assert!(table.status.success());
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(text.starts_with("RESOURCE NAME"), "{text}");
    assert!(
        text.contains("spiffe://cluster.local/ns/default/sa/waypoint"),
        "{text}"
    );
    assert!(!text.contains("PRIVATE KEY"));
    let yaml = proxy_config(&["all", "--admin", &addr, "-o", "yaml"]);
    assert!(yaml.status.success());
    let yaml = String::from_utf8_lossy(&yaml.stdout);
    assert!(yaml.contains("mode: host"), "{yaml}");
    assert!(yaml.contains("name: productpage-viewer"), "{yaml}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn proxy_config_without_an_admin_is_an_error_naming_the_address() {
    // A port nothing listens on (bound, then released).
    let addr = free_port().to_string();
    let out = proxy_config(&["routes", "--admin", &addr, "--timeout", "2s"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&addr), "{err}");
    let bad = proxy_config(&["listeners"]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("routes"));
}

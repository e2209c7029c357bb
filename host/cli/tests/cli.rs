//! The `waypoint` binary: `dev-ca` writes the documented layout, and `run` serves readiness
//! on the given port once certificates and config are loaded, keeps `/config_dump` off the
//! stats port, and drains and exits 0 on SIGTERM.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_waypoint"))
}

fn temp(tag: &str) -> PathBuf {
    let p = std::env::temp_dir().join(format!("wp-cli-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&p);
    std::fs::create_dir_all(&p).expect("mkdir");
    p
}

fn free_port() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr")
}

fn http_status(addr: SocketAddr, path: &str) -> Option<u16> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_millis(500)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n"
    )
    .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    out.split_whitespace().nth(1)?.parse().ok()
}

#[test]
fn dev_ca_writes_layout_and_run_becomes_ready() {
    let dir = temp("ca");
    let out = Command::new(bin())
        .args(["dev-ca", "--out"])
        .arg(&dir)
        .args([
            "--trust-domain",
            "example.org",
            "--workload",
            "default/waypoint",
            "--workload",
            "shop/cart",
        ])
        .output()
        .expect("run dev-ca");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for f in [
        "ca.pem",
        "ca-key.pem",
        "default.waypoint/cert-chain.pem",
        "default.waypoint/key.pem",
        "default.waypoint/root-cert.pem",
        "shop.cart/cert-chain.pem",
    ] {
        assert!(dir.join(f).is_file(), "missing {f}");
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("spiffe://example.org/ns/shop/sa/cart"),
        "{stdout}"
    );
    // A bad workload spec is an error with a message, not a panic.
    let bad = Command::new(bin())
        .args(["dev-ca", "--out"])
        .arg(&dir)
        .args(["--workload", "no-slash"])
        .output()
        .expect("run dev-ca");
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("ns/sa"));

    let cfg = temp("cfg");
    std::fs::write(
        cfg.join("gw.yaml"),
        "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: waypoint, namespace: default}\nspec:\n  gatewayClassName: istio-waypoint\n  listeners: [{name: mesh, port: 15008, protocol: HBONE}]\n",
    )
    .expect("write");
    let (hbone, ready, stats, admin) = (free_port(), free_port(), free_port(), free_port());
    let mut child = Command::new(bin())
        .arg("run")
        .arg("--config")
        .arg(&cfg)
        .arg("--certs")
        .arg(dir.join("default.waypoint"))
        .args(["--hbone-addr", &hbone.to_string()])
        .args(["--ready-addr", &ready.to_string()])
        .args(["--stats-addr", &stats.to_string()])
        .args(["--admin-addr", &admin.to_string()])
        .args(["--drain-duration", "2s"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn run");
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut status = None;
    while Instant::now() < deadline {
        status = http_status(ready, "/healthz/ready");
        if status == Some(200) {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let stats_ok = http_status(stats, "/stats/prometheus");
    let dump_ok = http_status(admin, "/config_dump");
    let dump_on_stats = http_status(stats, "/config_dump");
    // Stop it with SIGTERM (via kill(1), no unsafe), and wait.
    let _ = Command::new("kill").arg(child.id().to_string()).status();
    let mut exited = None;
    for _ in 0..50 {
        if let Ok(Some(status)) = child.try_wait() {
            exited = Some(status);
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    if exited.is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&cfg);
    assert_eq!(status, Some(200), "readiness");
    assert_eq!(stats_ok, Some(200));
    assert_eq!(dump_ok, Some(200));
    assert_eq!(
        dump_on_stats,
        Some(404),
        "config dump served on the stats port"
    );
    let exited = exited.expect("waypoint run must exit on SIGTERM");
    assert!(
        exited.success(),
        "waypoint run must exit 0 after draining: {exited}"
    );
}

/// An invalid `--waypoint` is refused by every command that takes one (`run` used to ignore
/// it and serve with no waypoint bound), naming the flag.
#[test]
fn invalid_waypoint_name_is_refused() {
    for cmd in ["run", "xds", "bootstrap"] {
        for bad in ["nope", "a/b/c", "Bookinfo/waypoint"] {
            let out = Command::new(bin())
                .args([cmd, "--config", "examples/bookinfo", "--waypoint", bad])
                .output()
                .expect("spawn");
            assert!(!out.status.success(), "{cmd} --waypoint {bad} must fail");
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(err.contains("--waypoint"), "{cmd} {bad}: {err}");
            assert!(err.contains(bad), "{cmd} {bad}: {err}");
        }
    }
}

/// `controller --kubeconfig` (as `run --kube`) reads the given file: a missing one is an error
/// naming it, not a silent fall-back to in-cluster config.
#[test]
fn controller_reads_the_given_kubeconfig() {
    let out = Command::new(bin())
        .args([
            "controller",
            "--image",
            "x",
            "--kubeconfig",
            "/nonexistent/wp-kubeconfig",
        ])
        .env_remove("KUBECONFIG")
        .output()
        .expect("spawn");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("/nonexistent/wp-kubeconfig"), "{err}");
}

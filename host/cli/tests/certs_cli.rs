//! One certificate layout on every command: a `dev-ca` directory works for `bootstrap`,
//! `xds`, `originate` and `run`; a missing file is an error at start naming it and its flag.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo(path: &str) -> String {
    format!("{}/../../{path}", env!("CARGO_MANIFEST_DIR"))
}

fn temp(tag: &str) -> PathBuf {
    let p = std::env::temp_dir().join(format!("wp-certs-cli-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&p);
    std::fs::create_dir_all(&p).expect("mkdir");
    p
}

fn waypoint(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_waypoint"))
        .args(args)
        .output()
        .expect("run waypoint")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

fn dev_ca(dir: &Path) -> PathBuf {
    let out = waypoint(&[
        "dev-ca",
        "--out",
        &dir.display().to_string(),
        "--workload",
        "default/waypoint",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    dir.join("default.waypoint")
}

#[test]
fn bootstrap_names_the_files_dev_ca_wrote() {
    let dir = temp("boot");
    let w = dev_ca(&dir);
    let ws = w.display().to_string();
    let out = waypoint(&[
        "bootstrap",
        "--config",
        &repo("examples/bookinfo"),
        "--certs",
        &ws,
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let yaml = String::from_utf8_lossy(&out.stdout);
    for f in ["cert-chain.pem", "key.pem", "root-cert.pem"] {
        assert!(
            yaml.contains(&format!("filename: {ws}/{f}")),
            "{f} not in the bootstrap"
        );
    }
    // The older layout of envoy-configs/certs resolves to its own names.
    let out = waypoint(&[
        "bootstrap",
        "--config",
        &repo("examples/bookinfo"),
        "--certs",
        &repo("envoy-configs/certs"),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("certs/waypoint-key.pem"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_missing_file_fails_every_command_at_start() {
    let dir = temp("missing");
    let w = dev_ca(&dir);
    std::fs::remove_file(w.join("key.pem")).expect("rm key");
    let ws = w.display().to_string();
    let cfg = repo("examples/bookinfo");
    let want = format!("--certs {ws}: no private key (key.pem or waypoint-key.pem)");
    for args in [
        vec!["bootstrap", "--config", &cfg, "--certs", &ws],
        vec![
            "xds",
            "--config",
            &cfg,
            "--certs",
            &ws,
            "--listen",
            "127.0.0.1:0",
        ],
        vec!["originate", "--certs", &ws, "--listen", "127.0.0.1:0"],
        vec![
            "run",
            "--config",
            &cfg,
            "--certs",
            &ws,
            "--hbone-addr",
            "127.0.0.1:0",
        ],
        vec!["curl", "--certs", &ws, "http://productpage:9080/"],
    ] {
        let out = waypoint(&args);
        assert!(!out.status.success(), "{args:?} exited 0");
        assert!(stderr(&out).contains(&want), "{args:?}: {}", stderr(&out));
        assert!(out.stdout.is_empty(), "{args:?} wrote output");
    }
    // A file override that does not exist is named with its flag.
    let gone = format!("{ws}/gone.pem");
    let out = waypoint(&[
        "bootstrap",
        "--config",
        &cfg,
        "--certs",
        &ws,
        "--key",
        &gone,
    ]);
    assert!(
        stderr(&out).contains(&format!("--key {gone}: no such file")),
        "{}",
        stderr(&out)
    );
    // Paths that exist only where Envoy runs: written as given, not checked.
    let out = waypoint(&[
        "bootstrap",
        "--config",
        &cfg,
        "--certs",
        "/etc/waypoint/certs",
        "--unchecked-certs",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("/etc/waypoint/certs/root-cert.pem"));
    let _ = std::fs::remove_dir_all(&dir);
}

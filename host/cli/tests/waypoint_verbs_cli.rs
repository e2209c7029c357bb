//! The `waypoint apply|delete|list|status` commands as a user runs them: the binary against
//! the fake API server through `--kubeconfig`, offline on the bookinfo files, and flag errors.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::json;
use waypoint_tests::kube::FakeApiServer;
use waypoint_tests::pki::TempDir;

fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_waypoint"))
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Run the binary off the runtime's worker threads (the fake API server runs on them).
async fn run(args: &[&str]) -> Output {
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        Command::new(bin())
            .args(&args)
            .current_dir(root())
            .env_remove("KUBECONFIG")
            .output()
            .expect("run waypoint")
    })
    .await
    .expect("join")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_list_status_delete_against_the_api_server() {
    let fake = FakeApiServer::start().await;
    fake.apply_yaml(
        r#"
apiVersion: v1
kind: Namespace
metadata: {name: shop, labels: {istio.io/dataplane-mode: ambient}}
---
apiVersion: v1
kind: Namespace
metadata: {name: default}
---
apiVersion: v1
kind: Service
metadata: {name: cart, namespace: shop}
spec: {ports: [{port: 80}]}
"#,
    );
    let dir = TempDir::new("verbs-cli");
    let kc = fake.kubeconfig(dir.path());
    let kc = kc.to_str().expect("utf-8 path");

    let o = run(&[
        "apply",
        "--kubeconfig",
        kc,
        "-n",
        "shop",
        "--enroll-namespace",
        "--for",
        "all",
    ])
    .await;
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        stdout(&o),
        "waypoint shop/waypoint applied (class waypoint)\n\
         namespace shop labelled istio.io/use-waypoint=waypoint\n"
    );
    let gw = fake
        .get(
            "gateway.networking.k8s.io/v1",
            "Gateway",
            "shop",
            "waypoint",
        )
        .expect("created");
    assert_eq!(gw["metadata"]["labels"]["istio.io/waypoint-for"], "all");

    let o = run(&["apply", "--kubeconfig", kc, "-n", "shop"]).await;
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o)
            .contains("Gateway shop/waypoint already exists (class waypoint); pass --overwrite"),
        "{}",
        stderr(&o)
    );

    let o = run(&["list", "--kubeconfig", kc, "-n", "shop"]).await;
    assert_eq!(
        stdout(&o),
        "NAME       CLASS      REVISION   TRAFFIC TYPE   PROGRAMMED\n\
         waypoint   waypoint   default    all            Unknown\n"
    );

    // `--wait` on a Gateway a controller has marked Programmed returns at once.
    fake.set_status(
        "gateway.networking.k8s.io/v1",
        "Gateway",
        "shop",
        "waypoint",
        json!({"conditions": [{"type": "Programmed", "status": "True", "reason": "Programmed",
            "message": "", "lastTransitionTime": "2026-01-01T00:00:00Z"}]}),
    );
    let o = run(&[
        "apply",
        "--kubeconfig",
        kc,
        "-n",
        "shop",
        "--overwrite",
        "--wait",
        "--timeout",
        "5s",
    ])
    .await;
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("waypoint shop/waypoint is ready (Programmed)\n"),
        "{}",
        stdout(&o)
    );

    let o = run(&["status", "--kubeconfig", kc, "-n", "shop"]).await;
    let text = stdout(&o);
    assert!(
        text.starts_with("waypoint shop/waypoint: ready\n"),
        "{text}"
    );
    assert!(
        text.contains("  services:    shop/cart (namespace label)\n"),
        "{text}"
    );
    let o = run(&["status", "--kubeconfig", kc, "-n", "shop", "-o", "json"]).await;
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(v[0]["namespaces"], json!(["shop"]));
    assert_eq!(v[0]["certificate"]["state"], "unknown");

    // Without -n: the kubeconfig context's namespace (`default`), where there is none.
    let o = run(&["list", "--kubeconfig", kc]).await;
    assert_eq!(stdout(&o), "No waypoints found.\n");

    let o = run(&[
        "delete",
        "--kubeconfig",
        kc,
        "-n",
        "shop",
        "waypoint",
        "other",
    ])
    .await;
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("waypoint shop/other not found"),
        "{}",
        stderr(&o)
    );
    let o = run(&["delete", "--kubeconfig", kc, "-n", "shop", "waypoint"]).await;
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        stdout(&o),
        "waypoint shop/waypoint deleted\nnamespace shop: istio.io/use-waypoint label removed\n"
    );
    let o = run(&["list", "--kubeconfig", kc, "-n", "shop"]).await;
    assert_eq!(stdout(&o), "No waypoints found.\n");
}

#[tokio::test]
async fn list_and_status_read_manifest_files_offline() {
    let o = run(&["list", "--config", "examples/bookinfo"]).await;
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("waypoint   istio-waypoint   default    service        Unknown\n"));
    let o = run(&[
        "status",
        "--config",
        "examples/bookinfo",
        "--name",
        "waypoint",
    ])
    .await;
    let text = stdout(&o);
    assert!(
        text.starts_with("waypoint default/waypoint: readiness unknown\n"),
        "{text}"
    );
    assert!(
        text.contains("AuthorizationPolicy default/deny-admin (targetRef Gateway waypoint)"),
        "{text}"
    );
    assert!(
        text.contains("certificate: unknown (offline: no waypoint to ask)"),
        "{text}"
    );
    let o = run(&["status", "--config", "examples/bookinfo", "--name", "nope"]).await;
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("waypoint nope not found in default"),
        "{}",
        stderr(&o)
    );
    let o = run(&["list", "--config", "examples/bookinfo", "-n", "elsewhere"]).await;
    assert_eq!(stdout(&o), "No waypoints found.\n");
}

#[tokio::test]
async fn bad_flags_are_refused_naming_them() {
    let o = run(&["apply", "--for", "everything"]).await;
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("--for") && stderr(&o).contains("service, workload, all or none"),
        "{}",
        stderr(&o)
    );
    let o = run(&["apply", "--timeout", "5 parsecs", "--wait"]).await;
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--timeout"), "{}", stderr(&o));
    let o = run(&["delete"]).await;
    assert_eq!(o.status.code(), Some(2));
    let o = run(&["delete", "--all", "wp"]).await;
    assert_eq!(o.status.code(), Some(2));
    let o = run(&["status", "--admin", "127.0.0.1:15000"]).await;
    assert_eq!(o.status.code(), Some(2), "--admin needs --name");
    let o = run(&[
        "list",
        "--config",
        "examples/bookinfo",
        "--kubeconfig",
        "/k",
    ])
    .await;
    assert_eq!(o.status.code(), Some(2));
    let o = run(&["apply", "--name", "Bad_Name"]).await;
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("--name") && stderr(&o).contains("DNS-1123"),
        "{}",
        stderr(&o)
    );
    let o = run(&["apply", "--kubeconfig", "/nonexistent/kubeconfig"]).await;
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("/nonexistent/kubeconfig"),
        "{}",
        stderr(&o)
    );
}

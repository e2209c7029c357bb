//! `waypoint explain` as users run it: the binary, the bookinfo example, JSON and text output,
//! exit codes on config errors.

use std::process::Command;

use serde_json::Value;

fn repo(path: &str) -> String {
    format!("{}/../../{path}", env!("CARGO_MANIFEST_DIR"))
}

fn explain(args: &[&str]) -> (i32, Value, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_waypoint"))
        .arg("explain")
        .args(args)
        .output()
        .expect("run waypoint");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    let json = serde_json::from_str(&stdout).unwrap_or(Value::Null);
    (
        out.status.code().unwrap_or(-1),
        json,
        format!("{stdout}{stderr}"),
    )
}

#[test]
fn jason_is_routed_to_reviews_v2() {
    let cfg = repo("examples/bookinfo");
    let (code, j, raw) = explain(&[
        "--config",
        &cfg,
        "--request",
        "GET http://reviews:9080/reviews/1",
        "-H",
        "end-user: jason",
        "--source-principal",
        "spiffe://cluster.local/ns/default/sa/bookinfo-productpage",
        "--output",
        "json",
    ]);
    assert_eq!(code, 0, "{raw}");
    assert_eq!(j["action"], "route", "{raw}");
    assert_eq!(j["backend"]["service"], "reviews");
    assert_eq!(j["backend"]["subset"], "v2");
    assert_eq!(j["backend"]["port"], 9080);
    assert_eq!(j["matched_route"], "VirtualService/default/reviews");
    assert_eq!(j["request_headers"]["end-user"], "jason");
    assert!(j["trace"].as_array().is_some_and(|t| !t.is_empty()));
    assert_eq!(j["errors"], serde_json::json!([]));
}

#[test]
fn different_seeds_pick_different_backends() {
    let cfg = repo("examples/bookinfo");
    let mut subsets = std::collections::BTreeSet::new();
    for seed in 0..60 {
        let seed = seed.to_string();
        let (code, j, raw) = explain(&[
            "--config",
            &cfg,
            "--request",
            "GET http://reviews:9080/",
            "--source-principal",
            "spiffe://cluster.local/ns/default/sa/bookinfo-productpage",
            "--seed",
            &seed,
            "--output",
            "json",
        ]);
        assert_eq!(code, 0, "{raw}");
        subsets.insert(j["backend"]["subset"].as_str().unwrap_or("").to_string());
        // Same seed, same answer.
        let (_, again, _) = explain(&[
            "--config",
            &cfg,
            "--request",
            "GET http://reviews:9080/",
            "--source-principal",
            "spiffe://cluster.local/ns/default/sa/bookinfo-productpage",
            "--seed",
            &seed,
            "--output",
            "json",
        ]);
        assert_eq!(again["backend"], j["backend"]);
    }
    assert_eq!(subsets.into_iter().collect::<Vec<_>>(), vec!["v1", "v3"]);
}

#[test]
fn text_output_is_aligned_and_readable() {
    let cfg = repo("examples/bookinfo");
    let (code, _, raw) = explain(&[
        "--config",
        &cfg,
        "--request",
        "POST http://productpage:9080/productpage",
        "--source-principal",
        "spiffe://cluster.local/ns/default/sa/curl",
    ]);
    assert_eq!(code, 0, "{raw}");
    assert!(
        raw.lines()
            .next()
            .is_some_and(|l| l.starts_with("action") && l.contains("deny (403)")),
        "{raw}"
    );
    assert!(raw.contains("productpage-viewer"), "{raw}");
}

#[test]
fn config_error_exits_non_zero_and_names_resource_and_field() {
    let dir = std::env::temp_dir().join(format!("wp-explain-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("mkdir");
    std::fs::write(
        dir.join("bad.yaml"),
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: broken, namespace: default}\n\
         spec:\n  hosts: [reviews]\n  http:\n  - route:\n    - destination: {host: reviews}\n      weight: lots\n",
    )
    .expect("write");
    let cfg = repo("examples/bookinfo");
    let bad = dir.display().to_string();
    let (code, j, raw) = explain(&[
        "--config",
        &cfg,
        "--config",
        &bad,
        "--request",
        "GET http://details:9080/",
        "--output",
        "json",
    ]);
    std::fs::remove_dir_all(&dir).ok();
    assert_ne!(code, 0, "{raw}");
    let errors = j["errors"].as_array().cloned().unwrap_or_default();
    assert!(
        errors.iter().any(|e| {
            let s = e.as_str().unwrap_or("");
            s.contains("VirtualService default/broken")
                && s.contains("spec.http[0].route[0].weight")
        }),
        "{raw}"
    );
    // The rest of the config still decides.
    assert!(j["action"].is_string(), "{raw}");
}

#[test]
fn bad_arguments_are_reported() {
    let cfg = repo("examples/bookinfo");
    let (code, _, raw) = explain(&["--config", &cfg, "--request", "GET reviews"]);
    assert_ne!(code, 0);
    assert!(raw.contains("--request"), "{raw}");
    let (code, _, raw) = explain(&[
        "--config",
        &cfg,
        "--request",
        "GET http://reviews/",
        "--waypoint",
        "nope",
    ]);
    assert_ne!(code, 0);
    assert!(raw.contains("NS/NAME"), "{raw}");
}

/// The JSON object has every documented field in every answer, `null` where it does not
/// apply: a route has `status`/`body` null, a denial has `backend` null.
#[test]
fn json_fields_are_always_present() {
    let cfg = repo("examples/bookinfo");
    let fields = [
        "waypoint",
        "action",
        "status",
        "body",
        "local_headers",
        "backend",
        "weights",
        "request_headers",
        "response_headers_add",
        "response_headers_remove",
        "path",
        "authority",
        "location",
        "timeout_ms",
        "retries",
        "fault_delay_ms",
        "mirrors",
        "passthrough",
        "matched_route",
        "matched_rule",
        "policies",
        "jwt",
        "trace",
        "seed",
        "errors",
        "warnings",
    ];
    let principal = "spiffe://cluster.local/ns/default/sa/bookinfo-productpage";
    for (request, action) in [
        ("GET http://reviews:9080/reviews/1", "route"),
        ("GET http://productpage:9080/admin", "deny"),
    ] {
        let (_, j, raw) = explain(&[
            "--config",
            &cfg,
            "--request",
            request,
            "--source-principal",
            principal,
            "--output",
            "json",
        ]);
        assert_eq!(j["action"], action, "{raw}");
        let o = j
            .as_object()
            .unwrap_or_else(|| panic!("not an object: {raw}"));
        for f in fields {
            assert!(o.contains_key(f), "{request}: no {f} in {raw}");
        }
        assert_eq!(
            o.len(),
            fields.len(),
            "{request}: undocumented fields in {raw}"
        );
    }
    let (_, j, _) = explain(&[
        "--config",
        &cfg,
        "--request",
        "GET http://reviews:9080/reviews/1",
        "--source-principal",
        principal,
        "--output",
        "json",
    ]);
    assert!(j["status"].is_null() && j["body"].is_null() && j["backend"].is_object());
}

/// A missing `--config` path is one clear error (no knock-on "no waypoint Gateway").
#[test]
fn missing_config_path_is_one_error() {
    let (code, _, raw) = explain(&[
        "--config",
        "/nonexistent/waypoint-config",
        "--request",
        "GET http://a/",
    ]);
    assert_eq!(code, 2, "{raw}");
    assert_eq!(
        raw.trim(),
        "error: --config /nonexistent/waypoint-config: no such file or directory"
    );
}

/// `explain … | head -1`: the reader leaves early; no panic, no error message.
#[test]
fn a_closed_pipe_is_not_a_panic() {
    use std::process::Stdio;
    let cfg = repo("examples/bookinfo");
    let mut child = Command::new(env!("CARGO_BIN_EXE_waypoint"))
        .args(["explain", "--config", &cfg])
        .args(["--request", "GET http://reviews:9080/reviews/1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    // Close our end of stdout before the child writes.
    drop(child.stdout.take());
    let out = child.wait_with_output().expect("wait");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(!stderr.contains("Broken pipe"), "{stderr}");
}

//! `waypoint analyze` as users run it: bookinfo is clean, a broken copy reports each mistake
//! (code, resource, exit code), thresholds and suppressions are istioctl's, `--kube` too.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use waypoint_tests::kube::FakeApiServer;
use waypoint_tests::pki::TempDir;

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(path)
}

/// (exit code, stdout, stderr).
fn analyze(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_waypoint"))
        .arg("analyze")
        .args(args)
        .output()
        .expect("run waypoint");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("read dir").flatten() {
        let p = e.path();
        let target = to.join(e.file_name());
        if p.is_dir() {
            copy_dir(&p, &target);
        } else {
            std::fs::copy(&p, &target).expect("copy");
        }
    }
}

/// `(code, origin)` of every message of a JSON output.
fn codes(json: &str) -> BTreeSet<(String, String)> {
    let v: Value = serde_json::from_str(json).unwrap_or_else(|e| panic!("{e}: {json}"));
    v.as_array()
        .expect("a JSON array")
        .iter()
        .map(|m| {
            (
                m["code"].as_str().unwrap_or_default().to_string(),
                m["origin"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

fn set(items: &[(&str, &str)]) -> BTreeSet<(String, String)> {
    items
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

/// Mistakes added to a copy of bookinfo, one per analyzer. `reviews-late` is younger than
/// bookinfo's `reviews` (read after it; in the fake API server, the same creation time and a
/// later name), so `reviews`' catch-all rule shadows it.
const BROKEN: &str = r#"
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: details}
spec:
  hosts: [details]
  http:
  - route: [{destination: {host: details2}}]
  - match: [{uri: {prefix: /x}}]
    route:
    - {destination: {host: details, subset: v9}, weight: 80}
    - {destination: {host: details, subset: v1}, weight: 30}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews-late}
spec:
  hosts: [reviews]
  http:
  - match: [{headers: {end-user: {exact: bob}}}]
    route: [{destination: {host: reviews, subset: v3}}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: gone}
spec: {host: gone}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-none}
spec:
  action: DENY
  targetRefs: [{kind: Service, group: "", name: nope}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: by-selector}
spec:
  selector: {matchLabels: {app: reviews}}
  rules: [{to: [{operation: {paths: [/admin]}}]}]
---
apiVersion: v1
kind: Namespace
metadata: {name: shop, labels: {istio.io/use-waypoint: missing}}
"#;

fn broken_expected() -> BTreeSet<(String, String)> {
    set(&[
        ("IST0101", "AuthorizationPolicy default/deny-none"),
        ("IST0133", "AuthorizationPolicy default/deny-none"),
        ("WPA0005", "AuthorizationPolicy default/by-selector"),
        ("IST0174", "DestinationRule default/gone"),
        ("IST0101", "Namespace shop"),
        ("IST0101", "VirtualService default/details"),
        ("IST0130", "VirtualService default/details"),
        ("WPA0004", "VirtualService default/details"),
        ("IST0130", "VirtualService default/reviews-late"),
    ])
}

#[test]
fn the_bookinfo_examples_are_clean() {
    for configs in [
        vec![repo("examples/bookinfo")],
        vec![
            repo("examples/bookinfo/base"),
            repo("examples/bookinfo-httproute"),
        ],
    ] {
        let mut args: Vec<String> = Vec::new();
        for c in &configs {
            args.push("--config".into());
            args.push(c.display().to_string());
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (code, out, err) = analyze(&args);
        assert_eq!((code, out.as_str()), (0, ""), "{err}");
        assert!(
            err.contains("\u{2714} No validation issues found when analyzing"),
            "{err}"
        );
        let (code, out, _) = analyze(&[&args[..], &["-o", "json"]].concat());
        assert_eq!((code, out.trim()), (0, "[]"));
    }
}

#[test]
fn a_broken_copy_reports_each_mistake_and_exits_79() {
    let dir = TempDir::new("analyze-broken");
    copy_dir(&repo("examples/bookinfo"), dir.path());
    // Read last (files are read in name order), so its VirtualService is the youngest.
    std::fs::write(dir.path().join("zz-broken.yaml"), BROKEN).expect("write");
    let path = dir.path().display().to_string();

    let (code, out, err) = analyze(&["--config", &path, "-o", "json"]);
    assert_eq!(code, 79, "{out}{err}");
    assert_eq!(codes(&out), broken_expected(), "{out}");
    assert!(err.contains("Analyzers found issues"), "{err}");

    // The log lines are istioctl's, one per message.
    let (code, out, _) = analyze(&["--config", &path]);
    assert_eq!(code, 79);
    let lines: Vec<&str> = out.lines().collect();
    // details has two IST0101 (a host and a subset): one line per message.
    assert_eq!(lines.len(), broken_expected().len() + 1, "{out}");
    assert!(
        lines.contains(
            &"Error [IST0101] (VirtualService default/details) Referenced host+subset in destinationrule not found: \"details+v9\""
        ),
        "{out}"
    );
    assert!(
        lines.contains(
            &"Warning [IST0130] (VirtualService default/reviews-late) VirtualService rule #0 not used (every match is taken first by rule \"canary\" of VirtualService default/reviews (before it for host reviews.default.svc.cluster.local): {any request})."
        ),
        "{out}"
    );

    // YAML holds the same messages; --output-threshold hides the lower levels.
    let (_, yaml, _) = analyze(&["--config", &path, "-o", "yaml"]);
    let as_json: Value = serde_yaml::from_str(&yaml).expect("yaml");
    assert_eq!(codes(&as_json.to_string()), broken_expected());
    let (code, out, _) = analyze(&[
        "--config",
        &path,
        "-o",
        "json",
        "--output-threshold",
        "Error",
    ]);
    assert_eq!(code, 79);
    let errors: BTreeSet<_> = broken_expected()
        .into_iter()
        .filter(|(c, _)| c == "IST0101")
        .collect();
    assert_eq!(codes(&out), errors);

    // --suppress (ours and istioctl's resource forms) and the annotation drop messages; the
    // exit code counts only what is left.
    let (code, out, err) = analyze(&[
        "--config",
        &path,
        "-o",
        "json",
        "--output-threshold",
        "Error",
        "-S",
        "IST0101=VirtualService default/det*",
        "--suppress",
        "IST0101=AuthorizationPolicy deny-none.default",
        "-S",
        "IST0101=Namespace shop",
        "-S",
        "IST9999=x",
    ]);
    assert_eq!((code, out.trim()), (0, "[]"), "{err}");
    assert!(
        err.contains("'IST9999' is an unknown message code"),
        "{err}"
    );
    let annotated = BROKEN.replace(
        "metadata: {name: gone}",
        "metadata: {name: gone, annotations: {galley.istio.io/analyze-suppress: IST0174}}",
    );
    std::fs::write(dir.path().join("zz-broken.yaml"), annotated).expect("write");
    let (_, out, _) = analyze(&["--config", &path, "-o", "json"]);
    let mut want = broken_expected();
    want.remove(&(
        "IST0174".to_string(),
        "DestinationRule default/gone".to_string(),
    ));
    assert_eq!(codes(&out), want);
}

#[test]
fn thresholds_and_parse_errors_set_istioctls_exit_codes() {
    let dir = TempDir::new("analyze-thresholds");
    copy_dir(&repo("examples/bookinfo"), dir.path());
    // Only an Info message: weights of 60 + 60.
    std::fs::write(
        dir.path().join("split.yaml"),
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: details}\n\
         spec:\n  hosts: [details]\n  http:\n  - route:\n    - {destination: {host: details, subset: v1}, weight: 60}\n    - {destination: {host: details}, weight: 60}\n",
    )
    .expect("write");
    let path = dir.path().display().to_string();
    let (code, out, _) = analyze(&["--config", &path]);
    assert_eq!(
        code, 0,
        "Info is below the default threshold (Error): {out}"
    );
    assert!(
        out.starts_with("Info [WPA0004] (VirtualService default/details)"),
        "{out}"
    );
    let (code, _, _) = analyze(&["--config", &path, "--failure-threshold", "Info"]);
    assert_eq!(code, 79);
    let (code, out, err) = analyze(&["--config", &path, "--output-threshold", "Warning"]);
    assert_eq!((code, out.as_str()), (0, ""));
    assert!(err.contains("No validation issues found"), "{err}");

    // A file that cannot be parsed: 65 when nothing reaches the threshold.
    std::fs::write(dir.path().join("bad.yaml"), "kind: [unclosed\n").expect("write");
    let (code, _, err) = analyze(&["--config", &path, "--output-threshold", "Warning"]);
    assert_eq!(code, 65, "{err}");
    assert!(err.contains("bad.yaml#0"), "{err}");
    assert!(err.contains("(but 1 file could not be parsed)"), "{err}");
    let (code, _, _) = analyze(&["--config", &path, "--failure-threshold", "Info"]);
    assert_eq!(code, 79, "issues win over parse errors");

    let (code, _, err) = analyze(&["--config", &path, "-o", "xml"]);
    assert_eq!(code, 2, "clap usage error: {err}");
    let (code, _, err) = analyze(&["--config", "/nonexistent/waypoint-analyze"]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("--config /nonexistent/waypoint-analyze: no such file or directory"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kube_analyzes_what_the_api_server_holds() {
    let fake = FakeApiServer::start().await;
    let dir = TempDir::new("analyze-kube");
    let kubeconfig = fake.kubeconfig(dir.path());
    let apply = |text: &str| {
        use serde::Deserialize;
        for doc in serde_yaml::Deserializer::from_str(text) {
            let mut v = Value::deserialize(doc).expect("test YAML");
            if v.is_null() {
                continue;
            }
            let namespaced = v["kind"] != "Namespace";
            if namespaced && v["metadata"].get("namespace").is_none() {
                v["metadata"]["namespace"] = "default".into();
            }
            fake.apply(v);
        }
    };
    for f in [
        "examples/bookinfo/base/namespace.yaml",
        "examples/bookinfo/base/services.yaml",
        "examples/bookinfo/base/waypoint.yaml",
        "examples/bookinfo/istio/destination-rules.yaml",
        "examples/bookinfo/istio/virtual-services.yaml",
        "examples/bookinfo/policies/authorization.yaml",
    ] {
        apply(&std::fs::read_to_string(repo(f)).expect("read example"));
    }
    let run = |extra: &'static [&'static str]| {
        let kc = kubeconfig.display().to_string();
        tokio::task::spawn_blocking(move || {
            let mut args = vec!["--kube", "--kubeconfig", kc.as_str(), "--timeout", "20s"];
            args.extend_from_slice(extra);
            analyze(&args)
        })
    };
    let (code, out, err) = run(&["-o", "json"]).await.expect("join");
    assert_eq!((code, out.trim()), (0, "[]"), "{err}");
    assert!(
        err.contains("No validation issues found when analyzing the Kubernetes API server"),
        "{err}"
    );

    apply(BROKEN);
    let (code, out, err) = run(&["-o", "json"]).await.expect("join");
    assert_eq!(code, 79, "{out}{err}");
    assert_eq!(codes(&out), broken_expected(), "{out}");
    let v: Value = serde_json::from_str(&out).expect("json");
    assert!(
        v.as_array()
            .expect("array")
            .iter()
            .any(|m| m["reference"] == "kube:VirtualService/default/details#0"),
        "{out}"
    );
}

#[test]
fn kube_without_an_api_server_fails_with_exit_1() {
    let dir = TempDir::new("analyze-nokube");
    let kc = dir.path().join("kubeconfig");
    std::fs::write(
        &kc,
        "apiVersion: v1\nkind: Config\nclusters:\n- name: x\n  cluster: {server: \"http://127.0.0.1:9\"}\nusers:\n- name: x\n  user: {}\ncontexts:\n- name: x\n  context: {cluster: x, user: x}\ncurrent-context: x\n",
    )
    .expect("write");
    let (code, out, err) = analyze(&[
        "--kube",
        "--kubeconfig",
        &kc.display().to_string(),
        "--timeout",
        "2s",
    ]);
    assert_eq!((code, out.as_str()), (1, ""), "{err}");
    assert!(
        err.contains("no full list from the Kubernetes API server"),
        "{err}"
    );
}

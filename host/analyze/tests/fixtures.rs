//! The analyzers over real Istio samples and Gateway API conformance manifests from
//! `../shared/fixtures` (or `$WAYPOINT_SHARED_FIXTURES`): never a panic, only true findings.

use std::io::Write;
use std::path::{Path, PathBuf};

use waypoint_analyze::{analyze, Input};

fn root() -> Option<PathBuf> {
    let p = std::env::var_os("WAYPOINT_SHARED_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures"));
    if p.exists() {
        Some(p)
    } else {
        let _ = writeln!(
            std::io::stderr().lock(),
            "SKIP: ../shared/fixtures not present ({})",
            p.display()
        );
        None
    }
}

/// A waypoint `waypoint` in `ns` and the namespace bound to it.
fn waypoint(ns: &str) -> String {
    format!(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {{name: waypoint, namespace: {ns}}}\n\
         spec: {{gatewayClassName: istio-waypoint, listeners: [{{name: mesh, port: 15008, protocol: HBONE}}]}}\n---\n\
         apiVersion: v1\nkind: Namespace\nmetadata: {{name: {ns}, labels: {{istio.io/use-waypoint: waypoint}}}}\n"
    )
}

/// The log lines for `files` plus `extra` text, without the "kind not used" notes
/// (Deployments, ServiceAccounts of the samples).
fn lines(files: &[PathBuf], extra: &str) -> Vec<String> {
    let mut loaded = waypoint_loader::load_paths(files, "default");
    assert!(loaded.errors.is_empty(), "{files:?}: {:?}", loaded.errors);
    let more = waypoint_loader::load_text(extra, "extra", "default");
    loaded.resources.extend(more.resources);
    analyze(&Input {
        resources: &loaded.resources,
        load_errors: &loaded.errors,
        root_namespace: "istio-system",
    })
    .iter()
    .filter(|m| m.code() != "WPA0002")
    .map(ToString::to_string)
    .collect()
}

fn yaml_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    let mut paths: Vec<PathBuf> = rd.flatten().map(|e| e.path()).collect();
    paths.sort();
    for p in paths {
        if p.is_dir() {
            yaml_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            out.push(p);
        }
    }
}

#[test]
fn bookinfo_samples_report_only_what_is_true() {
    let Some(root) = root() else { return };
    let s = root.join("istio-samples/samples");
    let base = [
        s.join("bookinfo/platform/kube/bookinfo.yaml"),
        s.join("bookinfo/platform/kube/bookinfo-versions.yaml"),
        s.join("bookinfo/networking/destination-rule-all.yaml"),
    ];
    let gateway_only = |vs: &str| {
        format!("Warning [WPA0001] (VirtualService {vs}) spec.gateways: bound only to gateways (no \"mesh\"); not used by the waypoint")
    };
    // Every networking and gateway-api sample on top of bookinfo: what each one gets.
    let expected: &[(&str, Vec<String>)] = &[
        ("networking/bookinfo-gateway.yaml", vec![gateway_only("default/bookinfo")]),
        (
            "networking/certmanager-gateway.yaml",
            vec![
                // The sample routes to cert-manager's solver Service, not part of bookinfo.
                r#"Error [IST0101] (VirtualService istio-system/cert-manager) Referenced host not found: "cert-manager-resolver" (spec.http[0].route[0].destination.host)"#.to_string(),
                gateway_only("istio-system/cert-manager"),
            ],
        ),
        // `tls: ISTIO_MUTUAL` is what HBONE gives the waypoint's upstreams: nothing to report.
        ("networking/destination-rule-all-mtls.yaml", vec![]),
        (
            "networking/egress-rule-google-apis.yaml",
            vec!["Warning [WPA0001] (DestinationRule default/originate-tls-for-googleapis) spec.trafficPolicy.portLevelSettings[0].tls.mode: tls mode SIMPLE is not supported by the waypoint (only ISTIO_MUTUAL, which HBONE provides); not applied".to_string()],
        ),
        (
            // Two rules without `match`: Istio's validation says the same of rule #1.
            "networking/fault-injection-details-v1.yaml",
            vec!["Warning [IST0130] (VirtualService default/details) VirtualService rule #1 not used (only the last rule can have no matches: rule #0).".to_string()],
        ),
    ];
    let mut files = Vec::new();
    yaml_files(&s.join("bookinfo/networking"), &mut files);
    yaml_files(&s.join("bookinfo/gateway-api"), &mut files);
    assert!(files.len() > 20, "{files:?}");
    for f in files {
        let rel = f
            .strip_prefix(s.join("bookinfo"))
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        let mut all = base.to_vec();
        all.push(f.clone());
        let got = lines(&all, &waypoint("default"));
        let want = expected
            .iter()
            .find(|(name, _)| *name == rel)
            .map(|(_, w)| w.clone())
            .unwrap_or_default();
        assert_eq!(got, want, "{rel}");
    }
}

#[test]
fn istio_io_tasks_in_page_order_are_clean() {
    let Some(root) = root() else { return };
    let s = root.join("istio-samples");
    let docs = s.join("istio.io/content/en/docs");
    let base = vec![
        s.join("samples/bookinfo/platform/kube/bookinfo.yaml"),
        s.join("samples/bookinfo/platform/kube/bookinfo-versions.yaml"),
        s.join("samples/bookinfo/networking/destination-rule-all.yaml"),
        s.join("samples/httpbin/httpbin.yaml"),
        s.join("samples/curl/curl.yaml"),
    ];
    let m = docs.join("tasks/traffic-management/mirroring");
    let t = docs.join("tasks/traffic-management/request-timeouts");
    let a = docs.join("ambient");
    let steps: Vec<Vec<PathBuf>> = vec![
        vec![
            m.join("0-httpbin-service.yaml"),
            m.join("1-istio-httpbin-v1.yaml"),
            m.join("2-istio-httpbin-mirror-v2.yaml"),
        ],
        vec![
            m.join("0-httpbin-service.yaml"),
            m.join("1-gateway-api-httpbin-v1.yaml"),
            m.join("2-gateway-api-httpbin-mirror-v2.yaml"),
        ],
        vec![
            t.join("1-reviews-v2.yaml"),
            t.join("2-ratings-delay-2s.yaml"),
        ],
        vec![t.join("3-reviews-v2-timeout-0.5s.yaml")],
        vec![a.join("usage/l7-features/viewer-waypoint-authz.yaml")],
        vec![a.join("getting-started/manage-traffic/reviews-httproute-90-10.yaml")],
        vec![a.join("getting-started/enforce-auth-policies/productpage-viewer-l4.yaml")],
        vec![a.join("getting-started/enforce-auth-policies/productpage-viewer-l7.yaml")],
    ];
    for step in steps {
        let mut all = base.clone();
        all.extend(step.iter().cloned());
        assert_eq!(
            lines(&all, &waypoint("default")),
            Vec::<String>::new(),
            "{step:?}"
        );
    }
}

#[test]
fn gateway_api_mesh_conformance_is_clean() {
    let Some(root) = root() else { return };
    let c = root.join("gateway-api-conformance/conformance");
    let base = vec![c.join("mesh/manifests.yaml")];
    let mut files = Vec::new();
    yaml_files(&c.join("tests/mesh"), &mut files);
    assert!(files.len() > 10, "{files:?}");
    for f in files {
        let mut all = base.clone();
        all.push(f.clone());
        // The consumer route (mesh-consumer-route.yaml) included: the waypoint applies it to
        // its namespace's clients (GAMMA), where Istio's waypoints drop it.
        let got = lines(&all, &waypoint("gateway-conformance-mesh"));
        assert_eq!(got, Vec::<String>::new(), "{}", f.display());
    }
}

#[test]
fn every_fixture_file_alone_never_panics() {
    let Some(root) = root() else { return };
    let mut files = Vec::new();
    yaml_files(&root, &mut files);
    assert!(files.len() > 100, "{}", files.len());
    for f in files {
        let loaded = waypoint_loader::load_paths(&[&f], "default");
        let messages = analyze(&Input {
            resources: &loaded.resources,
            load_errors: &loaded.errors,
            root_namespace: "istio-system",
        });
        for m in &messages {
            assert!(
                waypoint_analyze::catalogue::ALL.contains(&m.kind),
                "{}: {m}",
                f.display()
            );
        }
    }
}

//! Compiles the Gateway API conformance manifests and checks decisions from the Go tests.
//! Skips when ../shared/fixtures is absent.

use std::path::{Path, PathBuf};

use super::tests::{compile_all, first_match, request, TestServices};
use super::*;
use crate::resource::parse_manifests;
use crate::route::{RouteEntry, RuleAction};
use crate::snapshot::rewrite_path;

const FIXTURES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/fixtures/gateway-api-conformance"
);

fn root() -> Option<PathBuf> {
    let p = PathBuf::from(FIXTURES);
    if p.join("conformance").is_dir() {
        Some(p)
    } else {
        crate::test_skip::skip(&format!("../shared/fixtures not present ({FIXTURES})"));
        None
    }
}

/// Services of the base (gateway) and mesh manifests, with their `spec.ports[].port`.
fn services(root: &Path) -> TestServices {
    let mut s = TestServices::default();
    for f in [
        "conformance/base/manifests.yaml",
        "conformance/mesh/manifests.yaml",
    ] {
        let text = std::fs::read_to_string(root.join(f)).expect("read manifests");
        let (raws, _) = parse_manifests(&text, f, "default", 0);
        for r in raws.iter().filter(|r| r.kind == "Service") {
            let ports: Vec<u16> = r.value["spec"]["ports"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|p| p["port"].as_u64())
                .filter_map(|p| u16::try_from(p).ok())
                .collect();
            s.service(&r.namespace, &r.name, &ports);
        }
    }
    s
}

fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("read dir")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    v.sort();
    v
}

/// Compile the routes of one test manifest (with its ReferenceGrants).
fn compile_file(root: &Path, svcs: &TestServices, rel: &str) -> (Vec<CompiledRoute>, Diagnostics) {
    let text = std::fs::read_to_string(root.join("conformance/tests").join(rel)).expect("read");
    let (raws, _) = parse_manifests(&text, rel, "default", 0);
    let (grants, _) = ReferenceGrants::from_resources(&raws);
    compile_all(&text, svcs, &grants)
}

#[test]
fn every_conformance_route_compiles() {
    let Some(root) = root() else { return };
    let svcs = services(&root);
    let mut routes = 0;
    let dirs = [
        root.join("conformance/tests/mesh"),
        root.join("conformance/tests"),
    ];
    for f in dirs.iter().flat_map(|d| yaml_files(d)) {
        let text = std::fs::read_to_string(&f).expect("read");
        let (raws, errs) = parse_manifests(&text, &f.display().to_string(), "default", 0);
        assert!(errs.is_empty(), "{}: {errs:?}", f.display());
        for r in &raws {
            let (c, d) = match r.kind.as_str() {
                "HTTPRoute" => compile_http_route(r, &svcs),
                "GRPCRoute" => compile_grpc_route(r, &svcs),
                _ => continue,
            };
            let c = c.unwrap_or_else(|| panic!("{} {}: {d:?}", f.display(), r.name));
            assert!(!c.parents.is_empty(), "{}", r.name);
            routes += 1;
        }
    }
    println!("compiled {routes} conformance routes");
    assert!(routes > 80, "{routes}");
}

/// What a request gets, in a short comparable form.
fn outcome(entry: Option<&RouteEntry>, path: &str) -> String {
    let Some(e) = entry else {
        return "404".into();
    };
    match &e.rule.action {
        RuleAction::Forward(f) => {
            let mut s = f
                .backends
                .iter()
                .map(|b| {
                    let bad = if b.invalid.is_some() { "!" } else { "" };
                    if f.backends.len() == 1 {
                        format!("{bad}{}", b.backend.name)
                    } else {
                        format!("{bad}{}={}", b.backend.name, b.weight)
                    }
                })
                .collect::<Vec<_>>()
                .join(",");
            if let Some(p) = f.rewrite.as_ref().and_then(|r| r.path.as_ref()) {
                s += &format!(" path={}", rewrite_path(path, p, e.matcher.path.as_ref()));
            }
            s
        }
        RuleAction::Redirect(r) => {
            let mut s = format!("redirect {}", r.status);
            if let Some(h) = &r.host {
                s += &format!(" host={h}");
            }
            if let Some(sc) = &r.scheme {
                s += &format!(" scheme={sc}");
            }
            match &r.port {
                crate::route::RedirectPort::Keep => {}
                crate::route::RedirectPort::Set(p) => s += &format!(" port={p}"),
                crate::route::RedirectPort::ProtocolDefault => s += " port=default",
            }
            if let Some(p) = &r.path {
                s += &format!(" path={}", rewrite_path(path, p, e.matcher.path.as_ref()));
            }
            s
        }
        RuleAction::DirectResponse(d) => format!("status {}", d.status),
    }
}

struct Case {
    file: &'static str,
    /// Request host (Gateway parents filter routes by `hostnames`).
    host: &'static str,
    method: &'static str,
    path: &'static str,
    headers: &'static [(&'static str, &'static str)],
    /// Service port the request arrived on.
    port: u16,
    want: &'static str,
}

const fn gw(file: &'static str, path: &'static str, want: &'static str) -> Case {
    Case {
        file,
        host: "gw",
        method: "GET",
        path,
        headers: &[],
        port: 80,
        want,
    }
}

fn run(cases: &[Case], parent_for: impl Fn(&Case) -> ParentKey) {
    let Some(root) = root() else { return };
    let svcs = services(&root);
    for c in cases {
        let (routes, _) = compile_file(&root, &svcs, c.file);
        let parent = parent_for(c);
        // Mesh parents ignore hostnames (Istio); Gateway parents use the routes with the
        // most specific hostname matching the request host.
        let attached: Vec<&CompiledRoute> = routes
            .iter()
            .filter(|r| r.parents.iter().any(|p| p.key() == parent))
            .collect();
        let refs = if parent.kind == "Gateway" {
            routes_for_host(&attached, c.host)
        } else {
            attached
        };
        let entries = ordered_entries_for_parent(&parent, &refs);
        let req = request(c.method, c.path, c.headers);
        let got = if routes_apply_to_port(&entries, Some(c.port)) {
            outcome(first_match(&entries, &req, Some(c.port)), c.path)
        } else {
            "default".to_string()
        };
        assert_eq!(
            got, c.want,
            "{}: {} {} host={} port={} {:?}",
            c.file, c.method, c.path, c.host, c.port, c.headers
        );
    }
}

// The mesh conformance cases for HTTPRoute run as shared scenarios through the core, the
// host and Envoy: tests/scenarios/conformance-mesh-*.yaml.

#[test]
fn mesh_grpc_weight() {
    let Some(root) = root() else { return };
    let svcs = services(&root);
    // grpcroute-weight: weight 0 backend (a service that does not exist) is dropped.
    let (routes, d) = compile_file(&root, &svcs, "mesh/grpcroute-weight.yaml");
    assert!(d.errors.is_empty(), "{d:?}");
    let refs: Vec<&CompiledRoute> = routes.iter().collect();
    let entries = ordered_entries_for_parent(
        &ParentKey::service("gateway-conformance-mesh", "echo"),
        &refs,
    );
    let req = request("POST", "/grpc.Svc/Method", &[]);
    assert_eq!(
        outcome(first_match(&entries, &req, Some(7070)), req.path),
        "echo-v1=70,echo-v2=30"
    );
    // Port 80 is not covered by the route (parentRef port 7070): default routing.
    assert!(!routes_apply_to_port(&entries, Some(80)));
}

#[test]
fn gateway_profile_decisions() {
    let po = "httproute-path-match-order.yaml";
    let q = "httproute-query-param-matching.yaml";
    let h = "httproute-header-matching.yaml";
    let me = "httproute-method-matching.yaml";
    let x = "httproute-matching-across-routes.yaml";
    let v1 = "infra-backend-v1";
    let v2 = "infra-backend-v2";
    let v3 = "infra-backend-v3";
    let cases = [
        // httproute-path-match-order.go
        gw(po, "/match/exact/one", v3),
        gw(po, "/match/exact", v2),
        gw(po, "/match", v1),
        gw(po, "/match/prefix/one/any", v2),
        gw(po, "/match/prefix/any", v1),
        gw(po, "/match/any", v3),
        // httproute-query-param-matching.go
        gw(q, "/?animal=whale", v1),
        gw(q, "/?animal=dolphin", v2),
        gw(q, "/?animal=dolphin&color=blue", v3),
        gw(q, "/?ANIMAL=Whale", v3),
        gw(q, "/?animal=whale&otherparam=irrelevant", v1),
        gw(q, "/?animal=dolphin&color=yellow", v2),
        gw(q, "/?color=blue", "404"),
        gw(q, "/?animal=whaledolphin", "404"),
        gw(q, "/path1?animal=whale", v1),
        Case {
            headers: &[("version", "one")],
            ..gw(q, "/?animal=whale", v2)
        },
        Case {
            headers: &[("version", "two")],
            ..gw(q, "/path2?animal=whale", v3)
        },
        gw(q, "/path3?animal=shark", v1),
        Case {
            headers: &[("version", "three")],
            ..gw(q, "/path4?animal=kraken", v1)
        },
        gw(q, "/?animal=shark", "404"),
        gw(q, "/path4?animal=kraken", "404"),
        gw(q, "/path5?animal=hydra", v1),
        Case {
            headers: &[("version", "four")],
            ..gw(q, "/?animal=hydra", v3)
        },
        // httproute-header-matching.go
        Case {
            headers: &[("Version", "one")],
            ..gw(h, "/", v1)
        },
        Case {
            headers: &[("Version", "two")],
            ..gw(h, "/", v2)
        },
        Case {
            headers: &[("Version", "two"), ("Color", "orange")],
            ..gw(h, "/", v1)
        },
        Case {
            headers: &[("Version", "two"), ("Color", "blue")],
            ..gw(h, "/", v2)
        },
        Case {
            headers: &[("Color", "orange")],
            ..gw(h, "/", "404")
        },
        Case {
            headers: &[("Color", "green")],
            ..gw(h, "/", v1)
        },
        Case {
            headers: &[("Color", "yellow")],
            ..gw(h, "/", v2)
        },
        // httproute-method-matching.go
        Case {
            method: "POST",
            ..gw(me, "/", v1)
        },
        gw(me, "/", v2),
        Case {
            method: "HEAD",
            ..gw(me, "/", "404")
        },
        gw(me, "/path1", v1),
        Case {
            method: "PUT",
            headers: &[("version", "one")],
            ..gw(me, "/", v2)
        },
        Case {
            method: "POST",
            headers: &[("version", "two")],
            ..gw(me, "/path2", v3)
        },
        Case {
            method: "PATCH",
            ..gw(me, "/path3", v1)
        },
        Case {
            method: "DELETE",
            headers: &[("version", "three")],
            ..gw(me, "/path4", v1)
        },
        Case {
            method: "PUT",
            ..gw(me, "/", "404")
        },
        Case {
            method: "DELETE",
            ..gw(me, "/path4", "404")
        },
        Case {
            method: "PATCH",
            ..gw(me, "/path5", v1)
        },
        Case {
            method: "PATCH",
            headers: &[("version", "four")],
            ..gw(me, "/", v2)
        },
        // httproute-matching-across-routes.go (hostnames)
        Case {
            host: "example.com",
            ..gw(x, "/", v1)
        },
        Case {
            host: "example.net",
            ..gw(x, "/example", v1)
        },
        Case {
            host: "example.com",
            ..gw(x, "/v2", v2)
        },
        Case {
            host: "example.net",
            ..gw(x, "/v2", v1)
        },
        Case {
            host: "example.com",
            headers: &[("Version", "two")],
            ..gw(x, "/", v2)
        },
        // invalid backends answer 500 when picked; omitted backendRefs answer 500.
        gw(
            "httproute-invalid-backendref-unknown-kind.yaml",
            "/",
            "!infra-backend-v1",
        ),
        gw(
            "httproute-invalid-nonexistent-backendref.yaml",
            "/",
            "!nonexistent",
        ),
        gw(
            "httproute-invalid-cross-namespace-backend-ref.yaml",
            "/",
            "!web-backend",
        ),
        gw("httproute-reference-grant.yaml", "/", "web-backend"),
        gw(
            "httproute-omitted-backendrefs.yaml",
            "/omitted-no-forward",
            "status 500",
        ),
        gw(
            "httproute-omitted-backendrefs.yaml",
            "/empty-no-forward",
            "status 500",
        ),
        gw("httproute-omitted-backendrefs.yaml", "/other", v1),
        // httproute-rewrite-path.go / redirect-port-and-scheme.go
        gw(
            "httproute-rewrite-path.yaml",
            "/prefix/one/two",
            "infra-backend-v1 path=/one/two",
        ),
        gw(
            "httproute-rewrite-path.yaml",
            "/strip-prefix/three",
            "infra-backend-v1 path=/three",
        ),
        gw(
            "httproute-redirect-port-and-scheme.yaml",
            "/scheme-nil-and-port-nil",
            "redirect 302 host=example.org",
        ),
        gw(
            "httproute-redirect-port-and-scheme.yaml",
            "/scheme-nil-and-port-80",
            "redirect 302 host=example.org port=80",
        ),
        // httproute-weight.go
        gw(
            "httproute-weight.yaml",
            "/",
            "infra-backend-v1=70,infra-backend-v2=30",
        ),
    ];
    run(&cases, |_| {
        ParentKey::gateway("gateway-conformance-infra", "same-namespace")
    });
}

#[test]
fn grpc_gateway_decisions() {
    let e = "grpcroute-exact-method-matching.yaml";
    let h = "grpcroute-header-matching.yaml";
    let svc = "/gateway_api_conformance.echo_basic.grpcecho.GrpcEcho";
    let paths = [
        format!("{svc}/Echo"),
        format!("{svc}/EchoTwo"),
        format!("{svc}/EchoThree"),
    ];
    let Some(root) = root() else { return };
    let svcs = services(&root);
    let parent = ParentKey::gateway("gateway-conformance-infra", "same-namespace");
    let (routes, d) = compile_file(&root, &svcs, e);
    assert!(d.errors.is_empty(), "{d:?}");
    let refs: Vec<&CompiledRoute> = routes.iter().collect();
    let entries = ordered_entries_for_parent(&parent, &refs);
    for (path, want) in paths
        .iter()
        .zip(["grpc-infra-backend-v1", "grpc-infra-backend-v2", "404"])
    {
        let req = request("POST", path, &[]);
        assert_eq!(
            outcome(first_match(&entries, &req, Some(80)), path),
            want,
            "{path}"
        );
    }
    let (routes, _) = compile_file(&root, &svcs, h);
    let refs: Vec<&CompiledRoute> = routes.iter().collect();
    let entries = ordered_entries_for_parent(&parent, &refs);
    let v1 = "grpc-infra-backend-v1";
    let v2 = "grpc-infra-backend-v2";
    let cases: &[(&[(&str, &str)], &str)] = &[
        (&[("Version", "one")], v1),
        (&[("Version", "two")], v2),
        (&[("Version", "two"), ("Color", "orange")], v1),
        (&[("Version", "two"), ("Color", "blue")], v2),
        (&[("Color", "orange")], "404"),
        (&[("Some-Other-Header", "one")], "404"),
        (&[("Color", "blue")], v1),
        (&[("Color", "green")], v1),
        (&[("Color", "red")], v2),
        (&[("Color", "yellow")], v2),
        (&[("Color", "purple")], "404"),
    ];
    for (headers, want) in cases {
        let req = request("POST", &paths[0], headers);
        assert_eq!(
            outcome(first_match(&entries, &req, Some(80)), req.path),
            *want,
            "{headers:?}"
        );
    }
}

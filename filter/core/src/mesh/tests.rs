//! Tests of the mesh ConfigMap parser: Istio's shapes and defaults, and errors that name the
//! ConfigMap and the field.

use std::time::Duration;

use super::*;
use crate::resource::parse_manifests;

fn configmap(mesh: &str) -> String {
    let indented: String = mesh.lines().map(|l| format!("    {l}\n")).collect();
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: istio\n  namespace: istio-system\ndata:\n  mesh: |-\n{indented}"
    )
}

fn parse(mesh: &str) -> (MeshConfig, Diagnostics) {
    let (rs, errs) = parse_manifests(&configmap(mesh), "t.yaml", "default", 0);
    assert!(errs.is_empty(), "{errs:?}");
    let mut d = Diagnostics::default();
    let m = mesh_from_resources(&rs, "istio-system", &mut d);
    (m, d)
}

const FULL_HTTP: &str = r#"accessLogFile: /dev/stdout
defaultConfig:
  holdApplicationUntilProxyStarts: true
extensionProviders:
- name: "sample-ext-authz-http"
  envoyExtAuthzHttp:
    service: "foo/ext-authz.foo.svc.cluster.local"
    port: "8000"
    timeout: 0.5s
    pathPrefix: /check
    failOpen: true
    statusOnError: "503"
    includeRequestHeadersInCheck: ["x-ext-authz", "x-b3-*", "*-trace"]
    includeAdditionalHeadersInCheck:
      X-Added: "yes"
    headersToUpstreamOnAllow: ["x-ext-authz-check-result"]
    headersToDownstreamOnDeny: ["x-ext-authz-check-result", "content-type"]
    headersToDownstreamOnAllow: ["x-allowed"]
- name: otel
  opentelemetry:
    service: otel.istio-system.svc.cluster.local
    port: 4317
"#;

#[test]
fn full_http_provider() {
    let (m, d) = parse(FULL_HTTP);
    assert!(d.errors.is_empty(), "{:?}", d.errors);
    assert_eq!(m.other_providers, vec!["otel"]);
    assert_eq!(m.ext_authz.len(), 1);
    let p = m
        .ext_authz_provider("sample-ext-authz-http")
        .expect("provider");
    assert_eq!(p.service_namespace.as_deref(), Some("foo"));
    assert_eq!(p.service_host, "ext-authz.foo.svc.cluster.local");
    assert_eq!(p.port, 8000);
    assert_eq!(p.timeout, Duration::from_millis(500));
    assert!(p.fail_open);
    assert_eq!(p.status_on_error, 503);
    let h = p.http().expect("http");
    assert_eq!(h.path_prefix, "/check");
    assert_eq!(
        h.include_request_headers,
        vec![
            HeaderPattern::Exact("x-ext-authz".into()),
            HeaderPattern::Prefix("x-b3-".into()),
            HeaderPattern::Suffix("-trace".into()),
        ]
    );
    assert_eq!(h.additional_headers, vec![("x-added".into(), "yes".into())]);
    assert_eq!(h.headers_to_downstream_on_deny.len(), 2);
    assert_eq!(
        h.headers_to_downstream_on_allow,
        vec![HeaderPattern::Exact("x-allowed".into())]
    );
}

#[test]
fn grpc_defaults() {
    let (m, d) = parse(
        "extensionProviders:\n- name: g\n  envoyExtAuthzGrpc:\n    service: ext-authz.foo.svc.cluster.local\n    port: 9000\n",
    );
    assert!(d.errors.is_empty(), "{:?}", d.errors);
    let p = m.ext_authz_provider("g").expect("provider");
    assert!(p.is_grpc());
    assert_eq!(p.service_namespace, None);
    assert_eq!(p.timeout, DEFAULT_EXT_AUTHZ_TIMEOUT);
    assert_eq!(p.status_on_error, 403);
    assert!(!p.fail_open);
}

#[test]
fn http_defaults() {
    let (m, d) = parse(
        "extensionProviders:\n- name: h\n  envoyExtAuthzHttp:\n    service: a.b.svc.cluster.local\n    port: 80\n",
    );
    assert!(d.errors.is_empty(), "{:?}", d.errors);
    let p = m.ext_authz_provider("h").expect("provider");
    let h = p.http().expect("http");
    assert_eq!(h.path_prefix, "");
    assert!(h.include_request_headers.is_empty());
    assert!(h.headers_to_upstream_on_allow.is_empty());
    assert_eq!(p.timeout, Duration::from_secs(600));
}

#[test]
fn errors_name_the_field() {
    let base = "extensionProviders:\n- name: p\n  envoyExtAuthzHttp:\n    service: a.b.svc.cluster.local\n";
    let cases: &[(&str, &str, &str)] = &[
        (
            "    port: 0\n",
            "data.mesh.extensionProviders[0].envoyExtAuthzHttp.port",
            "range",
        ),
        (
            "",
            "data.mesh.extensionProviders[0].envoyExtAuthzHttp.port",
            "range",
        ),
        (
            "    port: 70000\n",
            "data.mesh.extensionProviders[0].envoyExtAuthzHttp.port",
            "70000",
        ),
        (
            "    port: abc\n",
            "data.mesh.extensionProviders[0].envoyExtAuthzHttp.port",
            "number",
        ),
        (
            "    port: 80\n    timeout: 5x\n",
            "data.mesh.extensionProviders[0].envoyExtAuthzHttp.timeout",
            "duration",
        ),
        (
            "    port: 80\n    pathPrefix: check\n",
            "data.mesh.extensionProviders[0].envoyExtAuthzHttp.pathPrefix",
            "begin with",
        ),
        (
            "    port: 80\n    statusOnError: \"42\"\n",
            "data.mesh.extensionProviders[0].envoyExtAuthzHttp.statusOnError",
            "42",
        ),
        (
            "    port: 80\n    failOpn: true\n",
            "data.mesh.extensionProviders[0].envoyExtAuthzHttp",
            "failOpn",
        ),
        (
            "    port: 80\n    includeRequestBodyInCheck:\n      maxRequestBytes: 10\n",
            "data.mesh.extensionProviders[0].envoyExtAuthzHttp.includeRequestBodyInCheck",
            "not supported",
        ),
        (
            "    port: 80\n  envoyExtAuthzGrpc:\n    service: x\n    port: 1\n",
            "data.mesh.extensionProviders[0]",
            "exactly one",
        ),
    ];
    for (extra, field, msg) in cases {
        let (m, d) = parse(&format!("{base}{extra}"));
        assert!(m.ext_authz.is_empty(), "{extra}: provider kept");
        assert_eq!(d.errors.len(), 1, "{extra}: {:?}", d.errors);
        let e = &d.errors[0];
        assert_eq!(
            (e.kind.as_str(), e.namespace.as_str(), e.name.as_str()),
            ("ConfigMap", "istio-system", "istio")
        );
        assert!(
            e.field.starts_with(field),
            "{extra}: field {} not {field}",
            e.field
        );
        assert!(
            e.message.contains(msg),
            "{extra}: message {:?} lacks {msg:?}",
            e.message
        );
    }
}

#[test]
fn names_must_be_unique_and_set() {
    let (m, d) = parse(
        "extensionProviders:\n- name: p\n  envoyExtAuthzGrpc: {service: a, port: 1}\n- name: p\n  envoyExtAuthzGrpc: {service: b, port: 1}\n- envoyExtAuthzGrpc: {service: c, port: 1}\n",
    );
    assert_eq!(m.ext_authz.len(), 1);
    assert_eq!(m.ext_authz[0].service_host, "a");
    let fields: Vec<&str> = d.errors.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(
        fields,
        vec![
            "data.mesh.extensionProviders[1].name",
            "data.mesh.extensionProviders[2].name"
        ]
    );
}

#[test]
fn bad_yaml_and_shapes() {
    for (mesh, field) in [
        ("extensionProviders: 5\n", "data.mesh.extensionProviders"),
        ("extensionProviders: [\n", "data.mesh"),
    ] {
        let (_, d) = parse(mesh);
        assert_eq!(d.errors.len(), 1, "{mesh}: {:?}", d.errors);
        assert!(d.errors[0].field.starts_with(field), "{:?}", d.errors[0]);
    }
}

#[test]
fn only_the_root_namespace_istio_configmap_counts() {
    let text = configmap(FULL_HTTP).replace("namespace: istio-system", "namespace: other");
    let (rs, _) = parse_manifests(&text, "t.yaml", "default", 0);
    let mut d = Diagnostics::default();
    let m = mesh_from_resources(&rs, "istio-system", &mut d);
    assert!(m.ext_authz.is_empty());
    assert!(m.source.is_none());
}

#[test]
fn header_patterns() {
    let cases = [
        ("x-a", "X-A", true),
        ("x-a", "x-ab", false),
        ("x-b3-*", "X-B3-TraceId", true),
        ("x-b3-*", "x-b4-traceid", false),
        ("*-id", "request-ID", true),
        ("*-id", "idx", false),
        ("*", "anything", true),
    ];
    for (pat, name, want) in cases {
        assert_eq!(
            HeaderPattern::parse(pat).matches(name),
            want,
            "{pat} vs {name}"
        );
    }
}

/// A waypoint, service `echo` (VIP 10.0.0.1) bound to it, service `authz` in `foo`, the mesh
/// ConfigMap declaring provider `ext`, and CUSTOM (path /custom*) + DENY (path /custom/deny).
fn snapshot_yaml(provider_service: &str) -> String {
    let mesh = format!(
        "extensionProviders:\n- name: ext\n  envoyExtAuthzHttp:\n    service: {provider_service}\n    port: 8000\n"
    );
    format!(
        r#"apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: waypoint, namespace: default}}
spec:
  gatewayClassName: istio-waypoint
  listeners: [{{name: mesh, port: 15008, protocol: HBONE}}]
---
apiVersion: v1
kind: Service
metadata: {{name: echo, namespace: default, labels: {{istio.io/use-waypoint: waypoint}}}}
spec: {{clusterIP: 10.0.0.1, ports: [{{name: http, port: 80}}]}}
---
apiVersion: v1
kind: Service
metadata: {{name: authz, namespace: foo}}
spec: {{clusterIP: 10.0.0.2, ports: [{{name: http, port: 8000}}]}}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {{name: custom, namespace: default}}
spec:
  targetRefs: [{{kind: Service, group: "", name: echo}}]
  action: CUSTOM
  provider: {{name: ext}}
  rules: [{{to: [{{operation: {{paths: ["/custom*"]}}}}]}}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {{name: deny, namespace: default}}
spec:
  targetRefs: [{{kind: Service, group: "", name: echo}}]
  action: DENY
  rules: [{{to: [{{operation: {{paths: ["/custom/deny"]}}}}]}}]
---
{}"#,
        configmap(&mesh)
    )
}

fn build(text: &str) -> (crate::Snapshot, Diagnostics) {
    let (rs, errs) = parse_manifests(text, "t.yaml", "default", 0);
    assert!(errs.is_empty(), "{errs:?}");
    crate::Snapshot::build(&rs, &crate::BuildOptions::default())
}

#[test]
fn custom_policy_resolves_to_the_mesh_provider() {
    let (snap, d) = build(&snapshot_yaml("foo/authz.foo.svc.cluster.local"));
    assert!(d.errors.is_empty(), "{:?}", d.errors);
    let p = snap.ext_authz_provider("ext").expect("provider");
    let svc = snap.ext_authz_service(p).expect("service");
    assert_eq!(
        (svc.namespace.as_str(), svc.name.as_str()),
        ("foo", "authz")
    );
    let cases = [
        ("/custom/x", crate::decision::Action::Route, Some("ext")),
        ("/other", crate::decision::Action::Route, None),
        // DENY is evaluated first; a provider allow never overrides it.
        ("/custom/deny", crate::decision::Action::Deny, Some("ext")),
    ];
    for (path, action, ext) in cases {
        let req = crate::Request {
            method: "GET",
            scheme: "http",
            authority: "echo",
            path,
            headers: &[],
            source_principal: None,
            source_ip: None,
            destination: "10.0.0.1:80",
            sni: None,
        };
        let dec = snap.decide(&req, &mut crate::SplitMix64(1), false);
        assert_eq!(dec.action, action, "{path}");
        if action == crate::decision::Action::Route {
            assert_eq!(dec.ext_authz, ext, "{path}");
        }
    }
}

#[test]
fn provider_with_unknown_service_is_an_error() {
    let (snap, d) = build(&snapshot_yaml("foo/missing.foo.svc.cluster.local"));
    assert!(snap.ext_authz_provider("ext").is_none());
    let fields: Vec<&str> = d.errors.iter().map(|e| e.field.as_str()).collect();
    assert!(
        fields.contains(&"data.mesh.extensionProviders[0].envoyExtAuthzHttp.service"),
        "{fields:?}"
    );
    // The CUSTOM policy naming it fails closed.
    assert!(fields.contains(&"spec.provider.name"), "{fields:?}");
}

#[test]
fn path_normalization_values() {
    let (m, d) = parse("accessLogFile: /dev/stdout\n");
    assert!(d.errors.is_empty(), "{:?}", d.errors);
    assert_eq!(m.path_normalization, PathNormalization::Base);
    for (v, want) in [
        ("NONE", PathNormalization::None),
        ("BASE", PathNormalization::Base),
        ("DEFAULT", PathNormalization::Base),
        ("MERGE_SLASHES", PathNormalization::MergeSlashes),
        (
            "DECODE_AND_MERGE_SLASHES",
            PathNormalization::DecodeAndMergeSlashes,
        ),
    ] {
        let (m, d) = parse(&format!("pathNormalization:\n  normalization: {v}\n"));
        assert!(d.errors.is_empty(), "{v}: {:?}", d.errors);
        assert_eq!(m.path_normalization, want, "{v}");
        assert_eq!(PathNormalization::parse(want.as_str()), Some(want));
    }
    let (m, d) = parse("pathNormalization:\n  normalization: merge\n");
    assert_eq!(m.path_normalization, PathNormalization::Base);
    let e = d.errors.first().expect("an error").to_string();
    assert!(
        e.contains("data.mesh.pathNormalization.normalization") && e.contains("\"merge\""),
        "{e}"
    );
}

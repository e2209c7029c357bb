//! Table-driven unit tests of HTTPRoute / GRPCRoute compilation.
//! Matching, filters, rewrites, backends and precedence.

use std::collections::BTreeMap;
use std::time::Duration;

use super::*;
use crate::request::Request;
use crate::resource::parse_manifests;
use crate::route::{PathRewrite, RedirectPort, RouteEntry, RuleAction};
use crate::route_match::request_matches;
use crate::service::{service_fqdn, ServiceInfo, ServiceKind, ServicePort, CLUSTER_DOMAIN};
use crate::snapshot::rewrite_path;

/// A tiny in-memory service registry for tests.
#[derive(Default)]
pub(super) struct TestServices(pub Vec<ServiceInfo>);

impl TestServices {
    pub(super) fn add(
        &mut self,
        kind: ServiceKind,
        ns: &str,
        name: &str,
        host: &str,
        ports: &[u16],
    ) {
        self.0.push(ServiceInfo {
            kind,
            name: name.into(),
            namespace: ns.into(),
            hostname: host.into(),
            aliases: vec![],
            vips: vec![],
            ports: ports
                .iter()
                .map(|p| ServicePort {
                    name: format!("http-{p}"),
                    port: *p,
                    target_port: None,
                    target_port_name: None,
                    protocol: "http".into(),
                })
                .collect(),
            labels: BTreeMap::new(),
            selector: BTreeMap::new(),
            endpoints: vec![],
        });
    }
    pub(super) fn service(&mut self, ns: &str, name: &str, ports: &[u16]) {
        let host = service_fqdn(name, ns, CLUSTER_DOMAIN);
        self.add(ServiceKind::Service, ns, name, &host, ports);
    }
}

impl ServiceLookup for TestServices {
    fn by_name(&self, namespace: &str, name: &str) -> Option<&ServiceInfo> {
        self.0
            .iter()
            .find(|s| s.namespace == namespace && s.name == name)
    }
    fn by_host(&self, host: &str, namespace: &str) -> Option<&ServiceInfo> {
        let fq = service_fqdn(host, namespace, CLUSTER_DOMAIN);
        self.0
            .iter()
            .find(|s| s.hostname == host || s.hostname == fq || s.aliases.iter().any(|a| a == host))
    }
}

/// A request to `path` with `headers`, method `method`.
pub(super) fn request<'a>(
    method: &'a str,
    path: &'a str,
    headers: &'a [(&'a str, &'a str)],
) -> Request<'a> {
    Request {
        method,
        scheme: "http",
        authority: "echo",
        path,
        headers,
        source_principal: None,
        source_ip: None,
        destination: "10.0.0.1:80",
        sni: None,
    }
}

/// First entry matching the request (what the lead's evaluator will do).
pub(super) fn first_match<'e>(
    entries: &'e [RouteEntry],
    req: &Request<'_>,
    port: Option<u16>,
) -> Option<&'e RouteEntry> {
    entries
        .iter()
        .find(|e| request_matches(&e.matcher, req, req.path_only(), port))
}

/// Compile every route in `yaml` (seq in document order).
pub(super) fn compile_all(
    yaml: &str,
    services: &dyn ServiceLookup,
    grants: &ReferenceGrants,
) -> (Vec<CompiledRoute>, Diagnostics) {
    let (raws, errs) = parse_manifests(yaml, "test.yaml", "default", 0);
    assert!(errs.is_empty(), "{errs:?}");
    let mut out = Vec::new();
    let mut diags = Diagnostics::default();
    for r in &raws {
        let (c, d) = match r.kind.as_str() {
            "HTTPRoute" => compile_http_route_with_grants(r, services, grants),
            "GRPCRoute" => compile_grpc_route_with_grants(r, services, grants),
            _ => continue,
        };
        diags.extend(d);
        out.extend(c);
    }
    (out, diags)
}

fn services() -> TestServices {
    let mut s = TestServices::default();
    for n in ["v1", "v2", "v3", "echo"] {
        s.service("default", n, &[80, 8080]);
    }
    s.service("other", "far", &[80]);
    s.add(
        ServiceKind::ServiceEntry,
        "default",
        "ext",
        "api.example.com",
        &[443],
    );
    s
}

fn compile_one(yaml: &str) -> (CompiledRoute, Diagnostics) {
    let (mut rs, d) = compile_all(yaml, &services(), &ReferenceGrants::default());
    assert_eq!(rs.len(), 1, "{d:?}");
    (rs.remove(0), d)
}

fn forward(e: &RouteEntry) -> &crate::route::Forward {
    match &e.rule.action {
        RuleAction::Forward(f) => f,
        other => panic!("expected forward, got {other:?}"),
    }
}

fn status(e: &RouteEntry) -> Option<u16> {
    match &e.rule.action {
        RuleAction::DirectResponse(d) => Some(d.status),
        _ => None,
    }
}

/// Request headers of a test case.
type Headers = &'static [(&'static str, &'static str)];

const MESH_PARENT: &str = "  parentRefs:\n  - {group: \"\", kind: Service, name: echo}\n";

fn route(name: &str, extra_meta: &str, rules: &str) -> String {
    format!(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata:\n  name: {name}\n{extra_meta}spec:\n{MESH_PARENT}  rules:\n{rules}"
    )
}

#[test]
fn matching_table() {
    let yaml = route(
        "m",
        "",
        r#"  - name: exact
    matches: [{path: {type: Exact, value: /exact}}]
    backendRefs: [{name: v1, port: 80}]
  - name: regex
    matches: [{path: {type: RegularExpression, value: "/re/[0-9]+"}}]
    backendRefs: [{name: v1, port: 80}]
  - name: hdr
    matches: [{headers: [{name: X-Version, value: two}, {name: x-version, value: ignored}]}]
    backendRefs: [{name: v2, port: 80}]
  - name: hdr-re
    matches: [{headers: [{name: x-re, type: RegularExpression, value: "a+"}]}]
    backendRefs: [{name: v2, port: 80}]
  - name: query
    matches: [{queryParams: [{name: q, value: "1"}]}]
    backendRefs: [{name: v3, port: 80}]
  - name: post
    matches: [{method: POST}]
    backendRefs: [{name: v3, port: 80}]
  - name: prefix
    matches: [{path: {type: PathPrefix, value: /pre/}}]
    backendRefs: [{name: v3, port: 80}]
"#,
    );
    let (r, d) = compile_one(&yaml);
    assert!(d.errors.is_empty(), "{d:?}");
    let entries = ordered_entries(&[&r]);
    let cases: &[(&str, &str, Headers, Option<&str>)] = &[
        ("GET", "/exact", &[], Some("exact")),
        ("GET", "/exact?x=1", &[], Some("exact")),
        ("GET", "/exact/more", &[], None),
        ("GET", "/re/42", &[], Some("regex")),
        ("GET", "/re/42/x", &[], None), // full match only
        ("GET", "/", &[("X-VERSION", "two")], Some("hdr")),
        ("GET", "/", &[("x-version", "ignored")], None),
        ("GET", "/", &[("x-re", "aaa")], Some("hdr-re")),
        ("GET", "/", &[("x-re", "aab")], None),
        ("GET", "/?q=1", &[], Some("query")),
        ("GET", "/?q=12", &[], None),
        ("POST", "/", &[], Some("post")),
        ("GET", "/pre", &[], Some("prefix")),
        ("GET", "/pre/x", &[], Some("prefix")),
        ("GET", "/prefix", &[], None),
    ];
    for (method, path, headers, want) in cases {
        let req = request(method, path, headers);
        let got = first_match(&entries, &req, Some(80)).map(|e| e.rule.id.rule.as_str());
        assert_eq!(got, *want, "{method} {path} {headers:?}");
    }
}

#[test]
fn precedence_across_routes() {
    // Rules in deliberately reversed order over three routes.
    let yaml = [
        route(
            "b-newer",
            "  creationTimestamp: \"2024-01-02T00:00:00Z\"\n",
            r#"  - name: b-prefix-short
    matches: [{path: {type: PathPrefix, value: /a}}]
    backendRefs: [{name: v1, port: 80}]
  - name: b-tie
    matches: [{path: {type: PathPrefix, value: /tie}}]
    backendRefs: [{name: v1, port: 80}]
"#,
        ),
        route(
            "a-older",
            "  creationTimestamp: \"2024-01-01T00:00:00Z\"\n",
            r#"  - name: a-prefix-long
    matches: [{path: {type: PathPrefix, value: /a/b}}]
    backendRefs: [{name: v1, port: 80}]
  - name: a-exact
    matches: [{path: {type: Exact, value: /a/b/c}}]
    backendRefs: [{name: v1, port: 80}]
  - name: a-tie
    matches: [{path: {type: PathPrefix, value: /tie}}]
    backendRefs: [{name: v1, port: 80}]
  - name: a-method
    matches: [{path: {type: PathPrefix, value: /m}, method: GET}]
    backendRefs: [{name: v1, port: 80}]
"#,
        ),
        route(
            "c-no-ts",
            "",
            r#"  - name: c-plain
    matches: [{path: {type: PathPrefix, value: /m}}]
    backendRefs: [{name: v1, port: 80}]
  - name: c-2headers
    matches: [{path: {type: PathPrefix, value: /h}, headers: [{name: a, value: "1"}, {name: b, value: "1"}]}]
    backendRefs: [{name: v1, port: 80}]
  - name: c-1header-1query
    matches: [{path: {type: PathPrefix, value: /h}, headers: [{name: a, value: "1"}], queryParams: [{name: q, value: "1"}]}]
    backendRefs: [{name: v1, port: 80}]
  - name: c-tie
    matches: [{path: {type: PathPrefix, value: /tie}}]
    backendRefs: [{name: v1, port: 80}]
  - name: c-regex
    matches: [{path: {type: RegularExpression, value: "/a.*"}}]
    backendRefs: [{name: v1, port: 80}]
"#,
        ),
    ]
    .join("---\n");
    let (rs, d) = compile_all(&yaml, &services(), &ReferenceGrants::default());
    assert!(d.errors.is_empty(), "{d:?}");
    let refs: Vec<&CompiledRoute> = rs.iter().collect();
    let entries = ordered_entries(&refs);
    let cases: &[(&str, &str, Headers, &str)] = &[
        ("GET", "/a/b/c", &[], "a-exact"),
        ("GET", "/a/b/c/d", &[], "a-prefix-long"),
        ("GET", "/a/x", &[], "b-prefix-short"),
        // Istio ranks any prefix above a regex.
        ("GET", "/abc", &[], "c-regex"),
        ("GET", "/m", &[], "a-method"),
        ("POST", "/m", &[], "c-plain"),
        ("GET", "/h?q=1", &[("a", "1"), ("b", "1")], "c-2headers"),
        ("GET", "/h?q=1", &[("a", "1")], "c-1header-1query"),
        // Ties: oldest timestamp first; routes without one come last.
        ("GET", "/tie", &[], "a-tie"),
    ];
    for (method, path, headers, want) in cases {
        let req = request(method, path, headers);
        let got = first_match(&entries, &req, Some(80)).map(|e| e.rule.id.rule.as_str());
        assert_eq!(got, Some(*want), "{method} {path} {headers:?}");
    }
    // Full order of the /tie rules: a (oldest), b, c (no timestamp).
    let ties: Vec<&str> = entries
        .iter()
        .map(|e| e.rule.id.rule.as_str())
        .filter(|n| n.ends_with("-tie"))
        .collect();
    assert_eq!(ties, ["a-tie", "b-tie", "c-tie"]);
}

#[test]
fn alphabetical_then_rule_order_tie_break() {
    let same = "  creationTimestamp: \"2024-01-01T00:00:00Z\"\n";
    let rules = "  - matches: [{path: {type: PathPrefix, value: /x}}]\n    backendRefs: [{name: v1, port: 80}]\n  - matches: [{path: {type: PathPrefix, value: /x}}]\n    backendRefs: [{name: v2, port: 80}]\n";
    let yaml = [route("zeta", same, rules), route("alpha", same, rules)].join("---\n");
    let (rs, _) = compile_all(&yaml, &services(), &ReferenceGrants::default());
    let refs: Vec<&CompiledRoute> = rs.iter().collect();
    let order: Vec<String> = ordered_entries(&refs)
        .iter()
        .map(|e| format!("{}#{}", e.rule.id.name, e.rule.id.rule))
        .collect();
    assert_eq!(order, ["alpha#0", "alpha#1", "zeta#0", "zeta#1"]);
}

#[test]
fn filters_and_rewrites() {
    let yaml = route(
        "f",
        "",
        r#"  - name: headers
    matches: [{path: {value: /headers}}]
    filters:
    - type: RequestHeaderModifier
      requestHeaderModifier:
        set: [{name: X-Set, value: a}, {name: x-set, value: ignored}]
        add: [{name: X-Add, value: b}]
        remove: [X-Remove]
    - type: ResponseHeaderModifier
      responseHeaderModifier:
        set: [{name: X-Resp, value: c}]
    backendRefs: [{name: v1, port: 80}]
  - name: rewrite
    matches: [{path: {value: /one}}, {path: {value: /two/}}]
    filters:
    - type: URLRewrite
      urlRewrite:
        hostname: rewritten.example
        path: {type: ReplacePrefixMatch, replacePrefixMatch: /new/}
    backendRefs: [{name: v1, port: 80}]
  - name: full
    matches: [{path: {value: /full}}]
    filters:
    - type: URLRewrite
      urlRewrite: {path: {type: ReplaceFullPath, replaceFullPath: /replaced}}
    backendRefs: [{name: v1, port: 80}]
  - name: redirect
    matches: [{path: {value: /redir}}]
    filters:
    - type: RequestRedirect
      requestRedirect: {path: {type: ReplacePrefixMatch, replacePrefixMatch: /to}}
  - name: redirect-scheme
    matches: [{path: {value: /scheme}}]
    filters:
    - type: RequestRedirect
      requestRedirect: {scheme: https, hostname: example.org, statusCode: 301}
  - name: redirect-port
    matches: [{path: {value: /port}}]
    filters:
    - type: RequestRedirect
      requestRedirect: {port: 8083}
  - name: mirror
    matches: [{path: {value: /mirror}}]
    filters:
    - type: RequestMirror
      requestMirror: {backendRef: {name: v2, port: 80}, fraction: {numerator: 1, denominator: 4}}
    - type: RequestMirror
      requestMirror: {backendRef: {name: v3, port: 80}, percent: 30}
    - type: RequestMirror
      requestMirror: {backendRef: {name: missing, port: 80}}
    backendRefs: [{name: v1, port: 80}]
  - name: cors
    matches: [{path: {value: /cors}}]
    filters:
    - type: CORS
      cors: {allowOrigins: ["https://a.com"], allowMethods: [GET], maxAge: 60, allowCredentials: true}
    backendRefs: [{name: v1, port: 80}]
  - name: ext
    matches: [{path: {value: /ext}}]
    filters:
    - type: ExtensionRef
      extensionRef: {group: example.com, kind: Foo, name: bar}
    backendRefs: [{name: v1, port: 80}]
  - name: backend-filters
    matches: [{path: {value: /bf}}]
    backendRefs:
    - name: v1
      port: 80
      filters:
      - type: RequestHeaderModifier
        requestHeaderModifier: {set: [{name: X-Backend, value: v1}]}
  - name: backend-bad-filter
    matches: [{path: {value: /bbf}}]
    backendRefs:
    - name: v1
      port: 80
      filters:
      - type: URLRewrite
        urlRewrite: {hostname: x}
"#,
    );
    let (r, d) = compile_one(&yaml);
    let entries = ordered_entries(&[&r]);
    let find = |path: &str| {
        let req = request("GET", path, &[]);
        first_match(&entries, &req, Some(80))
            .unwrap_or_else(|| panic!("no match for {path}"))
            .clone()
    };

    let h = find("/headers");
    let f = forward(&h);
    assert_eq!(f.request_headers.set, vec![("x-set".into(), "a".into())]);
    assert_eq!(f.request_headers.add, vec![("x-add".into(), "b".into())]);
    assert_eq!(f.request_headers.remove, vec!["x-remove".to_string()]);
    assert_eq!(f.response_headers.set, vec![("x-resp".into(), "c".into())]);

    // ReplacePrefixMatch is tied to each match's own prefix.
    for (path, want) in [("/one", "/new"), ("/one/x", "/new/x"), ("/two/y", "/new/y")] {
        let e = find(path);
        let rw = forward(&e).rewrite.clone().expect("rewrite");
        assert_eq!(rw.authority.as_deref(), Some("rewritten.example"));
        let p = rw.path.expect("path rewrite");
        assert_eq!(
            rewrite_path(path, &p, e.matcher.path.as_ref()),
            want,
            "{path}"
        );
    }
    let e = find("/full/deep");
    let p = forward(&e)
        .rewrite
        .clone()
        .and_then(|r| r.path)
        .expect("full");
    assert!(matches!(&p, PathRewrite::Full(s) if s == "/replaced"));

    let e = find("/redir/a");
    match &e.rule.action {
        RuleAction::Redirect(r) => {
            assert_eq!(r.status, 302);
            assert_eq!(r.port, RedirectPort::Keep);
            let p = r.path.as_ref().expect("path");
            assert_eq!(
                rewrite_path("/redir/a", p, e.matcher.path.as_ref()),
                "/to/a"
            );
        }
        other => panic!("{other:?}"),
    }
    match &find("/scheme").rule.action {
        RuleAction::Redirect(r) => {
            assert_eq!(r.scheme.as_deref(), Some("https"));
            assert_eq!(r.host.as_deref(), Some("example.org"));
            assert_eq!(r.status, 301);
            // Scheme set without port: the scheme's well-known port.
            assert_eq!(r.port, RedirectPort::ProtocolDefault);
        }
        other => panic!("{other:?}"),
    }
    match &find("/port").rule.action {
        RuleAction::Redirect(r) => assert_eq!(r.port, RedirectPort::Set(8083)),
        other => panic!("{other:?}"),
    }

    let e = find("/mirror");
    let m = &forward(&e).mirrors;
    assert_eq!(m.len(), 2, "invalid mirror dropped");
    assert_eq!(m[0].backend.name, "v2");
    assert!((m[0].percent - 25.0).abs() < 1e-9);
    assert!((m[1].percent - 30.0).abs() < 1e-9);

    let e = find("/cors");
    let c = forward(&e).cors.clone().expect("cors");
    assert_eq!(c.max_age, Some(Duration::from_secs(60)));
    assert_eq!(c.allow_credentials, Some(true));
    assert_eq!(c.allow_methods, vec!["GET".to_string()]);

    assert_eq!(status(&find("/ext")), Some(500));
    assert_eq!(status(&find("/bbf")), Some(500));
    let e = find("/bf");
    assert_eq!(
        forward(&e).backends[0].request_headers.set,
        vec![("x-backend".into(), "v1".into())]
    );

    // Diagnostics name the field: the missing mirror (a warning: the route stays accepted),
    // the ExtensionRef and the bad backend filter (errors).
    let warned: Vec<&str> = d.warnings.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(
        warned,
        ["spec.rules[6].filters[2].requestMirror.backendRef"]
    );
    let fields: Vec<&str> = d.errors.iter().map(|e| e.field.as_str()).collect();
    assert!(
        fields.contains(&"spec.rules[8].filters[0].type"),
        "{fields:?}"
    );
    assert!(
        fields.contains(&"spec.rules[10].backendRefs[0].filters[0].type"),
        "{fields:?}"
    );
}

#[test]
fn backends_weights_and_validity() {
    let yaml = route(
        "b",
        "",
        r#"  - name: split
    matches: [{path: {value: /split}}]
    backendRefs: [{name: v1, port: 80, weight: 70}, {name: v2, port: 80, weight: 30}, {name: v3, port: 80, weight: 0}]
  - name: default-weight
    matches: [{path: {value: /dw}}]
    backendRefs: [{name: v1, port: 80}, {name: v2, port: 80}]
  - name: missing
    matches: [{path: {value: /missing}}]
    backendRefs: [{name: nope, port: 80}]
  - name: kind
    matches: [{path: {value: /kind}}]
    backendRefs: [{group: example.com, kind: Thing, name: v1, port: 80}]
  - name: cross-ns
    matches: [{path: {value: /cross}}]
    backendRefs: [{name: far, namespace: other, port: 80}]
  - name: hostname
    matches: [{path: {value: /host}}]
    backendRefs: [{group: networking.istio.io, kind: Hostname, name: api.example.com, port: 443}]
  - name: no-port
    matches: [{path: {value: /noport}}]
    backendRefs: [{name: v1}]
  - name: none
    matches: [{path: {value: /none}}]
  - name: zero
    matches: [{path: {value: /zero}}]
    backendRefs: [{name: v1, port: 80, weight: 0}]
"#,
    );
    let (r, _) = compile_one(&yaml);
    let entries = ordered_entries(&[&r]);
    let find = |path: &str| {
        let req = request("GET", path, &[]);
        first_match(&entries, &req, Some(80))
            .expect("match")
            .clone()
    };
    let e = find("/split");
    let bs: Vec<(&str, u32)> = forward(&e)
        .backends
        .iter()
        .map(|b| (b.backend.name.as_str(), b.weight))
        .collect();
    assert_eq!(bs, [("v1", 70), ("v2", 30)]);
    assert_eq!(
        forward(&e).backends[0].backend.host,
        "v1.default.svc.cluster.local"
    );
    let e = find("/dw");
    assert!(forward(&e).backends.iter().all(|b| b.weight == 1));
    for (path, invalid) in [
        ("/missing", true),
        ("/kind", true),
        // Mesh parent: Istio does not enforce ReferenceGrant (enforceRefGrant = !mesh).
        ("/cross", false),
        ("/host", false),
        ("/noport", true),
    ] {
        let e = find(path);
        assert_eq!(forward(&e).backends[0].invalid.is_some(), invalid, "{path}");
    }
    assert_eq!(
        forward(&find("/host")).backends[0].backend.host,
        "api.example.com"
    );
    assert_eq!(status(&find("/none")), Some(500));
    assert_eq!(status(&find("/zero")), Some(500));
}

#[test]
fn reference_grants_for_gateway_parents() {
    let route_yaml = r#"apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: gw, namespace: default}
spec:
  parentRefs: [{name: waypoint}]
  hostnames: [a.example.com]
  rules:
  - backendRefs: [{name: far, namespace: other, port: 80}]
"#;
    let grant_yaml = r#"apiVersion: gateway.networking.k8s.io/v1beta1
kind: ReferenceGrant
metadata: {name: g, namespace: other}
spec:
  from: [{group: gateway.networking.k8s.io, kind: HTTPRoute, namespace: default}]
  to: [{group: "", kind: Service}]
"#;
    let svcs = services();
    let (without, d) = compile_all(route_yaml, &svcs, &ReferenceGrants::default());
    let e = &without[0].entries[0].entry;
    assert!(forward(e).backends[0].invalid.is_some());
    assert!(d.errors.is_empty(), "{d:?}");
    assert!(d.warnings[0].message.contains("ReferenceGrant"), "{d:?}");

    let (raws, _) = parse_manifests(grant_yaml, "g", "default", 0);
    let (grants, gd) = ReferenceGrants::from_resources(&raws);
    assert!(gd.errors.is_empty());
    let (with, _) = compile_all(route_yaml, &svcs, &grants);
    let e = &with[0].entries[0].entry;
    assert!(forward(e).backends[0].invalid.is_none());

    // Parent defaults and stored hostnames.
    let p = &with[0].parents[0];
    assert_eq!(
        (p.group.as_str(), p.kind.as_str(), p.namespace.as_str()),
        (GATEWAY_GROUP, "Gateway", "default")
    );
    assert!(!p.is_mesh());
    assert_eq!(with[0].hostnames, vec!["a.example.com".to_string()]);
}

#[test]
fn timeouts_and_retry() {
    let yaml = route(
        "t",
        "",
        r#"  - timeouts: {request: 10s, backendRequest: 1s500ms}
    retry: {codes: [503, 504], backoff: 100ms}
    backendRefs: [{name: v1, port: 80}]
  - matches: [{path: {value: /zero}}]
    timeouts: {request: 0s}
    retry: {attempts: 0}
    backendRefs: [{name: v1, port: 80}]
  - matches: [{path: {value: /bad}}]
    timeouts: {request: 10 seconds}
    backendRefs: [{name: v1, port: 80}]
"#,
    );
    let (r, d) = compile_one(&yaml);
    let f = forward(&r.entries[0].entry);
    assert_eq!(f.timeout, Some(Duration::from_secs(10)));
    assert_eq!(f.backend_timeout, Some(Duration::from_millis(1500)));
    let rp = f.retries.clone().expect("retry");
    assert_eq!(rp.attempts, 2);
    assert_eq!(rp.codes, vec![503, 504]);
    assert!(rp.retry_on.contains(&"connect-failure".to_string()));
    assert!(rp.retry_on.contains(&"retriable-status-codes".to_string()));
    assert_eq!(rp.backoff, Some(Duration::from_millis(100)));
    assert_eq!(rp.per_try_timeout, Some(Duration::from_millis(1500)));
    let f = forward(&r.entries[1].entry);
    assert_eq!(f.timeout, None);
    let rp = f.retries.clone().expect("retry");
    assert_eq!(rp.attempts, 0);
    assert!(rp.retry_on.is_empty());
    assert_eq!(d.errors.len(), 1, "{d:?}");
    assert_eq!(d.errors[0].field, "spec.rules[2].timeouts.request");
}

#[test]
fn grpc_methods() {
    let yaml = r#"apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: g}
spec:
  parentRefs: [{group: "", kind: Service, name: echo, port: 7070}]
  rules:
  - name: exact
    matches: [{method: {service: pkg.Svc, method: Get}}]
    backendRefs: [{name: v1, port: 8080}]
  - name: service
    matches: [{method: {service: pkg.Svc}}]
    backendRefs: [{name: v2, port: 8080}]
  - name: method-only
    matches: [{method: {method: List}}]
    backendRefs: [{name: v2, port: 8080}]
  - name: regex
    matches: [{method: {type: RegularExpression, service: "pkg\\.Other.*", method: "Do.*"}}]
    backendRefs: [{name: v3, port: 8080}]
  - name: header
    matches: [{headers: [{name: X-Tenant, value: a}]}]
    filters:
    - type: RequestHeaderModifier
      requestHeaderModifier: {add: [{name: x-added, value: "1"}]}
    backendRefs: [{name: v3, port: 8080}]
  - name: all
    backendRefs: [{name: v1, port: 8080}]
"#;
    let (r, d) = compile_one(yaml);
    assert!(d.errors.is_empty(), "{d:?}");
    assert_eq!(r.id.kind, "GRPCRoute");
    let entries = ordered_entries_for_parent(&ParentKey::service("default", "echo"), &[&r]);
    let cases: &[(&str, Headers, Option<u16>, Option<&str>)] = &[
        ("/pkg.Svc/Get", &[], Some(7070), Some("exact")),
        ("/pkg.Svc/Put", &[], Some(7070), Some("service")),
        ("/other.Svc/List", &[], Some(7070), Some("method-only")),
        ("/pkg.OtherX/DoIt", &[], Some(7070), Some("regex")),
        ("/x.Y/Z", &[("x-tenant", "a")], Some(7070), Some("header")),
        ("/x.Y/Z", &[], Some(7070), Some("all")),
        // parentRef port 7070 restricts the route to that service port.
        ("/pkg.Svc/Get", &[], Some(80), None),
    ];
    for (path, headers, port, want) in cases {
        let req = request("POST", path, headers);
        let got = first_match(&entries, &req, *port).map(|e| e.rule.id.rule.as_str());
        assert_eq!(got, *want, "{path} {headers:?} {port:?}");
    }
    let req = request("POST", "/x.Y/Z", &[("x-tenant", "a")]);
    let e = first_match(&entries, &req, Some(7070)).expect("header");
    assert_eq!(
        forward(e).request_headers.add,
        vec![("x-added".into(), "1".into())]
    );
}

#[test]
fn errors_name_fields() {
    // A bad regex drops that rule; the rest of the route stays.
    let yaml = route(
        "e",
        "",
        r#"  - matches: [{path: {type: RegularExpression, value: "(("}}]
    backendRefs: [{name: v1, port: 80}]
  - backendRefs: [{name: v1, port: 80}]
"#,
    );
    let (r, d) = compile_one(&yaml);
    assert_eq!(r.entries.len(), 1);
    assert_eq!(r.entries[0].rule_index, 1);
    assert_eq!(d.errors[0].field, "spec.rules[0].matches[0].path.value");
    assert_eq!(d.errors[0].kind, "HTTPRoute");

    // A spec that does not parse: no route, error with the field path.
    let bad = "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: x}\nspec:\n  rules:\n  - backendRefs: [{name: v1, port: eighty}]\n";
    let (raws, _) = parse_manifests(bad, "t", "default", 0);
    let (c, d) = compile_http_route(&raws[0], &services());
    assert!(c.is_none());
    assert!(
        d.errors[0]
            .field
            .starts_with("spec.rules[0].backendRefs[0]"),
        "{d:?}"
    );

    // Wrong kind for the compiler.
    let (c, d) = compile_grpc_route(&raws[0], &services());
    assert!(c.is_none());
    assert_eq!(d.errors[0].field, "apiVersion");
}

#[test]
fn absent_rules_default_to_one_500_rule() {
    let yaml = "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: r}\nspec:\n  parentRefs: [{group: \"\", kind: Service, name: echo}]\n";
    let (r, d) = compile_one(yaml);
    assert!(d.errors.is_empty(), "{d:?}");
    let entries = ordered_entries(&[&r]);
    let req = request("GET", "/anything", &[]);
    assert_eq!(
        first_match(&entries, &req, Some(80)).and_then(status),
        Some(500)
    );
}

#[test]
fn parent_port_restriction_and_defaults() {
    let yaml = r#"apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: p, namespace: default}
spec:
  parentRefs:
  - {group: "", kind: Service, name: echo, port: 80}
  - {group: "", kind: Service, name: echo, port: 8080}
  - {group: "", kind: Service, name: v1}
  rules:
  - backendRefs: [{name: v1, port: 80}]
"#;
    let (r, _) = compile_one(yaml);
    assert!(r.parents.iter().all(ParentRef::is_mesh));
    let echo = ordered_entries_for_parent(&ParentKey::service("default", "echo"), &[&r]);
    let ports: Vec<Option<u16>> = echo.iter().map(|e| e.matcher.port).collect();
    assert_eq!(ports, [Some(80), Some(8080)]);
    assert!(routes_apply_to_port(&echo, Some(8080)));
    assert!(!routes_apply_to_port(&echo, Some(9090)));
    let v1 = ordered_entries_for_parent(&ParentKey::service("default", "v1"), &[&r]);
    assert_eq!(v1.len(), 1);
    assert_eq!(v1[0].matcher.port, None);
    let none = ordered_entries_for_parent(&ParentKey::service("default", "v2"), &[&r]);
    assert!(none.is_empty());
}

//! Table tests of AuthorizationPolicy compile + evaluate: every field, the evaluation order,
//! dry run, CUSTOM, and the fail-closed handling of bad config.

use std::net::IpAddr;

use super::*;
use crate::error::Diagnostics;
use crate::request::Request;
use crate::resource::parse_manifests;

const PRINCIPAL: &str = "spiffe://cluster.local/ns/foo/sa/sleep";

/// Compile one policy given as `spec` YAML (indented by 2), optionally with metadata extras.
fn compile_with(meta_extra: &str, spec: &str, providers: &[&str]) -> (CompiledPolicy, Diagnostics) {
    let text = format!(
        "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata:\n  name: p\n  namespace: foo\n{meta_extra}spec:\n{spec}"
    );
    let (rs, errs) = parse_manifests(&text, "test.yaml", "default", 0);
    assert!(errs.is_empty(), "{errs:?}\n{text}");
    compile_policy(&rs[0], providers)
}

fn compile(spec: &str) -> CompiledPolicy {
    compile_with("", spec, &["ext"]).0
}

/// A request with sensible defaults; tweak through the closure.
#[derive(Clone)]
struct Req {
    method: &'static str,
    authority: &'static str,
    path: &'static str,
    headers: Vec<(&'static str, &'static str)>,
    principal: Option<&'static str>,
    source_ip: Option<&'static str>,
    dest_ip: Option<&'static str>,
    dest_port: Option<u16>,
    sni: Option<&'static str>,
}

impl Default for Req {
    fn default() -> Self {
        Req {
            method: "GET",
            authority: "httpbin.foo:8000",
            path: "/get",
            headers: vec![],
            principal: Some(PRINCIPAL),
            source_ip: Some("10.0.0.1"),
            dest_ip: Some("10.96.0.10"),
            dest_port: Some(8000),
            sni: None,
        }
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("test ip")
}

fn run<'p>(policies: &[&'p CompiledPolicy], r: &Req) -> AuthzOutcome<'p> {
    let normalized = normalize_path(r.path);
    let request = Request {
        method: r.method,
        scheme: "http",
        authority: r.authority,
        path: r.path,
        headers: &r.headers,
        source_principal: r.principal,
        source_ip: r.source_ip.map(ip),
        destination: "10.96.0.10:8000",
        sni: r.sni,
    };
    let input = AuthzInput {
        request: &request,
        path: &normalized,
        dest_ip: r.dest_ip.map(ip),
        dest_port: r.dest_port,
        auth: None,
    };
    let with_trace = evaluate(policies, &input, true);
    let without = evaluate(policies, &input, false);
    assert_eq!(with_trace.allowed, without.allowed);
    assert_eq!(with_trace.verdicts, without.verdicts);
    assert!(without.trace.is_empty());
    with_trace
}

fn allowed(p: &CompiledPolicy, r: &Req) -> bool {
    run(&[p], r).allowed
}

/// Each case: one ALLOW rule body (under `rules: - `), a request tweak, expected decision.
#[test]
fn allow_rule_fields() {
    type Tweak = fn(&mut Req);
    let cases: Vec<(&str, &str, Tweak, bool)> = vec![
        // principals: exact / prefix / suffix / `*` (needs an identity).
        ("principal exact", "from: [{source: {principals: [cluster.local/ns/foo/sa/sleep]}}]", |_| {}, true),
        ("principal other", "from: [{source: {principals: [cluster.local/ns/foo/sa/other]}}]", |_| {}, false),
        ("principal prefix", "from: [{source: {principals: [cluster.local/ns/foo/*]}}]", |_| {}, true),
        ("principal suffix", "from: [{source: {principals: ['*/sa/sleep']}}]", |_| {}, true),
        ("principal any", "from: [{source: {principals: ['*']}}]", |_| {}, true),
        ("principal any, plaintext", "from: [{source: {principals: ['*']}}]", |r| r.principal = None, false),
        ("notPrincipals any, plaintext", "from: [{source: {notPrincipals: ['*']}}]", |r| r.principal = None, true),
        ("notPrincipals any, mtls", "from: [{source: {notPrincipals: ['*']}}]", |_| {}, false),
        // namespaces / serviceAccounts derive from the principal.
        ("namespace", "from: [{source: {namespaces: [foo]}}]", |_| {}, true),
        ("namespace glob", "from: [{source: {namespaces: ['f*']}}]", |_| {}, true),
        ("namespace other", "from: [{source: {namespaces: [bar]}}]", |_| {}, false),
        ("namespace plaintext", "from: [{source: {notNamespaces: [bar]}}]", |r| r.principal = None, true),
        ("sa ns/name", "from: [{source: {serviceAccounts: [foo/sleep]}}]", |_| {}, true),
        ("sa bare uses policy ns", "from: [{source: {serviceAccounts: [sleep]}}]", |_| {}, true),
        ("sa other", "from: [{source: {serviceAccounts: [bar/sleep]}}]", |_| {}, false),
        ("notServiceAccounts", "from: [{source: {notServiceAccounts: [foo/sleep]}}]", |_| {}, false),
        ("trustDomains", "from: [{source: {trustDomains: [cluster.local]}}]", |_| {}, true),
        ("notTrustDomains", "from: [{source: {notTrustDomains: ['cluster.*']}}]", |_| {}, false),
        // requestPrincipals: these requests carry no verified JWT (see authn::tests for some).
        ("requestPrincipals any", "from: [{source: {requestPrincipals: ['*']}}]", |_| {}, false),
        ("notRequestPrincipals any", "from: [{source: {notRequestPrincipals: ['*']}}]", |_| {}, true),
        // IP blocks: source IP for both.
        ("ipBlocks cidr", "from: [{source: {ipBlocks: [10.0.0.0/8]}}]", |_| {}, true),
        ("ipBlocks single", "from: [{source: {ipBlocks: [10.0.0.2]}}]", |_| {}, false),
        ("notIpBlocks", "from: [{source: {notIpBlocks: [10.0.0.1]}}]", |_| {}, false),
        ("remoteIpBlocks", "from: [{source: {remoteIpBlocks: [10.0.0.1/32]}}]", |_| {}, true),
        ("ipv6", "from: [{source: {ipBlocks: ['fd00::/8']}}]", |r| r.source_ip = Some("fd00::1"), true),
        // from entries are ORed, fields ANDed.
        ("from OR", "from: [{source: {namespaces: [bar]}}, {source: {namespaces: [foo]}}]", |_| {}, true),
        ("source AND", "from: [{source: {namespaces: [foo], ipBlocks: [1.1.1.1]}}]", |_| {}, false),
        // hosts: case-insensitive against the full :authority (no port stripping in Envoy).
        ("host with port", "to: [{operation: {hosts: ['HTTPBIN.foo:8000']}}]", |_| {}, true),
        ("host without port vs host:port", "to: [{operation: {hosts: [httpbin.foo]}}]", |_| {}, false),
        ("host port glob", "to: [{operation: {hosts: ['httpbin.foo:*']}}]", |_| {}, true),
        ("host suffix", "to: [{operation: {hosts: ['*.FOO']}}]", |r| r.authority = "httpbin.foo", true),
        ("host prefix", "to: [{operation: {hosts: ['httpbin.*']}}]", |_| {}, true),
        ("host any", "to: [{operation: {hosts: ['*']}}]", |_| {}, true),
        ("notHosts", "to: [{operation: {notHosts: ['httpbin.*']}}]", |_| {}, false),
        // methods: exact, case-sensitive.
        ("method", "to: [{operation: {methods: [GET, HEAD]}}]", |_| {}, true),
        ("method case", "to: [{operation: {methods: [get]}}]", |_| {}, false),
        ("grpc is POST", "to: [{operation: {methods: [POST]}}]", |r| r.method = "POST", true),
        ("notMethods", "to: [{operation: {notMethods: [GET]}}]", |_| {}, false),
        // ports: destination port.
        ("port", "to: [{operation: {ports: ['8000']}}]", |_| {}, true),
        ("port other", "to: [{operation: {ports: ['80']}}]", |_| {}, false),
        ("notPorts", "to: [{operation: {notPorts: ['8000']}}]", |_| {}, false),
        // paths: exact / prefix / suffix / `*` / templates, on the normalized path w/o query.
        ("path exact", "to: [{operation: {paths: [/get]}}]", |r| r.path = "/get?x=1", true),
        ("path exact no match", "to: [{operation: {paths: [/get]}}]", |r| r.path = "/get/", false),
        ("path prefix", "to: [{operation: {paths: ['/api/*']}}]", |r| r.path = "/api/v1", true),
        ("path prefix needs slash", "to: [{operation: {paths: ['/api/*']}}]", |r| r.path = "/api", false),
        ("path suffix", "to: [{operation: {paths: ['*.js']}}]", |r| r.path = "/a/b.js", true),
        ("path any", "to: [{operation: {paths: ['*']}}]", |_| {}, true),
        ("path template one", "to: [{operation: {paths: ['/x/{*}']}}]", |r| r.path = "/x/y", true),
        ("path template one, two segs", "to: [{operation: {paths: ['/x/{*}']}}]", |r| r.path = "/x/y/z", false),
        ("path template any", "to: [{operation: {paths: ['/x/{**}']}}]", |r| r.path = "/x/y/z", true),
        ("path normalized", "to: [{operation: {paths: ['/public*']}}]", |r| r.path = "/public/../private", false),
        ("path dot-dot encoded", "to: [{operation: {notPaths: ['/private*']}}]", |r| r.path = "/public/%2e%2e/private", false),
        ("notPaths", "to: [{operation: {notPaths: ['/admin*']}}]", |r| r.path = "/admin/x", false),
        ("to OR", "to: [{operation: {methods: [POST]}}, {operation: {paths: [/get]}}]", |_| {}, true),
        ("operation AND", "to: [{operation: {methods: [GET], paths: [/other]}}]", |_| {}, false),
        // when conditions.
        ("header exact", "when: [{key: 'request.headers[X-Token]', values: [abc]}]", |r| r.headers = vec![("x-token", "abc")], true),
        ("header prefix", "when: [{key: 'request.headers[x-token]', values: ['ab*']}]", |r| r.headers = vec![("X-Token", "abc")], true),
        ("header present", "when: [{key: 'request.headers[x-token]', values: ['*']}]", |r| r.headers = vec![("x-token", "")], true),
        ("header absent", "when: [{key: 'request.headers[x-token]', values: ['*']}]", |_| {}, false),
        ("header notValues absent", "when: [{key: 'request.headers[x-token]', notValues: ['*']}]", |_| {}, true),
        ("header joined", "when: [{key: 'request.headers[x-a]', values: ['1,2']}]", |r| r.headers = vec![("x-a", "1"), ("x-a", "2")], true),
        ("header :authority", "when: [{key: 'request.headers[:authority]', values: ['httpbin*']}]", |_| {}, true),
        ("header host never present", "when: [{key: 'request.headers[host]', values: ['*']}]", |r| r.headers = vec![("host", "x")], false),
        ("source.ip", "when: [{key: source.ip, values: [10.0.0.0/24]}]", |_| {}, true),
        ("remote.ip not", "when: [{key: remote.ip, notValues: [10.0.0.1]}]", |_| {}, false),
        ("source.namespace", "when: [{key: source.namespace, values: [foo]}]", |_| {}, true),
        ("source.principal", "when: [{key: source.principal, values: [cluster.local/ns/foo/sa/sleep]}]", |_| {}, true),
        ("source.serviceAccount", "when: [{key: source.serviceAccount, values: [foo/sleep]}]", |_| {}, true),
        ("source.trustDomain", "when: [{key: source.trustDomain, values: [other]}]", |_| {}, false),
        ("destination.ip", "when: [{key: destination.ip, values: [10.96.0.0/16]}]", |_| {}, true),
        ("destination.port", "when: [{key: destination.port, values: ['8000']}]", |_| {}, true),
        ("destination.port not", "when: [{key: destination.port, notValues: ['8000']}]", |_| {}, false),
        ("sni", "when: [{key: connection.sni, values: ['*.foo']}]", |r| r.sni = Some("a.foo"), true),
        ("sni absent", "when: [{key: connection.sni, values: ['*']}]", |_| {}, false),
        ("jwt claim", "when: [{key: 'request.auth.claims[iss]', values: ['*']}]", |_| {}, false),
        ("jwt claim not", "when: [{key: 'request.auth.claims[iss]', notValues: ['x']}]", |_| {}, true),
        ("jwt principal", "when: [{key: request.auth.principal, values: ['*']}]", |_| {}, false),
        ("when AND", "when: [{key: source.namespace, values: [foo]}, {key: destination.port, values: ['1']}]", |_| {}, false),
        // from, to and when are ANDed.
        ("rule AND", "{from: [{source: {namespaces: [foo]}}], to: [{operation: {methods: [POST]}}]}", |_| {}, false),
    ];
    for (name, rule, tweak, want) in cases {
        let body = if rule.starts_with('{') {
            rule.to_string()
        } else {
            format!("{{{rule}}}")
        };
        let (p, d) = compile_with("", &format!("  rules:\n  - {body}\n"), &[]);
        assert!(
            !d.has_errors() || name.contains("host never"),
            "{name}: unexpected errors {:?}",
            d.errors
        );
        assert_eq!(p.rule_count(), 1, "{name}");
        let mut r = Req::default();
        tweak(&mut r);
        let out = run(&[&p], &r);
        assert_eq!(out.allowed, want, "{name}\n{}", out.trace.join("\n"));
    }
}

#[test]
fn evaluation_order_and_defaults() {
    let allow_nothing = compile("  action: ALLOW\n");
    let allow_all = compile("  rules: [{}]\n");
    let allow_get = compile("  rules: [{to: [{operation: {methods: [GET]}}]}]\n");
    let deny_get = compile("  action: DENY\n  rules: [{to: [{operation: {methods: [GET]}}]}]\n");
    let deny_none = compile("  action: DENY\n  rules: [{to: [{operation: {methods: [PUT]}}]}]\n");
    let audit_all = compile("  action: AUDIT\n  rules: [{}]\n");
    let r = Req::default();

    // No policy: allowed.
    assert!(run(&[], &r).allowed);
    // ALLOW without rules allows nothing (deny all for its targets).
    assert!(!allowed(&allow_nothing, &r));
    // `rules: [{}]` matches everything.
    assert!(allowed(&allow_all, &r));
    // Only DENY policies, not matching: allowed.
    assert!(allowed(&deny_none, &r));
    // DENY wins over ALLOW.
    assert!(!run(&[&allow_all, &deny_get], &r).allowed);
    assert!(!run(&[&deny_get, &allow_get], &r).allowed);
    // Any ALLOW match is enough; ALLOW policies that do not match do not veto.
    assert!(run(&[&allow_nothing, &allow_get], &r).allowed);
    // AUDIT never blocks; its verdict marks the match.
    let out = run(&[&audit_all], &r);
    assert!(out.allowed);
    assert!(out.verdicts[0].matched);
    assert_eq!(out.audited().count(), 1);
    let out = run(&[&audit_all, &allow_nothing], &r);
    assert!(!out.allowed);
    assert_eq!(out.verdicts.len(), 2);
    assert_eq!(out.verdicts[1].action, Action::Allow);
    assert!(!out.verdicts[1].matched);
}

#[test]
fn dry_run_reports_only() {
    let dry = "  annotations:\n    istio.io/dry-run: \"true\"\n";
    let (deny, d) = compile_with(dry, "  action: DENY\n  rules: [{}]\n", &[]);
    assert!(d.errors.is_empty(), "{:?}", d.errors);
    assert!(deny.dry_run);
    let (allow_none, _) = compile_with(dry, "  rules: [{to: [{operation: {paths: [/x]}}]}]\n", &[]);
    let r = Req::default();
    let out = run(&[&deny, &allow_none], &r);
    assert!(out.allowed, "dry-run policies are not enforced");
    assert!(out.verdicts[0].matched && out.verdicts[0].dry_run);
    assert!(!out.verdicts[1].matched && out.verdicts[1].dry_run);
    // A dry-run ALLOW does not make ALLOW "present" for an enforced deny-by-default.
    let real_allow = compile("  rules: [{to: [{operation: {paths: [/get]}}]}]\n");
    assert!(run(&[&allow_none, &real_allow], &r).allowed);
    // Invalid annotation value: error, enforced.
    let (p, d) = compile_with(
        "  annotations:\n    istio.io/dry-run: \"yes\"\n",
        "  action: DENY\n  rules: [{}]\n",
        &[],
    );
    assert!(!p.dry_run);
    assert!(d.has_errors());
    assert!(!allowed(&p, &r));
}

#[test]
fn custom_action() {
    let spec = "  action: CUSTOM\n  provider: {name: ext}\n  rules: [{to: [{operation: {paths: ['/admin/*']}}]}]\n";
    let (p, d) = compile_with("", spec, &["ext"]);
    assert!(d.errors.is_empty(), "{:?}", d.errors);
    assert_eq!(p.provider.as_deref(), Some("ext"));
    let mut r = Req::default();
    let out = run(&[&p], &r);
    assert!(out.allowed);
    assert_eq!(out.custom, None, "no CUSTOM rule matched");
    r.path = "/admin/x";
    let out = run(&[&p], &r);
    assert!(out.allowed);
    assert_eq!(out.custom, Some("ext"));

    // Unknown provider: matching requests are denied (Istio's bad-CUSTOM DENY), others pass.
    let (bad, d) = compile_with("", spec, &["other"]);
    assert!(d.has_errors());
    assert!(!allowed(&bad, &r));
    assert!(allowed(&bad, &Req::default()));

    // Two different providers on one target: every CUSTOM rule denies.
    let spec2 = "  action: CUSTOM\n  provider: {name: other}\n  rules: [{to: [{operation: {paths: ['/x']}}]}]\n";
    let (p2, _) = compile_with("", spec2, &["ext", "other"]);
    let out = run(&[&p, &p2], &r);
    assert!(!out.allowed);
    assert_eq!(out.custom, None);
    // Dry-run CUSTOM (rejected by Istio validation): istiod puts its rules in the enforcing
    // DENY RBAC in front of ext_authz, so matches are denied; with an unknown provider the
    // dry-run rules are dropped entirely.
    let dry_meta = "  annotations:\n    istio.io/dry-run: \"true\"\n";
    let (dry, d) = compile_with(dry_meta, spec, &["ext"]);
    assert!(d.has_errors());
    assert!(!dry.dry_run);
    assert!(!allowed(&dry, &r));
    assert!(allowed(&dry, &Req::default()));
    let (dry_bad, _) = compile_with(dry_meta, spec, &[]);
    assert!(dry_bad.dry_run);
    assert!(allowed(&dry_bad, &r));
    // With several providers only enforced CUSTOM rules deny.
    let out = run(&[&dry, &p2], &r);
    assert!(out.allowed, "{}", out.trace.join("\n"));
    // DENY still applies when the provider would be asked, and the provider is still asked
    // first (Istio's layers: CUSTOM, then DENY, then ALLOW): its deny answers the request.
    let deny = compile("  action: DENY\n  rules: [{to: [{operation: {paths: ['/admin/*']}}]}]\n");
    let out = run(&[&p, &deny], &r);
    assert!(!out.allowed);
    assert_eq!(out.custom, Some("ext"));
    // An unusable CUSTOM rule denies before any provider is asked.
    let out = run(&[&bad, &deny], &r);
    assert!(!out.allowed);
    assert_eq!(out.custom, None);
}

#[test]
fn fail_closed_bad_values() {
    let r = Req::default();
    // ALLOW: one bad CIDR drops the whole rule, even next to a good value.
    let (p, d) = compile_with(
        "",
        "  rules:\n  - from: [{source: {ipBlocks: [10.0.0.0/8, 300.1.1.1]}}]\n  - to: [{operation: {paths: [/other]}}]\n",
        &[],
    );
    assert!(d.has_errors());
    assert!(
        d.errors
            .iter()
            .any(|e| e.field == "spec.rules[0].from[0].source.ipBlocks[1]"),
        "{:?}",
        d.errors
    );
    assert_eq!(p.rule_count(), 1);
    assert!(!allowed(&p, &r));
    // DENY: the bad value alone is dropped; with no value left the condition goes and the
    // DENY matches more broadly.
    let (p, d) = compile_with(
        "",
        "  action: DENY\n  rules:\n  - from: [{source: {ipBlocks: [bad]}}]\n    to: [{operation: {methods: [GET]}}]\n",
        &[],
    );
    assert!(d.has_errors());
    assert!(!allowed(&p, &r), "DENY widened to every GET");
    let (p, _) = compile_with(
        "",
        "  action: DENY\n  rules:\n  - from: [{source: {ipBlocks: [bad, 1.1.1.1]}}]\n",
        &[],
    );
    assert!(allowed(&p, &r), "remaining value still restricts the DENY");
    // Bad port in ALLOW / DENY.
    let (p, _) = compile_with(
        "",
        "  rules: [{to: [{operation: {ports: ['99999']}}]}]\n",
        &[],
    );
    assert!(!allowed(&p, &r));
    let (p, _) = compile_with(
        "",
        "  action: DENY\n  rules: [{to: [{operation: {ports: ['x'], paths: [/get]}}]}]\n",
        &[],
    );
    assert!(!allowed(&p, &r));
    // Unsupported / unknown `when` keys.
    for key in [
        "experimental.envoy.filters.a.b[c]",
        "destination.labels[app]",
        "request.headers",
        "bogus",
    ] {
        let (p, d) = compile_with(
            "",
            &format!("  rules: [{{when: [{{key: '{key}', notValues: [x]}}]}}]\n"),
            &[],
        );
        assert!(d.has_errors(), "{key}");
        assert!(!allowed(&p, &r), "ALLOW with {key} never matches");
        let (p, _) = compile_with(
            "",
            &format!("  action: DENY\n  rules: [{{when: [{{key: '{key}', values: [x]}}, {{key: source.namespace, values: [foo]}}]}}]\n"),
            &[],
        );
        assert!(!allowed(&p, &r), "DENY with {key} dropped the condition");
    }
    // Bad path template.
    let (p, d) = compile_with(
        "",
        "  rules: [{to: [{operation: {paths: ['/{**}/a/{*}']}}]}]\n",
        &[],
    );
    assert!(d.has_errors());
    assert!(!allowed(&p, &r));
}

#[test]
fn unparseable_spec_fails_closed() {
    let r = Req::default();
    // Unknown field; targets recovered from the raw JSON.
    let (p, d) = compile_with(
        "",
        "  targetRefs: [{kind: Service, group: '', name: httpbin}]\n  action: ALLOW\n  rules: [{to: [{operation: {pathz: [/x]}}]}]\n",
        &[],
    );
    assert!(d.has_errors());
    assert!(
        d.errors
            .iter()
            .any(|e| e.field.starts_with("spec.rules[0].to[0].operation")),
        "{:?}",
        d.errors
    );
    assert!(p.is_fail_closed());
    assert_eq!(p.action, Action::Deny);
    assert_eq!(
        p.targets,
        PolicyTargets::Refs(vec![TargetRef {
            group: String::new(),
            kind: "Service".into(),
            name: "httpbin".into(),
            namespace: "foo".into(),
        }])
    );
    assert!(!allowed(&p, &r));
    // Wrong type and no recoverable targets.
    let (p, _) = compile_with("", "  action: MAYBE\n", &[]);
    assert_eq!(p.targets, PolicyTargets::Unknown);
    assert!(!allowed(&p, &r));
    let (p, _) = compile_with("", "  selector: {matchLabels: {app: x}}\n  rules: 3\n", &[]);
    assert_eq!(p.targets, PolicyTargets::Unknown);
}

#[test]
fn targets() {
    let p = compile("  targetRefs:\n  - {kind: Gateway, group: gateway.networking.k8s.io, name: waypoint}\n  - {kind: Service, group: core, name: svc}\n");
    assert_eq!(
        p.targets,
        PolicyTargets::Refs(vec![
            TargetRef {
                group: "gateway.networking.k8s.io".into(),
                kind: "Gateway".into(),
                name: "waypoint".into(),
                namespace: "foo".into(),
            },
            TargetRef {
                group: String::new(),
                kind: "Service".into(),
                name: "svc".into(),
                namespace: "foo".into(),
            },
        ])
    );
    let p = compile("  targetRef: {kind: ServiceEntry, group: networking.istio.io, name: se}\n");
    assert!(
        matches!(&p.targets, PolicyTargets::Refs(r) if r.len() == 1 && r[0].kind == "ServiceEntry")
    );
    assert_eq!(
        compile("  selector: {matchLabels: {app: a}}\n").targets,
        PolicyTargets::Selector
    );
    assert_eq!(compile("  rules: [{}]\n").targets, PolicyTargets::Unscoped);
    let (_, d) = compile_with(
        "",
        "  selector: {matchLabels: {app: a}}\n  targetRefs: [{kind: Service, name: s}]\n",
        &[],
    );
    assert!(d.has_errors());
    assert_eq!(Action::Custom.to_string(), "CUSTOM");
}

#[test]
fn validation_findings_are_reported() {
    // DENY / CUSTOM without rules: accepted, matches nothing, a warning (Istio's webhook warns).
    for spec in [
        "  action: DENY\n",
        "  action: CUSTOM\n  provider: {name: ext}\n",
    ] {
        let (p, d) = compile_with("", spec, &["ext"]);
        assert!(!d.has_errors(), "{spec}: {:?}", d.errors);
        assert!(
            d.warnings.iter().any(|w| w.field == "spec.rules"),
            "{spec}: {:?}",
            d.warnings
        );
        assert_eq!(p.rule_count(), 0, "{spec}: never matches");
        let out = run(&[&p], &Req::default());
        assert!(out.allowed && !out.verdicts[0].matched, "{spec}");
    }
    for (spec, field) in [
        ("  provider: {name: ext}\n  rules: [{}]\n", "spec.provider"),
        ("  rules: [{from: []}]\n", "spec.rules[0].from"),
        (
            "  rules: [{from: [{source: {}}]}]\n",
            "spec.rules[0].from[0].source",
        ),
        ("  rules: [{to: [{}]}]\n", "spec.rules[0].to[0].operation"),
        (
            "  rules: [{when: [{key: source.ip}]}]\n",
            "spec.rules[0].when[0]",
        ),
        (
            "  rules: [{from: [{source: {serviceAccounts: [a], principals: [b]}}]}]\n",
            "spec.rules[0].from[0].source",
        ),
        (
            "  rules: [{from: [{source: {serviceAccounts: ['a/b/c']}}]}]\n",
            "spec.rules[0].from[0].source.serviceAccounts[0]",
        ),
    ] {
        let (_, d) = compile_with("", spec, &["ext"]);
        assert!(
            d.errors.iter().any(|e| e.field == field),
            "{spec}: {:?}",
            d.errors
        );
    }
    // A null rule is skipped (istiod: "skipped nil rule").
    let (p, d) = compile_with("", "  rules: [null, {}]\n", &[]);
    assert!(d.has_errors());
    assert_eq!(p.rule_count(), 1);
}

#[test]
fn trace_explains() {
    let p = compile("  rules: [{to: [{operation: {methods: [POST]}}]}]\n");
    let out = run(&[&p], &Req::default());
    let t = out.trace.join("\n");
    assert!(
        t.contains("rule[0] no match: to failed on methods (method exact \"POST\")"),
        "{t}"
    );
    assert!(
        t.contains("denied: ALLOW policies apply and none matched"),
        "{t}"
    );
}

fn run_tcp<'p>(policies: &[&'p CompiledPolicy], r: &Req) -> AuthzOutcome<'p> {
    // A TCP connection has no method, path or headers; the request view carries none.
    let request = Request {
        method: "",
        scheme: "",
        authority: "",
        path: "",
        headers: &[],
        source_principal: r.principal,
        source_ip: r.source_ip.map(ip),
        destination: "10.96.0.10:8000",
        sni: r.sni,
    };
    let input = AuthzInput {
        request: &request,
        path: "",
        dest_ip: r.dest_ip.map(ip),
        dest_port: r.dest_port,
        auth: None,
    };
    let with_trace = evaluate_tcp(policies, &input, true);
    let without = evaluate_tcp(policies, &input, false);
    assert_eq!(with_trace.allowed, without.allowed);
    assert_eq!(with_trace.verdicts, without.verdicts);
    assert_eq!(without.custom, None, "TCP never asks a provider");
    with_trace
}

/// Istio's TCP semantics (authorization-policy reference, "for TCP traffic"): HTTP-only fields
/// are dropped from DENY / AUDIT / CUSTOM rules and make an ALLOW rule never match.
#[test]
fn tcp_semantics() {
    let other = "spiffe://cluster.local/ns/bar/sa/other";
    // (policy spec, principal, allowed over TCP)
    let cases: &[(&str, Option<&'static str>, bool)] = &[
        // DENY of a path: the path is dropped, the rule denies every connection.
        ("  action: DENY\n  rules: [{to: [{operation: {paths: ['/admin']}}]}]\n", Some(PRINCIPAL), false),
        ("  action: DENY\n  rules: [{to: [{operation: {notPaths: ['/public']}}]}]\n", Some(PRINCIPAL), false),
        ("  action: DENY\n  rules: [{when: [{key: 'request.headers[x-a]', values: ['1']}]}]\n", Some(PRINCIPAL), false),
        ("  action: DENY\n  rules: [{from: [{source: {requestPrincipals: ['*']}}]}]\n", Some(PRINCIPAL), false),
        // DENY of GET from one principal: only that principal's connections are denied.
        (
            "  action: DENY\n  rules: [{from: [{source: {principals: ['cluster.local/ns/bar/sa/other']}}], to: [{operation: {methods: ['GET']}}]}]\n",
            Some(PRINCIPAL),
            true,
        ),
        (
            "  action: DENY\n  rules: [{from: [{source: {principals: ['cluster.local/ns/bar/sa/other']}}], to: [{operation: {methods: ['GET']}}]}]\n",
            Some(other),
            false,
        ),
        // DENY on a port the connection does not use still does not match.
        ("  action: DENY\n  rules: [{to: [{operation: {ports: ['9000'], paths: ['/x']}}]}]\n", Some(PRINCIPAL), true),
        // ALLOW with an HTTP-only field never matches: nothing is allowed.
        ("  action: ALLOW\n  rules: [{to: [{operation: {paths: ['/get']}}]}]\n", Some(PRINCIPAL), false),
        ("  action: ALLOW\n  rules: [{to: [{operation: {ports: ['8000'], methods: ['GET']}}]}]\n", Some(PRINCIPAL), false),
        ("  action: ALLOW\n  rules: [{when: [{key: 'request.auth.claims[iss]', notValues: ['x']}]}]\n", Some(PRINCIPAL), false),
        ("  action: ALLOW\n  rules: [{from: [{source: {notRequestPrincipals: ['*']}}]}]\n", Some(PRINCIPAL), false),
        // ... while L4-only ALLOW rules keep working, also next to a skipped one.
        ("  action: ALLOW\n  rules: [{to: [{operation: {ports: ['8000']}}]}]\n", Some(PRINCIPAL), true),
        (
            "  action: ALLOW\n  rules:\n  - to: [{operation: {paths: ['/get']}}]\n  - from: [{source: {namespaces: ['foo']}}]\n",
            Some(PRINCIPAL),
            true,
        ),
        (
            "  action: ALLOW\n  rules:\n  - to: [{operation: {paths: ['/get']}}]\n  - from: [{source: {namespaces: ['foo']}}]\n",
            Some(other),
            false,
        ),
        ("  action: ALLOW\n  rules: [{}]\n", Some(PRINCIPAL), true),
        // AUDIT only marks.
        ("  action: AUDIT\n  rules: [{to: [{operation: {paths: ['/admin']}}]}]\n", Some(PRINCIPAL), true),
    ];
    for (spec, principal, want) in cases {
        let p = compile(spec);
        let r = Req {
            principal: *principal,
            ..Req::default()
        };
        let out = run_tcp(&[&p], &r);
        assert_eq!(
            out.allowed,
            *want,
            "{spec} from {principal:?}\n{}",
            out.trace.join("\n")
        );
    }
    // The same DENY of a path over HTTP only denies that path.
    let deny = compile("  action: DENY\n  rules: [{to: [{operation: {paths: ['/admin']}}]}]\n");
    assert!(allowed(&deny, &Req::default()));
    // An AUDIT rule with a dropped path matches every connection.
    let audit = compile("  action: AUDIT\n  rules: [{to: [{operation: {paths: ['/admin']}}]}]\n");
    assert_eq!(run_tcp(&[&audit], &Req::default()).audited().count(), 1);
    // A matching CUSTOM rule denies on TCP (no network ext_authz: fail closed); one that
    // does not match lets the connection through.
    let custom = compile(
        "  action: CUSTOM\n  provider: {name: ext}\n  rules: [{to: [{operation: {paths: ['/admin']}}]}]\n",
    );
    let out = run_tcp(&[&custom], &Req::default());
    assert!(!out.allowed, "{}", out.trace.join("\n"));
    let custom_port = compile(
        "  action: CUSTOM\n  provider: {name: ext}\n  rules: [{to: [{operation: {ports: ['9000']}}]}]\n",
    );
    assert!(run_tcp(&[&custom_port], &Req::default()).allowed);
    // The trace says why an ALLOW rule was skipped.
    let allow = compile("  action: ALLOW\n  rules: [{to: [{operation: {paths: ['/get']}}]}]\n");
    let out = run_tcp(&[&allow], &Req::default());
    assert!(
        out.trace.iter().any(|l| l.contains("skipped on TCP")),
        "{:?}",
        out.trace
    );
}

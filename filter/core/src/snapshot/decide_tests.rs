//! Decision tests for issue 11: the path normalized once per mesh `pathNormalization` is what
//! is judged, routed and forwarded; TCP and pass-through authorization with the right policies.

use crate::decision::Action;
use crate::request::Request;
use crate::resource::parse_manifests;
use crate::{BuildOptions, Snapshot, SplitMix64};

/// Waypoint, service `echo` (10.0.0.1:80, `http`) bound to it, a route redirecting `/old`,
/// the waypoint-wide DENY of `/admin` (as examples/bookinfo), and `mesh` as MeshConfig.
fn snapshot(mode: &str, extra: &str) -> Snapshot {
    let text = format!(
        r#"{gw}apiVersion: v1
kind: Service
metadata: {{name: echo, namespace: default, labels: {{istio.io/use-waypoint: waypoint}}}}
spec: {{clusterIP: 10.0.0.1, selector: {{app: echo}}, ports: [{{name: http, port: 80}}]}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: echo, namespace: default}}
spec:
  parentRefs: [{{group: "", kind: Service, name: echo, port: 80}}]
  rules:
  - matches: [{{path: {{type: PathPrefix, value: /old}}}}]
    filters: [{{type: RequestRedirect, requestRedirect: {{hostname: example.com}}}}]
  - backendRefs: [{{name: echo, port: 80}}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {{name: deny-admin, namespace: default}}
spec:
  targetRefs: [{{kind: Gateway, group: gateway.networking.k8s.io, name: waypoint}}]
  action: DENY
  rules: [{{to: [{{operation: {{paths: ["/admin", "/admin/*"]}}}}]}}]
---
apiVersion: v1
kind: ConfigMap
metadata: {{name: istio, namespace: istio-system}}
data:
  mesh: |-
    pathNormalization: {{normalization: {mode}}}
{extra}"#,
        gw = crate::waypoint_gateway_yaml!("default"),
    );
    let (rs, errs) = parse_manifests(&text, "t.yaml", "default", 0);
    assert!(errs.is_empty(), "{errs:?}");
    let (snap, d) = Snapshot::build(&rs, &BuildOptions::default());
    assert!(d.errors.is_empty(), "{:?}", d.errors);
    snap
}

fn req<'a>(path: &'a str, destination: &'a str) -> Request<'a> {
    Request {
        method: "GET",
        scheme: "http",
        authority: "echo",
        path,
        headers: &[],
        source_principal: Some("spiffe://cluster.local/ns/default/sa/curl"),
        source_ip: None,
        destination,
        sni: None,
    }
}

/// (path, action, path forwarded or redirected to); `None` = the request's path unchanged.
type Case = (&'static str, Action, Option<&'static str>);

#[test]
fn normalized_path_is_judged_routed_and_forwarded() {
    let table: &[(&str, &[Case])] = &[
        (
            "NONE",
            &[
                ("/admin/..", Action::Deny, None),
                ("//admin?x=/..", Action::Route, None),
                ("/a/./b", Action::Route, None),
            ],
        ),
        (
            "BASE",
            &[
                ("/admin/..", Action::Route, Some("/")),
                ("/admin/x/..", Action::Deny, None),
                ("/a/./b?q=/./", Action::Route, Some("/a/b?q=/./")),
                ("//admin", Action::Route, None),
                (
                    "/x/../old/y",
                    Action::Redirect,
                    Some("http://example.com/old/y"),
                ),
                ("/a/%00", Action::DirectResponse, None),
                // Double-encoded: one Envoy pass leaves `/%61dmin`, which the backend reads as
                // `/admin`; normalized to a fixed point, it is judged as what it is. The Envoy
                // layout hands the core the HCM's one-pass result: the same decision.
                ("/%6%31dmin", Action::Deny, None),
                ("/%61dmin", Action::Deny, None),
                ("/%6%31bc", Action::Route, Some("/abc")),
            ],
        ),
        (
            "MERGE_SLASHES",
            &[
                ("//admin", Action::Deny, None),
                ("//a//b", Action::Route, Some("/a/b")),
                ("/admin%2F..", Action::Route, None),
            ],
        ),
        (
            "DECODE_AND_MERGE_SLASHES",
            &[
                ("/admin%2F..", Action::Route, Some("/")),
                ("/admin%2fx", Action::Deny, None),
                ("/a%5Cb", Action::Route, Some("/a/b")),
            ],
        ),
    ];
    for (mode, cases) in table {
        let snap = snapshot(mode, "");
        for (path, action, want) in cases.iter() {
            let d = snap.decide(&req(path, "10.0.0.1:80"), &mut SplitMix64(1), true);
            assert_eq!(d.action, *action, "{mode} {path}\n{}", d.trace.join("\n"));
            let got = match d.action {
                Action::Route => d.forward.as_ref().and_then(|f| f.path.clone()),
                Action::Redirect => d.local.as_ref().and_then(|l| {
                    l.headers
                        .iter()
                        .find(|(k, _)| k == "location")
                        .map(|(_, v)| v.clone())
                }),
                _ => None,
            };
            assert_eq!(got.as_deref(), *want, "{mode} {path}");
            if d.action == Action::DirectResponse {
                assert_eq!(d.local.as_ref().map(|l| l.status), Some(400));
            }
        }
    }
}

#[test]
fn tcp_and_passthrough_authorization() {
    let snap = snapshot("BASE", "");
    let principal = Some("spiffe://cluster.local/ns/default/sa/curl");
    // The waypoint-wide DENY of a path loses the path on TCP: every connection is denied,
    // to the service and to an address that is no service (pass-through).
    for destination in ["10.0.0.1:80", "10.9.9.9:5000"] {
        let out = snap.authorize_tcp(principal, None, destination, true);
        assert!(!out.allowed, "{destination}: {}", out.trace.join("\n"));
    }
    // Pass-through HTTP: the waypoint's own policies with HTTP semantics.
    let r = req("/admin", "10.9.9.9:5000");
    assert!(!snap.authorize_passthrough(&r, "/admin", false).allowed);
    let r = req("/ok", "10.9.9.9:5000");
    assert!(snap.authorize_passthrough(&r, "/ok", false).allowed);
    // Without policies, TCP is allowed; an ALLOW holding a path admits no TCP connection.
    let snap = snapshot(
        "BASE",
        r#"---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: allow-get, namespace: default}
spec:
  targetRefs: [{kind: Service, group: "", name: echo}]
  action: ALLOW
  rules: [{to: [{operation: {methods: [GET]}}]}]
"#,
    );
    assert!(
        !snap
            .authorize_tcp(principal, None, "10.0.0.1:80", false)
            .allowed
    );
    // The pass-through address only gets the waypoint's policies (the DENY), not echo's.
    assert!(
        !snap
            .authorize_tcp(principal, None, "10.9.9.9:5000", false)
            .allowed
    );
    let text = crate::waypoint_gateway_yaml!("default");
    let (rs, _) = parse_manifests(text, "t.yaml", "default", 0);
    let (bare, _) = Snapshot::build(&rs, &BuildOptions::default());
    assert!(
        bare.authorize_tcp(principal, None, "10.9.9.9:5000", false)
            .allowed
    );
}

/// An HTTPRoute whose parentRef is the waypoint Gateway itself is bound by no istiod: it has
/// no effect (the Service's own routes apply), and a warning names it.
#[test]
fn routes_on_the_waypoint_gateway_have_no_effect_and_are_reported() {
    let text = format!(
        r#"{gw}apiVersion: v1
kind: Service
metadata: {{name: web, namespace: default, labels: {{istio.io/use-waypoint: waypoint}}}}
spec: {{clusterIP: 10.0.0.2, ports: [{{name: http, port: 80}}]}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: on-gateway, namespace: default}}
spec:
  parentRefs: [{{name: waypoint}}]
  rules:
  - filters: [{{type: RequestRedirect, requestRedirect: {{hostname: example.com}}}}]
"#,
        gw = crate::waypoint_gateway_yaml!("default"),
    );
    let (rs, errs) = parse_manifests(&text, "t.yaml", "default", 0);
    assert!(errs.is_empty(), "{errs:?}");
    let (snap, d) = Snapshot::build(&rs, &BuildOptions::default());
    assert!(d.errors.is_empty(), "{:?}", d.errors);
    let warned: Vec<_> = d
        .warnings
        .iter()
        .filter(|w| w.name == "on-gateway" && w.field == "spec.parentRefs")
        .collect();
    assert_eq!(warned.len(), 1, "{:?}", d.warnings);
    assert!(warned[0].message.contains("has no effect"), "{warned:?}");
    let mut r = req("/x", "10.0.0.2:80");
    r.authority = "web";
    let dec = snap.decide(&r, &mut SplitMix64(1), false);
    assert_eq!(
        dec.action,
        Action::Route,
        "the default route, not the redirect"
    );
}

/// A request addressed to a pod IP of a bound service gets no service route (Istio's
/// `direct-http` chain): the waypoint's policies only, then the original destination. A pod of
/// a service that does not use this waypoint stays that service's (404).
#[test]
fn a_pod_ip_gets_no_service_route_and_only_the_waypoint_policies() {
    let snap = snapshot(
        "BASE",
        r#"---
apiVersion: v1
kind: Pod
metadata: {name: echo-1, namespace: default, labels: {app: echo}}
status: {podIP: 10.1.0.1}
---
apiVersion: v1
kind: Service
metadata: {name: other, namespace: default, labels: {istio.io/use-waypoint: none}}
spec: {clusterIP: 10.0.0.9, selector: {app: other}, ports: [{name: http, port: 80}]}
---
apiVersion: v1
kind: Pod
metadata: {name: other-1, namespace: default, labels: {app: other}}
status: {podIP: 10.1.0.9}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: echo-deny, namespace: default}
spec:
  targetRefs: [{kind: Service, group: "", name: echo}]
  action: DENY
  rules: [{to: [{operation: {paths: ["/svc-denied"]}}]}]
"#,
    );
    // The pod really is an endpoint of echo (else this would test an unknown address).
    assert!(
        !snap
            .registry
            .indexes_by_endpoint("10.1.0.1".parse().expect("ip"))
            .is_empty(),
        "echo-1 is no endpoint"
    );
    let mut rng = SplitMix64(1);
    // The HTTPRoute's redirect of /old is not applied; the request goes to the pod as sent.
    let d = snap.decide(&req("/old/x", "10.1.0.1:8080"), &mut rng, true);
    assert_eq!(d.action, Action::Passthrough, "{}", d.trace.join("\n"));
    assert_eq!(d.passthrough, Some("10.1.0.1:8080".parse().expect("addr")));
    assert!(d.local.is_none() && d.forward.is_none() && d.matched_rule.is_none());
    // The waypoint's DENY applies; the Service's does not (HTTP and TCP alike).
    let d = snap.decide(&req("/admin", "10.1.0.1:8080"), &mut rng, false);
    assert_eq!(d.action, Action::Deny);
    let d = snap.decide(&req("/svc-denied", "10.1.0.1:8080"), &mut rng, false);
    assert_eq!(d.action, Action::Passthrough);
    let d = snap.decide(&req("/svc-denied", "10.0.0.1:80"), &mut rng, false);
    assert_eq!(d.action, Action::Deny);
    assert!(
        !snap
            .authorize_tcp(None, None, "10.1.0.1:8080", false)
            .allowed
    );
    // A pod of a Service that opted out: still that Service's, not bound here.
    let d = snap.decide(&req("/", "10.1.0.9:80"), &mut rng, false);
    assert_eq!(d.action, Action::NotFound);
    assert_eq!(d.local.as_ref().map(|l| l.status), Some(404));
}

/// A destination spelled `vip:port` (resolved by one lookup) resolves exactly as the same
/// address in another spelling (parsed), and an undeclared port or a pod IP still parses.
#[test]
fn vip_and_port_resolve_the_same_by_lookup_and_by_parse() {
    let text = r#"apiVersion: v1
kind: Service
metadata: {name: a, namespace: default}
spec: {clusterIP: 10.0.0.1, clusterIPs: [10.0.0.1, "fd00::1"], selector: {app: a}, ports: [{name: http, port: 80}, {name: grpc, port: 9090}]}
---
apiVersion: v1
kind: Service
metadata: {name: b, namespace: default}
spec: {clusterIP: 10.0.0.2, ports: [{name: http, port: 8080}]}
"#;
    let (resources, errors) = parse_manifests(text, "t", "default", 0);
    assert!(errors.is_empty(), "{errors:?}");
    let (snap, _) = Snapshot::build(&resources, &BuildOptions::default());
    for (fast, parsed) in [
        ("10.0.0.1:80", "10.0.0.1:080"),
        ("10.0.0.1:9090", "10.0.0.1:+9090"),
        ("10.0.0.2:8080", "10.0.0.2:08080"),
        ("[fd00::1]:80", "[fd00:0::1]:80"),
    ] {
        assert!(
            snap.registry.by_vip_port(fast).is_some(),
            "{fast} takes the lookup"
        );
        assert!(
            snap.registry.by_vip_port(parsed).is_none(),
            "{parsed} is parsed"
        );
        let (f, p) = (
            snap.resolve_destination(fast).expect(fast),
            snap.resolve_destination(parsed).expect(parsed),
        );
        assert_eq!(f, p, "{fast} vs {parsed}");
    }
    // A port the service does not declare: not in the lookup, still the service's VIP.
    assert!(snap.registry.by_vip_port("10.0.0.1:81").is_none());
    let r = snap.resolve_destination("10.0.0.1:81").expect("vip");
    assert_eq!(
        (r.port, snap.registry.services[r.index].name.as_str()),
        (81, "a")
    );
}

//! Test helpers: a fake service registry, manifest-to-resource shortcuts and a tiny request
//! matcher used only to check compiled matches (the real evaluator lives in route_match.rs).

use std::collections::BTreeMap;

use crate::error::Diagnostics;
use crate::request::query_pairs;
use crate::resource::{parse_manifests, RawResource};
use crate::route::{RequestMatch, RouteEntry, RuleAction};
use crate::service::{ServiceInfo, ServiceKind, ServiceLookup, ServicePort, CLUSTER_DOMAIN};

use super::destination_rule::{compile_destination_rule, CompiledDestinationRule};
use super::virtual_service::{compile_virtual_service, CompiledVirtualService};

/// In-memory registry.
#[derive(Debug, Default)]
pub struct FakeServices(pub Vec<ServiceInfo>);

impl ServiceLookup for FakeServices {
    fn by_name(&self, namespace: &str, name: &str) -> Option<&ServiceInfo> {
        self.0
            .iter()
            .find(|s| s.namespace == namespace && s.name == name)
    }
    fn by_host(&self, host: &str, namespace: &str) -> Option<&ServiceInfo> {
        if let Some(s) = self
            .0
            .iter()
            .find(|s| s.hostname == host || s.aliases.iter().any(|a| a == host))
        {
            return Some(s);
        }
        match host.split_once('.') {
            None => self.by_name(namespace, host),
            Some((name, ns)) if !ns.contains('.') => self.by_name(ns, name),
            _ => None,
        }
    }
}

pub fn svc(name: &str, ns: &str, ports: &[u16]) -> ServiceInfo {
    ServiceInfo {
        kind: ServiceKind::Service,
        name: name.to_string(),
        namespace: ns.to_string(),
        hostname: format!("{name}.{ns}.svc.{CLUSTER_DOMAIN}"),
        aliases: Vec::new(),
        vips: Vec::new(),
        ports: ports
            .iter()
            .map(|p| ServicePort {
                name: "http".to_string(),
                port: *p,
                target_port: Some(*p),
                target_port_name: None,
                protocol: "http".to_string(),
            })
            .collect(),
        labels: BTreeMap::new(),
        selector: BTreeMap::new(),
        endpoints: Vec::new(),
    }
}

/// Bookinfo services in `default` (single port 9080) plus a two-port `multi`.
pub fn bookinfo() -> FakeServices {
    let mut v: Vec<ServiceInfo> = ["productpage", "reviews", "ratings", "details", "httpbin"]
        .iter()
        .map(|n| svc(n, "default", &[9080]))
        .collect();
    v.push(svc("multi", "default", &[80, 8080]));
    let mut se = svc("api", "default", &[443]);
    se.kind = ServiceKind::ServiceEntry;
    se.hostname = "api.example.com".to_string();
    se.aliases = vec!["api2.example.com".to_string()];
    v.push(se);
    FakeServices(v)
}

/// Parse exactly one resource.
pub fn raw(yaml: &str) -> RawResource {
    let (mut rs, errs) = parse_manifests(yaml, "test.yaml", "default", 0);
    assert!(errs.is_empty(), "{errs:?}");
    assert_eq!(rs.len(), 1, "one resource expected");
    rs.remove(0)
}

/// `VirtualService` named `vs` in `default` with `spec` given as YAML (indented under spec).
pub fn vs_yaml(spec: &str) -> String {
    format!("apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata:\n  name: vs\n  namespace: default\nspec:\n{}", indent(spec))
}

pub fn dr_yaml(spec: &str) -> String {
    format!("apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata:\n  name: dr\n  namespace: default\nspec:\n{}", indent(spec))
}

fn indent(s: &str) -> String {
    s.lines().map(|l| format!("  {l}\n")).collect()
}

pub fn compile_vs(spec: &str) -> (Option<CompiledVirtualService>, Diagnostics) {
    compile_virtual_service(&raw(&vs_yaml(spec)), &bookinfo())
}

/// Compile and require success.
pub fn ok_vs(spec: &str) -> CompiledVirtualService {
    let (vs, d) = compile_vs(spec);
    assert!(d.errors.is_empty(), "unexpected errors: {:?}", d.errors);
    vs.expect("compiled")
}

pub fn compile_dr(spec: &str) -> (Option<CompiledDestinationRule>, Diagnostics) {
    compile_destination_rule(&raw(&dr_yaml(spec)), &bookinfo())
}

/// The field paths of all errors.
pub fn error_fields(d: &Diagnostics) -> Vec<String> {
    d.errors.iter().map(|e| e.field.clone()).collect()
}

/// Request for the tiny matcher.
#[derive(Debug, Clone, Copy)]
pub struct Req<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub headers: &'a [(&'a str, &'a str)],
    pub port: u16,
}

impl<'a> Req<'a> {
    pub fn get(path: &'a str) -> Self {
        Req {
            method: "GET",
            path,
            headers: &[],
            port: 9080,
        }
    }
}

/// Test-only evaluation of a RequestMatch (path, method, headers with invert, query, port).
pub fn matches(m: &RequestMatch, r: &Req) -> bool {
    let (path, query) = r.path.split_once('?').unwrap_or((r.path, ""));
    if let Some(p) = &m.path {
        let ok = if m.ignore_uri_case {
            p.matches_ignore_case(path)
        } else {
            p.matches(path)
        };
        if !ok {
            return false;
        }
    }
    if m.method.as_ref().is_some_and(|s| !s.matches(r.method)) {
        return false;
    }
    if m.port.is_some_and(|p| p != r.port) {
        return false;
    }
    for h in &m.headers {
        let value = r
            .headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(&h.name))
            .map(|(_, v)| *v);
        let hit = match (&h.matcher, value) {
            (None, v) => v.is_some(),
            (Some(sm), Some(v)) => sm.matches(v),
            // treat_missing_header_as_empty for inverted value matches.
            (Some(sm), None) => h.invert && sm.matches(""),
        };
        if hit == h.invert {
            return false;
        }
    }
    for q in &m.query {
        let v = query_pairs(query)
            .find(|(k, _)| *k == q.name)
            .map(|(_, v)| v);
        let hit = match (&q.matcher, v) {
            (None, v) => v.is_some(),
            (Some(sm), Some(v)) => sm.matches(v),
            (Some(_), None) => false,
        };
        if !hit {
            return false;
        }
    }
    true
}

/// First entry matching `r`.
pub fn first_match<'e>(entries: &'e [RouteEntry], r: &Req) -> Option<&'e RouteEntry> {
    entries.iter().find(|e| matches(&e.matcher, r))
}

/// The forward action of an entry.
pub fn forward(e: &RouteEntry) -> &crate::route::Forward {
    match &e.rule.action {
        RuleAction::Forward(f) => f,
        other => panic!("expected forward, got {other:?}"),
    }
}

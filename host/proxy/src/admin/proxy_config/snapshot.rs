//! Routes, clusters, endpoints and policies of a compiled snapshot as `proxy-config` shows
//! them. The host and the Envoy module compile the same snapshot, so both views come from here.

use std::collections::BTreeMap;

use waypoint_core::authz::{CompiledPolicy, PolicyTargets};
use waypoint_core::names::cluster_name;
use waypoint_core::route::{BackendRef, Fault, RequestMatch, RuleAction, WeightedBackend};
use waypoint_core::service::ServiceInfo;
use waypoint_core::snapshot::RouteSource;
use waypoint_core::Snapshot;

use super::view::{BackendView, ClusterView, EndpointView, PolicyView, RouteView};

/// `namespace/name` of the snapshot's waypoint.
pub fn waypoint(snap: &Snapshot) -> Option<String> {
    snap.waypoint
        .as_ref()
        .map(|w| format!("{}/{}", w.namespace, w.name))
}

/// Every route entry of every service bound to the waypoint, in evaluation order per service
/// (first match wins); a bound service without route config has one `Default` entry.
pub fn routes(snap: &Snapshot) -> Vec<RouteView> {
    let mut out = Vec::new();
    for idx in snap.bound_services() {
        let Some(svc) = snap.registry.services.get(idx) else {
            continue;
        };
        let Some(table) = snap.service_routes(idx) else {
            continue;
        };
        let source = match table.source {
            RouteSource::GatewayApi => "GatewayApi",
            RouteSource::VirtualService => "VirtualService",
            RouteSource::Default => "Default",
        };
        let domains = domains(svc);
        let default;
        let entries: Vec<(&RequestMatch, &waypoint_core::route::Rule)> =
            if table.source == RouteSource::Default {
                default = RequestMatch::default();
                vec![(&default, &*table.default_rule)]
            } else {
                table
                    .entries
                    .iter()
                    .map(|e| (&e.matcher, &*e.rule))
                    .collect()
            };
        for (m, rule) in entries {
            let port = m.port.or_else(|| single_port(svc));
            let mut row = RouteView {
                table: "waypoint".into(),
                service: svc.hostname.clone(),
                domains: domains.clone(),
                port: m.port,
                matcher: describe_match(m),
                action: String::new(),
                backends: Vec::new(),
                resource: (rule.id.kind != "default").then(|| rule.id.resource()),
                rule: (rule.id.kind != "default").then(|| rule.id.rule.clone()),
                source: source.into(),
                timeout_ms: None,
                retries: None,
                fault: None,
                mirrors: Vec::new(),
            };
            match &rule.action {
                RuleAction::Forward(f) => {
                    row.action = "forward".into();
                    row.backends = f.backends.iter().map(|b| backend(snap, b, port)).collect();
                    row.timeout_ms = f.timeout.map(|d| d.as_millis() as u64);
                    row.retries = f.retries.as_ref().map(|r| r.attempts);
                    row.fault = f.fault.as_ref().and_then(describe_fault);
                    row.mirrors = f
                        .mirrors
                        .iter()
                        .map(|m| format!("{} {}%", backend_text(&m.backend), m.percent))
                        .collect();
                }
                RuleAction::Redirect(r) => {
                    row.action = "redirect".into();
                    let mut target = String::new();
                    if let Some(s) = &r.scheme {
                        target.push_str(&format!("{s}://"));
                    }
                    if let Some(h) = &r.host {
                        target.push_str(h);
                    }
                    row.matcher = format!("{} -> {} {}", row.matcher, r.status, target)
                        .trim_end()
                        .to_string();
                }
                RuleAction::DirectResponse(d) => {
                    row.action = "direct_response".into();
                    row.matcher = format!("{} -> {}", row.matcher, d.status);
                }
            }
            out.push(row);
        }
    }
    out
}

/// The service's only port, when it has exactly one (then a backend without a port is known).
fn single_port(svc: &ServiceInfo) -> Option<u16> {
    match svc.ports.as_slice() {
        [p] => Some(p.port),
        _ => None,
    }
}

fn domains(svc: &ServiceInfo) -> Vec<String> {
    let mut d = vec![svc.hostname.clone()];
    d.extend(svc.aliases.iter().cloned());
    d.extend(svc.vips.iter().map(|v| v.to_string()));
    d
}

/// A backend with its cluster name: its own port, else the entry's (or the destination
/// service's only) port.
fn backend(snap: &Snapshot, b: &WeightedBackend, entry_port: Option<u16>) -> BackendView {
    let r = &b.backend;
    let port = r.port.or(entry_port).or_else(|| {
        snap.registry
            .index_by_host(&r.host, &r.namespace)
            .and_then(|i| snap.registry.services.get(i))
            .and_then(single_port)
    });
    BackendView {
        host: Some(r.host.clone()),
        namespace: Some(r.namespace.clone()),
        subset: r.subset.clone(),
        port: r.port,
        weight: b.weight,
        cluster: port.map(|p| cluster_name(p, r.subset.as_deref().unwrap_or(""), &r.host)),
        cluster_header: None,
        invalid: b.invalid.clone(),
    }
}

fn backend_text(b: &BackendRef) -> String {
    let mut s = b.host.clone();
    if let Some(p) = b.port {
        s.push_str(&format!(":{p}"));
    }
    if let Some(ss) = &b.subset {
        s.push_str(&format!("/{ss}"));
    }
    s
}

/// The match as text: its conditions joined by ` && `, `*` when it has none.
pub fn describe_match(m: &RequestMatch) -> String {
    let mut parts = Vec::new();
    if let Some(p) = &m.path {
        let case = if m.ignore_uri_case { " (any case)" } else { "" };
        parts.push(format!("path {}{case}", p.describe()));
    }
    if let Some(x) = &m.method {
        parts.push(format!("method {}", x.describe()));
    }
    if let Some(x) = &m.scheme {
        parts.push(format!("scheme {}", x.describe()));
    }
    if let Some(x) = &m.authority {
        parts.push(format!("authority {}", x.describe()));
    }
    for h in &m.headers {
        let what = h
            .matcher
            .as_ref()
            .map_or_else(|| "present".to_string(), |x| x.describe());
        let not = if h.invert { "not " } else { "" };
        parts.push(format!("header {} {not}{what}", h.name));
    }
    for q in &m.query {
        let what = q
            .matcher
            .as_ref()
            .map_or_else(|| "present".to_string(), |x| x.describe());
        parts.push(format!("query {} {what}", q.name));
    }
    if let Some(p) = m.port {
        parts.push(format!("port {p}"));
    }
    if let Some(ns) = &m.source_namespace {
        parts.push(format!("source namespace {ns}"));
    }
    if parts.is_empty() {
        "*".into()
    } else {
        parts.join(" && ")
    }
}

fn describe_fault(f: &Fault) -> Option<String> {
    let mut parts = Vec::new();
    if let Some((d, pct)) = f.delay {
        parts.push(format!("delay {}ms {pct}%", d.as_millis()));
    }
    if let Some(a) = &f.abort {
        parts.push(format!("abort {} {}%", a.http_status, a.percent));
    }
    (!parts.is_empty()).then(|| parts.join(", "))
}

/// Every outbound cluster (one per service, port and DestinationRule subset, for every
/// service of the registry, as the generated Envoy config has them) and its endpoints at their
/// target ports. `trust_domain` makes the identities of mesh endpoints.
pub fn clusters(snap: &Snapshot, trust_domain: &str) -> (Vec<ClusterView>, Vec<EndpointView>) {
    let mut clusters: BTreeMap<String, (ClusterView, Vec<EndpointView>)> = BTreeMap::new();
    for svc in &snap.registry.services {
        let policy = snap.destination_policy(&svc.hostname);
        let mut subsets: Vec<(String, BTreeMap<String, String>)> =
            vec![(String::new(), BTreeMap::new())];
        if let Some(dp) = policy {
            subsets.extend(
                dp.subsets
                    .iter()
                    .map(|(n, s)| (n.clone(), s.labels.clone())),
            );
        }
        for port in &svc.ports {
            for (subset, labels) in &subsets {
                let name = cluster_name(port.port, subset, &svc.hostname);
                if clusters.contains_key(&name) {
                    continue;
                }
                let mut eps: Vec<EndpointView> = svc
                    .endpoints_matching(labels)
                    .map(|e| EndpointView {
                        cluster: name.clone(),
                        address: host_port(&e.ip.to_string(), svc.target_port(port.port, e)),
                        hbone: e.mesh,
                        istio_mtls: e.sidecar && !e.mesh,
                        identity: e.service_account.as_ref().map(|sa| {
                            format!("spiffe://{trust_domain}/ns/{}/sa/{sa}", e.namespace)
                        }),
                        health: None,
                    })
                    .collect();
                eps.sort_by(|a, b| a.address.cmp(&b.address));
                eps.dedup_by(|a, b| a.address == b.address);
                let view = ClusterView {
                    name: name.clone(),
                    service: Some(svc.hostname.clone()),
                    port: Some(port.port),
                    subset: (!subset.is_empty()).then(|| subset.clone()),
                    direction: Some("outbound".into()),
                    kind: None,
                    protocol: Some(port.protocol.clone()),
                    destination_rule: policy.map(|p| p.source.clone()),
                    endpoints: eps.len(),
                };
                clusters.insert(name, (view, eps));
            }
        }
    }
    ordered(clusters.into_values().collect())
}

/// Clusters ordered by service, port and subset (the whole service first), other clusters
/// by name; endpoints in the order of their clusters.
pub fn ordered(
    mut list: Vec<(ClusterView, Vec<EndpointView>)>,
) -> (Vec<ClusterView>, Vec<EndpointView>) {
    list.sort_by(|(a, _), (b, _)| {
        let key = |c: &ClusterView| {
            (
                c.service.clone().unwrap_or_else(|| c.name.clone()),
                c.port,
                c.subset.clone(),
                c.name.clone(),
            )
        };
        key(a).cmp(&key(b))
    });
    let mut cs = Vec::with_capacity(list.len());
    let mut es = Vec::new();
    for (c, e) in list {
        cs.push(c);
        es.extend(e);
    }
    (cs, es)
}

/// `ip:port`, with brackets for IPv6.
pub fn host_port(ip: &str, port: u16) -> String {
    if ip.contains(':') {
        format!("[{ip}]:{port}")
    } else {
        format!("{ip}:{port}")
    }
}

/// Every compiled AuthorizationPolicy, ordered by namespace and name.
pub fn policies(snap: &Snapshot) -> Vec<PolicyView> {
    let mut out: Vec<PolicyView> = snap.policies().iter().map(policy).collect();
    out.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    out
}

fn policy(p: &CompiledPolicy) -> PolicyView {
    let targets = match &p.targets {
        PolicyTargets::Refs(refs) => refs
            .iter()
            .map(|t| format!("{}/{}/{}", t.kind, t.namespace, t.name))
            .collect(),
        PolicyTargets::Selector => vec!["selector".into()],
        PolicyTargets::Unscoped => vec!["namespace".into()],
        PolicyTargets::Unknown => vec!["unknown".into()],
    };
    PolicyView {
        name: p.id.name.clone(),
        namespace: p.id.namespace.clone(),
        action: p.action.to_string(),
        dry_run: p.dry_run,
        targets,
        rules: p.rule_count(),
        provider: p.provider.clone(),
        fail_closed: p.is_fail_closed(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use waypoint_core::BuildOptions;

    const CONFIG: &str = concat!(
        waypoint_core::waypoint_gateway_yaml!("default"),
        r#"apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: default, labels: {istio.io/use-waypoint: waypoint}}
spec: {clusterIP: 10.96.0.12, ports: [{name: http, port: 9080, targetPort: 9081}], selector: {app: reviews}}
---
apiVersion: v1
kind: Pod
metadata: {name: reviews-v1, namespace: default, labels: {app: reviews, version: v1}}
spec: {serviceAccountName: bookinfo-reviews}
status: {podIP: 10.1.0.1}
---
apiVersion: v1
kind: Pod
metadata: {name: reviews-v3, namespace: default, labels: {app: reviews, version: v3}}
spec: {serviceAccountName: bookinfo-reviews}
status: {podIP: 10.1.0.3}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: default}
spec: {host: reviews, subsets: [{name: v1, labels: {version: v1}}, {name: v3, labels: {version: v3}}]}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews]
  http:
  - name: jason
    match: [{headers: {end-user: {exact: jason}}}]
    route: [{destination: {host: reviews, subset: v3}}]
  - name: canary
    route:
    - {destination: {host: reviews, subset: v1}, weight: 75}
    - {destination: {host: reviews, subset: v3}, weight: 25}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: reviews-viewer, namespace: default}
spec:
  targetRefs: [{kind: Service, group: "", name: reviews}]
  action: ALLOW
  rules: [{to: [{operation: {methods: [GET]}}]}]
"#
    );

    fn snapshot() -> Snapshot {
        let loaded = waypoint_loader::load_text(CONFIG, "test", "default");
        assert!(loaded.errors.is_empty(), "{:?}", loaded.errors);
        let (snap, diags) = loaded.build(&BuildOptions::default());
        assert!(diags.errors.is_empty(), "{:?}", diags.errors);
        snap
    }

    #[test]
    fn routes_show_matches_and_every_weight() {
        let snap = snapshot();
        let r = routes(&snap);
        let host = "reviews.default.svc.cluster.local";
        assert_eq!(r.len(), 2, "{r:#?}");
        assert_eq!(r[0].service, host);
        assert_eq!(r[0].matcher, "header end-user exact \"jason\"");
        assert_eq!(r[0].rule.as_deref(), Some("jason"));
        assert_eq!(r[0].backends.len(), 1);
        assert_eq!(r[0].backends[0].weight, 100);
        assert_eq!(r[1].matcher, "*");
        assert_eq!(
            r[1].resource.as_deref(),
            Some("VirtualService/default/reviews")
        );
        let split: Vec<(Option<&str>, u32, Option<&str>)> = r[1]
            .backends
            .iter()
            .map(|b| (b.subset.as_deref(), b.weight, b.cluster.as_deref()))
            .collect();
        assert_eq!(
            split,
            vec![
                (
                    Some("v1"),
                    75,
                    Some("outbound|9080|v1|reviews.default.svc.cluster.local")
                ),
                (
                    Some("v3"),
                    25,
                    Some("outbound|9080|v3|reviews.default.svc.cluster.local")
                ),
            ]
        );
        assert!(r[0].domains.contains(&"10.96.0.12".to_string()));
    }

    #[test]
    fn clusters_per_subset_with_target_port_endpoints() {
        let snap = snapshot();
        let (cs, es) = clusters(&snap, "cluster.local");
        let names: Vec<&str> = cs.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(
            names,
            vec![
                "outbound|9080||reviews.default.svc.cluster.local",
                "outbound|9080|v1|reviews.default.svc.cluster.local",
                "outbound|9080|v3|reviews.default.svc.cluster.local",
            ]
        );
        assert_eq!(cs[0].endpoints, 2);
        assert_eq!(cs[1].endpoints, 1);
        assert_eq!(cs[1].subset.as_deref(), Some("v1"));
        assert_eq!(
            cs[1].destination_rule.as_deref(),
            Some("DestinationRule/default/reviews")
        );
        let v3: Vec<&EndpointView> = es
            .iter()
            .filter(|e| e.cluster == "outbound|9080|v3|reviews.default.svc.cluster.local")
            .collect();
        assert_eq!(v3.len(), 1);
        assert_eq!(v3[0].address, "10.1.0.3:9081");
        assert_eq!(
            v3[0].identity.as_deref(),
            Some("spiffe://cluster.local/ns/default/sa/bookinfo-reviews")
        );
    }

    #[test]
    fn policies_with_targets() {
        let snap = snapshot();
        let p = policies(&snap);
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].name, "reviews-viewer");
        assert_eq!(p[0].action, "ALLOW");
        assert_eq!(p[0].targets, vec!["Service/default/reviews".to_string()]);
        assert_eq!(p[0].rules, 1);
        assert!(!p[0].fail_closed);
    }
}

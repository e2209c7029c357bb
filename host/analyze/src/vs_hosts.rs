//! VirtualService hosts a waypoint never uses: hosts naming no service (WPA0007), and services
//! whose waypoint skips the VirtualService for its namespace (WPA0001).

use serde_json::Value;
use waypoint_core::istio::hosts::{host_matches, resolve_short_name};
use waypoint_core::istio::MESH_GATEWAY;

use crate::catalogue::{IGNORED_BY_WAYPOINT, VIRTUAL_SERVICE_HOST_UNUSED};
use crate::context::Context;
use crate::message::{Message, ResourceRef};

fn strings(v: Option<&Value>) -> Vec<&str> {
    v.and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

/// A waypoint takes a VirtualService for a service only from the service's or its own
/// namespace (pilot `getVirtualServiceForWaypoint`): name the bound services it skips.
fn wrong_namespace(
    ctx: &Context<'_>,
    vs: &waypoint_core::resource::RawResource,
    host: &str,
    out: &mut Vec<Message>,
) {
    for snap in &ctx.snapshots {
        let Some(w) = &snap.waypoint else { continue };
        for i in snap.bound_services() {
            let s = &snap.registry.services[i];
            let matches =
                host_matches(host, &s.hostname) || s.aliases.iter().any(|a| host_matches(host, a));
            if matches && vs.namespace != s.namespace && vs.namespace != w.namespace {
                out.push(Message::new(
                    IGNORED_BY_WAYPOINT,
                    Some(ResourceRef::new(&vs.kind, &vs.namespace, &vs.name)),
                    format!(
                        "spec.hosts: not applied to {}: its waypoint {}/{} takes VirtualServices only from the service's namespace ({}) or its own ({})",
                        s.hostname, w.namespace, w.name, s.namespace, w.namespace
                    ),
                ));
            }
        }
    }
}

pub fn analyze(ctx: &Context<'_>) -> Vec<Message> {
    let mut out = Vec::new();
    let reg = ctx.registry();
    for vs in ctx.of_kind("networking.istio.io", "VirtualService") {
        let spec = vs.value.get("spec");
        let gateways = strings(spec.and_then(|s| s.get("gateways")));
        if !gateways.is_empty() && !gateways.contains(&MESH_GATEWAY) {
            continue; // not for the mesh: the core says so
        }
        for h in strings(spec.and_then(|s| s.get("hosts"))) {
            let resolved = resolve_short_name(h, &vs.namespace);
            let used = reg.services.iter().any(|s| {
                host_matches(&resolved, &s.hostname)
                    || s.aliases.iter().any(|a| host_matches(&resolved, a))
            });
            if used {
                wrong_namespace(ctx, vs, &resolved, &mut out);
                continue;
            }
            // `name.namespace` and the like reach a service through DNS, not in Istio's host
            // matching: say which FQDN was probably meant.
            let hint = reg
                .index_by_host(h, &vs.namespace)
                .map(|i| {
                    format!(
                        " (Istio matches dotted hosts literally; the service is {:?})",
                        reg.services[i].hostname
                    )
                })
                .unwrap_or_default();
            out.push(Message::new(
                VIRTUAL_SERVICE_HOST_UNUSED,
                Some(ResourceRef::new(&vs.kind, &vs.namespace, &vs.name)),
                format!(
                    "VirtualService host {h:?} matches no Service or ServiceEntry of the config{hint}; no waypoint applies the VirtualService to it."
                ),
            ));
        }
    }
    // Two hosts (`reviews`, `*.shop...`) may cover one service: say it once.
    let mut seen = std::collections::BTreeSet::new();
    out.retain(|m| seen.insert(m.to_string()));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::messages_of;

    #[test]
    fn a_virtual_service_from_a_third_namespace_is_skipped() {
        let got = messages_of(
            analyze,
            r#"
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: from-elsewhere, namespace: frontend}
spec:
  hosts: [reviews.shop.svc.cluster.local, '*.shop.svc.cluster.local']
  http: [{route: [{destination: {host: reviews.shop.svc.cluster.local}}]}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: local, namespace: shop}
spec:
  hosts: [reviews]
  http: [{route: [{destination: {host: reviews}}]}]
"#,
        );
        assert_eq!(
            got,
            [
                "Warning [WPA0001] (VirtualService frontend/from-elsewhere) spec.hosts: not applied to ratings.shop.svc.cluster.local: its waypoint shop/waypoint takes VirtualServices only from the service's namespace (shop) or its own (shop)",
                "Warning [WPA0001] (VirtualService frontend/from-elsewhere) spec.hosts: not applied to reviews.shop.svc.cluster.local: its waypoint shop/waypoint takes VirtualServices only from the service's namespace (shop) or its own (shop)",
            ]
        );
    }

    #[test]
    fn hosts_without_a_service() {
        let got = messages_of(
            analyze,
            r#"
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: typo, namespace: shop}
spec:
  hosts: [reviews, reveiws, reviews.shop, '*.shop.svc.cluster.local', '*.example.com']
  http: [{route: [{destination: {host: reviews}}]}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: edge, namespace: shop}
spec:
  hosts: [nowhere]
  gateways: [shop/ingress]
  http: [{route: [{destination: {host: reviews}}]}]
"#,
        );
        assert_eq!(
            got,
            [
                r#"Info [WPA0007] (VirtualService shop/typo) VirtualService host "*.example.com" matches no Service or ServiceEntry of the config; no waypoint applies the VirtualService to it."#,
                r#"Info [WPA0007] (VirtualService shop/typo) VirtualService host "reveiws" matches no Service or ServiceEntry of the config; no waypoint applies the VirtualService to it."#,
                r#"Info [WPA0007] (VirtualService shop/typo) VirtualService host "reviews.shop" matches no Service or ServiceEntry of the config (Istio matches dotted hosts literally; the service is "reviews.shop.svc.cluster.local"); no waypoint applies the VirtualService to it."#,
            ]
        );
    }
}

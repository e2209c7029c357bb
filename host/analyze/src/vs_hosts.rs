//! VirtualService hosts that name no service of the config (WPA0007): a waypoint picks
//! VirtualServices by the service it serves, so such a host is never used by one.

use serde_json::Value;
use waypoint_core::istio::hosts::{host_matches, resolve_short_name};
use waypoint_core::istio::MESH_GATEWAY;

use crate::catalogue::VIRTUAL_SERVICE_HOST_UNUSED;
use crate::context::Context;
use crate::message::{Message, ResourceRef};

fn strings(v: Option<&Value>) -> Vec<&str> {
    v.and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
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
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::messages_of;

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

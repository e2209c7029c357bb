//! Destinations and DestinationRules: subsets a VirtualService names that no DestinationRule
//! defines (IST0101), DestinationRule hosts that are no service (IST0174), subsets without pods (IST0173).

use std::collections::BTreeMap;

use serde_json::Value;
use waypoint_core::resource::RawResource;
use waypoint_core::service::ServiceInfo;

use crate::catalogue::{
    DESTINATION_RULE_SUBSET_NOT_SELECT_PODS, REFERENCED_RESOURCE_NOT_FOUND,
    UNKNOWN_DESTINATION_RULE_HOST,
};
use crate::context::Context;
use crate::message::{Message, ResourceRef};

fn resource(r: &RawResource) -> ResourceRef {
    ResourceRef::new(&r.kind, &r.namespace, &r.name)
}

/// Every `destination` of a VirtualService's HTTP rules (routes and mirrors), with its kind.
fn destinations(vs: &Value) -> Vec<(&'static str, &Value)> {
    let mut out = Vec::new();
    for rule in vs
        .pointer("/spec/http")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        for d in rule
            .get("route")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(d) = d.get("destination") {
                out.push(("host+subset", d));
            }
        }
        if let Some(m) = rule.get("mirror") {
            out.push(("mirror+subset", m));
        }
        for m in rule
            .get("mirrors")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(d) = m.get("destination") {
                out.push(("mirror+subset", d));
            }
        }
    }
    out
}

/// Subsets named by VirtualServices that the waypoint's merged DestinationRules for the host do
/// not define (the request would get 503). Unknown hosts are the core's finding (IST0101 host).
fn undefined_subsets(ctx: &Context<'_>, out: &mut Vec<Message>) {
    let snap = &ctx.snapshots[0];
    for vs in ctx.of_kind("networking.istio.io", "VirtualService") {
        for (what, d) in destinations(&vs.value) {
            let (Some(host), Some(subset)) = (
                d.get("host").and_then(Value::as_str),
                d.get("subset").and_then(Value::as_str),
            ) else {
                continue;
            };
            let Some(idx) = snap.registry.index_by_host(host, &vs.namespace) else {
                continue;
            };
            let svc = &snap.registry.services[idx];
            let defined = snap
                .destination_policy(&svc.hostname)
                .or_else(|| snap.destination_policy(host))
                .is_some_and(|p| p.subsets.contains_key(subset));
            if !defined {
                out.push(Message::new(
                    REFERENCED_RESOURCE_NOT_FOUND,
                    Some(resource(vs)),
                    format!("Referenced {what} in destinationrule not found: \"{host}+{subset}\""),
                ));
            }
        }
    }
}

/// The service a DestinationRule host names, `None` for wildcards (not checked).
fn dr_service<'c>(
    ctx: &'c Context<'_>,
    dr: &RawResource,
) -> Option<Result<&'c ServiceInfo, String>> {
    let host = dr.value.pointer("/spec/host").and_then(Value::as_str)?;
    if host.contains('*') {
        return None;
    }
    let reg = ctx.registry();
    Some(
        reg.index_by_host(host, &dr.namespace)
            .map(|i| &reg.services[i])
            .ok_or_else(|| host.to_string()),
    )
}

fn destination_rules(ctx: &Context<'_>, out: &mut Vec<Message>) {
    for dr in ctx.of_kind("networking.istio.io", "DestinationRule") {
        let svc = match dr_service(ctx, dr) {
            None => continue,
            Some(Err(host)) => {
                out.push(Message::new(
                    UNKNOWN_DESTINATION_RULE_HOST,
                    Some(resource(dr)),
                    format!("The host {host} defined in the DestinationRule does not match any services in the mesh."),
                ));
                continue;
            }
            Some(Ok(svc)) => svc,
        };
        // Without any endpoint in the config, which pods exist is unknown; an endpoint
        // without labels (an EndpointSlice address whose Pod the config lacks) may be any
        // version: say nothing then either.
        if svc.endpoints.is_empty() || svc.endpoints.iter().any(|e| e.labels.is_empty()) {
            continue;
        }
        for s in dr
            .value
            .pointer("/spec/subsets")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let Some(name) = s.get("name").and_then(Value::as_str) else {
                continue;
            };
            let labels: BTreeMap<String, String> = s
                .get("labels")
                .and_then(Value::as_object)
                .map(|o| {
                    o.iter()
                        .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                        .collect()
                })
                .unwrap_or_default();
            if svc.endpoints_matching(&labels).next().is_none() {
                out.push(Message::new(
                    DESTINATION_RULE_SUBSET_NOT_SELECT_PODS,
                    Some(resource(dr)),
                    format!("The Subset {name} defined in the DestinationRule does not select any pods. Which may lead to 503 UH (NoHealthyUpstream)."),
                ));
            }
        }
    }
}

pub fn analyze(ctx: &Context<'_>) -> Vec<Message> {
    let mut out = Vec::new();
    undefined_subsets(ctx, &mut out);
    destination_rules(ctx, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::messages_of;

    #[test]
    fn subsets_hosts_and_pods() {
        let got = messages_of(
            analyze,
            r#"
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: shop}
spec:
  host: reviews
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
  - {name: v3, labels: {version: v3}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: gone, namespace: shop}
spec: {host: gone}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: wild, namespace: shop}
spec: {host: '*.example.com'}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: ratings, namespace: shop}
spec: {host: ratings.shop.svc.cluster.local, subsets: [{name: v1, labels: {version: v1}}]}
---
apiVersion: v1
kind: Service
metadata: {name: details, namespace: shop}
spec: {clusterIP: 10.96.0.3, ports: [{name: http, port: 9080}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: details-1, namespace: shop, labels: {kubernetes.io/service-name: details}}
addressType: IPv4
endpoints: [{addresses: [10.1.0.9]}]
ports: [{name: http, port: 9080}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: details, namespace: shop}
spec: {host: details, subsets: [{name: v1, labels: {version: v1}}]}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: shop}
spec:
  hosts: [reviews]
  http:
  - route:
    - {destination: {host: reviews, subset: v1}, weight: 50}
    - {destination: {host: reviews, subset: v4}, weight: 50}
    mirror: {host: ratings, subset: v2}
  - route: [{destination: {host: nowhere, subset: v1}}]
"#,
        );
        // ratings has no pods in the config, and details' only endpoint (an EndpointSlice
        // address) has no known Pod: their subsets are not judged.
        assert_eq!(
            got,
            [
                r#"Error [IST0101] (VirtualService shop/reviews) Referenced host+subset in destinationrule not found: "reviews+v4""#,
                r#"Error [IST0101] (VirtualService shop/reviews) Referenced mirror+subset in destinationrule not found: "ratings+v2""#,
                r#"Error [IST0173] (DestinationRule shop/reviews) The Subset v3 defined in the DestinationRule does not select any pods. Which may lead to 503 UH (NoHealthyUpstream)."#,
                r#"Warning [IST0174] (DestinationRule shop/gone) The host gone defined in the DestinationRule does not match any services in the mesh."#,
            ]
        );
    }
}

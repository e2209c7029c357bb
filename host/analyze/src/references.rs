//! References to objects the config does not hold (IST0101): AuthorizationPolicy targetRefs,
//! route parentRefs, and `istio.io/use-waypoint` labels naming a missing Gateway.

use std::collections::BTreeSet;

use serde_json::Value;
use waypoint_core::resource::RawResource;
use waypoint_core::service::ServiceKind;

use crate::catalogue::REFERENCED_RESOURCE_NOT_FOUND;
use crate::context::Context;
use crate::message::{Message, ResourceRef};

const GATEWAY_GROUP: &str = "gateway.networking.k8s.io";

/// What a reference names: Service, ServiceEntry or Gateway; `None` for kinds not checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    Service,
    ServiceEntry,
    Gateway,
}

fn target(group: &str, kind: &str) -> Option<Target> {
    match (group, kind) {
        ("" | "core", "Service") => Some(Target::Service),
        ("networking.istio.io", "ServiceEntry") => Some(Target::ServiceEntry),
        (GATEWAY_GROUP, "Gateway") => Some(Target::Gateway),
        _ => None,
    }
}

/// The config's objects references are checked against.
struct Known {
    gateways: BTreeSet<(String, String)>,
}

impl Known {
    fn new(ctx: &Context<'_>) -> Known {
        Known {
            gateways: ctx
                .of_kind(GATEWAY_GROUP, "Gateway")
                .map(|g| (g.namespace.clone(), g.name.clone()))
                .collect(),
        }
    }

    fn exists(&self, ctx: &Context<'_>, t: Target, ns: &str, name: &str) -> bool {
        let reg = ctx.registry();
        match t {
            Target::Gateway => self.gateways.contains(&(ns.to_string(), name.to_string())),
            Target::Service | Target::ServiceEntry => {
                let kind = if t == Target::Service {
                    ServiceKind::Service
                } else {
                    ServiceKind::ServiceEntry
                };
                reg.services
                    .iter()
                    .any(|s| s.kind == kind && s.namespace == ns && s.name == name)
            }
        }
    }
}

fn resource(r: &RawResource) -> ResourceRef {
    ResourceRef::new(&r.kind, &r.namespace, &r.name)
}

fn str_of<'v>(v: &'v Value, key: &str) -> Option<&'v str> {
    v.get(key).and_then(Value::as_str)
}

/// Every reference of `field` (an array, or `single` as one object) of `r`'s spec:
/// (group, kind, namespace, name) with the Gateway API defaults.
fn refs(
    r: &RawResource,
    field: &str,
    single: Option<&str>,
    default_group: &str,
    default_kind: &str,
) -> Vec<(String, String, String, String)> {
    let spec = r.value.get("spec");
    let mut items: Vec<&Value> = spec
        .and_then(|s| s.get(field))
        .and_then(Value::as_array)
        .map(|a| a.iter().collect())
        .unwrap_or_default();
    if let Some(one) = single.and_then(|f| spec.and_then(|s| s.get(f))) {
        items.push(one);
    }
    items
        .into_iter()
        .filter_map(|v| {
            let name = str_of(v, "name")?.to_string();
            let group = str_of(v, "group").unwrap_or(default_group).to_string();
            let kind = str_of(v, "kind").unwrap_or(default_kind).to_string();
            let ns = str_of(v, "namespace")
                .filter(|n| !n.is_empty())
                .unwrap_or(&r.namespace)
                .to_string();
            Some((group, kind, ns, name))
        })
        .collect()
}

fn check(
    ctx: &Context<'_>,
    known: &Known,
    r: &RawResource,
    what: &str,
    list: Vec<(String, String, String, String)>,
    out: &mut Vec<Message>,
) {
    for (group, kind, ns, name) in list {
        let Some(t) = target(&group, &kind) else {
            continue;
        };
        if !known.exists(ctx, t, &ns, &name) {
            out.push(Message::new(
                REFERENCED_RESOURCE_NOT_FOUND,
                Some(resource(r)),
                format!("Referenced {what} not found: \"{kind} {ns}/{name}\""),
            ));
        }
    }
}

/// The Gateway an `istio.io/use-waypoint` label on `r` names, if any.
fn waypoint_label(r: &RawResource) -> Option<(String, String)> {
    let name = r.labels.get("istio.io/use-waypoint")?;
    if name.is_empty() || name == "none" {
        return None;
    }
    let own_ns = if r.kind == "Namespace" {
        &r.name
    } else {
        &r.namespace
    };
    let ns = r
        .labels
        .get("istio.io/use-waypoint-namespace")
        .filter(|n| !n.is_empty())
        .unwrap_or(own_ns);
    Some((ns.clone(), name.clone()))
}

pub fn analyze(ctx: &Context<'_>) -> Vec<Message> {
    let known = Known::new(ctx);
    let mut out = Vec::new();
    for p in ctx.of_kind("security.istio.io", "AuthorizationPolicy") {
        let list = refs(p, "targetRefs", Some("targetRef"), "", "");
        check(ctx, &known, p, "targetRef", list, &mut out);
    }
    for kind in ["HTTPRoute", "GRPCRoute"] {
        for route in ctx.of_kind(GATEWAY_GROUP, kind) {
            let list = refs(route, "parentRefs", None, GATEWAY_GROUP, "Gateway");
            check(ctx, &known, route, "parentRef", list, &mut out);
        }
    }
    for r in ctx.resources.iter().filter(|r| {
        r.group().is_empty() && matches!(r.kind.as_str(), "Namespace" | "Service" | "Pod")
            || (r.group() == "networking.istio.io" && r.kind == "ServiceEntry")
    }) {
        if let Some((ns, name)) = waypoint_label(r) {
            if !known.gateways.contains(&(ns.clone(), name.clone())) {
                out.push(Message::new(
                    REFERENCED_RESOURCE_NOT_FOUND,
                    Some(resource(r)),
                    format!("Referenced waypoint (label istio.io/use-waypoint) not found: \"Gateway {ns}/{name}\""),
                ));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::messages_of;

    #[test]
    fn dangling_target_parent_and_waypoint_references() {
        let got = messages_of(
            analyze,
            r#"
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: p, namespace: shop}
spec:
  targetRefs:
  - {kind: Service, group: '', name: reviews}
  - {kind: Service, group: '', name: gone}
  - {kind: Gateway, group: gateway.networking.k8s.io, name: waypoint}
  - {kind: Gateway, group: gateway.networking.k8s.io, name: other-gw}
  - {kind: GatewayClass, group: gateway.networking.k8s.io, name: istio-waypoint}
  rules: [{}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r, namespace: shop}
spec:
  parentRefs: [{group: '', kind: Service, name: reviews}, {name: missing-gw}, {group: '', kind: Service, name: ratings, namespace: elsewhere}]
  rules: [{backendRefs: [{name: reviews, port: 9080}]}]
---
apiVersion: v1
kind: Namespace
metadata: {name: other, labels: {istio.io/use-waypoint: wp}}
---
apiVersion: v1
kind: Service
metadata: {name: opted-out, namespace: shop, labels: {istio.io/use-waypoint: none}}
spec: {clusterIP: 10.96.0.9, ports: [{name: http, port: 80}]}
---
apiVersion: v1
kind: Service
metadata: {name: elsewhere, namespace: shop, labels: {istio.io/use-waypoint: waypoint, istio.io/use-waypoint-namespace: infra}}
spec: {clusterIP: 10.96.0.10, ports: [{name: http, port: 80}]}
"#,
        );
        assert_eq!(
            got,
            [
                r#"Error [IST0101] (AuthorizationPolicy shop/p) Referenced targetRef not found: "Gateway shop/other-gw""#,
                r#"Error [IST0101] (AuthorizationPolicy shop/p) Referenced targetRef not found: "Service shop/gone""#,
                r#"Error [IST0101] (HTTPRoute shop/r) Referenced parentRef not found: "Gateway shop/missing-gw""#,
                r#"Error [IST0101] (HTTPRoute shop/r) Referenced parentRef not found: "Service elsewhere/ratings""#,
                r#"Error [IST0101] (Namespace other) Referenced waypoint (label istio.io/use-waypoint) not found: "Gateway other/wp""#,
                r#"Error [IST0101] (Service shop/elsewhere) Referenced waypoint (label istio.io/use-waypoint) not found: "Gateway infra/waypoint""#,
            ]
        );
    }
}

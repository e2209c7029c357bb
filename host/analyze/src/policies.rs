//! AuthorizationPolicies nothing enforces: targetRefs to a service no waypoint serves
//! (IST0167), and L7 rules in selector or namespace-wide policies a waypoint ignores (WPA0005).

use serde_json::Value;
use waypoint_core::authz::PolicyTargets;
use waypoint_core::resource::RawResource;

use crate::catalogue::{INEFFECTIVE_POLICY, SELECTOR_POLICY_IGNORED};
use crate::context::Context;
use crate::message::{Message, ResourceRef};

/// The L7 attributes a policy's rules use (ztunnel enforces only L4 ones).
fn l7_attributes(p: &RawResource) -> Vec<String> {
    let mut found: Vec<String> = Vec::new();
    let mut add = |s: &str| {
        if !found.iter().any(|f| f == s) {
            found.push(s.to_string());
        }
    };
    for rule in p
        .value
        .pointer("/spec/rules")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        for to in rule
            .get("to")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(op) = to.get("operation").and_then(Value::as_object) {
                for k in [
                    "hosts",
                    "notHosts",
                    "methods",
                    "notMethods",
                    "paths",
                    "notPaths",
                ] {
                    if op.contains_key(k) {
                        add(k);
                    }
                }
            }
        }
        for from in rule
            .get("from")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(src) = from.get("source").and_then(Value::as_object) {
                for k in ["requestPrincipals", "notRequestPrincipals"] {
                    if src.contains_key(k) {
                        add(k);
                    }
                }
            }
        }
        for when in rule
            .get("when")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(key) = when.get("key").and_then(Value::as_str) {
                if key.starts_with("request.") {
                    add(key);
                }
            }
        }
    }
    found
}

pub fn analyze(ctx: &Context<'_>) -> Vec<Message> {
    let mut out = Vec::new();
    if ctx.waypoints.is_empty() {
        return out;
    }
    let snap = &ctx.snapshots[0];
    let reg = ctx.registry();
    let ns_has_bound = |ns: &str| {
        reg.services
            .iter()
            .enumerate()
            .any(|(i, s)| s.namespace == ns && ctx.is_bound(i))
    };
    for p in snap.policies() {
        let r = ResourceRef::new("AuthorizationPolicy", &p.id.namespace, &p.id.name);
        match &p.targets {
            PolicyTargets::Refs(refs) => {
                for t in refs {
                    if !matches!(
                        (t.group.as_str(), t.kind.as_str()),
                        ("", "Service") | ("networking.istio.io", "ServiceEntry")
                    ) {
                        continue;
                    }
                    let Some(i) = reg.index_by_name(&t.namespace, &t.name) else {
                        continue; // dangling: reported by `references`
                    };
                    if !ctx.is_bound(i) {
                        out.push(Message::new(
                            INEFFECTIVE_POLICY,
                            Some(r.clone()),
                            format!(
                                "The policy has no impact: its target {} {}/{} uses no waypoint of the config (istio.io/use-waypoint on it or its namespace), and only waypoints enforce targetRefs to services.",
                                t.kind, t.namespace, t.name
                            ),
                        ));
                    }
                }
            }
            PolicyTargets::Selector | PolicyTargets::Unscoped => {
                if !ns_has_bound(&p.id.namespace) {
                    continue;
                }
                let Some(raw) = ctx
                    .of_kind("security.istio.io", "AuthorizationPolicy")
                    .find(|x| x.namespace == p.id.namespace && x.name == p.id.name)
                else {
                    continue;
                };
                let l7 = l7_attributes(raw);
                if l7.is_empty() {
                    continue;
                }
                let how = if p.targets == PolicyTargets::Selector {
                    "a selector"
                } else {
                    "neither targetRefs nor a selector (namespace-wide)"
                };
                out.push(Message::new(
                    SELECTOR_POLICY_IGNORED,
                    Some(r),
                    format!(
                        "The policy uses {how}, which the waypoint ignores, and L7 attributes ({}) that ztunnel cannot enforce; use targetRefs to the Service or the waypoint Gateway.",
                        l7.join(", ")
                    ),
                ));
            }
            PolicyTargets::Unknown => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::messages_of;

    #[test]
    fn ignored_and_ineffective_policies() {
        let got = messages_of(
            analyze,
            r#"
apiVersion: v1
kind: Service
metadata: {name: unbound, namespace: shop, labels: {istio.io/use-waypoint: none}}
spec: {clusterIP: 10.96.0.9, ports: [{name: http, port: 80}]}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: on-unbound, namespace: shop}
spec:
  targetRefs: [{kind: Service, group: '', name: unbound}, {kind: Service, group: '', name: reviews}]
  rules: [{to: [{operation: {paths: [/x]}}]}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: by-selector, namespace: shop}
spec:
  selector: {matchLabels: {app: reviews}}
  action: DENY
  rules: [{to: [{operation: {methods: [POST], paths: [/admin]}}], when: [{key: 'request.headers[x]', values: [a]}]}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: l4-only, namespace: shop}
spec:
  selector: {matchLabels: {app: reviews}}
  rules: [{from: [{source: {principals: [cluster.local/ns/shop/sa/a]}}]}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: namespace-wide, namespace: shop}
spec:
  rules: [{to: [{operation: {paths: [/x]}}]}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: no-waypoint-here, namespace: other}
spec:
  selector: {matchLabels: {app: x}}
  rules: [{to: [{operation: {paths: [/x]}}]}]
"#,
        );
        assert_eq!(
            got,
            [
                "Warning [IST0167] (AuthorizationPolicy shop/on-unbound) The policy has no impact: its target Service shop/unbound uses no waypoint of the config (istio.io/use-waypoint on it or its namespace), and only waypoints enforce targetRefs to services.",
                "Warning [WPA0005] (AuthorizationPolicy shop/by-selector) The policy uses a selector, which the waypoint ignores, and L7 attributes (methods, paths, request.headers[x]) that ztunnel cannot enforce; use targetRefs to the Service or the waypoint Gateway.",
                "Warning [WPA0005] (AuthorizationPolicy shop/namespace-wide) The policy uses neither targetRefs nor a selector (namespace-wide), which the waypoint ignores, and L7 attributes (paths) that ztunnel cannot enforce; use targetRefs to the Service or the waypoint Gateway.",
            ]
        );
    }
}

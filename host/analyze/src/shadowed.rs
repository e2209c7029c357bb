//! Shadowed rules in the route table the waypoint serves for each bound service (first match
//! wins): a rule whose every match an earlier entry already takes, across resources too.

use std::collections::BTreeSet;

use waypoint_core::route::{RouteEntry, RuleId};

use crate::catalogue::{
    ROUTE_RULE_SHADOWED, VIRTUAL_SERVICE_INEFFECTIVE_MATCH, VIRTUAL_SERVICE_UNREACHABLE_RULE,
};
use crate::context::Context;
use crate::cover::{covers, describe, identical};
use crate::message::{Message, MessageType, ResourceRef};

/// Istio's rule label: a name quoted, an index as `#i`.
fn label(id: &RuleId) -> String {
    if !id.rule.is_empty() && id.rule.bytes().all(|b| b.is_ascii_digit()) {
        format!("#{}", id.rule)
    } else {
        format!("{:?}", id.rule)
    }
}

fn same_resource(a: &RuleId, b: &RuleId) -> bool {
    a.kind == b.kind && a.namespace == b.namespace && a.name == b.name
}

/// Who shadows entry `j`: the first earlier entry taking every request it takes, unless that
/// is the same rule (no effect) or an identical match of the same VirtualService (reported
/// by `vs_rules` in Istio's words).
fn shadower(entries: &[RouteEntry], j: usize) -> Option<Result<usize, ()>> {
    let b = &entries[j];
    let i = (0..j).find(|&i| covers(&entries[i].matcher, &b.matcher))?;
    let a = &entries[i];
    let (ia, ib) = (&a.rule.id, &b.rule.id);
    if ia == ib
        || (ia.kind == "VirtualService"
            && same_resource(ia, ib)
            && identical(&a.matcher, &b.matcher))
    {
        return Some(Err(()));
    }
    Some(Ok(i))
}

/// The shadowing found in one table (one bound service).
fn table(host: &str, entries: &[RouteEntry], out: &mut Vec<Message>) {
    // Rules in table order, each with its entries.
    let mut rules: Vec<(&RuleId, Vec<usize>)> = Vec::new();
    for (j, e) in entries.iter().enumerate() {
        match rules.iter_mut().find(|(id, _)| **id == e.rule.id) {
            Some((_, v)) => v.push(j),
            None => rules.push((&e.rule.id, vec![j])),
        }
    }
    for (id, js) in rules {
        let found: Vec<(usize, Option<Result<usize, ()>>)> =
            js.iter().map(|&j| (j, shadower(entries, j))).collect();
        let reported: Vec<(usize, usize)> = found
            .iter()
            .filter_map(|(j, s)| match s {
                Some(Ok(i)) => Some((*j, *i)),
                _ => None,
            })
            .collect();
        if reported.is_empty() {
            continue;
        }
        let all = found.iter().all(|(_, s)| s.is_some());
        let r = ResourceRef::new(id.kind, &id.namespace, &id.name);
        let by = |i: usize| {
            let a = &entries[i].rule.id;
            if same_resource(a, id) {
                format!("rule {}", label(a))
            } else {
                format!(
                    "rule {} of {} (before it for host {host})",
                    label(a),
                    ResourceRef::new(a.kind, &a.namespace, &a.name)
                )
            }
        };
        let vs = id.kind == "VirtualService";
        let push = |out: &mut Vec<Message>, t: MessageType, text: String| {
            out.push(Message::new(t, Some(r.clone()), text));
        };
        if all {
            let mut shadowers: Vec<String> = reported.iter().map(|&(_, i)| by(i)).collect();
            shadowers.dedup();
            let what = describe(&entries[reported[0].1].matcher);
            let (t, kind) = if vs {
                (VIRTUAL_SERVICE_UNREACHABLE_RULE, "VirtualService")
            } else {
                (ROUTE_RULE_SHADOWED, id.kind)
            };
            push(
                out,
                t,
                format!(
                    "{kind} rule {} not used (every match is taken first by {}: {what}).",
                    label(id),
                    shadowers.join(", ")
                ),
            );
        } else {
            for (j, i) in reported {
                let t = if vs {
                    VIRTUAL_SERVICE_INEFFECTIVE_MATCH
                } else {
                    ROUTE_RULE_SHADOWED
                };
                push(
                    out,
                    t,
                    format!(
                        "{} rule {} match {} is not used (duplicate/overlapping match in {}).",
                        id.kind,
                        label(id),
                        describe(&entries[j].matcher),
                        by(i)
                    ),
                );
            }
        }
    }
}

pub fn analyze(ctx: &Context<'_>) -> Vec<Message> {
    let mut out = Vec::new();
    for snap in ctx.snapshots.iter().filter(|s| s.waypoint.is_some()) {
        for idx in snap.bound_services() {
            if let Some(routes) = snap.service_routes(idx) {
                let host = &snap.registry.services[idx].hostname;
                table(host, &routes.entries, &mut out);
            }
        }
    }
    // A table per service and per waypoint: say each thing once.
    let mut seen = BTreeSet::new();
    out.retain(|m| seen.insert(m.to_string()));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::messages_of;

    #[test]
    fn a_catch_all_of_an_older_virtual_service_shadows_a_younger_one() {
        let got = messages_of(
            analyze,
            r#"
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: a-old, namespace: shop, creationTimestamp: '2026-01-01T00:00:00Z'}
spec:
  hosts: [reviews]
  http:
  - name: api
    match: [{uri: {prefix: /api}}]
    route: [{destination: {host: reviews}}]
  - name: all
    route: [{destination: {host: reviews}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: b-new, namespace: shop, creationTimestamp: '2026-02-01T00:00:00Z'}
spec:
  hosts: [reviews]
  http:
  - name: jason
    match: [{headers: {end-user: {exact: jason}}}]
    route: [{destination: {host: reviews}}]
"#,
        );
        assert_eq!(
            got,
            [
                r#"Warning [IST0130] (VirtualService shop/b-new) VirtualService rule "jason" not used (every match is taken first by rule "all" of VirtualService shop/a-old (before it for host reviews.shop.svc.cluster.local): {any request})."#
            ]
        );
    }

    #[test]
    fn prefix_overlaps_inside_one_virtual_service() {
        let got = messages_of(
            analyze,
            r#"
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: shop}
spec:
  hosts: [reviews]
  http:
  - match: [{uri: {prefix: /api}}]
    route: [{destination: {host: reviews}}]
  - match: [{uri: {prefix: /api/v1}}, {uri: {prefix: /other}}]
    route: [{destination: {host: ratings}}]
  - match: [{uri: {exact: /api/x}, headers: {a: {exact: b}}}]
    route: [{destination: {host: ratings}}]
  - match: [{uri: {prefix: /api}}]
    route: [{destination: {host: ratings}}]
  - match: [{uri: {prefix: /ap}}]
    route: [{destination: {host: ratings}}]
"#,
        );
        // Rule 3 repeats rule 0's match exactly: vs_rules reports it, not this analyzer.
        assert_eq!(
            got,
            [
                r##"Info [IST0131] (VirtualService shop/reviews) VirtualService rule #1 match {path prefix "/api/v1"} is not used (duplicate/overlapping match in rule #0)."##,
                r##"Warning [IST0130] (VirtualService shop/reviews) VirtualService rule #2 not used (every match is taken first by rule #0: {path prefix "/api"})."##,
            ]
        );
    }

    #[test]
    fn http_routes_same_match_younger_route_loses() {
        let route = |name: &str, ts: &str, header: &str| {
            format!(
                "---\napiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\n\
                 metadata: {{name: {name}, namespace: shop, creationTimestamp: '{ts}'}}\n\
                 spec:\n  parentRefs: [{{group: '', kind: Service, name: reviews, port: 9080}}]\n\
                 \x20 rules:\n  - matches: [{{path: {{type: PathPrefix, value: /}}, headers: [{{name: x, value: '{header}'}}]}}]\n\
                 \x20   backendRefs: [{{name: reviews, port: 9080}}]\n  - backendRefs: [{{name: ratings, port: 9080}}]\n"
            )
        };
        let yaml = route("old", "2026-01-01T00:00:00Z", "1")
            + &route("new", "2026-02-01T00:00:00Z", "1")
            + &route("other", "2026-03-01T00:00:00Z", "2");
        let got = messages_of(analyze, &yaml);
        assert_eq!(
            got,
            [
                r##"Warning [WPA0003] (HTTPRoute shop/new) HTTPRoute rule #0 not used (every match is taken first by rule #0 of HTTPRoute shop/old (before it for host reviews.shop.svc.cluster.local): {path path-prefix "/", header x exact "1", port 9080})."##,
                r##"Warning [WPA0003] (HTTPRoute shop/new) HTTPRoute rule #1 not used (every match is taken first by rule #1 of HTTPRoute shop/old (before it for host reviews.shop.svc.cluster.local): {path path-prefix "/", port 9080})."##,
                r##"Warning [WPA0003] (HTTPRoute shop/other) HTTPRoute rule #1 not used (every match is taken first by rule #1 of HTTPRoute shop/old (before it for host reviews.shop.svc.cluster.local): {path path-prefix "/", port 9080})."##,
            ]
        );
    }

    #[test]
    fn different_headers_shadow_nothing() {
        let got = messages_of(
            analyze,
            r#"
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: shop}
spec:
  hosts: [reviews]
  http:
  - match: [{headers: {end-user: {exact: jason}}}]
    route: [{destination: {host: reviews}}]
  - match: [{headers: {end-user: {exact: bob}}}, {uri: {regex: /api/.*}}]
    route: [{destination: {host: reviews}}]
  - match: [{uri: {prefix: /api}, ignoreUriCase: true}]
    route: [{destination: {host: reviews}}]
  - route: [{destination: {host: reviews}}]
"#,
        );
        assert!(got.is_empty(), "{got:?}");
    }
}

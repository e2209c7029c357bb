//! Unreachable rules inside one VirtualService, as Istio's validation finds them: rules after
//! a rule without `match` (IST0130) and matches identical to an earlier one (IST0131).

use serde_json::Value;

use crate::catalogue::{VIRTUAL_SERVICE_INEFFECTIVE_MATCH, VIRTUAL_SERVICE_UNREACHABLE_RULE};
use crate::context::Context;
use crate::message::{Message, ResourceRef};

/// Istio's rule label: its name quoted, else `#index`.
pub fn rule_label(rule: &Value, index: usize) -> String {
    match rule.get("name").and_then(Value::as_str) {
        Some(n) if !n.is_empty() => format!("{n:?}"),
        _ => format!("#{index}"),
    }
}

/// A match block without its name (names do not change what it matches).
fn unnamed(m: &Value) -> Value {
    let mut m = m.clone();
    if let Value::Object(o) = &mut m {
        o.remove("name");
    }
    m
}

pub fn analyze(ctx: &Context<'_>) -> Vec<Message> {
    let mut out = Vec::new();
    for vs in ctx.of_kind("networking.istio.io", "VirtualService") {
        let Some(rules) = vs.value.pointer("/spec/http").and_then(Value::as_array) else {
            continue;
        };
        let r = ResourceRef::new(&vs.kind, &vs.namespace, &vs.name);
        let mut unused = |text: String| {
            out.push(Message::new(
                VIRTUAL_SERVICE_UNREACHABLE_RULE,
                Some(r.clone()),
                text,
            ))
        };
        let mut ineffective = Vec::new();
        let mut seen: Vec<(Value, usize)> = Vec::new();
        let mut catch_all: Option<usize> = None;
        for (i, rule) in rules.iter().enumerate() {
            let label = rule_label(rule, i);
            let matches = rule
                .get("match")
                .and_then(Value::as_array)
                .map(Vec::as_slice)
                .unwrap_or_default();
            if let Some(c) = catch_all {
                let why = if matches.is_empty() {
                    "only the last rule can have no matches"
                } else {
                    "route without matches defined before"
                };
                unused(format!(
                    "VirtualService rule {label} not used ({why}: rule {}).",
                    rule_label(&rules[c], c)
                ));
                continue;
            }
            if matches.is_empty() {
                catch_all = Some(i);
                continue;
            }
            let mut duplicates = 0;
            for (j, m) in matches.iter().enumerate() {
                let key = unnamed(m);
                if let Some((_, k)) = seen.iter().find(|(v, _)| *v == key) {
                    duplicates += 1;
                    let match_label = match m.get("name").and_then(Value::as_str) {
                        Some(n) if !n.is_empty() => format!("{n:?}"),
                        _ => format!("#{j}"),
                    };
                    ineffective.push(format!(
                        "VirtualService rule {label} match {match_label} is not used (duplicate/overlapping match in rule {}).",
                        rule_label(&rules[*k], *k)
                    ));
                } else {
                    seen.push((key, i));
                }
            }
            if duplicates == matches.len() {
                unused(format!(
                    "VirtualService rule {label} not used (all matches used by prior rules)."
                ));
            }
        }
        for text in ineffective {
            out.push(Message::new(
                VIRTUAL_SERVICE_INEFFECTIVE_MATCH,
                Some(r.clone()),
                text,
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
    fn rules_after_a_catch_all_and_duplicate_matches() {
        let got = messages_of(
            analyze,
            r#"
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: shop}
spec:
  hosts: [reviews]
  http:
  - name: jason
    match: [{headers: {end-user: {exact: jason}}}]
    route: [{destination: {host: reviews}}]
  - name: again
    match: [{name: same, headers: {end-user: {exact: jason}}}, {uri: {prefix: /x}}]
    route: [{destination: {host: reviews}}]
  - match: [{headers: {end-user: {exact: jason}}}]
    route: [{destination: {host: reviews}}]
  - route: [{destination: {host: reviews}}]
  - match: [{uri: {prefix: /late}}]
    route: [{destination: {host: reviews}}]
  - route: [{destination: {host: ratings}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: fine, namespace: shop}
spec:
  hosts: [ratings]
  http:
  - match: [{headers: {end-user: {exact: jason}}}]
    route: [{destination: {host: ratings}}]
  - match: [{headers: {end-user: {exact: bob}}}]
    route: [{destination: {host: ratings}}]
  - route: [{destination: {host: ratings}}]
"#,
        );
        let want = [
            r#"Info [IST0131] (VirtualService shop/reviews) VirtualService rule "again" match "same" is not used (duplicate/overlapping match in rule "jason")."#,
            r##"Info [IST0131] (VirtualService shop/reviews) VirtualService rule #2 match #0 is not used (duplicate/overlapping match in rule "jason")."##,
            r##"Warning [IST0130] (VirtualService shop/reviews) VirtualService rule #2 not used (all matches used by prior rules)."##,
            r##"Warning [IST0130] (VirtualService shop/reviews) VirtualService rule #4 not used (route without matches defined before: rule #3)."##,
            r##"Warning [IST0130] (VirtualService shop/reviews) VirtualService rule #5 not used (only the last rule can have no matches: rule #3)."##,
        ];
        assert_eq!(got, want);
    }
}

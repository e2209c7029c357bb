//! VirtualService destination weights that do not add up to 100: Istio splits by the
//! relative weights, which is rarely what a 90/20 typo meant.

use serde_json::Value;

use crate::catalogue::WEIGHTS_NOT_100;
use crate::context::Context;
use crate::message::{Message, ResourceRef};
use crate::vs_rules::rule_label;

pub fn analyze(ctx: &Context<'_>) -> Vec<Message> {
    let mut out = Vec::new();
    for vs in ctx.of_kind("networking.istio.io", "VirtualService") {
        let Some(rules) = vs.value.pointer("/spec/http").and_then(Value::as_array) else {
            continue;
        };
        for (i, rule) in rules.iter().enumerate() {
            let Some(dests) = rule.get("route").and_then(Value::as_array) else {
                continue;
            };
            // One destination takes all traffic whatever its weight.
            if dests.len() < 2 {
                continue;
            }
            let weights: Option<Vec<i64>> = dests
                .iter()
                .map(|d| match d.get("weight") {
                    None | Some(Value::Null) => Some(0),
                    Some(w) => w.as_i64(),
                })
                .collect();
            // Non-numeric or negative weights are schema errors, reported by the core.
            let Some(weights) = weights.filter(|w| w.iter().all(|x| *x >= 0)) else {
                continue;
            };
            let total: i64 = weights.iter().sum();
            if total == 100 || total == 0 {
                continue;
            }
            let list: Vec<String> = weights.iter().map(ToString::to_string).collect();
            out.push(Message::new(
                WEIGHTS_NOT_100,
                Some(ResourceRef::new(&vs.kind, &vs.namespace, &vs.name)),
                format!(
                    "VirtualService rule {} destination weights add up to {total}, not 100 ({}); traffic is split by their ratio.",
                    rule_label(rule, i),
                    list.join(" + ")
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
    fn only_splits_off_100_are_reported() {
        let vs = |name: &str, route: &str| {
            format!(
                "---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: {name}, namespace: shop}}\n\
                 spec: {{hosts: [{name}.example], http: [{{name: split, route: {route}}}]}}\n"
            )
        };
        let d = |host: &str, w: Option<i64>| match w {
            Some(w) => format!("{{destination: {{host: {host}}}, weight: {w}}}"),
            None => format!("{{destination: {{host: {host}}}}}"),
        };
        let yaml = [
            vs(
                "hundred",
                &format!("[{}, {}]", d("reviews", Some(90)), d("ratings", Some(10))),
            ),
            vs(
                "over",
                &format!("[{}, {}]", d("reviews", Some(90)), d("ratings", Some(20))),
            ),
            vs(
                "missing",
                &format!("[{}, {}]", d("reviews", Some(50)), d("ratings", None)),
            ),
            vs("single", &format!("[{}]", d("reviews", Some(30)))),
        ]
        .concat();
        let got = messages_of(analyze, &yaml);
        assert_eq!(
            got,
            [
                r#"Info [WPA0004] (VirtualService shop/missing) VirtualService rule "split" destination weights add up to 50, not 100 (50 + 0); traffic is split by their ratio."#,
                r#"Info [WPA0004] (VirtualService shop/over) VirtualService rule "split" destination weights add up to 110, not 100 (90 + 20); traffic is split by their ratio."#,
            ]
        );
    }
}

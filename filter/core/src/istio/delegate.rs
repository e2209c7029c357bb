//! VirtualService delegation: a root VirtualService's `http[].delegate` replaced by the
//! delegate VirtualService's routes, merged as Istio merges them before any proxy sees them.
//!
//! Istio resolves delegates in its config layer (pilot `MergedVirtualServices`, for sidecars,
//! gateways and waypoints alike), on the raw spec: each delegate route keeps its own fields and
//! takes the root route's where it has none (`mergeHTTPRoute`); its matches must each fall
//! inside one of the root's (`hasConflict`), else the delegate route is dropped; a missing or
//! unexported delegate drops only the delegating route. One level only: a delegate's own
//! `delegate` routes are dropped. We do the same on the JSON spec, then compile as usual.

use rustc_hash::FxHashMap as HashMap;
use serde_json::{Map, Value};

use crate::error::Diagnostics;
use crate::resource::RawResource;

/// Route fields a delegate route inherits from its root route when it has none
/// (pilot `mergeHTTPRoute`).
const INHERITED: &[&str] = &[
    "rewrite",
    "directResponse",
    "timeout",
    "retries",
    "fault",
    "mirror",
    "mirrorPercent",
    "mirror_percent",
    "mirrorPercentage",
    "corsPolicy",
    "mirrors",
    "headers",
];

/// Map fields of a match merged key by key, the delegate's winning.
const MERGED_MAPS: &[&str] = &["headers", "withoutHeaders", "queryParams", "sourceLabels"];

/// Scalar / StringMatch fields of a match taken from the root when the delegate has none.
const FILLED: &[&str] = &[
    "uri",
    "scheme",
    "method",
    "authority",
    "port",
    "sourceNamespace",
    "gateways",
    "statPrefix",
];

fn is_delegate_vs(r: &RawResource) -> bool {
    r.group() == "networking.istio.io"
        && r.kind == "VirtualService"
        && r.value
            .pointer("/spec/hosts")
            .and_then(Value::as_array)
            .is_none_or(Vec::is_empty)
}

fn delegates(r: &RawResource) -> bool {
    r.value
        .pointer("/spec/http")
        .and_then(Value::as_array)
        .is_some_and(|h| h.iter().any(|x| x.get("delegate").is_some()))
}

/// Each root VirtualService (one with `http[].delegate`) with its delegates merged in, by
/// index into `resources`; the other resources are used as they are.
pub fn merge_delegates(resources: &[RawResource]) -> (HashMap<usize, RawResource>, Diagnostics) {
    let mut diags = Diagnostics::default();
    let by_name: HashMap<(&str, &str), &RawResource> = resources
        .iter()
        .filter(|r| is_delegate_vs(r))
        .map(|r| ((r.namespace.as_str(), r.name.as_str()), r))
        .collect();
    let mut used: Vec<(String, String)> = Vec::new();
    let mut out = HashMap::default();
    for (i, root) in resources.iter().enumerate() {
        if root.group() != "networking.istio.io" || root.kind != "VirtualService" {
            continue;
        }
        if !delegates(root) {
            continue;
        }
        let mut merged = root.clone();
        let http = root
            .value
            .pointer("/spec/http")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let mut routes = Vec::new();
        for (k, route) in http.into_iter().enumerate() {
            let Some(d) = route.get("delegate") else {
                routes.push(route);
                continue;
            };
            let field = format!("spec.http[{k}].delegate");
            let name = d.get("name").and_then(Value::as_str).unwrap_or_default();
            let ns = d
                .get("namespace")
                .and_then(Value::as_str)
                .filter(|n| !n.is_empty())
                .unwrap_or(&root.namespace);
            if is_delegate_vs(root) {
                diags.warn(root.error(
                    field,
                    "a delegate VirtualService cannot delegate again (one level only); route ignored",
                ));
                continue;
            }
            let Some(target) = by_name.get(&(ns, name)) else {
                diags.warn(root.error(
                    field,
                    format!("delegate VirtualService {ns}/{name} not found (a VirtualService without hosts); route ignored"),
                ));
                continue;
            };
            used.push((ns.to_string(), name.to_string()));
            if !exported_to(target, &root.namespace) {
                diags.warn(root.error(
                    field,
                    format!(
                        "delegate VirtualService {ns}/{name} is not exported to {}; route ignored",
                        root.namespace
                    ),
                ));
                continue;
            }
            let subs = target
                .value
                .pointer("/spec/http")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            for (j, sub) in subs.into_iter().enumerate() {
                if sub.get("delegate").is_some() {
                    diags.warn(target.error(
                        format!("spec.http[{j}].delegate"),
                        "a delegate VirtualService cannot delegate again (one level only); route ignored",
                    ));
                    continue;
                }
                match merge_route(&route, sub) {
                    Some(m) => routes.push(m),
                    None => diags.warn(target.error(
                        format!("spec.http[{j}].match"),
                        format!(
                            "not inside the matches of {}/{} spec.http[{k}] that delegates here; route ignored",
                            root.namespace, root.name
                        ),
                    )),
                }
            }
        }
        if let Some(spec) = merged.value.get_mut("spec").and_then(Value::as_object_mut) {
            spec.insert("http".into(), Value::Array(routes));
        }
        out.insert(i, merged);
    }
    for r in resources.iter().filter(|r| is_delegate_vs(r)) {
        if !used
            .iter()
            .any(|(ns, n)| *ns == r.namespace && *n == r.name)
        {
            diags.warn(r.error(
                "spec.hosts",
                "no hosts and no VirtualService delegates to it: not used by the waypoint",
            ));
        }
    }
    (out, diags)
}

/// Istio's `exportTo` visibility of the delegate for the root's namespace (empty: public).
fn exported_to(target: &RawResource, ns: &str) -> bool {
    let list: Vec<&str> = target
        .value
        .pointer("/spec/exportTo")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    list.is_empty()
        || list
            .iter()
            .any(|e| *e == "*" || *e == ns || (*e == "." && target.namespace == ns))
}

/// pilot `mergeHTTPRoute`: `None` when a delegate match conflicts with every root match.
fn merge_route(root: &Value, mut sub: Value) -> Option<Value> {
    let empty = Vec::new();
    let root_matches = root
        .get("match")
        .and_then(Value::as_array)
        .unwrap_or(&empty);
    let sub_matches = sub.get("match").and_then(Value::as_array).cloned();
    let obj = sub.as_object_mut()?;
    let merged = merge_matches(root_matches, sub_matches.as_deref().unwrap_or_default())?;
    if merged.is_empty() {
        obj.remove("match");
    } else {
        obj.insert("match".into(), Value::Array(merged));
    }
    combine_names(obj, root.get("name"));
    for f in INHERITED {
        if !obj.contains_key(*f) {
            if let Some(v) = root.get(*f) {
                obj.insert((*f).into(), v.clone());
            }
        }
    }
    Some(sub)
}

/// `root-sub` when both have a name, else whichever has one.
fn combine_names(obj: &mut Map<String, Value>, root_name: Option<&Value>) {
    let root = root_name.and_then(Value::as_str).filter(|s| !s.is_empty());
    let own = obj
        .get("name")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty());
    let name = match (root, own) {
        (Some(r), Some(o)) => format!("{r}-{o}"),
        (Some(r), None) => r.to_string(),
        _ => return,
    };
    obj.insert("name".into(), Value::String(name));
}

/// pilot `mergeHTTPMatchRequests`: every delegate match merged with each root match it does
/// not conflict with; `None` when one delegate match fits no root match.
fn merge_matches(root: &[Value], sub: &[Value]) -> Option<Vec<Value>> {
    if root.is_empty() {
        return Some(sub.to_vec());
    }
    if sub.is_empty() {
        return Some(root.to_vec());
    }
    let mut out = Vec::new();
    for s in sub {
        let mut found = false;
        for r in root {
            if has_conflict(r, s) {
                continue;
            }
            out.push(merge_match(r, s));
            found = true;
        }
        if !found {
            return None;
        }
    }
    (!out.is_empty()).then_some(out)
}

fn merge_match(root: &Value, sub: &Value) -> Value {
    let mut out = sub.as_object().cloned().unwrap_or_default();
    combine_names(&mut out, root.get("name"));
    for f in FILLED {
        if !out.contains_key(*f) {
            if let Some(v) = root.get(*f) {
                out.insert((*f).into(), v.clone());
            }
        }
    }
    for f in MERGED_MAPS {
        let mut m = root
            .get(*f)
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        if let Some(own) = sub.get(*f).and_then(Value::as_object) {
            m.extend(own.clone());
        }
        if !m.is_empty() {
            out.insert((*f).into(), Value::Object(m));
        }
    }
    Value::Object(out)
}

/// pilot `hasConflict`: the delegate match `leaf` is not inside the root match.
fn has_conflict(root: &Value, leaf: &Value) -> bool {
    for f in ["uri", "scheme", "method", "authority"] {
        if string_match_conflict(root.get(f), leaf.get(f)) {
            return true;
        }
    }
    for f in ["headers", "withoutHeaders", "queryParams"] {
        if let Some(l) = leaf.get(f).and_then(Value::as_object) {
            for (k, v) in l {
                if string_match_conflict(root.get(f).and_then(|m| m.get(k)), Some(v)) {
                    return true;
                }
            }
        }
    }
    let flag = |v: &Value| {
        v.get("ignoreUriCase")
            .and_then(Value::as_bool)
            .unwrap_or(false)
    };
    if flag(root) != flag(leaf) {
        return true;
    }
    let port = |v: &Value| v.get("port").and_then(Value::as_u64).unwrap_or(0);
    if port(root) > 0 && port(leaf) > 0 && port(root) != port(leaf) {
        return true;
    }
    let sns = |v: &Value| {
        v.get("sourceNamespace")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    if !sns(root).is_empty() && sns(leaf) != sns(root) {
        return true;
    }
    if let Some(l) = leaf.get("sourceLabels").and_then(Value::as_object) {
        let r = root.get("sourceLabels").and_then(Value::as_object);
        if l.iter()
            .any(|(k, v)| r.and_then(|r| r.get(k)).is_some_and(|rv| rv != v))
        {
            return true;
        }
    }
    false
}

/// pilot `stringMatchConflict` over `{exact|prefix|regex}` objects.
fn string_match_conflict(root: Option<&Value>, leaf: Option<&Value>) -> bool {
    let (Some(root), Some(leaf)) = (root, leaf) else {
        return false;
    };
    let get = |v: &Value, k: &str| {
        v.get(k)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    let (r_re, r_pre, r_ex) = (get(root, "regex"), get(root, "prefix"), get(root, "exact"));
    let (l_re, l_pre, l_ex) = (get(leaf, "regex"), get(leaf, "prefix"), get(leaf, "exact"));
    if r_re.is_some() && (l_re.is_some() || l_pre.is_some() || l_ex.is_some()) {
        return true;
    }
    if l_re.is_some() && (r_re.is_some() || r_pre.is_some() || r_ex.is_some()) {
        return true;
    }
    if let Some(exact) = r_ex {
        return l_pre.is_some() || l_ex.as_deref() != Some(exact.as_str());
    }
    if let Some(prefix) = r_pre {
        if let Some(p) = l_pre {
            return !p.starts_with(&prefix);
        }
        if let Some(e) = l_ex {
            return !e.starts_with(&prefix);
        }
    }
    // As pilot: anything else (e.g. an empty root match object) is a conflict.
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resource::parse_manifests;

    fn merged(yaml: &str) -> (Vec<Value>, Vec<String>) {
        let (docs, errors) = parse_manifests(yaml, "t.yaml", "shop", 0);
        assert!(errors.is_empty(), "{errors:?}");
        let (out, diags) = merge_delegates(&docs);
        let http = out
            .get(&0)
            .and_then(|r| r.value.pointer("/spec/http"))
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        (http, diags.warnings.iter().map(|w| w.to_string()).collect())
    }

    const ROOT: &str = "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: root, namespace: shop}
spec:
  hosts: [web]
  http:
  - name: r
    match: [{uri: {prefix: /a}, headers: {x: {exact: '1'}}}]
    retries: {attempts: 1}
    delegate: {name: d, namespace: team}
";

    #[test]
    fn delegate_routes_merge_their_matches_and_inherit_the_roots_fields() {
        let yaml = format!(
            "{ROOT}---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: d, namespace: team}}
spec:
  http:
  - name: in
    match: [{{uri: {{exact: /a/b}}, headers: {{y: {{exact: '2'}}}}}}]
    route: [{{destination: {{host: web}}}}]
  - match: [{{uri: {{prefix: /b}}}}]
    route: [{{destination: {{host: web}}}}]
"
        );
        let (http, warnings) = merged(&yaml);
        assert_eq!(http.len(), 1, "{http:?}");
        let r = &http[0];
        assert_eq!(r["name"], "r-in");
        assert_eq!(r["retries"]["attempts"], 1);
        assert!(r.get("delegate").is_none());
        let m = &r["match"][0];
        assert_eq!(m["uri"]["exact"], "/a/b");
        assert_eq!(m["headers"]["x"]["exact"], "1");
        assert_eq!(m["headers"]["y"]["exact"], "2");
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].contains("team/d") && warnings[0].contains("spec.http[1].match"));
    }

    #[test]
    fn missing_or_unexported_delegates_drop_only_the_delegating_route() {
        let (http, warnings) = merged(ROOT);
        assert!(http.is_empty());
        assert!(warnings[0].contains("team/d not found"), "{warnings:?}");
        let yaml = format!(
            "{ROOT}---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: d, namespace: team}}
spec:
  exportTo: ['.']
  http: [{{route: [{{destination: {{host: web}}}}]}}]
"
        );
        let (http, warnings) = merged(&yaml);
        assert!(http.is_empty());
        assert!(warnings[0].contains("not exported to shop"), "{warnings:?}");
    }

    #[test]
    fn a_delegate_nobody_uses_is_reported() {
        let (docs, _) = parse_manifests(
            "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: lonely, namespace: shop}
spec:
  http: [{route: [{destination: {host: web}}]}]
",
            "t.yaml",
            "shop",
            0,
        );
        let (out, diags) = merge_delegates(&docs);
        assert!(out.is_empty());
        assert_eq!(diags.warnings.len(), 1);
        assert!(diags.warnings[0].to_string().contains("shop/lonely"));
    }

    #[test]
    fn string_match_conflicts_follow_pilot() {
        let v = |s: &str| serde_json::from_str::<Value>(s).unwrap_or(Value::Null);
        let c = |r: &str, l: &str| string_match_conflict(Some(&v(r)), Some(&v(l)));
        assert!(!c(r#"{"prefix":"/a"}"#, r#"{"prefix":"/a/b"}"#));
        assert!(c(r#"{"prefix":"/a/b"}"#, r#"{"prefix":"/a"}"#));
        assert!(!c(r#"{"prefix":"/a"}"#, r#"{"exact":"/a/x"}"#));
        assert!(c(r#"{"exact":"/a"}"#, r#"{"prefix":"/a"}"#));
        assert!(!c(r#"{"exact":"/a"}"#, r#"{"exact":"/a"}"#));
        assert!(c(r#"{"regex":"/a.*"}"#, r#"{"exact":"/a"}"#));
        assert!(!string_match_conflict(None, Some(&v(r#"{"exact":"/a"}"#))));
    }
}

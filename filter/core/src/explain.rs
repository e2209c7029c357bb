//! A decision rendered as the JSON object `waypoint explain` prints (field names are a stable
//! interface). The scenario suite compares these objects across the core, Envoy and the host.

use serde_json::{json, Map, Value};

use crate::decision::{Action, Decision};
use crate::request::Request;
use crate::route::{BackendRef, HeaderOps};
use crate::snapshot::apply_header_ops;

fn backend_json(b: &BackendRef, port: u16) -> Value {
    json!({
        "service": b.name,
        "namespace": b.namespace,
        "subset": b.subset,
        "port": b.port.unwrap_or(port),
    })
}

fn ms(d: Option<std::time::Duration>) -> Value {
    match d {
        Some(d) => json!(d.as_millis() as u64),
        None => Value::Null,
    }
}

/// The request's headers after the decision's mutations, lower-case names, repeated
/// headers joined with ",".
pub fn mutated_request_headers(d: &Decision<'_>, req: &Request<'_>) -> Vec<(String, String)> {
    let mut headers: Vec<(String, String)> = req
        .headers
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v.to_string()))
        .collect();
    if let (Action::Route, Some(f)) = (d.action, &d.forward) {
        // Envoy order: weighted-cluster level first, then route level.
        for ops in f.request_headers {
            apply_header_ops(&mut headers, ops);
        }
    }
    headers
}

fn response_ops<'a>(d: &'a Decision<'_>) -> Vec<&'a HeaderOps> {
    match (&d.action, &d.forward) {
        (Action::Route, Some(f)) => f.response_headers.to_vec(),
        _ => Vec::new(),
    }
}

/// Render `d` (for `req`) as the explain JSON object.
pub fn decision_json(d: &Decision<'_>, req: &Request<'_>) -> Value {
    let mut o = Map::new();
    let action = d.action.as_str();
    o.insert("action".into(), json!(action));
    if let Some(l) = &d.local {
        o.insert("status".into(), json!(l.status));
        if !l.body.is_empty() {
            o.insert("body".into(), json!(l.body));
        }
    }
    // The headers of the waypoint's own reply (lower-case names, repeated values joined).
    let mut local_headers = Map::new();
    for (k, v) in d.local.iter().flat_map(|l| l.headers.iter()) {
        let k = k.to_ascii_lowercase();
        match local_headers.get_mut(&k) {
            Some(Value::String(prev)) => *prev = format!("{prev},{v}"),
            _ => {
                local_headers.insert(k, json!(v));
            }
        }
    }
    o.insert("local_headers".into(), Value::Object(local_headers));
    let routed = d.action == Action::Route;
    let fwd = d.forward.as_ref().filter(|_| routed);
    o.insert(
        "backend".into(),
        fwd.map(|f| backend_json(f.backend, f.port))
            .unwrap_or(Value::Null),
    );
    // A workload-addressed request's original destination (Action::Passthrough).
    o.insert(
        "passthrough".into(),
        d.passthrough
            .map(|a| json!(a.to_string()))
            .unwrap_or(Value::Null),
    );
    let weights: Vec<Value> = match &d.forward {
        Some(f) if f.candidates.len() > 1 => f
            .candidates
            .iter()
            .map(|c| {
                let mut v = backend_json(&c.backend, f.port);
                if let Value::Object(m) = &mut v {
                    m.insert("weight".into(), json!(c.weight));
                }
                v
            })
            .collect(),
        _ => Vec::new(),
    };
    o.insert("weights".into(), Value::Array(weights));
    let mut headers = Map::new();
    for (k, v) in mutated_request_headers(d, req) {
        match headers.get_mut(&k) {
            Some(Value::String(prev)) => {
                prev.push(',');
                prev.push_str(&v);
            }
            _ => {
                headers.insert(k, Value::String(v));
            }
        }
    }
    o.insert("request_headers".into(), Value::Object(headers));
    let mut add = Vec::new();
    let mut remove = Vec::new();
    for ops in response_ops(d) {
        remove.extend(ops.remove.iter().map(|n| json!(n.to_ascii_lowercase())));
        add.extend(
            ops.set
                .iter()
                .map(|(n, v)| json!({"name": n.to_ascii_lowercase(), "value": v, "append": false})),
        );
        add.extend(
            ops.add
                .iter()
                .map(|(n, v)| json!({"name": n.to_ascii_lowercase(), "value": v, "append": true})),
        );
    }
    o.insert("response_headers_add".into(), Value::Array(add));
    o.insert("response_headers_remove".into(), Value::Array(remove));
    let path = fwd
        .and_then(|f| f.path.clone())
        .unwrap_or_else(|| req.path.to_string());
    let authority = fwd
        .and_then(|f| f.authority.clone())
        .unwrap_or_else(|| req.authority.to_string());
    o.insert("path".into(), json!(path));
    o.insert("authority".into(), json!(authority));
    let location = d
        .local
        .as_ref()
        .and_then(|l| l.headers.iter().find(|(k, _)| k == "location"))
        .map(|(_, v)| json!(v))
        .unwrap_or(Value::Null);
    o.insert("location".into(), location);
    o.insert("timeout_ms".into(), ms(fwd.and_then(|f| f.timeout)));
    o.insert(
        "retries".into(),
        fwd.and_then(|f| f.retries)
            .map(|r| {
                json!({
                    "attempts": r.attempts,
                    "per_try_timeout_ms": ms(r.per_try_timeout.or(fwd.and_then(|f| f.backend_timeout))),
                    "retry_on": r.retry_on.join(","),
                    "codes": r.codes,
                })
            })
            .unwrap_or(Value::Null),
    );
    o.insert(
        "fault_delay_ms".into(),
        ms(d.forward.as_ref().and_then(|f| f.fault_delay)),
    );
    o.insert(
        "mirrors".into(),
        Value::Array(
            fwd.map(|f| {
                f.mirrors
                    .iter()
                    .map(|m| {
                        let mut v = backend_json(&m.backend, f.port);
                        if let Value::Object(mm) = &mut v {
                            mm.insert("percent".into(), json!(m.percent));
                        }
                        v
                    })
                    .collect()
            })
            .unwrap_or_default(),
        ),
    );
    match d.matched_rule {
        Some(r) => {
            o.insert("matched_route".into(), json!(r.resource()));
            o.insert("matched_rule".into(), json!(r.rule));
        }
        None => {
            o.insert("matched_route".into(), Value::Null);
            o.insert("matched_rule".into(), Value::Null);
        }
    }
    o.insert(
        "policies".into(),
        Value::Array(
            d.policies
                .iter()
                .map(|p| {
                    json!({
                        "name": p.policy.name,
                        "namespace": p.policy.namespace,
                        "action": p.action,
                        "matched": p.matched,
                        "dry_run": p.dry_run,
                    })
                })
                .collect(),
        ),
    );
    o.insert("trace".into(), json!(d.trace));
    Value::Object(o)
}

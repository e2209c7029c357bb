//! Text rendering of an explain result: short, aligned, readable.
//! Reads the same JSON object the `--output json` mode prints.

use serde_json::Value;
use std::fmt::Write;

fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

fn backend(v: &Value) -> String {
    if v.is_null() {
        return "-".into();
    }
    let mut s = format!("{}.{}", scalar(&v["service"]), scalar(&v["namespace"]));
    if let Some(sub) = v["subset"].as_str() {
        let _ = write!(s, " subset {sub}");
    }
    let _ = write!(s, " port {}", scalar(&v["port"]));
    s
}

pub fn render(o: &Value) -> String {
    let mut rows: Vec<(String, String)> = Vec::new();
    let mut row = |k: &str, v: String| rows.push((k.to_string(), v));
    let mut action = scalar(&o["action"]);
    if let Some(st) = o["status"].as_u64() {
        action = format!("{action} ({st})");
    }
    row("action", action);
    if !o["backend"].is_null() {
        row("backend", backend(&o["backend"]));
    }
    if let Some(ws) = o["weights"].as_array().filter(|w| !w.is_empty()) {
        let parts: Vec<String> = ws
            .iter()
            .map(|w| format!("{} = {}", backend(w), scalar(&w["weight"])))
            .collect();
        row("weights", parts.join(", "));
    }
    if let Some(l) = o["location"].as_str() {
        row("location", l.to_string());
    }
    row("path", scalar(&o["path"]));
    row("authority", scalar(&o["authority"]));
    if let Some(r) = o["matched_route"].as_str() {
        row("route", format!("{r} rule {}", scalar(&o["matched_rule"])));
    }
    if let Some(h) = o["request_headers"].as_object().filter(|h| !h.is_empty()) {
        let parts: Vec<String> = h
            .iter()
            .map(|(k, v)| format!("{k}: {}", scalar(v)))
            .collect();
        row("request headers", parts.join("; "));
    }
    if let Some(a) = o["response_headers_add"]
        .as_array()
        .filter(|a| !a.is_empty())
    {
        let parts: Vec<String> = a
            .iter()
            .map(|h| {
                let op = if h["append"].as_bool() == Some(true) {
                    "add"
                } else {
                    "set"
                };
                format!("{op} {}: {}", scalar(&h["name"]), scalar(&h["value"]))
            })
            .collect();
        row("response headers", parts.join("; "));
    }
    if let Some(a) = o["response_headers_remove"]
        .as_array()
        .filter(|a| !a.is_empty())
    {
        row(
            "response remove",
            a.iter().map(scalar).collect::<Vec<_>>().join(", "),
        );
    }
    if !o["timeout_ms"].is_null() {
        row("timeout", format!("{} ms", scalar(&o["timeout_ms"])));
    }
    if !o["retries"].is_null() {
        let r = &o["retries"];
        row(
            "retries",
            format!(
                "{} attempts on {} (per try {})",
                scalar(&r["attempts"]),
                scalar(&r["retry_on"]),
                scalar(&r["per_try_timeout_ms"])
            ),
        );
    }
    if !o["fault_delay_ms"].is_null() {
        row(
            "fault delay",
            format!("{} ms", scalar(&o["fault_delay_ms"])),
        );
    }
    if let Some(ms) = o["mirrors"].as_array().filter(|m| !m.is_empty()) {
        let parts: Vec<String> = ms
            .iter()
            .map(|m| format!("{} ({}%)", backend(m), scalar(&m["percent"])))
            .collect();
        row("mirrors", parts.join(", "));
    }
    if let Some(ps) = o["policies"].as_array().filter(|p| !p.is_empty()) {
        let parts: Vec<String> = ps
            .iter()
            .map(|p| {
                format!(
                    "{}/{} {} {}",
                    scalar(&p["namespace"]),
                    scalar(&p["name"]),
                    scalar(&p["action"]),
                    if p["matched"].as_bool() == Some(true) {
                        "matched"
                    } else {
                        "not matched"
                    }
                )
            })
            .collect();
        row("policies", parts.join(", "));
    }
    let j = &o["jwt"];
    if !j.is_null() {
        let status = match (j["verified"].as_bool(), j["error"].as_str()) {
            (_, Some(e)) => format!("refused: {e}"),
            (Some(true), _) => format!("verified, principal {}", scalar(&j["principal"])),
            _ => "no token".to_string(),
        };
        row("jwt", status);
        if j["claims"].is_object() {
            row("jwt claims", j["claims"].to_string());
        }
        if let Some(h) = j["headers_set"].as_array().filter(|h| !h.is_empty()) {
            let parts: Vec<String> = h
                .iter()
                .map(|p| format!("{}: {}", scalar(&p[0]), scalar(&p[1])))
                .collect();
            row("jwt headers", parts.join("; "));
        }
        if let Some(n) = j["note"].as_str() {
            row("jwt note", n.to_string());
        }
    }
    row("seed", scalar(&o["seed"]));
    let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    let mut out = String::new();
    for (k, v) in rows {
        let _ = writeln!(out, "{k:<width$}  {v}");
    }
    if let Some(trace) = o["trace"].as_array().filter(|t| !t.is_empty()) {
        let _ = writeln!(out, "trace:");
        for t in trace {
            let _ = writeln!(out, "  - {}", scalar(t));
        }
    }
    for key in ["warnings", "errors"] {
        if let Some(list) = o[key].as_array().filter(|l| !l.is_empty()) {
            let _ = writeln!(out, "{key}:");
            for e in list {
                let _ = writeln!(out, "  - {}", scalar(e));
            }
        }
    }
    out
}

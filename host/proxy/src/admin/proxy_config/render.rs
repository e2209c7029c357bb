//! `proxy-config` output: a table per section (`short`, like `istioctl proxy-config`) or the
//! document as JSON or YAML, restricted to the requested section.

use std::fmt::Write as _;

use serde_json::Value;

use super::view::{BackendView, ProxyConfig};

/// What to show.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    Routes,
    Clusters,
    Endpoints,
    Policies,
    Secrets,
    All,
}

impl Section {
    /// The document keys this section shows.
    fn keys(self) -> &'static [&'static str] {
        match self {
            Section::Routes => &["routes"],
            Section::Clusters => &["clusters"],
            Section::Endpoints => &["endpoints"],
            Section::Policies => &["policies"],
            Section::Secrets => &["secrets"],
            Section::All => &["routes", "clusters", "endpoints", "policies", "secrets"],
        }
    }
}

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Short,
    Json,
    Yaml,
}

/// Why the output could not be written.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("cannot serialize the proxy config as {format}: {message}")]
    Serialize {
        format: &'static str,
        message: String,
    },
}

/// Render `doc`'s `section` as `format`. JSON and YAML keep `mode`, `waypoint`,
/// `generation` and `warnings` next to the section's keys; every field is present.
pub fn render(doc: &ProxyConfig, section: Section, format: Format) -> Result<String, RenderError> {
    match format {
        Format::Short => Ok(short(doc, section)),
        Format::Json => {
            let v = selected(doc, section, "JSON")?;
            serde_json::to_string_pretty(&v)
                .map(|s| s + "\n")
                .map_err(|e| RenderError::Serialize {
                    format: "JSON",
                    message: e.to_string(),
                })
        }
        Format::Yaml => {
            let v = selected(doc, section, "YAML")?;
            serde_yaml::to_string(&v).map_err(|e| RenderError::Serialize {
                format: "YAML",
                message: e.to_string(),
            })
        }
    }
}

fn selected(
    doc: &ProxyConfig,
    section: Section,
    format: &'static str,
) -> Result<Value, RenderError> {
    let mut v = serde_json::to_value(doc).map_err(|e| RenderError::Serialize {
        format,
        message: e.to_string(),
    })?;
    if let Value::Object(m) = &mut v {
        let all = Section::All.keys();
        m.retain(|k, _| !all.contains(&k.as_str()) || section.keys().contains(&k.as_str()));
    }
    Ok(v)
}

fn short(doc: &ProxyConfig, section: Section) -> String {
    let mut tables = Vec::new();
    for key in section.keys() {
        tables.push(match *key {
            "routes" => routes(doc),
            "clusters" => clusters(doc),
            "endpoints" => endpoints(doc),
            "policies" => policies(doc),
            _ => secrets(doc),
        });
    }
    tables.join("\n")
}

fn opt<T: ToString>(v: &Option<T>) -> String {
    v.as_ref()
        .map_or_else(|| "-".to_string(), ToString::to_string)
}

fn backend(b: &BackendView) -> String {
    let mut s = match (&b.host, &b.cluster, &b.cluster_header) {
        (Some(h), _, _) => h.clone(),
        (None, Some(c), _) => c.clone(),
        (None, None, Some(h)) => format!("<header {h}>"),
        (None, None, None) => "?".into(),
    };
    if b.host.is_some() {
        if let Some(p) = b.port {
            let _ = write!(s, ":{p}");
        }
        if let Some(ss) = &b.subset {
            let _ = write!(s, "/{ss}");
        }
    }
    let _ = write!(s, "={}", b.weight);
    if b.invalid.is_some() {
        s.push_str(" (invalid)");
    }
    s
}

fn routes(doc: &ProxyConfig) -> String {
    let rows = doc.routes.iter().map(|r| {
        let route = match (&r.resource, &r.rule) {
            (Some(res), Some(rule)) => format!("{res}#{rule}"),
            (Some(res), None) => res.clone(),
            (None, _) if r.table == "envoy" => "envoy".into(),
            (None, _) => r.source.clone(),
        };
        let backends = if r.backends.is_empty() {
            r.action.clone()
        } else {
            r.backends
                .iter()
                .map(backend)
                .collect::<Vec<_>>()
                .join(", ")
        };
        vec![
            r.service.clone(),
            r.port.map_or_else(|| "*".into(), |p| p.to_string()),
            r.matcher.clone(),
            backends,
            route,
        ]
    });
    table(&["SERVICE", "PORT", "MATCH", "BACKENDS", "ROUTE"], rows)
}

fn clusters(doc: &ProxyConfig) -> String {
    let rows = doc.clusters.iter().map(|c| {
        vec![
            c.service.clone().unwrap_or_else(|| c.name.clone()),
            opt(&c.port),
            opt(&c.subset),
            opt(&c.direction),
            opt(&c.kind),
            opt(&c.destination_rule),
            c.endpoints.to_string(),
        ]
    });
    table(
        &[
            "SERVICE FQDN",
            "PORT",
            "SUBSET",
            "DIRECTION",
            "TYPE",
            "DESTINATION RULE",
            "ENDPOINTS",
        ],
        rows,
    )
}

fn endpoints(doc: &ProxyConfig) -> String {
    let rows = doc.endpoints.iter().map(|e| {
        vec![
            e.address.clone(),
            opt(&e.health),
            if e.hbone { "yes" } else { "no" }.into(),
            opt(&e.identity),
            e.cluster.clone(),
        ]
    });
    table(
        &["ENDPOINT", "STATUS", "HBONE", "IDENTITY", "CLUSTER"],
        rows,
    )
}

fn policies(doc: &ProxyConfig) -> String {
    let rows = doc.policies.iter().map(|p| {
        let mut notes = Vec::new();
        if p.dry_run {
            notes.push("dry-run".to_string());
        }
        if p.fail_closed {
            notes.push("unreadable: denies all".to_string());
        }
        if let Some(pr) = &p.provider {
            notes.push(format!("provider {pr}"));
        }
        vec![
            p.namespace.clone(),
            p.name.clone(),
            p.action.clone(),
            p.rules.to_string(),
            p.targets.join(", "),
            if notes.is_empty() {
                "-".into()
            } else {
                notes.join(", ")
            },
        ]
    });
    table(
        &["NAMESPACE", "NAME", "ACTION", "RULES", "TARGETS", "NOTES"],
        rows,
    )
}

fn secrets(doc: &ProxyConfig) -> String {
    let rows = doc.secrets.iter().map(|s| {
        vec![
            s.name.clone(),
            s.kind.clone(),
            opt(&s.identity),
            s.serial.clone(),
            s.not_before.clone(),
            s.not_after.clone(),
        ]
    });
    table(
        &[
            "RESOURCE NAME",
            "TYPE",
            "IDENTITY",
            "SERIAL NUMBER",
            "NOT BEFORE",
            "NOT AFTER",
        ],
        rows,
    )
}

/// Left-aligned columns two spaces apart; the last column is not padded.
fn table(header: &[&str], rows: impl Iterator<Item = Vec<String>>) -> String {
    let mut all: Vec<Vec<String>> = vec![header.iter().map(|h| h.to_string()).collect()];
    all.extend(rows);
    let mut width = vec![0; header.len()];
    for r in &all {
        for (i, c) in r.iter().enumerate() {
            width[i] = width[i].max(c.chars().count());
        }
    }
    let mut out = String::new();
    for r in &all {
        let mut line = String::new();
        for (i, c) in r.iter().enumerate() {
            if i + 1 == r.len() {
                line.push_str(c);
            } else {
                let pad = width[i] - c.chars().count() + 2;
                line.push_str(c);
                line.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admin::proxy_config::view::{Mode, PolicyView, RouteView};

    fn doc() -> ProxyConfig {
        let b = |subset: &str, weight| BackendView {
            host: Some("reviews.default.svc.cluster.local".into()),
            namespace: Some("default".into()),
            subset: Some(subset.into()),
            port: None,
            weight,
            cluster: None,
            cluster_header: None,
            invalid: None,
        };
        ProxyConfig {
            mode: Mode::Host,
            waypoint: Some("default/waypoint".into()),
            generation: Some(3),
            routes: vec![RouteView {
                table: "waypoint".into(),
                service: "reviews.default.svc.cluster.local".into(),
                domains: vec![],
                port: None,
                matcher: "*".into(),
                action: "forward".into(),
                backends: vec![b("v1", 90), b("v3", 10)],
                resource: Some("VirtualService/default/reviews".into()),
                rule: Some("canary".into()),
                source: "VirtualService".into(),
                timeout_ms: Some(10_000),
                retries: None,
                fault: None,
                mirrors: vec![],
            }],
            clusters: vec![],
            endpoints: vec![],
            policies: vec![PolicyView {
                name: "reviews-viewer".into(),
                namespace: "default".into(),
                action: "ALLOW".into(),
                dry_run: true,
                targets: vec!["Service/default/reviews".into()],
                rules: 1,
                provider: None,
                fail_closed: false,
            }],
            secrets: vec![],
            warnings: vec![],
        }
    }

    #[test]
    fn short_routes_show_each_weight() {
        let out = render(&doc(), Section::Routes, Format::Short).expect("render");
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 2, "{out}");
        assert!(lines[0].starts_with("SERVICE "), "{out}");
        assert!(
            lines[1].contains(
                "reviews.default.svc.cluster.local/v1=90, reviews.default.svc.cluster.local/v3=10"
            ),
            "{out}"
        );
        assert!(
            lines[1].ends_with("VirtualService/default/reviews#canary"),
            "{out}"
        );
    }

    #[test]
    fn json_keeps_only_the_section_and_every_field() {
        let out = render(&doc(), Section::Policies, Format::Json).expect("render");
        let v: Value = serde_json::from_str(&out).expect("json");
        assert!(v.get("routes").is_none(), "{out}");
        assert_eq!(v["mode"], "host");
        assert_eq!(v["generation"], 3);
        assert_eq!(v["policies"][0]["name"], "reviews-viewer");
        assert!(v["policies"][0]["provider"].is_null());
        assert!(v["policies"][0]
            .as_object()
            .is_some_and(|o| o.contains_key("provider")));
        let all = render(&doc(), Section::All, Format::Json).expect("render");
        let v: Value = serde_json::from_str(&all).expect("json");
        let weights: Vec<u64> = v["routes"][0]["backends"]
            .as_array()
            .expect("backends")
            .iter()
            .filter_map(|b| b["weight"].as_u64())
            .collect();
        assert_eq!(weights, vec![90, 10]);
        assert!(v["routes"][0]["backends"][0]["port"].is_null());
    }

    #[test]
    fn yaml_round_trips_to_the_same_document() {
        let out = render(&doc(), Section::All, Format::Yaml).expect("render");
        let back: ProxyConfig = serde_yaml::from_str(&out).expect("yaml");
        assert_eq!(back, doc());
        let notes = render(&doc(), Section::Policies, Format::Short).expect("render");
        assert!(notes.contains("dry-run"), "{notes}");
    }
}

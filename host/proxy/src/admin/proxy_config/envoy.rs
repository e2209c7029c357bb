//! Envoy mode: Envoy's `/config_dump?include_eds` (clusters, endpoints, route configs) and
//! `/certs`, plus the routes and policies the module compiles from its `filter_config`.
//!
//! Envoy's route table only hands the module's choice to the router, so the waypoint's routes,
//! weights and policies come from compiling the module's manifests as the module does.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;
use waypoint_core::{BuildOptions, NamespacedName, Snapshot};

use super::snapshot as snap_view;
use super::view::{
    BackendView, ClusterView, EndpointView, Mode, ProxyConfig, RouteView, SecretView,
};

/// The part of the module's `filter_config` that says what it compiles (other fields are
/// the module's business and ignored here).
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
pub struct ModuleSpec {
    #[serde(default)]
    pub config_paths: Vec<String>,
    #[serde(default)]
    pub config_inline: Option<String>,
    #[serde(default)]
    pub waypoint: Option<String>,
    #[serde(default)]
    pub default_namespace: Option<String>,
}

/// Build the view from Envoy's answers. `workdir` is Envoy's working directory, against
/// which relative `config_paths` resolve.
pub fn view(config_dump: &Value, certs: &Value, workdir: &Path) -> ProxyConfig {
    let mut warnings = Vec::new();
    let module = match module_snapshot(config_dump, workdir) {
        Ok((s, w)) => {
            warnings.extend(w);
            Some(s)
        }
        Err(e) => {
            warnings.push(format!("module config: {e}"));
            None
        }
    };
    let (clusters, endpoints) = clusters(config_dump, module.as_ref());
    let mut routes = module.as_ref().map(snap_view::routes).unwrap_or_default();
    routes.extend(envoy_routes(config_dump));
    ProxyConfig {
        mode: Mode::Envoy,
        waypoint: module.as_ref().and_then(snap_view::waypoint),
        generation: None,
        routes,
        clusters,
        endpoints,
        policies: module.as_ref().map(snap_view::policies).unwrap_or_default(),
        secrets: {
            let mut all = sds_secrets(config_dump, &mut warnings);
            for s in secrets(certs) {
                if !all.iter().any(|o| o.serial == s.serial && o.kind == s.kind) {
                    all.push(s);
                }
            }
            all
        },
        warnings,
    }
}

/// Bytes of an Envoy `DataSource` given inline (files are read by Envoy; `/certs` has them).
fn inline_data(ds: &Value) -> Option<Vec<u8>> {
    use base64::Engine as _;
    if let Some(s) = ds["inline_string"].as_str() {
        return Some(s.as_bytes().to_vec());
    }
    ds["inline_bytes"]
        .as_str()
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
}

/// DER of every `CERTIFICATE` block of a PEM text.
fn pem_certs(pem: &[u8]) -> Vec<Vec<u8>> {
    x509_parser::pem::Pem::iter_from_buffer(pem)
        .filter_map(Result::ok)
        .filter(|p| p.label == "CERTIFICATE")
        .map(|p| p.contents)
        .collect()
}

/// SDS secrets (what `waypoint xds` sends: `default`, `ROOTCA`), from their certificates only:
/// the private key is never read (Envoy shows it redacted anyway).
fn sds_secrets(dump: &Value, warnings: &mut Vec<String>) -> Vec<SecretView> {
    let mut out = Vec::new();
    for d in dump_configs(dump, ".SecretsConfigDump") {
        for key in ["static_secrets", "dynamic_active_secrets"] {
            for x in d[key].as_array().into_iter().flatten() {
                let name = x["name"].as_str().unwrap_or("?");
                let secret = &x["secret"];
                let mut push = |der: &[u8], kind: &str, len: usize| match super::certs::secret(
                    der, name, kind, len,
                ) {
                    Ok(s) => out.push(s),
                    Err(e) => warnings.push(format!("secret {name}: {e}")),
                };
                if let Some(pem) = inline_data(&secret["tls_certificate"]["certificate_chain"]) {
                    let chain = pem_certs(&pem);
                    if let Some(leaf) = chain.first() {
                        push(leaf, "cert_chain", chain.len());
                    }
                }
                if let Some(pem) = inline_data(&secret["validation_context"]["trusted_ca"]) {
                    for der in pem_certs(&pem) {
                        push(&der, "root", 1);
                    }
                }
            }
        }
    }
    out
}

/// Every object of `v`, depth first (config dumps nest the interesting parts deeply and
/// differently for static, LDS and ECDS resources).
fn walk<'a>(v: &'a Value, f: &mut dyn FnMut(&'a serde_json::Map<String, Value>)) {
    match v {
        Value::Object(m) => {
            f(m);
            for x in m.values() {
                walk(x, f);
            }
        }
        Value::Array(a) => {
            for x in a {
                walk(x, f);
            }
        }
        _ => {}
    }
}

/// The configs of one `@type` suffix in `/config_dump`'s `configs` list.
fn dump_configs<'a>(dump: &'a Value, type_suffix: &str) -> Vec<&'a Value> {
    dump["configs"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|c| {
                    c["@type"]
                        .as_str()
                        .is_some_and(|t| t.ends_with(type_suffix))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The module's `filter_config` specs found anywhere in the dump (listeners or ECDS),
/// distinct, in dump order.
pub fn module_specs(dump: &Value) -> Result<Vec<ModuleSpec>, String> {
    let mut specs: Vec<ModuleSpec> = Vec::new();
    let mut errors = Vec::new();
    walk(dump, &mut |m| {
        let is_module = m
            .get("@type")
            .and_then(Value::as_str)
            .is_some_and(|t| t.ends_with(".DynamicModuleFilter"));
        if !is_module {
            return;
        }
        let Some(fc) = m.get("filter_config") else {
            return;
        };
        // A Struct arrives as its JSON object; a StringValue as a string holding JSON.
        let value = match &fc["value"] {
            Value::String(s) => match serde_json::from_str::<Value>(s) {
                Ok(v) => v,
                Err(e) => {
                    errors.push(format!("filter_config is not JSON: {e}"));
                    return;
                }
            },
            v => v.clone(),
        };
        if value.get("config_paths").is_none() && value.get("config_inline").is_none() {
            return; // another dynamic module
        }
        match serde_json::from_value::<ModuleSpec>(value) {
            Ok(s) => {
                if !specs.contains(&s) {
                    specs.push(s);
                }
            }
            Err(e) => errors.push(format!("filter_config: {e}")),
        }
    });
    if specs.is_empty() {
        return Err(match errors.first() {
            Some(e) => e.clone(),
            None => "no waypoint module filter (DynamicModuleFilter with config_paths or \
                     config_inline) in Envoy's config_dump"
                .into(),
        });
    }
    Ok(specs)
}

/// Compile the module's manifests as the module does. Returns the snapshot and warnings.
pub fn module_snapshot(dump: &Value, workdir: &Path) -> Result<(Snapshot, Vec<String>), String> {
    let specs = module_specs(dump)?;
    let mut warnings = Vec::new();
    if specs.len() > 1 {
        warnings.push(format!(
            "{} different module filter configs; showing the first",
            specs.len()
        ));
    }
    let spec = &specs[0];
    let waypoint = spec
        .waypoint
        .as_deref()
        .map(NamespacedName::parse)
        .transpose()
        .map_err(|e| format!("filter_config field waypoint: {e}"))?;
    let default_ns = spec
        .default_namespace
        .clone()
        .or_else(|| waypoint.as_ref().map(|w| w.namespace.clone()))
        .unwrap_or_else(|| "default".into());
    let loaded = match (&spec.config_inline, spec.config_paths.is_empty()) {
        (Some(text), true) => waypoint_loader::load_text(text, "config_inline", &default_ns),
        (None, false) => {
            let paths: Vec<PathBuf> = spec.config_paths.iter().map(|p| workdir.join(p)).collect();
            for p in &paths {
                if !p.exists() {
                    return Err(format!(
                        "config_paths entry {} not found here (relative paths resolve \
                         against --envoy-workdir, Envoy's working directory)",
                        p.display()
                    ));
                }
            }
            waypoint_loader::load_paths(&paths, &default_ns)
        }
        _ => return Err("filter_config needs exactly one of config_paths, config_inline".into()),
    };
    let opts = BuildOptions {
        waypoint: waypoint.map(NamespacedName::into_pair),
        ..BuildOptions::default()
    };
    let (snapshot, diags) = loaded.build(&opts);
    warnings.extend(diags.errors.iter().map(|e| format!("config error: {e}")));
    warnings.extend(
        diags
            .warnings
            .iter()
            .map(|e| format!("config warning: {e}")),
    );
    Ok((snapshot, warnings))
}

/// `outbound|port|subset|host` → (port, subset, host).
fn parse_istio_cluster(name: &str) -> Option<(u16, String, String)> {
    let mut it = name.split('|');
    if it.next()? != "outbound" {
        return None;
    }
    let port = it.next()?.parse().ok()?;
    let subset = it.next()?.to_string();
    let host = it.next()?.to_string();
    it.next().is_none().then_some((port, subset, host))
}

/// The SPIFFE identity an `hbone|<ip>` cluster requires of its pod, by pod IP.
fn hbone_identities(clusters: &[&Value]) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for c in clusters {
        let Some(ip) = c["name"].as_str().and_then(|n| n.strip_prefix("hbone|")) else {
            continue;
        };
        walk(c, &mut |m| {
            if let Some(Value::Array(sans)) = m.get("match_typed_subject_alt_names") {
                if let Some(id) = sans.iter().find_map(|s| s["matcher"]["exact"].as_str()) {
                    out.insert(ip.to_string(), id.to_string());
                }
            }
        });
    }
    out
}

/// An Envoy address as `ip:port`, with whether it is the HBONE originating internal
/// listener of a mesh pod (`connect_originate|ip:port`).
fn address_text(addr: &Value) -> (String, bool) {
    let sa = &addr["socket_address"];
    if let Some(ip) = sa["address"].as_str() {
        let port = sa["port_value"].as_u64().unwrap_or(0) as u16;
        return (snap_view::host_port(ip, port), false);
    }
    if let Some(name) = addr["envoy_internal_address"]["server_listener_name"].as_str() {
        return match name.strip_prefix("connect_originate|") {
            Some(target) => (target.to_string(), true),
            None => (format!("internal:{name}"), false),
        };
    }
    if let Some(p) = addr["pipe"]["path"].as_str() {
        return (format!("unix:{p}"), false);
    }
    (addr.to_string(), false)
}

/// Envoy's clusters and their endpoints (EDS dump first, the cluster's `load_assignment`
/// otherwise), with DestinationRules from the module's snapshot.
fn clusters(dump: &Value, module: Option<&Snapshot>) -> (Vec<ClusterView>, Vec<EndpointView>) {
    let mut all: Vec<&Value> = Vec::new();
    for c in dump_configs(dump, ".ClustersConfigDump") {
        for key in ["static_clusters", "dynamic_active_clusters"] {
            if let Some(a) = c[key].as_array() {
                all.extend(a.iter().map(|x| &x["cluster"]));
            }
        }
    }
    let mut eds: BTreeMap<String, &Value> = BTreeMap::new();
    for e in dump_configs(dump, ".EndpointsConfigDump") {
        for key in ["static_endpoint_configs", "dynamic_endpoint_configs"] {
            for x in e[key].as_array().into_iter().flatten() {
                let cla = &x["endpoint_config"];
                if let Some(n) = cla["cluster_name"].as_str() {
                    eds.insert(n.to_string(), cla);
                }
            }
        }
    }
    let identities = hbone_identities(&all);
    let mut list = Vec::new();
    let mut seen = BTreeSet::new();
    for c in all {
        let Some(name) = c["name"].as_str() else {
            continue;
        };
        if !seen.insert(name.to_string()) {
            continue;
        }
        let cla = eds.get(name).copied().unwrap_or(&c["load_assignment"]);
        let mut eps = Vec::new();
        for group in cla["endpoints"].as_array().into_iter().flatten() {
            for lb in group["lb_endpoints"].as_array().into_iter().flatten() {
                let (address, hbone) = address_text(&lb["endpoint"]["address"]);
                let ip = address
                    .rsplit_once(':')
                    .map(|(h, _)| h.trim_matches(|c| c == '[' || c == ']').to_string());
                eps.push(EndpointView {
                    cluster: name.to_string(),
                    identity: if hbone {
                        ip.and_then(|ip| identities.get(&ip).cloned())
                    } else {
                        None
                    },
                    address,
                    hbone,
                    health: Some(
                        lb["health_status"]
                            .as_str()
                            .unwrap_or("UNKNOWN")
                            .to_string(),
                    ),
                });
            }
        }
        let istio = parse_istio_cluster(name);
        let dr = istio.as_ref().and_then(|(_, _, host)| {
            module
                .and_then(|s| s.destination_policy(host))
                .map(|p| p.source.clone())
        });
        let protocol = istio.as_ref().and_then(|(port, _, host)| {
            module.and_then(|s| {
                s.registry
                    .services
                    .iter()
                    .find(|svc| &svc.hostname == host)
                    .and_then(|svc| svc.port(*port))
                    .map(|p| p.protocol.clone())
            })
        });
        let view = ClusterView {
            name: name.to_string(),
            service: istio.as_ref().map(|(_, _, h)| h.clone()),
            port: istio.as_ref().map(|(p, _, _)| *p),
            subset: istio
                .as_ref()
                .and_then(|(_, s, _)| (!s.is_empty()).then(|| s.clone())),
            direction: istio.as_ref().map(|_| "outbound".to_string()),
            kind: Some(c["type"].as_str().unwrap_or("STATIC").to_string()),
            protocol,
            destination_rule: dr,
            endpoints: eps.len(),
        };
        eps.sort_by(|a, b| a.address.cmp(&b.address));
        list.push((view, eps));
    }
    snap_view::ordered(list)
}

/// Envoy's own route configurations (inline in connection managers, or from RDS), one row
/// per route.
fn envoy_routes(dump: &Value) -> Vec<RouteView> {
    let mut configs: Vec<(String, &Value)> = Vec::new();
    for l in dump_configs(dump, ".ListenersConfigDump") {
        for key in ["static_listeners", "dynamic_listeners"] {
            for x in l[key].as_array().into_iter().flatten() {
                let listener = if x["listener"].is_object() {
                    &x["listener"]
                } else {
                    &x["active_state"]["listener"]
                };
                let lname = listener["name"].as_str().unwrap_or("?").to_string();
                walk(listener, &mut |m| {
                    if let Some(rc) = m.get("route_config") {
                        configs.push((lname.clone(), rc));
                    }
                });
            }
        }
    }
    // Inline route configs are listed here again: only RDS ones are new.
    for r in dump_configs(dump, ".RoutesConfigDump") {
        for key in ["static_route_configs", "dynamic_route_configs"] {
            for x in r[key].as_array().into_iter().flatten() {
                let rc = &x["route_config"];
                let same = |seen: &Value| {
                    seen == rc || (rc["name"].is_string() && seen["name"] == rc["name"])
                };
                if configs.iter().any(|(_, seen)| same(seen)) {
                    continue;
                }
                let name = rc["name"].as_str().unwrap_or("?").to_string();
                configs.push((name, rc));
            }
        }
    }
    let mut out = Vec::new();
    for (owner, rc) in configs {
        for vh in rc["virtual_hosts"].as_array().into_iter().flatten() {
            let vname = vh["name"].as_str().unwrap_or("?");
            let domains: Vec<String> = vh["domains"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|d| d.as_str().map(str::to_string))
                .collect();
            for r in vh["routes"].as_array().into_iter().flatten() {
                out.push(envoy_route(&format!("{owner}/{vname}"), &domains, r));
            }
        }
    }
    out
}

fn envoy_route(service: &str, domains: &[String], r: &Value) -> RouteView {
    let m = &r["match"];
    let mut parts = Vec::new();
    for (key, label) in [
        ("prefix", "prefix"),
        ("path", "exact"),
        ("path_separated_prefix", "path-prefix"),
    ] {
        if let Some(p) = m[key].as_str() {
            parts.push(format!("path {label} {p:?}"));
        }
    }
    if let Some(re) = m["safe_regex"]["regex"].as_str() {
        parts.push(format!("path regex {re:?}"));
    }
    if m["connect_matcher"].is_object() {
        parts.push("CONNECT".into());
    }
    for h in m["headers"].as_array().into_iter().flatten() {
        let name = h["name"].as_str().unwrap_or("?");
        let not = if h["invert_match"].as_bool() == Some(true) {
            "not "
        } else {
            ""
        };
        let sm = &h["string_match"];
        let what = if h["present_match"].as_bool() == Some(true) {
            Some("present".to_string())
        } else if let Some(re) = sm["safe_regex"]["regex"].as_str() {
            Some(format!("regex {re:?}"))
        } else {
            ["exact", "prefix", "suffix", "contains"]
                .iter()
                .find_map(|k| sm[*k].as_str().map(|x| format!("{k} {x:?}")))
        };
        match what {
            Some(w) => parts.push(format!("header {name} {not}{w}")),
            None => parts.push(format!("header {name} {not}(matcher)")),
        }
    }
    let backend = |cluster: Option<&str>, header: Option<&str>, weight: u32| BackendView {
        host: cluster.and_then(parse_istio_cluster).map(|(_, _, h)| h),
        namespace: None,
        subset: cluster
            .and_then(parse_istio_cluster)
            .and_then(|(_, s, _)| (!s.is_empty()).then_some(s)),
        port: cluster.and_then(parse_istio_cluster).map(|(p, _, _)| p),
        weight,
        cluster: cluster.map(str::to_string),
        cluster_header: header.map(str::to_string),
        invalid: None,
    };
    let route = &r["route"];
    let mut backends = Vec::new();
    if let Some(c) = route["cluster"].as_str() {
        backends.push(backend(Some(c), None, 100));
    }
    if let Some(h) = route["cluster_header"].as_str() {
        backends.push(backend(None, Some(h), 100));
    }
    for wc in route["weighted_clusters"]["clusters"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let w = wc["weight"].as_u64().unwrap_or(0) as u32;
        backends.push(backend(
            wc["name"].as_str(),
            wc["cluster_header"].as_str(),
            w,
        ));
    }
    let (action, suffix) = if r["direct_response"].is_object() {
        let status = r["direct_response"]["status"].as_u64().unwrap_or(0);
        ("direct_response", format!(" -> {status}"))
    } else if r["redirect"].is_object() {
        ("redirect", String::new())
    } else {
        ("forward", String::new())
    };
    RouteView {
        table: "envoy".into(),
        service: service.to_string(),
        domains: domains.to_vec(),
        port: None,
        matcher: if parts.is_empty() {
            format!("*{suffix}")
        } else {
            format!("{}{suffix}", parts.join(" && "))
        },
        action: action.into(),
        backends,
        resource: None,
        rule: r["name"].as_str().map(str::to_string),
        source: "envoy".into(),
        timeout_ms: route["timeout"].as_str().and_then(duration_ms),
        retries: route["retry_policy"]["num_retries"]
            .as_u64()
            .map(|n| n as u32),
        fault: None,
        mirrors: Vec::new(),
    }
}

/// A protobuf JSON duration (`"10s"`, `"0.250s"`) in milliseconds.
fn duration_ms(s: &str) -> Option<u64> {
    let secs: f64 = s.strip_suffix('s')?.parse().ok()?;
    Some((secs * 1000.0).round() as u64)
}

/// Envoy's `/certs`: each distinct certificate once (many TLS contexts share the files).
fn secrets(certs: &Value) -> Vec<SecretView> {
    let mut out: Vec<SecretView> = Vec::new();
    for entry in certs["certificates"].as_array().into_iter().flatten() {
        for (key, kind) in [("cert_chain", "cert_chain"), ("ca_cert", "root")] {
            let list = entry[key].as_array().map(Vec::as_slice).unwrap_or(&[]);
            for c in list {
                let sans: Vec<String> = c["subject_alt_names"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|s| {
                        s.as_object()
                            .and_then(|o| o.values().next())
                            .and_then(Value::as_str)
                            .map(str::to_string)
                    })
                    .collect();
                let s = SecretView {
                    name: c["path"].as_str().unwrap_or("?").to_string(),
                    kind: kind.into(),
                    identity: sans.iter().find(|s| s.starts_with("spiffe://")).cloned(),
                    sans,
                    serial: c["serial_number"]
                        .as_str()
                        .unwrap_or("")
                        .to_ascii_lowercase(),
                    not_before: c["valid_from"].as_str().unwrap_or("").to_string(),
                    not_after: c["expiration_time"].as_str().unwrap_or("").to_string(),
                    chain_length: if kind == "root" { 1 } else { list.len() },
                };
                if !out
                    .iter()
                    .any(|o| o.name == s.name && o.serial == s.serial && o.kind == s.kind)
                {
                    out.push(s);
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn istio_cluster_names() {
        assert_eq!(
            parse_istio_cluster("outbound|9080|v1|reviews.default.svc.cluster.local"),
            Some((
                9080,
                "v1".into(),
                "reviews.default.svc.cluster.local".into()
            ))
        );
        assert_eq!(parse_istio_cluster("hbone|10.0.0.1"), None);
        assert_eq!(parse_istio_cluster("outbound|x||a"), None);
    }

    #[test]
    fn module_spec_from_struct_or_string_value() {
        let dump = json!({"configs": [{"@type": "x.ListenersConfigDump", "static_listeners": [
        {"listener": {"name": "l", "filter_chains": [{"filters": [{"typed_config": {"http_filters": [
            {"typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.dynamic_modules.v3.DynamicModuleFilter",
                "filter_config": {"@type": "type.googleapis.com/google.protobuf.Struct",
                    "value": {"waypoint": "default/waypoint", "config_paths": ["a"], "metadata": "none"}}}},
            {"typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.dynamic_modules.v3.DynamicModuleFilter",
                "filter_config": {"@type": "type.googleapis.com/google.protobuf.StringValue",
                    "value": "{\"config_inline\": \"kind: X\"}"}}}
        ]}}]}]}}]}]});
        let specs = module_specs(&dump).expect("specs");
        assert_eq!(specs.len(), 2);
        assert_eq!(specs[0].config_paths, vec!["a".to_string()]);
        assert_eq!(specs[0].waypoint.as_deref(), Some("default/waypoint"));
        assert_eq!(specs[1].config_inline.as_deref(), Some("kind: X"));
        let err = module_specs(&json!({"configs": []})).expect_err("none");
        assert!(err.contains("no waypoint module filter"), "{err}");
    }

    #[test]
    fn missing_config_path_names_it() {
        let dump = json!({"x": {"@type": "a.DynamicModuleFilter",
            "filter_config": {"value": {"config_paths": ["no/such/dir"]}}}});
        let err = module_snapshot(&dump, Path::new("/nonexistent")).expect_err("missing");
        assert!(err.contains("/nonexistent/no/such/dir"), "{err}");
    }

    #[test]
    fn weighted_cluster_header_route_and_internal_endpoints() {
        let r = envoy_route(
            "main_internal/all",
            &["*".into()],
            &json!({"match": {"prefix": "/"}, "route": {"timeout": "0s",
                "weighted_clusters": {"clusters": [{"cluster_header": "x-waypoint-cluster", "weight": 1}]}}}),
        );
        assert_eq!(r.matcher, "path prefix \"/\"");
        assert_eq!(r.backends.len(), 1);
        assert_eq!(r.backends[0].weight, 1);
        assert_eq!(
            r.backends[0].cluster_header.as_deref(),
            Some("x-waypoint-cluster")
        );
        let (a, hbone) = address_text(
            &json!({"envoy_internal_address": {"server_listener_name": "connect_originate|10.0.0.1:9080"}}),
        );
        assert_eq!((a.as_str(), hbone), ("10.0.0.1:9080", true));
    }

    #[test]
    fn certs_deduplicated_and_never_more_than_envoy_said() {
        let c = json!({"path": "/c/waypoint.pem", "serial_number": "1C0A",
            "subject_alt_names": [{"uri": "spiffe://cluster.local/ns/default/sa/waypoint"}],
            "valid_from": "2026-12-07T00:00:00Z", "expiration_time": "2026-12-08T00:00:00Z"});
        let r = json!({"path": "/c/ca.pem", "serial_number": "01", "subject_alt_names": [],
            "valid_from": "2026-01-01T00:00:00Z", "expiration_time": "2036-01-01T00:00:00Z"});
        let certs = json!({"certificates": [
            {"cert_chain": [c.clone()], "ca_cert": [r.clone()]},
            {"cert_chain": [c], "ca_cert": [r]},
        ]});
        let s = secrets(&certs);
        assert_eq!(s.len(), 2, "{s:#?}");
        assert_eq!(s[0].kind, "cert_chain");
        assert_eq!(s[0].serial, "1c0a");
        assert_eq!(
            s[0].identity.as_deref(),
            Some("spiffe://cluster.local/ns/default/sa/waypoint")
        );
        assert_eq!(s[1].kind, "root");
        assert_eq!(s[1].not_after, "2036-01-01T00:00:00Z");
    }
}

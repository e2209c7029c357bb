//! The bootstrap → xDS transform: the static bootstrap of `bootstrap::generate` split into
//! Listener, RouteConfiguration, Cluster, ClusterLoadAssignment and Secret resources over ADS.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use serde_json::{json, Map, Value};

use super::proto::{CLUSTER, ENDPOINT, EXTENSION, LISTENER, ROUTE, SECRET};
use super::XdsError;

const HCM: &str = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager";
const DYNAMIC_MODULE: &str =
    "type.googleapis.com/envoy.extensions.filters.http.dynamic_modules.v3.DynamicModuleFilter";
/// Istio's SDS names: the workload certificate and the mesh root.
pub const CERT_SECRET: &str = "default";
pub const ROOT_SECRET: &str = "ROOTCA";

/// A config source that points at the ADS stream.
pub fn ads() -> Value {
    json!({"ads": {}, "resource_api_version": "V3"})
}

/// The resources of one snapshot as JSON, by type URL and name.
pub type JsonResources = BTreeMap<&'static str, BTreeMap<String, Value>>;

/// What the transform needs besides the bootstrap.
#[derive(Debug, Clone, Default)]
pub struct SplitOptions {
    /// The module's manifests, inlined into its `filter_config` (`config_inline`) in place of
    /// `config_paths`: a config change then changes the listener bytes, so it is pushed.
    pub config_inline: Option<String>,
    /// `default_namespace` for the inlined manifests.
    pub default_namespace: Option<String>,
    /// Listener name → address to bind instead of the generated one (tests, several
    /// waypoints on one host).
    pub rebind: BTreeMap<String, SocketAddr>,
}

/// Reads a certificate file named in the bootstrap (PEM text).
pub type ReadFile<'a> = &'a dyn Fn(&str) -> std::io::Result<String>;

/// Split a generated bootstrap into xDS resources. Inline route tables become RDS, inline
/// endpoints EDS, certificate files SDS secrets (read through `read`), and the module's HTTP
/// filter config ECDS: a policy change then updates the filter config in place (new streams
/// get it, streams in flight keep theirs) instead of replacing and draining the listener.
pub fn split(
    bootstrap: &Value,
    o: &SplitOptions,
    read: ReadFile,
) -> Result<JsonResources, XdsError> {
    let statics = &bootstrap["static_resources"];
    let mut out: JsonResources = BTreeMap::new();
    let mut secrets = Secrets::default();
    for mut l in array(statics, "listeners")? {
        let name = name_of(&l, "Listener")?;
        if let Some(addr) = o.rebind.get(&name) {
            l["address"] = json!({"socket_address": {"address": addr.ip().to_string(), "port_value": addr.port()}});
        }
        let mut routes = Vec::new();
        let mut filters = Vec::new();
        walk(&mut l, &mut |obj| {
            if obj.get("@type").and_then(Value::as_str) == Some(HCM) {
                if let Some(rc) = obj.remove("route_config") {
                    let rname = rc["name"].as_str().unwrap_or(&name).to_string();
                    obj.insert(
                        "rds".into(),
                        json!({"config_source": ads(), "route_config_name": rname}),
                    );
                    routes.push((rname, rc));
                }
            }
            // An HTTP filter entry with our module → an ECDS reference.
            let is_module = obj
                .get("typed_config")
                .and_then(|t| t.get("@type"))
                .and_then(Value::as_str)
                == Some(DYNAMIC_MODULE);
            if is_module {
                if let (Some(fname), Some(mut tc)) = (
                    obj.get("name").and_then(Value::as_str).map(str::to_string),
                    obj.remove("typed_config"),
                ) {
                    if let Some(m) = tc.as_object_mut() {
                        inline_module_config(m, o);
                    }
                    obj.insert(
                        "config_discovery".into(),
                        json!({"config_source": ads(), "type_urls": [DYNAMIC_MODULE]}),
                    );
                    filters.push((fname.clone(), json!({"name": fname, "typed_config": tc})));
                }
            }
        });
        for (fname, ext) in filters {
            if out
                .entry(EXTENSION)
                .or_default()
                .insert(fname.clone(), ext)
                .is_some()
            {
                return Err(XdsError::Duplicate("TypedExtensionConfig", fname));
            }
        }
        secrets.rewrite(&mut l, read)?;
        for (rname, mut rc) in routes {
            rc["name"] = json!(rname);
            if out
                .entry(ROUTE)
                .or_default()
                .insert(rname.clone(), rc)
                .is_some()
            {
                return Err(XdsError::Duplicate("RouteConfiguration", rname));
            }
        }
        if out
            .entry(LISTENER)
            .or_default()
            .insert(name.clone(), l)
            .is_some()
        {
            return Err(XdsError::Duplicate("Listener", name));
        }
    }
    for mut c in array(statics, "clusters")? {
        let name = name_of(&c, "Cluster")?;
        // DNS clusters (an EnvoyFilter CLUSTER patch's STRICT_DNS) resolve their own
        // load_assignment: only static endpoints move to EDS.
        let dns = matches!(c["type"].as_str(), Some("STRICT_DNS" | "LOGICAL_DNS"));
        if let Some(obj) = c.as_object_mut().filter(|_| !dns) {
            if let Some(mut la) = obj.remove("load_assignment") {
                la["cluster_name"] = json!(name);
                obj.insert("type".into(), json!("EDS"));
                obj.insert("eds_cluster_config".into(), json!({"eds_config": ads()}));
                out.entry(ENDPOINT).or_default().insert(name.clone(), la);
            }
        }
        secrets.rewrite(&mut c, read)?;
        if out
            .entry(CLUSTER)
            .or_default()
            .insert(name.clone(), c)
            .is_some()
        {
            return Err(XdsError::Duplicate("Cluster", name));
        }
    }
    if !secrets.by_name.is_empty() {
        out.insert(SECRET, secrets.by_name);
    }
    Ok(out)
}

fn array(v: &Value, key: &str) -> Result<Vec<Value>, XdsError> {
    match &v[key] {
        Value::Array(a) => Ok(a.clone()),
        Value::Null => Ok(Vec::new()),
        _ => Err(XdsError::Shape(format!(
            "static_resources.{key} is not a list"
        ))),
    }
}

fn name_of(v: &Value, kind: &str) -> Result<String, XdsError> {
    v["name"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| XdsError::Shape(format!("a {kind} without a name")))
}

/// Apply `f` to every JSON object in `v`, outermost first.
fn walk(v: &mut Value, f: &mut dyn FnMut(&mut Map<String, Value>)) {
    match v {
        Value::Object(m) => {
            f(m);
            for (_, x) in m.iter_mut() {
                walk(x, f);
            }
        }
        Value::Array(a) => a.iter_mut().for_each(|x| walk(x, f)),
        _ => {}
    }
}

/// `filter_config.value.config_paths` → `config_inline` (+ `default_namespace`).
fn inline_module_config(module: &mut Map<String, Value>, o: &SplitOptions) {
    let Some(text) = &o.config_inline else {
        return;
    };
    let Some(value) = module
        .get_mut("filter_config")
        .and_then(|fc| fc.get_mut("value"))
        .and_then(Value::as_object_mut)
    else {
        return;
    };
    if value.remove("config_paths").is_some() {
        value.insert("config_inline".into(), json!(text));
        if let Some(ns) = &o.default_namespace {
            value.insert("default_namespace".into(), json!(ns));
        }
    }
}

/// Certificate files → SDS secrets, named like Istio's (`default`, `ROOTCA`); further distinct
/// files get `file-cert:<path>` / `file-root:<path>`.
#[derive(Default)]
struct Secrets {
    certs: BTreeMap<(String, String), String>,
    roots: BTreeMap<String, String>,
    by_name: BTreeMap<String, Value>,
}

impl Secrets {
    fn rewrite(&mut self, v: &mut Value, read: ReadFile) -> Result<(), XdsError> {
        let mut err = None;
        walk(v, &mut |obj| {
            if err.is_some() {
                return;
            }
            if let Err(e) = self.rewrite_obj(obj, read) {
                err = Some(e);
            }
        });
        err.map_or(Ok(()), Err)
    }

    fn rewrite_obj(
        &mut self,
        obj: &mut Map<String, Value>,
        read: ReadFile,
    ) -> Result<(), XdsError> {
        if let Some(Value::Array(certs)) = obj.get("tls_certificates").cloned() {
            let mut refs = Vec::new();
            for c in &certs {
                let (Some(chain), Some(key)) = (
                    c["certificate_chain"]["filename"].as_str(),
                    c["private_key"]["filename"].as_str(),
                ) else {
                    continue;
                };
                let n = self.certs.len();
                let name = self
                    .certs
                    .entry((chain.to_string(), key.to_string()))
                    .or_insert_with(|| {
                        if n == 0 {
                            CERT_SECRET.to_string()
                        } else {
                            format!("file-cert:{chain}")
                        }
                    })
                    .clone();
                if !self.by_name.contains_key(&name) {
                    let secret = json!({"name": name, "tls_certificate": {
                        "certificate_chain": {"inline_string": read_pem(read, chain)?},
                        "private_key": {"inline_string": read_pem(read, key)?}}});
                    self.by_name.insert(name.clone(), secret);
                }
                refs.push(json!({"name": name, "sds_config": ads()}));
            }
            if refs.len() == certs.len() {
                obj.remove("tls_certificates");
                obj.insert("tls_certificate_sds_secret_configs".into(), json!(refs));
            }
        }
        let ca_file = obj
            .get("validation_context")
            .and_then(|vc| vc["trusted_ca"]["filename"].as_str())
            .map(str::to_string);
        if let Some(ca) = ca_file {
            let n = self.roots.len();
            let name = self
                .roots
                .entry(ca.clone())
                .or_insert_with(|| {
                    if n == 0 {
                        ROOT_SECRET.to_string()
                    } else {
                        format!("file-root:{ca}")
                    }
                })
                .clone();
            if !self.by_name.contains_key(&name) {
                let secret = json!({"name": name, "validation_context": {
                    "trusted_ca": {"inline_string": read_pem(read, &ca)?}}});
                self.by_name.insert(name.clone(), secret);
            }
            let mut rest = obj
                .remove("validation_context")
                .unwrap_or_else(|| json!({}));
            if let Some(m) = rest.as_object_mut() {
                m.remove("trusted_ca");
            }
            // Istio's shape: the SAN matchers stay local, the root comes from SDS.
            obj.insert(
                "combined_validation_context".into(),
                json!({"default_validation_context": rest,
                       "validation_context_sds_secret_config": {"name": name, "sds_config": ads()}}),
            );
        }
        Ok(())
    }
}

fn read_pem(read: ReadFile, path: &str) -> Result<String, XdsError> {
    read(path).map_err(|e| XdsError::Certificate(path.to_string(), e.to_string()))
}

/// The bootstrap `waypoint bootstrap --xds ADDR` writes: node, admin and bootstrap extensions
/// of the static bootstrap, and one cluster pointing at the ADS server; everything else
/// (listeners, routes, clusters, endpoints, secrets) comes over ADS.
pub fn xds_bootstrap(static_bootstrap: &Value, xds: SocketAddr, delta: bool) -> Value {
    let mut node = static_bootstrap["node"].clone();
    if let Some(w) = node["cluster"].as_str().map(str::to_string) {
        node["metadata"] = json!({"WAYPOINT": w});
    }
    json!({
        "node": node,
        "admin": static_bootstrap["admin"],
        "bootstrap_extensions": static_bootstrap["bootstrap_extensions"],
        "layered_runtime": static_bootstrap["layered_runtime"],
        "dynamic_resources": {
            "ads_config": {
                "api_type": if delta { "DELTA_GRPC" } else { "GRPC" },
                "transport_api_version": "V3",
                "set_node_on_first_message_only": true,
                "grpc_services": [{"envoy_grpc": {"cluster_name": "xds-grpc"}}]},
            "lds_config": ads(),
            "cds_config": ads()},
        "static_resources": {"clusters": [{
            "name": "xds-grpc",
            "type": "STATIC",
            "connect_timeout": "1s",
            "typed_extension_protocol_options": {"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                "explicit_http_config": {"http2_protocol_options": {}}}},
            "load_assignment": {"cluster_name": "xds-grpc", "endpoints": [{"lb_endpoints": [{"endpoint": {
                "address": {"socket_address": {"address": xds.ip().to_string(), "port_value": xds.port()}}}}]}]}}]},
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Value {
        json!({"static_resources": {
            "listeners": [{
                "name": "l1",
                "address": {"socket_address": {"address": "0.0.0.0", "port_value": 15008}},
                "filter_chains": [{
                    "transport_socket": {"name": "tls", "typed_config": {"common_tls_context": {
                        "tls_certificates": [{"certificate_chain": {"filename": "/c/cert.pem"},
                                              "private_key": {"filename": "/c/key.pem"}}],
                        "validation_context": {"trusted_ca": {"filename": "/c/ca.pem"},
                                               "match_typed_subject_alt_names": [{"san_type": "URI"}]}}}},
                    "filters": [{"name": "hcm", "typed_config": {"@type": HCM,
                        "route_config": {"name": "r1", "virtual_hosts": []},
                        "http_filters": [{"name": "waypoint", "typed_config": {"@type": DYNAMIC_MODULE,
                            "filter_config": {"value": {"waypoint": "a/b", "config_paths": ["x"]}}}}]}}]}]}],
            "clusters": [{"name": "c1", "type": "STATIC",
                "load_assignment": {"cluster_name": "c1", "endpoints": []}},
                {"name": "dns", "type": "STRICT_DNS",
                "load_assignment": {"cluster_name": "dns", "endpoints": []}}]}})
    }

    fn read(p: &str) -> std::io::Result<String> {
        Ok(format!("PEM of {p}"))
    }

    #[test]
    fn split_moves_inline_parts_to_their_own_resources() {
        let o = SplitOptions {
            config_inline: Some("kind: X".into()),
            default_namespace: Some("ns".into()),
            rebind: BTreeMap::from([("l1".to_string(), "127.0.0.1:9".parse().expect("addr"))]),
        };
        let r = split(&sample(), &o, &read).expect("split");
        let l = &r[LISTENER]["l1"];
        let hcm = &l["filter_chains"][0]["filters"][0]["typed_config"];
        assert_eq!(hcm["rds"]["route_config_name"], "r1");
        assert!(hcm.get("route_config").is_none());
        assert_eq!(l["address"]["socket_address"]["port_value"], 9);
        assert_eq!(
            hcm["http_filters"][0],
            json!({"name": "waypoint", "config_discovery": {"config_source": ads(), "type_urls": [DYNAMIC_MODULE]}})
        );
        let module = &r[EXTENSION]["waypoint"]["typed_config"]["filter_config"]["value"];
        assert_eq!(
            module,
            &json!({"waypoint": "a/b", "config_inline": "kind: X", "default_namespace": "ns"})
        );
        let tls = &l["filter_chains"][0]["transport_socket"]["typed_config"]["common_tls_context"];
        assert_eq!(
            tls["tls_certificate_sds_secret_configs"][0]["name"],
            CERT_SECRET
        );
        assert_eq!(
            tls["combined_validation_context"]["validation_context_sds_secret_config"]["name"],
            ROOT_SECRET
        );
        assert_eq!(
            tls["combined_validation_context"]["default_validation_context"],
            json!({"match_typed_subject_alt_names": [{"san_type": "URI"}]})
        );
        assert_eq!(r[ROUTE]["r1"]["name"], "r1");
        assert_eq!(r[CLUSTER]["c1"]["type"], "EDS");
        assert_eq!(r[CLUSTER]["dns"]["type"], "STRICT_DNS");
        assert!(r[CLUSTER]["dns"]["load_assignment"].is_object());
        assert!(r[CLUSTER]["c1"].get("load_assignment").is_none());
        assert_eq!(r[ENDPOINT]["c1"]["cluster_name"], "c1");
        assert_eq!(
            r[SECRET][CERT_SECRET]["tls_certificate"]["private_key"]["inline_string"],
            "PEM of /c/key.pem"
        );
        assert_eq!(
            r[SECRET][ROOT_SECRET]["validation_context"]["trusted_ca"]["inline_string"],
            "PEM of /c/ca.pem"
        );
    }

    #[test]
    fn unreadable_certificate_names_the_file() {
        let fail = |_: &str| -> std::io::Result<String> { Err(std::io::Error::other("gone")) };
        let err = split(&sample(), &SplitOptions::default(), &fail).expect_err("must fail");
        assert!(err.to_string().contains("/c/"), "{err}");
    }
}

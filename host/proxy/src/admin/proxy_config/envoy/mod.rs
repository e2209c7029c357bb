//! Envoy mode: Envoy's `/config_dump?include_eds` and `/certs`, plus the routes and policies
//! the module compiles from its `filter_config` (Envoy's own table only hands its choice on).

mod clusters;
mod module;
mod routes;
mod secrets;

use std::path::Path;

use serde_json::Value;

use super::snapshot as snap_view;
use super::view::{Mode, ProxyConfig};

pub use module::{module_snapshot, module_specs, ModuleSpec};

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
    let (clusters, endpoints) = clusters::clusters(config_dump, module.as_ref());
    let mut routes = module.as_ref().map(snap_view::routes).unwrap_or_default();
    routes.extend(routes::envoy_routes(config_dump));
    ProxyConfig {
        mode: Mode::Envoy,
        waypoint: module.as_ref().and_then(snap_view::waypoint),
        generation: None,
        routes,
        clusters,
        endpoints,
        policies: module.as_ref().map(snap_view::policies).unwrap_or_default(),
        secrets: {
            let mut all = secrets::sds_secrets(config_dump, &mut warnings);
            for s in secrets::file_secrets(certs) {
                if !all.iter().any(|o| o.serial == s.serial && o.kind == s.kind) {
                    all.push(s);
                }
            }
            all
        },
        warnings,
    }
}

/// Every object of `v`, depth first (config dumps nest the interesting parts deeply and
/// differently for static, LDS and ECDS resources).
pub(super) fn walk<'a>(v: &'a Value, f: &mut dyn FnMut(&'a serde_json::Map<String, Value>)) {
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
pub(super) fn dump_configs<'a>(dump: &'a Value, type_suffix: &str) -> Vec<&'a Value> {
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

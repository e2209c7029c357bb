//! The module's `filter_config` found in Envoy's config dump (listener or ECDS) and its
//! manifests compiled as the module compiles them.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;
use waypoint_core::{BuildOptions, NamespacedName, Snapshot};

use super::walk;

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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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
}

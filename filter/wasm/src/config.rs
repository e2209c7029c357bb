//! The plugin configuration (`envoy.filters.http.wasm` `configuration`): the same manifests and
//! waypoint fields the module's `filter_config` takes, compiled once per plugin into a snapshot.

use serde::Deserialize;
use waypoint_core::{BuildOptions, ConfigError, NamespacedName, Snapshot};

/// Default filter-state key of the peer principal (Istio's key, as the module reads it).
pub const DEFAULT_PRINCIPAL_KEY: &str = "io.istio.peer_principal";
/// Default filter-state key of the original destination `ip:port` (as the module reads it).
pub const DEFAULT_DESTINATION_KEY: &str = "waypoint.original_dst";

/// The JSON of the plugin configuration. Field names are the module's (`filter/envoy`
/// `FilterConfigSpec`); what the Wasm sandbox cannot do is refused by name, never ignored.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct WasmConfigSpec {
    /// Manifests inline (multi-document YAML or JSON). Required: a Wasm VM in Envoy has no
    /// file system, so the module's `config_paths` cannot be read here.
    #[serde(default)]
    pub config_inline: Option<String>,
    /// Refused with a message (kept so the module's configs get a clear error).
    #[serde(default)]
    pub config_paths: Vec<String>,
    /// `namespace/name` of the waypoint; when absent, the config must hold exactly one.
    #[serde(default)]
    pub waypoint: Option<String>,
    /// Namespace for resources that do not name one.
    #[serde(default)]
    pub default_namespace: Option<String>,
    /// Filter-state key with the peer principal.
    #[serde(default)]
    pub principal_filter_state: Option<String>,
    /// `auto` (default: peer certificate, else filter state), `filter_state` or
    /// `peer_certificate`, as in the module.
    #[serde(default)]
    pub principal_from: PrincipalFrom,
    /// Filter-state key with the original destination `ip:port`.
    #[serde(default)]
    pub destination_filter_state: Option<String>,
}

/// Where the source principal comes from (the module's `principal_from`).
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum PrincipalFrom {
    #[default]
    Auto,
    FilterState,
    PeerCertificate,
}

/// Why a plugin configuration was rejected.
#[derive(Debug, thiserror::Error)]
pub enum WasmConfigError {
    #[error("waypoint wasm configuration: {0}")]
    Spec(String),
    #[error("waypoint config has {} error(s): {}", .0.len(), join(.0))]
    Resources(Vec<ConfigError>),
}

fn join(errs: &[ConfigError]) -> String {
    errs.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// One compiled plugin configuration.
#[derive(Debug)]
pub struct WasmConfig {
    pub snapshot: Snapshot,
    pub principal_key: String,
    pub principal_from: PrincipalFrom,
    pub destination_key: String,
    /// Warnings from compiling the config (logged once by the caller).
    pub warnings: Vec<ConfigError>,
}

impl WasmConfig {
    /// Parse the plugin configuration bytes and compile the manifests they carry.
    pub fn from_bytes(raw: &[u8]) -> Result<WasmConfig, WasmConfigError> {
        let text = std::str::from_utf8(raw)
            .map_err(|e| WasmConfigError::Spec(format!("not UTF-8: {e}")))?;
        let spec: WasmConfigSpec = serde_json::from_str(text.trim())
            .map_err(|e| WasmConfigError::Spec(format!("invalid JSON: {e}")))?;
        Self::from_spec(&spec)
    }

    /// Compile a parsed spec.
    pub fn from_spec(spec: &WasmConfigSpec) -> Result<WasmConfig, WasmConfigError> {
        if !spec.config_paths.is_empty() {
            return Err(WasmConfigError::Spec(
                "field config_paths: a Wasm VM has no file system; put the manifests in \
                 config_inline"
                    .into(),
            ));
        }
        let Some(text) = spec.config_inline.as_deref() else {
            return Err(WasmConfigError::Spec(
                "field config_inline: the manifests are required".into(),
            ));
        };
        let waypoint = spec
            .waypoint
            .as_deref()
            .map(|w| {
                NamespacedName::parse(w).map_err(|e| {
                    WasmConfigError::Spec(format!(
                        "field waypoint: expected \"namespace/name\", got {w:?} ({})",
                        e.reason
                    ))
                })
            })
            .transpose()?;
        let default_ns = spec
            .default_namespace
            .clone()
            .or_else(|| waypoint.as_ref().map(|w| w.namespace.clone()))
            .unwrap_or_else(|| "default".to_string());
        let loaded = waypoint_loader::load_text(text, "config_inline", &default_ns);
        let opts = BuildOptions {
            waypoint: waypoint.map(|w| (w.namespace, w.name)),
            ..BuildOptions::default()
        };
        let (snapshot, diags) = loaded.build(&opts);
        if !diags.errors.is_empty() {
            return Err(WasmConfigError::Resources(diags.errors));
        }
        // RequestAuthentication needs Envoy's jwt_authn filter in front and its payload
        // headers (how the module verifies tokens); deciding without it would skip the check.
        if !snapshot.jwt_rules().is_empty() {
            return Err(WasmConfigError::Spec(
                "RequestAuthentication is not supported by the Wasm filter (use the module)".into(),
            ));
        }
        Ok(WasmConfig {
            snapshot,
            principal_key: spec
                .principal_filter_state
                .clone()
                .unwrap_or_else(|| DEFAULT_PRINCIPAL_KEY.to_string()),
            principal_from: spec.principal_from,
            destination_key: spec
                .destination_filter_state
                .clone()
                .unwrap_or_else(|| DEFAULT_DESTINATION_KEY.to_string()),
            warnings: diags.warnings,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SVC: &str = "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: waypoint, namespace: bookinfo}\nspec: {gatewayClassName: istio-waypoint, listeners: [{name: mesh, port: 15008, protocol: HBONE}]}\n---\napiVersion: v1\nkind: Service\nmetadata: {name: reviews, namespace: bookinfo, labels: {istio.io/use-waypoint: waypoint}}\nspec: {clusterIP: 10.96.0.11, ports: [{port: 9080, name: http}]}\n";

    #[test]
    fn inline_manifests_compile() {
        let spec = serde_json::json!({"waypoint": "bookinfo/waypoint", "config_inline": SVC});
        let cfg = WasmConfig::from_bytes(spec.to_string().as_bytes()).expect("config");
        assert_eq!(cfg.snapshot.bound_services().count(), 1);
        assert_eq!(cfg.principal_key, DEFAULT_PRINCIPAL_KEY);
        assert_eq!(cfg.destination_key, DEFAULT_DESTINATION_KEY);
    }

    #[test]
    fn what_the_sandbox_cannot_do_is_refused_by_name() {
        for (json, want) in [
            (
                serde_json::json!({"config_paths": ["/etc/waypoint"]}),
                "no file system",
            ),
            (serde_json::json!({"waypoint": "a/b"}), "config_inline"),
            (
                serde_json::json!({"config_inline": SVC, "metadata": "full"}),
                "unknown field `metadata`",
            ),
            (
                serde_json::json!({"config_inline": SVC, "waypoint": "nope"}),
                "field waypoint",
            ),
        ] {
            let err = WasmConfig::from_bytes(json.to_string().as_bytes())
                .err()
                .unwrap_or_else(|| panic!("{json} should fail"));
            assert!(err.to_string().contains(want), "{json}: {err}");
        }
    }

    #[test]
    fn request_authentication_is_refused() {
        let ra = "---\napiVersion: security.istio.io/v1\nkind: RequestAuthentication\nmetadata: {name: jwt, namespace: bookinfo}\nspec:\n  targetRefs: [{kind: Gateway, group: gateway.networking.k8s.io, name: waypoint}]\n  jwtRules: [{issuer: https://issuer.example, jwks: '{\"keys\": []}'}]\n";
        let spec = serde_json::json!({"waypoint": "bookinfo/waypoint", "config_inline": format!("{SVC}{ra}")});
        let err = WasmConfig::from_bytes(spec.to_string().as_bytes()).expect_err("refused");
        assert!(err.to_string().contains("RequestAuthentication"), "{err}");
    }
}

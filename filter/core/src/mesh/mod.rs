//! Istio MeshConfig as a waypoint uses it: the `istio` ConfigMap's `data.mesh`: ext_authz and
//! OpenTelemetry `extensionProviders`, `defaultProviders`, `accessLogFile`, path normalization.

mod provider;
mod spec;
mod tracing_provider;

#[cfg(test)]
mod tests;

pub use provider::{
    ExtAuthzGrpc, ExtAuthzHttp, ExtAuthzKind, ExtAuthzProvider, HeaderPattern,
    DEFAULT_EXT_AUTHZ_TIMEOUT, DEFAULT_STATUS_ON_ERROR,
};

pub use tracing_provider::{TracingProvider, DEFAULT_MAX_TAG_LENGTH};

use crate::error::Diagnostics;
use crate::resource::RawResource;
use provider::{compile_provider, provider_name};
use spec::MeshConfigSpec;

/// Name of the ConfigMap Istio reads its MeshConfig from (istiod's `--meshConfig` default
/// source: ConfigMap `istio` in the istiod namespace, key `mesh`).
pub const MESH_CONFIGMAP: &str = "istio";

/// The parts of MeshConfig the waypoint enforces.
#[derive(Debug, Clone, Default)]
pub struct MeshConfig {
    /// Where it came from (`ConfigMap ns/name`), when a ConfigMap was found.
    pub source: Option<crate::error::ResourceId>,
    /// Valid ext_authz providers, in declaration order.
    pub ext_authz: Vec<ExtAuthzProvider>,
    /// Names of declared providers of other kinds (tracing, access log, ...): a CUSTOM
    /// policy naming one is invalid, as in Istio.
    pub other_providers: Vec<String>,
    /// `pathNormalization.normalization` (Istio's default: `BASE`).
    pub path_normalization: PathNormalization,
    /// Valid `opentelemetry` providers (what Telemetry `tracing` can name).
    pub tracing_providers: Vec<TracingProvider>,
    /// Every declared provider name with its kind (`zipkin`, `envoyFileAccessLog`, ...).
    pub provider_kinds: Vec<(String, String)>,
    /// `defaultProviders.tracing`.
    pub default_tracing: Vec<String>,
    /// `defaultProviders.accessLogging`.
    pub default_access_logging: Vec<String>,
    /// `accessLogFile` is set (Istio's legacy switch turning Envoy's access log on).
    pub access_log_file: bool,
}

/// MeshConfig `pathNormalization.normalization`: how the path is normalized once, before
/// authorization, routing and forwarding. Istio maps it onto Envoy's HTTP connection manager
/// (`pilot/pkg/networking/core/listener_builder.go`): `NONE` = no `normalize_path`; `BASE` =
/// `normalize_path`; `MERGE_SLASHES` adds `merge_slashes`; `DECODE_AND_MERGE_SLASHES` adds
/// `path_with_escaped_slashes_action: UNESCAPE_AND_FORWARD`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum PathNormalization {
    None,
    #[default]
    Base,
    MergeSlashes,
    DecodeAndMergeSlashes,
}

impl PathNormalization {
    /// Parse Istio's enum name (`DEFAULT` is `BASE`, as in Istio).
    pub fn parse(s: &str) -> Option<PathNormalization> {
        Some(match s {
            "NONE" => PathNormalization::None,
            "BASE" | "DEFAULT" => PathNormalization::Base,
            "MERGE_SLASHES" => PathNormalization::MergeSlashes,
            "DECODE_AND_MERGE_SLASHES" => PathNormalization::DecodeAndMergeSlashes,
            _ => return None,
        })
    }

    /// Istio's enum name.
    pub fn as_str(self) -> &'static str {
        match self {
            PathNormalization::None => "NONE",
            PathNormalization::Base => "BASE",
            PathNormalization::MergeSlashes => "MERGE_SLASHES",
            PathNormalization::DecodeAndMergeSlashes => "DECODE_AND_MERGE_SLASHES",
        }
    }
}

impl MeshConfig {
    /// The ext_authz provider called `name`.
    pub fn ext_authz_provider(&self, name: &str) -> Option<&ExtAuthzProvider> {
        self.ext_authz.iter().find(|p| p.name == name)
    }

    /// The kind of the provider called `name` (Istio compares names case-insensitively,
    /// `fetchProvider`).
    pub fn provider_kind(&self, name: &str) -> Option<&str> {
        self.provider_kinds
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, k)| k.as_str())
    }

    /// The valid `opentelemetry` provider called `name`.
    pub fn tracing_provider(&self, name: &str) -> Option<&TracingProvider> {
        self.tracing_providers
            .iter()
            .find(|p| p.name.eq_ignore_ascii_case(name))
    }
}

/// Is `r` the mesh ConfigMap (`ConfigMap istio` in the root namespace)?
pub fn is_mesh_configmap(r: &RawResource, root_namespace: &str) -> bool {
    r.group().is_empty()
        && r.kind == "ConfigMap"
        && r.name == MESH_CONFIGMAP
        && r.namespace == root_namespace
}

/// Find and parse the mesh ConfigMap among `resources`. Every problem is an error naming the
/// ConfigMap and the field (`data.mesh.extensionProviders[0].envoyExtAuthzHttp.port`), so a
/// bad mesh config is rejected like any other bad manifest; invalid providers are left out.
pub fn mesh_from_resources(
    resources: &[RawResource],
    root_namespace: &str,
    diags: &mut Diagnostics,
) -> MeshConfig {
    let mut found = resources
        .iter()
        .filter(|r| is_mesh_configmap(r, root_namespace));
    let Some(cm) = found.next() else {
        return MeshConfig::default();
    };
    for dup in found {
        diags.error(dup.error(
            "metadata.name",
            format!(
                "a second mesh ConfigMap {root_namespace}/{MESH_CONFIGMAP} (first from {}); \
                 only one may be given",
                cm.origin
            ),
        ));
    }
    parse_mesh_configmap(cm, diags)
}

/// Parse one mesh ConfigMap.
pub fn parse_mesh_configmap(cm: &RawResource, diags: &mut Diagnostics) -> MeshConfig {
    let mut out = MeshConfig {
        source: Some(cm.id()),
        ..MeshConfig::default()
    };
    let Some(data) = cm.value.get("data") else {
        return out;
    };
    let text = match data.get("mesh") {
        None | Some(serde_json::Value::Null) => return out,
        Some(serde_json::Value::String(s)) => s.as_str(),
        Some(_) => {
            diags.error(cm.error("data.mesh", "must be a string holding the MeshConfig YAML"));
            return out;
        }
    };
    if text.trim().is_empty() {
        return out;
    }
    let de = serde_yaml::Deserializer::from_str(text);
    let spec: MeshConfigSpec = match serde_path_to_error::deserialize(de) {
        Ok(s) => s,
        Err(e) => {
            let path = e.path().to_string();
            let field = if path == "." || path.is_empty() {
                "data.mesh".to_string()
            } else {
                format!("data.mesh.{path}")
            };
            diags.error(cm.error(field, e.inner().to_string()));
            return out;
        }
    };
    if let Some(n) = spec
        .path_normalization
        .as_ref()
        .and_then(|p| p.normalization.as_deref())
    {
        match PathNormalization::parse(n) {
            Some(p) => out.path_normalization = p,
            None => diags.error(cm.error(
                "data.mesh.pathNormalization.normalization",
                format!(
                    "unknown value {n:?}: expected NONE, BASE, MERGE_SLASHES, \
                     DECODE_AND_MERGE_SLASHES or DEFAULT"
                ),
            )),
        }
    }
    if let Some(d) = &spec.default_providers {
        out.default_tracing = d.tracing.clone();
        out.default_access_logging = d.access_logging.clone();
    }
    out.access_log_file = spec
        .access_log_file
        .as_deref()
        .is_some_and(|f| !f.trim().is_empty());
    let mut seen: Vec<&str> = Vec::new();
    for (i, p) in spec.extension_providers.iter().enumerate() {
        let field = format!("data.mesh.extensionProviders[{i}]");
        let name = provider_name(p);
        if name.is_empty() {
            diags.error(cm.error(format!("{field}.name"), "must not be empty"));
            continue;
        }
        if seen.contains(&name) {
            diags.error(cm.error(
                format!("{field}.name"),
                format!("duplicate extension provider name {name:?}"),
            ));
            continue;
        }
        seen.push(name);
        let kind = p.keys().find(|k| *k != "name").cloned().unwrap_or_default();
        out.provider_kinds.push((name.to_string(), kind.clone()));
        match compile_provider(p, i, &field) {
            Ok(Some(c)) => out.ext_authz.push(c),
            Ok(None) if kind == "opentelemetry" => {
                out.other_providers.push(name.to_string());
                let mut notes = Vec::new();
                match tracing_provider::compile_otel(p, name, i, &field, &mut notes) {
                    Ok(t) => out.tracing_providers.push(t),
                    Err((f, msg)) => diags.error(cm.error(f, msg)),
                }
                for (f, msg) in notes {
                    diags.warn(cm.error(f, msg));
                }
            }
            Ok(None) => out.other_providers.push(name.to_string()),
            Err((f, msg)) => diags.error(cm.error(f, msg)),
        }
    }
    out
}

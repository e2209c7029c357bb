//! The filter's own config (Envoy `filter_config`): where the waypoint manifests come from and
//! which waypoint this is; compiled once per Envoy filter config and shared through an `Arc`.

use serde::Deserialize;
use waypoint_core::ConfigError;

use crate::counts::RequestCounts;
use crate::decide::{Engine, WaypointName};
use crate::istio_batch::IstioBatch;

/// Default filter-state key holding the peer SPIFFE principal when an HBONE-terminating
/// listener hands the stream to an internal listener. It is Istio's key; stock Envoy can set
/// it on the terminating listener with `envoy.filters.network.set_filter_state`
/// (`factory_key: envoy.string`, `format_string: "%DOWNSTREAM_PEER_URI_SAN%"`,
/// `shared_with_upstream: ONCE`).
pub const DEFAULT_PRINCIPAL_KEY: &str = "io.istio.peer_principal";
/// Default filter-state key holding the original destination (`ip:port`, the CONNECT
/// authority), set the same way with `factory_key: envoy.string` and
/// `format_string: "%REQ(:AUTHORITY)%"`. A string object on purpose: the module reads filter
/// state as bytes, which works for `envoy.string` objects but not for the address object
/// Envoy keeps under `envoy.filters.listener.original_dst.local_ip` (checked against 1.40).
pub const DEFAULT_DESTINATION_KEY: &str = "waypoint.original_dst";

/// The JSON the user writes in `filter_config` (a `google.protobuf.StringValue` holding JSON,
/// or a `google.protobuf.Struct`, which Envoy hands us as JSON).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct FilterConfigSpec {
    /// Manifest files or directories (read in order; directories recursively).
    #[serde(default)]
    pub config_paths: Vec<String>,
    /// Manifests inline (multi-document YAML or JSON).
    #[serde(default)]
    pub config_inline: Option<String>,
    /// `namespace/name` of the waypoint this Envoy runs as; when absent, the config must hold
    /// exactly one waypoint Gateway.
    #[serde(default)]
    pub waypoint: Option<String>,
    /// Namespace for resources that do not name one (default: the waypoint's namespace, else
    /// `default`, as `kubectl apply` would place them).
    #[serde(default)]
    pub default_namespace: Option<String>,
    /// Filter-state key with the peer principal (internal-listener deployments).
    #[serde(default)]
    pub principal_filter_state: Option<String>,
    /// Where the source principal comes from: `auto` (default: the peer certificate of this
    /// listener's own mTLS, else the filter state), `filter_state` (an internal listener
    /// behind an HBONE-terminating one, as `waypoint bootstrap` generates: no per-request
    /// certificate look-up) or `peer_certificate`.
    #[serde(default)]
    pub principal_from: PrincipalFrom,
    /// Filter-state key with the original destination `ip:port`.
    #[serde(default)]
    pub destination_filter_state: Option<String>,
    /// How much dynamic metadata to write per request (each key costs Envoy a metadata merge,
    /// about 3k instructions): `none`, `decision` (default) or `full`.
    #[serde(default)]
    pub metadata: MetadataLevel,
    /// The route table Envoy has in front of the router: `rematch` (default) or
    /// `waypoint` (the one `waypoint bootstrap` generates); see `RouteTable`.
    #[serde(default)]
    pub route_table: RouteTable,
    /// CUSTOM providers that have a native `ext_authz` filter after this module (written by
    /// `waypoint bootstrap`); a CUSTOM match on any other provider is denied.
    #[serde(default)]
    pub ext_authz_filters: Vec<String>,
}

/// Where the filter reads the source principal (see `FilterConfigSpec::principal_from`).
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum PrincipalFrom {
    /// The listener's peer certificate (SPIFFE URI SAN), else the filter state.
    #[default]
    Auto,
    /// Only the filter state (`principal_filter_state`).
    FilterState,
    /// Only the listener's peer certificate.
    PeerCertificate,
}

/// What the route table after this filter looks like, which decides how the filter hands
/// Envoy's router its cluster, timeout and retry policy.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum RouteTable {
    /// Any table with a route that matches `x-waypoint-cluster` being present and forwards
    /// with `cluster_header: x-waypoint-cluster` and no retry policy. Every timeout and retry
    /// goes in router headers and Envoy matches the table again (`clearRouteCache`).
    #[default]
    Rematch,
    /// The generated table: first a route for requests carrying `x-waypoint-retry` whose
    /// retry policy has no conditions (Istio's retry host predicates only), then a catch-all
    /// route with Istio's default retry policy; both take the cluster from a
    /// `weighted_clusters` entry with `cluster_header: x-waypoint-cluster`. A rule with
    /// Istio's default retries (nearly all) needs no retry headers and no re-match: Envoy
    /// only re-reads the cluster of the route it already matched (`refreshRouteCluster`).
    /// Other rules add `x-waypoint-retry` and their retry headers and re-match.
    Waypoint,
}

/// Which `waypoint` dynamic-metadata keys the filter writes.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum MetadataLevel {
    /// Nothing.
    None,
    /// `decision` and `route` on every request, plus `policy` when the request is denied.
    #[default]
    Decision,
    /// Also `service`, `cluster` and `policy` on every request.
    Full,
}

/// Why a filter config was rejected. Every variant names the resource and field.
#[derive(Debug, thiserror::Error)]
pub enum FilterConfigError {
    #[error("waypoint filter_config: {0}")]
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

/// Counter ids defined at config time (`None` when Envoy refused to define them).
#[derive(Debug, Clone, Copy, Default)]
pub struct Metrics {
    /// `waypoint_requests_total{decision, route}`.
    pub requests: Option<usize>,
    /// Istio's `istio_*` request metrics (see `metrics`).
    pub istio: Option<crate::metrics::IstioMetricIds>,
}

/// One compiled filter config. New Envoy filter configs (listener updates) build a new one;
/// in-flight streams keep the `Arc` of the one they started with.
#[derive(Debug)]
pub struct FilterConfig {
    pub filter_name: String,
    pub engine: Engine,
    pub principal_key: String,
    pub principal_from: PrincipalFrom,
    pub destination_key: String,
    pub metrics: Metrics,
    /// Request counts waiting to be flushed to `metrics.requests`.
    pub counts: RequestCounts,
    /// Istio's request metrics waiting to be flushed to `metrics.istio`.
    pub istio: IstioBatch,
    pub metadata: MetadataLevel,
    pub route_table: RouteTable,
    /// See [`FilterConfigSpec::ext_authz_filters`].
    pub ext_authz_filters: Vec<String>,
    /// Warnings from compiling the config (already logged).
    pub warnings: Vec<ConfigError>,
}

impl FilterConfig {
    /// Parse `filter_config` and compile the manifests it points at.
    pub fn from_bytes(filter_name: &str, raw: &[u8]) -> Result<FilterConfig, FilterConfigError> {
        let text = std::str::from_utf8(raw)
            .map_err(|e| FilterConfigError::Spec(format!("not UTF-8: {e}")))?;
        let spec = parse_spec(text)?;
        Self::from_spec(filter_name, &spec)
    }

    /// Compile a parsed spec.
    pub fn from_spec(
        filter_name: &str,
        spec: &FilterConfigSpec,
    ) -> Result<FilterConfig, FilterConfigError> {
        let waypoint = spec.waypoint.as_deref().map(parse_waypoint).transpose()?;
        let default_ns = spec
            .default_namespace
            .clone()
            .or_else(|| waypoint.as_ref().map(|w| w.namespace.clone()))
            .unwrap_or_else(|| "default".to_string());
        let mut loaded = match (&spec.config_inline, spec.config_paths.is_empty()) {
            (Some(_), false) => {
                return Err(FilterConfigError::Spec(
                    "field config_paths: set either config_paths or config_inline, not both".into(),
                ))
            }
            (None, true) => {
                return Err(FilterConfigError::Spec(
                    "field config_paths: one of config_paths or config_inline is required".into(),
                ))
            }
            (Some(text), true) => waypoint_loader::load_text(text, "config_inline", &default_ns),
            (None, false) => waypoint_loader::load_paths(&spec.config_paths, &default_ns),
        };
        let (engine, diags) = Engine::build(&loaded.resources, waypoint.as_ref());
        loaded.errors.extend(diags.errors);
        if !loaded.errors.is_empty() {
            return Err(FilterConfigError::Resources(loaded.errors));
        }
        let counts = RequestCounts::new(engine.route_labels().to_vec());
        Ok(FilterConfig {
            filter_name: filter_name.to_string(),
            engine,
            principal_key: spec
                .principal_filter_state
                .clone()
                .unwrap_or_else(|| DEFAULT_PRINCIPAL_KEY.to_string()),
            principal_from: spec.principal_from,
            destination_key: spec
                .destination_filter_state
                .clone()
                .unwrap_or_else(|| DEFAULT_DESTINATION_KEY.to_string()),
            metrics: Metrics::default(),
            counts,
            istio: IstioBatch::default(),
            metadata: spec.metadata,
            route_table: spec.route_table,
            ext_authz_filters: spec.ext_authz_filters.clone(),
            warnings: diags.warnings,
        })
    }
}

/// Parse the JSON of `filter_config`, naming the field on error.
pub fn parse_spec(text: &str) -> Result<FilterConfigSpec, FilterConfigError> {
    let de = &mut serde_json::Deserializer::from_str(text.trim());
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        if path.is_empty() || path == "." {
            FilterConfigError::Spec(format!("invalid JSON: {}", e.inner()))
        } else {
            FilterConfigError::Spec(format!("field {path}: {}", e.inner()))
        }
    })
}

fn parse_waypoint(s: &str) -> Result<WaypointName, FilterConfigError> {
    WaypointName::parse(s).map_err(|e| {
        FilterConfigError::Spec(format!(
            "field waypoint: expected \"namespace/name\", got {s:?} ({})",
            e.reason
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SVC: &str = "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: waypoint, namespace: bookinfo}\nspec: {gatewayClassName: istio-waypoint, listeners: [{name: mesh, port: 15008, protocol: HBONE}]}\n---\napiVersion: v1\nkind: Service\nmetadata: {name: reviews, namespace: bookinfo, labels: {istio.io/use-waypoint: waypoint}}\nspec: {clusterIP: 10.96.0.11, ports: [{port: 9080, name: http}]}\n";

    #[test]
    fn spec_errors_name_the_field() {
        for (json, want) in [
            (
                r#"{"waypoint": "bad", "config_inline": "x"}"#,
                "field waypoint",
            ),
            (
                r#"{"waypoint": "a/b"}"#,
                "one of config_paths or config_inline",
            ),
            (
                r#"{"waypoint": "a/b", "config_inline": "x", "config_paths": ["/x"]}"#,
                "not both",
            ),
            (
                r#"{"waypoint": "a/b", "bogus": 1}"#,
                "unknown field `bogus`",
            ),
            ("not json", "invalid JSON"),
        ] {
            let err = FilterConfig::from_bytes("wp", json.as_bytes())
                .err()
                .unwrap_or_else(|| panic!("{json} should fail"));
            assert!(err.to_string().contains(want), "{json}: {err}");
        }
    }

    #[test]
    fn inline_config_builds() {
        let spec = serde_json::json!({"waypoint": "bookinfo/waypoint", "config_inline": SVC});
        let cfg = FilterConfig::from_bytes("wp", spec.to_string().as_bytes()).expect("config");
        assert_eq!(cfg.engine.waypoint_name(), "bookinfo/waypoint");
        assert_eq!(cfg.principal_key, DEFAULT_PRINCIPAL_KEY);
        assert_eq!(cfg.engine.resource_count(), 2);
        assert_eq!(cfg.engine.bound_services(), 1);
    }

    #[test]
    fn core_errors_name_resource_and_field() {
        let bad_vs = "---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: broken, namespace: bookinfo}\nspec: {hosts: [reviews], http: [{route: [{destination: {host: reviews}, weight: lots}]}]}\n";
        let spec = serde_json::json!({"waypoint": "bookinfo/waypoint", "config_inline": format!("{SVC}{bad_vs}")});
        let err = FilterConfig::from_bytes("wp", spec.to_string().as_bytes()).expect_err("error");
        let msg = err.to_string();
        assert!(
            msg.contains("VirtualService bookinfo/broken") && msg.contains("spec.http"),
            "{msg}"
        );
    }

    #[test]
    fn waypoint_defaults_to_the_only_one() {
        let spec = serde_json::json!({"config_inline": SVC, "default_namespace": "bookinfo"});
        let cfg = FilterConfig::from_bytes("wp", spec.to_string().as_bytes()).expect("config");
        assert_eq!(cfg.engine.waypoint_name(), "bookinfo/waypoint");
        assert_eq!(cfg.engine.bound_services(), 1);
    }

    #[test]
    fn unknown_waypoint_is_an_error() {
        let spec = serde_json::json!({"waypoint": "bookinfo/other", "config_inline": SVC});
        let err = FilterConfig::from_bytes("wp", spec.to_string().as_bytes()).expect_err("error");
        assert!(err.to_string().contains("other"), "{err}");
    }

    #[test]
    fn missing_path_names_the_file() {
        let spec = serde_json::json!({"waypoint": "a/b", "config_paths": ["/nonexistent/wp.yaml"]});
        let err = FilterConfig::from_bytes("wp", spec.to_string().as_bytes()).expect_err("error");
        let msg = err.to_string();
        assert!(
            msg.contains("File") && msg.contains("/nonexistent/wp.yaml"),
            "{msg}"
        );
    }

    #[test]
    fn bad_manifest_names_the_resource() {
        let spec = serde_json::json!({"waypoint": "a/b", "config_inline": "kind: Service\nmetadata: {name: x}\n"});
        let err = FilterConfig::from_bytes("wp", spec.to_string().as_bytes()).expect_err("error");
        assert!(err.to_string().contains("apiVersion"), "{err}");
    }
}

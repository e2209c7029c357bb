//! CUSTOM AuthorizationPolicy on Envoy, the Istio way: one native `ext_authz` filter per mesh
//! provider after our module, enabled only by the dynamic metadata the module sets on a match.

use serde_json::{json, Value};
use waypoint_core::mesh::{ExtAuthzKind, ExtAuthzProvider, HeaderPattern};
use waypoint_core::Snapshot;

use super::clusters::{self, ClusterPlan};

/// Dynamic-metadata namespace the module writes the CUSTOM provider name into (Istio keys its
/// filters on RBAC's `istio_ext_authz_shadow_effective_policy_id`; we name the provider).
pub const METADATA_NS: &str = "waypoint.ext_authz";
/// Key under [`METADATA_NS`]: the provider the request must be checked by.
pub const METADATA_KEY: &str = "provider";

const EXT_AUTHZ: &str = "type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz";

/// Cluster of one provider's service (a copy of its outbound cluster with the wire protocol the
/// provider speaks: HTTP/2 for gRPC, HTTP/1.1 for HTTP).
pub fn cluster_name(p: &ExtAuthzProvider) -> String {
    format!("ext_authz|{}", p.name)
}

fn metadata_is(value: Value) -> Value {
    json!({"filter": METADATA_NS, "path": [{"key": METADATA_KEY}], "value": value})
}

fn matcher(p: &HeaderPattern) -> Value {
    match p {
        HeaderPattern::Exact(e) => json!({"exact": e, "ignore_case": true}),
        HeaderPattern::Prefix(s) => json!({"prefix": s, "ignore_case": true}),
        HeaderPattern::Suffix(s) => json!({"suffix": s, "ignore_case": true}),
        HeaderPattern::Any => json!({"safe_regex": {"regex": ".*"}}),
    }
}

fn list(ps: &[HeaderPattern]) -> Value {
    json!({"patterns": ps.iter().map(matcher).collect::<Vec<_>>()})
}

fn duration(d: std::time::Duration) -> String {
    format!("{}.{:03}s", d.as_secs(), d.subsec_millis())
}

/// The native ext_authz filter of one provider (istio builder/extauthz.go shapes).
pub fn filter(p: &ExtAuthzProvider) -> Value {
    let cluster = cluster_name(p);
    let mut f = json!({
        "transport_api_version": "V3",
        "failure_mode_allow": p.fail_open,
        "status_on_error": {"code": p.status_on_error},
        "filter_enabled_metadata": metadata_is(json!({"string_match": {"exact": p.name}})),
    });
    match &p.kind {
        ExtAuthzKind::Http(h) => {
            let mut service = json!({
                "server_uri": {"uri": format!("http://{}", p.service_host), "cluster": cluster,
                               "timeout": duration(p.timeout)},
                "path_prefix": h.path_prefix,
            });
            if !h.additional_headers.is_empty() {
                service["authorization_request"] = json!({"headers_to_add": h.additional_headers
                    .iter().map(|(k, v)| json!({"key": k, "value": v})).collect::<Vec<_>>()});
            }
            let mut resp = json!({});
            if !h.headers_to_upstream_on_allow.is_empty() {
                resp["allowed_upstream_headers"] = list(&h.headers_to_upstream_on_allow);
            }
            if !h.headers_to_downstream_on_deny.is_empty() {
                resp["allowed_client_headers"] = list(&h.headers_to_downstream_on_deny);
            }
            if !h.headers_to_downstream_on_allow.is_empty() {
                resp["allowed_client_headers_on_success"] = list(&h.headers_to_downstream_on_allow);
            }
            if resp.as_object().is_some_and(|o| !o.is_empty()) {
                service["authorization_response"] = resp;
            }
            f["http_service"] = service;
            // Always set, so only the listed headers plus Envoy's fixed set (Host, Method,
            // Path, Content-Length, Authorization) go to the server, as the host sends.
            f["allowed_headers"] = if h.include_request_headers.is_empty() {
                list(&[HeaderPattern::Exact("authorization".into())])
            } else {
                list(&h.include_request_headers)
            };
        }
        ExtAuthzKind::Grpc(_) => {
            f["grpc_service"] = json!({
                "envoy_grpc": {"cluster_name": cluster,
                               "authority": format!("{}:{}", p.service_host, p.port)},
                "timeout": duration(p.timeout),
            });
        }
    }
    f["@type"] = json!(EXT_AUTHZ);
    json!({"name": format!("ext_authz.{}", p.name), "typed_config": f})
}

/// Add every provider's filter to the L7 listener after the module (before the router), and
/// tell the module which providers have one (`ext_authz_filters` in its `filter_config`): a
/// CUSTOM match on any other provider is denied by the module instead of passing unchecked.
pub fn wire(listener: &mut Value, snapshot: &Snapshot) {
    let providers = snapshot.ext_authz_providers();
    if providers.is_empty() {
        return;
    }
    let Some(chain) =
        listener["filter_chains"][0]["filters"][0]["typed_config"]["http_filters"].as_array_mut()
    else {
        return;
    };
    for f in chain.iter_mut() {
        if f["typed_config"]["filter_config"]["value"].is_object() && f["name"] == "waypoint" {
            f["typed_config"]["filter_config"]["value"]["ext_authz_filters"] = json!(providers
                .iter()
                .map(|p| p.name.as_str())
                .collect::<Vec<_>>());
        }
    }
    let at = chain
        .iter()
        .position(|f| f["name"] == "envoy.filters.http.router")
        .unwrap_or(chain.len());
    for (i, p) in providers.iter().enumerate() {
        chain.insert(at + i, filter(p));
    }
}

/// The provider clusters, built from the outbound plan of each provider's service and port.
pub fn provider_clusters(
    snapshot: &Snapshot,
    plans: &[ClusterPlan],
    originator: bool,
) -> Vec<Value> {
    let mut out = Vec::new();
    for p in snapshot.ext_authz_providers() {
        let Some(svc) = snapshot.ext_authz_service(p) else {
            continue;
        };
        let outbound = clusters::cluster_name(p.port, "", &svc.hostname);
        let targets = plans
            .iter()
            .find(|c| c.name == outbound)
            .map(|c| c.targets.clone())
            .unwrap_or_default();
        let plan = ClusterPlan {
            name: cluster_name(p),
            protocol: if p.is_grpc() { "grpc" } else { "http" }.into(),
            targets,
        };
        out.push(clusters::outbound_cluster_via(&plan, originator));
    }
    out
}

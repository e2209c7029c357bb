//! CUSTOM AuthorizationPolicy on Envoy, the Istio way: one native `ext_authz` filter per mesh
//! provider after our module, enabled only by the dynamic metadata the module sets on a match.

use serde_json::{json, Value};
use waypoint_core::mesh::{ExtAuthzKind, ExtAuthzProvider, HeaderPattern};
use waypoint_core::Snapshot;

use super::clusters::{self, ClusterPlan};
use super::listeners::MAIN_INTERNAL;

/// Dynamic-metadata namespace the module writes the CUSTOM provider name into (Istio keys its
/// filters on RBAC's `istio_ext_authz_shadow_effective_policy_id`; we name the provider).
pub const METADATA_NS: &str = "waypoint.ext_authz";
/// Key under [`METADATA_NS`]: the provider the request must be checked by.
pub const METADATA_KEY: &str = "provider";
/// Key under [`METADATA_NS`] the module sets to `deny` when DENY/ALLOW denied a request whose
/// CUSTOM provider is asked first (Istio's layers: CUSTOM, then DENY, then ALLOW).
pub const THEN_KEY: &str = "then";
/// Name of the RBAC filter after the provider filters (see [`guard`]).
pub const GUARD: &str = "ext_authz.guard";

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
    chain.insert(at + providers.len(), guard(providers));
}

const RBAC: &str = "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC";

fn metadata_principal(value: Value) -> Value {
    json!({"sourced_metadata": {"metadata_matcher": metadata_is(value)}})
}

/// The RBAC filter after the provider filters (Envoy's RBAC 403 `RBAC: access denied`, the
/// module's own deny body). It denies
/// * a request the module marked `then: deny`: DENY/ALLOW denied it, the provider was asked
///   first (Istio asks CUSTOM providers before DENY and ALLOW) and allowed it;
/// * over xDS, a request marked for a provider this listener has no filter for: the module's
///   config (with `ext_authz_filters`) comes by ECDS apart from the listener holding the
///   provider filters, so for a while (an update, a draining listener) the two can disagree,
///   and such a request must not be forwarded unchecked.
pub fn guard(providers: &[ExtAuthzProvider]) -> Value {
    let marked = metadata_principal(json!({"present_match": true}));
    let unknown = if providers.is_empty() {
        marked
    } else {
        let known: Vec<Value> = providers
            .iter()
            .map(|p| metadata_principal(json!({"string_match": {"exact": p.name}})))
            .collect();
        json!({"and_ids": {"ids": [marked, {"not_id": {"or_ids": {"ids": known}}}]}})
    };
    let then_deny = json!({"sourced_metadata": {"metadata_matcher": {
        "filter": METADATA_NS, "path": [{"key": THEN_KEY}],
        "value": {"string_match": {"exact": "deny"}}}}});
    json!({"name": GUARD, "typed_config": {
        "@type": RBAC,
        "rules": {"action": "DENY", "policies": {
            "ext-authz-provider-without-filter": {"permissions": [{"any": true}], "principals": [unknown]},
            "denied-after-ext-authz": {"permissions": [{"any": true}], "principals": [then_deny]}}}}})
}

/// Over xDS, make sure the L7 listener of `bootstrap` has the [`guard`] (just before the
/// router) even without providers: a newer module config may name one.
pub fn add_xds_guard(bootstrap: &mut Value, snapshot: &Snapshot) {
    let Some(listeners) = bootstrap["static_resources"]["listeners"].as_array_mut() else {
        return;
    };
    for l in listeners.iter_mut().filter(|l| l["name"] == MAIN_INTERNAL) {
        let Some(chain) =
            l["filter_chains"][0]["filters"][0]["typed_config"]["http_filters"].as_array_mut()
        else {
            continue;
        };
        if chain.iter().any(|f| f["name"] == GUARD) {
            continue;
        }
        let at = chain
            .iter()
            .position(|f| f["name"] == "envoy.filters.http.router")
            .unwrap_or(chain.len());
        chain.insert(at, guard(snapshot.ext_authz_providers()));
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
            policy: None,
        };
        out.push(clusters::outbound_cluster_via(&plan, originator));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xds::proto::{encode, CLUSTER, LISTENER};
    use waypoint_core::BuildOptions;

    const YAML: &str = concat!(
        waypoint_core::waypoint_gateway_yaml!("default"),
        r#"apiVersion: v1
kind: Service
metadata: {name: authz, namespace: foo}
spec: {clusterIP: 10.96.0.20, ports: [{name: http, port: 8000, targetPort: 18000}], selector: {app: authz}}
---
apiVersion: v1
kind: Pod
metadata: {name: authz-0, namespace: foo, labels: {app: authz}}
spec: {containers: [{name: app, image: x}]}
status: {podIP: 10.1.0.9}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: istio, namespace: istio-system}
data:
  mesh: |
    extensionProviders:
    - name: h
      envoyExtAuthzHttp:
        service: foo/authz.foo.svc.cluster.local
        port: 8000
        timeout: 1.5s
        pathPrefix: /check
        failOpen: true
        statusOnError: "503"
        includeRequestHeadersInCheck: [x-ext-authz]
        includeAdditionalHeadersInCheck: {x-added: "1"}
        headersToUpstreamOnAllow: [x-result]
        headersToDownstreamOnDeny: [x-result]
    - name: g
      envoyExtAuthzGrpc: {service: authz.foo.svc.cluster.local, port: 8000}
"#
    );

    fn generated(yaml: &str) -> Value {
        let loaded = waypoint_loader::load_text(yaml, "test", "default");
        assert!(loaded.errors.is_empty(), "{:?}", loaded.errors);
        let (snapshot, diags) = Snapshot::build(&loaded.resources, &BuildOptions::default());
        assert!(diags.errors.is_empty(), "{:?}", diags.errors);
        super::super::generate(&snapshot, &super::super::Options::default())
    }

    fn main_internal(boot: &Value) -> &Value {
        boot["static_resources"]["listeners"]
            .as_array()
            .and_then(|ls| ls.iter().find(|l| l["name"] == "main_internal"))
            .expect("main_internal")
    }

    #[test]
    fn one_filter_per_provider_between_module_and_router() {
        let boot = generated(YAML);
        let l = main_internal(&boot);
        let chain = &l["filter_chains"][0]["filters"][0]["typed_config"]["http_filters"];
        let names: Vec<&str> = chain
            .as_array()
            .expect("filters")
            .iter()
            .filter_map(|f| f["name"].as_str())
            .collect();
        assert_eq!(
            names,
            vec![
                "waypoint",
                "ext_authz.h",
                "ext_authz.g",
                GUARD,
                "envoy.filters.http.router"
            ]
        );
        assert_eq!(
            chain[0]["typed_config"]["filter_config"]["value"]["ext_authz_filters"],
            json!(["h", "g"])
        );
        let h = &chain[1]["typed_config"];
        assert_eq!(h["failure_mode_allow"], true);
        assert_eq!(h["status_on_error"]["code"], 503);
        assert_eq!(
            h["filter_enabled_metadata"],
            json!({"filter": METADATA_NS, "path": [{"key": METADATA_KEY}],
                   "value": {"string_match": {"exact": "h"}}})
        );
        assert_eq!(h["http_service"]["path_prefix"], "/check");
        assert_eq!(h["http_service"]["server_uri"]["cluster"], "ext_authz|h");
        assert_eq!(h["http_service"]["server_uri"]["timeout"], "1.500s");
        assert_eq!(
            h["allowed_headers"]["patterns"],
            json!([{"exact": "x-ext-authz", "ignore_case": true}])
        );
        assert_eq!(
            h["http_service"]["authorization_response"]["allowed_upstream_headers"]["patterns"],
            json!([{"exact": "x-result", "ignore_case": true}])
        );
        let g = &chain[2]["typed_config"];
        assert_eq!(g["failure_mode_allow"], false);
        assert_eq!(g["status_on_error"]["code"], 403);
        assert_eq!(
            g["grpc_service"]["envoy_grpc"]["cluster_name"],
            "ext_authz|g"
        );
        assert_eq!(g["grpc_service"]["timeout"], "600.000s");
        // Both encode as Envoy protos (what `waypoint xds` serves).
        encode(LISTENER, "main_internal", l).expect("listener encodes");
    }

    #[test]
    fn provider_clusters_speak_the_provider_protocol() {
        let boot = generated(YAML);
        let clusters = boot["static_resources"]["clusters"]
            .as_array()
            .expect("clusters");
        let find = |n: &str| clusters.iter().find(|c| c["name"] == n).expect(n);
        let g = find("ext_authz|g");
        assert!(
            g["typed_extension_protocol_options"]
                .to_string()
                .contains("http2_protocol_options"),
            "{g}"
        );
        let h = find("ext_authz|h");
        // HTTP/1.1 (Envoy's default, made explicit to carry the pool idle timeout).
        let h_opts = &h["typed_extension_protocol_options"]
            ["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"];
        assert_eq!(
            h_opts["explicit_http_config"],
            json!({"http_protocol_options": {}}),
            "{h}"
        );
        assert_eq!(
            h_opts["common_http_protocol_options"]["idle_timeout"],
            "3600s"
        );
        let ep = &h["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"];
        assert_eq!(
            ep["socket_address"],
            json!({"address": "10.1.0.9", "port_value": 18000})
        );
        encode(CLUSTER, "ext_authz|g", g).expect("cluster encodes");
    }

    #[test]
    fn guard_denies_unknown_providers_and_denials_after_the_provider() {
        let mut boot = generated(YAML);
        let loaded = waypoint_loader::load_text(YAML, "test", "default");
        let (snapshot, _) = Snapshot::build(&loaded.resources, &BuildOptions::default());
        add_xds_guard(&mut boot, &snapshot);
        let l = main_internal(&boot);
        let chain = &l["filter_chains"][0]["filters"][0]["typed_config"]["http_filters"];
        assert_eq!(
            chain[3]["name"], GUARD,
            "one guard, after the provider filters"
        );
        assert_eq!(chain[4]["name"], "envoy.filters.http.router");
        let then = &chain[3]["typed_config"]["rules"]["policies"]["denied-after-ext-authz"]
            ["principals"][0]["sourced_metadata"]["metadata_matcher"];
        assert_eq!(then["path"][0]["key"], THEN_KEY);
        assert_eq!(then["value"], json!({"string_match": {"exact": "deny"}}));
        let rules = &chain[3]["typed_config"]["rules"];
        assert_eq!(rules["action"], "DENY");
        let ids = &rules["policies"]["ext-authz-provider-without-filter"]["principals"][0]
            ["and_ids"]["ids"];
        assert_eq!(
            ids[1]["not_id"]["or_ids"]["ids"][1]["sourced_metadata"]["metadata_matcher"]["value"],
            json!({"string_match": {"exact": "g"}})
        );
        encode(LISTENER, "main_internal", l).expect("listener with the guard encodes");
        // Without providers every marked request is denied.
        let none = guard(&[]);
        assert_eq!(
            none["typed_config"]["rules"]["policies"]["ext-authz-provider-without-filter"]
                ["principals"][0]["sourced_metadata"]["metadata_matcher"]["value"],
            json!({"present_match": true})
        );
    }

    #[test]
    fn nothing_changes_without_providers() {
        let yaml = YAML
            .split("---\napiVersion: v1\nkind: ConfigMap")
            .next()
            .expect("yaml");
        let boot = generated(yaml);
        let text = boot.to_string();
        assert!(!text.contains("ext_authz"), "{text}");
    }
}

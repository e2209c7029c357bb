//! The kinds the waypoint watches (issue 13 §1): core kinds and Gateway API kinds named by
//! their crates' types, Istio kinds by hand, and the mesh config ConfigMap.

use gateway_api::{
    gatewayclasses::GatewayClass, gateways::Gateway, grpcroutes::GrpcRoute, httproutes::HttpRoute,
    referencegrants::ReferenceGrant,
};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::discovery::ApiResource;

/// One watched kind. Every kind is read as a `DynamicObject`, so the object reaches the
/// core's strict parser as the API server sent it: a field a typed struct does not know is
/// not dropped (the core judges it, as for a file), and one object a typed struct cannot read
/// does not fail the whole list (the core rejects that resource alone).
#[derive(Debug, Clone)]
pub struct Kind {
    pub api: ApiResource,
    /// Only this namespace (else all namespaces, or cluster-scoped).
    pub namespace: Option<String>,
    /// A field selector (`metadata.name=istio` for the mesh config).
    pub field_selector: Option<String>,
    /// A CRD that may be missing (404 on list means "none").
    pub optional: bool,
    /// Other versions to try, in order, when `api`'s version is not served (404).
    pub fallback_versions: Vec<String>,
}

impl Kind {
    fn of(api: ApiResource, optional: bool) -> Kind {
        Kind {
            api,
            namespace: None,
            field_selector: None,
            optional,
            fallback_versions: Vec::new(),
        }
    }

    /// `Kind` or `Kind(namespace)`, for logs.
    pub fn label(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("{}({ns})", self.api.kind),
            None => self.api.kind.clone(),
        }
    }
}

fn istio(group: &str, kind: &str, plural: &str) -> ApiResource {
    ApiResource {
        group: group.to_string(),
        version: "v1".to_string(),
        api_version: format!("{group}/v1"),
        kind: kind.to_string(),
        plural: plural.to_string(),
    }
}

/// `api` at another version.
pub fn served_as(mut api: ApiResource, version: &str) -> ApiResource {
    api.api_version = format!("{}/{version}", api.group);
    api.version = version.to_string();
    api
}

/// Every kind the waypoint reads. The mesh config is ConfigMap `istio` in `mesh_namespace`
/// (istiod's `--meshConfig` source; the core reads it from the root namespace).
pub fn kinds(mesh_namespace: &str) -> Vec<Kind> {
    use kube::Resource;
    fn typed<K: Resource<DynamicType = ()>>() -> ApiResource {
        ApiResource::erase::<K>(&())
    }
    let net = "networking.istio.io";
    let sec = "security.istio.io";
    vec![
        Kind::of(typed::<Namespace>(), false),
        Kind::of(typed::<Service>(), false),
        Kind::of(typed::<EndpointSlice>(), false),
        Kind::of(typed::<Pod>(), false),
        Kind {
            namespace: Some(mesh_namespace.to_string()),
            field_selector: Some("metadata.name=istio".to_string()),
            ..Kind::of(typed::<ConfigMap>(), false)
        },
        Kind::of(typed::<GatewayClass>(), true),
        Kind::of(typed::<Gateway>(), true),
        Kind::of(typed::<HttpRoute>(), true),
        Kind::of(typed::<GrpcRoute>(), true),
        // ReferenceGrant: the gateway-api crate (Gateway API v1.5) names `v1`, which clusters
        // with older CRDs do not serve; there it is `v1beta1` (served since Gateway API v0.6).
        // A watch of an unserved version is a 404, so the other version is tried next. The
        // core accepts both.
        Kind {
            fallback_versions: vec!["v1beta1".to_string()],
            ..Kind::of(typed::<ReferenceGrant>(), true)
        },
        Kind::of(istio(net, "VirtualService", "virtualservices"), true),
        Kind::of(istio(net, "DestinationRule", "destinationrules"), true),
        Kind::of(istio(net, "ServiceEntry", "serviceentries"), true),
        Kind::of(istio(net, "WorkloadEntry", "workloadentries"), true),
        // EnvoyFilter is served as v1alpha3 only (local rate limits, see the core's ratelimit).
        Kind::of(
            served_as(istio(net, "EnvoyFilter", "envoyfilters"), "v1alpha3"),
            true,
        ),
        Kind::of(
            istio(sec, "AuthorizationPolicy", "authorizationpolicies"),
            true,
        ),
        Kind::of(
            istio(sec, "RequestAuthentication", "requestauthentications"),
            true,
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_kinds_carry_their_api_paths() {
        let ks = kinds("istio-system");
        let find = |k: &str| ks.iter().find(|x| x.api.kind == k).expect(k);
        assert_eq!(find("EndpointSlice").api.api_version, "discovery.k8s.io/v1");
        assert_eq!(find("HTTPRoute").api.plural, "httproutes");
        assert_eq!(find("GatewayClass").api.group, "gateway.networking.k8s.io");
        assert_eq!(find("Service").api.api_version, "v1");
        let rg = find("ReferenceGrant");
        assert_eq!(rg.api.api_version, "gateway.networking.k8s.io/v1");
        let old = served_as(rg.api.clone(), &rg.fallback_versions[0]);
        assert_eq!(old.api_version, "gateway.networking.k8s.io/v1beta1");
        assert_eq!(
            (old.version.as_str(), old.plural.as_str()),
            ("v1beta1", "referencegrants")
        );
        let cm = find("ConfigMap");
        assert_eq!(cm.namespace.as_deref(), Some("istio-system"));
        assert!(!cm.optional && find("VirtualService").optional);
        let ef = find("EnvoyFilter");
        assert_eq!(ef.api.api_version, "networking.istio.io/v1alpha3");
        assert!(ef.optional);
        assert_eq!(ks.len(), 17);
    }
}

//! The waypoint's read access to the API server (`waypoint run --kube` watches Services,
//! Pods, Istio and Gateway API objects cluster-wide, and the mesh config in Istio's
//! namespace): a ClusterRoleBinding to the install's `waypoint-proxy` ClusterRole and a
//! RoleBinding to `waypoint-proxy-meshconfig` in Istio's namespace, for the waypoint's
//! ServiceAccount. They cannot be owned by the (namespaced) Gateway, so they carry its
//! namespace, name and uid and the controller deletes them when the Gateway is gone.

use std::collections::BTreeMap;

use k8s_openapi::api::rbac::v1::{ClusterRoleBinding, RoleBinding};
use serde_json::json;

use super::{build, Target};
use crate::{labels, Error, Options};

/// The ClusterRole and Role the install (`host/deploy/base`) defines for waypoint pods.
pub const PROXY_CLUSTER_ROLE: &str = "waypoint-proxy";
pub const MESH_CONFIG_ROLE: &str = "waypoint-proxy-meshconfig";
/// Labels naming the Gateway a cluster-scoped binding belongs to.
pub const OWNER_NAMESPACE: &str = "waypoint.dev/gateway-namespace";
pub const OWNER_NAME: &str = "waypoint.dev/gateway-name";
/// Annotation with the Gateway's uid (a recreated Gateway of the same name is another owner).
pub const OWNER_UID: &str = "waypoint.dev/gateway-uid";

/// Name of both bindings.
pub fn binding_name(t: &Target) -> String {
    format!("waypoint-{}-{}", t.namespace, t.name)
}

fn meta(t: &Target, namespace: Option<&str>) -> serde_json::Value {
    let labels = BTreeMap::from([
        (
            labels::MANAGED_BY.to_string(),
            labels::FIELD_MANAGER.to_string(),
        ),
        (OWNER_NAMESPACE.to_string(), t.namespace.clone()),
        (OWNER_NAME.to_string(), t.name.clone()),
    ]);
    let mut m = json!({
        "name": binding_name(t),
        "labels": labels,
        "annotations": {OWNER_UID: t.uid},
    });
    if let Some(ns) = namespace {
        m["namespace"] = json!(ns);
    }
    m
}

fn subjects(t: &Target) -> serde_json::Value {
    json!([{"kind": "ServiceAccount", "name": t.name, "namespace": t.namespace}])
}

pub fn cluster_role_binding(t: &Target) -> Result<ClusterRoleBinding, Error> {
    build(
        "ClusterRoleBinding",
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": meta(t, None),
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": PROXY_CLUSTER_ROLE},
            "subjects": subjects(t),
        }),
    )
}

pub fn mesh_config_binding(t: &Target, o: &Options) -> Result<RoleBinding, Error> {
    build(
        "RoleBinding",
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": meta(t, Some(&o.istio_namespace)),
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": MESH_CONFIG_ROLE},
            "subjects": subjects(t),
        }),
    )
}

//! Templates for the objects one waypoint Gateway owns; each file renders one kind as JSON
//! (close to Istio's YAML template) and checks it into its k8s-openapi type.

mod deployment;
pub mod rbac;
mod scaling;
mod service;
mod service_account;

pub use deployment::deployment;
pub use rbac::{cluster_role_binding, mesh_config_binding};
pub use scaling::{autoscaler, disruption_budget};
pub use service::service;
pub use service_account::service_account;

use std::collections::BTreeMap;

use gateway_api::gateways::Gateway;
use serde::de::DeserializeOwned;
use serde_json::{json, Value};

use crate::labels;
use crate::Error;

/// The Gateway being rendered: names every object uses.
#[derive(Clone, Debug)]
pub struct Target {
    pub name: String,
    pub namespace: String,
    pub uid: String,
    pub class: String,
}

impl Target {
    pub fn of(gw: &Gateway) -> Result<Target, Error> {
        Ok(Target {
            name: gw.metadata.name.clone().ok_or(Error::Missing("name"))?,
            namespace: gw
                .metadata
                .namespace
                .clone()
                .ok_or(Error::Missing("namespace"))?,
            uid: gw.metadata.uid.clone().ok_or(Error::Missing("uid"))?,
            class: gw.spec.gateway_class_name.clone(),
        })
    }

    /// `namespace/name`, as `waypoint run --waypoint` takes it.
    pub fn namespaced(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    /// The pod selector: Istio selects a waypoint's pods by the gateway-name label alone.
    pub fn selector(&self) -> BTreeMap<String, String> {
        BTreeMap::from([(labels::GATEWAY_NAME.to_string(), self.name.clone())])
    }

    /// Labels on every object we create (the Gateway's `spec.infrastructure.labels` are
    /// merged in by the caller).
    pub fn labels(&self) -> BTreeMap<String, String> {
        let mut l = self.selector();
        l.insert(labels::GATEWAY_CLASS_NAME.into(), self.class.clone());
        l.insert(labels::MANAGED.into(), labels::MANAGED_MESH.into());
        l.insert(labels::MANAGED_BY.into(), labels::FIELD_MANAGER.into());
        l
    }

    /// Metadata with the owner reference to the Gateway: deleting the Gateway deletes the
    /// objects (Kubernetes garbage collection).
    pub fn metadata(
        &self,
        labels: &BTreeMap<String, String>,
        annotations: &BTreeMap<String, String>,
    ) -> Value {
        let mut m = json!({
            "name": self.name,
            "namespace": self.namespace,
            "labels": labels,
            "ownerReferences": [{
                "apiVersion": "gateway.networking.k8s.io/v1",
                "kind": "Gateway",
                "name": self.name,
                "uid": self.uid,
                "controller": true,
            }],
        });
        if !annotations.is_empty() {
            m["annotations"] = json!(annotations);
        }
        m
    }
}

/// Turn a template into its typed object; a failure is a template bug or a parameter the
/// type refuses.
pub(crate) fn build<T: DeserializeOwned>(kind: &'static str, v: Value) -> Result<T, Error> {
    serde_json::from_value(v).map_err(|source| Error::Build { kind, source })
}

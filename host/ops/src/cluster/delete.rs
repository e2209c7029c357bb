//! `delete`: remove named waypoints (or all in a namespace) and the `istio.io/use-waypoint`
//! label of Namespaces that pointed at them. Names are all checked before the first delete.

use gateway_api::gateways::Gateway;
use k8s_openapi::api::core::v1::{Namespace, Service};
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::{Api, Client, Resource};

use super::read;
use crate::binding;
use crate::error::{is_not_found, Error};
use crate::gateway;
use crate::object::{Inventory, Object};

/// Which waypoints to delete.
#[derive(Clone, Debug)]
pub struct DeleteRequest {
    pub namespace: String,
    /// Empty with `all`.
    pub names: Vec<String>,
    /// Every waypoint in the namespace.
    pub all: bool,
    /// Our class names (Istio's `istio-waypoint` always counts).
    pub classes: Vec<String>,
}

/// What `delete` did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeleteReport {
    /// `namespace/name` of each deleted waypoint.
    pub deleted: Vec<String>,
    /// Namespaces whose binding labels were removed.
    pub unenrolled: Vec<String>,
    /// Services still labelled for a deleted waypoint (`namespace/name`): left as they are.
    pub still_labelled: Vec<String>,
}

impl DeleteReport {
    /// What the command prints.
    pub fn lines(&self) -> Vec<String> {
        if self.deleted.is_empty() {
            return vec!["No waypoints found.".to_string()];
        }
        let mut out: Vec<String> = self
            .deleted
            .iter()
            .map(|k| format!("waypoint {k} deleted"))
            .collect();
        out.extend(self.unenrolled.iter().map(|n| {
            format!(
                "namespace {n}: {} label removed",
                crate::names::USE_WAYPOINT
            )
        }));
        out.extend(self.still_labelled.iter().map(|s| {
            format!(
                "warning: Service {s} still has {} naming a deleted waypoint",
                crate::names::USE_WAYPOINT
            )
        }));
        out
    }
}

/// The waypoint Gateways to delete; an unknown name or a Gateway of another class fails the
/// whole request before anything is deleted.
async fn targets(client: &Client, req: &DeleteRequest) -> Result<Vec<String>, Error> {
    let ns = &req.namespace;
    let present: Vec<Object> = read::gateways(client, Some(ns)).await?;
    if req.all {
        return Ok(present
            .iter()
            .filter(|g| gateway::is_waypoint(g, &req.classes))
            .map(|g| g.name.clone())
            .collect());
    }
    let mut missing = Vec::new();
    for name in &req.names {
        match present.iter().find(|g| g.name == *name) {
            None => missing.push(format!("{ns}/{name}")),
            Some(g) if !gateway::is_waypoint(g, &req.classes) => {
                return Err(Error::NotAWaypoint {
                    key: g.key(),
                    class: gateway::class(g).to_string(),
                })
            }
            Some(_) => {}
        }
    }
    if !missing.is_empty() {
        return Err(Error::NotFound(missing));
    }
    let mut names = req.names.clone();
    names.sort();
    names.dedup();
    Ok(names)
}

/// Delete the waypoints of `req`, then unbind the Namespaces that used them.
pub async fn delete(client: &Client, req: &DeleteRequest) -> Result<DeleteReport, Error> {
    let ns = &req.namespace;
    let api = Api::<Gateway>::namespaced(client.clone(), ns);
    let names = targets(client, req).await?;
    let mut report = DeleteReport::default();
    for name in &names {
        match api.delete(name, &DeleteParams::default()).await {
            Ok(_) => {}
            // Deleted meanwhile by someone else: the outcome asked for.
            Err(e) if is_not_found(&e) => {}
            Err(e) => return Err(Error::kube(format!("deleting Gateway {ns}/{name}"))(e)),
        }
        tracing::info!(gateway = %format!("{ns}/{name}"), "waypoint deleted");
        report.deleted.push(format!("{ns}/{name}"));
    }
    if names.is_empty() {
        return Ok(report);
    }
    let inv = Inventory {
        namespaces: read::list(client, &typed::<Namespace>(), None, false).await?,
        services: read::list(client, &typed::<Service>(), None, false).await?,
        ..Default::default()
    };
    let namespaces = Api::<Namespace>::all(client.clone());
    for name in &names {
        for bound in binding::bound_namespaces(&inv, ns, name) {
            namespaces
                .patch(
                    &bound,
                    &PatchParams::default(),
                    &Patch::Merge(binding::unenroll_patch()),
                )
                .await
                .map_err(Error::kube(format!(
                    "removing the labels of Namespace {bound}"
                )))?;
            report.unenrolled.push(bound);
        }
        report
            .still_labelled
            .extend(binding::labelled_services(&inv, ns, name));
    }
    Ok(report)
}

fn typed<K: Resource<DynamicType = ()>>() -> kube::api::ApiResource {
    kube::api::ApiResource::erase::<K>(&())
}

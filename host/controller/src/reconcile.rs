//! Reconcile as a pure function: (our GatewayClass, a Gateway, its parameters ConfigMap,
//! the Deployment as observed, the time) → the objects to apply and the status to write.

use std::collections::BTreeMap;

use gateway_api::gatewayclasses::{GatewayClass, GatewayClassStatus};
use gateway_api::gateways::{Gateway, GatewayStatus};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{ConfigMap, Service, ServiceAccount};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{ClusterRoleBinding, RoleBinding};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::params::{self, Params, ParamsError};
use crate::render::{self, Target};
use crate::status::{self, Rejection};
use crate::{Error, Options};

/// What the controller observed for one Gateway.
#[derive(Clone, Copy, Debug)]
pub struct Input<'a> {
    pub class: &'a GatewayClass,
    pub gateway: &'a Gateway,
    /// The ConfigMap `spec.infrastructure.parametersRef` names, if it exists.
    pub params: Option<&'a ConfigMap>,
    /// The waypoint Deployment as it is in the cluster (for readiness).
    pub deployment: Option<&'a Deployment>,
    pub now: &'a Time,
}

/// The objects one waypoint owns, in apply order.
#[derive(Clone, Debug, PartialEq)]
pub struct Desired {
    pub service_account: ServiceAccount,
    pub deployment: Deployment,
    pub service: Service,
    /// Read access for the waypoint's ServiceAccount (cluster-wide, and the mesh config).
    pub cluster_role_binding: ClusterRoleBinding,
    pub mesh_config_binding: RoleBinding,
    /// `None`: delete ours if one exists (the parameters no longer ask for it).
    pub autoscaler: Option<HorizontalPodAutoscaler>,
    pub disruption_budget: Option<PodDisruptionBudget>,
}

impl Desired {
    /// Every object as JSON, in apply order (golden files, dry runs).
    pub fn objects(&self) -> Result<Vec<serde_json::Value>, Error> {
        fn v<T: serde::Serialize>(kind: &'static str, o: &T) -> Result<serde_json::Value, Error> {
            serde_json::to_value(o).map_err(|source| Error::Build { kind, source })
        }
        let mut out = vec![
            v("ServiceAccount", &self.service_account)?,
            v("ClusterRoleBinding", &self.cluster_role_binding)?,
            v("RoleBinding", &self.mesh_config_binding)?,
            v("Deployment", &self.deployment)?,
            v("Service", &self.service)?,
        ];
        if let Some(h) = &self.autoscaler {
            out.push(v("HorizontalPodAutoscaler", h)?);
        }
        if let Some(p) = &self.disruption_budget {
            out.push(v("PodDisruptionBudget", p)?);
        }
        Ok(out)
    }
}

/// The result of one reconcile.
#[derive(Clone, Debug, PartialEq)]
pub struct Outcome {
    /// `None` when the Gateway is not accepted: nothing is applied.
    pub desired: Option<Desired>,
    pub gateway_status: GatewayStatus,
    pub class_status: GatewayClassStatus,
}

/// The Service host name istiod and ztunnel resolve the waypoint by.
pub fn hostname(gw_name: &str, namespace: &str, o: &Options) -> String {
    format!("{gw_name}.{namespace}.svc.{}", o.cluster_domain)
}

/// Is this class ours?
pub fn owns_class(class: &GatewayClass, o: &Options) -> bool {
    class.spec.controller_name == o.controller_name
}

/// The name of the ConfigMap the Gateway's parametersRef names, if it names one (any kind:
/// a wrong kind is reported by [`reconcile`]).
pub fn params_name(gw: &Gateway) -> Option<&str> {
    gw.spec
        .infrastructure
        .as_ref()
        .and_then(|i| i.parameters_ref.as_ref())
        .map(|r| r.name.as_str())
}

pub fn reconcile(input: Input<'_>, o: &Options) -> Result<Outcome, Error> {
    let gw = input.gateway;
    if !owns_class(input.class, o)
        || input.class.metadata.name.as_deref() != Some(gw.spec.gateway_class_name.as_str())
    {
        return Err(Error::NotOurs);
    }
    let target = Target::of(gw)?;
    let rejection = check(input);
    let desired = match &rejection {
        Err(r) => {
            tracing::debug!(gateway = %target.namespaced(), reason = r.reason, "not accepted");
            None
        }
        Ok(p) => Some(render_all(&target, o, p, gw)?),
    };
    let ready = input
        .deployment
        .and_then(|d| d.status.as_ref())
        .and_then(|s| s.ready_replicas)
        .is_some_and(|n| n > 0);
    let gateway_status = status::gateway_status(
        gw,
        rejection.as_ref().err(),
        ready,
        &hostname(&target.name, &target.namespace, o),
        input.now,
    );
    Ok(Outcome {
        desired,
        gateway_status,
        class_status: status::class_status(input.class, input.now),
    })
}

/// The Gateway's parameters, or why it is not accepted.
fn check(input: Input<'_>) -> Result<Params, Rejection> {
    let gw = input.gateway;
    if gw.spec.addresses.as_ref().is_some_and(|a| !a.is_empty()) {
        return Err(Rejection {
            reason: "UnsupportedAddress",
            message:
                "spec.addresses is not supported: the waypoint's address is its Service host name"
                    .into(),
        });
    }
    let invalid = |e: ParamsError| Rejection {
        reason: "InvalidParameters",
        message: e.to_string(),
    };
    let Some(r) = gw
        .spec
        .infrastructure
        .as_ref()
        .and_then(|i| i.parameters_ref.as_ref())
    else {
        return Ok(Params::default());
    };
    if !r.group.is_empty() || r.kind != "ConfigMap" {
        return Err(invalid(ParamsError::Kind {
            group: r.group.clone(),
            kind: r.kind.clone(),
        }));
    }
    match input.params {
        Some(cm) if cm.metadata.name.as_deref() == Some(r.name.as_str()) => {
            params::parse(cm).map_err(invalid)
        }
        _ => Err(invalid(ParamsError::NotFound(r.name.clone()))),
    }
}

fn render_all(t: &Target, o: &Options, p: &Params, gw: &Gateway) -> Result<Desired, Error> {
    // `spec.infrastructure` labels and annotations go on every object (Gateway API); ours
    // win a conflict.
    let infra = gw.spec.infrastructure.as_ref();
    let mut labels: BTreeMap<String, String> =
        infra.and_then(|i| i.labels.clone()).unwrap_or_default();
    labels.extend(t.labels());
    let annotations: BTreeMap<String, String> = infra
        .and_then(|i| i.annotations.clone())
        .unwrap_or_default();
    Ok(Desired {
        service_account: render::service_account(t, &labels, &annotations)?,
        deployment: render::deployment(t, o, p, &labels, &annotations)?,
        service: render::service(t, &labels, &annotations)?,
        cluster_role_binding: render::cluster_role_binding(t)?,
        mesh_config_binding: render::mesh_config_binding(t, o)?,
        autoscaler: p
            .autoscaler
            .as_ref()
            .map(|a| render::autoscaler(t, a, &labels, &annotations))
            .transpose()?,
        disruption_budget: p
            .disruption_budget
            .as_ref()
            .map(|b| render::disruption_budget(t, b, &labels, &annotations))
            .transpose()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::jiff::Timestamp;

    fn class(controller: &str) -> GatewayClass {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "gateway.networking.k8s.io/v1", "kind": "GatewayClass",
            "metadata": {"name": "waypoint"},
            "spec": {"controllerName": controller},
        }))
        .expect("class")
    }

    fn gateway(class: &str) -> Gateway {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
            "metadata": {"name": "wp", "namespace": "ns", "uid": "u1", "generation": 1},
            "spec": {"gatewayClassName": class, "listeners": [{"name": "mesh", "port": 15008, "protocol": "HBONE"}]},
        }))
        .expect("gateway")
    }

    fn run(c: &GatewayClass, g: &Gateway) -> Result<Outcome, Error> {
        let now = Time(Timestamp::UNIX_EPOCH);
        let input = Input {
            class: c,
            gateway: g,
            params: None,
            deployment: None,
            now: &now,
        };
        reconcile(input, &Options::default())
    }

    #[test]
    fn refuses_other_controllers_and_mismatched_classes() {
        let o = Options::default();
        assert!(matches!(
            run(&class("istio.io/mesh-controller"), &gateway("waypoint")),
            Err(Error::NotOurs)
        ));
        assert!(matches!(
            run(&class(&o.controller_name), &gateway("istio-waypoint")),
            Err(Error::NotOurs)
        ));
        let out = run(&class(&o.controller_name), &gateway("waypoint")).expect("ours");
        assert!(out.desired.is_some());
        assert_eq!(
            out.gateway_status.addresses, None,
            "no address before a ready pod"
        );
    }

    #[test]
    fn a_gateway_without_uid_cannot_be_owned() {
        let o = Options::default();
        let mut g = gateway("waypoint");
        g.metadata.uid = None;
        assert!(matches!(
            run(&class(&o.controller_name), &g),
            Err(Error::Missing("uid"))
        ));
    }
}

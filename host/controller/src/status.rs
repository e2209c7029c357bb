//! The status we write: the Gateway's addresses (istiod's waypoint switch), its Accepted and
//! Programmed conditions and per-listener status, and the GatewayClass's Accepted condition.
//! A condition keeps its `lastTransitionTime` while its status does not change.

use gateway_api::gatewayclasses::{GatewayClass, GatewayClassStatus};
use gateway_api::gateways::{
    Gateway, GatewayStatus, GatewayStatusAddresses, GatewayStatusListeners,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use serde_json::{json, Value};

use crate::labels;

/// Why a Gateway is not accepted (the `Accepted` condition's reason and message).
#[derive(Clone, Debug, PartialEq)]
pub struct Rejection {
    pub reason: &'static str,
    pub message: String,
}

/// A listener we serve: HBONE on 15008, as `istioctl waypoint generate` writes it.
pub fn listener_supported(protocol: &str, port: i32) -> bool {
    protocol == "HBONE" && port == labels::HBONE_PORT
}

/// One condition, keeping the previous transition time when the status is unchanged.
pub fn condition(
    previous: Option<&[Condition]>,
    type_: &str,
    ok: bool,
    reason: &str,
    message: &str,
    generation: Option<i64>,
    now: &Time,
) -> Condition {
    let status = if ok { "True" } else { "False" };
    let since = previous
        .unwrap_or_default()
        .iter()
        .find(|c| c.type_ == type_ && c.status == status)
        .map(|c| c.last_transition_time.clone())
        .unwrap_or_else(|| now.clone());
    Condition {
        type_: type_.to_string(),
        status: status.to_string(),
        reason: reason.to_string(),
        message: message.to_string(),
        observed_generation: generation,
        last_transition_time: since,
    }
}

/// The Gateway's status. `ready`: the Deployment has a ready pod. Addresses are written only
/// when accepted and ready, because their presence is what makes istiod send traffic here.
pub fn gateway_status(
    gw: &Gateway,
    rejection: Option<&Rejection>,
    ready: bool,
    hostname: &str,
    now: &Time,
) -> GatewayStatus {
    let generation = gw.metadata.generation;
    let old = gw.status.as_ref();
    let old_conditions = old.and_then(|s| s.conditions.as_deref());
    let bad_listeners: Vec<&str> = gw
        .spec
        .listeners
        .iter()
        .filter(|l| !listener_supported(&l.protocol, l.port))
        .map(|l| l.name.as_str())
        .collect();
    let accepted = match rejection {
        Some(r) => condition(
            old_conditions,
            "Accepted",
            false,
            r.reason,
            &r.message,
            generation,
            now,
        ),
        None if !bad_listeners.is_empty() => condition(
            old_conditions,
            "Accepted",
            true,
            "ListenersNotValid",
            &format!(
                "listeners {bad_listeners:?} are not served: a waypoint serves HBONE on port 15008"
            ),
            generation,
            now,
        ),
        None => condition(
            old_conditions,
            "Accepted",
            true,
            "Accepted",
            "Accepted by waypoint-controller",
            generation,
            now,
        ),
    };
    let programmed = match (rejection, ready) {
        (Some(_), _) => condition(
            old_conditions,
            "Programmed",
            false,
            "Invalid",
            "Gateway not accepted",
            generation,
            now,
        ),
        (None, false) => condition(
            old_conditions,
            "Programmed",
            false,
            "Pending",
            "Waiting for a ready waypoint pod",
            generation,
            now,
        ),
        (None, true) => condition(
            old_conditions,
            "Programmed",
            true,
            "Programmed",
            "Waypoint pods are ready",
            generation,
            now,
        ),
    };
    let listeners = gw
        .spec
        .listeners
        .iter()
        .map(|l| {
            let old = old
                .and_then(|s| s.listeners.as_ref())
                .and_then(|ls| ls.iter().find(|o| o.name == l.name))
                .map(|o| o.conditions.as_slice());
            let ok = listener_supported(&l.protocol, l.port);
            let conditions = if ok {
                vec![
                    condition(old, "Accepted", true, "Accepted", "", generation, now),
                    condition(
                        old,
                        "ResolvedRefs",
                        true,
                        "ResolvedRefs",
                        "",
                        generation,
                        now,
                    ),
                    match (rejection, ready) {
                        (None, true) => {
                            condition(old, "Programmed", true, "Programmed", "", generation, now)
                        }
                        (Some(_), _) => condition(
                            old,
                            "Programmed",
                            false,
                            "Invalid",
                            "Gateway not accepted",
                            generation,
                            now,
                        ),
                        (None, false) => {
                            condition(old, "Programmed", false, "Pending", "", generation, now)
                        }
                    },
                ]
            } else {
                let msg = format!(
                    "{} port {}: a waypoint serves HBONE on port 15008 only",
                    l.protocol, l.port
                );
                vec![
                    condition(
                        old,
                        "Accepted",
                        false,
                        "UnsupportedProtocol",
                        &msg,
                        generation,
                        now,
                    ),
                    condition(
                        old,
                        "ResolvedRefs",
                        true,
                        "ResolvedRefs",
                        "",
                        generation,
                        now,
                    ),
                    condition(old, "Programmed", false, "Invalid", &msg, generation, now),
                ]
            };
            GatewayStatusListeners {
                name: l.name.clone(),
                attached_routes: 0,
                conditions,
                supported_kinds: Some(Vec::new()),
            }
        })
        .collect::<Vec<_>>();
    GatewayStatus {
        addresses: (rejection.is_none() && ready).then(|| {
            vec![GatewayStatusAddresses {
                r#type: Some("Hostname".into()),
                value: hostname.to_string(),
            }]
        }),
        attached_listener_sets: None,
        conditions: Some(vec![accepted, programmed]),
        listeners: Some(listeners),
    }
}

/// The class's status: we accept every class with our controller name.
pub fn class_status(class: &GatewayClass, now: &Time) -> GatewayClassStatus {
    let old = class.status.as_ref().and_then(|s| s.conditions.as_deref());
    GatewayClassStatus {
        conditions: Some(vec![condition(
            old,
            "Accepted",
            true,
            "Accepted",
            "Handled by waypoint-controller",
            class.metadata.generation,
            now,
        )]),
        ..Default::default()
    }
}

/// The server-side-apply body for a Gateway's status subresource.
pub fn gateway_status_patch(gw: &Gateway, status: &GatewayStatus) -> Value {
    json!({
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "Gateway",
        "metadata": {"name": gw.metadata.name, "namespace": gw.metadata.namespace},
        "status": status,
    })
}

/// The server-side-apply body for a GatewayClass's status subresource.
pub fn class_status_patch(class: &GatewayClass, status: &GatewayClassStatus) -> Value {
    json!({
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "GatewayClass",
        "metadata": {"name": class.metadata.name},
        "status": status,
    })
}

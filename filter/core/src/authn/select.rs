//! Which JWT rules apply where: a RequestAuthentication's `targetRefs` name the waypoint
//! Gateway, its GatewayClass (from the root namespace), a Service or a ServiceEntry.
//! Waypoints ignore `selector` and namespace-wide forms, as they do for authorization.

use crate::authz::PolicyTargets;
use crate::error::{ConfigError, Diagnostics};
use crate::registry::{Registry, Waypoint};
use crate::service::ServiceKind;

use super::compile::{CompiledRequestAuthn, JwtRule};

/// Rules flattened, with per-service and waypoint-wide index lists, in resource
/// (namespace, name) then `jwtRules` order.
#[derive(Debug, Default)]
pub(crate) struct RuleSelection {
    pub(crate) rules: Vec<JwtRule>,
    pub(crate) by_service: Vec<Box<[usize]>>,
    pub(crate) waypoint: Box<[usize]>,
}

pub(crate) fn select_rules(
    mut authns: Vec<CompiledRequestAuthn>,
    waypoint: Option<&Waypoint>,
    registry: &Registry,
    root_namespace: &str,
    diags: &mut Diagnostics,
) -> RuleSelection {
    authns.sort_by(|a, b| (&a.id.namespace, &a.id.name).cmp(&(&b.id.namespace, &b.id.name)));
    let mut sel = RuleSelection::default();
    let mut wp: Vec<usize> = Vec::new();
    let mut per_service: Vec<Vec<usize>> = vec![Vec::new(); registry.services.len()];
    for a in authns {
        let first = sel.rules.len();
        let idx: Vec<usize> = (first..first + a.rules.len()).collect();
        match &a.targets {
            PolicyTargets::Refs(refs) => {
                for t in refs {
                    match (t.group.as_str(), t.kind.as_str()) {
                        ("gateway.networking.k8s.io", "Gateway") => {
                            if waypoint
                                .is_some_and(|w| w.name == t.name && w.namespace == t.namespace)
                            {
                                wp.extend(&idx);
                            }
                        }
                        ("gateway.networking.k8s.io", "GatewayClass") => {
                            if a.id.namespace == root_namespace
                                && waypoint.is_some_and(|w| w.class == t.name)
                            {
                                wp.extend(&idx);
                            }
                        }
                        ("", "Service") | ("networking.istio.io", "ServiceEntry") => {
                            let kind = if t.kind == "Service" {
                                ServiceKind::Service
                            } else {
                                ServiceKind::ServiceEntry
                            };
                            if let Some(si) = registry.index_by_name(&t.namespace, &t.name) {
                                if registry.services[si].kind == kind {
                                    per_service[si].extend(&idx);
                                }
                            }
                        }
                        _ => diags.warn(ConfigError::new(
                            "RequestAuthentication",
                            a.id.namespace.clone(),
                            a.id.name.clone(),
                            "spec.targetRefs",
                            format!("target {}/{} is not served by a waypoint", t.kind, t.name),
                        )),
                    }
                }
            }
            PolicyTargets::Selector | PolicyTargets::Unscoped | PolicyTargets::Unknown => {
                diags.warn(ConfigError::new(
                    "RequestAuthentication",
                    a.id.namespace.clone(),
                    a.id.name.clone(),
                    "spec",
                    "no targetRefs: a selector or namespace-wide RequestAuthentication applies to \
                     sidecars and gateways, not to the waypoint",
                ));
            }
        }
        sel.rules.extend(a.rules);
    }
    wp.sort_unstable();
    wp.dedup();
    sel.by_service = per_service
        .into_iter()
        .map(|v| {
            let mut all = wp.clone();
            all.extend(v);
            all.sort_unstable();
            all.dedup();
            all.into_boxed_slice()
        })
        .collect();
    sel.waypoint = wp.into_boxed_slice();
    sel
}

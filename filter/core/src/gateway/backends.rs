//! backendRef resolution (Service, Istio `Hostname`) and ReferenceGrant checks, mirroring
//! Istio's `buildDestination`: unresolvable references become invalid backends (500 if picked).

use gateway_api::apis::experimental::referencegrants::ReferenceGrantSpec;

use crate::error::Diagnostics;
use crate::resource::RawResource;
use crate::route::BackendRef;
use crate::service::{service_fqdn, ServiceLookup, CLUSTER_DOMAIN};

use super::GATEWAY_GROUP;

/// The parts of a backendRef (or a mirror's backendRef) that resolution needs.
#[derive(Debug, Clone, Default)]
pub(crate) struct RefSpec {
    pub group: Option<String>,
    pub kind: Option<String>,
    pub name: String,
    pub namespace: Option<String>,
    pub port: Option<i32>,
}

/// Why a backendRef cannot be used (the backend then answers 500).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Invalid {
    pub reason: String,
    /// True for Istio's "invalid backend" reasons (not found, not permitted, unknown kind):
    /// the route stays Accepted with ResolvedRefs=False, so this is a warning. False for a
    /// malformed reference (Istio marks the route not Accepted): an error.
    pub unresolved: bool,
}

impl Invalid {
    fn unresolved(reason: String) -> Option<Invalid> {
        Some(Invalid {
            reason,
            unresolved: true,
        })
    }
    fn malformed(reason: &str) -> Option<Invalid> {
        Some(Invalid {
            reason: reason.to_string(),
            unresolved: false,
        })
    }
}

/// Resolve a reference from a route `kind` in `route_ns`. Returns the backend plus, when it
/// cannot be used, why (the backend then answers 500, as Istio's invalid backends do).
pub(crate) fn resolve(
    r: &RefSpec,
    route_kind: &str,
    route_ns: &str,
    services: &dyn ServiceLookup,
    grants: Option<&ReferenceGrants>,
) -> (BackendRef, Option<Invalid>) {
    let group = r.group.clone().unwrap_or_default();
    let kind = r.kind.clone().unwrap_or_else(|| "Service".to_string());
    let namespace = r
        .namespace
        .clone()
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| route_ns.to_string());
    let port = r
        .port
        .and_then(|p| u16::try_from(p).ok())
        .filter(|p| *p > 0);
    let mut backend = BackendRef {
        name: r.name.clone(),
        namespace: namespace.clone(),
        host: String::new(),
        subset: None,
        port,
    };
    // "ReferenceGrant is required for a backendRef to a namespace other than the route's".
    // Istio enforces it only for Gateway parents (`enforceRefGrant = !mesh`); `grants` is None
    // for routes with a mesh parent.
    if let Some(grants) = grants {
        if namespace != route_ns
            && !grants.allows(
                GATEWAY_GROUP,
                route_kind,
                route_ns,
                &group,
                &kind,
                &namespace,
                &r.name,
            )
        {
            let why = format!(
                "backendRef {}/{} not accessible to a {route_kind} in namespace {route_ns:?} (missing a ReferenceGrant?)",
                r.name, namespace
            );
            return (backend, Invalid::unresolved(why));
        }
    }
    let invalid = match (group.as_str(), kind.as_str()) {
        ("", "Service") => {
            backend.host = service_fqdn(&r.name, &namespace, CLUSTER_DOMAIN);
            if r.name.contains('.') {
                Invalid::malformed(
                    "service name invalid; the name of the Service must be used, not the hostname",
                )
            } else {
                match services.by_name(&namespace, &r.name) {
                    Some(svc) => {
                        backend.host = svc.hostname.clone();
                        None
                    }
                    None => Invalid::unresolved(format!("backend({}) not found", backend.host)),
                }
            }
        }
        // Istio's `networking.istio.io/Hostname`: name is a ServiceEntry (or Service) host.
        ("networking.istio.io", "Hostname") => {
            backend.host = r.name.clone();
            if r.namespace.is_some() {
                Invalid::malformed("namespace may not be set with Hostname type")
            } else if services.by_host(&r.name, route_ns).is_none() {
                Invalid::unresolved(format!("backend({}) not found", r.name))
            } else {
                None
            }
        }
        _ => Invalid::unresolved(format!(
            "referencing unsupported backendRef: group {group:?} kind {kind:?}"
        )),
    };
    if invalid.is_some() {
        return (backend, invalid);
    }
    // "Port is required when the referent is a Kubernetes Service"; Istio requires it for all kinds.
    if port.is_none() {
        return (
            backend,
            Invalid::malformed("port is required in backendRef"),
        );
    }
    (backend, None)
}

/// One `from` -> `to` permission of a ReferenceGrant in namespace `to_namespace`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Grant {
    from_group: String,
    from_kind: String,
    from_namespace: String,
    to_namespace: String,
    to_group: String,
    to_kind: String,
    /// None = every object of the kind.
    to_name: Option<String>,
}

/// The ReferenceGrants of the cluster (gateway.networking.k8s.io v1, v1beta1, v1alpha2).
#[derive(Debug, Clone, Default)]
pub struct ReferenceGrants {
    grants: Vec<Grant>,
}

impl ReferenceGrants {
    /// Collect the ReferenceGrants among `resources`; others are skipped.
    pub fn from_resources<'a>(
        resources: impl IntoIterator<Item = &'a RawResource>,
    ) -> (Self, Diagnostics) {
        let mut out = ReferenceGrants::default();
        let mut diags = Diagnostics::default();
        for r in resources {
            if r.kind != "ReferenceGrant" || r.group() != GATEWAY_GROUP {
                continue;
            }
            match r.parse_spec::<ReferenceGrantSpec>() {
                Ok(spec) => {
                    for f in &spec.from {
                        for t in &spec.to {
                            out.grants.push(Grant {
                                from_group: f.group.clone(),
                                from_kind: f.kind.clone(),
                                from_namespace: f.namespace.clone(),
                                to_namespace: r.namespace.clone(),
                                to_group: t.group.clone(),
                                to_kind: t.kind.clone(),
                                to_name: t.name.clone().filter(|n| !n.is_empty()),
                            });
                        }
                    }
                }
                Err(e) => diags.error(e),
            }
        }
        (out, diags)
    }

    /// May an object `from_group/from_kind` in `from_ns` reference `to_group/to_kind`
    /// `to_ns/to_name`? Same-namespace references are always allowed.
    #[allow(clippy::too_many_arguments)]
    pub fn allows(
        &self,
        from_group: &str,
        from_kind: &str,
        from_ns: &str,
        to_group: &str,
        to_kind: &str,
        to_ns: &str,
        to_name: &str,
    ) -> bool {
        from_ns == to_ns
            || self.grants.iter().any(|g| {
                g.from_group == from_group
                    && g.from_kind == from_kind
                    && g.from_namespace == from_ns
                    && g.to_namespace == to_ns
                    && g.to_group == to_group
                    && g.to_kind == to_kind
                    && g.to_name.as_deref().is_none_or(|n| n == to_name)
            })
    }
}

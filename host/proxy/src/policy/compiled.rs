//! The compiled policy: the core's snapshot of the manifests, the options it was built with,
//! and per-service telemetry labels computed once per config generation.

use std::sync::Arc;

use waypoint_core::resource::RawResource;
use waypoint_core::snapshot::{BuildOptions, Snapshot};
use waypoint_core::Diagnostics;

use crate::policy::options::PolicyOptions;
use crate::policy::plan::ServiceMeta;

/// Compiled policy: the core's snapshot plus what the host needs to reach endpoints.
#[derive(Debug)]
pub struct Policy {
    pub options: PolicyOptions,
    pub snapshot: Snapshot,
    /// How many resources the policy was built from.
    pub resource_count: usize,
    /// Telemetry labels of each registry service (same index), shared by every request.
    services: Vec<Arc<ServiceMeta>>,
}

impl Policy {
    /// Compile `resources`; errors in the diagnostics mean the change must be rejected.
    pub fn compile(resources: &[RawResource], options: &PolicyOptions) -> (Policy, Diagnostics) {
        let build = BuildOptions {
            // Validated before start (`run::start`), so `ok()` drops nothing here.
            waypoint: options
                .waypoint
                .as_deref()
                .and_then(|w| waypoint_core::NamespacedName::parse(w).ok())
                .map(waypoint_core::NamespacedName::into_pair),
            ..BuildOptions::default()
        };
        let (snapshot, diags) = Snapshot::build(resources, &build);
        let services = snapshot
            .registry
            .services
            .iter()
            .map(|s| {
                Arc::new(ServiceMeta {
                    name: s.name.clone(),
                    namespace: s.namespace.clone(),
                    hostname: s.hostname.clone(),
                })
            })
            .collect();
        (
            Policy {
                options: options.clone(),
                snapshot,
                resource_count: resources.len(),
                services,
            },
            diags,
        )
    }

    /// Telemetry labels of registry service `index`.
    pub fn service_meta(&self, index: usize) -> Arc<ServiceMeta> {
        self.services[index].clone()
    }

    /// Bound services, routes, policies and endpoints, for `/config_dump`.
    pub fn dump(&self) -> serde_json::Value {
        use serde_json::json;
        let snap = &self.snapshot;
        let services: Vec<_> = snap
            .registry
            .services
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let routes = snap.service_routes(i).map(|r| {
                    json!({
                        "source": format!("{:?}", r.source),
                        "rules": r.entries.iter().map(|e| format!("{}#{}", e.rule.id.resource(), e.rule.id.rule)).collect::<Vec<_>>(),
                    })
                });
                json!({
                    "hostname": s.hostname,
                    "namespace": s.namespace,
                    "name": s.name,
                    "kind": format!("{:?}", s.kind),
                    "vips": s.vips.iter().map(|v| v.to_string()).collect::<Vec<_>>(),
                    "ports": s.ports.iter().map(|p| json!({"name": p.name, "port": p.port, "target_port": p.target_port, "protocol": p.protocol})).collect::<Vec<_>>(),
                    "endpoints": s.endpoints.iter().map(|e| json!({
                        "ip": e.ip.to_string(), "mesh": e.mesh, "namespace": e.namespace,
                        "service_account": e.service_account, "labels": e.labels,
                    })).collect::<Vec<_>>(),
                    "bound": routes.is_some(),
                    "routes": routes,
                })
            })
            .collect();
        json!({
            "waypoint": snap.waypoint.as_ref().map(|w| format!("{}/{}", w.namespace, w.name)),
            "resource_count": self.resource_count,
            "services": services,
            "policies": snap.policies().iter().map(|p| json!({
                "policy": p.id.to_string(),
                "action": format!("{:?}", p.action),
                "dry_run": p.dry_run,
            })).collect::<Vec<_>>(),
            "diagnostics": {
                "errors": snap.diagnostics.errors.iter().map(|e| e.to_string()).collect::<Vec<_>>(),
                "warnings": snap.diagnostics.warnings.iter().map(|e| e.to_string()).collect::<Vec<_>>(),
            },
        })
    }
}

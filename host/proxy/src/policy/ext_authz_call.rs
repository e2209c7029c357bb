//! Which ext_authz provider a CUSTOM AuthorizationPolicy asks, resolved against the snapshot to
//! its settings and endpoints; the `ext_authz` client runs the call.

use std::sync::atomic::{AtomicU64, Ordering};

use waypoint_core::mesh::ExtAuthzProvider;
use waypoint_core::Snapshot;

use crate::policy::options::PolicyOptions;
use crate::policy::target::target_for;
use crate::upstream::Target;

/// The ext_authz call a forward must pass first.
#[derive(Debug, Clone)]
pub struct ExtAuthzCall {
    /// The provider the CUSTOM policy names.
    pub provider_name: String,
    /// Its settings; `None` when the snapshot does not know it (fails closed).
    pub provider: Option<ExtAuthzProvider>,
    /// Endpoints of the provider's service, the one to use first.
    pub targets: Vec<Target>,
    /// `host:port` of the provider's service (the gRPC `:authority`).
    pub authority: String,
}

/// Round-robin cursor over provider endpoints.
static NEXT: AtomicU64 = AtomicU64::new(0);

impl ExtAuthzCall {
    /// A call to provider `name` not resolved yet: checking it denies.
    pub fn unresolved(name: &str) -> ExtAuthzCall {
        ExtAuthzCall {
            provider_name: name.to_string(),
            provider: None,
            targets: Vec::new(),
            authority: String::new(),
        }
    }

    /// Resolve provider `name` of `snapshot` to its settings and endpoints.
    pub fn resolve(snapshot: &Snapshot, name: &str, options: &PolicyOptions) -> ExtAuthzCall {
        let provider = snapshot.ext_authz_provider(name).cloned();
        let mut targets = Vec::new();
        let mut authority = String::new();
        if let Some(p) = &provider {
            authority = format!("{}:{}", p.service_host, p.port);
            if let Some(svc) = snapshot.ext_authz_service(p) {
                let n = svc.endpoints.len();
                let start = (NEXT.fetch_add(1, Ordering::Relaxed) % n.max(1) as u64) as usize;
                for i in 0..n {
                    let ep = &svc.endpoints[(start + i) % n];
                    targets.push(target_for(Some(svc), ep, p.port, options));
                }
            }
        }
        ExtAuthzCall {
            provider_name: name.to_string(),
            provider,
            targets,
            authority,
        }
    }
}

//! ext_authz for CUSTOM AuthorizationPolicies: before forwarding, ask the mesh's provider (HTTP
//! or gRPC, with the semantics of Envoy's ext_authz filter), then allow, deny, or fail open/closed.

pub mod grpc;
pub mod http;
pub mod input;
pub mod verdict;

use tracing::warn;
use waypoint_core::mesh::ExtAuthzKind;

use crate::ext_authz::input::CheckInput;
use crate::ext_authz::verdict::{on_error, CheckError, Verdict};
use crate::policy::ext_authz_call::ExtAuthzCall;
use crate::policy::plan::LocalReply;
use crate::upstream::Upstreams;

/// Run the check for `call` (within the provider's timeout).
pub async fn check(upstreams: &Upstreams, call: &ExtAuthzCall, input: &CheckInput<'_>) -> Verdict {
    let Some(p) = &call.provider else {
        warn!(provider = %call.provider_name, "ext_authz provider unknown; denying");
        return Verdict::Deny(LocalReply {
            status: 403,
            body: String::new(),
            headers: Vec::new(),
        });
    };
    let run = async {
        let target = call.targets.first().ok_or(CheckError::NoEndpoint)?;
        match &p.kind {
            ExtAuthzKind::Http(h) => http::check(upstreams, target, p, h, input).await,
            ExtAuthzKind::Grpc(_) => grpc::check(upstreams, target, &call.authority, input).await,
        }
    };
    let result = match tokio::time::timeout(p.timeout, run).await {
        Ok(r) => r,
        Err(_) => Err(CheckError::Timeout),
    };
    match result {
        Ok(v) => v,
        Err(e) => {
            warn!(provider = %p.name, error = %e, fail_open = p.fail_open, "ext_authz check failed");
            on_error(p)
        }
    }
}

//! ext_authz for CUSTOM AuthorizationPolicies: before forwarding, ask the mesh's provider (HTTP
//! or gRPC, with the semantics of Envoy's ext_authz filter), then allow, deny, or fail open/closed.

pub mod grpc;
pub mod http;

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};

use ::http::{HeaderMap, HeaderName, HeaderValue};
use tracing::warn;
use waypoint_core::mesh::{ExtAuthzKind, ExtAuthzProvider};
use waypoint_core::Snapshot;

use crate::policy::decide::{target_for, PolicyOptions};
use crate::policy::plan::LocalReply;
use crate::upstream::{Target, Upstreams};

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

/// What the check sees of the request and its connection.
#[derive(Debug, Clone, Copy)]
pub struct CheckInput<'a> {
    pub method: &'a str,
    /// Original `:authority` / Host.
    pub authority: &'a str,
    /// Original path with query.
    pub path: &'a str,
    pub headers: &'a HeaderMap,
    /// `HTTP/1.1` or `HTTP/2`.
    pub protocol: &'a str,
    pub source_ip: Option<IpAddr>,
    pub source_principal: Option<&'a str>,
    /// The tunnel's destination (`ip:port` or `host:port`).
    pub destination: &'a str,
}

impl CheckInput<'_> {
    pub fn destination_addr(&self) -> Option<SocketAddr> {
        self.destination.parse().ok()
    }
}

/// Header changes an allowing provider asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowMutations {
    /// Set (overwrite) on the upstream request.
    pub set: Vec<(String, String)>,
    /// Appended to the upstream request.
    pub append: Vec<(String, String)>,
    /// Removed from the upstream request.
    pub remove: Vec<String>,
    /// Added to the response sent to the client.
    pub response: Vec<(String, String)>,
}

impl AllowMutations {
    /// Apply to the request headers headed upstream.
    pub fn apply_request(&self, h: &mut HeaderMap) {
        for n in &self.remove {
            // Envoy never lets ext_authz remove pseudo-headers or Host.
            if !n.starts_with(':') && !n.eq_ignore_ascii_case("host") {
                h.remove(n.as_str());
            }
        }
        for (k, v) in &self.set {
            if let Some((n, v)) = header(k, v) {
                h.insert(n, v);
            }
        }
        for (k, v) in &self.append {
            if let Some((n, v)) = header(k, v) {
                h.append(n, v);
            }
        }
    }

    /// Add `response` to the headers of the response sent to the client.
    pub fn apply_response(&self, h: &mut HeaderMap) {
        for (k, v) in &self.response {
            if let Some((n, v)) = header(k, v) {
                h.append(n, v);
            }
        }
    }
}

fn header(k: &str, v: &str) -> Option<(HeaderName, HeaderValue)> {
    Some((
        HeaderName::from_bytes(k.to_ascii_lowercase().as_bytes()).ok()?,
        HeaderValue::from_str(v).ok()?,
    ))
}

/// The provider's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Allow(AllowMutations),
    Deny(LocalReply),
}

/// Why a check could not be completed (mapped by `failOpen` / `statusOnError`).
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error("no endpoint for the provider's service")]
    NoEndpoint,
    #[error("transport: {0}")]
    Transport(String),
    #[error("authorization server returned HTTP {0}")]
    ServerError(u16),
    #[error("gRPC status {0}: {1}")]
    Grpc(i32, String),
    #[error("bad response: {0}")]
    BadResponse(String),
    #[error("timed out")]
    Timeout,
}

/// Envoy on a failed check: allow when `failure_mode_allow`, else `status_on_error` with an
/// empty body.
pub fn on_error(p: &ExtAuthzProvider) -> Verdict {
    if p.fail_open {
        Verdict::Allow(AllowMutations::default())
    } else {
        Verdict::Deny(LocalReply {
            status: p.status_on_error,
            body: String::new(),
            headers: Vec::new(),
        })
    }
}

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

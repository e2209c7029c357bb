//! What an ext_authz check answers: allow (with header mutations) or deny (with the reply the
//! client gets), and why a check could not complete (`failOpen` / `statusOnError` decide).

use ::http::{HeaderMap, HeaderName, HeaderValue};
use waypoint_core::mesh::ExtAuthzProvider;

use crate::policy::plan::LocalReply;

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

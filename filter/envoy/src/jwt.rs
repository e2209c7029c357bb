//! RequestAuthentication under Envoy: the generated `jwt_authn` filter before the module
//! verifies signatures (`allow_missing_or_failed`) and forwards provider k's verified payload
//! in `x-waypoint-jwt-<k>`; the core then authenticates as in the host (extraction, issuer,
//! audiences, `exp`/`nbf` with 60 s of skew, 401, outputs), with "verified" read from those
//! headers. The generated `header_mutation` filter strips them from the client first.

use waypoint_core::authn::{
    authenticate, Authenticated, JwtError, JwtRule, SignatureVerifier, Unauthenticated,
};
use waypoint_core::{Request, Snapshot};

/// Prefix of the headers jwt_authn forwards verified payloads in (provider k of
/// [`Snapshot::jwt_rules`] uses `x-waypoint-jwt-<k>`).
pub const PAYLOAD_HEADER_PREFIX: &str = "x-waypoint-jwt-";

/// The payload header of rule `k` of [`Snapshot::jwt_rules`].
pub fn payload_header(k: usize) -> String {
    format!("{PAYLOAD_HEADER_PREFIX}{k}")
}

/// Signatures as jwt_authn judged them: a token is verified for a rule when that rule's
/// provider forwarded exactly its payload section.
struct VerifiedByEnvoy<'a, F: Fn(&str) -> Option<&'a str>> {
    all: &'a [JwtRule],
    header: F,
}

impl<'a, F: Fn(&str) -> Option<&'a str>> SignatureVerifier for VerifiedByEnvoy<'a, F> {
    fn verify(&self, rule: &JwtRule, token: &str) -> Result<(), JwtError> {
        let k = self
            .all
            .iter()
            .position(|r| r == rule)
            .ok_or(JwtError::VerificationFailed)?;
        let payload = token.split('.').nth(1).unwrap_or("");
        match (self.header)(&payload_header(k)) {
            Some(v) if !payload.is_empty() && v.trim_end_matches('=') == payload => Ok(()),
            _ => Err(JwtError::VerificationFailed),
        }
    }
}

/// Authenticate `req` (its headers as Envoy holds them, jwt_authn's included) at `now`.
pub fn authenticate_request<'a>(
    snapshot: &'a Snapshot,
    req: &Request<'a>,
    now: u64,
) -> Result<Authenticated, Unauthenticated> {
    let rules = snapshot.jwt_rules_for(req.destination);
    if rules.is_empty() {
        return Ok(Authenticated::default());
    }
    let verifier = VerifiedByEnvoy {
        all: snapshot.jwt_rules(),
        header: |name: &str| req.header(name),
    };
    authenticate(&rules, req, &verifier, now)
}

/// Seconds since the epoch (Envoy's clock is the system's).
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

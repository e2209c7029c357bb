//! Request authentication for one request, with Istio's requirement: each rule is
//! "its provider OR a missing token", and any provider that verifies is enough. A token that
//! is present and fails → 401; no token → allowed (authorization decides).

use serde_json::{Map, Value};

use crate::request::Request;

use super::claims::RequestAuth;
use super::compile::{JwtRule, TokenLocation};
use super::extract::token_at;
use super::token::{JwtError, ParsedJwt};

/// Signature verification with a rule's keys: the one piece the core cannot do (keys come
/// from I/O and crypto from a crate). The host and `explain` implement it.
pub trait SignatureVerifier {
    /// Check `token`'s signature with the keys of `rule`.
    fn verify(&self, rule: &JwtRule, token: &str) -> Result<(), JwtError>;
}

/// A request that passed authentication.
#[derive(Debug, Clone, Default)]
pub struct Authenticated {
    /// The first verified token's attributes (rule order); `None`: no token.
    pub auth: Option<RequestAuth>,
    /// Every verified payload, keyed by issuer (what Envoy puts in `payload_in_metadata`).
    pub payloads: Vec<(String, Map<String, Value>)>,
    /// Headers to remove: the verified tokens' headers unless `forwardOriginalToken`.
    pub remove_headers: Vec<String>,
    /// Headers to set: `outputPayloadToHeader` and `outputClaimToHeaders`.
    pub set_headers: Vec<(String, String)>,
    /// What each rule found (for explain and traces).
    pub trace: Vec<String>,
}

/// A request refused with 401.
#[derive(Debug, Clone)]
pub struct Unauthenticated {
    pub error: JwtError,
    pub trace: Vec<String>,
}

impl Unauthenticated {
    /// The 401 body (Envoy jwt_authn's message).
    pub fn body(&self) -> String {
        self.error.to_string()
    }

    /// Envoy's `www-authenticate` value for `req`.
    pub fn www_authenticate(&self, req: &Request<'_>) -> String {
        format!(
            "Bearer realm=\"{}://{}{}\", error=\"invalid_token\"",
            if req.scheme.is_empty() {
                "http"
            } else {
                req.scheme
            },
            req.authority,
            req.path_only()
        )
    }
}

/// Envoy `bypass_cors_preflight` (Istio sets it): a CORS preflight is not authenticated.
fn is_cors_preflight(req: &Request<'_>) -> bool {
    req.method == "OPTIONS"
        && req.header("origin").is_some_and(|v| !v.is_empty())
        && req
            .header("access-control-request-method")
            .is_some_and(|v| !v.is_empty())
}

/// Authenticate `req` against `rules` (those of its service and the waypoint, see
/// [`crate::Snapshot::jwt_rules_for`]) at `now` (seconds since the epoch).
pub fn authenticate(
    rules: &[&JwtRule],
    req: &Request<'_>,
    verifier: &dyn SignatureVerifier,
    now: u64,
) -> Result<Authenticated, Unauthenticated> {
    let mut out = Authenticated::default();
    if rules.is_empty() {
        return Ok(out);
    }
    if is_cors_preflight(req) {
        out.trace
            .push("CORS preflight: not authenticated".to_string());
        return Ok(out);
    }
    let mut first_error: Option<JwtError> = None;
    for rule in rules {
        let name = format!(
            "{} jwtRules[{}] (issuer {})",
            rule.id, rule.index, rule.issuer
        );
        let found = rule
            .locations
            .iter()
            .find_map(|l| token_at(l, req).map(|t| (l, t)));
        let Some((loc, token)) = found else {
            out.trace.push(format!("{name}: no token"));
            continue;
        };
        match verify_one(rule, token, verifier, now) {
            Ok(jwt) => {
                out.trace
                    .push(format!("{name}: token from {} verified", loc.describe()));
                apply_outputs(rule, loc, &jwt, &mut out);
                if out.auth.is_none() {
                    out.auth = Some(RequestAuth::from_payload(jwt.payload.clone()));
                }
                out.payloads.push((rule.issuer.clone(), jwt.payload));
            }
            Err(e) => {
                out.trace
                    .push(format!("{name}: token from {} fails: {e}", loc.describe()));
                first_error.get_or_insert(e);
            }
        }
    }
    match first_error {
        Some(error) if out.auth.is_none() => Err(Unauthenticated {
            error,
            trace: out.trace,
        }),
        _ => Ok(out),
    }
}

fn verify_one(
    rule: &JwtRule,
    token: &str,
    verifier: &dyn SignatureVerifier,
    now: u64,
) -> Result<ParsedJwt, JwtError> {
    let jwt = ParsedJwt::parse(token)?;
    if jwt.issuer() != Some(rule.issuer.as_str()) {
        return Err(JwtError::UnknownIssuer);
    }
    // Envoy's jwt_authn order (authenticator.cc `startVerify`): issuer, then time and
    // audiences, then the signature: an expired token is "Jwt is expired" whatever its keys.
    jwt.check_claims(rule, now)?;
    verifier.verify(rule, token)?;
    Ok(jwt)
}

fn apply_outputs(rule: &JwtRule, loc: &TokenLocation, jwt: &ParsedJwt, out: &mut Authenticated) {
    if let Some(h) = &rule.output_payload_to_header {
        out.set_headers
            .push((h.to_ascii_lowercase(), jwt.payload_b64.clone()));
    }
    if !rule.claim_to_headers.is_empty() {
        let auth = RequestAuth::from_payload(jwt.payload.clone());
        for (header, claim) in &rule.claim_to_headers {
            let path: Vec<&str> = claim.split('.').collect();
            if let Some(v) = auth.claim_header_value(&path) {
                out.set_headers.push((header.clone(), v));
            }
        }
    }
    if !rule.forward_original_token {
        if let TokenLocation::Header { name, .. } = loc {
            if !out.remove_headers.contains(name) {
                out.remove_headers.push(name.clone());
            }
        }
    }
}

//! RequestAuthentication: compiled JWT rules, their selection per service and for the
//! waypoint, token extraction, claim checks and the verified token's `request.auth.*`.
//!
//! Pure: signature verification is a [`SignatureVerifier`] the adapter supplies (the host
//! with its JWKS cache, Envoy's jwt_authn filter in the generated config). Per request:
//! [`crate::Snapshot::jwt_rules_for`], then [`authenticate`]; the resulting [`RequestAuth`]
//! goes to [`crate::Snapshot::decide_authenticated`] for authorization and route matching.

mod authenticate;
mod claims;
mod compile;
mod extract;
mod select;
pub mod spec;
mod token;

#[cfg(test)]
mod tests;

pub use authenticate::{authenticate, Authenticated, SignatureVerifier, Unauthenticated};
pub use claims::RequestAuth;
pub use compile::{
    compile_request_authn, CompiledRequestAuthn, JwksSource, JwtRule, TokenLocation,
    CLOCK_SKEW_SECONDS,
};
pub use extract::token_at;
pub(crate) use select::{select_rules, RuleSelection};
pub use token::{base64url_decode, JwtError, ParsedJwt};

//! waypoint-jwt: a JWKS parsed once into decoding keys, and JWT signature verification with
//! Envoy jwt_authn's key selection (`kid`, then the key type and `alg` fitting the token).
//!
//! Only the signature is checked here; issuer, audiences and `exp` / `nbf` are the core's
//! ([`waypoint_core::authn`]). [`JwksVerifier`] is the core's `SignatureVerifier` over a
//! lookup from rule to key set.

mod keys;
mod verifier;

pub use keys::{JwksError, KeySet};
pub use verifier::{verify_signature, JwksVerifier, KeySource, SUPPORTED};

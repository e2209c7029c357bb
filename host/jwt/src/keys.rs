//! A JSON Web Key Set (RFC 7517) parsed into decoding keys; keys of unsupported types are
//! skipped, as Envoy skips them, and a set with no usable key is an error.

use jsonwebtoken::jwk::{AlgorithmParameters, Jwk, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey};

/// Why a JWKS cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwksError {
    #[error("JWKS is not valid JSON Web Key Set JSON: {0}")]
    Json(String),
    #[error("JWKS has no usable key (RSA, EC P-256/P-384, Ed25519 or oct)")]
    NoUsableKey,
}

/// One usable key.
#[derive(Clone)]
pub(crate) struct Key {
    pub(crate) kid: Option<String>,
    /// `alg` of the JWK, if it names one.
    pub(crate) alg: Option<Algorithm>,
    pub(crate) family: Family,
    pub(crate) key: DecodingKey,
}

/// Key type, for matching the token's `alg`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Family {
    Rsa,
    Ec,
    Okp,
    Oct,
}

impl Family {
    pub(crate) fn fits(self, alg: Algorithm) -> bool {
        use Algorithm::*;
        matches!(
            (self, alg),
            (Family::Rsa, RS256 | RS384 | RS512 | PS256 | PS384 | PS512)
                | (Family::Ec, ES256 | ES384)
                | (Family::Okp, EdDSA)
                | (Family::Oct, HS256 | HS384 | HS512)
        )
    }
}

/// A parsed key set.
#[derive(Clone, Default)]
pub struct KeySet {
    pub(crate) keys: Vec<Key>,
}

impl std::fmt::Debug for KeySet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeySet")
            .field("keys", &self.keys.len())
            .finish()
    }
}

impl KeySet {
    /// Parse a JWKS document (`{"keys": [...]}`); a single JWK object is accepted too.
    pub fn parse(json: &str) -> Result<KeySet, JwksError> {
        let value: serde_json::Value =
            serde_json::from_str(json).map_err(|e| JwksError::Json(e.to_string()))?;
        let jwks: Vec<serde_json::Value> = match value.get("keys") {
            Some(serde_json::Value::Array(a)) => a.clone(),
            Some(_) => return Err(JwksError::Json("`keys` is not an array".into())),
            None => vec![value],
        };
        // Each key alone: one unsupported key (type, curve) does not spoil the set.
        let keys: Vec<Key> = jwks
            .into_iter()
            .filter_map(|v| serde_json::from_value::<Jwk>(v).ok())
            .filter_map(|jwk| key(&jwk))
            .collect();
        if keys.is_empty() {
            return Err(JwksError::NoUsableKey);
        }
        Ok(KeySet { keys })
    }

    /// Number of usable keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// True when the set holds no key (only [`KeySet::default`]).
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Parse a set from a `JwkSet` already deserialized (tests, tools).
    pub fn from_set(set: &JwkSet) -> KeySet {
        KeySet {
            keys: set.keys.iter().filter_map(key).collect(),
        }
    }
}

fn key(jwk: &Jwk) -> Option<Key> {
    let family = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => Family::Rsa,
        AlgorithmParameters::EllipticCurve(_) => Family::Ec,
        AlgorithmParameters::OctetKeyPair(_) => Family::Okp,
        AlgorithmParameters::OctetKey(_) => Family::Oct,
    };
    let key = DecodingKey::from_jwk(jwk).ok()?;
    let alg = jwk
        .common
        .key_algorithm
        .and_then(|a| a.to_string().parse::<Algorithm>().ok());
    Some(Key {
        kid: jwk.common.key_id.clone(),
        alg,
        family,
        key,
    })
}

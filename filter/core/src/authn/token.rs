//! A JWT read without its signature: the three base64url sections split, the header and the
//! payload parsed, and Envoy jwt_authn's claim checks (issuer, audiences, `exp` / `nbf`).

use serde_json::{Map, Value};

use super::compile::{JwtRule, CLOCK_SKEW_SECONDS};

/// Why a token fails, with Envoy jwt_authn's message for each (the 401 body).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwtError {
    #[error("Jwt is missing")]
    Missing,
    #[error("Jwt is not in the form of Header.Payload.Signature with two dots and 3 sections")]
    BadFormat,
    #[error("Jwt header is an invalid Base64url encoded")]
    BadHeader,
    #[error("Jwt payload is an invalid Base64url encoded")]
    BadPayload,
    #[error("Jwt is expired")]
    Expired,
    #[error("Jwt not yet valid")]
    NotYetValid,
    #[error("Jwt issuer is not configured")]
    UnknownIssuer,
    #[error("Audiences in Jwt are not allowed")]
    AudienceNotAllowed,
    #[error("Jwks doesn't have key to match kid or alg from Jwt")]
    NoMatchingKey,
    #[error("Jwks remote fetch is failed")]
    JwksFetchFailed,
    #[error("Jwt verification fails")]
    VerificationFailed,
}

/// A token's parsed sections (not yet verified).
#[derive(Debug, Clone)]
pub struct ParsedJwt {
    pub header: Map<String, Value>,
    pub payload: Map<String, Value>,
    /// The payload section as sent (base64url), what `outputPayloadToHeader` forwards.
    pub payload_b64: String,
}

impl ParsedJwt {
    /// Split and decode `token`.
    pub fn parse(token: &str) -> Result<ParsedJwt, JwtError> {
        let mut parts = token.split('.');
        let (Some(h), Some(p), Some(_s), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(JwtError::BadFormat);
        };
        let header = decode_json(h).ok_or(JwtError::BadHeader)?;
        let payload = decode_json(p).ok_or(JwtError::BadPayload)?;
        Ok(ParsedJwt {
            header,
            payload,
            payload_b64: p.to_string(),
        })
    }

    /// `iss`, if a string.
    pub fn issuer(&self) -> Option<&str> {
        self.payload.get("iss").and_then(Value::as_str)
    }

    /// Envoy's checks after the signature: `exp` / `nbf` against `now` (seconds since the
    /// epoch) with 60 s of skew, then the rule's audiences. The issuer was matched already.
    pub fn check_claims(&self, rule: &JwtRule, now: u64) -> Result<(), JwtError> {
        let num = |k: &str| match self.payload.get(k) {
            None => Ok(None),
            Some(v) => v.as_u64().map(Some).ok_or(JwtError::BadPayload),
        };
        if let Some(nbf) = num("nbf")? {
            if nbf > now.saturating_add(CLOCK_SKEW_SECONDS) {
                return Err(JwtError::NotYetValid);
            }
        }
        if let Some(exp) = num("exp")? {
            if exp.saturating_add(CLOCK_SKEW_SECONDS) < now {
                return Err(JwtError::Expired);
            }
        }
        if !rule.audiences.is_empty() {
            let ok = audiences(&self.payload)
                .iter()
                .any(|a| rule.audiences.iter().any(|r| audience_eq(r, a)));
            if !ok {
                return Err(JwtError::AudienceNotAllowed);
            }
        }
        Ok(())
    }
}

/// `aud` as a list (a string or an array of strings).
pub(crate) fn audiences(payload: &Map<String, Value>) -> Vec<String> {
    match payload.get("aud") {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect(),
        _ => Vec::new(),
    }
}

/// Envoy compares audiences ignoring an `http(s)://` scheme and a trailing `/`.
fn audience_eq(a: &str, b: &str) -> bool {
    fn norm(s: &str) -> &str {
        let s = s
            .strip_prefix("https://")
            .or_else(|| s.strip_prefix("http://"))
            .unwrap_or(s);
        s.strip_suffix('/').unwrap_or(s)
    }
    norm(a) == norm(b)
}

fn decode_json(section: &str) -> Option<Map<String, Value>> {
    let bytes = base64url_decode(section)?;
    match serde_json::from_slice(&bytes).ok()? {
        Value::Object(m) => Some(m),
        _ => None,
    }
}

/// Base64url without padding (padding tolerated), as JWS uses it.
pub fn base64url_decode(s: &str) -> Option<Vec<u8>> {
    let s = s.trim_end_matches('=');
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in s.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'-' => 62,
            b'_' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push(((acc >> bits) & 0xff) as u8);
        }
    }
    // A single leftover character (6 bits) cannot end a valid encoding.
    (bits < 6).then_some(out)
}

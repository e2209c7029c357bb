//! The verified token as request attributes: `request.auth.principal` (`iss/sub`),
//! `audiences`, `presenter` and `claims[...]`, read by authorization and route matching.

use serde_json::{Map, Value};

use super::token::audiences;

/// What a verified JWT says about the request (Istio's `request.auth.*`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RequestAuth {
    /// `iss` of the verified token.
    pub issuer: String,
    /// `iss/sub` (Istio's request principal); `None` without a `sub`.
    pub principal: Option<String>,
    /// `aud` as a list.
    pub audiences: Vec<String>,
    /// `azp`.
    pub presenter: Option<String>,
    /// The whole verified payload.
    pub claims: Map<String, Value>,
}

impl RequestAuth {
    /// Attributes of a verified payload.
    pub fn from_payload(payload: Map<String, Value>) -> RequestAuth {
        let s = |k: &str| payload.get(k).and_then(Value::as_str).map(str::to_string);
        let issuer = s("iss").unwrap_or_default();
        let principal = s("sub").map(|sub| format!("{issuer}/{sub}"));
        RequestAuth {
            principal,
            audiences: audiences(&payload),
            presenter: s("azp"),
            issuer,
            claims: payload,
        }
    }

    /// The claim at `path` (nested objects), e.g. `["realm", "role"]`.
    pub fn claim(&self, path: &[impl AsRef<str>]) -> Option<&Value> {
        let (first, rest) = path.split_first()?;
        let mut v = self.claims.get(first.as_ref())?;
        for k in rest {
            v = v.as_object()?.get(k.as_ref())?;
        }
        Some(v)
    }

    /// The string values of a claim as Istio's metadata list matcher sees them: a string, or
    /// the strings of a list. Numbers, booleans and objects give nothing.
    pub fn claim_strings(&self, path: &[impl AsRef<str>]) -> Vec<&str> {
        match self.claim(path) {
            Some(Value::String(s)) => vec![s.as_str()],
            Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        }
    }

    /// A claim as a header value (Envoy `claim_to_headers`): strings as they are, numbers and
    /// booleans printed, lists of those joined with `,`; objects give nothing.
    pub fn claim_header_value(&self, path: &[impl AsRef<str>]) -> Option<String> {
        fn scalar(v: &Value) -> Option<String> {
            match v {
                Value::String(s) => Some(s.clone()),
                Value::Number(n) => Some(n.to_string()),
                Value::Bool(b) => Some(b.to_string()),
                _ => None,
            }
        }
        match self.claim(path)? {
            Value::Array(a) => {
                let parts: Option<Vec<String>> = a.iter().map(scalar).collect();
                parts.map(|p| p.join(","))
            }
            v => scalar(v),
        }
    }
}

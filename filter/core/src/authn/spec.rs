//! Strict input types of `security.istio.io` RequestAuthentication (v1, v1beta1), as the
//! istio/api `RequestAuthentication` and `JWTRule` messages define them.

use serde::Deserialize;

use crate::authz::spec::PolicyTargetReference;

/// `spec` of a RequestAuthentication.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RequestAuthenticationSpec {
    #[serde(default)]
    pub selector: Option<serde_json::Value>,
    #[serde(default)]
    pub target_ref: Option<PolicyTargetReference>,
    #[serde(default)]
    pub target_refs: Option<Vec<PolicyTargetReference>>,
    #[serde(default)]
    pub jwt_rules: Vec<JwtRuleSpec>,
}

/// One `spec.jwtRules[]` entry.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JwtRuleSpec {
    #[serde(default)]
    pub issuer: String,
    #[serde(default)]
    pub audiences: Vec<String>,
    #[serde(default)]
    pub jwks_uri: Option<String>,
    #[serde(default)]
    pub jwks: Option<String>,
    #[serde(default)]
    pub from_headers: Vec<JwtHeaderSpec>,
    #[serde(default)]
    pub from_params: Vec<String>,
    #[serde(default)]
    pub from_cookies: Vec<String>,
    #[serde(default)]
    pub output_payload_to_header: Option<String>,
    #[serde(default)]
    pub forward_original_token: bool,
    #[serde(default)]
    pub output_claim_to_headers: Vec<ClaimToHeaderSpec>,
    /// Timeout of the JWKS fetch (`1s` …); read, used by the host's fetcher.
    #[serde(default)]
    pub timeout: Option<String>,
}

/// `fromHeaders[]`: a header and the prefix before the token (`Bearer `).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JwtHeaderSpec {
    pub name: String,
    #[serde(default)]
    pub prefix: String,
}

/// `outputClaimToHeaders[]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClaimToHeaderSpec {
    pub header: String,
    pub claim: String,
}

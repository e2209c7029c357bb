//! RequestAuthentication compilation: strict parse, Istio's validation findings as errors that
//! name the field, and the rules (issuer, audiences, key source, token locations, outputs).

use crate::authz::PolicyTargets;
use crate::error::{Diagnostics, ResourceId};
use crate::istio::http_match::is_http_token;
use crate::resource::RawResource;

use super::spec::{JwtRuleSpec, RequestAuthenticationSpec};

/// Envoy jwt_authn's default `clock_skew_seconds` (Istio sets none).
pub const CLOCK_SKEW_SECONDS: u64 = 60;

/// Where a rule's keys come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JwksSource {
    /// `jwks`: the key set inline (JSON). Istio prefers it over `jwksUri`.
    Inline(String),
    /// `jwksUri`: fetched by the data path (the host's fetcher, Envoy's `remote_jwks`).
    Remote(String),
    /// Neither: OpenID discovery at `<issuer>/.well-known/openid-configuration`.
    Discovery(String),
}

/// Where a token is read from (Envoy `JwtProvider.from_headers` / `from_params` /
/// `from_cookies`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum TokenLocation {
    /// Header (name lowercased) and the prefix before the token.
    Header { name: String, prefix: String },
    /// Query parameter.
    Param(String),
    /// Cookie.
    Cookie(String),
}

impl TokenLocation {
    /// Envoy's defaults when a rule names no location: `Authorization: Bearer <token>` and
    /// the `access_token` query parameter.
    pub fn defaults() -> Vec<TokenLocation> {
        vec![
            TokenLocation::Header {
                name: "authorization".to_string(),
                prefix: "Bearer ".to_string(),
            },
            TokenLocation::Param("access_token".to_string()),
        ]
    }

    /// Short form for traces and explain: `header authorization "Bearer "`.
    pub fn describe(&self) -> String {
        match self {
            TokenLocation::Header { name, prefix } if prefix.is_empty() => format!("header {name}"),
            TokenLocation::Header { name, prefix } => format!("header {name} {prefix:?}"),
            TokenLocation::Param(p) => format!("query parameter {p}"),
            TokenLocation::Cookie(c) => format!("cookie {c}"),
        }
    }
}

/// One compiled `jwtRules[]` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwtRule {
    /// The RequestAuthentication it came from and its index in `jwtRules`.
    pub id: ResourceId,
    pub index: usize,
    pub issuer: String,
    /// Empty: any audience (Envoy checks none).
    pub audiences: Vec<String>,
    pub jwks: JwksSource,
    pub locations: Vec<TokenLocation>,
    pub output_payload_to_header: Option<String>,
    /// `outputClaimToHeaders`: (header lowercased, claim path split on `.`).
    pub claim_to_headers: Vec<(String, String)>,
    pub forward_original_token: bool,
    /// JWKS fetch timeout (`timeout`, default 5 s as istiod's).
    pub fetch_timeout_ms: u64,
}

/// A compiled RequestAuthentication.
#[derive(Debug, Clone)]
pub struct CompiledRequestAuthn {
    pub id: ResourceId,
    pub targets: PolicyTargets,
    pub rules: Vec<JwtRule>,
}

/// Compile one RequestAuthentication. `None` when its spec does not parse (an error in the
/// diagnostics); a rule that fails validation is left out alone.
pub fn compile_request_authn(raw: &RawResource) -> (Option<CompiledRequestAuthn>, Diagnostics) {
    let mut diags = Diagnostics::default();
    let spec: RequestAuthenticationSpec = match raw.parse_spec() {
        Ok(s) => s,
        Err(e) => {
            diags.error(e);
            return (None, diags);
        }
    };
    let targets = targets(raw, &spec, &mut diags);
    let mut rules = Vec::new();
    let mut issuers: Vec<&str> = Vec::new();
    for (i, r) in spec.jwt_rules.iter().enumerate() {
        let field = format!("spec.jwtRules[{i}]");
        if issuers.contains(&r.issuer.as_str()) && !r.issuer.is_empty() {
            diags.warn(raw.error(
                format!("{field}.issuer"),
                format!(
                    "issuer {:?} appears in more than one rule; each is a separate provider",
                    r.issuer
                ),
            ));
        }
        issuers.push(&r.issuer);
        if let Some(rule) = compile_rule(raw, &field, i, r, &mut diags) {
            rules.push(rule);
        }
    }
    let compiled = CompiledRequestAuthn {
        id: raw.id(),
        targets,
        rules,
    };
    (Some(compiled), diags)
}

fn compile_rule(
    raw: &RawResource,
    field: &str,
    index: usize,
    r: &JwtRuleSpec,
    diags: &mut Diagnostics,
) -> Option<JwtRule> {
    let mut ok = true;
    let mut bad = |f: String, msg: String| {
        diags.error(raw.error(f, format!("{msg}; this rule is left out")));
        ok = false;
    };
    if r.issuer.is_empty() {
        bad(format!("{field}.issuer"), "issuer must be set".into());
    }
    for (i, a) in r.audiences.iter().enumerate() {
        if a.is_empty() {
            bad(
                format!("{field}.audiences[{i}]"),
                "audience must be non-empty".into(),
            );
        }
    }
    let jwks = match (&r.jwks, &r.jwks_uri) {
        (Some(j), _) if !j.is_empty() => JwksSource::Inline(j.clone()),
        (_, Some(u)) if !u.is_empty() => {
            if let Err(msg) = check_uri(u) {
                bad(format!("{field}.jwksUri"), msg);
            }
            JwksSource::Remote(u.clone())
        }
        _ => JwksSource::Discovery(format!(
            "{}/.well-known/openid-configuration",
            r.issuer.trim_end_matches('/')
        )),
    };
    let mut locations = Vec::new();
    for (i, h) in r.from_headers.iter().enumerate() {
        if h.name.is_empty() || !is_http_token(&h.name) {
            bad(
                format!("{field}.fromHeaders[{i}].name"),
                format!("invalid header name {:?}", h.name),
            );
        }
        locations.push(TokenLocation::Header {
            name: h.name.to_ascii_lowercase(),
            prefix: h.prefix.clone(),
        });
    }
    for (i, p) in r.from_params.iter().enumerate() {
        if p.is_empty() {
            bad(
                format!("{field}.fromParams[{i}]"),
                "parameter name must be non-empty".into(),
            );
        }
        locations.push(TokenLocation::Param(p.clone()));
    }
    for (i, c) in r.from_cookies.iter().enumerate() {
        if c.is_empty() {
            bad(
                format!("{field}.fromCookies[{i}]"),
                "cookie name must be non-empty".into(),
            );
        }
        locations.push(TokenLocation::Cookie(c.clone()));
    }
    if locations.is_empty() {
        locations = TokenLocation::defaults();
    }
    let mut claim_to_headers: Vec<(String, String)> = Vec::new();
    for (i, c) in r.output_claim_to_headers.iter().enumerate() {
        let f = format!("{field}.outputClaimToHeaders[{i}]");
        if c.header.is_empty() || !is_http_token(&c.header) {
            bad(
                format!("{f}.header"),
                format!("invalid header name {:?}", c.header),
            );
        }
        if c.claim.is_empty() {
            bad(format!("{f}.claim"), "claim must be non-empty".into());
        }
        let h = c.header.to_ascii_lowercase();
        if claim_to_headers.iter().any(|(x, _)| *x == h) {
            bad(format!("{f}.header"), format!("duplicate header {h:?}"));
        }
        claim_to_headers.push((h, c.claim.clone()));
    }
    if let Some(h) = &r.output_payload_to_header {
        if !h.is_empty() && !is_http_token(h) {
            bad(
                format!("{field}.outputPayloadToHeader"),
                format!("invalid header name {h:?}"),
            );
        }
    }
    let fetch_timeout_ms = match r.timeout.as_deref() {
        None => 5000,
        Some(t) => match crate::istio::duration::parse_duration(t) {
            Ok(d) if !d.is_zero() => u64::try_from(d.as_millis()).unwrap_or(u64::MAX),
            _ => {
                bad(
                    format!("{field}.timeout"),
                    format!("invalid duration {t:?}"),
                );
                5000
            }
        },
    };
    ok.then(|| JwtRule {
        id: raw.id(),
        index,
        issuer: r.issuer.clone(),
        audiences: r.audiences.clone(),
        jwks,
        locations,
        output_payload_to_header: r.output_payload_to_header.clone().filter(|h| !h.is_empty()),
        claim_to_headers,
        forward_original_token: r.forward_original_token,
        fetch_timeout_ms,
    })
}

/// `jwksUri`: an absolute `http` / `https` URL with a host (Istio `security.ValidateJwksURI`).
fn check_uri(u: &str) -> Result<(), String> {
    let rest = u
        .strip_prefix("https://")
        .or_else(|| u.strip_prefix("http://"))
        .ok_or_else(|| format!("jwksUri {u:?} must be an http or https URL"))?;
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    if host.is_empty() {
        return Err(format!("jwksUri {u:?} has no host"));
    }
    Ok(())
}

fn targets(
    raw: &RawResource,
    s: &RequestAuthenticationSpec,
    diags: &mut Diagnostics,
) -> PolicyTargets {
    crate::authz::compile::policy_targets(
        raw,
        s.selector.is_some(),
        s.target_ref.as_ref(),
        s.target_refs.as_deref(),
        diags,
    )
}

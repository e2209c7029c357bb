//! `explain --jwt TOKEN [--jwks FILE]`: the token authenticated as the waypoint would (the
//! destination's RequestAuthentication rules, keys inline or from `--jwks`), and the verified
//! claims that authorization and routing then see.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use serde_json::{json, Value};
use waypoint_core::authn::{authenticate, JwksSource, JwtRule, RequestAuth};
use waypoint_core::{Request, Snapshot};
use waypoint_jwt::{JwksVerifier, KeySet, KeySource};

/// Keys for explain: `--jwks FILE` for every rule, else the rule's inline set; a `jwksUri`
/// set is not fetched offline.
struct ExplainKeys {
    file: Option<Arc<KeySet>>,
}

impl KeySource for ExplainKeys {
    fn keys_for(&self, rule: &JwtRule) -> Option<Arc<KeySet>> {
        if let Some(k) = &self.file {
            return Some(k.clone());
        }
        match &rule.jwks {
            JwksSource::Inline(text) => KeySet::parse(text).ok().map(Arc::new),
            JwksSource::Remote(_) | JwksSource::Discovery(_) => None,
        }
    }
}

/// Read `--jwks FILE`.
pub fn load_jwks(path: &Path) -> anyhow::Result<Arc<KeySet>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("--jwks {}: cannot read", path.display()))?;
    let keys = KeySet::parse(&text).with_context(|| format!("--jwks {}", path.display()))?;
    Ok(Arc::new(keys))
}

/// The outcome of authentication for explain.
pub enum Authn {
    /// Passed: the verified attributes (none without a token) and the `jwt` JSON field.
    Passed(Option<RequestAuth>, Value),
    /// 401: the status, body and `jwt` JSON field.
    Refused { body: String, jwt: Value },
}

/// Authenticate `req` against the snapshot's rules for its destination.
pub fn run(snapshot: &Snapshot, req: &Request<'_>, jwks: Option<Arc<KeySet>>) -> Authn {
    let rules = snapshot.jwt_rules_for(req.destination);
    let keys = ExplainKeys { file: jwks };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let remote_note = rules
        .iter()
        .any(|r| !matches!(r.jwks, JwksSource::Inline(_)))
        .then_some("jwksUri key sets are not fetched by explain: pass --jwks FILE");
    let rule_names: Vec<String> = rules
        .iter()
        .map(|r| format!("{} jwtRules[{}] issuer {}", r.id, r.index, r.issuer))
        .collect();
    match authenticate(&rules, req, &JwksVerifier(&keys), now) {
        Ok(done) => {
            let auth = done.auth.clone();
            let jwt = json!({
                "rules": rule_names,
                "verified": auth.is_some(),
                "principal": auth.as_ref().and_then(|a| a.principal.clone()),
                "audiences": auth.as_ref().map(|a| a.audiences.clone()),
                "presenter": auth.as_ref().and_then(|a| a.presenter.clone()),
                "claims": auth.as_ref().map(|a| Value::Object(a.claims.clone())),
                "headers_set": done.set_headers,
                "headers_removed": done.remove_headers,
                "trace": done.trace,
                "note": remote_note,
            });
            Authn::Passed(done.auth, jwt)
        }
        Err(u) => Authn::Refused {
            body: u.body(),
            jwt: json!({
                "rules": rule_names,
                "verified": false,
                "error": u.body(),
                "trace": u.trace,
                "note": remote_note,
            }),
        },
    }
}

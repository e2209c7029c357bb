//! Request-time evaluation of the policies that apply to one request: CUSTOM, then DENY,
//! then ALLOW, as the waypoint's filter chain orders them; AUDIT and dry-run only report.
//!
//! Istio semantics (https://istio.io/latest/docs/concepts/security/#implicit-enablement and
//! the AuthorizationPolicy reference): a CUSTOM match hands the request to the ext-authz
//! provider; any DENY match denies; if at least one enforced ALLOW policy applies, the
//! request must match one of them; with no ALLOW policy the request is allowed.

use std::borrow::Cow;
use std::net::IpAddr;

use super::path::path_without_query;
use super::pattern::block_contains;
use super::policy::{Action, Attr, CompiledPolicy, CompiledRule, Cond, CustomMode, JwtAttr};
use crate::error::ResourceId;
use crate::request::Request;

/// What evaluation reads besides the request itself.
#[derive(Debug, Clone, Copy)]
pub struct AuthzInput<'a> {
    pub request: &'a Request<'a>,
    /// The request path after [`super::normalize_path`], with its query.
    pub path: &'a str,
    /// Original destination address and port (Envoy `destination.ip` / `destination.port`,
    /// also what `ports` / `notPorts` compare).
    pub dest_ip: Option<IpAddr>,
    pub dest_port: Option<u16>,
    /// The verified JWT's attributes (`request.auth.*`), if the request carried one.
    pub auth: Option<&'a crate::authn::RequestAuth>,
}

/// The result of one policy for one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyVerdict<'p> {
    pub policy: &'p ResourceId,
    pub action: Action,
    /// One of the policy's rules matched the request.
    pub matched: bool,
    /// The policy is dry run: reported, never enforced.
    pub dry_run: bool,
}

/// The decision for one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthzOutcome<'p> {
    /// False: reply 403 `RBAC: access denied`.
    pub allowed: bool,
    /// A CUSTOM policy matched: the request must also be allowed by this ext-authz provider
    /// (Istio runs ext_authz before RBAC; a provider allow never overrides a DENY/ALLOW
    /// denial). `None`: no provider is consulted. Only meaningful when `allowed`.
    pub custom: Option<&'p str>,
    /// One entry per policy given, in the order given.
    /// Inline for up to 4 policies: no heap allocation on the common path.
    pub verdicts: smallvec::SmallVec<[PolicyVerdict<'p>; 4]>,
    /// Human-readable evaluation steps (empty unless asked for).
    pub trace: Vec<String>,
}

impl AuthzOutcome<'_> {
    /// Verdicts of matched AUDIT policies (Envoy RBAC `LOG` action: the request is marked for
    /// audit logging, never blocked).
    pub fn audited(&self) -> impl Iterator<Item = &PolicyVerdict<'_>> {
        self.verdicts
            .iter()
            .filter(|v| v.action == Action::Audit && v.matched && !v.dry_run)
    }
}

/// Request attributes, resolved once per evaluation.
struct Ctx<'a> {
    req: &'a Request<'a>,
    /// Evaluated for an opaque TCP connection (Istio's network RBAC), not an HTTP request.
    tcp: bool,
    full_path: &'a str,
    path: &'a str,
    dest_ip: Option<IpAddr>,
    dest_port: Option<u16>,
    auth: Option<&'a crate::authn::RequestAuth>,
}

impl<'a> Ctx<'a> {
    fn authority(&self) -> Option<&'a str> {
        Some(self.req.authority).filter(|a| !a.is_empty())
    }

    /// Envoy header lookup: pseudo-headers from the request line; `host` is never present
    /// (Envoy stores it as `:authority`); repeated headers joined with `,`.
    fn header(&self, name: &str) -> Option<Cow<'a, str>> {
        match name {
            ":authority" => self.authority().map(Cow::Borrowed),
            ":method" => Some(Cow::Borrowed(self.req.method)),
            ":path" => Some(Cow::Borrowed(self.full_path)),
            ":scheme" => Some(Cow::Borrowed(self.req.scheme)),
            "host" => None,
            _ => self.req.header_joined(name),
        }
    }
}

impl Cond {
    fn eval(&self, ctx: &Ctx<'_>) -> bool {
        if ctx.tcp && self.attr.http_only() {
            // Istio's TCP filter chain: the generator errors on an HTTP-only key, and for
            // DENY / AUDIT / CUSTOM `checkError` drops just that key (the rule gets broader).
            // ALLOW rules holding one never get here (see `CompiledPolicy::matches`).
            return true;
        }
        let hit = match &self.attr {
            Attr::Principal(pats) => pats.iter().any(|p| p.matches(ctx.req.source_principal)),
            Attr::SourceIp(blocks) | Attr::RemoteIp(blocks) => ctx
                .req
                .source_ip
                .is_some_and(|ip| blocks.iter().any(|b| block_contains(b, ip))),
            Attr::DestIp(blocks) => ctx
                .dest_ip
                .is_some_and(|ip| blocks.iter().any(|b| block_contains(b, ip))),
            Attr::DestPort(ports) => ctx.dest_port.is_some_and(|p| ports.contains(&p)),
            Attr::Host(pats) => {
                let a = ctx.authority();
                pats.iter().any(|p| p.matches_ignore_case(a))
            }
            Attr::Method(pats) => pats.iter().any(|p| p.matches(Some(ctx.req.method))),
            Attr::Path(pats) => pats.iter().any(|p| p.matches(ctx.path)),
            Attr::Header { name, pats } => {
                let v = ctx.header(name);
                pats.iter().any(|p| p.matches(v.as_deref()))
            }
            // Envoy `requested_server_name` is empty without TLS.
            Attr::Sni(pats) => pats
                .iter()
                .any(|p| p.matches(Some(ctx.req.sni.unwrap_or("")))),
            Attr::Jwt { what, pats } => jwt_matches(ctx.auth, what, pats),
        };
        hit != self.negate
    }

    fn describe(&self) -> String {
        format!(
            "{}{} ({})",
            if self.negate { "NOT " } else { "" },
            self.field,
            self.attr.describe()
        )
    }
}

/// A JWT condition: no verified token matches nothing (Envoy metadata matchers on absent
/// metadata); list attributes (audiences, list claims) match when any element does.
fn jwt_matches(
    auth: Option<&crate::authn::RequestAuth>,
    what: &JwtAttr,
    pats: &[super::pattern::StrPat],
) -> bool {
    let Some(a) = auth else {
        return false;
    };
    let any = |vals: &[&str]| vals.iter().any(|v| pats.iter().any(|p| p.matches(Some(v))));
    match what {
        JwtAttr::Principal => a
            .principal
            .as_deref()
            .is_some_and(|p| pats.iter().any(|pat| pat.matches(Some(p)))),
        JwtAttr::Presenter => a
            .presenter
            .as_deref()
            .is_some_and(|p| pats.iter().any(|pat| pat.matches(Some(p)))),
        JwtAttr::Audiences => {
            let v: Vec<&str> = a.audiences.iter().map(String::as_str).collect();
            any(&v)
        }
        JwtAttr::Claim(path) => any(&a.claim_strings(path)),
    }
}

/// AND of conditions; on failure, the first failing one (for traces).
fn all<'c>(conds: &'c [Cond], ctx: &Ctx<'_>) -> Result<(), &'c Cond> {
    match conds.iter().find(|c| !c.eval(ctx)) {
        None => Ok(()),
        Some(c) => Err(c),
    }
}

/// OR of entries (each an AND); an empty list matches anything.
fn any_entry<'c>(entries: &'c [Vec<Cond>], ctx: &Ctx<'_>) -> Result<(), &'c Cond> {
    if entries.is_empty() {
        return Ok(());
    }
    let mut first_fail = None;
    for e in entries {
        match all(e, ctx) {
            Ok(()) => return Ok(()),
            Err(c) => {
                first_fail.get_or_insert(c);
            }
        }
    }
    // `entries` is non-empty and every entry failed, so there is a failing condition.
    match first_fail {
        Some(c) => Err(c),
        None => Ok(()),
    }
}

impl CompiledRule {
    /// Does any condition read what only an HTTP request has?
    fn has_http_only(&self) -> bool {
        self.from
            .iter()
            .chain(self.to.iter())
            .flatten()
            .chain(self.when.iter())
            .any(|c| c.attr.http_only())
    }

    /// On TCP, an ALLOW rule with an HTTP-only condition is skipped by istiod (`checkError`
    /// returns the error for ALLOW: "skipped rule ... on TCP filter chain"): it never matches.
    fn skipped_on_tcp(&self, ctx: &Ctx<'_>, action: Action) -> bool {
        ctx.tcp && action == Action::Allow && self.has_http_only()
    }

    fn eval<'c>(&'c self, ctx: &Ctx<'_>) -> Result<(), (&'static str, &'c Cond)> {
        any_entry(&self.from, ctx).map_err(|c| ("from", c))?;
        any_entry(&self.to, ctx).map_err(|c| ("to", c))?;
        all(&self.when, ctx).map_err(|c| ("when", c))
    }
}

impl CompiledPolicy {
    fn matches(&self, ctx: &Ctx<'_>, trace: Option<&mut Vec<String>>) -> bool {
        match trace {
            None => self
                .rules
                .iter()
                .any(|r| !r.skipped_on_tcp(ctx, self.action) && r.eval(ctx).is_ok()),
            Some(t) => {
                if self.rules.is_empty() {
                    t.push(format!("  {}: no rules, matches nothing", self.id));
                }
                for r in &self.rules {
                    let name = if r.index == usize::MAX {
                        "fail-closed rule".to_string()
                    } else {
                        format!("rule[{}]", r.index)
                    };
                    if r.skipped_on_tcp(ctx, self.action) {
                        t.push(format!(
                            "  {}: {name} skipped on TCP: it has HTTP-only conditions",
                            self.id
                        ));
                        continue;
                    }
                    match r.eval(ctx) {
                        Ok(()) => {
                            t.push(format!("  {}: {name} matched", self.id));
                            return true;
                        }
                        Err((part, c)) => t.push(format!(
                            "  {}: {name} no match: {part} failed on {}",
                            self.id,
                            c.describe()
                        )),
                    }
                }
                false
            }
        }
    }
}

/// Evaluate the policies that apply to this request (the caller selects them by target).
/// Order of `policies` does not change the decision; CUSTOM, DENY and ALLOW are combined as
/// Envoy's filter order does. Without `want_trace` nothing is allocated (verdicts stay inline
/// for up to four policies).
pub fn evaluate<'p>(
    policies: &[&'p CompiledPolicy],
    input: &AuthzInput<'_>,
    want_trace: bool,
) -> AuthzOutcome<'p> {
    evaluate_as(policies, input, false, want_trace)
}

/// Evaluate the policies for an opaque TCP connection, as Istio's network RBAC filter does
/// (`pilot/pkg/security/authz/model`, `forTCP`): HTTP-only conditions (hosts, methods, paths,
/// their `not*`, requestPrincipals, `request.headers[...]`, `request.auth.*`) are dropped from
/// DENY, AUDIT and CUSTOM rules (the rule matches more), and an ALLOW rule holding any of them
/// never matches. A CUSTOM rule that matches denies: the waypoint has no network ext_authz
/// client, so it fails closed (Istio would ask a gRPC provider; an HTTP one cannot be asked).
/// The request's method, path and headers are ignored; `custom` is always `None`.
pub fn evaluate_tcp<'p>(
    policies: &[&'p CompiledPolicy],
    input: &AuthzInput<'_>,
    want_trace: bool,
) -> AuthzOutcome<'p> {
    evaluate_as(policies, input, true, want_trace)
}

fn evaluate_as<'p>(
    policies: &[&'p CompiledPolicy],
    input: &AuthzInput<'_>,
    tcp: bool,
    want_trace: bool,
) -> AuthzOutcome<'p> {
    let ctx = Ctx {
        tcp,
        req: input.request,
        full_path: input.path,
        path: path_without_query(input.path),
        dest_ip: input.dest_ip,
        dest_port: input.dest_port,
        auth: input.auth,
    };
    let mut trace = Vec::new();

    // Istio generates one ext_authz filter per workload; more than one CUSTOM provider on a
    // workload (PILOT_ENABLE_MULTIPLE_CUSTOM_AUTHZ_PROVIDERS off, the default) turns every
    // enforced CUSTOM rule into a DENY (builder.go buildHTTP).
    let mut first_provider: Option<&str> = None;
    let mut multiple_providers = false;
    for p in policies.iter().filter(|p| p.action == Action::Custom) {
        let name = p.provider.as_deref().unwrap_or("");
        match first_provider {
            None => first_provider = Some(name),
            Some(f) if f != name => multiple_providers = true,
            Some(_) => {}
        }
    }
    if multiple_providers && want_trace {
        trace.push(
            "several CUSTOM providers apply: CUSTOM rules deny (one provider per workload)"
                .to_string(),
        );
    }

    let mut verdicts = smallvec::SmallVec::with_capacity(policies.len());
    let mut custom: Option<&'p str> = None;
    let mut denied_by_custom = false;
    let mut denied = false;
    let mut allow_present = false;
    let mut allowed_by_rule = false;

    // Every policy is evaluated (for the verdicts); the decision combines them by action,
    // so the order of `policies` does not matter.
    {
        for p in policies.iter().copied() {
            let matched = p.matches(&ctx, want_trace.then_some(&mut trace));
            verdicts.push(PolicyVerdict {
                policy: &p.id,
                action: p.action,
                matched,
                dry_run: p.dry_run,
            });
            if want_trace {
                trace.push(format!(
                    "{} {}{}: {}",
                    p.action,
                    p.id,
                    if p.dry_run { " (dry run)" } else { "" },
                    if matched { "matched" } else { "not matched" }
                ));
            }
            if p.dry_run {
                continue;
            }
            match p.action {
                Action::Custom => {
                    if !matched {
                        continue;
                    }
                    if multiple_providers && p.custom_shadow {
                        // Only enforced CUSTOM rules become the bad-CUSTOM DENY.
                        continue;
                    }
                    if p.custom_mode == CustomMode::DenyOnMatch || multiple_providers || tcp {
                        denied_by_custom = true;
                    } else if custom.is_none() {
                        custom = p.provider.as_deref();
                    }
                }
                Action::Deny => denied |= matched,
                Action::Allow => {
                    allow_present = true;
                    allowed_by_rule |= matched;
                }
                Action::Audit => {}
            }
        }
    }
    let allowed = !denied_by_custom && !denied && (!allow_present || allowed_by_rule);
    if want_trace {
        let why = if denied_by_custom && tcp {
            "denied: a CUSTOM rule matched a TCP connection (no network ext_authz: fail closed)"
        } else if denied_by_custom {
            "denied: CUSTOM rule with an unusable provider matched"
        } else if denied {
            "denied: a DENY policy matched"
        } else if allow_present && !allowed_by_rule {
            "denied: ALLOW policies apply and none matched"
        } else if allow_present {
            "allowed: an ALLOW policy matched"
        } else {
            "allowed: no DENY matched and no ALLOW policy applies"
        };
        trace.push(why.to_string());
        if let (false, Some(c)) = (denied_by_custom, custom) {
            trace.push(format!(
                "ext-authz provider {c:?} is asked first (Istio: CUSTOM, then DENY, then ALLOW)"
            ));
        }
    }
    AuthzOutcome {
        allowed,
        // An unusable CUSTOM rule denies before any provider is asked (Istio's RBAC filter in
        // front of ext_authz); otherwise a matched provider is asked first, even when DENY or
        // ALLOW will deny (Istio's layers: CUSTOM, then DENY, then ALLOW).
        custom: custom.filter(|_| !denied_by_custom),
        verdicts,
        trace,
    }
}

//! Compiled AuthorizationPolicy: identity, action, targets and rules turned into matchers,
//! exactly as istiod's `authz/model` + `authz/builder` shape them into Envoy RBAC.

use std::fmt;

use ipnet::IpNet;

use super::pattern::{PathPat, PrincipalPat, StrPat};
use crate::error::ResourceId;

/// `spec.action`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    Allow,
    Deny,
    Audit,
    Custom,
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Action::Allow => "ALLOW",
            Action::Deny => "DENY",
            Action::Audit => "AUDIT",
            Action::Custom => "CUSTOM",
        })
    }
}

/// One `spec.targetRefs[]` entry (or the hidden singular `spec.targetRef`). `namespace`
/// defaults to the policy namespace; group `core` is normalized to `""`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TargetRef {
    pub group: String,
    pub kind: String,
    pub name: String,
    pub namespace: String,
}

/// What the policy attaches to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicyTargets {
    /// `targetRefs` / `targetRef` (the only form a waypoint honours).
    Refs(Vec<TargetRef>),
    /// `selector` (workload selection; ignored by waypoints per the istio/api docs).
    Selector,
    /// Neither: the whole namespace (or the mesh, in the root namespace).
    Unscoped,
    /// The spec could not be parsed and no target could be recovered: the caller must
    /// treat the policy as applying to everything in its namespace.
    Unknown,
}

/// How a CUSTOM policy acts when one of its rules matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CustomMode {
    /// Ask the ext-authz provider (the adapter calls it).
    AskProvider,
    /// Deny the request (Istio's `-deny-due-to-bad-CUSTOM-action` RBAC DENY, also used for
    /// an enforced RBAC of dry-run CUSTOM rules).
    DenyOnMatch,
}

/// A compiled policy. Rules are private; evaluate with [`super::evaluate`].
#[derive(Debug, Clone)]
pub struct CompiledPolicy {
    pub id: ResourceId,
    /// Effective action. A policy whose spec could not be parsed is compiled as a DENY that
    /// matches every request (fail closed).
    pub action: Action,
    pub targets: PolicyTargets,
    /// `istio.io/dry-run: "true"`: never enforced, only reported.
    pub dry_run: bool,
    /// `spec.provider.name` (CUSTOM).
    pub provider: Option<String>,
    pub(crate) custom_mode: CustomMode,
    /// A dry-run CUSTOM policy with a usable provider (enforced as DENY by Istio, but left
    /// out when several providers force the bad-CUSTOM DENY).
    pub(crate) custom_shadow: bool,
    pub(crate) rules: Vec<CompiledRule>,
}

impl CompiledPolicy {
    /// Number of rules that survived compilation (rules that failed in an ALLOW policy are
    /// dropped, as istiod drops them).
    pub fn rule_count(&self) -> usize {
        self.rules.len()
    }

    /// True when this is the fail-closed stand-in for a policy whose spec did not parse.
    pub fn is_fail_closed(&self) -> bool {
        self.rules.len() == 1 && self.rules[0].index == usize::MAX
    }
}

/// One rule: `from` entries ORed (empty = any source), `to` entries ORed (empty = any
/// operation), `when` conditions ANDed. Fields inside an entry are ANDed.
#[derive(Debug, Clone)]
pub(crate) struct CompiledRule {
    /// Index in `spec.rules` (`usize::MAX` for the fail-closed match-all rule).
    pub(crate) index: usize,
    pub(crate) from: Vec<Vec<Cond>>,
    pub(crate) to: Vec<Vec<Cond>>,
    pub(crate) when: Vec<Cond>,
}

impl CompiledRule {
    pub(crate) fn match_all(index: usize) -> CompiledRule {
        CompiledRule {
            index,
            from: Vec::new(),
            to: Vec::new(),
            when: Vec::new(),
        }
    }
}

/// One condition: the OR of `attr`'s values, negated for `not*` / `notValues`.
#[derive(Debug, Clone)]
pub(crate) struct Cond {
    /// Field name for traces, e.g. `notPrincipals` or `when[request.headers[x]]`.
    pub(crate) field: String,
    pub(crate) negate: bool,
    pub(crate) attr: Attr,
}

/// The request attribute a condition reads, with its compiled values.
#[derive(Debug, Clone)]
pub(crate) enum Attr {
    /// Peer principal: principals, namespaces, serviceAccounts, trustDomains.
    Principal(Vec<PrincipalPat>),
    /// Envoy `direct_remote_ip` (ipBlocks, source.ip).
    SourceIp(Vec<IpNet>),
    /// Envoy `remote_ip` (remoteIpBlocks, remote.ip); the waypoint's source is already the
    /// original client (HBONE `forwarded`), so both read the same address.
    RemoteIp(Vec<IpNet>),
    DestIp(Vec<IpNet>),
    DestPort(Vec<u16>),
    /// `:authority`, ASCII case-insensitive, patterns lowercased.
    Host(Vec<StrPat>),
    Method(Vec<StrPat>),
    Path(Vec<PathPat>),
    /// Request header (name lowercased).
    Header {
        name: String,
        pats: Vec<StrPat>,
    },
    Sni(Vec<StrPat>),
    /// JWT-derived attributes (request principals, audiences, presenter, claims), read from
    /// the request's verified token; absent without one.
    Jwt {
        what: JwtAttr,
        pats: Vec<StrPat>,
    },
}

/// Which `request.auth.*` attribute a JWT condition reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum JwtAttr {
    /// `requestPrincipals`, `request.auth.principal`: `iss/sub`.
    Principal,
    /// `request.auth.audiences`: `aud`.
    Audiences,
    /// `request.auth.presenter`: `azp`.
    Presenter,
    /// `request.auth.claims[a][b]`: a (nested) claim, string or list of strings.
    Claim(Vec<String>),
}

impl Attr {
    /// Only an HTTP request carries it (Istio's generators return "is HTTP only" for these
    /// keys on the TCP filter chain): hosts, methods, paths, request headers, JWT attributes.
    pub(crate) fn http_only(&self) -> bool {
        matches!(
            self,
            Attr::Host(_)
                | Attr::Method(_)
                | Attr::Path(_)
                | Attr::Header { .. }
                | Attr::Jwt { .. }
        )
    }

    pub(crate) fn describe(&self) -> String {
        fn list<T>(v: &[T], f: impl Fn(&T) -> String) -> String {
            v.iter().map(f).collect::<Vec<_>>().join(" | ")
        }
        match self {
            Attr::Principal(v) => format!("principal {}", list(v, |p| p.describe())),
            Attr::SourceIp(v) => format!("source ip in {}", list(v, |n| n.to_string())),
            Attr::RemoteIp(v) => format!("remote ip in {}", list(v, |n| n.to_string())),
            Attr::DestIp(v) => format!("destination ip in {}", list(v, |n| n.to_string())),
            Attr::DestPort(v) => format!("destination port in {}", list(v, |p| p.to_string())),
            Attr::Host(v) => format!("host {}", list(v, |p| p.describe())),
            Attr::Method(v) => format!("method {}", list(v, |p| p.describe())),
            Attr::Path(v) => format!("path {}", list(v, |p| p.describe())),
            Attr::Header { name, pats } => {
                format!("header {name} {}", list(pats, |p| p.describe()))
            }
            Attr::Sni(v) => format!("sni {}", list(v, |p| p.describe())),
            Attr::Jwt { what, pats } => {
                let name = match what {
                    JwtAttr::Principal => "request principal".to_string(),
                    JwtAttr::Audiences => "JWT audience".to_string(),
                    JwtAttr::Presenter => "JWT presenter".to_string(),
                    JwtAttr::Claim(path) => format!("JWT claim {}", path.join(".")),
                };
                format!("{name} {}", list(pats, |p| p.describe()))
            }
        }
    }
}

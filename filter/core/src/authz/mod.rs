//! AuthorizationPolicy: strict input types, compilation, and evaluation as a waypoint
//! enforces it (CUSTOM, DENY, ALLOW; AUDIT marks only).

// TEMPORARY STUB (lead): replaced by the authz branch.
use crate::error::{Diagnostics, ResourceId};
use crate::request::Request;
use crate::resource::RawResource;
use std::net::IpAddr;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Allow,
    Deny,
    Audit,
    Custom,
}
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetRef {
    pub group: String,
    pub kind: String,
    pub name: String,
    pub namespace: String,
}
#[derive(Debug, Clone)]
pub enum PolicyTargets {
    Refs(Vec<TargetRef>),
    Selector,
    Unscoped,
    Unknown,
}
#[derive(Debug)]
pub struct CompiledPolicy {
    pub id: ResourceId,
    pub action: Action,
    pub targets: PolicyTargets,
    pub dry_run: bool,
    pub provider: Option<String>,
}
pub fn compile_policy(raw: &RawResource, _p: &[&str]) -> (CompiledPolicy, Diagnostics) {
    (
        CompiledPolicy {
            id: raw.id(),
            action: Action::Allow,
            targets: PolicyTargets::Unknown,
            dry_run: false,
            provider: None,
        },
        Diagnostics::default(),
    )
}
pub struct AuthzInput<'a> {
    pub request: &'a Request<'a>,
    pub path: &'a str,
    pub dest_ip: Option<IpAddr>,
    pub dest_port: Option<u16>,
}
pub struct PolicyVerdict<'p> {
    pub policy: &'p ResourceId,
    pub action: Action,
    pub matched: bool,
    pub dry_run: bool,
}
pub struct AuthzOutcome<'p> {
    pub allowed: bool,
    pub verdicts: Vec<PolicyVerdict<'p>>,
    pub trace: Vec<String>,
}
pub fn evaluate<'p>(
    _policies: &[&'p CompiledPolicy],
    _input: &AuthzInput<'_>,
    _t: bool,
) -> AuthzOutcome<'p> {
    AuthzOutcome {
        allowed: true,
        verdicts: vec![],
        trace: vec![],
    }
}
pub fn normalize_path(path: &str) -> std::borrow::Cow<'_, str> {
    std::borrow::Cow::Borrowed(path)
}

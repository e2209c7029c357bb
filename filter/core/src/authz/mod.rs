//! AuthorizationPolicy: strict input types, compilation, and evaluation as a waypoint
//! enforces it (CUSTOM, DENY, ALLOW; AUDIT marks only).
//!
//! Compile each policy once with [`compile_policy`]; per request, select the policies whose
//! targets cover the destination, normalize the path with [`normalize_path`] and call
//! [`evaluate`]. `allowed == false` maps to 403 `RBAC: access denied`; `custom == Some(p)`
//! means ext-authz provider `p` must also allow the request.

pub(crate) mod compile;
mod eval;
mod path;
mod pattern;
mod policy;
pub mod spec;
mod trust_domain;

#[cfg(test)]
mod eval_tests;
#[cfg(test)]
mod fixture_tests;

pub use compile::{compile_policy, compile_policy_with, CompileOptions, DRY_RUN_ANNOTATION};
pub use eval::{evaluate, evaluate_tcp, AuthzInput, AuthzOutcome, PolicyVerdict};
pub use path::{
    compile_path_template, is_path_template, merge_slashes, normalize_path, normalize_path_stable,
    normalize_path_with, path_without_query, try_normalize_path, unescape_slashes,
};
pub(crate) use policy::Attr;
pub use policy::{Action, CompiledPolicy, PolicyTargets, TargetRef};
pub use trust_domain::TrustDomainBundle;

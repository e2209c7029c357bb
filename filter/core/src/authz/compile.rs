//! AuthorizationPolicy compilation: strict parse, Istio validation findings as diagnostics,
//! and istiod's rule translation with its fail-closed handling of bad values.
//!
//! Failure handling mirrors `pilot/pkg/security/authz/model/model.go` (`checkError`): in an
//! ALLOW policy a value that cannot be translated drops the whole rule (a smaller allow); in
//! DENY / AUDIT / CUSTOM the bad value alone is dropped, and a condition left without values
//! disappears (a wider deny). A spec that does not parse at all yields a DENY-everything
//! policy for the targets we can still recover.

use serde_json::Value;

use super::pattern::{parse_ip_block, parse_port, PathPat, PrincipalPat, StrPat};
use super::policy::{
    Action, Attr, CompiledPolicy, CompiledRule, Cond, CustomMode, JwtAttr, PolicyTargets, TargetRef,
};
use super::spec::{self, ActionSpec, AuthorizationPolicySpec};
use super::trust_domain::TrustDomainBundle;
use crate::error::{ConfigError, Diagnostics};
use crate::resource::RawResource;

/// Annotation marking a policy as dry run (`annotation.IoIstioDryRun`).
pub const DRY_RUN_ANNOTATION: &str = "istio.io/dry-run";

/// Mesh-level inputs of compilation.
#[derive(Debug, Clone, Copy)]
pub struct CompileOptions<'a> {
    /// Names of the ext-authz providers declared in MeshConfig `extensionProviders` that the
    /// adapter can call.
    pub custom_providers: &'a [&'a str],
    /// Local trust domain and its aliases (principals written with `cluster.local` or an
    /// alias are expanded to all of them).
    pub trust_domains: &'a TrustDomainBundle,
}

/// Compile one AuthorizationPolicy with the default trust domain `cluster.local`.
/// Always returns a policy; see [`compile_policy_with`].
pub fn compile_policy(
    raw: &RawResource,
    custom_providers: &[&str],
) -> (CompiledPolicy, Diagnostics) {
    let td = TrustDomainBundle::default();
    compile_policy_with(
        raw,
        &CompileOptions {
            custom_providers,
            trust_domains: &td,
        },
    )
}

/// Compile one AuthorizationPolicy. Always returns a policy: when `spec` does not parse, the
/// result is a fail-closed DENY matching every request, with targets recovered leniently from
/// `spec.targetRefs` / `spec.targetRef` (else [`PolicyTargets::Unknown`]).
pub fn compile_policy_with(
    raw: &RawResource,
    opts: &CompileOptions<'_>,
) -> (CompiledPolicy, Diagnostics) {
    let mut diags = Diagnostics::default();
    let spec: AuthorizationPolicySpec = match raw.parse_spec() {
        Ok(s) => s,
        Err(e) => {
            diags.error(e);
            diags.error(raw.error(
                "spec",
                "spec is invalid: the policy fails closed and denies every request to its targets",
            ));
            let targets = lenient_targets(raw);
            let policy = CompiledPolicy {
                id: raw.id(),
                action: Action::Deny,
                targets,
                dry_run: dry_run(raw, Action::Deny, &mut Diagnostics::default()),
                provider: None,
                custom_mode: CustomMode::DenyOnMatch,
                custom_shadow: false,
                rules: vec![CompiledRule::match_all(usize::MAX)],
            };
            return (policy, diags);
        }
    };

    let action = match spec.action {
        None | Some(ActionSpec::Allow) => Action::Allow,
        Some(ActionSpec::Deny) => Action::Deny,
        Some(ActionSpec::Audit) => Action::Audit,
        Some(ActionSpec::Custom) => Action::Custom,
    };
    let targets = targets(raw, &spec, &mut diags);
    let mut dry_run = dry_run(raw, action, &mut diags);
    validate_top_level(raw, &spec, action, &mut diags);

    let provider = spec.provider.as_ref().map(|p| p.name.clone());
    let mut custom_mode = CustomMode::AskProvider;
    let mut custom_shadow = false;
    if action == Action::Custom {
        let name = provider.as_deref().unwrap_or("");
        let known = !name.is_empty() && opts.custom_providers.contains(&name);
        if !known {
            diags.error(raw.error(
                "spec.provider.name",
                format!(
                    "CUSTOM provider {name:?} is not a known extension provider (known: {:?}); \
                     requests matching the rules are denied",
                    opts.custom_providers
                ),
            ));
            custom_mode = CustomMode::DenyOnMatch;
        } else if dry_run {
            // Istio puts dry-run CUSTOM rules into the enforcing `rules` of the DENY-action
            // RBAC filter that guards ext_authz (builder.go buildHTTP), so they deny.
            diags.error(raw.error(
                "metadata.annotations",
                "istio.io/dry-run is not supported with CUSTOM; Istio enforces these rules as \
                 a DENY, and so do we",
            ));
            dry_run = false;
            custom_shadow = true;
            custom_mode = CustomMode::DenyOnMatch;
        }
    }

    let mut rules = Vec::new();
    for (i, rule) in spec.rules.iter().flatten().enumerate() {
        let field = format!("spec.rules[{i}]");
        let Some(rule) = rule else {
            diags.error(raw.error(field, "rule must not be null; skipped"));
            continue;
        };
        let mut b = RuleBuilder {
            raw,
            action,
            opts,
            diags: &mut diags,
            poisoned: false,
        };
        let compiled = b.rule(i, rule);
        if b.poisoned {
            diags.warn(raw.error(
                field,
                "rule dropped: it holds a value the waypoint cannot enforce (ALLOW fails closed)",
            ));
        } else {
            rules.push(compiled);
        }
    }

    let policy = CompiledPolicy {
        id: raw.id(),
        action,
        targets,
        dry_run,
        provider,
        custom_mode,
        custom_shadow,
        rules,
    };
    (policy, diags)
}

/// `istio.io/dry-run`, parsed like Go's `strconv.ParseBool`; a bad value is an error and the
/// policy is enforced (builder.go `isDryRun`).
fn dry_run(raw: &RawResource, action: Action, diags: &mut Diagnostics) -> bool {
    let Some(v) = raw.annotations.get(DRY_RUN_ANNOTATION) else {
        return false;
    };
    let parsed = match v.as_str() {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    };
    let field = format!("metadata.annotations[{DRY_RUN_ANNOTATION}]");
    match parsed {
        None => {
            diags.error(raw.error(
                field,
                format!("invalid value {v:?}: expected a boolean; the policy is enforced"),
            ));
            false
        }
        Some(b) => {
            if !matches!(action, Action::Allow | Action::Deny) {
                diags.error(raw.error(
                    field,
                    format!("dry-run only supports action ALLOW/DENY, found {action}"),
                ));
            }
            b
        }
    }
}

fn target_ref(raw: &RawResource, r: &spec::PolicyTargetReference) -> TargetRef {
    let group = match r.group.as_deref() {
        None | Some("core") => String::new(),
        Some(g) => g.to_string(),
    };
    TargetRef {
        group,
        kind: r.kind.clone(),
        name: r.name.clone(),
        namespace: r
            .namespace
            .clone()
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| raw.namespace.clone()),
    }
}

fn targets(
    raw: &RawResource,
    s: &AuthorizationPolicySpec,
    diags: &mut Diagnostics,
) -> PolicyTargets {
    policy_targets(
        raw,
        s.selector.is_some(),
        s.target_ref.as_ref(),
        s.target_refs.as_deref(),
        diags,
    )
}

/// What an Istio security policy (AuthorizationPolicy, RequestAuthentication) applies to, as
/// Istio validates it (`ValidatePolicyTargetReferences`): `targetRef`/`targetRefs` or
/// `selector`, never both; Gateway, GatewayClass, Service or ServiceEntry in the policy's own
/// namespace.
pub(crate) fn policy_targets(
    raw: &RawResource,
    selector: bool,
    one: Option<&spec::PolicyTargetReference>,
    many: Option<&[spec::PolicyTargetReference]>,
    diags: &mut Diagnostics,
) -> PolicyTargets {
    let refs: Vec<TargetRef> = one
        .into_iter()
        .chain(many.into_iter().flatten())
        .map(|r| target_ref(raw, r))
        .collect();
    let set = [selector, one.is_some(), many.is_some()]
        .iter()
        .filter(|b| **b)
        .count();
    if set > 1 {
        diags.error(raw.error("spec", "only one of targetRefs or selector can be set"));
    }
    for (i, r) in refs.iter().enumerate() {
        let ok = matches!(
            (r.group.as_str(), r.kind.as_str()),
            ("gateway.networking.k8s.io", "Gateway" | "GatewayClass")
                | ("", "Service")
                | ("networking.istio.io", "ServiceEntry")
        );
        if !ok {
            diags.error(raw.error(
                format!("spec.targetRefs[{i}]"),
                format!("unsupported target {}/{}", r.group, r.kind),
            ));
        }
        if r.namespace != raw.namespace {
            diags.error(raw.error(
                format!("spec.targetRefs[{i}].namespace"),
                "cross namespace referencing is not currently supported",
            ));
        }
    }
    if !refs.is_empty() {
        PolicyTargets::Refs(refs)
    } else if selector {
        PolicyTargets::Selector
    } else {
        PolicyTargets::Unscoped
    }
}

/// Targets of a spec that failed strict parsing, read leniently from the raw JSON.
fn lenient_targets(raw: &RawResource) -> PolicyTargets {
    let Some(spec) = raw.value.get("spec") else {
        return PolicyTargets::Unknown;
    };
    let one = |v: &Value| -> Option<TargetRef> {
        let s = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
        let r = spec::PolicyTargetReference {
            group: s("group"),
            kind: s("kind")?,
            name: s("name")?,
            namespace: s("namespace"),
        };
        Some(target_ref(raw, &r))
    };
    let mut refs = Vec::new();
    if let Some(v) = spec.get("targetRef") {
        match one(v) {
            Some(r) => refs.push(r),
            None => return PolicyTargets::Unknown,
        }
    }
    if let Some(list) = spec.get("targetRefs") {
        let Some(items) = list.as_array() else {
            return PolicyTargets::Unknown;
        };
        for v in items {
            match one(v) {
                Some(r) => refs.push(r),
                None => return PolicyTargets::Unknown,
            }
        }
    }
    if refs.is_empty() {
        PolicyTargets::Unknown
    } else {
        PolicyTargets::Refs(refs)
    }
}

/// Findings of Istio's admission validation (`ValidateAuthorizationPolicy`) that do not change
/// what istiod generates; reported so operators see them (no webhook guards our input).
fn validate_top_level(
    raw: &RawResource,
    s: &AuthorizationPolicySpec,
    action: Action,
    diags: &mut Diagnostics,
) {
    // Istio accepts these (the validation webhook warns): the policy never matches, so it is
    // kept, matches nothing and is reported as a warning, as `istioctl analyze` does.
    if action == Action::Custom && s.rules.is_none() {
        diags.warn(raw.error(
            "spec.rules",
            "CUSTOM action without `rules` is meaningless as it will never be triggered",
        ));
    }
    if action == Action::Deny && s.rules.is_none() {
        diags.warn(raw.error(
            "spec.rules",
            "DENY action without `rules` is meaningless as it will never be triggered; add an \
             empty rule `{}` to deny every request",
        ));
    }
    if s.provider.is_some() && action != Action::Custom {
        diags.error(raw.error(
            "spec.provider",
            format!("`provider` must not be with non CUSTOM action, found {action}"),
        ));
    }
}

struct RuleBuilder<'a, 'd> {
    raw: &'a RawResource,
    action: Action,
    opts: &'a CompileOptions<'a>,
    diags: &'d mut Diagnostics,
    /// Set when an ALLOW rule holds a bad value: the rule is dropped.
    poisoned: bool,
}

impl RuleBuilder<'_, '_> {
    fn err(&mut self, field: &str, msg: impl Into<String>) -> ConfigError {
        self.raw.error(field, msg)
    }

    /// A value (or key) that cannot be enforced: ALLOW drops the rule, the rest drop the value.
    fn bad(&mut self, field: &str, msg: String) {
        let e = if self.action == Action::Allow {
            self.poisoned = true;
            self.err(field, format!("{msg}; the rule never matches"))
        } else {
            self.err(
                field,
                format!("{msg}; value ignored, widening this {} rule", self.action),
            )
        };
        self.diags.error(e);
    }

    /// Compile the values of one field; bad values handled by [`Self::bad`].
    fn values<T>(
        &mut self,
        field: &str,
        values: &[String],
        mut parse: impl FnMut(&str) -> Result<T, String>,
    ) -> Vec<T> {
        let mut out = Vec::with_capacity(values.len());
        for (i, v) in values.iter().enumerate() {
            if v.is_empty() {
                let e = self.err(&format!("{field}[{i}]"), "empty value not allowed");
                self.diags.warn(e);
            }
            match parse(v) {
                Ok(x) => out.push(x),
                Err(msg) => self.bad(&format!("{field}[{i}]"), msg),
            }
        }
        out
    }

    /// Push `values` (ORed) and `not_values` (NOT of the OR) for one attribute.
    #[allow(clippy::too_many_arguments)]
    fn pair<T>(
        &mut self,
        conds: &mut Vec<Cond>,
        field: &str,
        name: &str,
        not_name: &str,
        values: &[String],
        not_values: &[String],
        parse: impl FnMut(&str) -> Result<T, String> + Copy,
        make: impl Fn(Vec<T>) -> Attr,
    ) {
        let v = self.values(&format!("{field}.{name}"), values, parse);
        if !v.is_empty() {
            conds.push(Cond {
                field: name.to_string(),
                negate: false,
                attr: make(v),
            });
        }
        let n = self.values(&format!("{field}.{not_name}"), not_values, parse);
        if !n.is_empty() {
            conds.push(Cond {
                field: not_name.to_string(),
                negate: true,
                attr: make(n),
            });
        }
    }

    fn rule(&mut self, index: usize, r: &spec::Rule) -> CompiledRule {
        let base = format!("spec.rules[{index}]");
        let mut rule = CompiledRule::match_all(index);
        if matches!(&r.from, Some(f) if f.is_empty()) {
            let e = self.err(&format!("{base}.from"), "`from` must not be empty");
            self.diags.error(e);
        }
        if matches!(&r.to, Some(t) if t.is_empty()) {
            let e = self.err(&format!("{base}.to"), "`to` must not be empty");
            self.diags.error(e);
        }
        for (j, from) in r.from.iter().flatten().enumerate() {
            let field = format!("{base}.from[{j}].source");
            let mut conds = Vec::new();
            match &from.source {
                None => {
                    let e = self.err(&field, "`from.source` must not be nil");
                    self.diags.error(e);
                }
                Some(s) => self.source(&field, s, &mut conds),
            }
            rule.from.push(conds);
        }
        for (j, to) in r.to.iter().flatten().enumerate() {
            let field = format!("{base}.to[{j}].operation");
            let mut conds = Vec::new();
            match &to.operation {
                None => {
                    let e = self.err(&field, "`to.operation` must not be nil");
                    self.diags.error(e);
                }
                Some(o) => self.operation(&field, o, &mut conds),
            }
            rule.to.push(conds);
        }
        for (j, w) in r.when.iter().flatten().enumerate() {
            let field = format!("{base}.when[{j}]");
            let mut conds = Vec::new();
            self.condition(&field, w, &mut conds);
            rule.when.extend(conds);
        }
        rule
    }

    fn source(&mut self, field: &str, s: &spec::Source, conds: &mut Vec<Cond>) {
        if s.is_empty() {
            let e = self.err(field, "`from.source` must not be empty");
            self.diags.error(e);
        }
        let td = self.opts.trust_domains;
        let ns = self.raw.namespace.clone();
        if self.action == Action::Custom {
            for (name, set) in [
                (
                    "principals",
                    !s.principals.is_empty() || !s.not_principals.is_empty(),
                ),
                (
                    "namespaces",
                    !s.namespaces.is_empty() || !s.not_namespaces.is_empty(),
                ),
                (
                    "serviceAccounts",
                    !s.service_accounts.is_empty() || !s.not_service_accounts.is_empty(),
                ),
                (
                    "trustDomains",
                    !s.trust_domains.is_empty() || !s.not_trust_domains.is_empty(),
                ),
                (
                    "requestPrincipals",
                    !s.request_principals.is_empty() || !s.not_request_principals.is_empty(),
                ),
            ] {
                if set {
                    let e = self.err(
                        &format!("{field}.{name}"),
                        format!("{name} is currently not supported with CUSTOM action"),
                    );
                    self.diags.error(e);
                }
            }
        }
        if (!s.service_accounts.is_empty() || !s.not_service_accounts.is_empty())
            && (!s.principals.is_empty()
                || !s.not_principals.is_empty()
                || !s.namespaces.is_empty()
                || !s.not_namespaces.is_empty())
        {
            let e = self.err(
                field,
                "cannot set serviceAccounts with namespaces or principals",
            );
            self.diags.error(e);
        }
        // Same order as istiod (insertFront: principals first, ipBlocks last); order does not
        // change the result, only traces.
        let principals = td.replace_aliases(&s.principals);
        let not_principals = td.replace_aliases(&s.not_principals);
        self.pair(
            conds,
            field,
            "principals",
            "notPrincipals",
            &principals,
            &not_principals,
            |v| Ok(PrincipalPat::principal(v)),
            Attr::Principal,
        );
        self.jwt(
            conds,
            field,
            "requestPrincipals",
            "notRequestPrincipals",
            &s.request_principals,
            &s.not_request_principals,
            JwtAttr::Principal,
        );
        for (name, list) in [
            ("serviceAccounts", &s.service_accounts),
            ("notServiceAccounts", &s.not_service_accounts),
        ] {
            for (i, v) in list.iter().enumerate() {
                if let Err(msg) = check_service_account(v) {
                    let e = self.err(&format!("{field}.{name}[{i}]"), msg);
                    self.diags.error(e);
                }
            }
        }
        self.pair(
            conds,
            field,
            "serviceAccounts",
            "notServiceAccounts",
            &s.service_accounts,
            &s.not_service_accounts,
            |v| PrincipalPat::service_account(v, &ns),
            Attr::Principal,
        );
        let tds = td.expand_aliases(&s.trust_domains);
        let not_tds = td.expand_aliases(&s.not_trust_domains);
        self.pair(
            conds,
            field,
            "trustDomains",
            "notTrustDomains",
            &tds,
            &not_tds,
            PrincipalPat::trust_domain,
            Attr::Principal,
        );
        self.pair(
            conds,
            field,
            "namespaces",
            "notNamespaces",
            &s.namespaces,
            &s.not_namespaces,
            PrincipalPat::namespace,
            Attr::Principal,
        );
        self.pair(
            conds,
            field,
            "remoteIpBlocks",
            "notRemoteIpBlocks",
            &s.remote_ip_blocks,
            &s.not_remote_ip_blocks,
            parse_ip_block,
            Attr::RemoteIp,
        );
        self.pair(
            conds,
            field,
            "ipBlocks",
            "notIpBlocks",
            &s.ip_blocks,
            &s.not_ip_blocks,
            parse_ip_block,
            Attr::SourceIp,
        );
    }

    fn operation(&mut self, field: &str, o: &spec::Operation, conds: &mut Vec<Cond>) {
        if o.is_empty() {
            let e = self.err(field, "`to.operation` must not be empty");
            self.diags.error(e);
        }
        self.pair(
            conds,
            field,
            "hosts",
            "notHosts",
            &o.hosts,
            &o.not_hosts,
            |v| Ok(StrPat::header(v).lowercase()),
            Attr::Host,
        );
        self.pair(
            conds,
            field,
            "methods",
            "notMethods",
            &o.methods,
            &o.not_methods,
            |v| Ok(StrPat::header(v)),
            Attr::Method,
        );
        self.pair(
            conds,
            field,
            "paths",
            "notPaths",
            &o.paths,
            &o.not_paths,
            PathPat::compile,
            Attr::Path,
        );
        self.pair(
            conds,
            field,
            "ports",
            "notPorts",
            &o.ports,
            &o.not_ports,
            parse_port,
            Attr::DestPort,
        );
    }

    /// JWT-derived fields, matched against the request's verified token (Istio: metadata
    /// matchers on the jwt_authn payload; values as `StringMatcher`, `*` = present).
    #[allow(clippy::too_many_arguments)]
    fn jwt(
        &mut self,
        conds: &mut Vec<Cond>,
        field: &str,
        name: &str,
        not_name: &str,
        values: &[String],
        not_values: &[String],
        what: JwtAttr,
    ) {
        self.pair(
            conds,
            field,
            name,
            not_name,
            values,
            not_values,
            |v| Ok(StrPat::string(v)),
            |pats| Attr::Jwt {
                what: what.clone(),
                pats,
            },
        );
    }

    fn condition(&mut self, field: &str, w: &spec::Condition, conds: &mut Vec<Cond>) {
        let key = w.key.as_str();
        if key.is_empty() {
            let e = self.err(&format!("{field}.key"), "`key` must not be empty");
            self.diags.error(e);
        }
        if w.values.is_empty() && w.not_values.is_empty() {
            let e = self.err(
                field,
                format!("at least one of `values` or `notValues` must be set for key {key}"),
            );
            self.diags.error(e);
        }
        if self.action == Action::Custom
            && (matches!(
                key,
                "source.namespace"
                    | "source.serviceAccount"
                    | "source.trustDomain"
                    | "source.principal"
            ) || key.starts_with("request.auth."))
        {
            let e = self.err(
                &format!("{field}.key"),
                format!("{key} is currently not supported with CUSTOM action"),
            );
            self.diags.error(e);
        }
        let name = format!("when[{key}]");
        let not_name = format!("when[{key}].notValues");
        let (v, nv) = (&w.values, &w.not_values);
        let td = self.opts.trust_domains;
        let ns = self.raw.namespace.clone();
        match key {
            "destination.ip" => self.pair(
                conds,
                field,
                &name,
                &not_name,
                v,
                nv,
                parse_ip_block,
                Attr::DestIp,
            ),
            "destination.port" => self.pair(
                conds,
                field,
                &name,
                &not_name,
                v,
                nv,
                parse_port,
                Attr::DestPort,
            ),
            "connection.sni" => self.pair(
                conds,
                field,
                &name,
                &not_name,
                v,
                nv,
                |x| Ok(StrPat::string(x)),
                Attr::Sni,
            ),
            "source.ip" => self.pair(
                conds,
                field,
                &name,
                &not_name,
                v,
                nv,
                parse_ip_block,
                Attr::SourceIp,
            ),
            "remote.ip" => self.pair(
                conds,
                field,
                &name,
                &not_name,
                v,
                nv,
                parse_ip_block,
                Attr::RemoteIp,
            ),
            "source.namespace" => self.pair(
                conds,
                field,
                &name,
                &not_name,
                v,
                nv,
                PrincipalPat::namespace,
                Attr::Principal,
            ),
            "source.trustDomain" => {
                let (v, nv) = (td.expand_aliases(v), td.expand_aliases(nv));
                self.pair(
                    conds,
                    field,
                    &name,
                    &not_name,
                    &v,
                    &nv,
                    PrincipalPat::trust_domain,
                    Attr::Principal,
                )
            }
            "source.serviceAccount" => self.pair(
                conds,
                field,
                &name,
                &not_name,
                v,
                nv,
                |x| PrincipalPat::service_account(x, &ns),
                Attr::Principal,
            ),
            "source.principal" => {
                let (v, nv) = (td.replace_aliases(v), td.replace_aliases(nv));
                self.pair(
                    conds,
                    field,
                    &name,
                    &not_name,
                    &v,
                    &nv,
                    |x| Ok(PrincipalPat::principal(x)),
                    Attr::Principal,
                )
            }
            "request.auth.principal" => {
                self.jwt(conds, field, &name, &not_name, v, nv, JwtAttr::Principal)
            }
            "request.auth.audiences" => {
                self.jwt(conds, field, &name, &not_name, v, nv, JwtAttr::Audiences)
            }
            "request.auth.presenter" => {
                self.jwt(conds, field, &name, &not_name, v, nv, JwtAttr::Presenter)
            }
            k if k.starts_with("request.auth.claims") => {
                match claim_names(&k["request.auth.claims".len()..]) {
                    None => self.bad_key(
                        field,
                        key,
                        "bad key: expecting format request.auth.claims[<NAME>]",
                    ),
                    Some(path) => {
                        let path = path.into_iter().map(str::to_string).collect();
                        self.jwt(conds, field, &name, &not_name, v, nv, JwtAttr::Claim(path))
                    }
                }
            }
            k if k.starts_with("request.headers") => {
                let inner = &k["request.headers".len()..];
                match inner.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
                    Some(h) if !h.is_empty() => {
                        let header = h.to_ascii_lowercase();
                        if header == "host" {
                            let e = self.err(
                                &format!("{field}.key"),
                                "Envoy keeps the Host header as `:authority`, so \
                                 request.headers[host] is never present; use hosts or \
                                 request.headers[:authority]",
                            );
                            self.diags.warn(e);
                        }
                        self.pair(
                            conds,
                            field,
                            &name,
                            &not_name,
                            v,
                            nv,
                            |x| Ok(StrPat::header(x)),
                            |pats| Attr::Header {
                                name: header.clone(),
                                pats,
                            },
                        )
                    }
                    _ => self.bad_key(
                        field,
                        key,
                        "bad key: expecting format request.headers[<NAME>]",
                    ),
                }
            }
            k if k.starts_with("experimental.envoy.filters.") => self.bad_key(
                field,
                key,
                "experimental.envoy.filters.* reads Envoy dynamic metadata, which the waypoint \
                 does not have",
            ),
            _ => self.bad_key(field, key, "unknown attribute"),
        }
    }

    /// A `when` key that cannot be enforced: ALLOW drops the rule; other actions drop the
    /// condition (a wider DENY / AUDIT / CUSTOM match). istiod's admission webhook would
    /// reject the policy; without a webhook we fail closed.
    fn bad_key(&mut self, field: &str, key: &str, why: &str) {
        self.bad(
            &format!("{field}.key"),
            format!("unsupported key {key:?}: {why}"),
        );
    }
}

/// `[a][b]...` claim path (Istio `extractNameInNestedBrackets`).
fn claim_names(s: &str) -> Option<Vec<&str>> {
    let inner = s.strip_prefix('[')?.strip_suffix(']')?;
    let names: Vec<&str> = inner.split("][").collect();
    if names.iter().any(|n| n.contains('[') || n.contains(']')) {
        // Not a clean nested form: Istio falls back to the single-bracket form.
        return Some(vec![inner]);
    }
    Some(names)
}

/// Istio `CheckServiceAccount` (validation only; istiod still builds the regex).
fn check_service_account(v: &str) -> Result<(), String> {
    if v.contains('*') {
        return Err("wildcard not allowed in serviceAccounts".to_string());
    }
    if v.len() > 320 {
        return Err(format!("value cannot exceed 320 characters, found {v:?}"));
    }
    match v.split_once('/') {
        Some((ns, sa)) if ns.is_empty() || sa.is_empty() || sa.contains('/') => Err(format!(
            "expected format 'serviceAccount' or 'namespace/serviceAccount', found {v:?}"
        )),
        _ => Ok(()),
    }
}

//! The core's compile diagnostics as analyzer messages: errors are schema errors (IST0106),
//! known warnings get their own code (dangling host IST0101, ignored fields WPA0001...).

use waypoint_core::resource::is_manifest_error;
use waypoint_core::ConfigError;

use crate::catalogue::{
    IGNORED_BY_WAYPOINT, KIND_NOT_USED, REFERENCED_RESOURCE_NOT_FOUND, SCHEMA_VALIDATION_ERROR,
    SCHEMA_WARNING,
};
use crate::context::Context;
use crate::message::{Message, ResourceRef};

/// Is this error about a file or manifest text rather than a resource (unreadable file,
/// syntax error, document without kind or name)? Such files are "could not be parsed".
pub fn is_parse_error(e: &ConfigError) -> bool {
    is_manifest_error(e) || e.kind == "File"
}

fn resource(e: &ConfigError) -> ResourceRef {
    ResourceRef::new(&e.kind, &e.namespace, &e.name)
}

fn with_field(e: &ConfigError) -> String {
    if e.field.is_empty() {
        e.message.clone()
    } else {
        format!("{}: {}", e.field, e.message)
    }
}

/// Phrases of the core's warnings that mean "accepted, not applied by the waypoint".
const IGNORED: &[&str] = &[
    "ignored",
    "not supported by the waypoint",
    "not supported by waypoints",
    "not used by the waypoint",
    "which the waypoint does not use",
    "not enforced by a waypoint",
    "not applied by the waypoint",
    "cannot enforce",
    "never applies",
    "not expanded by the waypoint",
];

/// Warnings another analyzer reports in Istio's form (rules after a catch-all: IST0130), or
/// judges itself (selector policies: WPA0005 only where their L7 rules would be lost, as an
/// L4 selector policy is ztunnel's and correct).
fn reported_elsewhere(w: &ConfigError) -> bool {
    (w.kind == "VirtualService" && w.message.starts_with("unreachable: "))
        || (w.kind == "AuthorizationPolicy" && w.field == "spec.selector")
}

/// A quoted value after `prefix` at the start of `message` (`host "x" is ...` → `x`).
fn quoted_after<'m>(message: &'m str, prefix: &str) -> Option<&'m str> {
    let rest = message.strip_prefix(prefix)?.strip_prefix('"')?;
    rest.split_once('"').map(|(v, _)| v)
}

/// One core warning as a message.
fn warning(w: &ConfigError) -> Message {
    let r = Some(resource(w));
    if w.kind == "VirtualService" {
        if let Some(host) = quoted_after(&w.message, "host ") {
            if w.message.contains("is not a known Service or ServiceEntry") {
                return Message::new(
                    REFERENCED_RESOURCE_NOT_FOUND,
                    r,
                    format!("Referenced host not found: {host:?} ({})", w.field),
                );
            }
        }
    }
    if let Some(rest) = w.message.strip_prefix("backend(") {
        if let Some((host, tail)) = rest.split_once(") not found") {
            return Message::new(
                REFERENCED_RESOURCE_NOT_FOUND,
                r,
                format!("Referenced backend not found: {host:?} ({}{tail})", w.field),
            );
        }
    }
    if w.message.starts_with("kind ") && w.message.ends_with("is not used by the waypoint; skipped")
    {
        return Message::new(KIND_NOT_USED, r, capitalize(&w.message));
    }
    if IGNORED.iter().any(|p| w.message.contains(p)) {
        return Message::new(IGNORED_BY_WAYPOINT, r, with_field(w));
    }
    Message::new(
        SCHEMA_WARNING,
        r,
        format!("Schema validation warning: {}", with_field(w)),
    )
}

fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

/// The core's errors and warnings (parse errors excluded: the caller counts those).
pub fn analyze(ctx: &Context<'_>) -> Vec<Message> {
    let mut out = Vec::new();
    for e in ctx.diagnostics.errors.iter().filter(|e| !is_parse_error(e)) {
        out.push(Message::new(
            SCHEMA_VALIDATION_ERROR,
            Some(resource(e)),
            format!("Schema validation error: {}", with_field(e)),
        ));
    }
    for w in &ctx.diagnostics.warnings {
        if !reported_elsewhere(w) {
            out.push(warning(w));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::messages_of;

    #[test]
    fn core_findings_get_their_codes() {
        let got = messages_of(
            analyze,
            r#"
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: shop}
spec:
  hosts: [reviews]
  http:
  - match: [{sourceLabels: {app: x}}]
    route: [{destination: {host: reviews2}}]
  - route: [{destination: {host: reviews}}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-nothing, namespace: shop}
spec: {action: DENY}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: bad, namespace: shop}
spec: {host: reviews, bogus: 1}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: cm, namespace: shop}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r, namespace: shop}
spec:
  parentRefs: [{group: '', kind: Service, name: reviews}]
  rules: [{backendRefs: [{name: gone, port: 80}]}]
"#,
        );
        let want = [
            "Error [IST0101] (HTTPRoute shop/r) Referenced backend not found: \"gone.shop.svc.cluster.local\" (spec.rules[0].backendRefs[0]; traffic to it answers 500)",
            "Error [IST0101] (VirtualService shop/reviews) Referenced host not found: \"reviews2\" (spec.http[0].route[0].destination.host)",
            "Error [IST0106] (DestinationRule shop/bad) Schema validation error: spec.bogus: unknown field `bogus`, expected one of `host`, `trafficPolicy`, `subsets`, `exportTo`, `workloadSelector`",
            "Info [WPA0002] (ConfigMap shop/cm) Kind ConfigMap (v1) is not used by the waypoint; skipped",
            "Warning [IST0133] (AuthorizationPolicy shop/deny-nothing) Schema validation warning: spec.rules: DENY action without `rules` is meaningless as it will never be triggered; add an empty rule `{}` to deny every request",
            // The HTTPRoute attached to reviews takes precedence over the VirtualService.
            "Warning [WPA0001] (VirtualService shop/reviews) spec.hosts: ignored for reviews.shop.svc.cluster.local: Gateway API routes are attached to it and take precedence",
            "Warning [WPA0001] (VirtualService shop/reviews) spec.http[0].match[0].sourceLabels: sourceLabels is not supported by waypoints; this match block never applies",
        ];
        assert_eq!(got, want);
    }

    #[test]
    fn load_errors_about_a_resource_are_schema_errors() {
        use crate::context::{Context, Input};
        let rs = crate::test_support::resources("");
        let load_errors = [
            ConfigError::new("Service", "shop", "x", "apiVersion", "missing apiVersion"),
            ConfigError::new("Manifest", "", "f.yaml#3", "", "invalid YAML"),
        ];
        let ctx = Context::build(&Input {
            resources: &rs,
            load_errors: &load_errors,
            root_namespace: "istio-system",
        });
        let got: Vec<String> = analyze(&ctx).iter().map(ToString::to_string).collect();
        assert_eq!(
            got,
            ["Error [IST0106] (Service shop/x) Schema validation error: apiVersion: missing apiVersion"]
        );
    }

    #[test]
    fn parse_errors_are_not_messages() {
        let e = ConfigError::new("Manifest", "", "f.yaml#0", "", "invalid YAML");
        assert!(is_parse_error(&e));
        assert!(is_parse_error(&ConfigError::new(
            "File",
            "",
            "x",
            "",
            "no such file"
        )));
        assert!(!is_parse_error(&ConfigError::new(
            "Service", "a", "b", "", "x"
        )));
    }
}

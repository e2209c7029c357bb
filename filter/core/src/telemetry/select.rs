//! Which Telemetry resources apply to a waypoint, at which level, after validation: Istio's
//! `applicableTelemetries` (pilot/pkg/model/telemetry.go) with waypoint `targetRefs`.

use super::spec::TelemetrySpec;
use crate::error::{Diagnostics, ResourceId};
use crate::registry::Waypoint;
use crate::resource::RawResource;

/// One applicable, valid Telemetry.
#[derive(Debug, Clone)]
pub(crate) struct Level {
    pub id: ResourceId,
    pub raw: RawResource,
    pub spec: TelemetrySpec,
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Scope {
    Mesh,
    Namespace,
    Waypoint,
}

/// The applicable Telemetries, least specific first: one mesh-wide (root namespace, no
/// selector or targetRefs), one namespace-wide (the waypoint's namespace), one targeting the
/// waypoint Gateway. At each level the oldest wins (creation time, then read order), as
/// istiod sorts Telemetries by creation time and takes the first match.
pub(crate) fn applicable(
    resources: &[RawResource],
    waypoint: Option<&Waypoint>,
    root_namespace: &str,
    diags: &mut Diagnostics,
) -> Vec<Level> {
    let mut found: Vec<(Scope, Level)> = Vec::new();
    for r in resources.iter().filter(|r| super::is_telemetry(r)) {
        let spec: TelemetrySpec = match r.parse_spec() {
            Ok(s) => s,
            Err(e) => {
                diags.error(e);
                continue;
            }
        };
        if let Err((field, msg)) = validate(r, &spec) {
            diags.error(r.error(field, msg));
            continue;
        }
        for (i, a) in spec.access_logging.iter().enumerate() {
            if a.filter.is_some() {
                diags.warn(r.error(
                    format!("spec.accessLogging[{i}].filter"),
                    "CEL access log filters are not supported by this waypoint; ignored \
                     (every request is logged when logging is on)",
                ));
            }
        }
        if !spec.metrics.is_empty() {
            diags.warn(r.error(
                "spec.metrics",
                "metrics overrides are not applied by this waypoint; ignored",
            ));
        }
        let refs: Vec<_> = spec
            .target_ref
            .iter()
            .chain(spec.target_refs.iter().flatten())
            .collect();
        let has_selector = spec
            .selector
            .as_ref()
            .is_some_and(|s| !s.match_labels.is_empty());
        let scope = if !refs.is_empty() {
            let targets_us = waypoint.is_some_and(|w| {
                r.namespace == w.namespace
                    && refs.iter().any(|t| {
                        t.kind == "Gateway"
                            && t.group.as_deref().unwrap_or("gateway.networking.k8s.io")
                                == "gateway.networking.k8s.io"
                            && t.name == w.name
                    })
            });
            if !targets_us {
                continue;
            }
            Scope::Waypoint
        } else if has_selector {
            // Workload selectors pick sidecars and ztunnel-less pods; a waypoint is selected
            // through targetRefs only.
            continue;
        } else if r.namespace == root_namespace {
            Scope::Mesh
        } else if waypoint.is_some_and(|w| w.namespace == r.namespace) {
            Scope::Namespace
        } else {
            continue;
        };
        found.push((
            scope,
            Level {
                id: r.id(),
                raw: r.clone(),
                spec,
            },
        ));
    }
    found.sort_by(|(sa, a), (sb, b)| {
        (sa, &a.raw.creation_timestamp, a.raw.seq).cmp(&(sb, &b.raw.creation_timestamp, b.raw.seq))
    });
    let mut out: Vec<Level> = Vec::new();
    let mut last: Option<Scope> = None;
    for (scope, level) in found {
        if last == Some(scope) {
            if let Some(kept) = out.last() {
                diags.warn(level.raw.error(
                    "",
                    format!(
                        "ignored: {} is older and applies at the same level (one Telemetry \
                         per level, the oldest wins)",
                        kept.id
                    ),
                ));
            }
            continue;
        }
        last = Some(scope);
        out.push(level);
    }
    out
}

/// Istio's validation of the parts the waypoint reads (`validateTelemetry*`).
fn validate(r: &RawResource, spec: &TelemetrySpec) -> Result<(), (String, String)> {
    let has_selector = spec
        .selector
        .as_ref()
        .is_some_and(|s| !s.match_labels.is_empty());
    let has_refs = spec.target_ref.is_some() || spec.target_refs.is_some();
    if has_selector && has_refs {
        return Err((
            "spec".into(),
            "only one of targetRefs or selector can be set".into(),
        ));
    }
    if spec.target_ref.is_some() && spec.target_refs.is_some() {
        return Err((
            "spec".into(),
            "only one of targetRef or targetRefs can be set".into(),
        ));
    }
    let refs = spec
        .target_ref
        .iter()
        .chain(spec.target_refs.iter().flatten());
    for (i, t) in refs.enumerate() {
        let field = if spec.target_ref.is_some() {
            "spec.targetRef".to_string()
        } else {
            format!("spec.targetRefs[{i}]")
        };
        let group = t.group.as_deref().unwrap_or("");
        let ok = matches!(
            (group, t.kind.as_str()),
            ("gateway.networking.k8s.io", "Gateway" | "GatewayClass")
                | ("", "Service")
                | ("networking.istio.io", "ServiceEntry")
        );
        if !ok {
            return Err((
                format!("{field}.kind"),
                format!("unsupported target {group}/{}", t.kind),
            ));
        }
        if t.namespace.as_deref().is_some_and(|ns| ns != r.namespace) {
            return Err((
                format!("{field}.namespace"),
                "cross namespace referencing is not currently supported".into(),
            ));
        }
        if t.name.is_empty() {
            return Err((format!("{field}.name"), "must not be empty".into()));
        }
    }
    for (i, t) in spec.tracing.iter().enumerate() {
        let base = format!("spec.tracing[{i}]");
        if let Some(p) = t.random_sampling_percentage {
            if !(0.0..=100.0).contains(&p) || p.is_nan() {
                return Err((
                    format!("{base}.randomSamplingPercentage"),
                    format!("must be in range [0.0, 100.0], found {p}"),
                ));
            }
        }
        if t.providers.len() > 1 {
            return Err((
                format!("{base}.providers"),
                "multiple providers is not currently supported".into(),
            ));
        }
        mode_ok(t.matches.as_ref(), &base)?;
        for (name, tag) in t.custom_tags.iter().flatten() {
            let f = format!("{base}.customTags.{name}");
            if name.is_empty() {
                return Err((
                    format!("{base}.customTags"),
                    "tag name must not be empty".into(),
                ));
            }
            let set = [
                tag.literal.is_some(),
                tag.header.is_some(),
                tag.environment.is_some(),
            ]
            .iter()
            .filter(|b| **b)
            .count();
            if set != 1 {
                return Err((
                    f,
                    "exactly one of literal, header or environment must be set".into(),
                ));
            }
            for (n, kind) in [(&tag.header, "header"), (&tag.environment, "environment")] {
                if n.as_ref().is_some_and(|n| n.name.trim().is_empty()) {
                    return Err((format!("{f}.{kind}.name"), "must not be empty".into()));
                }
            }
        }
    }
    for (i, a) in spec.access_logging.iter().enumerate() {
        mode_ok(a.matches.as_ref(), &format!("spec.accessLogging[{i}]"))?;
    }
    Ok(())
}

fn mode_ok(m: Option<&super::spec::ModeSelector>, base: &str) -> Result<(), (String, String)> {
    match m.and_then(|m| m.mode.as_deref()) {
        None | Some("CLIENT" | "SERVER" | "CLIENT_AND_SERVER") => Ok(()),
        Some(other) => Err((
            format!("{base}.match.mode"),
            format!("unknown mode {other:?}: expected CLIENT, SERVER or CLIENT_AND_SERVER"),
        )),
    }
}

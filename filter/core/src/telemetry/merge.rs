//! Merging the applicable Telemetries, least specific first, as istiod does
//! (pilot/pkg/model/telemetry.go): `mergeLogs` for access logging, `Tracing` for tracing.
//! A waypoint's spans and logs are server-side: entries matching only `CLIENT` are skipped.

use std::collections::BTreeMap;

use super::select::Level;
use super::spec::{CustomTagSpec, ModeSelector};
use super::{CustomTag, TagValue, TracingPolicy, DEFAULT_SAMPLING_PERCENT};
use crate::error::Diagnostics;
use crate::mesh::MeshConfig;

/// Istio's built-in access log provider (default MeshConfig: `envoyFileAccessLog` to stdout).
const BUILTIN_LOG_PROVIDER: &str = "envoy";

/// Provider kinds that write access logs.
const LOG_KINDS: &[&str] = &[
    "envoyFileAccessLog",
    "envoyOtelAls",
    "envoyHttpAls",
    "envoyTcpAls",
];

fn applies_to_server(m: Option<&ModeSelector>) -> bool {
    !matches!(m.and_then(|m| m.mode.as_deref()), Some("CLIENT"))
}

fn names(p: &[super::spec::ProviderRef]) -> Vec<String> {
    p.iter().map(|p| p.name.clone()).collect()
}

/// Access logging: `None` when neither a Telemetry nor `defaultProviders.accessLogging` says
/// anything (Istio then falls back to `accessLogFile`). Otherwise the providers in scope
/// (the most specific level naming providers replaces the set; one without names inherits
/// its parent's) minus those a later `disabled: true` removes; on when any is left.
pub(crate) fn access_log(
    levels: &[Level],
    mesh: &MeshConfig,
    diags: &mut Diagnostics,
) -> Option<bool> {
    let logging: Vec<&Level> = levels
        .iter()
        .filter(|l| !l.spec.access_logging.is_empty())
        .collect();
    if logging.is_empty() {
        if mesh.default_access_logging.is_empty() {
            return None;
        }
        return Some(
            mesh.default_access_logging
                .iter()
                .any(|p| log_provider(mesh, p)),
        );
    }
    let mut in_scope = mesh.default_access_logging.clone();
    for l in &logging {
        let mut level_names: Vec<String> = Vec::new();
        for a in &l.spec.access_logging {
            for n in names(&a.providers) {
                if !level_names.contains(&n) {
                    level_names.push(n);
                }
            }
        }
        if !level_names.is_empty() {
            in_scope = level_names;
        }
    }
    let mut on: Vec<String> = Vec::new();
    let mut parent = mesh.default_access_logging.clone();
    for l in &logging {
        for (i, a) in l.spec.access_logging.iter().enumerate() {
            let mut list = names(&a.providers);
            if list.is_empty() {
                list = parent.clone();
            } else {
                for (j, n) in list.iter().enumerate() {
                    if !known_log_provider(mesh, n) {
                        diags.warn(l.raw.error(
                            format!("spec.accessLogging[{i}].providers[{j}].name"),
                            format!(
                                "provider {n:?} is not an access log provider of the mesh \
                                 config; ignored"
                            ),
                        ));
                    }
                }
            }
            parent = list.clone();
            for p in list {
                if !in_scope.contains(&p) || !applies_to_server(a.matches.as_ref()) {
                    continue;
                }
                if a.disabled == Some(true) {
                    on.retain(|x| x != &p);
                } else if !on.contains(&p) {
                    on.push(p);
                }
            }
        }
    }
    Some(on.iter().any(|p| log_provider(mesh, p)))
}

/// Does `name` write access logs (the built-in `envoy` or a declared log provider)?
fn log_provider(mesh: &MeshConfig, name: &str) -> bool {
    match mesh.provider_kind(name) {
        Some(kind) => LOG_KINDS.contains(&kind),
        None => name == BUILTIN_LOG_PROVIDER,
    }
}

fn known_log_provider(mesh: &MeshConfig, name: &str) -> bool {
    log_provider(mesh, name)
}

/// Tracing: `None` unless a Telemetry or `defaultProviders.tracing` selects an
/// `opentelemetry` provider and no later level sets `disableSpanReporting: true`. Each level
/// overrides what it sets: the provider (its first name), `disableSpanReporting`,
/// `randomSamplingPercentage`, and `customTags` as a whole (Istio's shallow merge).
pub(crate) fn tracing(
    levels: &[Level],
    mesh: &MeshConfig,
    diags: &mut Diagnostics,
) -> Option<TracingPolicy> {
    let any = levels.iter().any(|l| !l.spec.tracing.is_empty());
    if !any && mesh.default_tracing.is_empty() {
        return None;
    }
    let mut provider: Option<String> = mesh.default_tracing.first().cloned();
    let mut disabled = false;
    let mut sampling: Option<f64> = None;
    let mut tags: Option<(&Level, usize, &BTreeMap<String, CustomTagSpec>)> = None;
    let mut named_at: Option<(&Level, usize)> = None;
    for l in levels {
        for (i, t) in l.spec.tracing.iter().enumerate() {
            if !applies_to_server(t.matches.as_ref()) {
                continue;
            }
            if let Some(p) = t.providers.first() {
                provider = Some(p.name.clone());
                named_at = Some((l, i));
            }
            if let Some(d) = t.disable_span_reporting {
                disabled = d;
            }
            if let Some(s) = t.random_sampling_percentage {
                sampling = Some(s);
            }
            if let Some(c) = &t.custom_tags {
                tags = Some((l, i, c));
            }
        }
    }
    let name = provider?;
    let Some(found) = mesh.tracing_provider(&name) else {
        let why = match mesh.provider_kind(&name) {
            Some(kind) => format!(
                "tracing provider {name:?} is of kind {kind}; only opentelemetry is supported \
                 by this waypoint: no spans are reported"
            ),
            None => format!(
                "tracing provider {name:?} is not a valid extensionProviders entry of the mesh \
                 config: no spans are reported"
            ),
        };
        match named_at {
            Some((l, i)) => diags.warn(
                l.raw
                    .error(format!("spec.tracing[{i}].providers[0].name"), why),
            ),
            None => match &mesh.source {
                Some(id) => diags.warn(id.error("data.mesh.defaultProviders.tracing[0]", why)),
                None => diags.warn(crate::error::ConfigError::new(
                    "ConfigMap",
                    "",
                    crate::mesh::MESH_CONFIGMAP,
                    "data.mesh.defaultProviders.tracing[0]",
                    why,
                )),
            },
        }
        return None;
    };
    if disabled {
        return None;
    }
    let custom_tags = tags.map(|(_, _, c)| custom_tags(c)).unwrap_or_default();
    Some(TracingPolicy {
        provider: found.clone(),
        sampling_percent: sampling.unwrap_or(DEFAULT_SAMPLING_PERCENT),
        custom_tags,
    })
}

fn custom_tags(c: &BTreeMap<String, CustomTagSpec>) -> Vec<CustomTag> {
    c.iter()
        .filter_map(|(tag, s)| {
            let value = if let Some(l) = &s.literal {
                TagValue::Literal(l.value.clone())
            } else if let Some(h) = &s.header {
                TagValue::Header {
                    name: h.name.trim().to_ascii_lowercase(),
                    default: h.default_value.clone(),
                }
            } else {
                let e = s.environment.as_ref()?;
                TagValue::Environment {
                    name: e.name.trim().to_string(),
                    default: e.default_value.clone(),
                }
            };
            Some(CustomTag {
                tag: tag.clone(),
                value,
            })
        })
        .collect()
}

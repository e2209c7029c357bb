//! EnvoyFilters attached to the waypoint (targetRefs kind Gateway, or a workloadSelector on
//! its pod labels) read into [`RateLimits`]; every other patch is reported as not applied.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

use super::actions::parse_rate_limits;
use super::config::{self, FILTER_NAME};
use super::global::{self, GlobalFilter, GLOBAL_FILTER_NAME, GLOBAL_TYPE_URL};
use super::{FilterLimit, PatchRef, RateLimits, RouteLimit, VhostMatch};
use crate::error::Diagnostics;
use crate::registry::Waypoint;
use crate::resource::RawResource;

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawSpec {
    workload_selector: Option<RawSelector>,
    #[serde(default)]
    config_patches: Vec<RawPatch>,
    #[serde(default)]
    priority: i32,
    #[serde(default)]
    target_refs: Vec<RawTargetRef>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSelector {
    #[serde(default)]
    labels: BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTargetRef {
    #[serde(default)]
    group: String,
    kind: String,
    name: String,
}

/// Unknown fields are kept to be reported, not refused: the API server prunes them (Istio's
/// own rate-limit task puts `listener` beside `match`), so the object in force lacks them.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawPatch {
    #[serde(default)]
    apply_to: String,
    #[serde(rename = "match", default)]
    match_: Value,
    #[serde(default)]
    patch: RawPatchBody,
    #[serde(flatten)]
    unknown: BTreeMap<String, Value>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawPatchBody {
    #[serde(default)]
    operation: String,
    #[serde(default)]
    value: Value,
    #[allow(dead_code)]
    filter_class: Option<String>,
}

/// The labels Istio puts on a waypoint's pods that name its Gateway.
fn waypoint_pod_labels(w: &Waypoint) -> BTreeMap<&'static str, String> {
    BTreeMap::from([
        ("gateway.networking.k8s.io/gateway-name", w.name.clone()),
        ("istio.io/gateway-name", w.name.clone()),
        (
            "gateway.istio.io/managed",
            "istio.io-mesh-controller".to_string(),
        ),
    ])
}

/// How an EnvoyFilter relates to the waypoint.
enum Attachment {
    Attached,
    /// Why not (said in a warning).
    Not(String),
}

fn attachment(r: &RawResource, spec: &RawSpec, w: &Waypoint, root_ns: &str) -> Attachment {
    if !spec.target_refs.is_empty() {
        let hit = spec.target_refs.iter().any(|t| {
            t.kind == "Gateway"
                && matches!(t.group.as_str(), "" | "gateway.networking.k8s.io")
                && t.name == w.name
        });
        return if hit && r.namespace == w.namespace {
            Attachment::Attached
        } else {
            Attachment::Not(format!(
                "its targetRefs do not name the waypoint Gateway {}/{}",
                w.namespace, w.name
            ))
        };
    }
    if let Some(sel) = &spec.workload_selector {
        let labels = waypoint_pod_labels(w);
        let hit = !sel.labels.is_empty()
            && sel
                .labels
                .iter()
                .all(|(k, v)| labels.get(k.as_str()) == Some(v));
        return if hit && (r.namespace == w.namespace || r.namespace == root_ns) {
            Attachment::Attached
        } else {
            Attachment::Not(format!(
                "its workloadSelector does not select the waypoint's pods (gateway.networking.k8s.io/gateway-name: {} in {})",
                w.name, w.namespace
            ))
        };
    }
    Attachment::Not(format!(
        "it has neither targetRefs nor a workloadSelector; the waypoint applies only EnvoyFilters attached to it (targetRefs kind Gateway name {})",
        w.name
    ))
}

/// Read every EnvoyFilter in `resources` for `waypoint`. Attached filters' local rate limit
/// patches are compiled (errors name `spec.configPatches[i]...`); every other patch, and
/// every EnvoyFilter not attached, is reported as not applied.
pub fn compile(
    resources: &[RawResource],
    waypoint: Option<&Waypoint>,
    root_namespace: &str,
    diags: &mut Diagnostics,
) -> RateLimits {
    let mut attached: Vec<(i32, &RawResource, RawSpec)> = Vec::new();
    for r in resources
        .iter()
        .filter(|r| r.group() == "networking.istio.io" && r.kind == "EnvoyFilter")
    {
        let spec: RawSpec = match r.parse_spec() {
            Ok(s) => s,
            Err(e) => {
                diags.error(e);
                continue;
            }
        };
        let Some(w) = waypoint else { continue };
        match attachment(r, &spec, w, root_namespace) {
            Attachment::Attached => attached.push((spec.priority, r, spec)),
            Attachment::Not(why) => {
                diags.warn(r.error("spec", format!("not applied by the waypoint: {why}")))
            }
        }
    }
    // Istio's order: priority, then oldest first, then name.
    attached.sort_by(|a, b| {
        (a.0, &a.1.creation_timestamp, &a.1.namespace, &a.1.name).cmp(&(
            b.0,
            &b.1.creation_timestamp,
            &b.1.namespace,
            &b.1.name,
        ))
    });
    let mut out = RateLimits::default();
    for (_, r, spec) in &attached {
        for (i, p) in spec.config_patches.iter().enumerate() {
            patch(r, i, p, &mut out, diags);
        }
    }
    if out.filters.is_empty() {
        for rl in &out.routes {
            if rl.config.is_some() {
                diags.warn(rl.source.resource.error(
                    format!("spec.configPatches[{}]", rl.source.index),
                    format!("no HTTP_FILTER patch inserts {FILTER_NAME}, so (as in Envoy) this route-level config limits nothing"),
                ));
            }
        }
    }
    out
}

fn not_applied(r: &RawResource, i: usize, p: &RawPatch, why: &str, diags: &mut Diagnostics) {
    diags.warn(r.error(
        format!("spec.configPatches[{i}]"),
        format!(
            "patch (applyTo {}, operation {}) not applied by the waypoint: {why}",
            or_unset(&p.apply_to),
            or_unset(&p.patch.operation)
        ),
    ));
}

fn or_unset(s: &str) -> &str {
    if s.is_empty() {
        "unset"
    } else {
        s
    }
}

fn patch(r: &RawResource, i: usize, p: &RawPatch, out: &mut RateLimits, diags: &mut Diagnostics) {
    let field = |f: &str| format!("spec.configPatches[{i}].{f}");
    for k in p.unknown.keys() {
        diags.warn(r.error(
            field(k),
            "unknown field, ignored (the API server prunes it; did you mean it under match?)",
        ));
    }
    let source = PatchRef {
        resource: r.id(),
        index: i,
    };
    let context = p
        .match_
        .get("context")
        .and_then(Value::as_str)
        .unwrap_or("ANY");
    if !matches!(
        context,
        "ANY" | "SIDECAR_INBOUND" | "SIDECAR_OUTBOUND" | "GATEWAY"
    ) {
        diags.error(r.error(
            field("match.context"),
            format!("{context:?} is not one of ANY, SIDECAR_INBOUND, SIDECAR_OUTBOUND, GATEWAY"),
        ));
        return;
    }
    match (p.apply_to.as_str(), p.patch.operation.as_str()) {
        ("HTTP_FILTER", "INSERT_BEFORE" | "INSERT_AFTER" | "INSERT_FIRST" | "ADD") => {
            let name = p.patch.value.get("name").and_then(Value::as_str).unwrap_or("");
            let typed = p
                .patch
                .value
                .get("typed_config")
                .or_else(|| p.patch.value.get("typedConfig"))
                .unwrap_or(&Value::Null);
            if name == GLOBAL_FILTER_NAME {
                match config::unwrap_typed_as(typed, GLOBAL_TYPE_URL).and_then(|(v, pre)| {
                    global::compile(&v).map_err(|(f, m)| (format!("{pre}{f}"), m))
                }) {
                    Ok(config) => out.global.push(GlobalFilter {
                        source,
                        config,
                        target: None,
                    }),
                    Err((f, m)) => {
                        diags.error(r.error(field(&join("patch.value.typed_config", &f)), m))
                    }
                }
                return;
            }
            if name != FILTER_NAME {
                let why = format!(
                    "only {FILTER_NAME} and {GLOBAL_FILTER_NAME} are applied, this inserts {name:?}"
                );
                not_applied(r, i, p, &why, diags);
                return;
            }
            match config::unwrap_typed(typed)
                .and_then(|(v, pre)| config::compile(&v, false).map_err(|(f, m)| (format!("{pre}{f}"), m)))
            {
                Ok(config) => out.filters.push(FilterLimit { source, config }),
                Err((f, m)) => diags.error(r.error(
                    field(&join("patch.value.typed_config", &f)),
                    m,
                )),
            }
        }
        ("CLUSTER", "ADD") => match global::cluster(source, &p.patch.value) {
            Ok(c) => out.clusters.push(c),
            Err((f, m)) => diags.error(r.error(field(&join("patch.value", &f)), m)),
        },
        ("HTTP_ROUTE" | "VIRTUAL_HOST", "MERGE") => {
            let per_route = p.apply_to == "HTTP_ROUTE";
            route_patch(r, i, p, per_route, source, out, diags);
        }
        _ => not_applied(
            r,
            i,
            p,
            "the waypoint applies only rate limit patches (HTTP_FILTER insert of envoy.filters.http.local_ratelimit or envoy.filters.http.ratelimit, CLUSTER ADD of a rate limit service, HTTP_ROUTE/VIRTUAL_HOST MERGE of typed_per_filter_config and rate_limits)",
            diags,
        ),
    }
}

fn join(a: &str, b: &str) -> String {
    if b.is_empty() {
        a.to_string()
    } else if b.starts_with('[') {
        format!("{a}{b}")
    } else {
        format!("{a}.{b}")
    }
}

fn route_patch(
    r: &RawResource,
    i: usize,
    p: &RawPatch,
    per_route: bool,
    source: PatchRef,
    out: &mut RateLimits,
    diags: &mut Diagnostics,
) {
    let field = |f: &str| format!("spec.configPatches[{i}].{f}");
    let rc = p.match_.get("routeConfiguration").unwrap_or(&Value::Null);
    let port = rc.get("portNumber").and_then(Value::as_u64);
    let vhost_v = rc.get("vhost").unwrap_or(&Value::Null);
    let vhost = match vhost_v.get("name").and_then(Value::as_str) {
        None | Some("") => match port.and_then(|p| u16::try_from(p).ok()) {
            Some(p) => VhostMatch::Port(p),
            None => VhostMatch::Any,
        },
        Some(name) => match parse_vhost(name) {
            Some(v) => v,
            None => {
                not_applied(r, i, p, &format!("vhost name {name:?} is no virtual host of the waypoint (it has <hostname>:<port> per service; inbound|http|<port> is read as every service on <port>)"), diags);
                return;
            }
        },
    };
    let route = vhost_v.get("route").unwrap_or(&Value::Null);
    let route_name = route
        .get("name")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_string);
    if let Some(a) = route.get("action").and_then(Value::as_str) {
        if !matches!(a, "ANY" | "ROUTE") {
            not_applied(
                r,
                i,
                p,
                &format!("route action {a} is not limited by the waypoint (only ROUTE and ANY)"),
                diags,
            );
            return;
        }
    }
    let Some(value) = p.patch.value.as_object() else {
        diags.error(r.error(field("patch.value"), "must be an object"));
        return;
    };
    let mut config = None;
    let mut rate_limits = Vec::new();
    let mut rate_limits_json = Value::Null;
    for (k, v) in value {
        match (k.as_str(), per_route) {
            ("typed_per_filter_config" | "typedPerFilterConfig", _) => {
                let Some(m) = v.as_object() else {
                    diags.error(r.error(field(&format!("patch.value.{k}")), "must be a map"));
                    return;
                };
                for (name, typed) in m {
                    let f = format!("patch.value.{k}.{name}");
                    if name != FILTER_NAME {
                        not_applied(r, i, p, &format!("{f}: only {FILTER_NAME} is applied"), diags);
                        continue;
                    }
                    match config::unwrap_typed(typed).and_then(|(v, pre)| {
                        config::compile(&v, true).map_err(|(g, m)| (format!("{pre}{g}"), m))
                    }) {
                        Ok(c) => config = Some(c),
                        Err((g, m)) => {
                            diags.error(r.error(field(&join(&f, &g)), m));
                            return;
                        }
                    }
                }
            }
            ("route", true) => {
                let Some(m) = v.as_object() else {
                    diags.error(r.error(field("patch.value.route"), "must be an object"));
                    return;
                };
                for (rk, rv) in m {
                    if matches!(rk.as_str(), "rate_limits" | "rateLimits") {
                        match parse_rate_limits(rv) {
                            Ok(l) => {
                                rate_limits = l;
                                rate_limits_json = rv.clone();
                            }
                            Err((g, m)) => {
                                diags.error(r.error(field(&format!("patch.value.route.{rk}{g}")), m));
                                return;
                            }
                        }
                    } else {
                        not_applied(r, i, p, &format!("patch.value.route.{rk} is not applied (only rate_limits)"), diags);
                    }
                }
            }
            ("rate_limits" | "rateLimits", false) => match parse_rate_limits(v) {
                Ok(l) => {
                    rate_limits = l;
                    rate_limits_json = v.clone();
                }
                Err((g, m)) => {
                    diags.error(r.error(field(&format!("patch.value.{k}{g}")), m));
                    return;
                }
            },
            _ => not_applied(
                r,
                i,
                p,
                &format!("patch.value.{k} is not applied (only typed_per_filter_config.{FILTER_NAME} and rate_limits)"),
                diags,
            ),
        }
    }
    if config.is_none() && rate_limits.is_empty() {
        return;
    }
    out.routes.push(RouteLimit {
        source,
        vhost,
        route_name,
        per_route,
        config,
        rate_limits,
        rate_limits_json,
    });
}

/// `<hostname>:<port>` or `inbound|http|<port>`.
fn parse_vhost(name: &str) -> Option<VhostMatch> {
    if let Some(port) = name.strip_prefix("inbound|http|") {
        return port.parse().ok().map(VhostMatch::Port);
    }
    let (host, port) = name.rsplit_once(':')?;
    if host.is_empty() || host.contains('*') {
        return None;
    }
    Some(VhostMatch::Service {
        host: host.to_string(),
        port: port.parse().ok()?,
    })
}

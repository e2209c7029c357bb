//! VirtualService compiled into ordered route entries for the waypoint, and the way several
//! VirtualServices for one service combine (pilot `buildWaypointInboundHTTPRouteConfig`).

use std::cmp::Ordering;
use std::sync::Arc;

use crate::error::{Diagnostics, ResourceId};
use crate::resource::RawResource;
use crate::route::{RequestMatch, RouteEntry, Rule, RuleId};
use crate::service::ServiceLookup;

use super::context::Ctx;
use super::hosts::{
    host_matches, resolve_short_name, validate_export_to, validate_wildcard_domain,
};
use super::http_match::{compile_match, MatchOutcome, UriKind, MESH_GATEWAY};
use super::http_rule::{compile_rule, RuleTemplate};
use super::types::VirtualServiceSpec;

/// A compiled VirtualService.
#[derive(Debug, Clone)]
pub struct CompiledVirtualService {
    pub id: ResourceId,
    /// `spec.hosts` as written.
    pub hosts: Vec<String>,
    /// `spec.hosts` with short names resolved in the VirtualService's namespace.
    pub resolved_hosts: Vec<String>,
    /// `spec.gateways` as written (empty = `mesh` only).
    pub gateways: Vec<String>,
    /// `spec.exportTo` as written (empty = the mesh default, `*`).
    pub export_to: Vec<String>,
    /// Route entries in order: `http` rules in order, one entry per match block.
    pub entries: Vec<RouteEntry>,
    /// For each entry (same index), the match block's `sourceNamespace`, if any. Pilot compares
    /// it with the proxy's own namespace (`sourceMatchHTTP`), so for a waypoint the entry applies
    /// only when the waypoint runs in that namespace; see [`merge_for_host_at`].
    pub entry_source_namespaces: Vec<Option<String>>,
    pub creation_timestamp: Option<String>,
    pub seq: usize,
}

impl CompiledVirtualService {
    /// Bound to the mesh (sidecars and waypoints): no `gateways`, or `mesh` among them.
    pub fn applies_to_mesh(&self) -> bool {
        self.gateways.is_empty() || self.gateways.iter().any(|g| g == MESH_GATEWAY)
    }

    /// Does one of the (resolved) hosts cover the service hostname `fqdn`?
    pub fn matches_host(&self, fqdn: &str) -> bool {
        self.resolved_hosts.iter().any(|h| host_matches(h, fqdn))
    }

    /// Pilot `getVirtualServiceForWaypoint`: a waypoint uses a VirtualService for a service
    /// when it is in the waypoint's or the service's namespace and one host covers the
    /// service; plus, the VirtualService must be bound to the mesh.
    pub fn selected_for(
        &self,
        service_fqdn: &str,
        service_namespace: &str,
        waypoint_namespace: &str,
    ) -> bool {
        self.applies_to_mesh()
            && (self.id.namespace == service_namespace || self.id.namespace == waypoint_namespace)
            && self.matches_host(service_fqdn)
    }
}

/// Compile one VirtualService. On any error the resource is rejected as a whole (`None`), as
/// Istio's validating webhook rejects it; warnings never reject.
pub fn compile_virtual_service(
    raw: &RawResource,
    services: &dyn ServiceLookup,
) -> (Option<CompiledVirtualService>, Diagnostics) {
    let mut ctx = Ctx::new(raw.id());
    let spec: VirtualServiceSpec = match raw.parse_spec() {
        Ok(s) => s,
        Err(e) => {
            ctx.diags.error(e);
            return (None, ctx.diags);
        }
    };
    let applies_to_mesh =
        spec.gateways.is_empty() || spec.gateways.iter().any(|g| g == MESH_GATEWAY);
    if !applies_to_mesh {
        ctx.warn(
            "spec.gateways",
            "bound only to gateways (no \"mesh\"); not used by the waypoint",
        );
    }
    // No hosts: a delegate VirtualService, merged into its roots (`delegate.rs`, which also
    // reports one nothing delegates to).
    let mut resolved_hosts = Vec::new();
    for (i, h) in spec.hosts.iter().enumerate() {
        let is_ip = h.parse::<std::net::IpAddr>().is_ok();
        if let Err(e) = validate_wildcard_domain(h).map_err(|e| (!is_ip).then_some(e)) {
            if let Some(e) = e {
                ctx.err(format!("spec.hosts[{i}]"), e);
            }
        } else if h == "*" && applies_to_mesh {
            ctx.err(
                format!("spec.hosts[{i}]"),
                "wildcard host * is not allowed for virtual services bound to the mesh gateway",
            );
        }
        let r = resolve_short_name(h, &raw.namespace);
        if resolved_hosts
            .iter()
            .any(|o: &String| host_matches(o, &r) || host_matches(&r, o))
        {
            ctx.err(
                format!("spec.hosts[{i}]"),
                format!("duplicate hosts in virtual service: {h}"),
            );
        }
        resolved_hosts.push(r);
    }
    if let Err(e) = validate_export_to(&raw.namespace, &spec.export_to) {
        ctx.err("spec.exportTo", e);
    }
    if spec.http.is_empty() && spec.tcp.is_empty() && spec.tls.is_empty() {
        ctx.err(
            "spec",
            "http, tcp or tls must be provided in virtual service",
        );
    }
    if !spec.tcp.is_empty() {
        ctx.warn(
            "spec.tcp",
            "TCP routes are ignored by the waypoint's HTTP routing",
        );
    }
    if !spec.tls.is_empty() {
        ctx.warn("spec.tls", "TLS routes are ignored by the waypoint");
    }

    let mut entries = Vec::new();
    let mut entry_source_namespaces = Vec::new();
    let mut catch_all_at: Option<usize> = None;
    for (i, rule) in spec.http.iter().enumerate() {
        let path = format!("spec.http[{i}]");
        let template = compile_rule(&mut ctx, &path, rule, services);
        let mut blocks = Vec::new();
        let matches = rule.matches.as_deref().unwrap_or_default();
        for (j, m) in matches.iter().enumerate() {
            match compile_match(&mut ctx, &format!("{path}.match[{j}]"), m) {
                MatchOutcome::Entry(c) => blocks.push(*c),
                MatchOutcome::Dropped | MatchOutcome::Invalid => {}
            }
        }
        let (Some(template), None) = (template, catch_all_at) else {
            continue;
        };
        let id = RuleId {
            kind: "VirtualService",
            namespace: raw.namespace.clone(),
            name: raw.name.clone(),
            rule: rule
                .name
                .clone()
                .filter(|n| !n.is_empty())
                .unwrap_or_else(|| i.to_string()),
        };
        if matches.is_empty() {
            // No match: matches everything (Envoy prefix `/`); pilot stops at this rule.
            let r = Arc::new(Rule {
                id,
                action: template.action_for(&UriKind::None),
            });
            entries.push(RouteEntry {
                matcher: RequestMatch::default(),
                rule: r,
            });
            entry_source_namespaces.push(None);
            catch_all_at = Some(i);
            continue;
        }
        push_blocks(
            &mut entries,
            &mut entry_source_namespaces,
            id,
            &template,
            blocks,
        );
    }
    if let Some(i) = catch_all_at {
        if i + 1 < spec.http.len() {
            ctx.warn(
                format!("spec.http[{}]", i + 1),
                format!("unreachable: spec.http[{i}] has no match and catches every request"),
            );
        }
    }
    if ctx.diags.has_errors() {
        return (None, ctx.diags);
    }
    let compiled = CompiledVirtualService {
        id: raw.id(),
        hosts: spec.hosts,
        resolved_hosts,
        gateways: spec.gateways,
        export_to: spec.export_to,
        entries,
        entry_source_namespaces,
        creation_timestamp: raw.creation_timestamp.clone(),
        seq: raw.seq,
    };
    (Some(compiled), ctx.diags)
}

/// One entry per kept match block. They share one `Arc<Rule>` unless the action depends on
/// the block (prefix rewrites / prefix redirects swap what *that* block matched).
fn push_blocks(
    entries: &mut Vec<RouteEntry>,
    namespaces: &mut Vec<Option<String>>,
    id: RuleId,
    template: &RuleTemplate,
    blocks: Vec<super::http_match::CompiledMatch>,
) {
    let shared = (!template.depends_on_match()).then(|| {
        Arc::new(Rule {
            id: id.clone(),
            action: template.action_for(&UriKind::None),
        })
    });
    for b in blocks {
        let rule = match &shared {
            Some(r) => Arc::clone(r),
            None => Arc::new(Rule {
                id: id.clone(),
                action: template.action_for(&b.uri),
            }),
        };
        entries.push(RouteEntry {
            matcher: b.matcher,
            rule,
        });
        namespaces.push(b.source_namespace);
    }
}

/// Oldest first: creation time, then read order, then name and namespace (pilot
/// `configCompareByCreationTime`; manifests read from files carry no timestamp, so the order
/// they were read in stands in for creation order and they sort after timestamped ones).
fn creation_order(a: &CompiledVirtualService, b: &CompiledVirtualService) -> Ordering {
    let key =
        |v: &CompiledVirtualService| (v.creation_timestamp.is_none(), v.creation_timestamp.clone());
    key(a)
        .cmp(&key(b))
        .then(a.seq.cmp(&b.seq))
        .then_with(|| a.id.name.cmp(&b.id.name))
        .then_with(|| a.id.namespace.cmp(&b.id.namespace))
}

/// Route table of one service host from every VirtualService selected for it.
///
/// Waypoints do not pick one VirtualService per host (as sidecar outbound routes do: there the
/// oldest wins and later duplicates are dropped). Pilot's `buildWaypointInboundHTTPRouteConfig`
/// takes every matching mesh VirtualService (`getVirtualServiceForWaypoint`), in creation order,
/// and appends their routes into one virtual host: "Iterate all matching VirtualServices and
/// merge their routes, consistent with gateway.go behavior". First match wins across the whole
/// list. An empty result means "no VirtualService routes": the default route applies.
///
/// Entries with a `sourceNamespace` are kept when it equals the VirtualService's own namespace
/// (the usual case of a waypoint in the application namespace); use [`merge_for_host_at`] when
/// the waypoint's namespace is known. VirtualServices not bound to the mesh are skipped.
pub fn merge_for_host(vss: &[&CompiledVirtualService]) -> Vec<RouteEntry> {
    merge(vss, None)
}

/// [`merge_for_host`] for a waypoint running in `waypoint_namespace`.
pub fn merge_for_host_at(
    vss: &[&CompiledVirtualService],
    waypoint_namespace: &str,
) -> Vec<RouteEntry> {
    merge(vss, Some(waypoint_namespace))
}

fn merge(vss: &[&CompiledVirtualService], waypoint_namespace: Option<&str>) -> Vec<RouteEntry> {
    let mut ordered: Vec<&CompiledVirtualService> = vss
        .iter()
        .copied()
        .filter(|v| v.applies_to_mesh())
        .collect();
    ordered.sort_by(|a, b| creation_order(a, b));
    let mut out = Vec::new();
    for vs in ordered {
        let here = waypoint_namespace.unwrap_or(&vs.id.namespace);
        for (i, e) in vs.entries.iter().enumerate() {
            let keep = match vs.entry_source_namespaces.get(i).and_then(Option::as_deref) {
                None => true,
                Some(ns) => ns == here,
            };
            if keep {
                out.push(e.clone());
            }
        }
    }
    out
}

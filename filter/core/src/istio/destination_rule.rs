//! DestinationRule compiled into the destination policy the waypoint applies to one host:
//! load balancing, connection pool, outlier detection, per-port overrides and subsets.

use std::collections::BTreeMap;

use crate::error::{Diagnostics, ResourceId};
use crate::resource::RawResource;
use crate::route::{
    ConnectionPool, DestinationPolicy, HashKey, LoadBalancer, OutlierDetection, Subset,
    TrafficPolicy,
};
use crate::service::ServiceLookup;

use super::context::Ctx;
use super::hosts::{resolve_short_name, validate_export_to, validate_wildcard_domain};
use super::http_match::is_dns1123_label;
use super::types::{
    ConnectionPoolIn, DestinationRuleSpec, LoadBalancerIn, OutlierDetectionIn, TrafficPolicyIn,
};

/// A compiled DestinationRule.
#[derive(Debug, Clone)]
pub struct CompiledDestinationRule {
    pub id: ResourceId,
    /// `spec.host` resolved: short names in the rule's namespace, registry hostnames.
    pub host: String,
    pub policy: DestinationPolicy,
    /// `spec.exportTo` as written.
    pub export_to: Vec<String>,
    /// `spec.workloadSelector.matchLabels`: the rule applies only to proxies with these labels.
    pub workload_selector: Option<BTreeMap<String, String>>,
    pub creation_timestamp: Option<String>,
    pub seq: usize,
}

/// Compile one DestinationRule; any error rejects it (`None`), as Istio validation does.
pub fn compile_destination_rule(
    raw: &RawResource,
    services: &dyn ServiceLookup,
) -> (Option<CompiledDestinationRule>, Diagnostics) {
    let mut ctx = Ctx::new(raw.id());
    let spec: DestinationRuleSpec = match raw.parse_spec() {
        Ok(s) => s,
        Err(e) => {
            ctx.diags.error(e);
            return (None, ctx.diags);
        }
    };
    let host = if spec.host.is_empty() {
        ctx.err("spec.host", "host is required");
        String::new()
    } else if let Err(e) = validate_wildcard_domain(&spec.host) {
        ctx.err("spec.host", e);
        String::new()
    } else {
        let fqdn = resolve_short_name(&spec.host, &raw.namespace);
        match services
            .by_host(&spec.host, &raw.namespace)
            .or_else(|| services.by_host(&fqdn, &raw.namespace))
        {
            Some(svc) if svc.aliases.iter().any(|a| a == &spec.host) => spec.host.clone(),
            Some(svc) => svc.hostname.clone(),
            None => fqdn,
        }
    };

    let mut policy = DestinationPolicy {
        source: format!("DestinationRule/{}/{}", raw.namespace, raw.name),
        ..DestinationPolicy::default()
    };
    if let Some(tp) = &spec.traffic_policy {
        let (top, ports) = compile_traffic_policy(&mut ctx, "spec.trafficPolicy", tp);
        policy.traffic_policy = top;
        policy.port_policies = ports;
    }
    for (i, s) in spec.subsets.iter().enumerate() {
        let path = format!("spec.subsets[{i}]");
        if s.name.is_empty() {
            ctx.err(format!("{path}.name"), "subset name cannot be empty");
            continue;
        }
        if !is_dns1123_label(&s.name) {
            ctx.err(
                format!("{path}.name"),
                format!("subset name is invalid: {}", s.name),
            );
        }
        if policy.subsets.contains_key(&s.name) {
            ctx.err(
                format!("{path}.name"),
                format!("duplicate subset names: {}", s.name),
            );
            continue;
        }
        // Pilot `MergeTrafficPolicy` (cluster_traffic_policy.go): each field the subset sets
        // replaces the rule-level one (the rule's port-level settings for that port first);
        // the subset's own port-level settings replace both for their port.
        let mut port_policies = BTreeMap::new();
        let traffic_policy = s.traffic_policy.as_ref().map(|tp| {
            let tpath = format!("{path}.trafficPolicy");
            let (own, own_ports) = compile_traffic_policy(&mut ctx, &tpath, tp);
            for (port, top) in &policy.port_policies {
                port_policies.insert(*port, overlay(top, own.clone()));
            }
            port_policies.extend(own_ports);
            overlay(&policy.traffic_policy, own)
        });
        policy.subsets.insert(
            s.name.clone(),
            Subset {
                labels: s.labels.clone(),
                traffic_policy,
                port_policies,
            },
        );
    }
    if let Err(e) = validate_export_to(&raw.namespace, &spec.export_to) {
        ctx.err("spec.exportTo", e);
    }
    if spec.workload_selector.is_some()
        && !spec.export_to.is_empty()
        && !(spec.export_to.len() == 1
            && (spec.export_to[0] == "." || spec.export_to[0] == raw.namespace))
    {
        ctx.err(
            "spec.exportTo",
            "destination rule with workload selector cannot have exportTo beyond current namespace",
        );
    }
    let workload_selector = spec.workload_selector.map(|w| {
        ctx.warn(
            "spec.workloadSelector",
            "applies only to proxies whose labels match; the caller decides whether the waypoint is selected",
        );
        w.match_labels
    });
    if ctx.diags.has_errors() {
        return (None, ctx.diags);
    }
    let compiled = CompiledDestinationRule {
        id: raw.id(),
        host,
        policy,
        export_to: spec.export_to,
        workload_selector,
        creation_timestamp: raw.creation_timestamp.clone(),
        seq: raw.seq,
    };
    (Some(compiled), ctx.diags)
}

/// Several DestinationRules for one host (same visibility, no workload selector) combined as
/// pilot `mergeDestinationRule` does, oldest first: the first rule with a top-level traffic
/// policy (or port-level settings) supplies it, and subsets are concatenated, a later subset
/// whose name already exists being dropped. Rules with a `workloadSelector` are skipped (they
/// only apply to the proxies they select). Subsets keep the policy merged with their own
/// rule's top level. `None` when nothing applies.
pub fn merge_destination_rules(drs: &[&CompiledDestinationRule]) -> Option<DestinationPolicy> {
    let mut ordered: Vec<&CompiledDestinationRule> = drs
        .iter()
        .copied()
        .filter(|d| d.workload_selector.is_none())
        .collect();
    ordered.sort_by(|a, b| {
        let key = |d: &CompiledDestinationRule| {
            (d.creation_timestamp.is_none(), d.creation_timestamp.clone())
        };
        key(a)
            .cmp(&key(b))
            .then(a.seq.cmp(&b.seq))
            .then_with(|| a.id.name.cmp(&b.id.name))
            .then_with(|| a.id.namespace.cmp(&b.id.namespace))
    });
    let (first, rest) = ordered.split_first()?;
    let mut merged = first.policy.clone();
    let has_policy = |p: &DestinationPolicy| {
        p.traffic_policy != TrafficPolicy::default() || !p.port_policies.is_empty()
    };
    for dr in rest {
        if !has_policy(&merged) && has_policy(&dr.policy) {
            merged.traffic_policy = dr.policy.traffic_policy.clone();
            merged.port_policies = dr.policy.port_policies.clone();
        }
        for (name, subset) in &dr.policy.subsets {
            merged
                .subsets
                .entry(name.clone())
                .or_insert_with(|| subset.clone());
        }
    }
    Some(merged)
}

/// `base` with every field `own` sets replacing it.
fn overlay(base: &TrafficPolicy, own: TrafficPolicy) -> TrafficPolicy {
    TrafficPolicy {
        load_balancer: own.load_balancer.or_else(|| base.load_balancer.clone()),
        connection_pool: own.connection_pool.or_else(|| base.connection_pool.clone()),
        outlier_detection: own
            .outlier_detection
            .or_else(|| base.outlier_detection.clone()),
    }
}

fn compile_traffic_policy(
    ctx: &mut Ctx,
    path: &str,
    tp: &TrafficPolicyIn,
) -> (TrafficPolicy, BTreeMap<u16, TrafficPolicy>) {
    if tp.load_balancer.is_none()
        && tp.connection_pool.is_none()
        && tp.outlier_detection.is_none()
        && tp.tls.is_none()
        && tp.port_level_settings.is_none()
        && tp.tunnel.is_none()
        && tp.proxy_protocol.is_none()
        && tp.retry_budget.is_none()
    {
        ctx.err(path, "traffic policy must have at least one field");
    }
    if tp.tunnel.is_some() && tp.proxy_protocol.is_some() {
        ctx.err(path, "tunnel and proxyProtocol must not be set together");
    }
    if let Some(tls) = &tp.tls {
        check_tls(ctx, &format!("{path}.tls"), tls);
    }
    for (field, v) in [
        ("tunnel", &tp.tunnel),
        ("proxyProtocol", &tp.proxy_protocol),
        ("retryBudget", &tp.retry_budget),
    ] {
        if v.is_some() {
            ctx.ignored(&format!("{path}.{field}"));
        }
    }
    let out = TrafficPolicy {
        load_balancer: tp
            .load_balancer
            .as_ref()
            .and_then(|lb| compile_lb(ctx, &format!("{path}.loadBalancer"), lb)),
        connection_pool: tp
            .connection_pool
            .as_ref()
            .and_then(|cp| compile_pool(ctx, &format!("{path}.connectionPool"), cp)),
        outlier_detection: tp
            .outlier_detection
            .as_ref()
            .map(|od| compile_outlier(ctx, &format!("{path}.outlierDetection"), od)),
    };
    let mut ports = BTreeMap::new();
    for (i, pls) in tp.port_level_settings.iter().flatten().enumerate() {
        let ppath = format!("{path}.portLevelSettings[{i}]");
        let Some(number) = pls.port.as_ref().and_then(|p| p.number) else {
            ctx.err(
                format!("{ppath}.port"),
                "portTrafficPolicy must have valid port",
            );
            continue;
        };
        let Some(port) = u16::try_from(number).ok().filter(|p| *p != 0) else {
            ctx.err(
                format!("{ppath}.port.number"),
                format!("port {number} is not in 1..65535"),
            );
            continue;
        };
        if pls.load_balancer.is_none()
            && pls.connection_pool.is_none()
            && pls.outlier_detection.is_none()
            && pls.tls.is_none()
        {
            ctx.err(&ppath, "port traffic policy must have at least one field");
            continue;
        }
        if let Some(tls) = &pls.tls {
            check_tls(ctx, &format!("{ppath}.tls"), tls);
        }
        // Pilot `MergeTrafficPolicy(..., hasPortLevel=true)`: the port-level policy replaces the
        // load balancer, connection pool and outlier detection wholesale, unset ones included.
        let policy = TrafficPolicy {
            load_balancer: pls
                .load_balancer
                .as_ref()
                .and_then(|lb| compile_lb(ctx, &format!("{ppath}.loadBalancer"), lb)),
            connection_pool: pls
                .connection_pool
                .as_ref()
                .and_then(|cp| compile_pool(ctx, &format!("{ppath}.connectionPool"), cp)),
            outlier_detection: pls
                .outlier_detection
                .as_ref()
                .map(|od| compile_outlier(ctx, &format!("{ppath}.outlierDetection"), od)),
        };
        if ports.insert(port, policy).is_some() {
            ctx.warn(
                &ppath,
                format!("port {port} is listed twice; the last entry wins"),
            );
        }
    }
    (out, ports)
}

fn compile_lb(ctx: &mut Ctx, path: &str, lb: &LoadBalancerIn) -> Option<LoadBalancer> {
    if lb.locality_lb_setting.is_some() {
        ctx.warn(
            format!("{path}.localityLbSetting"),
            "locality load balancing is not supported by the waypoint (endpoints carry no locality); every endpoint is used alike",
        );
    }
    for (field, v) in [
        ("zoneAwareLbSetting", &lb.zone_aware_lb_setting),
        ("warmupDurationSecs", &lb.warmup_duration_secs),
        ("warmup", &lb.warmup),
    ] {
        if v.is_some() {
            ctx.ignored(&format!("{path}.{field}"));
        }
    }
    if lb.simple.is_some() && lb.consistent_hash.is_some() {
        ctx.err(path, "only one of simple or consistentHash may be set");
        return None;
    }
    if let Some(simple) = &lb.simple {
        return match simple.as_str() {
            "ROUND_ROBIN" => Some(LoadBalancer::RoundRobin),
            "LEAST_REQUEST" => Some(LoadBalancer::LeastRequest),
            "LEAST_CONN" => {
                ctx.warn(
                    format!("{path}.simple"),
                    "LEAST_CONN is deprecated; it means LEAST_REQUEST",
                );
                Some(LoadBalancer::LeastRequest)
            }
            "RANDOM" => Some(LoadBalancer::Random),
            "PASSTHROUGH" => {
                ctx.warn(
                    format!("{path}.simple"),
                    "PASSTHROUGH (original destination) is not supported by the waypoint; round robin over the service's endpoints applies",
                );
                Some(LoadBalancer::Passthrough)
            }
            // Let the proxy pick its default.
            "UNSPECIFIED" => None,
            other => {
                ctx.err(
                    format!("{path}.simple"),
                    format!("unknown load balancer {other:?} (UNSPECIFIED, ROUND_ROBIN, LEAST_REQUEST, LEAST_CONN, RANDOM, PASSTHROUGH)"),
                );
                None
            }
        };
    }
    let ch = lb.consistent_hash.as_ref()?;
    let hpath = format!("{path}.consistentHash");
    if ch.ring_hash.is_some() && ch.maglev.is_some() {
        ctx.err(&hpath, "only one of ringHash or maglev may be set");
    }
    // The table sizes are Envoy tuning: its defaults apply.
    for (field, set) in [
        (
            "ringHash.minimumRingSize",
            ch.ring_hash
                .as_ref()
                .is_some_and(|r| r.get("minimumRingSize").is_some()),
        ),
        (
            "maglev.tableSize",
            ch.maglev
                .as_ref()
                .is_some_and(|m| m.get("tableSize").is_some()),
        ),
        ("minimumRingSize", ch.minimum_ring_size.is_some()),
    ] {
        if set {
            ctx.ignored(&format!("{hpath}.{field}"));
        }
    }
    let maglev = ch.maglev.is_some();
    let mut keys = Vec::new();
    if let Some(h) = &ch.http_header_name {
        keys.push(HashKey::Header(h.to_ascii_lowercase()));
    }
    if let Some(c) = &ch.http_cookie {
        if c.name.is_empty() {
            ctx.err(
                format!("{hpath}.httpCookie.name"),
                "name required for HttpCookie",
            );
        }
        if c.ttl.is_some() || c.path.is_some() || c.attributes.is_some() {
            ctx.warn(
                format!("{hpath}.httpCookie"),
                "cookie generation (ttl, path, attributes) is not supported by the waypoint; only an existing cookie is hashed",
            );
        }
        keys.push(HashKey::Cookie(c.name.clone()));
    }
    if ch.use_source_ip == Some(true) {
        keys.push(HashKey::SourceIp);
    }
    if let Some(q) = &ch.http_query_parameter_name {
        keys.push(HashKey::QueryParameter(q.clone()));
    }
    match keys.len() {
        0 => {
            ctx.warn(
                &hpath,
                "consistentHash without a hash key; the default load balancer applies",
            );
            None
        }
        1 => keys.pop().map(|k| {
            if maglev {
                LoadBalancer::Maglev(k)
            } else {
                LoadBalancer::ConsistentHash(k)
            }
        }),
        _ => {
            ctx.err(
                &hpath,
                "hash key is a oneof: set only one of httpHeaderName, httpCookie, useSourceIp, httpQueryParameterName",
            );
            None
        }
    }
}

fn non_negative(ctx: &mut Ctx, path: &str, v: Option<i64>) -> Option<u32> {
    let v = v?;
    match u32::try_from(v) {
        Ok(v) => Some(v),
        Err(_) => {
            ctx.err(path, format!("{v} must be a non-negative 32-bit integer"));
            None
        }
    }
}

fn compile_pool(ctx: &mut Ctx, path: &str, cp: &ConnectionPoolIn) -> Option<ConnectionPool> {
    if cp.tcp.is_none() && cp.http.is_none() {
        ctx.err(path, "connection pool must have at least one field");
        return None;
    }
    let mut out = ConnectionPool::default();
    if let Some(tcp) = &cp.tcp {
        let tpath = format!("{path}.tcp");
        out.max_connections =
            non_negative(ctx, &format!("{tpath}.maxConnections"), tcp.max_connections);
        if let Some(t) = &tcp.connect_timeout {
            out.connect_timeout = ctx.duration_min_1ms(&format!("{tpath}.connectTimeout"), t);
        }
        if let Some(t) = &tcp.max_connection_duration {
            ctx.duration_min_1ms(&format!("{tpath}.maxConnectionDuration"), t);
            ctx.ignored(&format!("{tpath}.maxConnectionDuration"));
        }
        if let Some(t) = &tcp.idle_timeout {
            // `0s` disables the timeout and is valid. It bounds TCP proxying, which the
            // waypoint's tunnels bound with their own idle timeout.
            ctx.duration_any(&format!("{tpath}.idleTimeout"), t);
            ctx.ignored(&format!("{tpath}.idleTimeout"));
        }
        if tcp.tcp_keepalive.is_some() {
            ctx.ignored(&format!("{tpath}.tcpKeepalive"));
        }
    }
    if let Some(http) = &cp.http {
        let hpath = format!("{path}.http");
        out.http1_max_pending_requests = non_negative(
            ctx,
            &format!("{hpath}.http1MaxPendingRequests"),
            http.http1_max_pending_requests,
        );
        out.http2_max_requests = non_negative(
            ctx,
            &format!("{hpath}.http2MaxRequests"),
            http.http2_max_requests,
        );
        out.max_requests_per_connection = non_negative(
            ctx,
            &format!("{hpath}.maxRequestsPerConnection"),
            http.max_requests_per_connection,
        );
        out.max_retries = non_negative(ctx, &format!("{hpath}.maxRetries"), http.max_retries);
        if let Some(t) = &http.idle_timeout {
            out.idle_timeout = ctx.duration_min_1ms(&format!("{hpath}.idleTimeout"), t);
        }
        match http.h2_upgrade_policy.as_deref() {
            None | Some("DEFAULT") => {}
            Some("DO_NOT_UPGRADE") | Some("UPGRADE") => {
                ctx.ignored(&format!("{hpath}.h2UpgradePolicy"))
            }
            Some(other) => ctx.err(
                format!("{hpath}.h2UpgradePolicy"),
                format!("unknown value {other:?} (DEFAULT, DO_NOT_UPGRADE, UPGRADE)"),
            ),
        }
        if http.h2_upgrade_policy.as_deref() == Some("UPGRADE")
            && http.use_client_protocol == Some(true)
        {
            ctx.err(
                &hpath,
                "use client protocol must not be true when H2UpgradePolicy is UPGRADE",
            );
        }
        if http.use_client_protocol.is_some() {
            ctx.ignored(&format!("{hpath}.useClientProtocol"));
        }
        if non_negative(
            ctx,
            &format!("{hpath}.maxConcurrentStreams"),
            http.max_concurrent_streams,
        )
        .is_some()
        {
            ctx.ignored(&format!("{hpath}.maxConcurrentStreams"));
        }
        if http.http2_keep_alive.is_some() {
            ctx.ignored(&format!("{hpath}.http2KeepAlive"));
        }
    }
    Some(out)
}

fn compile_outlier(ctx: &mut Ctx, path: &str, od: &OutlierDetectionIn) -> OutlierDetection {
    let mut out = OutlierDetection::default();
    if od.consecutive_errors.is_some_and(|v| v != 0) {
        ctx.warn(
            format!("{path}.consecutiveErrors"),
            "outlier detection consecutive errors is deprecated, use consecutiveGatewayErrors or consecutive5xxErrors instead",
        );
    }
    let u32_field = |ctx: &mut Ctx, field: &str, v: Option<u64>| -> Option<u32> {
        let v = v?;
        u32::try_from(v)
            .map_err(|_| ctx.err(format!("{path}.{field}"), format!("{v} is too large")))
            .ok()
    };
    out.consecutive_5xx_errors = u32_field(ctx, "consecutive5xxErrors", od.consecutive_5xx_errors);
    out.consecutive_gateway_errors = u32_field(
        ctx,
        "consecutiveGatewayErrors",
        od.consecutive_gateway_errors,
    );
    if let Some(t) = &od.interval {
        out.interval = ctx.duration_min_1ms(&format!("{path}.interval"), t);
    }
    if let Some(t) = &od.base_ejection_time {
        out.base_ejection_time = ctx.duration_min_1ms(&format!("{path}.baseEjectionTime"), t);
    }
    for (field, v) in [
        ("maxEjectionPercent", od.max_ejection_percent),
        ("minHealthPercent", od.min_health_percent),
    ] {
        if let Some(p) = v {
            if !(0..=100).contains(&p) {
                ctx.err(
                    format!("{path}.{field}"),
                    format!("percentage {p} is not in range 0..100"),
                );
            }
        }
    }
    out.max_ejection_percent = od.max_ejection_percent.and_then(|p| u32::try_from(p).ok());
    if od.split_external_local_origin_errors != Some(true)
        && od.consecutive_local_origin_failures.is_some_and(|v| v > 0)
    {
        ctx.err(
            format!("{path}.consecutiveLocalOriginFailures"),
            "outlier detection consecutive local origin failures is specified, but split external local origin errors is set to false",
        );
    }
    for (field, set) in [
        ("minHealthPercent", od.min_health_percent.is_some()),
        (
            "splitExternalLocalOriginErrors",
            od.split_external_local_origin_errors.is_some(),
        ),
        (
            "consecutiveLocalOriginFailures",
            od.consecutive_local_origin_failures.is_some(),
        ),
        (
            "outlierDetectionHttpErrorCodes",
            od.outlier_detection_http_error_codes.is_some(),
        ),
    ] {
        if set {
            ctx.ignored(&format!("{path}.{field}"));
        }
    }
    out
}

/// `tls`: the waypoint reaches mesh endpoints over HBONE (mutual TLS with Istio certificates,
/// what `ISTIO_MUTUAL` asks for) and others in plaintext; any other mode is not applied.
fn check_tls(ctx: &mut Ctx, path: &str, tls: &serde_json::Value) {
    match tls.get("mode").and_then(|m| m.as_str()) {
        Some("ISTIO_MUTUAL") => {}
        Some(mode) => ctx.warn(
            format!("{path}.mode"),
            format!("tls mode {mode} is not supported by the waypoint (only ISTIO_MUTUAL, which HBONE provides); not applied"),
        ),
        None => ctx.warn(
            path,
            "tls without mode is not supported by the waypoint (only ISTIO_MUTUAL, which HBONE provides); not applied",
        ),
    }
}

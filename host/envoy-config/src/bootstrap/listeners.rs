//! Envoy listeners of the waypoint bootstrap: HBONE termination on :15008, the internal L7
//! listener with our module, per-pod HBONE origination, readiness :15021 and stats :15020.

use serde_json::{json, Value};

use waypoint_core::mesh::PathNormalization;

use super::clusters::{
    hbone_cluster_name, host_port, originate_listener_name, originator_cluster_name, Target,
};
use super::hardening::{self, duration};
use super::traffic_policy;
use super::{Options, PolicyFilter};
use waypoint_hbone::timeouts::Timeouts;

const HCM: &str = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager";
const ROUTER: &str = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router";
/// The internal listener the :15008 listener hands terminated CONNECT streams to.
pub const MAIN_INTERNAL: &str = "main_internal";
/// Buffer limit on the HBONE path (envoy-hbone-notes.md: with the 64 KiB / 1 MiB windows this
/// made the terminate design pass 7/7 runs of the 50 MiB download; a mitigation, not a fix).
pub const BUFFER_LIMIT: u32 = 32768;

fn router() -> Value {
    json!({"name": "envoy.filters.http.router", "typed_config": {"@type": ROUTER}})
}

fn string_state(key: &str, format: &str) -> Value {
    json!({
        "object_key": key,
        // Hashable: the value becomes part of the upstream pool key, so an internal connection
        // to main_internal is reused only by a CONNECT with the same peer and destination.
        // With `envoy.string` Envoy handed a finished CONNECT's internal connection (and the
        // filter state copied onto it) to the next CONNECT on the same HBONE connection, which
        // the module then decided as the earlier one (envoy_generated_traffic.rs,
        // each_connect_decided_alone).
        "factory_key": "envoy.hashable_string",
        "format_string": {"text_format_source": {"inline_string": format}},
        // Copied once onto the internal connection to main_internal, where the module reads it.
        "shared_with_upstream": "ONCE",
    })
}

/// Filter state read by `original_dst` on an internal listener as the connection's remote
/// address. With the local originator the client's address travels through main_internal
/// down to `connect_originate`, so the upstream PROXY v2 header has IP addresses on both
/// sides (Envoy writes no PROXY header for internal addresses).
const ORIGINAL_SRC_KEY: &str = "envoy.filters.listener.original_dst.remote_ip";

/// TLS context shared by the HBONE server and client sides: our cert, the mesh CA, TLS 1.3.
fn common_tls(o: &Options, san: Value) -> Value {
    let [chain, key, roots] = o.cert_files();
    json!({
        "tls_params": {"tls_minimum_protocol_version": "TLSv1_3", "tls_maximum_protocol_version": "TLSv1_3"},
        "alpn_protocols": ["h2"],
        "tls_certificates": [{
            "certificate_chain": {"filename": chain},
            "private_key": {"filename": key}}],
        "validation_context": {
            "trusted_ca": {"filename": roots},
            "match_typed_subject_alt_names": [{"san_type": "URI", "matcher": san}]},
    })
}

/// :15008: mTLS (client cert from our trust domain), HTTP/2 CONNECT terminated, the stream's
/// bytes handed to `main_internal` with the peer principal and original destination.
pub fn connect_terminate(o: &Options, paths: PathNormalization) -> Value {
    let t = &o.timeouts;
    let mut l = json!({
        "name": "connect_terminate",
        "address": {"socket_address": {"address": "0.0.0.0", "port_value": 15008}},
        "per_connection_buffer_limit_bytes": BUFFER_LIMIT,
        // The TLS inspector reads the ClientHello's ALPN for the filter chain match below; it
        // must arrive within the handshake bound.
        "listener_filters": [{"name": "envoy.filters.listener.tls_inspector", "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector"}}],
        "listener_filters_timeout": duration(t.tls_handshake),
        "filter_chains": [{
            // HBONE is HTTP/2 only: a client offering no ALPN, or not `h2`, matches no filter
            // chain and is closed (Envoy would otherwise negotiate nothing and speak HTTP/2
            // anyway).
            "filter_chain_match": {"application_protocols": ["h2"]},
            // A TLS handshake that does not finish in time is closed.
            "transport_socket_connect_timeout": duration(t.tls_handshake),
            "transport_socket": {"name": "envoy.transport_sockets.tls", "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
                "require_client_certificate": true,
                "common_tls_context": common_tls(o, json!({"prefix": format!("spiffe://{}/", o.trust_domain)}))}},
            "filters": [{"name": "envoy.filters.network.http_connection_manager", "typed_config": {
                "@type": HCM,
                "stat_prefix": "connect_terminate",
                "codec_type": "HTTP2",
                "upgrade_configs": [{"upgrade_type": "CONNECT"}],
                "http2_protocol_options": {
                    "allow_connect": true,
                    // ztunnel fails refused streams instead of opening another connection.
                    "max_concurrent_streams": 100,
                    // Small windows keep backpressure upstream, so the upstream EOF stays behind
                    // the data (envoy-hbone-notes.md, cause 1: the 256 MiB default truncates).
                    "initial_stream_window_size": 65536,
                    "initial_connection_window_size": 1048576,
                    "connection_keepalive": {"interval": "10s", "timeout": "20s"}},
                "route_config": {"name": "connect_terminate", "virtual_hosts": [{
                    "name": "connect", "domains": ["*"],
                    "routes": [{
                        // No destination listens on port 0: refused before any byte moves.
                        "match": {"connect_matcher": {}, "headers": [{"name": ":authority",
                            "string_match": {"safe_regex": {"regex": ".*:0+"}}}]},
                        "direct_response": {"status": 400}}, {
                        "match": {"connect_matcher": {}},
                        "route": {
                            "cluster": MAIN_INTERNAL,
                            "upgrade_configs": [{"upgrade_type": "CONNECT", "connect_config": {}}],
                            "timeout": "0s"}}]}]},
                "http_filters": [
                    {"name": "envoy.filters.http.set_filter_state", "typed_config": {
                        "@type": "type.googleapis.com/envoy.extensions.filters.http.set_filter_state.v3.Config",
                        "on_request_headers": terminate_state(o)}},
                    router()]}}]}],
    });
    let hcm = &mut l["filter_chains"][0]["filters"][0]["typed_config"];
    // Tunnels idle (no byte either way) for `stream_idle` are reset: Istio sets 0 (tunnels
    // live as long as the client wants); a bounded idle tunnel is issue 11's choice.
    hardening::http_timeouts(hcm, t, hardening::hbone_idle(t));
    // `request_timeout` does not cut an established tunnel (Envoy ends the request timer
    // once the CONNECT is upgraded: envoy_request_timeout_bounds_requests_not_tunnels).
    hardening::normalize_paths(hcm, paths);
    l
}

/// Filter state set per CONNECT on :15008.
fn terminate_state(o: &Options) -> Value {
    let mut states = vec![
        string_state("io.istio.peer_principal", "%DOWNSTREAM_PEER_URI_SAN%"),
        string_state("waypoint.original_dst", "%REQ(:AUTHORITY)%"),
    ];
    if o.originator.is_some() {
        states.push(json!({
            "object_key": ORIGINAL_SRC_KEY,
            "format_string": {"text_format_source": {"inline_string": "%DOWNSTREAM_REMOTE_ADDRESS%"}},
            // Through main_internal and its upstream connection to connect_originate.
            "shared_with_upstream": "TRANSITIVE",
        }));
    }
    Value::Array(states)
}

/// Istio's default retry policy (pilot `route/retry.DefaultPolicy`), which Istio puts on every
/// waypoint route; `conditions: false` keeps only its host predicates (the retry route, whose
/// conditions come from the module's `x-envoy-retry-on`).
fn istio_retry_policy(conditions: bool) -> Value {
    let mut p = json!({
        "num_retries": 0,
        "retry_host_predicate": [{"name": "envoy.retry_host_predicates.previous_hosts", "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate"}}],
        "host_selection_retry_max_attempts": 5,
    });
    if conditions {
        p["retry_on"] =
            json!("connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes");
        p["num_retries"] = json!(2);
    }
    p
}

/// The route table of the L7 listener (the module's `route_table: waypoint`): the module
/// writes the cluster into `x-waypoint-cluster`, which a `weighted_clusters` entry reads so
/// the module can make Envoy re-read it without a second route match. Rules with Istio's
/// default retries (nearly all) take the catch-all route carrying that policy; the module
/// sends others to the `x-waypoint-retry` route with their retries in router headers.
fn waypoint_routes() -> Value {
    let forward = |retry: bool| {
        json!({"timeout": "0s", "retry_policy": istio_retry_policy(!retry),
               "hash_policy": traffic_policy::route_hash_policy(),
               "weighted_clusters": {"clusters": [{"cluster_header": "x-waypoint-cluster", "weight": 1}]}})
    };
    json!({"name": "waypoint", "virtual_hosts": [{"name": "all", "domains": ["*"], "routes": [
        {"match": {"prefix": "/", "headers": [{"name": "x-waypoint-retry", "present_match": true}]},
         "route": forward(true),
         "request_headers_to_remove": ["x-waypoint-cluster", "x-waypoint-retry"]},
        {"match": {"prefix": "/"},
         "route": forward(false),
         "request_headers_to_remove": ["x-waypoint-cluster"]}]}]})
}

/// The internal HTTP listener: our dynamic module filter, then the router.
pub fn main_internal(o: &Options, paths: PathNormalization) -> Value {
    let mut listener = json!({
        "name": MAIN_INTERNAL,
        "internal_listener": {},
        "per_connection_buffer_limit_bytes": BUFFER_LIMIT,
        "filter_chains": [{"filters": [{"name": "envoy.filters.network.http_connection_manager", "typed_config": {
            "@type": HCM,
            "stat_prefix": MAIN_INTERNAL,
            "route_config": waypoint_routes(),
            "http_filters": [
                {"name": "waypoint", "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.http.dynamic_modules.v3.DynamicModuleFilter",
                    // Loaded as lib<name>.so from $ENVOY_DYNAMIC_MODULES_SEARCH_PATH.
                    "dynamic_module_config": {"name": o.module_name, "metrics_namespace": "waypoint"},
                    "filter_name": "waypoint",
                    "filter_config": {"@type": "type.googleapis.com/google.protobuf.Struct", "value": {
                        "waypoint": o.waypoint,
                        "config_paths": o.config_paths,
                        "route_table": "waypoint",
                        // Reached only through connect_terminate: the principal is in filter
                        // state, never in a certificate of this (internal) connection.
                        "principal_from": "filter_state",
                        // Dynamic metadata only feeds the access log; without one, none
                        // is written (each key is a metadata merge in Envoy).
                        "metadata": if o.access_log { "decision" } else { "none" }}}}},
                traffic_policy::router_dropping_hash_header()]}}]}],
    });
    let hcm = &mut listener["filter_chains"][0]["filters"][0]["typed_config"];
    if let PolicyFilter::Wasm {
        file,
        manifests,
        default_namespace,
    } = &o.filter
    {
        // The same place and manifests; the Wasm filter reads the principal from the same
        // filter state and sets every router header itself (no `route_table` choice).
        let plugin = json!({
            "waypoint": o.waypoint,
            "config_inline": manifests,
            "default_namespace": default_namespace,
            "principal_from": "filter_state"});
        hcm["http_filters"][0] = super::wasm_http_filter(file, &plugin.to_string());
    }
    hardening::normalize_paths(hcm, paths);
    hardening::websocket_only(hcm);
    hardening::http_timeouts(hcm, &o.timeouts, o.timeouts.connection_idle);
    if o.access_log {
        listener["filter_chains"][0]["filters"][0]["typed_config"]["access_log"] = access_log();
    }
    listener
}

/// Stdout access log of the L7 listener: why each request went where it did.
fn access_log() -> Value {
    json!([{"name": "envoy.access_loggers.stdout", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StdoutAccessLog",
        "log_format": {"text_format_source": {"inline_string":
            "[%START_TIME%] \"%REQ(:METHOD)% %REQ(:PATH)%\" %RESPONSE_CODE% %RESPONSE_CODE_DETAILS% peer=%FILTER_STATE(io.istio.peer_principal:PLAIN)% dst=%FILTER_STATE(waypoint.original_dst:PLAIN)% decision=%DYNAMIC_METADATA(waypoint:decision)% route=%DYNAMIC_METADATA(waypoint:route)% cluster=%UPSTREAM_CLUSTER%\n"}}}}])
}

/// One internal listener per mesh pod and target port: a tcp_proxy that opens an HTTP/2
/// CONNECT to `<pod IP>:15008` with `:authority <pod IP>:<targetPort>` (Istio's
/// `connect_originate`, made static: the address is fixed per listener).
pub fn connect_originate(t: &Target, tcp_idle: std::time::Duration) -> Value {
    let name = originate_listener_name(t.ip, t.target_port);
    json!({
        "name": name,
        "internal_listener": {},
        "filter_chains": [{"filters": [{"name": "envoy.filters.network.tcp_proxy", "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy",
            "stat_prefix": name,
            "cluster": hbone_cluster_name(t.ip),
            "idle_timeout": duration(tcp_idle),
            "tunneling_config": {"hostname": host_port(t.ip, t.target_port)}}}]}],
    })
}

/// With the local originator: one internal listener per mesh pod and target port, a plain
/// tcp_proxy to the originator. `original_dst` restores the pod address (endpoint metadata
/// passed through by `internal_upstream`) and the client address (filter state), and the
/// originator cluster's upstream PROXY v2 socket writes them; TCP half-close is clean both
/// ways, unlike the HTTP/2 tunnelling upstream (envoy-hbone-notes.md, cause 2).
pub fn connect_originate_local(t: &Target, tcp_idle: std::time::Duration) -> Value {
    let name = originate_listener_name(t.ip, t.target_port);
    json!({
        "name": name,
        "internal_listener": {},
        "listener_filters": [{"name": "envoy.filters.listener.original_dst", "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.listener.original_dst.v3.OriginalDst"}}],
        "filter_chains": [{"filters": [{"name": "envoy.filters.network.tcp_proxy", "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy",
            "stat_prefix": name,
            "idle_timeout": duration(tcp_idle),
            "cluster": originator_cluster_name(t.ip)}}]}],
    })
}

/// The HBONE cluster of one pod: HTTP/2 over mTLS to `<pod IP>:15008`, the pod's identity
/// checked when known (else any SPIFFE identity of our trust domain).
pub fn hbone_cluster(o: &Options, t: &Target) -> Value {
    let name = hbone_cluster_name(t.ip);
    let san = match &t.identity {
        Some(id) => json!({"exact": id}),
        None => json!({"prefix": format!("spiffe://{}/", o.trust_domain)}),
    };
    json!({
        "name": name,
        "type": "STATIC",
        "connect_timeout": "10s",
        "load_assignment": {"cluster_name": name, "endpoints": [{"lb_endpoints": [{"endpoint": {
            "address": {"socket_address": {"address": t.ip.to_string(), "port_value": 15008}}}}]}]},
        "typed_extension_protocol_options": {"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
            "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
            "explicit_http_config": {"http2_protocol_options": {
                "initial_stream_window_size": 65536,
                "initial_connection_window_size": 1048576}}}},
        "transport_socket": {"name": "envoy.transport_sockets.tls", "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
            "common_tls_context": common_tls(o, san)}},
    })
}

/// :15021 readiness: exactly `/healthz/ready`, answered directly with 200; anything else 404.
pub fn readiness(t: &Timeouts) -> Value {
    simple_listener(
        "readiness",
        15021,
        json!([
        {"match": {"path": "/healthz/ready"}, "direct_response": {"status": 200, "body": {"inline_string": "ready\n"}}},
        {"match": {"prefix": "/"}, "direct_response": {"status": 404}}]),
        t,
    )
}

/// :15020 Prometheus stats: exactly `GET /stats/prometheus` (query string allowed, as
/// Envoy's `path` match ignores it) forwarded to the admin interface, nothing rewritten;
/// anything else 404. The admin's other endpoints (`/config_dump`, `/quitquitquit`,
/// `/healthcheck/fail`, ...) stay on loopback: with a `prefix` match and no normalization,
/// `/stats/prometheus/../../config_dump` reached them.
pub fn stats(t: &Timeouts) -> Value {
    simple_listener(
        "stats",
        15020,
        json!([
        {"match": {"path": "/stats/prometheus", "headers": [{"name": ":method", "string_match": {"exact": "GET"}}]},
         "route": {"cluster": "prometheus_stats"}},
        {"match": {"prefix": "/"}, "direct_response": {"status": 404}}]),
        t,
    )
}

/// A plain HTTP listener with `routes`: strict path normalization, no upgrades, and the
/// header, stream and connection idle timeouts.
fn simple_listener(name: &str, port: u16, routes: Value, t: &Timeouts) -> Value {
    let mut l = json!({
        "name": name,
        "address": {"socket_address": {"address": "0.0.0.0", "port_value": port}},
        "filter_chains": [{"filters": [{"name": "envoy.filters.network.http_connection_manager", "typed_config": {
            "@type": HCM,
            "stat_prefix": name,
            "route_config": {"name": name, "virtual_hosts": [{"name": name, "domains": ["*"], "routes": routes}]},
            "http_filters": [router()]}}]}],
    });
    let hcm = &mut l["filter_chains"][0]["filters"][0]["typed_config"];
    hardening::normalize_paths_strict(hcm);
    hardening::http_timeouts(hcm, t, t.connection_idle);
    l
}

#[cfg(test)]
mod access_log_tests {
    use super::*;

    #[test]
    fn the_access_log_is_written_only_when_asked_for() {
        for on in [false, true] {
            let o = Options {
                access_log: on,
                ..Options::default()
            };
            let l = main_internal(&o, PathNormalization::Base);
            let hcm = &l["filter_chains"][0]["filters"][0]["typed_config"];
            assert_eq!(hcm["access_log"].is_array(), on, "{hcm}");
            // Everything else is the same listener.
            assert_eq!(hcm["stat_prefix"], MAIN_INTERNAL);
            assert!(hcm["http_filters"].is_array());
        }
    }
}

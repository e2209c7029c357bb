//! The protections every generated HTTP connection manager carries: path normalization per
//! MeshConfig, websocket-only upgrades, and the timeouts of [`Timeouts`] as Envoy fields.

use std::time::Duration;

use serde_json::{json, Value};
use waypoint_core::mesh::PathNormalization;

use waypoint_hbone::timeouts::Timeouts;

/// A proto3 JSON duration (`10s`, `1.5s`, `0s`; Envoy reads `0s` as "disabled" for every
/// timeout set here).
pub fn duration(d: Duration) -> String {
    let nanos = d.subsec_nanos();
    if nanos == 0 {
        return format!("{}s", d.as_secs());
    }
    let frac = format!("{nanos:09}");
    format!("{}.{}s", d.as_secs(), frac.trim_end_matches('0'))
}

/// MeshConfig `pathNormalization` onto an HCM, exactly as istiod maps it
/// (`ListenerBuilder.buildHTTPConnectionManager`): escaped slashes `KEEP_UNCHANGED` unless
/// `DECODE_AND_MERGE_SLASHES`; `NONE` turns `normalize_path` off explicitly. The HCM rewrites
/// `:path` before any filter, so the module, the route match and the upstream all see the
/// same normalised path.
pub fn normalize_paths(hcm: &mut Value, n: PathNormalization) {
    let (normalize, merge, escaped) = match n {
        PathNormalization::None => (false, false, "KEEP_UNCHANGED"),
        PathNormalization::Base => (true, false, "KEEP_UNCHANGED"),
        PathNormalization::MergeSlashes => (true, true, "KEEP_UNCHANGED"),
        PathNormalization::DecodeAndMergeSlashes => (true, true, "UNESCAPE_AND_FORWARD"),
    };
    hcm["normalize_path"] = json!(normalize);
    hcm["merge_slashes"] = json!(merge);
    hcm["path_with_escaped_slashes_action"] = json!(escaped);
}

/// The strict normalization of the metrics and readiness listeners, which serve one exact
/// path each: `..` and `//` resolved, and any `%2F` / `%5C` rejected with 400, so no spelling
/// of another admin path can reach a route.
pub fn normalize_paths_strict(hcm: &mut Value) {
    hcm["normalize_path"] = json!(true);
    hcm["merge_slashes"] = json!(true);
    hcm["path_with_escaped_slashes_action"] = json!("REJECT_REQUEST");
}

/// Upgrades an L7 listener accepts: websocket only (Istio's default `upgrade_configs`). Envoy
/// answers any other `Upgrade` with 403, except `h2c`, which its HTTP/1 codec strips (the
/// request then goes on as plain HTTP/1.1).
pub fn websocket_only(hcm: &mut Value) {
    hcm["upgrade_configs"] = json!([{"upgrade_type": "websocket"}]);
}

/// Stream and connection timeouts of an HCM: `stream_idle_timeout`,
/// `request_headers_timeout`, `request_timeout` from `t`, and the connection idle timeout
/// (`common_http_protocol_options.idle_timeout`: no open stream for this long) `idle`.
pub fn http_timeouts(hcm: &mut Value, t: &Timeouts, idle: Duration) {
    hcm["stream_idle_timeout"] = json!(duration(t.stream_idle));
    hcm["request_headers_timeout"] = json!(duration(t.request_headers));
    hcm["request_timeout"] = json!(duration(t.request));
    hcm["common_http_protocol_options"] = json!({"idle_timeout": duration(idle)});
}

/// The connection idle timeout of the HBONE (:15008) HCM. Envoy has no HTTP/2 preface timer
/// (a TLS client that never sends the preface stays open until the idle timeout: seen with
/// Envoy 1.40, which sends nothing and starts no keepalive before the preface), and the idle
/// timer also runs before the first stream: so the preface bound is the idle timeout, and an
/// HBONE connection without an open tunnel is drained (GOAWAY) after the shorter of the two.
pub fn hbone_idle(t: &Timeouts) -> Duration {
    match (
        Timeouts::enabled(t.preface),
        Timeouts::enabled(t.connection_idle),
    ) {
        (Some(p), Some(c)) => p.min(c),
        (Some(d), None) | (None, Some(d)) => d,
        (None, None) => Duration::ZERO,
    }
}

/// Upstream pool idle timeout of an HTTP cluster (`common_http_protocol_options.idle_timeout`
/// in its `HttpProtocolOptions`; a cluster without any gets HTTP/1.1, Envoy's default).
pub fn pool_idle(cluster: &mut Value, t: &Timeouts) {
    let opts = &mut cluster["typed_extension_protocol_options"][HTTP_PROTOCOL_OPTIONS];
    if opts.is_null() {
        *opts = json!({
            "@type": format!("type.googleapis.com/{HTTP_PROTOCOL_OPTIONS}"),
            "explicit_http_config": {"http_protocol_options": {}}});
    }
    // A DestinationRule's `http.idleTimeout` (set with the cluster) wins.
    let common = &mut opts["common_http_protocol_options"];
    if common["idle_timeout"].is_null() {
        common["idle_timeout"] = json!(duration(t.upstream_idle));
    }
}

const HTTP_PROTOCOL_OPTIONS: &str = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_proto3_json() {
        for (d, want) in [
            (Duration::ZERO, "0s"),
            (Duration::from_secs(300), "300s"),
            (Duration::from_millis(1500), "1.5s"),
            (Duration::from_millis(250), "0.25s"),
            (Duration::from_nanos(1), "0.000000001s"),
        ] {
            assert_eq!(duration(d), want);
        }
    }

    #[test]
    fn path_normalization_follows_istiod() {
        for (n, normalize, merge, escaped) in [
            (PathNormalization::None, false, false, "KEEP_UNCHANGED"),
            (PathNormalization::Base, true, false, "KEEP_UNCHANGED"),
            (
                PathNormalization::MergeSlashes,
                true,
                true,
                "KEEP_UNCHANGED",
            ),
            (
                PathNormalization::DecodeAndMergeSlashes,
                true,
                true,
                "UNESCAPE_AND_FORWARD",
            ),
        ] {
            let mut hcm = json!({});
            normalize_paths(&mut hcm, n);
            assert_eq!(hcm["normalize_path"], normalize, "{n:?}");
            assert_eq!(hcm["merge_slashes"], merge, "{n:?}");
            assert_eq!(hcm["path_with_escaped_slashes_action"], escaped, "{n:?}");
        }
    }

    #[test]
    fn pool_idle_keeps_the_cluster_protocol() {
        let t = Timeouts {
            upstream_idle: Duration::from_secs(7),
            ..Timeouts::default()
        };
        let mut plain = json!({"name": "a"});
        pool_idle(&mut plain, &t);
        let o = &plain["typed_extension_protocol_options"][HTTP_PROTOCOL_OPTIONS];
        assert_eq!(
            o["explicit_http_config"],
            json!({"http_protocol_options": {}})
        );
        assert_eq!(o["common_http_protocol_options"]["idle_timeout"], "7s");
        let mut h2 = json!({"name": "b", "typed_extension_protocol_options": {HTTP_PROTOCOL_OPTIONS: {
            "@type": "x", "explicit_http_config": {"http2_protocol_options": {}}}}});
        pool_idle(&mut h2, &t);
        let o = &h2["typed_extension_protocol_options"][HTTP_PROTOCOL_OPTIONS];
        assert_eq!(
            o["explicit_http_config"],
            json!({"http2_protocol_options": {}})
        );
        assert_eq!(o["common_http_protocol_options"]["idle_timeout"], "7s");
    }

    #[test]
    fn hbone_idle_is_the_shorter_enabled_bound() {
        let mut t = Timeouts::default();
        assert_eq!(hbone_idle(&t), Duration::from_secs(10));
        t.preface = Duration::ZERO;
        assert_eq!(hbone_idle(&t), Duration::from_secs(3600));
        t.connection_idle = Duration::ZERO;
        assert_eq!(hbone_idle(&t), Duration::ZERO);
        t.preface = Duration::from_secs(2);
        assert_eq!(hbone_idle(&t), Duration::from_secs(2));
    }
}

#[cfg(test)]
mod generated_tests {
    //! The whole generated bootstrap (and its xDS split) carries the protections.

    use serde_json::Value;
    use waypoint_core::{BuildOptions, Snapshot};

    use super::super::{generate, Options};
    use super::*;
    use crate::xds::proto::{decode, encode, LISTENER};

    fn snapshot(normalization: &str) -> Snapshot {
        let yaml = format!(
            "{}---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: istio, namespace: istio-system}}\n\
             data:\n  mesh: |-\n    pathNormalization:\n      normalization: {normalization}\n",
            waypoint_core::waypoint_gateway_yaml!("default")
        );
        let loaded = waypoint_loader::load_text(&yaml, "test", "default");
        assert!(loaded.errors.is_empty(), "{:?}", loaded.errors);
        let (snapshot, diags) = Snapshot::build(&loaded.resources, &BuildOptions::default());
        assert!(diags.errors.is_empty(), "{:?}", diags.errors);
        snapshot
    }

    fn listener<'a>(boot: &'a Value, name: &str) -> &'a Value {
        boot["static_resources"]["listeners"]
            .as_array()
            .and_then(|ls| ls.iter().find(|l| l["name"] == name))
            .unwrap_or_else(|| panic!("no listener {name}"))
    }

    fn hcm(l: &Value) -> &Value {
        &l["filter_chains"][0]["filters"][0]["typed_config"]
    }

    #[test]
    fn every_hcm_normalizes_and_is_bounded() {
        let t = Timeouts {
            stream_idle: Duration::from_secs(7),
            request_headers: Duration::from_millis(1500),
            connection_idle: Duration::from_secs(60),
            preface: Duration::from_secs(4),
            tls_handshake: Duration::from_secs(3),
            ..Timeouts::default()
        };
        let o = Options {
            timeouts: t,
            ..Options::default()
        };
        let boot = generate(&snapshot("MERGE_SLASHES"), &o);
        let main = hcm(listener(&boot, "main_internal"));
        assert_eq!(main["normalize_path"], true);
        assert_eq!(main["merge_slashes"], true);
        assert_eq!(main["path_with_escaped_slashes_action"], "KEEP_UNCHANGED");
        assert_eq!(
            main["upgrade_configs"],
            json!([{"upgrade_type": "websocket"}])
        );
        assert_eq!(main["stream_idle_timeout"], "7s");
        assert_eq!(main["request_headers_timeout"], "1.5s");
        assert_eq!(main["common_http_protocol_options"]["idle_timeout"], "60s");
        let term_l = listener(&boot, "connect_terminate");
        let term = hcm(term_l);
        assert_eq!(term["stream_idle_timeout"], "7s", "no longer 0s");
        // The preface bound (4 s) is the idle timeout of the HBONE connection.
        assert_eq!(term["common_http_protocol_options"]["idle_timeout"], "4s");
        assert_eq!(
            term_l["filter_chains"][0]["transport_socket_connect_timeout"],
            "3s"
        );
        assert_eq!(
            term_l["filter_chains"][0]["filter_chain_match"]["application_protocols"],
            json!(["h2"])
        );
        for name in ["stats", "readiness"] {
            let h = hcm(listener(&boot, name));
            assert_eq!(h["normalize_path"], true, "{name}");
            assert_eq!(
                h["path_with_escaped_slashes_action"], "REJECT_REQUEST",
                "{name}"
            );
            assert!(h.get("upgrade_configs").is_none(), "{name}");
            assert_eq!(h["request_headers_timeout"], "1.5s", "{name}");
        }
        let stats = &hcm(listener(&boot, "stats"))["route_config"]["virtual_hosts"][0]["routes"];
        assert_eq!(stats[0]["match"]["path"], "/stats/prometheus");
        assert_eq!(stats[0]["route"]["cluster"], "prometheus_stats");
        // Nothing else reaches the admin cluster.
        let text = boot.to_string();
        assert_eq!(text.matches("\"cluster\":\"prometheus_stats\"").count(), 1);
        assert_eq!(
            boot["admin"]["address"]["socket_address"]["address"],
            "127.0.0.1"
        );
        for (name, l) in [("main_internal", main), ("connect_terminate", term)] {
            let wrapped = json!({"name": name, "filter_chains": [{"filters": [
                {"name": "hcm", "typed_config": l}]}]});
            encode(LISTENER, name, &wrapped).expect("encodes as an Envoy Listener");
        }
    }

    #[test]
    fn decode_and_merge_slashes_unescapes_and_none_turns_normalization_off() {
        let boot = generate(&snapshot("DECODE_AND_MERGE_SLASHES"), &Options::default());
        let main = hcm(listener(&boot, "main_internal"));
        assert_eq!(
            main["path_with_escaped_slashes_action"],
            "UNESCAPE_AND_FORWARD"
        );
        let boot = generate(&snapshot("NONE"), &Options::default());
        let main = hcm(listener(&boot, "main_internal"));
        assert_eq!(main["normalize_path"], false);
        // The metrics listener keeps its own strict normalization whatever the mesh says.
        assert_eq!(hcm(listener(&boot, "stats"))["normalize_path"], true);
    }

    /// `waypoint xds` serves the same listeners: the split keeps every field.
    #[test]
    fn xds_listeners_carry_the_same_protections() {
        let source = crate::xds::Source {
            inputs: super::super::Inputs {
                timeouts: Timeouts {
                    stream_idle: Duration::from_secs(9),
                    ..Timeouts::default()
                },
                ..super::super::Inputs::bookinfo_example()
            },
            rebind: Default::default(),
            extra_listeners: Vec::new(),
        };
        let snap = source.build(None).expect("snapshot");
        let body = &snap
            .get(LISTENER, "main_internal")
            .expect("main_internal")
            .body;
        let l = decode(LISTENER, body).expect("decode");
        let text = l.to_string();
        for want in [
            "\"normalizePath\":true",
            "\"pathWithEscapedSlashesAction\":\"KEEP_UNCHANGED\"",
            "\"upgradeType\":\"websocket\"",
            "\"streamIdleTimeout\":\"9s\"",
        ] {
            assert!(text.contains(want), "{want} missing from {text}");
        }
        let body = &snap
            .get(LISTENER, "connect_terminate")
            .expect("terminate")
            .body;
        let text = decode(LISTENER, body).expect("decode").to_string();
        assert!(text.contains("transportSocketConnectTimeout"), "{text}");
        assert!(text.contains("\"applicationProtocols\":[\"h2\"]"), "{text}");
    }
}

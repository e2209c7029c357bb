//! The Telemetry API in Envoy terms: the access log on or off, and the L7 listener's native
//! tracing (`envoy.tracers.opentelemetry` to a cluster for the collector, `random_sampling`,
//! custom tags), as istiod configures a waypoint's connection manager.

use std::net::IpAddr;

use serde_json::{json, Value};
use waypoint_core::telemetry::{TagValue, TracingPolicy};
use waypoint_core::Snapshot;

use super::Options;

const OTEL_CONFIG: &str = "type.googleapis.com/envoy.config.trace.v3.OpenTelemetryConfig";
const PARENT_BASED: &str =
    "type.googleapis.com/envoy.extensions.tracers.opentelemetry.samplers.v3.ParentBasedSamplerConfig";
const RATIO: &str =
    "type.googleapis.com/envoy.extensions.tracers.opentelemetry.samplers.v3.TraceIdRatioBasedSamplerConfig";
const HTTP_OPTIONS: &str =
    "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions";

/// `o` with the access log the config decides: the Telemetry API when it says anything, else
/// MeshConfig `accessLogFile` or the `--access-log` flag.
pub fn effective_options(o: &Options, snapshot: &Snapshot) -> Options {
    let legacy = o.access_log || snapshot.mesh().access_log_file;
    Options {
        access_log: snapshot.telemetry.access_log_on(legacy),
        ..o.clone()
    }
}

/// The collector cluster's name for a provider.
pub fn cluster_name(t: &TracingPolicy) -> String {
    format!(
        "tracing|{}|{}:{}",
        t.provider.name, t.provider.host, t.provider.port
    )
}

/// Istio's tracing service name for a waypoint: `<gateway>.<namespace>`.
fn service_name(snapshot: &Snapshot) -> String {
    snapshot.waypoint.as_ref().map_or_else(
        || "waypoint".to_string(),
        |w| format!("{}.{}", w.name, w.namespace),
    )
}

/// Add the HCM `tracing` block to the L7 listener when tracing is on.
pub fn wire(main: &mut Value, snapshot: &Snapshot) {
    let Some(t) = &snapshot.telemetry.tracing else {
        return;
    };
    let custom_tags: Vec<Value> = t
        .custom_tags
        .iter()
        .map(|c| match &c.value {
            TagValue::Literal(v) => json!({"tag": c.tag, "literal": {"value": v}}),
            TagValue::Header { name, default } => json!({"tag": c.tag,
                "request_header": {"name": name, "default_value": default.clone().unwrap_or_default()}}),
            TagValue::Environment { name, default } => json!({"tag": c.tag,
                "environment": {"name": name, "default_value": default.clone().unwrap_or_default()}}),
        })
        .collect();
    // Envoy 1.40's connection manager applies its own sampling decision (`random_sampling`)
    // over the tracer's unless the tracer has a sampler; a parent-based sampler keeps a
    // caller's decision (`traceparent` sampled flag) and draws the percentage for the rest.
    let per_million = (t.sampling_percent * 10_000.0)
        .round()
        .clamp(0.0, 1_000_000.0) as u32;
    let sampler = json!({"name": "envoy.tracers.opentelemetry.samplers.parent_based", "typed_config": {
        "@type": PARENT_BASED,
        "wrapped_sampler": {"name": "envoy.tracers.opentelemetry.samplers.trace_id_ratio_based", "typed_config": {
            "@type": RATIO,
            "sampling_percentage": {"numerator": per_million, "denominator": "MILLION"}}}}});
    let hcm = &mut main["filter_chains"][0]["filters"][0]["typed_config"];
    hcm["tracing"] = json!({
        "provider": {"name": "envoy.tracers.opentelemetry", "typed_config": {
            "@type": OTEL_CONFIG,
            // The cluster name is not a valid `:authority` (HTTP/2 servers reset the stream):
            // the collector is addressed by its host, as Istio does.
            "grpc_service": {"envoy_grpc": {"cluster_name": cluster_name(t), "authority": t.provider.host},
                             "timeout": "5s"},
            "service_name": service_name(snapshot),
            "sampler": sampler}},
        // Every request reaches the sampler above, which decides.
        "random_sampling": {"value": 100.0},
        "max_path_tag_length": t.provider.max_tag_length,
        "custom_tags": custom_tags,
    });
}

/// The collector's cluster: HTTP/2 (gRPC) to `host:port`, by DNS unless an IP literal.
pub fn clusters(snapshot: &Snapshot) -> Vec<Value> {
    let Some(t) = &snapshot.telemetry.tracing else {
        return Vec::new();
    };
    let name = cluster_name(t);
    let kind = if t.provider.host.parse::<IpAddr>().is_ok() {
        "STATIC"
    } else {
        "STRICT_DNS"
    };
    vec![json!({
        "name": name,
        "type": kind,
        "connect_timeout": "5s",
        "load_assignment": {"cluster_name": name, "endpoints": [{"lb_endpoints": [{"endpoint": {
            "address": {"socket_address": {"address": t.provider.host, "port_value": t.provider.port}}}}]}]},
        "typed_extension_protocol_options": {"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
            "@type": HTTP_OPTIONS,
            "explicit_http_config": {"http2_protocol_options": {}}}},
    })]
}

#[cfg(test)]
mod tests {
    use super::*;
    use waypoint_core::resource::parse_manifests;
    use waypoint_core::BuildOptions;

    fn snapshot(extra: &str) -> Snapshot {
        let yaml = format!(
            "{}---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: istio, namespace: istio-system}}\ndata:\n  mesh: |-\n    extensionProviders:\n    - name: otel\n      opentelemetry: {{service: 127.0.0.1, port: 4317}}\n{extra}",
            waypoint_core::waypoint_gateway_yaml!("default"),
        );
        let (rs, errs) = parse_manifests(&yaml, "t.yaml", "default", 0);
        assert!(errs.is_empty(), "{errs:?}");
        let (s, d) = Snapshot::build(&rs, &BuildOptions::default());
        assert!(d.errors.is_empty(), "{:?}", d.errors);
        s
    }

    fn main_hcm(boot: &Value) -> Value {
        boot["static_resources"]["listeners"]
            .as_array()
            .and_then(|l| l.iter().find(|l| l["name"] == super::super::MAIN_INTERNAL))
            .map(|l| l["filter_chains"][0]["filters"][0]["typed_config"].clone())
            .unwrap_or(Value::Null)
    }

    const TRACING: &str = "---\napiVersion: telemetry.istio.io/v1\nkind: Telemetry\nmetadata: {name: mesh-default, namespace: istio-system}\nspec:\n  tracing:\n  - providers: [{name: otel}]\n    randomSamplingPercentage: 25\n    customTags:\n      team: {literal: {value: shop}}\n";

    #[test]
    fn tracing_gets_the_opentelemetry_tracer_and_its_cluster() {
        let s = snapshot(TRACING);
        let boot = super::super::generate(&s, &Options::default());
        let hcm = main_hcm(&boot);
        let tr = &hcm["tracing"];
        assert_eq!(tr["provider"]["name"], "envoy.tracers.opentelemetry");
        let ratio = &tr["provider"]["typed_config"]["sampler"]["typed_config"]["wrapped_sampler"];
        assert_eq!(
            ratio["typed_config"]["sampling_percentage"]["numerator"],
            250_000
        );
        assert_eq!(tr["custom_tags"][0]["literal"]["value"], "shop");
        let cluster = tr["provider"]["typed_config"]["grpc_service"]["envoy_grpc"]["cluster_name"]
            .as_str()
            .unwrap_or("");
        let clusters = boot["static_resources"]["clusters"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let c = clusters
            .iter()
            .find(|c| c["name"] == cluster)
            .expect("collector cluster");
        assert_eq!(c["type"], "STATIC");
        assert_eq!(
            c["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]
                ["socket_address"]["port_value"],
            4317
        );
    }

    #[test]
    fn the_tracing_listener_and_cluster_encode_for_xds() {
        use crate::xds::proto::{encode, CLUSTER, LISTENER};
        let boot = super::super::generate(&snapshot(TRACING), &Options::default());
        for (kind, list) in [(LISTENER, "listeners"), (CLUSTER, "clusters")] {
            for r in boot["static_resources"][list]
                .as_array()
                .into_iter()
                .flatten()
            {
                let name = r["name"].as_str().unwrap_or("");
                if let Err(e) = encode(kind, name, r) {
                    panic!("{name}: {e}");
                }
            }
        }
    }

    #[test]
    fn without_tracing_there_is_no_tracer() {
        let s = snapshot("");
        let boot = super::super::generate(&s, &Options::default());
        assert!(main_hcm(&boot)["tracing"].is_null());
    }

    #[test]
    fn the_telemetry_api_turns_the_access_log_off_over_the_flag() {
        let off = "---\napiVersion: telemetry.istio.io/v1\nkind: Telemetry\nmetadata: {name: mesh-default, namespace: istio-system}\nspec:\n  accessLogging:\n  - disabled: true\n    providers: [{name: envoy}]\n";
        let o = Options {
            access_log: true,
            ..Options::default()
        };
        let boot = super::super::generate(&snapshot(off), &o);
        assert!(main_hcm(&boot)["access_log"].is_null());
        let boot = super::super::generate(&snapshot(""), &o);
        assert!(main_hcm(&boot)["access_log"].is_array());
    }
}

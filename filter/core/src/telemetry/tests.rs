//! Tests of the Telemetry merge rules: levels (mesh, namespace, waypoint), oldest wins,
//! field-wise tracing overrides, access-log provider scoping and `disabled`, and errors.

use super::*;
use crate::error::Diagnostics;
use crate::mesh::mesh_from_resources;
use crate::resource::parse_manifests;

const MESH: &str = "apiVersion: v1
kind: ConfigMap
metadata: {name: istio, namespace: istio-system}
data:
  mesh: |-
    extensionProviders:
    - name: otel
      opentelemetry: {service: observability/collector.observability.svc.cluster.local, port: 4317}
    - name: otel2
      opentelemetry: {service: 127.0.0.1, port: 4318}
    - name: zipkin
      zipkin: {service: zipkin.istio-system.svc.cluster.local, port: 9411}
    - name: envoy
      envoyFileAccessLog: {path: /dev/stdout}
    - name: other-log
      envoyFileAccessLog: {path: /dev/stderr}
";

fn waypoint() -> Waypoint {
    Waypoint {
        namespace: "shop".into(),
        name: "waypoint".into(),
        class: "istio-waypoint".into(),
    }
}

fn telemetry(ns: &str, name: &str, ts: &str, spec: &str) -> String {
    let spec: String = spec.lines().map(|l| format!("  {l}\n")).collect();
    format!(
        "---\napiVersion: telemetry.istio.io/v1\nkind: Telemetry\nmetadata: {{name: {name}, \
         namespace: {ns}, creationTimestamp: \"{ts}\"}}\nspec:\n{spec}"
    )
}

fn compile_with(mesh: &str, docs: &[String]) -> (TelemetryPolicy, Diagnostics) {
    let yaml = format!("{mesh}{}", docs.concat());
    let (rs, errs) = parse_manifests(&yaml, "t.yaml", "default", 0);
    assert!(errs.is_empty(), "{errs:?}");
    let mut d = Diagnostics::default();
    let m = mesh_from_resources(&rs, "istio-system", &mut d);
    assert!(d.errors.is_empty(), "{:?}", d.errors);
    let p = compile(&rs, Some(&waypoint()), &m, "istio-system", &mut d);
    (p, d)
}

fn compile_docs(docs: &[String]) -> (TelemetryPolicy, Diagnostics) {
    compile_with(MESH, docs)
}

const T0: &str = "2024-01-01T00:00:00Z";
const T1: &str = "2024-02-01T00:00:00Z";

#[test]
fn nothing_configured_leaves_both_to_the_legacy_switches() {
    let (p, d) = compile_docs(&[]);
    assert_eq!(p, TelemetryPolicy::default());
    assert!(d.warnings.is_empty(), "{:?}", d.warnings);
    assert!(p.access_log_on(true));
    assert!(!p.access_log_on(false));
}

#[test]
fn mesh_wide_tracing_with_the_default_sampling() {
    let (p, _) = compile_docs(&[telemetry(
        "istio-system",
        "mesh-default",
        T0,
        "tracing:\n- providers: [{name: otel}]",
    )]);
    let t = p.tracing.expect("tracing on");
    assert_eq!(t.provider.name, "otel");
    assert_eq!(t.provider.host, "collector.observability.svc.cluster.local");
    assert_eq!(t.provider.port, 4317);
    assert_eq!(t.sampling_percent, DEFAULT_SAMPLING_PERCENT);
    assert_eq!(p.applied.len(), 1);
}

#[test]
fn more_specific_levels_override_field_by_field() {
    let (p, _) = compile_docs(&[
        telemetry(
            "istio-system",
            "mesh",
            T0,
            "tracing:\n- providers: [{name: otel}]\n  randomSamplingPercentage: 5\n  customTags:\n    team: {literal: {value: a}}",
        ),
        telemetry(
            "shop",
            "ns",
            T0,
            "tracing:\n- randomSamplingPercentage: 50",
        ),
        telemetry(
            "shop",
            "wp",
            T0,
            "targetRefs: [{kind: Gateway, group: gateway.networking.k8s.io, name: waypoint}]\ntracing:\n- providers: [{name: otel2}]",
        ),
    ]);
    let t = p.tracing.expect("tracing on");
    // The waypoint level picked the provider; the namespace level the sampling; the mesh
    // level's custom tags are inherited (nothing later set any).
    assert_eq!(t.provider.name, "otel2");
    assert_eq!(t.sampling_percent, 50.0);
    assert_eq!(
        t.custom_tags,
        vec![CustomTag {
            tag: "team".into(),
            value: TagValue::Literal("a".into())
        }]
    );
    let names: Vec<&str> = p.applied.iter().map(|i| i.name.as_str()).collect();
    assert_eq!(names, ["mesh", "ns", "wp"]);
}

#[test]
fn custom_tags_are_replaced_as_a_whole() {
    let (p, _) = compile_docs(&[
        telemetry(
            "istio-system",
            "mesh",
            T0,
            "tracing:\n- providers: [{name: otel}]\n  customTags:\n    a: {literal: {value: x}}\n    b: {literal: {value: y}}",
        ),
        telemetry(
            "shop",
            "ns",
            T0,
            "tracing:\n- customTags:\n    h: {header: {name: X-User, defaultValue: none}}\n    e: {environment: {name: POD}}",
        ),
    ]);
    let tags = p.tracing.expect("on").custom_tags;
    assert_eq!(
        tags,
        vec![
            CustomTag {
                tag: "e".into(),
                value: TagValue::Environment {
                    name: "POD".into(),
                    default: None
                }
            },
            CustomTag {
                tag: "h".into(),
                value: TagValue::Header {
                    name: "x-user".into(),
                    default: Some("none".into())
                }
            },
        ]
    );
}

#[test]
fn disable_span_reporting_turns_tracing_off_and_a_later_level_back_on() {
    let mesh = telemetry(
        "istio-system",
        "mesh",
        T0,
        "tracing:\n- providers: [{name: otel}]\n  disableSpanReporting: true",
    );
    let (p, _) = compile_docs(std::slice::from_ref(&mesh));
    assert_eq!(p.tracing, None);
    let (p, _) = compile_docs(&[
        mesh,
        telemetry("shop", "ns", T0, "tracing:\n- disableSpanReporting: false"),
    ]);
    assert_eq!(p.tracing.map(|t| t.provider.name), Some("otel".into()));
}

#[test]
fn client_only_entries_do_not_apply_to_the_waypoint() {
    let (p, _) = compile_docs(&[telemetry(
        "istio-system",
        "mesh",
        T0,
        "tracing:\n- providers: [{name: otel}]\n  match: {mode: CLIENT}",
    )]);
    assert_eq!(p.tracing, None);
}

#[test]
fn the_oldest_telemetry_of_a_level_wins_and_the_other_is_reported() {
    let (p, d) = compile_docs(&[
        telemetry(
            "shop",
            "newer",
            T1,
            "tracing:\n- providers: [{name: otel2}]",
        ),
        telemetry("shop", "older", T0, "tracing:\n- providers: [{name: otel}]"),
    ]);
    assert_eq!(p.tracing.map(|t| t.provider.name), Some("otel".into()));
    assert!(
        d.warnings
            .iter()
            .any(|w| w.name == "newer" && w.message.contains("Telemetry/shop/older")),
        "{:?}",
        d.warnings
    );
}

#[test]
fn telemetries_of_other_namespaces_targets_and_selectors_do_not_apply() {
    let (p, _) = compile_docs(&[
        telemetry("other", "ns", T0, "tracing:\n- providers: [{name: otel}]"),
        telemetry(
            "shop",
            "other-gw",
            T0,
            "targetRefs: [{kind: Gateway, group: gateway.networking.k8s.io, name: other}]\ntracing:\n- providers: [{name: otel}]",
        ),
        telemetry(
            "shop",
            "sel",
            T0,
            "selector: {matchLabels: {app: x}}\ntracing:\n- providers: [{name: otel}]",
        ),
    ]);
    assert_eq!(p, TelemetryPolicy::default());
}

#[test]
fn access_logging_disabled_at_the_waypoint_overrides_the_mesh() {
    let mesh = telemetry(
        "istio-system",
        "mesh",
        T0,
        "accessLogging:\n- providers: [{name: envoy}]",
    );
    let (p, _) = compile_docs(std::slice::from_ref(&mesh));
    assert_eq!(p.access_log, Some(true));
    let (p, _) = compile_docs(&[
        mesh.clone(),
        telemetry(
            "shop",
            "wp",
            T0,
            "targetRef: {kind: Gateway, group: gateway.networking.k8s.io, name: waypoint}\naccessLogging:\n- disabled: true",
        ),
    ]);
    assert_eq!(p.access_log, Some(false));
    assert!(!p.access_log_on(true));
    // A namespace that names a different provider replaces the set in scope.
    let (p, _) = compile_docs(&[
        mesh,
        telemetry(
            "shop",
            "ns",
            T0,
            "accessLogging:\n- providers: [{name: other-log}]",
        ),
    ]);
    assert_eq!(p.access_log, Some(true));
}

#[test]
fn default_providers_apply_without_telemetry() {
    let mesh = MESH.replace(
        "    extensionProviders:\n",
        "    defaultProviders: {tracing: [otel], accessLogging: [envoy]}\n    extensionProviders:\n",
    );
    let (p, _) = compile_with(&mesh, &[]);
    assert_eq!(p.access_log, Some(true));
    assert_eq!(p.tracing.map(|t| t.sampling_percent), Some(1.0));
    // And a Telemetry disabling the default log provider turns the log off.
    let (p, _) = compile_with(
        &mesh,
        &[telemetry(
            "shop",
            "ns",
            T0,
            "accessLogging:\n- disabled: true",
        )],
    );
    assert_eq!(p.access_log, Some(false));
}

#[test]
fn a_non_opentelemetry_tracing_provider_is_a_warning_naming_the_field() {
    let (p, d) = compile_docs(&[telemetry(
        "shop",
        "ns",
        T0,
        "tracing:\n- providers: [{name: zipkin}]",
    )]);
    assert_eq!(p.tracing, None);
    let w = d
        .warnings
        .iter()
        .find(|w| w.name == "ns")
        .expect("a warning");
    assert_eq!(w.field, "spec.tracing[0].providers[0].name");
    assert!(w.message.contains("zipkin"), "{}", w.message);
}

#[test]
fn a_bad_telemetry_is_an_error_and_leaves_the_others_in_force() {
    let (p, d) = compile_docs(&[
        telemetry(
            "istio-system",
            "mesh",
            T0,
            "tracing:\n- providers: [{name: otel}]\n  randomSamplingPercentage: 10",
        ),
        telemetry(
            "shop",
            "bad",
            T0,
            "tracing:\n- randomSamplingPercentage: 150",
        ),
        telemetry(
            "shop",
            "bad-tag",
            T0,
            "targetRefs: [{kind: Gateway, group: gateway.networking.k8s.io, name: waypoint}]\ntracing:\n- customTags:\n    x: {literal: {value: a}, header: {name: b}}",
        ),
        telemetry("shop", "typo", T1, "tracing:\n- sampling: 3"),
    ]);
    assert_eq!(p.tracing.map(|t| t.sampling_percent), Some(10.0));
    let fields: Vec<(&str, &str)> = d
        .errors
        .iter()
        .map(|e| (e.name.as_str(), e.field.as_str()))
        .collect();
    assert!(
        fields.contains(&("bad", "spec.tracing[0].randomSamplingPercentage")),
        "{fields:?}"
    );
    assert!(
        fields.contains(&("bad-tag", "spec.tracing[0].customTags.x")),
        "{fields:?}"
    );
    assert!(
        fields
            .iter()
            .any(|(n, f)| *n == "typo" && f.starts_with("spec.tracing")),
        "{fields:?}"
    );
}

#[test]
fn an_unsupported_target_kind_is_an_error() {
    let (_, d) = compile_docs(&[telemetry(
        "shop",
        "t",
        T0,
        "targetRefs: [{kind: Pod, name: x}]\ntracing:\n- providers: [{name: otel}]",
    )]);
    assert_eq!(
        d.errors.first().map(|e| e.field.as_str()),
        Some("spec.targetRefs[0].kind")
    );
}

#[test]
fn a_bad_opentelemetry_provider_names_its_field() {
    let mesh = MESH.replace("port: 4318", "port: 0");
    let yaml = mesh.to_string();
    let (rs, _) = parse_manifests(&yaml, "t.yaml", "default", 0);
    let mut d = Diagnostics::default();
    let m = mesh_from_resources(&rs, "istio-system", &mut d);
    assert_eq!(m.tracing_providers.len(), 1);
    assert_eq!(
        d.errors.first().map(|e| e.field.as_str()),
        Some("data.mesh.extensionProviders[1].opentelemetry.port")
    );
}

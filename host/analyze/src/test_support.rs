//! Test helpers: a namespace `shop` bound to waypoint `shop/waypoint` with services `reviews`
//! (pods v1, v2) and `ratings`, plus the YAML under test, run through one analyzer.

use waypoint_core::resource::{parse_manifests, RawResource};

use crate::context::{Context, Input};
use crate::message::Message;

/// The mesh every analyzer test starts from.
pub const BASE: &str = concat!(
    waypoint_core::waypoint_gateway_yaml!("shop"),
    r#"apiVersion: v1
kind: Namespace
metadata: {name: shop, labels: {istio.io/use-waypoint: waypoint}}
---
apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: shop}
spec: {clusterIP: 10.96.0.1, ports: [{name: http, port: 9080}], selector: {app: reviews}}
---
apiVersion: v1
kind: Service
metadata: {name: ratings, namespace: shop}
spec: {clusterIP: 10.96.0.2, ports: [{name: http, port: 9080}], selector: {app: ratings}}
---
apiVersion: v1
kind: Pod
metadata: {name: reviews-v1, namespace: shop, labels: {app: reviews, version: v1}}
spec: {serviceAccountName: reviews, containers: [{name: c, image: x}]}
status: {podIP: 10.1.0.1}
---
apiVersion: v1
kind: Pod
metadata: {name: reviews-v2, namespace: shop, labels: {app: reviews, version: v2}}
spec: {serviceAccountName: reviews, containers: [{name: c, image: x}]}
status: {podIP: 10.1.0.2}
---
"#
);

/// `BASE` plus `extra`, parsed (panics on a manifest error: the test text is wrong).
pub fn resources(extra: &str) -> Vec<RawResource> {
    let (rs, errs) = parse_manifests(&format!("{BASE}{extra}"), "test.yaml", "shop", 0);
    assert!(errs.is_empty(), "{errs:?}");
    rs
}

/// The messages one analyzer reports for `BASE` + `extra`, as sorted log lines.
pub fn messages_of(analyzer: fn(&Context<'_>) -> Vec<Message>, extra: &str) -> Vec<String> {
    let rs = resources(extra);
    let ctx = Context::build(&Input {
        resources: &rs,
        load_errors: &[],
        root_namespace: "istio-system",
    });
    let mut out: Vec<String> = analyzer(&ctx).iter().map(ToString::to_string).collect();
    out.sort();
    out
}

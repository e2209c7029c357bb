//! The istioctl-like verbs (`waypoint-ops`: apply, delete, list, status) through the real kube
//! client against the fake API server, and offline on the bookinfo example files.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use waypoint_ops::cluster::{self, ApplyRequest, DeleteRequest};
use waypoint_ops::names::{USE_WAYPOINT, USE_WAYPOINT_NAMESPACE};
use waypoint_ops::{offline, render, summary, Error, Selection, TrafficType, WaypointSpec};
use waypoint_tests::kube::FakeApiServer;
use waypoint_tests::pki::TempDir;

use crate::harness::{client, logs, LIMIT};

const GW: &str = "gateway.networking.k8s.io/v1";
const SEC: &str = "security.istio.io/v1";

/// Namespace `shop` (ambient), its Services `cart` and `pay`, an HTTPRoute on `cart`, a
/// policy on the Gateway `wp`, and an unrelated Namespace `web` with a Service.
fn shop(fake: &FakeApiServer) {
    fake.apply_yaml(
        r#"
apiVersion: v1
kind: Namespace
metadata: {name: shop, labels: {istio.io/dataplane-mode: ambient}}
---
apiVersion: v1
kind: Namespace
metadata: {name: web}
---
apiVersion: v1
kind: Service
metadata: {name: cart, namespace: shop}
spec: {ports: [{port: 80}]}
---
apiVersion: v1
kind: Service
metadata: {name: pay, namespace: shop}
spec: {ports: [{port: 80}]}
---
apiVersion: v1
kind: Service
metadata: {name: front, namespace: web}
spec: {ports: [{port: 80}]}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: cart, namespace: shop}
spec:
  parentRefs: [{group: "", kind: Service, name: cart, port: 80}]
  rules: [{backendRefs: [{name: cart, port: 80}]}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-admin, namespace: shop}
spec:
  targetRefs: [{group: gateway.networking.k8s.io, kind: Gateway, name: wp}]
  action: DENY
  rules: [{to: [{operation: {paths: ["/admin"]}}]}]
"#,
    );
}

fn request(name: &str) -> ApplyRequest {
    ApplyRequest {
        spec: WaypointSpec {
            namespace: "shop".into(),
            name: name.into(),
            class: "waypoint".into(),
            traffic: None,
            revision: None,
        },
        enroll_namespace: false,
        overwrite: false,
        wait: None,
        poll: Duration::from_millis(50),
    }
}

fn selection(namespace: Option<&str>, name: Option<&str>) -> Selection {
    Selection {
        namespace: namespace.map(str::to_string),
        name: name.map(str::to_string),
        classes: vec!["waypoint".to_string()],
    }
}

fn programmed(status: &str, reason: &str) -> Value {
    json!({
        "addresses": [{"type": "Hostname", "value": "wp.shop.svc.cluster.local"}],
        "conditions": [
            {"type": "Accepted", "status": "True", "reason": "Accepted", "message": "",
             "lastTransitionTime": "2026-01-01T00:00:00Z"},
            {"type": "Programmed", "status": status, "reason": reason, "message": "by the test",
             "lastTransitionTime": "2026-01-01T00:00:00Z"}
        ]
    })
}

fn ns_label(fake: &FakeApiServer, ns: &str, key: &str) -> Option<String> {
    fake.get("v1", "Namespace", "", ns)
        .and_then(|n| n["metadata"]["labels"][key].as_str().map(str::to_string))
}

#[tokio::test]
async fn apply_then_list_then_status_then_delete() {
    tokio::time::timeout(LIMIT, async {
        logs();
        let fake = FakeApiServer::start().await;
        shop(&fake);
        let dir = TempDir::new("verbs");
        let c = client(&fake, &dir).await;

        let req = ApplyRequest {
            enroll_namespace: true,
            ..request("wp")
        };
        let report = cluster::apply(&c, &req).await.expect("apply");
        assert!(report.enrolled && !report.replaced && !report.programmed);
        assert!(report.warnings.is_empty(), "shop is ambient: {:?}", report.warnings);
        let gw = fake.get(GW, "Gateway", "shop", "wp").expect("Gateway created");
        assert_eq!(
            gw["spec"],
            json!({"gatewayClassName": "waypoint",
                   "listeners": [{"name": "mesh", "port": 15008, "protocol": "HBONE"}]})
        );
        assert_eq!(gw["metadata"]["generation"], 1);
        assert_eq!(ns_label(&fake, "shop", USE_WAYPOINT).as_deref(), Some("wp"));
        assert_eq!(fake.requests("create", GW, "Gateway"), 1);
        assert_eq!(fake.requests("patch", "v1", "Namespace"), 1);
        assert_eq!(
            report.lines(&req),
            [
                "waypoint shop/wp applied (class waypoint)",
                "namespace shop labelled istio.io/use-waypoint=wp"
            ]
        );

        // An Istio waypoint in another namespace and a Gateway that is no waypoint.
        fake.apply(json!({"apiVersion": GW, "kind": "Gateway",
            "metadata": {"name": "waypoint", "namespace": "web", "labels": {"istio.io/waypoint-for": "all"}},
            "spec": {"gatewayClassName": "istio-waypoint",
                     "listeners": [{"name": "mesh", "port": 15008, "protocol": "HBONE"}]}}));
        fake.apply(json!({"apiVersion": GW, "kind": "Gateway",
            "metadata": {"name": "ingress", "namespace": "shop"},
            "spec": {"gatewayClassName": "nginx", "listeners": []}}));

        let rows = cluster::list(&c, &selection(Some("shop"), None)).await.expect("list");
        assert_eq!(
            render::list(&rows, false),
            "NAME   CLASS      REVISION   TRAFFIC TYPE   PROGRAMMED\n\
             wp     waypoint   default    service        Unknown\n"
        );
        assert!(fake.set_status(GW, "Gateway", "shop", "wp", programmed("True", "Programmed")));
        let rows = cluster::list(&c, &selection(None, None)).await.expect("list -A");
        let text = render::list(&rows, true);
        assert_eq!(
            text,
            "NAMESPACE   NAME       CLASS            REVISION   TRAFFIC TYPE   PROGRAMMED\n\
             shop        wp         waypoint         default    service        True\n\
             web         waypoint   istio-waypoint   default    all            Unknown\n"
        );

        let all = cluster::status(&c, &selection(Some("shop"), None), None)
            .await
            .expect("status");
        assert_eq!(all.len(), 1, "nginx's Gateway is no waypoint");
        let st = &all[0];
        assert!(st.ready());
        assert_eq!(st.addresses, ["wp.shop.svc.cluster.local"]);
        assert_eq!(st.namespaces, ["shop"]);
        let services: Vec<String> = st.services.iter().map(|s| format!("{}/{}", s.namespace, s.name)).collect();
        assert_eq!(services, ["shop/cart", "shop/pay"]);
        let attached: Vec<String> = st
            .routes
            .iter()
            .chain(&st.policies)
            .map(|a| format!("{} {}/{} {}", a.kind.kind(), a.namespace, a.name, a.via))
            .collect();
        assert_eq!(
            attached,
            [
                "HTTPRoute shop/cart parentRef Service shop/cart",
                "AuthorizationPolicy shop/deny-admin targetRef Gateway wp"
            ]
        );
        let text = render::status(&all);
        assert!(text.starts_with("waypoint shop/wp: ready\n"), "{text}");
        assert!(text.contains("certificate: unknown (no --admin address given)"), "{text}");

        let del = DeleteRequest {
            namespace: "shop".into(),
            names: vec!["wp".into()],
            all: false,
            classes: vec!["waypoint".into()],
        };
        let report = cluster::delete(&c, &del).await.expect("delete");
        assert_eq!(report.deleted, ["shop/wp"]);
        assert_eq!(report.unenrolled, ["shop"]);
        assert!(fake.get(GW, "Gateway", "shop", "wp").is_none());
        assert_eq!(ns_label(&fake, "shop", USE_WAYPOINT), None);
        assert_eq!(
            ns_label(&fake, "shop", "istio.io/dataplane-mode").as_deref(),
            Some("ambient"),
            "only the binding labels are removed"
        );
        assert!(fake.get(GW, "Gateway", "shop", "ingress").is_some());
        let rows = cluster::list(&c, &selection(Some("shop"), None)).await.expect("list");
        assert_eq!(render::list(&rows, false), "No waypoints found.\n");
    })
    .await
    .expect("in time");
}

#[tokio::test]
async fn applying_an_existing_waypoint_needs_overwrite_which_replaces_it() {
    tokio::time::timeout(LIMIT, async {
        let fake = FakeApiServer::start().await;
        shop(&fake);
        let dir = TempDir::new("verbs");
        let c = client(&fake, &dir).await;
        cluster::apply(&c, &request("wp"))
            .await
            .expect("first apply");
        fake.set_status(
            GW,
            "Gateway",
            "shop",
            "wp",
            programmed("True", "Programmed"),
        );

        let again = cluster::apply(&c, &request("wp"))
            .await
            .expect_err("an error");
        assert!(matches!(again, Error::AlreadyExists { .. }), "{again:?}");
        let msg = again.to_string();
        assert!(
            msg.contains("Gateway shop/wp already exists (class waypoint)")
                && msg.contains("--overwrite"),
            "{msg}"
        );

        let mut req = request("wp");
        req.overwrite = true;
        req.spec.traffic = Some(TrafficType::All);
        let report = cluster::apply(&c, &req).await.expect("overwrite");
        assert!(report.replaced);
        assert_eq!(
            report.lines(&req),
            ["waypoint shop/wp replaced (class waypoint)"]
        );
        let gw = fake.get(GW, "Gateway", "shop", "wp").expect("gateway");
        assert_eq!(gw["metadata"]["labels"]["istio.io/waypoint-for"], "all");
        assert_eq!(gw["metadata"]["generation"], 1, "the spec did not change");
        assert_eq!(
            gw["status"]["conditions"][1]["status"], "True",
            "status is kept"
        );
        assert_eq!(
            fake.requests("patch", GW, "Gateway"),
            1,
            "server-side apply"
        );

        // --overwrite replaces waypoints only.
        fake.apply(json!({"apiVersion": GW, "kind": "Gateway",
            "metadata": {"name": "ingress", "namespace": "shop"},
            "spec": {"gatewayClassName": "nginx", "listeners": []}}));
        let e = cluster::apply(
            &c,
            &ApplyRequest {
                overwrite: true,
                ..request("ingress")
            },
        )
        .await
        .expect_err("not a waypoint");
        assert_eq!(
            e.to_string(),
            "Gateway shop/ingress is not a waypoint (class nginx); left as it is"
        );
        let ingress = fake.get(GW, "Gateway", "shop", "ingress").expect("kept");
        assert_eq!(ingress["spec"]["gatewayClassName"], "nginx");

        // --overwrite also creates.
        let report = cluster::apply(
            &c,
            &ApplyRequest {
                overwrite: true,
                ..request("fresh")
            },
        )
        .await
        .expect("overwrite creates");
        assert!(!report.replaced);
        assert!(fake.get(GW, "Gateway", "shop", "fresh").is_some());
    })
    .await
    .expect("in time");
}

#[tokio::test]
async fn enrolling_a_namespace_that_uses_another_waypoint_needs_overwrite() {
    tokio::time::timeout(LIMIT, async {
        let fake = FakeApiServer::start().await;
        shop(&fake);
        fake.apply(
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop",
            "labels": {USE_WAYPOINT: "other", USE_WAYPOINT_NAMESPACE: "shared"}}}),
        );
        let dir = TempDir::new("verbs");
        let c = client(&fake, &dir).await;
        let req = ApplyRequest {
            enroll_namespace: true,
            ..request("wp")
        };
        let e = cluster::apply(&c, &req)
            .await
            .expect_err("an error")
            .to_string();
        assert!(
            e.contains("Namespace shop already uses waypoint shared/other")
                && e.contains("--overwrite"),
            "{e}"
        );
        assert!(
            fake.get(GW, "Gateway", "shop", "wp").is_none(),
            "nothing is written when a check fails"
        );

        let report = cluster::apply(
            &c,
            &ApplyRequest {
                overwrite: true,
                ..req.clone()
            },
        )
        .await
        .expect("overwrite");
        assert!(report.enrolled);
        assert!(
            report
                .warnings
                .iter()
                .any(|w| w.contains("not in ambient mode")),
            "{:?}",
            report.warnings
        );
        assert_eq!(ns_label(&fake, "shop", USE_WAYPOINT).as_deref(), Some("wp"));
        assert_eq!(
            ns_label(&fake, "shop", USE_WAYPOINT_NAMESPACE),
            None,
            "a stale waypoint namespace would point elsewhere"
        );

        // Enrolling again for the same waypoint writes nothing.
        let patches = fake.requests("patch", "v1", "Namespace");
        let report = cluster::apply(
            &c,
            &ApplyRequest {
                overwrite: true,
                ..req.clone()
            },
        )
        .await
        .expect("again");
        assert!(!report.enrolled);
        assert_eq!(fake.requests("patch", "v1", "Namespace"), patches);

        let ghost = ApplyRequest {
            spec: WaypointSpec {
                namespace: "ghost".into(),
                ..req.spec.clone()
            },
            ..req.clone()
        };
        let e = cluster::apply(&c, &ghost)
            .await
            .expect_err("an error")
            .to_string();
        assert_eq!(e, "Namespace ghost not found");
        let ghost = ApplyRequest {
            enroll_namespace: false,
            ..ghost
        };
        let e = cluster::apply(&c, &ghost)
            .await
            .expect_err("an error")
            .to_string();
        assert_eq!(
            e, "Namespace ghost not found",
            "the API server's 404 on create"
        );
    })
    .await
    .expect("in time");
}

#[tokio::test]
async fn wait_returns_once_programmed_and_times_out_naming_the_condition() {
    tokio::time::timeout(LIMIT, async {
        let fake = std::sync::Arc::new(FakeApiServer::start().await);
        shop(&fake);
        let dir = TempDir::new("verbs");
        let c = client(&fake, &dir).await;

        // A "controller" that marks the Gateway Programmed 300 ms after it appears.
        let f = fake.clone();
        let controller = tokio::spawn(async move {
            while f.get(GW, "Gateway", "shop", "wp").is_none() {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
            f.set_status(
                GW,
                "Gateway",
                "shop",
                "wp",
                programmed("True", "Programmed"),
            );
        });
        let start = Instant::now();
        let req = ApplyRequest {
            wait: Some(Duration::from_secs(20)),
            enroll_namespace: true,
            ..request("wp")
        };
        let report = cluster::apply(&c, &req).await.expect("programmed in time");
        assert!(report.programmed && report.enrolled);
        assert!(start.elapsed() >= Duration::from_millis(300));
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{:?}",
            start.elapsed()
        );
        assert_eq!(
            report.lines(&req)[1],
            "waypoint shop/wp is ready (Programmed)"
        );
        controller.await.expect("controller");

        // Never Programmed: the error names the Gateway and the last condition seen.
        let f = fake.clone();
        let pending = tokio::spawn(async move {
            while f.get(GW, "Gateway", "shop", "slow").is_none() {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            f.set_status(
                GW,
                "Gateway",
                "shop",
                "slow",
                programmed("False", "Pending"),
            );
        });
        let req = ApplyRequest {
            wait: Some(Duration::from_millis(600)),
            enroll_namespace: true,
            overwrite: true,
            ..request("slow")
        };
        let start = Instant::now();
        let e = cluster::apply(&c, &req).await.expect_err("an error");
        assert!(start.elapsed() >= Duration::from_millis(600));
        assert_eq!(
            e.to_string(),
            "waypoint shop/slow not Programmed after 0.6s: Programmed=False (Pending: by the test)"
        );
        assert_eq!(
            ns_label(&fake, "shop", USE_WAYPOINT).as_deref(),
            Some("wp"),
            "a waypoint that never got ready is not enrolled"
        );
        pending.await.expect("pending");
    })
    .await
    .expect("in time");
}

#[tokio::test]
async fn apply_wait_returns_when_our_controller_programs_the_gateway() {
    use gateway_api::gateways::Gateway;
    tokio::time::timeout(LIMIT, async {
        let fake = std::sync::Arc::new(FakeApiServer::start().await);
        shop(&fake);
        fake.apply_yaml(
            r#"
apiVersion: v1
kind: Namespace
metadata: {name: istio-system}
---
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: waypoint, labels: {istio.io/waypoint-for: service}}
spec: {controllerName: waypoint.dev/gateway-controller}
"#,
        );
        let dir = TempDir::new("verbs");
        let c = client(&fake, &dir).await;

        // The controller's own reconcile (`waypoint_controller::run::sync`) every 100 ms; the
        // "kubelet" marks the Deployment it applies ready.
        let (f, cc) = (fake.clone(), c.clone());
        let controller = tokio::spawn(async move {
            let gws = kube::Api::<Gateway>::namespaced(cc.clone(), "shop");
            let options = waypoint_controller::Options::default();
            loop {
                if let Ok(Some(gw)) = gws.get_opt("wp").await {
                    if let Err(e) = waypoint_controller::run::sync(&cc, &options, &gw).await {
                        panic!("controller sync: {e:?}");
                    }
                }
                if f.get("apps/v1", "Deployment", "shop", "wp").is_some() {
                    f.set_status(
                        "apps/v1",
                        "Deployment",
                        "shop",
                        "wp",
                        json!({"replicas": 1, "readyReplicas": 1, "availableReplicas": 1}),
                    );
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        let req = ApplyRequest {
            wait: Some(Duration::from_secs(20)),
            enroll_namespace: true,
            ..request("wp")
        };
        let report = cluster::apply(&c, &req)
            .await
            .expect("programmed by the controller");
        assert!(report.programmed && report.enrolled);
        controller.abort();
        let all = cluster::status(&c, &selection(Some("shop"), Some("wp")), None)
            .await
            .expect("status");
        let st = &all[0];
        assert!(st.ready());
        assert_eq!(st.addresses, ["wp.shop.svc.cluster.local"]);
        assert_eq!(
            st.accepted.as_ref().map(|c| c.status.as_str()),
            Some("True")
        );
        assert_eq!(st.traffic, "service", "from the class's label");
        assert!(
            fake.get("v1", "Service", "shop", "wp").is_some(),
            "the controller's Service for the waypoint"
        );
        let services: Vec<&str> = st.services.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(
            services,
            ["cart", "pay"],
            "the waypoint's own Service is not bound to it"
        );
    })
    .await
    .expect("in time");
}

#[tokio::test]
async fn delete_checks_every_name_first_and_all_spares_other_classes() {
    tokio::time::timeout(LIMIT, async {
        let fake = FakeApiServer::start().await;
        shop(&fake);
        let dir = TempDir::new("verbs");
        let c = client(&fake, &dir).await;
        cluster::apply(
            &c,
            &ApplyRequest {
                enroll_namespace: true,
                ..request("wp")
            },
        )
        .await
        .expect("apply");
        fake.apply(json!({"apiVersion": GW, "kind": "Gateway",
            "metadata": {"name": "istio", "namespace": "shop"},
            "spec": {"gatewayClassName": "istio-waypoint", "listeners": []}}));
        fake.apply(json!({"apiVersion": GW, "kind": "Gateway",
            "metadata": {"name": "ingress", "namespace": "shop"},
            "spec": {"gatewayClassName": "nginx", "listeners": []}}));
        // A Service labelled for wp and one in web pointing at it across namespaces.
        fake.apply(json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "front", "namespace": "web",
                         "labels": {USE_WAYPOINT: "wp", USE_WAYPOINT_NAMESPACE: "shop"}}}));

        let del = |names: &[&str], all: bool| DeleteRequest {
            namespace: "shop".into(),
            names: names.iter().map(|n| n.to_string()).collect(),
            all,
            classes: vec!["waypoint".into()],
        };
        let e = cluster::delete(&c, &del(&["wp", "nope", "gone"], false))
            .await
            .expect_err("an error");
        assert_eq!(e.to_string(), "waypoint shop/nope, shop/gone not found");
        let e = cluster::delete(&c, &del(&["wp", "ingress"], false))
            .await
            .expect_err("an error");
        assert_eq!(
            e.to_string(),
            "Gateway shop/ingress is not a waypoint (class nginx); left as it is"
        );
        assert!(
            fake.get(GW, "Gateway", "shop", "wp").is_some(),
            "nothing deleted on an error"
        );
        assert_eq!(fake.requests("delete", GW, "Gateway"), 0);

        let report = cluster::delete(&c, &del(&[], true))
            .await
            .expect("delete --all");
        assert_eq!(report.deleted, ["shop/istio", "shop/wp"]);
        assert_eq!(report.unenrolled, ["shop"]);
        assert_eq!(report.still_labelled, ["web/front"]);
        assert!(report
            .lines()
            .iter()
            .any(|l| l.contains("Service web/front still has")));
        assert!(fake.get(GW, "Gateway", "shop", "ingress").is_some());
        let report = cluster::delete(&c, &del(&[], true))
            .await
            .expect("nothing left");
        assert_eq!(report.lines(), ["No waypoints found."]);
    })
    .await
    .expect("in time");
}

#[tokio::test]
async fn missing_crds_and_forbidden_kinds_are_named() {
    tokio::time::timeout(LIMIT, async {
        let fake = FakeApiServer::start().await;
        shop(&fake);
        fake.set_installed(GW, "Gateway", false);
        fake.set_installed(SEC, "AuthorizationPolicy", false);
        let dir = TempDir::new("verbs");
        let c = client(&fake, &dir).await;
        let e = cluster::apply(&c, &request("wp")).await.expect_err("an error");
        assert!(matches!(e, Error::NoGatewayApi { .. }), "{e:?}");
        assert_eq!(
            e.to_string(),
            "the Gateway API CRDs are not installed (Gateways are not served): creating Gateway shop/wp"
        );
        let e = cluster::list(&c, &selection(Some("shop"), None)).await.expect_err("an error");
        assert!(e.to_string().contains("listing Gateway in shop"), "{e}");
        fake.set_installed(GW, "Gateway", true);
        let all = cluster::status(&c, &selection(None, None), None).await.expect("status");
        assert!(all.is_empty(), "a missing policy CRD is no error");

        // A user who may not list GatewayClasses (cluster-scoped) still lists waypoints; one
        // who may not list Services cannot get a status, and is told what was refused.
        cluster::apply(&c, &request("wp")).await.expect("apply");
        fake.set_forbidden(GW, "GatewayClass", true);
        let rows = cluster::list(&c, &selection(Some("shop"), None)).await.expect("list");
        assert_eq!(rows.len(), 1);
        fake.set_forbidden("v1", "Service", true);
        let e = cluster::status(&c, &selection(Some("shop"), None), None)
            .await
            .expect_err("forbidden");
        assert_eq!(
            e.to_string(),
            "listing Service: services is forbidden: User \"test\" cannot list resource \"services\" \
             in API group \"\" at the cluster scope (403 Forbidden)"
        );
    })
    .await
    .expect("in time");
}

/// A waypoint admin on loopback answering `/config_dump` with `body`.
async fn fake_admin(body: Value) -> (std::net::SocketAddr, tokio::task::JoinHandle<()>) {
    use http_body_util::Full;
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = l.local_addr().expect("addr");
    let task = tokio::spawn(async move {
        while let Ok((tcp, _)) = l.accept().await {
            let body = body.clone();
            tokio::spawn(async move {
                let svc =
                    hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                        let body = body.clone();
                        async move {
                            let (code, text) = if req.uri().path() == "/config_dump" {
                                (200, body.to_string())
                            } else {
                                (404, String::new())
                            };
                            let mut r = http::Response::new(Full::new(bytes::Bytes::from(text)));
                            *r.status_mut() = http::StatusCode::from_u16(code).expect("code");
                            Ok::<_, std::convert::Infallible>(r)
                        }
                    });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(tcp), svc)
                    .await;
            });
        }
    });
    (addr, task)
}

#[tokio::test]
async fn status_reads_the_certificate_expiry_from_the_admin() {
    tokio::time::timeout(LIMIT, async {
        let fake = FakeApiServer::start().await;
        shop(&fake);
        let dir = TempDir::new("verbs");
        let c = client(&fake, &dir).await;
        cluster::apply(&c, &request("wp")).await.expect("apply");
        let not_after = k8s_openapi::jiff::Timestamp::now()
            .checked_add(k8s_openapi::jiff::SignedDuration::from_hours(30))
            .expect("time");
        let (addr, admin) = fake_admin(json!({"certificates": {
            "identity": "spiffe://cluster.local/ns/shop/sa/wp", "not_after": not_after.to_string()}}))
        .await;
        let one = selection(Some("shop"), Some("wp"));
        let st = cluster::status(&c, &one, Some(&addr.to_string())).await.expect("status");
        let cert = st[0].certificate.describe();
        assert!(cert.starts_with("expires ") && cert.contains("(in 1d 5h"), "{cert}");
        assert!(cert.ends_with("spiffe://cluster.local/ns/shop/sa/wp"), "{cert}");
        assert!(st[0].notes.iter().all(|n| !n.contains("identity")), "{:?}", st[0].notes);
        admin.abort();
        let _ = admin.await;

        // Another waypoint's admin: the expiry is shown, with a note.
        let (addr, admin) = fake_admin(json!({"certificates": {
            "identity": "spiffe://cluster.local/ns/web/sa/other", "not_after": not_after.to_string()}}))
        .await;
        let st = cluster::status(&c, &one, Some(&addr.to_string())).await.expect("status");
        assert!(st[0].notes.iter().any(|n| n.contains("not this waypoint's identity")), "{:?}", st[0].notes);
        admin.abort();
        let _ = admin.await;

        // Unreachable: unknown, with the address.
        let st = cluster::status(&c, &one, Some(&addr.to_string())).await.expect("status");
        let cert = st[0].certificate.describe();
        assert!(cert.starts_with("unknown (") && cert.contains(&addr.to_string()), "{cert}");
    })
    .await
    .expect("in time");
}

#[tokio::test]
async fn status_asks_the_real_waypoint_admin() {
    use waypoint_proxy::run::{start, RunOptions};
    tokio::time::timeout(LIMIT, async {
        let fake = FakeApiServer::start().await;
        shop(&fake);
        let dir = TempDir::new("verbs");
        let c = client(&fake, &dir).await;
        cluster::apply(&c, &request("wp")).await.expect("apply");
        let pki = waypoint_tests::pki::Pki::new("cluster.local");
        let running = start(RunOptions::new(Vec::new(), pki.issue("shop", "wp")).loopback())
            .await
            .expect("start waypoint");
        let admin = running.admin_addr.expect("admin listener").to_string();
        let st = cluster::status(&c, &selection(Some("shop"), Some("wp")), Some(&admin))
            .await
            .expect("status");
        // The admin reports the identity and the leaf's expiry (`certificates.not_after`).
        match &st[0].certificate {
            waypoint_ops::cert::CertStatus::Known {
                identity,
                remaining_secs,
                ..
            } => {
                assert_eq!(
                    identity.as_deref(),
                    Some("spiffe://cluster.local/ns/shop/sa/wp")
                );
                assert!(*remaining_secs > 0, "a fresh certificate");
            }
            other => panic!("certificate not read from the admin: {other:?}"),
        }
        assert!(
            st[0].notes.iter().all(|n| !n.contains("identity")),
            "{:?}",
            st[0].notes
        );
    })
    .await
    .expect("in time");
}

fn example(dir: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("examples")
        .join(dir)
}

#[test]
fn offline_list_and_status_summarise_the_bookinfo_files() {
    let inv = offline::inventory(&[example("bookinfo")], "default").expect("bookinfo loads");
    let rows = summary::list(&inv, &selection(Some("default"), None));
    assert_eq!(
        render::list(&rows, false),
        "NAME       CLASS            REVISION   TRAFFIC TYPE   PROGRAMMED\n\
         waypoint   istio-waypoint   default    service        Unknown\n"
    );
    let st = summary::status(&inv, &selection(Some("default"), None), "offline");
    assert_eq!(st.len(), 1);
    let s = &st[0];
    assert_eq!(s.namespaces, ["default"]);
    let services: Vec<&str> = s.services.iter().map(|b| b.name.as_str()).collect();
    for svc in ["productpage", "details", "reviews", "ratings"] {
        assert!(services.contains(&svc), "{svc} in {services:?}");
    }
    let vs: Vec<String> = s
        .routes
        .iter()
        .map(|a| format!("{}/{} {}", a.kind.kind(), a.name, a.via))
        .collect();
    assert!(
        vs.contains(&"VirtualService/reviews host reviews".to_string()),
        "{vs:?}"
    );
    let policies: Vec<String> = s
        .policies
        .iter()
        .map(|a| format!("{} {}", a.name, a.via))
        .collect();
    assert!(
        policies.contains(&"deny-admin targetRef Gateway waypoint".to_string()),
        "{policies:?}"
    );
    assert!(
        policies.contains(&"reviews-viewer targetRef Service default/reviews".to_string()),
        "{policies:?}"
    );

    // The HTTPRoute variant: the route attaches through its parent Service.
    let inv = offline::inventory(
        &[example("bookinfo/base"), example("bookinfo-httproute")],
        "default",
    )
    .expect("loads");
    let st = summary::status(&inv, &selection(None, Some("waypoint")), "offline");
    let routes: Vec<String> = st[0]
        .routes
        .iter()
        .map(|a| format!("{} {}", a.kind.kind(), a.via))
        .collect();
    assert_eq!(routes, ["HTTPRoute parentRef Service default/reviews"]);

    let e = offline::inventory(&[example("no-such-dir")], "default")
        .expect_err("an error")
        .to_string();
    assert!(e.contains("no-such-dir"), "{e}");
}

//! The loop's side effects (`run::sync`) against a recording fake API server on loopback:
//! which objects are server-side applied, where, with which field manager, and the status.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use gateway_api::gateways::Gateway;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use kube::{Client, Config};
use serde_json::{json, Value};
use waypoint_controller::run::{sync, Synced};
use waypoint_controller::Options;

#[derive(Clone, Debug)]
struct Call {
    method: String,
    path: String,
    query: String,
    content_type: String,
    body: Value,
}

fn class(controller: &str) -> Value {
    json!({
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "GatewayClass",
        "metadata": {"name": "waypoint", "generation": 1},
        "spec": {"controllerName": controller},
    })
}

fn gateway() -> Value {
    json!({
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
        "metadata": {"name": "wp", "namespace": "bookinfo", "uid": "uid-1", "generation": 1},
        "spec": {"gatewayClassName": "waypoint",
                 "listeners": [{"name": "mesh", "port": 15008, "protocol": "HBONE"}]},
    })
}

fn not_found() -> (u16, Value) {
    (
        404,
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                 "reason": "NotFound", "message": "not found", "code": 404}),
    )
}

/// Answers as an API server holding `class`, the Gateway, a ready Deployment and an HPA the
/// Gateway owns; records every request.
async fn serve(class: Value, calls: Arc<Mutex<Vec<Call>>>) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let class = class.clone();
            let calls = calls.clone();
            let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                let class = class.clone();
                let calls = calls.clone();
                async move {
                    let method = req.method().to_string();
                    let path = req.uri().path().to_string();
                    let query = req.uri().query().unwrap_or_default().to_string();
                    let content_type = req
                        .headers()
                        .get("content-type")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_string();
                    let raw = req
                        .into_body()
                        .collect()
                        .await
                        .map(|b| b.to_bytes())
                        .unwrap_or_default();
                    let body: Value = serde_json::from_slice(&raw).unwrap_or(Value::Null);
                    calls.lock().expect("lock").push(Call {
                        method: method.clone(),
                        path: path.clone(),
                        query,
                        content_type,
                        body: body.clone(),
                    });
                    let (code, reply) = match (method.as_str(), path.as_str()) {
                        ("GET", "/apis/gateway.networking.k8s.io/v1/gatewayclasses/waypoint") => {
                            (200, class.clone())
                        }
                        ("GET", "/apis/apps/v1/namespaces/bookinfo/deployments/wp") => (
                            200,
                            json!({
                                "apiVersion": "apps/v1", "kind": "Deployment",
                                "metadata": {"name": "wp", "namespace": "bookinfo"},
                                "spec": {"selector": {}, "template": {}},
                                "status": {"readyReplicas": 1},
                            }),
                        ),
                        (
                            "GET",
                            "/apis/autoscaling/v2/namespaces/bookinfo/horizontalpodautoscalers/wp",
                        ) => (
                            200,
                            json!({
                                "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
                                "metadata": {"name": "wp", "namespace": "bookinfo",
                                             "ownerReferences": [{"apiVersion": "gateway.networking.k8s.io/v1",
                                                 "kind": "Gateway", "name": "wp", "uid": "uid-1"}]},
                                "spec": {"maxReplicas": 3, "scaleTargetRef": {"kind": "Deployment", "name": "wp"}},
                            }),
                        ),
                        ("GET", p) if p.ends_with("rolebindings") => (
                            200,
                            json!({"apiVersion": "rbac.authorization.k8s.io/v1",
                                   "kind": "List", "metadata": {}, "items": []}),
                        ),
                        ("DELETE", _) => (
                            200,
                            json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"}),
                        ),
                        ("PATCH", p) if p.ends_with("/gateways/wp/status") => {
                            let mut g = gateway();
                            g["status"] = body["status"].clone();
                            (200, g)
                        }
                        ("PATCH", p) if p.ends_with("/gatewayclasses/waypoint/status") => {
                            (200, class.clone())
                        }
                        // Applied objects: echo what was sent (a full object).
                        ("PATCH", _) => (200, body.clone()),
                        _ => not_found(),
                    };
                    Ok::<_, Infallible>(
                        Response::builder()
                            .status(code)
                            .header("content-type", "application/json")
                            .body(Full::new(Bytes::from(reply.to_string())))
                            .expect("response"),
                    )
                }
            });
            tokio::spawn(async move {
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    addr
}

async fn client(addr: SocketAddr) -> Client {
    let url = format!("http://{addr}").parse().expect("url");
    Client::try_from(Config::new(url)).expect("client")
}

#[tokio::test]
async fn applies_objects_status_and_drops_the_unwanted_autoscaler() {
    let calls = Arc::new(Mutex::new(Vec::new()));
    let o = Options::default();
    let addr = serve(class(&o.controller_name), calls.clone()).await;
    let gw: Gateway = serde_json::from_value(gateway()).expect("gateway");
    let done = sync(&client(addr).await, &o, &gw).await.expect("sync");
    assert_eq!(done, Synced::Applied);

    let calls = calls.lock().expect("lock").clone();
    let patches: Vec<&Call> = calls.iter().filter(|c| c.method == "PATCH").collect();
    let paths: Vec<&str> = patches.iter().map(|c| c.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "/api/v1/namespaces/bookinfo/serviceaccounts/wp",
            "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/waypoint-bookinfo-wp",
            "/apis/rbac.authorization.k8s.io/v1/namespaces/istio-system/rolebindings/waypoint-bookinfo-wp",
            "/apis/apps/v1/namespaces/bookinfo/deployments/wp",
            "/api/v1/namespaces/bookinfo/services/wp",
            "/apis/gateway.networking.k8s.io/v1/namespaces/bookinfo/gateways/wp/status",
            "/apis/gateway.networking.k8s.io/v1/gatewayclasses/waypoint/status",
        ]
    );
    for p in &patches {
        assert_eq!(p.content_type, "application/apply-patch+yaml", "{}", p.path);
        assert!(
            p.query.contains("fieldManager=waypoint-controller"),
            "{}",
            p.query
        );
        assert!(p.query.contains("force=true"), "{}", p.query);
    }
    // The Deployment is ready, so istiod's switch is set.
    assert_eq!(
        patches[5].body["status"]["addresses"],
        json!([{"type": "Hostname", "value": "wp.bookinfo.svc.cluster.local"}])
    );
    assert_eq!(
        patches[3].body["spec"]["template"]["spec"]["serviceAccountName"],
        "wp"
    );
    // The HPA the Gateway owns is no longer wanted (no parameters): deleted. No PDB existed.
    let deletes: Vec<&str> = calls
        .iter()
        .filter(|c| c.method == "DELETE")
        .map(|c| c.path.as_str())
        .collect();
    assert_eq!(
        deletes,
        ["/apis/autoscaling/v2/namespaces/bookinfo/horizontalpodautoscalers/wp"]
    );
}

#[tokio::test]
async fn leaves_gateways_of_other_classes_alone() {
    let calls = Arc::new(Mutex::new(Vec::new()));
    let addr = serve(class("istio.io/mesh-controller"), calls.clone()).await;
    let gw: Gateway = serde_json::from_value(gateway()).expect("gateway");
    let done = sync(&client(addr).await, &Options::default(), &gw)
        .await
        .expect("sync");
    assert_eq!(done, Synced::NotOurs);
    let calls = calls.lock().expect("lock");
    assert!(calls.iter().all(|c| c.method == "GET"), "{calls:?}");
}

/// A Gateway that left our class (our field manager wrote its status) gets its waypoint back:
/// owned objects and bindings deleted, our status withdrawn; objects it does not own stay.
#[tokio::test]
async fn a_gateway_that_left_our_class_is_released() {
    let calls = Arc::new(Mutex::new(Vec::new()));
    let addr = serve(class("istio.io/mesh-controller"), calls.clone()).await;
    let mut g = gateway();
    g["metadata"]["managedFields"] = json!([
        {"manager": "waypoint-controller", "operation": "Apply", "subresource": "status",
         "apiVersion": "gateway.networking.k8s.io/v1"}]);
    let gw: Gateway = serde_json::from_value(g).expect("gateway");
    let done = sync(&client(addr).await, &Options::default(), &gw)
        .await
        .expect("sync");
    assert_eq!(done, Synced::NotOurs);
    let calls = calls.lock().expect("lock");
    let deletes: Vec<&str> = calls
        .iter()
        .filter(|c| c.method == "DELETE")
        .map(|c| c.path.as_str())
        .collect();
    // The HPA is owned by the Gateway's uid; the Deployment of the fake carries no owner.
    assert_eq!(
        deletes,
        ["/apis/autoscaling/v2/namespaces/bookinfo/horizontalpodautoscalers/wp"]
    );
    let lists: Vec<&Call> = calls
        .iter()
        .filter(|c| c.method == "GET" && c.path.ends_with("rolebindings"))
        .collect();
    assert_eq!(lists.len(), 2, "{calls:?}");
    assert!(
        lists
            .iter()
            .all(|c| c.query.contains("waypoint.dev%2Fgateway-name%3Dwp")),
        "{lists:?}"
    );
    let withdraw = calls
        .iter()
        .find(|c| c.method == "PATCH" && c.path.ends_with("/gateways/wp/status"))
        .expect("status withdrawn");
    assert_eq!(withdraw.body["status"], json!({}));
    assert!(
        withdraw.query.contains("fieldManager=waypoint-controller"),
        "{}",
        withdraw.query
    );
}

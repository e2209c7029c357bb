//! The ADS protocol of `waypoint xds` with a gRPC client standing in for Envoy (no Envoy):
//! per-node snapshots, SotW versions and ACK, delta diffs and removals, NACK handling (never
//! re-sent, the next change is), and resource subscriptions.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse,
};
use envoy_types::pb::google::protobuf::{value::Kind, Struct, Value};
use envoy_types::pb::google::rpc::Status;
use serde_json::json;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Streaming;
use waypoint_envoy_config::xds::proto::{CLUSTER, ENDPOINT, ROUTE};
use waypoint_envoy_config::xds::resources::JsonResources;
use waypoint_envoy_config::xds::{server, Cache, Snapshot};

/// Snapshot contents per waypoint: clusters `c<i>` (with endpoint port `port`) and routes.
type World = Arc<Mutex<BTreeMap<String, (Vec<&'static str>, u16)>>>;

fn resources(clusters: &[&str], port: u16) -> JsonResources {
    let mut r = JsonResources::new();
    for c in clusters {
        r.entry(CLUSTER).or_default().insert(
            c.to_string(),
            json!({"name": c, "type": "EDS", "eds_cluster_config": {"eds_config": {"ads": {}}}}),
        );
        r.entry(ENDPOINT).or_default().insert(
            c.to_string(),
            json!({"cluster_name": c, "endpoints": [{"lb_endpoints": [{"endpoint": {"address":
                {"socket_address": {"address": "127.0.0.1", "port_value": port}}}}]}]}),
        );
    }
    for rname in ["r1", "r2"] {
        r.entry(ROUTE).or_default().insert(
            rname.to_string(),
            json!({"name": rname, "virtual_hosts": [{"name": rname, "domains": ["*"]}]}),
        );
    }
    r
}

async fn start(world: World) -> server::Running {
    let w = Arc::clone(&world);
    let cache = Cache::new(
        Box::new(move |waypoint| {
            let key = waypoint.unwrap_or("").to_string();
            let (clusters, port) =
                w.lock().expect("world").get(&key).cloned().ok_or_else(|| {
                    waypoint_envoy_config::xds::XdsError::Config(format!("no waypoint {key:?}"))
                })?;
            Snapshot::encode(&resources(&clusters, port))
        }),
        None,
    );
    server::start(
        cache,
        "127.0.0.1:0".parse().expect("addr"),
        vec![],
        Duration::from_secs(3600),
    )
    .await
    .expect("server")
}

fn node(waypoint: &str) -> Node {
    Node {
        id: "test".into(),
        metadata: Some(Struct {
            fields: [(
                "WAYPOINT".to_string(),
                Value {
                    kind: Some(Kind::StringValue(waypoint.into())),
                },
            )]
            .into_iter()
            .collect(),
        }),
        ..Default::default()
    }
}

async fn next<T>(s: &mut Streaming<T>) -> T {
    tokio::time::timeout(Duration::from_secs(5), s.message())
        .await
        .expect("response within 5 s")
        .expect("stream ok")
        .expect("stream open")
}

async fn silent<T: std::fmt::Debug>(s: &mut Streaming<T>) {
    if let Ok(m) = tokio::time::timeout(Duration::from_millis(300), s.message()).await {
        panic!("unexpected response: {m:?}");
    }
}

fn names(r: &DiscoveryResponse) -> Vec<String> {
    r.resources
        .iter()
        .map(|a| {
            let v =
                waypoint_envoy_config::xds::proto::decode(&a.type_url, &a.value).expect("decode");
            v["name"]
                .as_str()
                .or(v["clusterName"].as_str())
                .unwrap_or_default()
                .to_string()
        })
        .collect()
}

type Client = AggregatedDiscoveryServiceClient<tonic::transport::Channel>;

/// Start a server over `world` and connect a client to it.
async fn start_and_connect(world: &World) -> (server::Running, Client) {
    let srv = start(Arc::clone(world)).await;
    let client = AggregatedDiscoveryServiceClient::connect(format!("http://{}", srv.addr))
        .await
        .expect("connect");
    (srv, client)
}

/// Open a stream with `open` (the client's SotW or delta call): where its requests go, and
/// its responses.
async fn open_stream<Req, Resp>(
    open: impl AsyncFnOnce(
        ReceiverStream<Req>,
    ) -> Result<tonic::Response<Streaming<Resp>>, tonic::Status>,
) -> (mpsc::Sender<Req>, Streaming<Resp>) {
    let (tx, rx) = mpsc::channel(8);
    let stream = open(ReceiverStream::new(rx))
        .await
        .expect("stream")
        .into_inner();
    (tx, stream)
}

/// A SotW request for `names` of `type_url`, acknowledging `version` / `nonce`.
fn req(type_url: &str, names: &[&str], version: &str, nonce: &str) -> DiscoveryRequest {
    DiscoveryRequest {
        type_url: type_url.into(),
        resource_names: names.iter().map(|s| s.to_string()).collect(),
        version_info: version.into(),
        response_nonce: nonce.into(),
        ..Default::default()
    }
}

/// A stream's first request: every cluster, from the node of `waypoint`.
fn first_req(waypoint: &str) -> DiscoveryRequest {
    DiscoveryRequest {
        node: Some(node(waypoint)),
        ..req(CLUSTER, &[], "", "")
    }
}

/// A delta request subscribing to `sub` of `type_url`, acknowledging `nonce`.
fn delta_req(type_url: &str, sub: &[&str], nonce: &str) -> DeltaDiscoveryRequest {
    DeltaDiscoveryRequest {
        type_url: type_url.into(),
        resource_names_subscribe: sub.iter().map(|s| s.to_string()).collect(),
        response_nonce: nonce.into(),
        ..Default::default()
    }
}

/// Envoy's rejection of a response, with `message`.
fn rejected(message: &str) -> Option<Status> {
    Some(Status {
        code: 3,
        message: message.into(),
        details: vec![],
    })
}

/// Change what `waypoint`'s snapshot holds (rebuild to serve it).
fn set(world: &World, waypoint: &str, clusters: Vec<&'static str>, port: u16) {
    world
        .lock()
        .expect("world")
        .insert(waypoint.into(), (clusters, port));
}

#[tokio::test]
async fn sotw_versions_acks_nacks_and_per_node_snapshots() {
    let world: World = Arc::new(Mutex::new(BTreeMap::from([
        ("ns/a".to_string(), (vec!["c1", "c2"], 1)),
        ("ns/b".to_string(), (vec!["c9"], 1)),
    ])));
    let (srv, mut client) = start_and_connect(&world).await;
    let (tx, mut stream) =
        open_stream(async |rx| client.stream_aggregated_resources(rx).await).await;
    tx.send(first_req("ns/a")).await.expect("send");
    let r = next(&mut stream).await;
    assert_eq!(r.type_url, CLUSTER);
    assert_eq!(names(&r), ["c1", "c2"]);
    let v1 = r.version_info.clone();
    tx.send(req(CLUSTER, &[], &v1, &r.nonce))
        .await
        .expect("ack");
    // RDS by name: only the one asked for.
    tx.send(req(ROUTE, &["r2"], "", "")).await.expect("send");
    let rr = next(&mut stream).await;
    assert_eq!(names(&rr), ["r2"]);
    tx.send(req(ROUTE, &["r2"], &rr.version_info, &rr.nonce))
        .await
        .expect("ack");
    silent(&mut stream).await;

    // A change: new CDS version pushed (the routes did not change: nothing for RDS).
    set(&world, "ns/a", vec!["c1", "c2", "c3"], 1);
    assert_eq!(srv.cache.rebuild(), 1);
    let r2 = next(&mut stream).await;
    assert_eq!(r2.type_url, CLUSTER);
    assert_eq!(names(&r2), ["c1", "c2", "c3"]);
    assert_ne!(r2.version_info, v1);
    // NACK: logged and recorded with Envoy's message; the same version is not sent again.
    let nack = DiscoveryRequest {
        error_detail: rejected("cluster c3: bad thing"),
        ..req(CLUSTER, &[], &v1, &r2.nonce)
    };
    tx.send(nack).await.expect("nack");
    silent(&mut stream).await;
    let nacks = srv.cache.nacks();
    assert_eq!(nacks.len(), 1);
    assert_eq!(nacks[0].message, "cluster c3: bad thing");
    assert_eq!(nacks[0].node, "ns/a");
    // A rebuild with nothing new sends nothing; the next real change is sent.
    assert_eq!(srv.cache.rebuild(), 0);
    silent(&mut stream).await;
    set(&world, "ns/a", vec!["c1"], 1);
    srv.cache.rebuild();
    let r3 = next(&mut stream).await;
    assert_eq!(names(&r3), ["c1"]);

    // Another node gets its own snapshot.
    let (tx_b, mut sb) = open_stream(async |rx| client.stream_aggregated_resources(rx).await).await;
    tx_b.send(first_req("ns/b")).await.expect("send");
    assert_eq!(names(&next(&mut sb).await), ["c9"]);

    // An unknown waypoint ends its stream with an error.
    let (tx_c, mut sc) = open_stream(async |rx| client.stream_aggregated_resources(rx).await).await;
    tx_c.send(first_req("ns/none")).await.expect("send");
    let err = tokio::time::timeout(Duration::from_secs(5), sc.message())
        .await
        .expect("answer")
        .expect_err("unavailable");
    assert!(err.message().contains("ns/none"), "{err}");
}

fn delta_names(r: &DeltaDiscoveryResponse) -> Vec<&str> {
    r.resources.iter().map(|x| x.name.as_str()).collect()
}

#[tokio::test]
async fn delta_sends_only_changes_and_removals() {
    let world: World = Arc::new(Mutex::new(BTreeMap::from([(
        "ns/a".to_string(),
        (vec!["c1", "c2"], 1),
    )])));
    let (srv, mut client) = start_and_connect(&world).await;
    let (tx, mut stream) =
        open_stream(async |rx| client.delta_aggregated_resources(rx).await).await;
    // Envoy restarting with c1 at its current version: only c2 is sent.
    let current = srv
        .cache
        .subscribe("ns/a")
        .expect("snapshot")
        .borrow()
        .clone();
    let mut first = delta_req(CLUSTER, &["*"], "");
    first.node = Some(node("ns/a"));
    first.initial_resource_versions = [(
        "c1".to_string(),
        current.get(CLUSTER, "c1").expect("c1").version.clone(),
    )]
    .into_iter()
    .collect();
    tx.send(first).await.expect("send");
    let r = next(&mut stream).await;
    assert_eq!(delta_names(&r), ["c2"]);
    tx.send(delta_req(CLUSTER, &[], &r.nonce))
        .await
        .expect("ack");
    tx.send(delta_req(ENDPOINT, &["c1", "c2"], ""))
        .await
        .expect("send");
    let e = next(&mut stream).await;
    assert_eq!(delta_names(&e), ["c1", "c2"]);
    tx.send(delta_req(ENDPOINT, &[], &e.nonce))
        .await
        .expect("ack");
    silent(&mut stream).await;

    // c2 removed, endpoints of c1 changed: the removal and one changed endpoint only.
    set(&world, "ns/a", vec!["c1"], 2);
    srv.cache.rebuild();
    let r = next(&mut stream).await;
    assert_eq!((r.type_url.as_str(), delta_names(&r)), (CLUSTER, vec![]));
    assert_eq!(r.removed_resources, ["c2"]);
    tx.send(delta_req(CLUSTER, &[], &r.nonce))
        .await
        .expect("ack");
    let e = next(&mut stream).await;
    assert_eq!(
        (e.type_url.as_str(), delta_names(&e)),
        (ENDPOINT, vec!["c1"])
    );
    assert_eq!(e.removed_resources, ["c2"]);

    // NACK of the endpoint change: Envoy keeps the old one; the rejected version is not
    // re-sent on the next rebuild of the same content, a new change is.
    let nack = DeltaDiscoveryRequest {
        error_detail: rejected("bad endpoint"),
        ..delta_req(ENDPOINT, &[], &e.nonce)
    };
    tx.send(nack).await.expect("nack");
    // A subscription change makes the server recompute the diff: still nothing re-sent.
    tx.send(delta_req(ENDPOINT, &["c1"], ""))
        .await
        .expect("resubscribe");
    silent(&mut stream).await;
    assert_eq!(srv.cache.nacks().len(), 1);
    set(&world, "ns/a", vec!["c1"], 3);
    srv.cache.rebuild();
    let e = next(&mut stream).await;
    assert_eq!(delta_names(&e), ["c1"]);
    let pushed: Vec<_> = srv.cache.pushes().into_iter().filter(|p| p.delta).collect();
    assert!(pushed.iter().all(|p| p.node == "ns/a"));
}

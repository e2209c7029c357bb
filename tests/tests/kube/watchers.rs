//! The watchers against the fake API server: first full list of every kind, live changes,
//! bookmarks, missing CRDs, `410 Gone` relists and dropped watch streams.

use std::time::Duration;

use serde_json::json;
use waypoint_tests::kube::{Drop, FakeApiServer, Gone};

use crate::harness::{names, Watched, LIMIT};

const NET: &str = "networking.istio.io/v1";
const SEC: &str = "security.istio.io/v1";
const GW: &str = "gateway.networking.k8s.io/v1";

fn obj(api_version: &str, kind: &str, ns: &str, name: &str) -> serde_json::Value {
    let mut meta = json!({"name": name});
    if !ns.is_empty() {
        meta["namespace"] = json!(ns);
    }
    json!({"apiVersion": api_version, "kind": kind, "metadata": meta, "spec": {}})
}

/// One object of every watched kind, plus ConfigMaps the waypoint must not read.
fn every_kind(fake: &FakeApiServer) {
    fake.apply(obj("v1", "Namespace", "", "default"));
    fake.apply(obj("v1", "Service", "default", "a"));
    fake.apply(obj("v1", "Pod", "default", "a-0"));
    fake.apply(json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": "a-x", "namespace": "default"}, "addressType": "IPv4", "endpoints": []}));
    fake.apply(json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "istio", "namespace": "istio-system"}, "data": {"mesh": "trustDomain: cluster.local\n"}}));
    fake.apply(obj("v1", "ConfigMap", "istio-system", "other"));
    fake.apply(obj("v1", "ConfigMap", "default", "istio"));
    fake.apply(obj(GW, "GatewayClass", "", "istio-waypoint"));
    fake.apply(obj(GW, "Gateway", "default", "waypoint"));
    fake.apply(obj(GW, "HTTPRoute", "default", "r"));
    fake.apply(obj(GW, "GRPCRoute", "default", "g"));
    fake.apply(obj(GW, "ReferenceGrant", "default", "rg"));
    for k in [
        "VirtualService",
        "DestinationRule",
        "ServiceEntry",
        "WorkloadEntry",
    ] {
        fake.apply(obj(NET, k, "default", "x"));
    }
    fake.apply(obj(SEC, "AuthorizationPolicy", "default", "x"));
    fake.apply(obj(SEC, "RequestAuthentication", "default", "x"));
}

#[tokio::test]
async fn every_kind_is_listed_then_changes_follow_and_bookmarks_are_quiet() {
    tokio::time::timeout(LIMIT, async {
        let fake = FakeApiServer::start_with(Duration::from_millis(50)).await;
        every_kind(&fake);
        let mut w = Watched::start(&fake).await;
        let set = w.next().await;
        assert!(w.source.synced(), "{:?}", w.source.pending());
        let mut kinds: Vec<&str> = set.iter().map(|r| r.kind.as_str()).collect();
        kinds.sort();
        kinds.dedup();
        assert_eq!(kinds.len(), 16, "{kinds:?}");
        assert_eq!(
            names(&set, "ConfigMap"),
            ["istio-system/istio"],
            "only the mesh config"
        );
        assert_eq!(
            names(&set, "GatewayClass"),
            ["/istio-waypoint"],
            "cluster-scoped"
        );
        let vs = set.iter().find(|r| r.kind == "VirtualService").expect("vs");
        assert_eq!(vs.api_version, NET);
        assert_eq!(vs.origin, "kube:VirtualService/default/x#0");
        // Sets are numbered in delivery order (the core's tie-breaker).
        assert!(set.iter().enumerate().all(|(i, r)| r.seq == i));

        // Bookmarks every 50 ms change nothing: no delivery, no relist.
        assert!(
            w.quiet_for(Duration::from_millis(600)).await,
            "a bookmark caused a reload"
        );

        // A burst of changes: one update, one delete, one create.
        let mut vs = obj(NET, "VirtualService", "default", "x");
        vs["spec"] = json!({"hosts": ["a"]});
        fake.apply(vs);
        fake.delete(SEC, "AuthorizationPolicy", "default", "x");
        fake.apply(obj("v1", "Service", "default", "b"));
        let set = w
            .until("the burst applied", |s| names(s, "Service").len() == 2)
            .await;
        assert_eq!(names(&set, "Service"), ["default/a", "default/b"]);
        assert!(names(&set, "AuthorizationPolicy").is_empty());
        let vs = set.iter().find(|r| r.kind == "VirtualService").expect("vs");
        assert_eq!(vs.value["spec"]["hosts"], json!(["a"]));
        // One list and one watch per kind: nothing relisted.
        assert_eq!(fake.requests("list", NET, "VirtualService"), 1);
        assert_eq!(fake.requests("watch", NET, "VirtualService"), 1);
        assert_eq!(fake.requests("list", "v1", "ConfigMap"), 1);
    })
    .await
    .expect("in time");
}

#[tokio::test]
async fn a_missing_crd_is_an_empty_kind_and_is_picked_up_once_installed() {
    tokio::time::timeout(LIMIT, async {
        let fake = FakeApiServer::start().await;
        fake.apply(obj("v1", "Service", "default", "a"));
        fake.set_installed(NET, "VirtualService", false);
        fake.set_installed(GW, "HTTPRoute", false);
        let mut w = Watched::start(&fake).await;
        // Ready without the missing kinds.
        let set = w.next().await;
        assert_eq!(names(&set, "Service"), ["default/a"]);
        assert!(names(&set, "VirtualService").is_empty());
        assert!(w.source.synced());

        // The CRD is installed later, with an object: picked up by the slow retry.
        fake.set_installed(NET, "VirtualService", true);
        fake.apply(obj(NET, "VirtualService", "default", "late"));
        w.until("the late VirtualService is read", |s| {
            names(s, "VirtualService") == ["default/late"]
        })
        .await;
        assert!(fake.requests("list", NET, "VirtualService") >= 2);

        // The CRD is removed again: the kind empties, the rest stays.
        fake.set_installed(NET, "VirtualService", false);
        fake.drop_watches(Drop::End);
        let set = w
            .until("the VirtualService kind is empty", |s| {
                names(s, "VirtualService").is_empty()
            })
            .await;
        assert_eq!(names(&set, "Service"), ["default/a"]);
    })
    .await
    .expect("in time");
}

/// Not ready until every kind's first full list: a failing core kind holds the first delivery
/// back (backoff and relist) until the API server serves it.
#[tokio::test]
async fn nothing_is_delivered_before_every_kind_is_listed() {
    tokio::time::timeout(LIMIT, async {
        let fake = FakeApiServer::start().await;
        fake.apply(obj("v1", "Service", "default", "a"));
        // Pods are not optional: a 404 is an error, retried with the backoff.
        fake.set_installed("v1", "Pod", false);
        let mut w = Watched::start(&fake).await;
        assert!(
            w.quiet_for(Duration::from_millis(1500)).await,
            "delivered before Pods were listed"
        );
        assert!(!w.source.synced());
        assert_eq!(w.source.pending(), ["Pod"]);
        // kube's DefaultBackoff: 0.8 s, jittered up to twice that.
        let retried = waypoint_tests::waypoint::eventually(Duration::from_secs(5), || async {
            fake.requests("list", "v1", "Pod") >= 2
        })
        .await;
        assert!(retried, "the failed list is retried");
        assert!(!w.source.synced(), "still waiting for Pods");
        fake.set_installed("v1", "Pod", true);
        let set = w.next().await;
        assert_eq!(names(&set, "Service"), ["default/a"]);
        assert!(w.source.synced());
    })
    .await
    .expect("in time");
}

async fn gone_relists(how: Gone) {
    let fake = FakeApiServer::start().await;
    fake.apply(obj("v1", "Service", "default", "a"));
    let mut w = Watched::start(&fake).await;
    assert_eq!(names(&w.next().await, "Service"), ["default/a"]);
    let lists = fake.requests("list", "v1", "Service");
    // History compacted: every watch resumes from a resourceVersion that is gone, while the
    // objects change. Only a relist can see the new state.
    fake.compact(how);
    fake.apply(obj("v1", "Service", "default", "b"));
    fake.delete("v1", "Service", "default", "a");
    let set = w
        .until("the relist replaced a with b", |s| {
            names(s, "Service") == ["default/b"]
        })
        .await;
    assert_eq!(names(&set, "Service"), ["default/b"]);
    assert!(
        fake.requests("list", "v1", "Service") > lists,
        "410 must force a relist ({how:?})"
    );
    // Then watching resumes normally.
    fake.apply(obj("v1", "Service", "default", "c"));
    w.until("c after the relist", |s| {
        names(s, "Service") == ["default/b", "default/c"]
    })
    .await;
}

#[tokio::test]
async fn gone_as_a_watch_error_event_forces_a_relist() {
    tokio::time::timeout(LIMIT, gone_relists(Gone::Event))
        .await
        .expect("in time");
}

#[tokio::test]
async fn gone_as_an_http_status_forces_a_relist() {
    tokio::time::timeout(LIMIT, gone_relists(Gone::Http))
        .await
        .expect("in time");
}

async fn dropped_streams_resume(how: Drop) {
    let fake = FakeApiServer::start().await;
    fake.apply(obj("v1", "Service", "default", "a"));
    let mut w = Watched::start(&fake).await;
    assert_eq!(names(&w.next().await, "Service"), ["default/a"]);
    let lists = fake.requests("list", "v1", "Service");
    let watches = fake.requests("watch", "v1", "Service");
    // Changes made while no watch is open are replayed from the resumed resourceVersion.
    fake.drop_watches(how);
    fake.apply(obj("v1", "Service", "default", "b"));
    fake.delete("v1", "Service", "default", "a");
    let set = w
        .until("b replaced a", |s| names(s, "Service") == ["default/b"])
        .await;
    assert_eq!(names(&set, "Service"), ["default/b"]);
    assert!(
        fake.requests("watch", "v1", "Service") > watches,
        "re-watched"
    );
    assert_eq!(
        fake.requests("list", "v1", "Service"),
        lists,
        "a dropped stream resumes from its resourceVersion, without a relist ({how:?})"
    );
}

#[tokio::test]
async fn a_watch_stream_that_ends_resumes_without_a_relist() {
    tokio::time::timeout(LIMIT, dropped_streams_resume(Drop::End))
        .await
        .expect("in time");
}

#[tokio::test]
async fn a_watch_stream_cut_mid_response_resumes_without_a_relist() {
    tokio::time::timeout(LIMIT, dropped_streams_resume(Drop::Abort))
        .await
        .expect("in time");
}

/// `waypoint xds --kube`: the resource set is kept in a file the Envoy generator reads.
#[tokio::test]
async fn the_resource_set_is_mirrored_to_a_file() {
    tokio::time::timeout(LIMIT, async {
        let fake = FakeApiServer::start().await;
        fake.apply(obj("v1", "Service", "default", "a"));
        let dir = waypoint_tests::pki::TempDir::new("kube-file");
        let path = dir.path().join("resources.json");
        let client = crate::harness::client(&fake, &dir).await;
        let _source =
            waypoint_kube::file::mirror_to_file(client, crate::harness::options(), path.clone())
                .await
                .expect("first list");
        let read = || {
            let text = std::fs::read_to_string(&path).expect("file written");
            let loaded = waypoint_loader::load_text(&text, "f", "default");
            assert!(loaded.errors.is_empty(), "{:?}", loaded.errors);
            loaded.resources
        };
        assert_eq!(names(&read(), "Service"), ["default/a"]);
        fake.apply(obj(NET, "VirtualService", "default", "x"));
        let seen = waypoint_tests::waypoint::eventually(Duration::from_secs(10), || async {
            names(&read(), "VirtualService") == ["default/x"]
        })
        .await;
        assert!(seen, "the file follows the API server");
    })
    .await
    .expect("in time");
}

/// kube lists in pages of 500 (client-go's default): every page reaches the first set.
#[tokio::test]
async fn a_large_kind_is_listed_in_pages() {
    tokio::time::timeout(LIMIT, async {
        let fake = FakeApiServer::start().await;
        for i in 0..1201 {
            fake.apply(obj("v1", "Pod", "default", &format!("p-{i:04}")));
        }
        let mut w = Watched::start(&fake).await;
        let set = w.next().await;
        assert_eq!(names(&set, "Pod").len(), 1201);
        assert_eq!(fake.requests("list", "v1", "Pod"), 3, "three pages");
    })
    .await
    .expect("in time");
}

/// A kind served only at an older version (ReferenceGrant `v1beta1` with older Gateway API
/// CRDs) is read there.
#[tokio::test]
async fn a_kind_not_served_at_its_preferred_version_is_read_at_the_other() {
    tokio::time::timeout(LIMIT, async {
        let fake = FakeApiServer::start().await;
        let beta = "gateway.networking.k8s.io/v1beta1";
        fake.set_installed(GW, "ReferenceGrant", false);
        fake.apply(obj(beta, "ReferenceGrant", "default", "old"));
        let mut w = Watched::start(&fake).await;
        let set = w.next().await;
        assert_eq!(names(&set, "ReferenceGrant"), ["default/old"]);
        let rg = set.iter().find(|r| r.kind == "ReferenceGrant").expect("rg");
        assert_eq!(rg.api_version, beta);
        // Changes are followed at that version.
        fake.apply(obj(beta, "ReferenceGrant", "default", "new"));
        w.until("the new grant", |s| names(s, "ReferenceGrant").len() == 2)
            .await;
        assert_eq!(fake.requests("list", GW, "ReferenceGrant"), 1);
    })
    .await
    .expect("in time");
}

//! The fake API server's writes as the real kube client sees them: the status codes and
//! `Status` reasons of the real server (404, 409, 400, 422), and watch events for each write.

use std::time::Duration;

use futures_util::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{DeleteParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use kube::Api;
use serde_json::json;
use waypoint_tests::kube::FakeApiServer;
use waypoint_tests::pki::TempDir;

use crate::harness::{client, LIMIT};

fn config_map(ns: &str, name: &str) -> ConfigMap {
    serde_json::from_value(json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": ns}, "data": {"k": "v"}}))
    .expect("config map")
}

fn status(e: kube::Error) -> (u16, String, String) {
    match e {
        kube::Error::Api(s) => (s.code, s.reason, s.message),
        other => panic!("not an API error: {other:?}"),
    }
}

#[tokio::test]
async fn writes_answer_with_the_real_codes_and_reasons() {
    tokio::time::timeout(LIMIT, async {
        let fake = FakeApiServer::start().await;
        fake.apply(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "a"}}));
        let dir = TempDir::new("fake-writes");
        let c = client(&fake, &dir).await;
        let cms: Api<ConfigMap> = Api::namespaced(c.clone(), "a");

        let e = cms.get("x").await.expect_err("an error");
        assert_eq!(
            status(e),
            (404, "NotFound".into(), "configmaps \"x\" not found".into())
        );

        let made = cms
            .create(&PostParams::default(), &config_map("a", "x"))
            .await
            .expect("create");
        assert_eq!(made.metadata.generation, Some(1));
        assert!(made.metadata.uid.is_some() && made.metadata.resource_version.is_some());
        let e = cms
            .create(&PostParams::default(), &config_map("a", "x"))
            .await
            .expect_err("an error");
        assert_eq!(
            status(e),
            (
                409,
                "AlreadyExists".into(),
                "configmaps \"x\" already exists".into()
            )
        );

        let e = Api::<ConfigMap>::namespaced(c.clone(), "ghost")
            .create(&PostParams::default(), &config_map("ghost", "x"))
            .await
            .expect_err("an error");
        assert_eq!(
            status(e),
            (
                404,
                "NotFound".into(),
                "namespaces \"ghost\" not found".into()
            )
        );
        let e = cms
            .create(&PostParams::default(), &config_map("b", "y"))
            .await
            .expect_err("an error");
        assert_eq!(
            status(e).0,
            400,
            "namespace of the body differs from the URL's"
        );

        // Merge patch: labels added and removed; a stale resourceVersion is a conflict.
        let p = json!({"metadata": {"labels": {"l": "1"}}});
        let patched = cms
            .patch("x", &PatchParams::default(), &Patch::Merge(&p))
            .await
            .expect("merge");
        assert_eq!(
            patched
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get("l"))
                .map(String::as_str),
            Some("1")
        );
        let p = json!({"metadata": {"labels": {"l": null}, "resourceVersion": "1"}});
        let e = cms
            .patch("x", &PatchParams::default(), &Patch::Merge(&p))
            .await
            .expect_err("an error");
        assert_eq!(status(e).1, "Conflict");
        let p = json!({"metadata": {"labels": {"l": null}}});
        let patched = cms
            .patch("x", &PatchParams::default(), &Patch::Merge(&p))
            .await
            .expect("merge");
        assert!(patched.metadata.labels.unwrap_or_default().is_empty());
        let e = cms
            .patch("nope", &PatchParams::default(), &Patch::Merge(&p))
            .await
            .expect_err("an error");
        assert_eq!(status(e).0, 404, "a merge patch does not create");

        // Server-side apply creates and updates; it needs a field manager.
        let applied = cms
            .patch(
                "y",
                &PatchParams::apply("test"),
                &Patch::Apply(&config_map("a", "y")),
            )
            .await
            .expect("apply creates");
        assert_eq!(
            applied
                .data
                .as_ref()
                .and_then(|d| d.get("k"))
                .map(String::as_str),
            Some("v")
        );
        let e = cms
            .patch(
                "y",
                &PatchParams::default(),
                &Patch::Apply(&config_map("a", "y")),
            )
            .await
            .expect_err("an error");
        assert_eq!(status(e).0, 422);

        let gone = cms
            .delete("x", &DeleteParams::default())
            .await
            .expect("delete");
        assert!(gone.is_left(), "the deleted object");
        let e = cms
            .delete("x", &DeleteParams::default())
            .await
            .expect_err("an error");
        assert_eq!(status(e).0, 404);

        // Cluster-scoped: a Namespace by name, and its labels patched.
        let nss: Api<Namespace> = Api::all(c.clone());
        let p = json!({"metadata": {"labels": {"istio.io/use-waypoint": "wp"}}});
        nss.patch("a", &PatchParams::default(), &Patch::Merge(&p))
            .await
            .expect("label");
        let a = nss.get("a").await.expect("get namespace");
        assert_eq!(
            a.metadata
                .labels
                .and_then(|l| l.get("istio.io/use-waypoint").cloned())
                .as_deref(),
            Some("wp")
        );
        assert_eq!(fake.requests("get", "v1", "Namespace"), 1);
    })
    .await
    .expect("in time");
}

#[tokio::test]
async fn status_is_written_through_its_subresource_only_and_spec_changes_bump_generation() {
    use gateway_api::gateways::Gateway;
    tokio::time::timeout(LIMIT, async {
        let fake = FakeApiServer::start().await;
        fake.apply(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "a"}}));
        let dir = TempDir::new("fake-writes");
        let c = client(&fake, &dir).await;
        let gws: Api<Gateway> = Api::namespaced(c, "a");
        let gw: Gateway = serde_json::from_value(json!({"apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "Gateway", "metadata": {"name": "g", "namespace": "a"},
            "spec": {"gatewayClassName": "waypoint", "listeners": []},
            "status": {"conditions": []}}))
        .expect("gateway");
        let made = gws.create(&PostParams::default(), &gw).await.expect("create");
        assert!(made.status.is_none(), "status is not set on create");

        let cond = json!({"status": {"conditions": [{"type": "Programmed", "status": "True",
            "reason": "Programmed", "message": "", "lastTransitionTime": "2026-01-01T00:00:00Z"}]}});
        let st = gws
            .patch_status("g", &PatchParams::default(), &Patch::Merge(&cond))
            .await
            .expect("status");
        assert_eq!(st.metadata.generation, Some(1));
        let conditions = st.status.and_then(|s| s.conditions).unwrap_or_default();
        assert_eq!(conditions.len(), 1);

        // The object's own endpoint ignores status and bumps generation on a spec change.
        let p = json!({"spec": {"gatewayClassName": "other"}, "status": null});
        let g = gws.patch("g", &PatchParams::default(), &Patch::Merge(&p)).await.expect("patch");
        assert_eq!(g.metadata.generation, Some(2));
        assert_eq!(g.spec.gateway_class_name, "other");
        assert!(g.status.and_then(|s| s.conditions).is_some_and(|c| c.len() == 1), "status kept");
        let e = gws
            .delete("g/status", &DeleteParams::default())
            .await
            .expect_err("no delete of a subresource");
        assert_eq!(status(e).0, 405);
    })
    .await
    .expect("in time");
}

#[tokio::test]
async fn writes_over_http_reach_open_watches() {
    tokio::time::timeout(LIMIT, async {
        let fake = FakeApiServer::start().await;
        fake.apply(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "a"}}));
        let dir = TempDir::new("fake-writes");
        let c = client(&fake, &dir).await;
        let cms: Api<ConfigMap> = Api::namespaced(c.clone(), "a");
        let rv = fake.resource_version().to_string();
        let mut events = cms
            .watch(&WatchParams::default(), &rv)
            .await
            .expect("watch")
            .boxed();
        cms.create(&PostParams::default(), &config_map("a", "x"))
            .await
            .expect("create");
        let p = json!({"data": {"k": "w"}});
        cms.patch("x", &PatchParams::default(), &Patch::Merge(&p))
            .await
            .expect("patch");
        cms.delete("x", &DeleteParams::default())
            .await
            .expect("delete");
        let mut seen = Vec::new();
        while seen.len() < 3 {
            let ev = tokio::time::timeout(Duration::from_secs(10), events.next())
                .await
                .expect("an event in time")
                .expect("stream open")
                .expect("event");
            match ev {
                WatchEvent::Added(o) => seen.push(format!("ADDED {:?}", o.data)),
                WatchEvent::Modified(o) => seen.push(format!("MODIFIED {:?}", o.data)),
                WatchEvent::Deleted(_) => seen.push("DELETED".to_string()),
                WatchEvent::Bookmark(_) => {}
                WatchEvent::Error(e) => panic!("{e:?}"),
            }
        }
        assert_eq!(
            seen,
            [
                r#"ADDED Some({"k": "v"})"#,
                r#"MODIFIED Some({"k": "w"})"#,
                "DELETED"
            ]
        );
    })
    .await
    .expect("in time");
}

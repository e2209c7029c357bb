//! End to end without a cluster: the fake API server, the waypoint started in-process with
//! its config from the API (the real kube client), and an HBONE client. A VirtualService
//! created through the API routes traffic, then is changed and deleted live; watch streams
//! dropped and history compacted under traffic lose no request; an invalid update keeps the
//! last good version.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use waypoint_hbone::HboneClient;
use waypoint_kube::KubeSource;
use waypoint_proxy::run::{start, RunOptions, Running};
use waypoint_tests::echo::http_echo;
use waypoint_tests::hbone_client::{collect, get, http1_over, tunnel};
use waypoint_tests::kube::{Drop, FakeApiServer, Gone};
use waypoint_tests::manifests::plain_service;
use waypoint_tests::pki::{Pki, TempDir};
use waypoint_tests::waypoint::{admin_get, eventually, WAYPOINT_GATEWAY};

use crate::harness::{logs, options, LIMIT};

const REVIEWS: &str = "10.96.7.1:80";
const NET: &str = "networking.istio.io/v1";

/// `reviews`: requests from `user` go to `reviews-v2`, the rest to `reviews`.
fn virtual_service(user: &str) -> String {
    format!(
        r#"
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: reviews, namespace: default}}
spec:
  hosts: [reviews]
  http:
  - match: [{{headers: {{end-user: {{exact: {user}}}}}}}]
    route: [{{destination: {{host: reviews-v2}}}}]
  - route: [{{destination: {{host: reviews}}}}]
"#
    )
}

/// One request to `reviews` through a new tunnel: (status, `x-served-by`).
async fn call(
    client: &HboneClient,
    wp: SocketAddr,
    user: Option<&str>,
) -> anyhow::Result<(u16, String)> {
    let s = tunnel(client, wp, &[], REVIEWS).await?;
    let mut send = http1_over(s).await?;
    let mut req = get("reviews", "/");
    if let Some(u) = user {
        req.headers_mut().insert("end-user", u.parse()?);
    }
    let r = collect(send.send_request(req).await?).await?;
    Ok((r.status, r.header("x-served-by").unwrap_or("").to_string()))
}

/// Whether requests from `user` are served by `backend` (polled until the config applies).
async fn routes(client: &HboneClient, wp: SocketAddr, user: &str, backend: &str) -> bool {
    eventually(Duration::from_secs(15), || async {
        matches!(call(client, wp, Some(user)).await, Ok((200, b)) if b == backend)
    })
    .await
}

async fn ready(running: &Running) -> u16 {
    let addr = running.ready_addr.expect("ready listener");
    admin_get(addr, "/healthz/ready")
        .await
        .map(|(s, _)| s)
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_virtual_service_through_the_api_routes_live_and_a_watch_drop_loses_no_request() {
    tokio::time::timeout(2 * LIMIT, async {
        logs();
        let pki = Pki::new("cluster.local");
        let v1 = http_echo("127.0.0.41:0".parse().expect("addr"), "v1").await;
        let v2 = http_echo("127.0.0.42:0".parse().expect("addr"), "v2").await;
        let fake = FakeApiServer::start().await;
        fake.apply_yaml(WAYPOINT_GATEWAY);
        fake.apply_yaml(&plain_service("reviews", "10.96.7.1", "127.0.0.41", v1.addr.port()));
        fake.apply_yaml(&plain_service("reviews-v2", "10.96.7.2", "127.0.0.42", v2.addr.port()));
        // Pods fail to list at first: the waypoint must not be ready before every kind is.
        fake.set_installed("v1", "Pod", false);

        // The waypoint with no config files; its config comes from the API server.
        let opts = RunOptions::new(Vec::new(), pki.issue("default", "waypoint")).loopback();
        let running = start(opts).await.expect("start waypoint");
        let dir = TempDir::new("kube-e2e");
        let client = waypoint_kube::client(Some(&fake.kubeconfig(dir.path())))
            .await
            .expect("kube client");
        let (config, policy) = (running.config.clone(), running.policy_options.clone());
        let source = KubeSource::start(client, options(), move |set| {
            config.reload_resources(set, &policy);
        });
        let wp = running.hbone_addr;

        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert_eq!(ready(&running).await, 503, "ready before the first full list");
        assert!(running.config.current().is_none());
        assert_eq!(source.pending(), ["Pod"]);
        fake.set_installed("v1", "Pod", true);
        assert!(
            eventually(Duration::from_secs(15), || async { ready(&running).await == 200 }).await,
            "ready after every kind's first list: {:?}",
            running.config.last_errors()
        );

        let mesh = HboneClient::new(pki.store("default", "productpage"));
        // No VirtualService: everything goes to reviews (v1).
        assert_eq!(call(&mesh, wp, Some("jason")).await.expect("call"), (200, "v1".into()));

        // Created through the API: jason goes to v2, others stay on v1.
        fake.apply_yaml(&virtual_service("jason"));
        assert!(routes(&mesh, wp, "jason", "v2").await, "VirtualService created");
        assert_eq!(call(&mesh, wp, Some("mike")).await.expect("call"), (200, "v1".into()));
        assert_eq!(call(&mesh, wp, None).await.expect("call"), (200, "v1".into()));

        // Changed live: now mike goes to v2, jason back to v1.
        fake.apply_yaml(&virtual_service("mike"));
        assert!(routes(&mesh, wp, "mike", "v2").await, "VirtualService changed");
        assert_eq!(call(&mesh, wp, Some("jason")).await.expect("call"), (200, "v1".into()));

        // Under traffic: watch streams cut, then the history compacted (410: every kind
        // relists and the whole config is rebuilt), and the VirtualService changed while the
        // watches are down. No request fails; the change arrives.
        let stop = Arc::new(AtomicBool::new(false));
        let traffic = {
            let stop = stop.clone();
            let mesh = HboneClient::new(pki.store("default", "productpage"));
            tokio::spawn(async move {
                let (mut ok, mut failed, mut v2) = (0usize, Vec::new(), 0usize);
                // Bounded: at most 3000 requests, one every 5 ms.
                for _ in 0..3000 {
                    if stop.load(Ordering::Relaxed) && ok >= 200 {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    match call(&mesh, wp, Some("jason")).await {
                        Ok((200, b)) => {
                            ok += 1;
                            v2 += usize::from(b == "v2");
                        }
                        other => failed.push(format!("{other:?}")),
                    }
                }
                (ok, failed, v2)
            })
        };
        tokio::time::sleep(Duration::from_millis(300)).await;
        fake.drop_watches(Drop::Abort);
        fake.apply_yaml(&virtual_service("jason"));
        tokio::time::sleep(Duration::from_millis(300)).await;
        fake.compact(Gone::Event);
        tokio::time::sleep(Duration::from_millis(300)).await;
        fake.drop_watches(Drop::End);
        assert!(routes(&mesh, wp, "jason", "v2").await, "the change made during the drop arrived");
        tokio::time::sleep(Duration::from_millis(300)).await;
        stop.store(true, Ordering::Relaxed);
        let (ok, failed, to_v2) = traffic.await.expect("traffic task");
        assert!(failed.is_empty(), "{} requests failed: {:?}", failed.len(), &failed[..failed.len().min(5)]);
        assert!(ok >= 200, "{ok} requests");
        assert!(to_v2 > 0 && to_v2 < ok, "the change applied under traffic: {to_v2} of {ok} to v2");
        assert!(fake.requests("list", NET, "VirtualService") >= 2, "410 forced a relist");
        eprintln!("under traffic: {ok} requests, none failed; {to_v2} routed to v2 after the VirtualService change");

        // An invalid update through the API is rejected alone, as for a file: the last good
        // version keeps routing.
        fake.apply_yaml(&virtual_service("mike").replace("  hosts:", "  bogus: 1\n  hosts:"));
        assert!(
            eventually(Duration::from_secs(15), || async {
                running.config.last_errors().iter().any(|e| e.kind == "VirtualService" && e.name == "reviews")
            })
            .await,
            "the invalid VirtualService is reported"
        );
        assert_eq!(call(&mesh, wp, Some("jason")).await.expect("call"), (200, "v2".into()));
        assert_eq!(call(&mesh, wp, Some("mike")).await.expect("call"), (200, "v1".into()));

        // Deleted: everything back to v1.
        assert!(fake.delete(NET, "VirtualService", "default", "reviews"));
        assert!(routes(&mesh, wp, "jason", "v1").await, "VirtualService deleted");
        assert_eq!(ready(&running).await, 200);
        assert!(running.config.last_errors().is_empty(), "{:?}", running.config.last_errors());
        drop(source);
    })
    .await
    .expect("in time");
}

//! The bookinfo backends of `waypoint demo`: one HBONE server per pod IP of the config, each
//! serving a tiny HTTP/1.1 app on the tunnel that answers with its name and version.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

use anyhow::Context;
use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use waypoint_core::registry::Registry;
use waypoint_hbone::server::{serve, BoxFuture, ConnectHandler, ConnectRequest, Tunnel};
use waypoint_hbone::tls::{config::server_config, CertStore};
use waypoint_hbone::H2Stream;

/// One pod of the config that the demo runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pod {
    pub ip: IpAddr,
    /// `app-version` from the pod labels (`reviews-v3`), else the IP.
    pub name: String,
    pub app: String,
    pub version: String,
    pub namespace: String,
    pub service_account: String,
    /// Ports the pod's services target (the app listens on these behind HBONE).
    pub ports: Vec<u16>,
}

/// Every mesh endpoint of the registry, once per IP, with the target ports of its services.
pub fn pods(registry: &Registry) -> Vec<Pod> {
    let mut by_ip: BTreeMap<IpAddr, Pod> = BTreeMap::new();
    for svc in &registry.services {
        for ep in svc.endpoints.iter().filter(|e| e.mesh) {
            let label = |k: &str| ep.labels.get(k).cloned().unwrap_or_default();
            let pod = by_ip.entry(ep.ip).or_insert_with(|| {
                let (app, version) = (label("app"), label("version"));
                let name = match (app.is_empty(), version.is_empty()) {
                    (false, false) => format!("{app}-{version}"),
                    (false, true) => app.clone(),
                    _ => ep.ip.to_string(),
                };
                Pod {
                    ip: ep.ip,
                    name,
                    app,
                    version,
                    namespace: ep.namespace.clone(),
                    service_account: ep
                        .service_account
                        .clone()
                        .unwrap_or_else(|| "default".into()),
                    ports: vec![],
                }
            });
            for p in &svc.ports {
                let tp = svc.target_port(p.port, ep);
                if !pod.ports.contains(&tp) {
                    pod.ports.push(tp);
                }
            }
        }
    }
    by_ip.into_values().collect()
}

/// What one backend saw.
#[derive(Debug, Default)]
pub struct Seen {
    /// Requests served.
    pub requests: std::sync::atomic::AtomicUsize,
    /// Distinct SPIFFE identities of the HBONE peers (the waypoint's).
    pub peers: Mutex<Vec<String>>,
}

/// A running backend; aborted on drop.
#[derive(Debug)]
pub struct Backend {
    pub pod: Pod,
    pub addr: SocketAddr,
    pub seen: Arc<Seen>,
    task: JoinHandle<()>,
}

impl Backend {
    /// Stop serving and wait for the accept loop to end.
    pub async fn stop(mut self) {
        self.task.abort();
        let _ = (&mut self.task).await;
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The destination side of HBONE for one pod, as its node's ztunnel would accept it.
#[derive(Debug)]
struct PodApp {
    pod: Pod,
    seen: Arc<Seen>,
}

impl ConnectHandler for PodApp {
    fn connect(self: Arc<Self>, req: ConnectRequest) -> BoxFuture<Result<Tunnel, StatusCode>> {
        Box::pin(async move {
            let Some(dest) = req.destination else {
                return Err(StatusCode::BAD_REQUEST);
            };
            // ztunnel requires the authority's IP to be the pod that was dialled; a port
            // nothing listens on gets 503 as a refused upstream connection would.
            if dest.ip() != req.local_addr.ip() {
                return Err(StatusCode::BAD_REQUEST);
            }
            if !self.pod.ports.contains(&dest.port()) {
                return Err(StatusCode::SERVICE_UNAVAILABLE);
            }
            if let Some(id) = &req.peer_identity {
                let id = id.to_string();
                let mut peers = self.seen.peers.lock().unwrap_or_else(|p| p.into_inner());
                if !peers.contains(&id) {
                    peers.push(id);
                }
            }
            let app = self.clone();
            Ok(Box::new(move |s: H2Stream| {
                Box::pin(async move { app.serve_http(s).await }) as BoxFuture<()>
            }) as Tunnel)
        })
    }
}

impl PodApp {
    async fn serve_http(self: Arc<Self>, stream: H2Stream) {
        let app = self.clone();
        let svc = service_fn(move |req: Request<Incoming>| {
            let app = app.clone();
            async move { Ok::<_, Infallible>(app.answer(&req)) }
        });
        let _ = hyper::server::conn::http1::Builder::new()
            .serve_connection(TokioIo::new(stream), svc)
            .await;
    }

    fn answer(&self, req: &Request<Incoming>) -> Response<Full<Bytes>> {
        self.seen
            .requests
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let body = serde_json::json!({
            "service": self.pod.app,
            "version": self.pod.version,
            "pod": self.pod.name,
            "method": req.method().as_str(),
            "path": req.uri().path(),
        });
        let mut resp = Response::new(Full::new(Bytes::from(body.to_string() + "\n")));
        let headers = resp.headers_mut();
        if let Ok(v) = HeaderValue::from_str(&self.pod.name) {
            headers.insert("x-served-by", v);
        }
        headers.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        resp
    }
}

/// Start `pod`'s HBONE server on `<pod IP>:hbone_port` with `store` as its identity.
pub async fn start(pod: Pod, hbone_port: u16, store: Arc<CertStore>) -> anyhow::Result<Backend> {
    let bind = SocketAddr::new(pod.ip, hbone_port);
    let listener = TcpListener::bind(bind).await.with_context(|| {
        format!(
            "binding {}'s HBONE server on {bind}: port {hbone_port} taken (a `waypoint run` or \
             another demo?); pick another: make demo DEMO_ARGS='--mesh-port 25008', or \
             waypoint demo --mesh-port 25008 (127.10.0.x needs Linux)",
            pod.name
        )
    })?;
    let addr = listener.local_addr()?;
    let seen = Arc::new(Seen::default());
    let handler = Arc::new(PodApp {
        pod: pod.clone(),
        seen: seen.clone(),
    });
    let task = tokio::spawn(serve(listener, server_config(store)?, handler));
    Ok(Backend {
        pod,
        addr,
        seen,
        task,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bookinfo_pods_come_from_the_example_config() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/bookinfo");
        let loaded = waypoint_loader::load_paths(&[root], "default");
        let mut diags = waypoint_core::error::Diagnostics::default();
        let reg = Registry::build(&loaded.resources, &mut diags);
        let pods = pods(&reg);
        let table: Vec<(String, String, String, Vec<u16>)> = pods
            .iter()
            .map(|p| {
                (
                    p.name.clone(),
                    p.ip.to_string(),
                    p.service_account.clone(),
                    p.ports.clone(),
                )
            })
            .collect();
        let want = [
            ("productpage-v1", "127.10.0.10", "bookinfo-productpage"),
            ("details-v1", "127.10.0.11", "bookinfo-details"),
            ("reviews-v1", "127.10.0.21", "bookinfo-reviews"),
            ("reviews-v2", "127.10.0.22", "bookinfo-reviews"),
            ("reviews-v3", "127.10.0.23", "bookinfo-reviews"),
            ("ratings-v1", "127.10.0.31", "bookinfo-ratings"),
        ];
        assert_eq!(table.len(), want.len(), "{table:?}");
        for (name, ip, sa) in want {
            assert!(
                table
                    .iter()
                    .any(|(n, i, s, p)| n == name && i == ip && s == sa && p == &vec![9080]),
                "{name} missing in {table:?}"
            );
        }
    }
}

//! Start the waypoint host in-process for a test: certificates from the test PKI, a config
//! directory it watches, and every listener on an ephemeral loopback port.

use std::path::PathBuf;
use std::time::Duration;

use waypoint_proxy::run::{start, RunOptions, Running};

use crate::pki::{Pki, TempDir};

/// The waypoint Gateway every test config starts with (as `istioctl waypoint apply`).
pub const WAYPOINT_GATEWAY: &str = r#"
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: waypoint
  namespace: default
  labels:
    istio.io/waypoint-for: service
spec:
  gatewayClassName: istio-waypoint
  listeners:
  - name: mesh
    port: 15008
    protocol: HBONE
"#;

/// A running waypoint with its config directory.
#[derive(Debug)]
pub struct TestWaypoint {
    pub running: Running,
    pub config_dir: TempDir,
}

impl TestWaypoint {
    /// Start as `default/waypoint` of `pki` with the waypoint Gateway plus the manifests in
    /// `yaml` (empty: every destination is an unknown address, forwarded as is).
    pub async fn start(pki: &Pki, yaml: &str, hbone_upstream_port: u16) -> TestWaypoint {
        Self::start_with(pki, yaml, |o| o.hbone_upstream_port = hbone_upstream_port).await
    }

    /// As [`TestWaypoint::start`], with `edit` applied to the run options (every listener on
    /// loopback, config polled every 200 ms) before starting.
    pub async fn start_with(
        pki: &Pki,
        yaml: &str,
        edit: impl FnOnce(&mut RunOptions),
    ) -> TestWaypoint {
        let config_dir = TempDir::new("config");
        std::fs::write(config_dir.path().join("gateway.yaml"), WAYPOINT_GATEWAY)
            .expect("write gateway");
        std::fs::write(config_dir.path().join("config.yaml"), yaml).expect("write config");
        let certs = pki.issue("default", "waypoint");
        let mut opts = RunOptions::new(vec![config_dir.path().to_path_buf()], certs).loopback();
        opts.watch_interval = Duration::from_millis(200);
        edit(&mut opts);
        let running = start(opts).await.expect("start waypoint");
        TestWaypoint {
            running,
            config_dir,
        }
    }

    /// Start as `default/waypoint` with the manifests already in `dir` (watched).
    pub async fn start_in(
        pki: &Pki,
        dir: &std::path::Path,
        hbone_upstream_port: u16,
    ) -> TestWaypoint {
        let config_dir = TempDir::new("config-unused");
        let certs = pki.issue("default", "waypoint");
        let mut opts = RunOptions::new(vec![dir.to_path_buf()], certs).loopback();
        opts.hbone_upstream_port = hbone_upstream_port;
        opts.watch_interval = Duration::from_millis(500);
        let running = start(opts).await.expect("start waypoint");
        TestWaypoint {
            running,
            config_dir,
        }
    }

    pub fn config_file(&self) -> PathBuf {
        self.config_dir.path().join("config.yaml")
    }
}

/// GET `http://addr/path` with a tiny HTTP/1.1 client; returns (status, body).
pub async fn admin_get(addr: std::net::SocketAddr, path: &str) -> anyhow::Result<(u16, String)> {
    use http_body_util::BodyExt;
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let (mut send, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp)).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let req = http::Request::builder()
        .uri(path)
        .header("host", addr.to_string())
        .body(crate::echo::empty())?;
    let resp = send.send_request(req).await?;
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await?.to_bytes();
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

/// Poll `f` every 100 ms until it returns true or `timeout` passes.
pub async fn eventually<F, Fut>(timeout: Duration, mut f: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if f().await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

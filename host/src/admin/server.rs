//! The admin HTTP server: one small router shared by the readiness, stats and config-dump
//! listeners; readiness is true only when certificates and config are both loaded.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::json;
use tokio::net::TcpListener;
use tracing::{debug, warn};

use super::metrics::Metrics;
use crate::config::ConfigStore;
use crate::tls::CertStore;

/// What the admin endpoints report on.
#[derive(Debug)]
pub struct Admin {
    pub config: Arc<ConfigStore>,
    pub certs: arc_swap::ArcSwapOption<CertStore>,
    pub metrics: Arc<Metrics>,
}

impl Admin {
    /// Ready: certificates and a config are loaded.
    pub fn ready(&self) -> bool {
        self.certs.load().is_some() && self.config.current().is_some()
    }

    /// The config dump document.
    pub fn config_dump(&self) -> serde_json::Value {
        let cert = self.certs.load_full().map(|c| {
            json!({
                "identity": c.identity().to_string(),
                "chain_length": c.current().material.certified_key.cert.len(),
                "roots": c.current().material.roots.len(),
            })
        });
        let last_errors: Vec<String> = self
            .config
            .last_errors()
            .iter()
            .map(|e| e.to_string())
            .collect();
        match self.config.current() {
            None => json!({
                "ready": false,
                "certificates": cert,
                "last_rejected_errors": last_errors,
            }),
            Some(c) => {
                let resources: Vec<_> = c
                    .resources
                    .iter()
                    .map(|r| {
                        json!({
                            "kind": r.kind, "namespace": r.namespace, "name": r.name,
                            "origin": r.origin,
                        })
                    })
                    .collect();
                let loaded_at = c
                    .loaded_at
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or(0);
                json!({
                    "ready": self.ready(),
                    "generation": c.generation,
                    "loaded_at_unix": loaded_at,
                    "files": c.files.iter().map(|f| f.display().to_string()).collect::<Vec<_>>(),
                    "certificates": cert,
                    "resources": resources,
                    "warnings": c.warnings.iter().map(|w| w.to_string()).collect::<Vec<_>>(),
                    "last_rejected_errors": last_errors,
                    "policy": c.policy.dump(),
                })
            }
        }
    }

    fn route(&self, req: &Request<Incoming>) -> Response<Full<Bytes>> {
        let text = |status: StatusCode, ct: &'static str, body: String| {
            let mut r = Response::new(Full::new(Bytes::from(body)));
            *r.status_mut() = status;
            r.headers_mut().insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static(ct),
            );
            r
        };
        match req.uri().path() {
            "/healthz/ready" => {
                if self.ready() {
                    text(StatusCode::OK, "text/plain", "ready\n".into())
                } else {
                    text(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "text/plain",
                        "not ready: certificates or config not loaded\n".into(),
                    )
                }
            }
            "/stats/prometheus" | "/metrics" => text(
                StatusCode::OK,
                "text/plain; version=0.0.4; charset=utf-8",
                self.metrics.encode(),
            ),
            "/config_dump" => {
                let body = serde_json::to_string_pretty(&self.config_dump())
                    .unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"));
                text(StatusCode::OK, "application/json", body)
            }
            _ => text(StatusCode::NOT_FOUND, "text/plain", "not found\n".into()),
        }
    }
}

/// Serve the admin router on `listener` until the task is aborted.
pub async fn serve(listener: TcpListener, admin: Arc<Admin>) {
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                warn!(error = %e, "admin: accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let admin = admin.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req: Request<Incoming>| {
                let r = admin.route(&req);
                async move { Ok::<_, Infallible>(r) }
            });
            if let Err(e) = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tcp), svc)
                .await
            {
                debug!(%peer, error = %e, "admin: connection error");
            }
        });
    }
}

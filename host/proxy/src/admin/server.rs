//! The admin HTTP servers: one router per listener (admin: everything, `/config_dump` and
//! `/proxy_config` included; stats: exactly `GET /stats/prometheus`; readiness: exactly
//! `GET /healthz/ready`), with header timeouts.

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use serde_json::json;
use tokio::net::TcpListener;
use tracing::{debug, warn};

use super::proxy_config::{self, Mode, ProxyConfig};
use crate::config::ConfigStore;
use crate::telemetry::metrics::Metrics;
use waypoint_hbone::tls::CertStore;

/// What the admin endpoints report on.
#[derive(Debug)]
pub struct Admin {
    pub config: Arc<ConfigStore>,
    pub certs: arc_swap::ArcSwapOption<CertStore>,
    pub metrics: Arc<Metrics>,
    /// Set when shutdown starts: readiness then answers 503 so load balancers stop sending.
    pub draining: AtomicBool,
}

impl Admin {
    pub fn new(config: Arc<ConfigStore>, certs: Arc<CertStore>, metrics: Arc<Metrics>) -> Self {
        Admin {
            config,
            certs: arc_swap::ArcSwapOption::from(Some(certs)),
            metrics,
            draining: AtomicBool::new(false),
        }
    }

    /// Ready: certificates and a config are loaded, and not shutting down.
    pub fn ready(&self) -> bool {
        !self.draining.load(Ordering::Acquire)
            && self.certs.load().is_some()
            && self.config.current().is_some()
    }

    /// Shutdown started: report not ready from now on.
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::Release);
    }

    /// The config dump document.
    pub fn config_dump(&self) -> serde_json::Value {
        let cert = self.certs.load_full().map(|c| {
            let current = c.current();
            // The leaf's validity, as `proxy-config secrets` shows it (`waypoint status` reads it).
            let leaf = current
                .material
                .certified_key
                .cert
                .first()
                .map(|d| proxy_config::certs::secrets(&[d.as_ref()], &[]).0)
                .and_then(|v| v.into_iter().next());
            json!({
                "identity": c.identity().to_string(),
                "chain_length": current.material.certified_key.cert.len(),
                "roots": current.material.roots.len(),
                "not_before": leaf.as_ref().map(|l| l.not_before.clone()),
                "not_after": leaf.as_ref().map(|l| l.not_after.clone()),
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

    /// The `proxy-config` view of the config generation in force and the certificates in
    /// use (never key material).
    pub fn proxy_config(&self) -> ProxyConfig {
        let store = self.certs.load_full();
        let trust_domain = store.as_ref().map_or_else(
            || "cluster.local".to_string(),
            |c| c.identity().trust_domain,
        );
        let mut warnings: Vec<String> = self
            .config
            .last_errors()
            .iter()
            .map(|e| format!("config rejected: {e}"))
            .collect();
        let (secrets, cert_warnings) = match &store {
            Some(c) => {
                let current = c.current();
                let chain: Vec<&[u8]> = current
                    .material
                    .certified_key
                    .cert
                    .iter()
                    .map(|d| d.as_ref())
                    .collect();
                let roots: Vec<&[u8]> = current.material.roots.iter().map(|d| d.as_ref()).collect();
                proxy_config::certs::secrets(&chain, &roots)
            }
            None => (Vec::new(), vec!["no certificates loaded".to_string()]),
        };
        warnings.extend(cert_warnings);
        let Some(state) = self.config.current() else {
            warnings.push("no config accepted yet".into());
            return ProxyConfig {
                mode: Mode::Host,
                waypoint: None,
                generation: None,
                routes: Vec::new(),
                clusters: Vec::new(),
                endpoints: Vec::new(),
                policies: Vec::new(),
                secrets,
                warnings,
            };
        };
        let snap = &state.policy.snapshot;
        warnings.extend(
            state
                .warnings
                .iter()
                .map(|w| format!("config warning: {w}")),
        );
        let (clusters, endpoints) = proxy_config::snapshot::clusters(snap, &trust_domain);
        ProxyConfig {
            mode: Mode::Host,
            waypoint: proxy_config::snapshot::waypoint(snap),
            generation: Some(state.generation),
            routes: proxy_config::snapshot::routes(snap),
            clusters,
            endpoints,
            policies: proxy_config::snapshot::policies(snap),
            secrets,
            warnings,
        }
    }

    fn ready_response(&self) -> Response<Full<Bytes>> {
        if self.ready() {
            text(StatusCode::OK, "text/plain", "ready\n".into())
        } else if self.draining.load(Ordering::Acquire) {
            text(
                StatusCode::SERVICE_UNAVAILABLE,
                "text/plain",
                "not ready: draining\n".into(),
            )
        } else {
            text(
                StatusCode::SERVICE_UNAVAILABLE,
                "text/plain",
                "not ready: certificates or config not loaded\n".into(),
            )
        }
    }

    fn stats_response(&self) -> Response<Full<Bytes>> {
        text(
            StatusCode::OK,
            "text/plain; version=0.0.4; charset=utf-8",
            self.metrics.encode(),
        )
    }

    fn config_dump_response(&self) -> Response<Full<Bytes>> {
        let body = serde_json::to_string_pretty(&self.config_dump())
            .unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"));
        text(StatusCode::OK, "application/json", body)
    }

    fn proxy_config_response(&self) -> Response<Full<Bytes>> {
        let body = serde_json::to_string_pretty(&self.proxy_config())
            .unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"));
        text(StatusCode::OK, "application/json", body)
    }

    /// Answer `req` as the listener of `role` does.
    fn route(&self, role: Role, req: &Request<Incoming>) -> Response<Full<Bytes>> {
        // The raw request path, compared exactly: no normalization happens here, so
        // `/stats/prometheus/../../config_dump` or `%2e%2e` forms match nothing (the query
        // string is not part of `path()`).
        let Some(endpoint) = Endpoint::of(req.uri().path()) else {
            return not_found();
        };
        if !role.serves(endpoint) {
            return not_found();
        }
        // Read-only endpoints: GET only (Envoy's admin needs POST for its mutating ones,
        // which this host does not have).
        if req.method() != Method::GET {
            let mut r = text(
                StatusCode::METHOD_NOT_ALLOWED,
                "text/plain",
                "method not allowed\n".into(),
            );
            r.headers_mut()
                .insert(http::header::ALLOW, http::HeaderValue::from_static("GET"));
            return r;
        }
        match endpoint {
            Endpoint::Ready => self.ready_response(),
            Endpoint::Stats => self.stats_response(),
            Endpoint::ConfigDump => self.config_dump_response(),
            Endpoint::ProxyConfig => self.proxy_config_response(),
        }
    }
}

/// What one admin listener serves. Istio exposes the merged metrics on :15020 and readiness
/// on :15021 to the pod network, and Envoy's admin (:15000) on loopback only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Every endpoint, `/config_dump` and `/proxy_config` included (bind it to loopback).
    Admin,
    /// Exactly `GET /stats/prometheus`.
    Stats,
    /// Exactly `GET /healthz/ready`.
    Ready,
}

impl Role {
    fn serves(self, e: Endpoint) -> bool {
        match self {
            Role::Admin => true,
            Role::Stats => e == Endpoint::Stats,
            Role::Ready => e == Endpoint::Ready,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Endpoint {
    Ready,
    Stats,
    ConfigDump,
    ProxyConfig,
}

impl Endpoint {
    fn of(path: &str) -> Option<Self> {
        match path {
            "/healthz/ready" => Some(Endpoint::Ready),
            "/stats/prometheus" => Some(Endpoint::Stats),
            "/config_dump" => Some(Endpoint::ConfigDump),
            "/proxy_config" => Some(Endpoint::ProxyConfig),
            _ => None,
        }
    }
}

fn text(status: StatusCode, ct: &'static str, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static(ct),
    );
    r
}

fn not_found() -> Response<Full<Bytes>> {
    text(StatusCode::NOT_FOUND, "text/plain", "not found\n".into())
}

/// Serve the `role` router on `listener` until the task is aborted. Each connection must
/// deliver a request head within `header_timeout` (hyper's header-read timer, which also runs
/// while a keep-alive connection waits for its next request, so it bounds idle connections too).
pub async fn serve(listener: TcpListener, admin: Arc<Admin>, role: Role, header_timeout: Duration) {
    // Connections live in this set: aborting the task closes them too.
    let mut conns = tokio::task::JoinSet::new();
    loop {
        let (tcp, peer) = tokio::select! {
            Some(_) = conns.join_next(), if !conns.is_empty() => continue,
            accepted = listener.accept() => match accepted {
                Ok(x) => x,
                Err(e) => {
                    warn!(error = %e, "admin: accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let admin = admin.clone();
        conns.spawn(async move {
            let svc = service_fn(move |req: Request<Incoming>| {
                let r = admin.route(role, &req);
                async move { Ok::<_, Infallible>(r) }
            });
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(waypoint_hbone::timeouts::Timeouts::enabled(header_timeout))
                .max_buf_size(MAX_HEAD);
            if let Err(e) = builder.serve_connection(TokioIo::new(tcp), svc).await {
                debug!(%peer, ?role, error = %e, "admin: connection error");
            }
        });
    }
}

/// Read buffer bound of an admin connection (request heads are tiny; hyper's minimum is 8 KiB).
const MAX_HEAD: usize = 16 * 1024;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_serve_only_their_endpoints() {
        for (path, ep) in [
            ("/healthz/ready", Some(Endpoint::Ready)),
            ("/stats/prometheus", Some(Endpoint::Stats)),
            ("/config_dump", Some(Endpoint::ConfigDump)),
            ("/proxy_config", Some(Endpoint::ProxyConfig)),
            ("/proxy_config/", None),
            ("/stats/prometheus/../../proxy_config", None),
            ("/stats/prometheus/../../config_dump", None),
            ("/stats/prometheus/%2e%2e/%2e%2e/config_dump", None),
            ("//config_dump", None),
            ("/config_dump/", None),
            ("/metrics", None),
            ("/quitquitquit", None),
        ] {
            assert_eq!(Endpoint::of(path), ep, "{path}");
        }
        assert!(Role::Admin.serves(Endpoint::ConfigDump));
        assert!(!Role::Stats.serves(Endpoint::ConfigDump));
        assert!(!Role::Stats.serves(Endpoint::Ready));
        assert!(Role::Stats.serves(Endpoint::Stats));
        assert!(!Role::Ready.serves(Endpoint::ConfigDump));
        assert!(Role::Admin.serves(Endpoint::ProxyConfig));
        assert!(!Role::Stats.serves(Endpoint::ProxyConfig));
        assert!(!Role::Ready.serves(Endpoint::ProxyConfig));
        assert!(!Role::Ready.serves(Endpoint::Stats));
        assert!(Role::Ready.serves(Endpoint::Ready));
    }
}

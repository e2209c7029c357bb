//! The waypoint's CONNECT handler: L4 checks and upstream reachability before answering,
//! then protocol detection and either the L7 proxy (HTTP/1.1, HTTP/2) or a TCP relay.

use std::sync::Arc;
use std::time::Duration;

use http::StatusCode;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::AsyncWriteExt;
use tracing::{debug, info, warn};

use super::decide::Destination;
use super::headers::forwarded_for;
use super::http::{handle, TunnelCtx};
use super::io::UpstreamIo;
use super::sniff::{detect, Protocol, Rewind};
use super::Shared;
use crate::admin::metrics::TcpLabels;
use crate::hbone::server::{BoxFuture, ConnectHandler, ConnectRequest, Tunnel};
use crate::hbone::H2Stream;

/// How long to wait for the first bytes before treating a tunnel as opaque TCP.
pub const DETECT_TIMEOUT: Duration = Duration::from_secs(1);
const RELAY_BUFFER: usize = 64 * 1024;

/// The waypoint's [`ConnectHandler`].
#[derive(Debug)]
pub struct WaypointHandler {
    pub shared: Arc<Shared>,
}

impl ConnectHandler for WaypointHandler {
    fn connect(self: Arc<Self>, req: ConnectRequest) -> BoxFuture<Result<Tunnel, StatusCode>> {
        Box::pin(async move { self.open(req).await })
    }
}

/// Headers of an incoming CONNECT to repeat on the upstream CONNECT of an L4 relay:
/// `forwarded` (synthesized from the peer address when absent), `baggage`, `traceparent`.
fn relay_headers(req: &ConnectRequest) -> http::HeaderMap {
    let mut out = http::HeaderMap::new();
    for name in ["forwarded", "baggage", "traceparent"] {
        for v in req.headers.get_all(name) {
            out.append(name, v.clone());
        }
    }
    if !out.contains_key("forwarded") {
        if let Ok(v) = http::HeaderValue::from_str(&format!("for=\"{}\"", req.peer_addr)) {
            out.insert("forwarded", v);
        }
    }
    out
}

fn header(req: &ConnectRequest, name: &str) -> Option<String> {
    req.headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

impl WaypointHandler {
    async fn open(&self, req: ConnectRequest) -> Result<Tunnel, StatusCode> {
        let Some(cfg) = self.shared.config.current() else {
            warn!(authority = %req.authority, "hbone: no config loaded yet (503)");
            return Err(StatusCode::SERVICE_UNAVAILABLE);
        };
        let forwarded = header(&req, "forwarded");
        let ctx = TunnelCtx {
            principal: req.peer_identity.as_ref().map(|i| i.to_string()),
            peer_identity: req.peer_identity.clone(),
            source_ip: forwarded
                .as_deref()
                .and_then(forwarded_for)
                .or(Some(req.peer_addr.ip())),
            destination: req.authority.clone(),
            baggage: header(&req, "baggage"),
            relay_headers: relay_headers(&req),
        };
        // L4 policy decides at CONNECT for TCP service ports; HTTP ports get L7 authz per
        // request (as Istio's waypoint applies network vs HTTP RBAC).
        if cfg.policy.is_tcp_port(&req.authority)
            && !cfg
                .policy
                .allow_tcp(ctx.principal.as_deref(), ctx.source_ip, &req.authority)
        {
            info!(source = ?ctx.principal, destination = %req.authority, "hbone: denied by L4 policy (401)");
            return Err(StatusCode::UNAUTHORIZED);
        }
        let destination = cfg.policy.destination(&req.authority, req.destination);
        let force_tcp = cfg.policy.is_tcp_port(&req.authority);
        // Connect first where the upstream is fixed (pass-through, TCP service ports), so an
        // unreachable one gets 503 before the tunnel is accepted.
        let upstream = match &destination {
            // A hostname the config does not know: HTTP requests get the core's 404; opaque
            // bytes are closed (there is nothing to relay them to).
            Destination::Unknown => None,
            Destination::Service(_) if force_tcp => {
                let Some(t) = cfg.policy.tcp_target(&req.authority) else {
                    info!(destination = %req.authority, "hbone: TCP service has no endpoints (503)");
                    return Err(StatusCode::SERVICE_UNAVAILABLE);
                };
                match self
                    .shared
                    .upstreams
                    .connect_with(&t, ctx.relay_headers.clone())
                    .await
                {
                    Ok(io) => Some(io),
                    Err(e) => {
                        info!(destination = %req.authority, error = %e, "hbone: upstream unreachable (503)");
                        return Err(StatusCode::SERVICE_UNAVAILABLE);
                    }
                }
            }
            Destination::Service(_) => None,
            Destination::Passthrough(t) => match self
                .shared
                .upstreams
                .connect_with(t, ctx.relay_headers.clone())
                .await
            {
                Ok(io) => Some(io),
                Err(e) => {
                    info!(destination = %req.authority, error = %e, "hbone: upstream unreachable (503)");
                    return Err(StatusCode::SERVICE_UNAVAILABLE);
                }
            },
        };
        let shared = self.shared.clone();
        Ok(Box::new(move |stream: H2Stream| {
            Box::pin(serve_tunnel(
                shared,
                Arc::new(ctx),
                destination,
                upstream,
                force_tcp,
                stream,
            )) as BoxFuture<()>
        }))
    }
}

async fn serve_tunnel(
    shared: Arc<Shared>,
    ctx: Arc<TunnelCtx>,
    destination: Destination,
    upstream: Option<UpstreamIo>,
    force_tcp: bool,
    stream: H2Stream,
) {
    let detected = if force_tcp {
        Ok((Protocol::Tcp, Rewind::new(bytes::Bytes::new(), stream)))
    } else {
        detect(stream, DETECT_TIMEOUT).await
    };
    let (proto, stream) = match detected {
        Ok(x) => x,
        Err(e) => {
            debug!(destination = %ctx.destination, error = %e, "tunnel: read failed during detection");
            return;
        }
    };
    debug!(destination = %ctx.destination, protocol = proto.as_str(), "tunnel: detected");
    let io = TokioIo::new(stream);
    let svc_ctx = ctx.clone();
    let svc_shared = shared.clone();
    let svc = service_fn(move |req| handle(svc_shared.clone(), svc_ctx.clone(), req));
    match proto {
        Protocol::Http1 => {
            drop(upstream);
            if let Err(e) = hyper::server::conn::http1::Builder::new()
                .serve_connection(io, svc)
                .with_upgrades()
                .await
            {
                debug!(destination = %ctx.destination, error = %e, "tunnel: http1 ended");
            }
        }
        Protocol::Http2 => {
            drop(upstream);
            if let Err(e) = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                .initial_stream_window_size(4 * 1024 * 1024)
                .initial_connection_window_size(16 * 1024 * 1024)
                .serve_connection(io, svc)
                .await
            {
                debug!(destination = %ctx.destination, error = %e, "tunnel: http2 ended");
            }
        }
        Protocol::Tcp => {
            let mut downstream = io.into_inner();
            let upstream = match (upstream, &destination) {
                (Some(u), _) => Ok(u),
                (None, Destination::Service(_)) | (None, Destination::Unknown) => {
                    match shared
                        .config
                        .current()
                        .and_then(|c| c.policy.tcp_target(&ctx.destination))
                    {
                        Some(t) => shared
                            .upstreams
                            .connect_with(&t, ctx.relay_headers.clone())
                            .await
                            .map_err(|e| e.to_string()),
                        None => Err("no endpoint for TCP destination".to_string()),
                    }
                }
                (None, Destination::Passthrough(t)) => shared
                    .upstreams
                    .connect_with(t, ctx.relay_headers.clone())
                    .await
                    .map_err(|e| e.to_string()),
            };
            let labels = TcpLabels {
                reporter: "waypoint".into(),
                source_principal: ctx.principal.clone().unwrap_or_else(|| "unknown".into()),
                source_workload_namespace: ctx
                    .peer_identity
                    .as_ref()
                    .map(|i| i.namespace.clone())
                    .unwrap_or_else(|| "unknown".into()),
                destination_service: ctx.destination.clone(),
                response_flags: "-".into(),
                connection_security_policy: "mutual_tls".into(),
            };
            // Opaque bytes on an HTTP port: L4 policy still applies before relaying.
            if let Some(cfg) = shared.config.current() {
                if !cfg
                    .policy
                    .allow_tcp(ctx.principal.as_deref(), ctx.source_ip, &ctx.destination)
                {
                    info!(destination = %ctx.destination, "tunnel: opaque TCP denied by policy");
                    let _ = downstream.shutdown().await;
                    return;
                }
            }
            let mut upstream = match upstream {
                Ok(u) => u,
                Err(e) => {
                    info!(destination = %ctx.destination, error = %e, "tunnel: TCP upstream failed");
                    let _ = downstream.shutdown().await;
                    return;
                }
            };
            shared.metrics.tcp_opened.get_or_create(&labels).inc();
            match tokio::io::copy_bidirectional_with_sizes(
                &mut downstream,
                &mut upstream,
                RELAY_BUFFER,
                RELAY_BUFFER,
            )
            .await
            {
                Ok((from_down, from_up)) => {
                    shared
                        .metrics
                        .tcp_received
                        .get_or_create(&labels)
                        .inc_by(from_down);
                    shared
                        .metrics
                        .tcp_sent
                        .get_or_create(&labels)
                        .inc_by(from_up);
                    info!(target: "access", destination = %ctx.destination, source = ctx.principal.as_deref().unwrap_or("-"), bytes_in = from_down, bytes_out = from_up, "tcp");
                }
                Err(e) => {
                    info!(target: "access", destination = %ctx.destination, error = %e, "tcp relay ended with error")
                }
            }
            shared.metrics.tcp_closed.get_or_create(&labels).inc();
        }
    }
}

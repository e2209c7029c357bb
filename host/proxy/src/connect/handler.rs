//! The waypoint's CONNECT handler: destination, L4 checks and upstream reachability before
//! answering, then the port's protocol (HTTP, opaque TCP, or sniffed) and either the L7 proxy
//! (HTTP/1.1, HTTP/2) or a TCP relay authorized with Istio's TCP semantics.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use http::StatusCode;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::AsyncWriteExt;
use tracing::{debug, info, warn};

use crate::connect::context::ConnectContext;
use crate::connect::idle::ConnActivity;
use crate::connect::relay::relay;
use crate::connect::sniff::{detect, detect_http_version, Protocol, Rewind};
use crate::http::head_timer::{Counted, HeadTimer};
use crate::http::pipeline::handle;
use crate::policy::destination::Destination;
use crate::telemetry::metrics::tcp_labels;
use crate::upstream::io::UpstreamIo;
use crate::Shared;
use waypoint_core::service::PortKind;
use waypoint_hbone::server::{BoxFuture, ConnectHandler, ConnectRequest, Tunnel};
use waypoint_hbone::timeouts::Timeouts;
use waypoint_hbone::H2Stream;

/// How long to wait for the first bytes before treating a tunnel to a port of unknown
/// protocol (or a pass-through address) as opaque TCP, so a server-first protocol still flows.
/// The relay is then authorized with Istio's TCP semantics.
pub const DETECT_TIMEOUT: Duration = Duration::from_secs(1);
/// HTTP/2 keepalive on tunnels served as HTTP/2 (the values Istio's waypoint sets on its
/// CONNECT-terminating HCM, `listener_waypoint.go`: ping every 10 s, close after 20 s unanswered).
const H2_KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);
const H2_KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(20);

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

impl WaypointHandler {
    async fn open(&self, req: ConnectRequest) -> Result<Tunnel, StatusCode> {
        let Some(cfg) = self.shared.config.current() else {
            warn!(authority = %req.authority, "hbone: no config loaded yet (503)");
            return Err(StatusCode::SERVICE_UNAVAILABLE);
        };
        // The CONNECT resolved once; every decision below uses this context.
        let ctx = ConnectContext::new(&req, cfg);
        // Never tunnel to the waypoint's own host or listeners; a CONNECT needs a real port.
        if let Err(status) = ctx.check_destination(&self.shared.proxy) {
            info!(source = ?ctx.peer.principal, destination = %ctx.authority, status = status.as_u16(), "hbone: destination refused");
            return Err(status);
        }
        let res = &ctx.resolution;
        let kind = res.port_kind();
        // L4 policy decides at CONNECT for ports declared TCP; HTTP ports get L7 authz per
        // request, sniffed ports one or the other once the protocol is known (as Istio's
        // waypoint applies network vs HTTP RBAC per filter chain).
        if kind == PortKind::Tcp && !ctx.authorize_tcp(res) {
            info!(source = ?ctx.peer.principal, destination = %ctx.authority, "hbone: denied by L4 policy (401)");
            return Err(StatusCode::UNAUTHORIZED);
        }
        // Connect first where the upstream is fixed (pass-through, TCP service ports), so an
        // unreachable one gets 503 before the tunnel is accepted. No client byte is sent
        // before the tunnel's traffic is authorized.
        let fixed = match &res.destination {
            // A hostname the config does not know: HTTP requests get the core's 404; opaque
            // bytes are closed (there is nothing to relay them to).
            Destination::Unknown => None,
            Destination::Service(_) if kind == PortKind::Tcp => {
                let Some(t) = res.tcp_target() else {
                    info!(destination = %ctx.authority, "hbone: TCP service has no endpoints (503)");
                    return Err(StatusCode::SERVICE_UNAVAILABLE);
                };
                Some(t)
            }
            Destination::Service(_) => None,
            Destination::Passthrough(t) => Some(t.clone()),
        };
        let upstream = match fixed {
            Some(t) => match self
                .shared
                .upstreams
                .connect_with(&t, ctx.relay_headers.clone())
                .await
            {
                Ok(io) => Some((io, t.addr.ip())),
                Err(e) => {
                    info!(destination = %ctx.authority, error = %e, "hbone: upstream unreachable (503)");
                    return Err(StatusCode::SERVICE_UNAVAILABLE);
                }
            },
            None => None,
        };
        let shared = self.shared.clone();
        Ok(Box::new(move |stream: H2Stream| {
            Box::pin(serve_tunnel(shared, Arc::new(ctx), upstream, stream)) as BoxFuture<()>
        }))
    }
}

async fn serve_tunnel(
    shared: Arc<Shared>,
    ctx: Arc<ConnectContext>,
    upstream: Option<(UpstreamIo, IpAddr)>,
    stream: H2Stream,
) {
    let t = &shared.timeouts;
    let kind = ctx.resolution.port_kind();
    // The first request's head must arrive within the header timeout (Envoy
    // `request_headers_timeout`); with it off, the stream idle timeout bounds the wait.
    let head_timeout = Timeouts::enabled(t.request_headers)
        .or(Timeouts::enabled(t.stream_idle))
        .unwrap_or(Duration::from_secs(3600));
    let detected = match kind {
        PortKind::Tcp => Ok(Some((
            Protocol::Tcp,
            Rewind::new(bytes::Bytes::new(), stream),
        ))),
        // A port declared HTTP is always HTTP: only the version is detected, and a client that
        // stays silent or sends garbage never gets an opaque relay.
        PortKind::Http => detect_http_version(stream, head_timeout).await,
        PortKind::Sniff => detect(stream, DETECT_TIMEOUT).await.map(Some),
    };
    let (proto, stream) = match detected {
        Ok(Some(x)) => x,
        Ok(None) => {
            debug!(destination = %ctx.authority, "tunnel: no HTTP request head in time on an HTTP port; closed");
            return;
        }
        Err(e) => {
            debug!(destination = %ctx.authority, error = %e, "tunnel: read failed during detection");
            return;
        }
    };
    debug!(destination = %ctx.authority, protocol = proto.as_str(), "tunnel: detected");
    let io = TokioIo::new(stream);
    match proto {
        Protocol::Http1 => {
            drop(upstream);
            let (svc_shared, svc_ctx) = (shared.clone(), ctx.clone());
            let svc = service_fn(move |req| handle(svc_shared.clone(), svc_ctx.clone(), req));
            // The head timeout runs from a head's first byte; an idle keep-alive connection
            // is bounded by the connection idle timeout (Envoy's semantics; see head_timer).
            let (timer, reads) = HeadTimer::new(
                Timeouts::enabled(t.request_headers),
                Timeouts::enabled(t.connection_idle),
            );
            // hyper only needs a value to use the timer; HeadTimer picks the deadlines.
            let armed = timer.enabled().then_some(Duration::from_secs(3600));
            let io = TokioIo::new(Counted::new(io.into_inner(), reads));
            if let Err(e) = hyper::server::conn::http1::Builder::new()
                .timer(timer)
                .header_read_timeout(armed)
                .serve_connection(io, svc)
                .with_upgrades()
                .await
            {
                debug!(destination = %ctx.authority, error = %e, "tunnel: http1 ended");
            }
        }
        Protocol::Http2 => {
            drop(upstream);
            let activity = Arc::new(ConnActivity::default());
            let (svc_shared, svc_ctx, a) = (shared.clone(), ctx.clone(), activity.clone());
            let svc = service_fn(move |req| {
                let active = a.begin();
                let fut = handle(svc_shared.clone(), svc_ctx.clone(), req);
                async move {
                    let r = fut.await;
                    drop(active);
                    r
                }
            });
            let conn = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                .timer(TokioTimer::new())
                .keep_alive_interval(H2_KEEPALIVE_INTERVAL)
                .keep_alive_timeout(H2_KEEPALIVE_TIMEOUT)
                .initial_stream_window_size(4 * 1024 * 1024)
                .initial_connection_window_size(16 * 1024 * 1024)
                .serve_connection(io, svc);
            tokio::pin!(conn);
            // A connection with no request in flight for the idle timeout gets a GOAWAY (hyper
            // lets streams already open finish, as Envoy's drain does).
            let idle = Timeouts::enabled(t.connection_idle);
            let mut draining = false;
            loop {
                let wait = match idle {
                    Some(limit) if !draining => activity.remaining(limit),
                    _ => Some(Duration::from_secs(3600)),
                };
                tokio::select! {
                    _ = shared.proxy.drain.started(), if !draining => {
                        debug!(destination = %ctx.authority, "tunnel: draining; http2 GOAWAY");
                        conn.as_mut().graceful_shutdown();
                        draining = true;
                    }
                    r = conn.as_mut() => {
                        if let Err(e) = r {
                            debug!(destination = %ctx.authority, error = %e, "tunnel: http2 ended");
                        }
                        break;
                    }
                    _ = tokio::time::sleep(wait.unwrap_or_default()) => {
                        if wait.is_none() {
                            debug!(destination = %ctx.authority, "tunnel: http2 idle; closing");
                            conn.as_mut().graceful_shutdown();
                            draining = true;
                        }
                    }
                }
            }
        }
        Protocol::Tcp => {
            let mut downstream = io.into_inner();
            // Opaque bytes (a TCP port, or a sniffed one that is not HTTP): L4 policy with
            // Istio's TCP semantics decides before any upstream is dialled or a byte relayed,
            // in the config generation in force now (see `ConnectContext::resolution_for`).
            let res = ctx.resolution_for(shared.config.current());
            if !ctx.authorize_tcp(&res) {
                info!(destination = %ctx.authority, "tunnel: opaque TCP denied by policy");
                let _ = downstream.shutdown().await;
                return;
            }
            let upstream = match upstream {
                Some(u) => Ok(u),
                None => match res.tcp_target() {
                    Some(t) => shared
                        .upstreams
                        .connect_with(&t, ctx.relay_headers.clone())
                        .await
                        .map(|io| (io, t.addr.ip()))
                        .map_err(|e| e.to_string()),
                    None => Err("no endpoint for TCP destination".to_string()),
                },
            };
            let (mut upstream, labels) = match upstream {
                Ok((io, endpoint)) => (io, tcp_labels(&ctx, &res, Some(endpoint))),
                Err(e) => {
                    info!(destination = %ctx.authority, error = %e, "tunnel: TCP upstream failed");
                    let _ = downstream.shutdown().await;
                    return;
                }
            };
            shared.metrics.tcp_opened.get_or_create(&labels).inc();
            match relay(
                &mut downstream,
                &mut upstream,
                Timeouts::enabled(shared.timeouts.tcp_idle),
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
                    if shared.access_log_now() {
                        info!(target: "access", destination = %ctx.authority, source = ctx.peer.principal.as_deref().unwrap_or("-"), bytes_in = from_down, bytes_out = from_up, "tcp");
                    }
                }
                Err(e) => {
                    if shared.access_log_now() {
                        info!(target: "access", destination = %ctx.authority, error = %e, "tcp relay ended with error")
                    }
                }
            }
            shared.metrics.tcp_closed.get_or_create(&labels).inc();
        }
    }
}

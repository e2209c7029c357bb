//! `waypoint originate`: a local HBONE originator for Envoy. It accepts TCP with a PROXY v2
//! header naming the pod, opens a pooled HBONE stream to `<pod IP>:15008`, and relays bytes.
//!
//! Envoy's own HTTP/2 tunnelling upstream resets the pod's stream when the downstream closes
//! before the pod's END_STREAM is read (envoy-hbone-notes.md, cause 2); here Envoy only sees
//! a plain TCP upstream, whose half-close it handles, and the stream always ends cleanly.

pub mod proxy_header;
pub mod relay;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use http::HeaderMap;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use crate::tls::{CertStore, Identity};
use crate::HboneClient;

/// PROXY v2 TLV type carrying the pod's expected SPIFFE identity to the originator (in the
/// custom range 0xE0-0xEF of the PROXY protocol spec); the Envoy bootstrap sets it.
pub const TLV_IDENTITY: u8 = 0xE0;

/// Deadline for the PROXY header after accept.
const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the pod's remaining data is drained after Envoy closed first.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// Counters of a running originator.
#[derive(Debug, Default)]
pub struct Stats {
    /// Connections accepted from Envoy.
    pub accepted: AtomicU64,
    /// Tunnels opened (CONNECT answered 200).
    pub tunnels: AtomicU64,
    /// Connections refused: bad PROXY header, or the CONNECT failed.
    pub refused: AtomicU64,
    /// Tunnels whose pod stream ended in an error, or whose drain timed out.
    pub unclean: AtomicU64,
    /// Pod bytes discarded because Envoy had already closed.
    pub discarded_bytes: AtomicU64,
}

/// A running originator; stopped on drop.
#[derive(Debug)]
pub struct Originator {
    pub addr: SocketAddr,
    pub client: Arc<HboneClient>,
    pub stats: Arc<Stats>,
    task: JoinHandle<()>,
}

impl Drop for Originator {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Listen on `listen` and originate HBONE to `<pod IP>:<hbone_port>` as the identity in
/// `store` (the waypoint's).
pub async fn start(
    listen: SocketAddr,
    store: Arc<CertStore>,
    hbone_port: u16,
) -> std::io::Result<Originator> {
    let listener = TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    let client = HboneClient::new(store);
    let stats = Arc::new(Stats::default());
    let task = tokio::spawn(accept_loop(
        listener,
        client.clone(),
        stats.clone(),
        hbone_port,
    ));
    Ok(Originator {
        addr,
        client,
        stats,
        task,
    })
}

async fn accept_loop(
    listener: TcpListener,
    client: Arc<HboneClient>,
    stats: Arc<Stats>,
    hbone_port: u16,
) {
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                warn!(error = %e, "originate: accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        stats.accepted.fetch_add(1, Ordering::Relaxed);
        let (client, stats) = (client.clone(), stats.clone());
        tokio::spawn(async move {
            handle(tcp, peer, client, stats, hbone_port).await;
        });
    }
}

/// The pod's expected identity from the header's TLV (`None`: any identity of our trust
/// domain, as for pods without a known service account).
fn expected_identity(h: &proxy_header::ProxyHeader) -> Result<Vec<Identity>, String> {
    match h.tlv(TLV_IDENTITY) {
        None => Ok(Vec::new()),
        Some(raw) => {
            let s =
                std::str::from_utf8(raw).map_err(|_| "identity TLV is not UTF-8".to_string())?;
            s.parse::<Identity>()
                .map(|id| vec![id])
                .map_err(|e| format!("identity TLV {s:?}: {e}"))
        }
    }
}

async fn handle(
    mut tcp: TcpStream,
    peer: SocketAddr,
    client: Arc<HboneClient>,
    stats: Arc<Stats>,
    hbone_port: u16,
) {
    let _ = tcp.set_nodelay(true);
    let refuse = |tcp: &TcpStream, why: &str| {
        warn!(%peer, why, "originate: refused");
        stats.refused.fetch_add(1, Ordering::Relaxed);
        // An abortive close: Envoy sees a failed upstream connection, not an empty answer.
        let _ = tcp.set_zero_linger();
    };
    let header = match tokio::time::timeout(HEADER_TIMEOUT, proxy_header::read(&mut tcp)).await {
        Ok(Ok(h)) => h,
        Ok(Err(e)) => return refuse(&tcp, &e.to_string()),
        Err(_) => return refuse(&tcp, "no PROXY header in time"),
    };
    let Some(dest) = header.destination else {
        return refuse(&tcp, "PROXY header without a destination address");
    };
    let expected = match expected_identity(&header) {
        Ok(e) => e,
        Err(e) => return refuse(&tcp, &e),
    };
    let mut headers = HeaderMap::new();
    if let Some(src) = header.source {
        if let Ok(v) = format!("for=\"{src}\"").parse() {
            headers.insert("forwarded", v);
        }
    }
    let hbone = SocketAddr::new(dest.ip(), hbone_port);
    let stream = match client
        .connect(hbone, &expected, &dest.to_string(), headers)
        .await
    {
        Ok(s) => s,
        Err(e) => return refuse(&tcp, &format!("HBONE to {hbone} for {dest}: {e}")),
    };
    stats.tunnels.fetch_add(1, Ordering::Relaxed);
    debug!(%peer, %dest, "originate: tunnel open");
    let (pod_r, pod_w) = tokio::io::split(stream);
    let (envoy_r, envoy_w) = tcp.split();
    let out = relay::relay(envoy_r, envoy_w, pod_r, pod_w, DRAIN_TIMEOUT).await;
    stats
        .discarded_bytes
        .fetch_add(out.discarded, Ordering::Relaxed);
    if out.pod_error.is_some() || out.drain_timed_out {
        stats.unclean.fetch_add(1, Ordering::Relaxed);
        info!(%dest, ?out, "originate: tunnel ended uncleanly");
        // Pass the failure on to Envoy as a reset rather than a clean end.
        let _ = tcp.set_zero_linger();
    } else {
        debug!(%dest, ?out, "originate: tunnel closed");
    }
}

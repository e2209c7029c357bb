//! The tonic ADS service (`StreamAggregatedResources` and `DeltaAggregatedResources`) and
//! `serve`, which also watches the config and certificates and pushes changes.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_server::{
    AggregatedDiscoveryService, AggregatedDiscoveryServiceServer,
};
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse,
};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream};
use tonic::{Request, Response, Status, Streaming};
use tracing::info;

use super::cache::Cache;
use super::{delta, sotw, stream_loop};
use waypoint_sources::watch;

/// The ADS service over a snapshot cache.
#[derive(Debug, Clone)]
pub struct Ads {
    pub cache: Arc<Cache>,
}

#[tonic::async_trait]
impl AggregatedDiscoveryService for Ads {
    type StreamAggregatedResourcesStream = ReceiverStream<Result<DiscoveryResponse, Status>>;
    type DeltaAggregatedResourcesStream = ReceiverStream<Result<DeltaDiscoveryResponse, Status>>;

    async fn stream_aggregated_resources(
        &self,
        request: Request<Streaming<DiscoveryRequest>>,
    ) -> Result<Response<Self::StreamAggregatedResourcesStream>, Status> {
        let (tx, rx) = mpsc::channel(16);
        info!(peer = ?request.remote_addr(), "xds: SotW stream opened");
        tokio::spawn(stream_loop::run::<sotw::TypeState, _>(
            Arc::clone(&self.cache),
            request.into_inner(),
            tx,
        ));
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn delta_aggregated_resources(
        &self,
        request: Request<Streaming<DeltaDiscoveryRequest>>,
    ) -> Result<Response<Self::DeltaAggregatedResourcesStream>, Status> {
        let (tx, rx) = mpsc::channel(16);
        info!(peer = ?request.remote_addr(), "xds: delta stream opened");
        tokio::spawn(stream_loop::run::<delta::TypeState, _>(
            Arc::clone(&self.cache),
            request.into_inner(),
            tx,
        ));
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}

/// Serve ADS on `listener` until the process ends.
pub async fn serve(
    cache: Arc<Cache>,
    listener: TcpListener,
) -> Result<(), tonic::transport::Error> {
    tonic::transport::Server::builder()
        .add_service(AggregatedDiscoveryServiceServer::new(Ads { cache }))
        .serve_with_incoming(TcpListenerStream::new(listener))
        .await
}

/// A running server (tests and `waypoint xds`): its address and cache; aborted on drop.
#[derive(Debug)]
pub struct Running {
    pub addr: SocketAddr,
    pub cache: Arc<Cache>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Bind `addr`, serve ADS and poll `watched` every `interval`: a change rebuilds every node's
/// snapshot (a rejected change keeps the last good one) and pushes the difference.
pub async fn start(
    cache: Arc<Cache>,
    addr: SocketAddr,
    watched: Vec<std::path::PathBuf>,
    interval: Duration,
) -> std::io::Result<Running> {
    let listener = TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    info!(%addr, "xds: ADS server listening");
    let server = {
        let cache = Arc::clone(&cache);
        tokio::spawn(async move {
            if let Err(e) = serve(cache, listener).await {
                tracing::error!("xds: server failed: {e}");
            }
        })
    };
    let watcher = {
        let cache = Arc::clone(&cache);
        let baseline = watch::fingerprint(&watched);
        tokio::spawn(async move {
            watch::poll(watched, baseline, interval, move || {
                let cache = Arc::clone(&cache);
                // Building snapshots reads files and encodes protobuf: off the async workers.
                std::thread::spawn(move || {
                    cache.rebuild();
                });
            })
            .await;
        })
    };
    Ok(Running {
        addr,
        cache,
        tasks: vec![server, watcher],
    })
}

//! A small rate limit service on loopback (`envoy.service.ratelimit.v3.RateLimitService`):
//! a counter per domain and descriptor with one limit per minute, every request's descriptors
//! recorded, and told to fail or to be slow.
//!
//! Over the limit it answers OVER_LIMIT with `x-rls-says: over-limit`; each descriptor's
//! status carries the limit (per minute), what is left and 60 s to reset.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use envoy_types::pb::envoy::config::core::v3::HeaderValue;
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_response::{
    rate_limit::Unit, Code, DescriptorStatus, RateLimit,
};
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_service_server::{
    RateLimitService, RateLimitServiceServer,
};
use envoy_types::pb::envoy::service::ratelimit::v3::{RateLimitRequest, RateLimitResponse};
use tokio::net::TcpListener;

/// Header an over-limit answer asks the proxy to add.
pub const OVER_HEADER: &str = "x-rls-says";

/// How the service behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Mode {
    Normal = 0,
    /// Every call fails with gRPC UNAVAILABLE.
    Fail = 1,
    /// Every call answers after [`SLOW`].
    Slow = 2,
}

/// How long a slow answer takes.
pub const SLOW: Duration = Duration::from_millis(1500);

/// One call as received: the domain and each descriptor's entries.
pub type Call = (String, Vec<Vec<(String, String)>>);

/// A running service.
#[derive(Debug, Clone)]
pub struct Rls {
    pub addr: SocketAddr,
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    limit: u32,
    mode: AtomicU8,
    counts: Mutex<HashMap<String, u32>>,
    calls: Mutex<Vec<Call>>,
}

impl Rls {
    pub fn set_mode(&self, m: Mode) {
        self.inner.mode.store(m as u8, Ordering::SeqCst);
    }

    /// Every call so far, in order.
    pub fn calls(&self) -> Vec<Call> {
        self.inner
            .calls
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

struct Service(Arc<Inner>);

#[tonic::async_trait]
impl RateLimitService for Service {
    async fn should_rate_limit(
        &self,
        request: tonic::Request<RateLimitRequest>,
    ) -> Result<tonic::Response<RateLimitResponse>, tonic::Status> {
        let r = request.into_inner();
        let descriptors: Vec<Vec<(String, String)>> = r
            .descriptors
            .iter()
            .map(|d| {
                d.entries
                    .iter()
                    .map(|e| (e.key.clone(), e.value.clone()))
                    .collect()
            })
            .collect();
        self.0
            .calls
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((r.domain.clone(), descriptors.clone()));
        match self.0.mode.load(Ordering::SeqCst) {
            1 => return Err(tonic::Status::unavailable("told to fail")),
            2 => tokio::time::sleep(SLOW).await,
            _ => {}
        }
        let mut over = false;
        let mut statuses = Vec::new();
        {
            let mut counts = self.0.counts.lock().unwrap_or_else(|p| p.into_inner());
            for d in &descriptors {
                let key = format!("{}|{d:?}", r.domain);
                let n = counts.entry(key).or_default();
                *n += 1;
                let this_over = *n > self.0.limit;
                over |= this_over;
                statuses.push(DescriptorStatus {
                    code: if this_over { Code::OverLimit } else { Code::Ok } as i32,
                    current_limit: Some(RateLimit {
                        requests_per_unit: self.0.limit,
                        unit: Unit::Minute as i32,
                        ..Default::default()
                    }),
                    limit_remaining: self.0.limit.saturating_sub(*n),
                    duration_until_reset: Some(envoy_types::pb::google::protobuf::Duration {
                        seconds: 60,
                        nanos: 0,
                    }),
                    ..Default::default()
                });
            }
        }
        let response_headers_to_add = if over {
            vec![HeaderValue {
                key: OVER_HEADER.into(),
                value: "over-limit".into(),
                ..Default::default()
            }]
        } else {
            Vec::new()
        };
        Ok(tonic::Response::new(RateLimitResponse {
            overall_code: if over { Code::OverLimit } else { Code::Ok } as i32,
            statuses,
            response_headers_to_add,
            ..Default::default()
        }))
    }
}

/// Start a service on `bind` allowing `limit` requests per descriptor.
pub async fn start(bind: SocketAddr, limit: u32) -> Rls {
    let listener = TcpListener::bind(bind).await.expect("bind rls");
    let inner = Arc::new(Inner {
        limit,
        mode: AtomicU8::new(Mode::Normal as u8),
        counts: Mutex::default(),
        calls: Mutex::default(),
    });
    let rls = Rls {
        addr: listener.local_addr().expect("addr"),
        inner: inner.clone(),
    };
    let svc = RateLimitServiceServer::new(Service(inner));
    tokio::spawn(async move {
        let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
        let _ = tonic::transport::Server::builder()
            .add_service(svc)
            .serve_with_incoming(incoming)
            .await;
    });
    rls
}

//! A fake OpenTelemetry collector on loopback: tonic serving `TraceService/Export` (the OTLP
//! messages the host's exporter declares), keeping every span it receives.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_stream::wrappers::TcpListenerStream;
use tonic::codegen::{BoxFuture, Context, Poll, Service};
use tonic::server::{NamedService, UnaryService};
use tonic::transport::Server;
use tonic::{Request, Response, Status};
use waypoint_proxy::telemetry::otlp::{
    ExportTraceServiceRequest, ExportTraceServiceResponse, Span, EXPORT_PATH,
};

/// A received span with the `service.name` of its resource.
#[derive(Debug, Clone)]
pub struct Received {
    pub service_name: String,
    pub span: Span,
}

/// The running collector.
#[derive(Debug, Clone)]
pub struct Collector {
    pub addr: SocketAddr,
    spans: Arc<Mutex<Vec<Received>>>,
}

impl Collector {
    /// Start on `bind` (port 0 for any).
    pub async fn start(bind: SocketAddr) -> Collector {
        let listener = tokio::net::TcpListener::bind(bind)
            .await
            .expect("bind collector");
        let addr = listener.local_addr().expect("addr");
        let spans: Arc<Mutex<Vec<Received>>> = Arc::default();
        let service = TraceService(spans.clone());
        tokio::spawn(async move {
            let r = Server::builder()
                .add_service(service)
                .serve_with_incoming(TcpListenerStream::new(listener))
                .await;
            if let Err(e) = r {
                eprintln!("fake collector stopped: {e}");
            }
        });
        Collector { addr, spans }
    }

    /// Every span received so far.
    pub fn spans(&self) -> Vec<Received> {
        self.spans.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Wait up to `timeout` for a span satisfying `f`.
    pub async fn wait_for(&self, timeout: Duration, f: impl Fn(&Span) -> bool) -> Option<Received> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(r) = self.spans().into_iter().find(|r| f(&r.span)) {
                return Some(r);
            }
            if tokio::time::Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// The gRPC service, written out as tonic's generated code would be.
#[derive(Debug, Clone)]
struct TraceService(Arc<Mutex<Vec<Received>>>);

impl NamedService for TraceService {
    const NAME: &'static str = "opentelemetry.proto.collector.trace.v1.TraceService";
}

struct Export(Arc<Mutex<Vec<Received>>>);

impl UnaryService<ExportTraceServiceRequest> for Export {
    type Response = ExportTraceServiceResponse;
    type Future = BoxFuture<Response<ExportTraceServiceResponse>, Status>;

    fn call(&mut self, req: Request<ExportTraceServiceRequest>) -> Self::Future {
        let store = self.0.clone();
        Box::pin(async move {
            let mut got = Vec::new();
            for rs in req.into_inner().resource_spans {
                let service_name = rs
                    .resource
                    .iter()
                    .flat_map(|r| r.attributes.iter())
                    .find(|kv| kv.key == "service.name")
                    .and_then(|kv| match kv.value.as_ref()?.value.as_ref()? {
                        waypoint_proxy::telemetry::otlp::any_value::Value::StringValue(s) => {
                            Some(s.clone())
                        }
                        _ => None,
                    })
                    .unwrap_or_default();
                for ss in rs.scope_spans {
                    for span in ss.spans {
                        got.push(Received {
                            service_name: service_name.clone(),
                            span,
                        });
                    }
                }
            }
            if let Ok(mut s) = store.lock() {
                s.extend(got);
            }
            Ok(Response::new(ExportTraceServiceResponse::default()))
        })
    }
}

impl Service<http::Request<tonic::body::Body>> for TraceService {
    type Response = http::Response<tonic::body::Body>;
    type Error = std::convert::Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<tonic::body::Body>) -> Self::Future {
        let store = self.0.clone();
        if req.uri().path() != EXPORT_PATH {
            return Box::pin(async move {
                Ok(Status::unimplemented(req.uri().path().to_string()).into_http())
            });
        }
        Box::pin(async move {
            let mut grpc = tonic::server::Grpc::new(tonic_prost::ProstCodec::default());
            Ok(grpc.unary(Export(store), req).await)
        })
    }
}

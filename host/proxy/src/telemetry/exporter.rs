//! The OTLP/gRPC span exporter: spans queue in a bounded channel (a full queue drops the
//! span, never blocking a request) and a background task sends them in batches.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use http::{HeaderValue, Request};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use prost::Message;
use tokio::sync::mpsc;
use tracing::debug;

use super::otlp::{
    ExportTraceServiceRequest, InstrumentationScope, KeyValue, Resource, ResourceSpans, ScopeSpans,
    Span, EXPORT_PATH,
};

/// Spans waiting to be sent, at most (Envoy's OpenTelemetry tracer buffers similarly).
pub const QUEUE: usize = 2048;
/// Spans per export request, at most.
pub const BATCH: usize = 512;
/// How long a partial batch waits for more spans.
pub const FLUSH: Duration = Duration::from_millis(200);
/// One export's deadline.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(5);

/// Where spans go: the collector's `host:port` and the `service.name` they report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    pub host: String,
    pub port: u16,
    pub service_name: String,
}

struct Running {
    dest: Destination,
    tx: mpsc::Sender<Span>,
}

/// The exporter for the provider in force; replaced when the config names another one.
#[derive(Default)]
pub struct Exporter {
    running: Mutex<Option<Running>>,
    dropped: AtomicU64,
    sent: std::sync::Arc<AtomicU64>,
}

impl std::fmt::Debug for Exporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Exporter")
            .field("dropped", &self.dropped())
            .field("sent", &self.sent())
            .finish()
    }
}

impl Exporter {
    /// Queue `span` for `dest` (must run on a tokio runtime: the first span starts the
    /// sender). Never waits: with the queue full the span is dropped and counted.
    pub fn export(&self, dest: &Destination, span: Span) {
        let Ok(mut guard) = self.running.lock() else {
            return;
        };
        if guard.as_ref().is_none_or(|r| &r.dest != dest) {
            let (tx, rx) = mpsc::channel(QUEUE);
            tokio::spawn(run(dest.clone(), rx, self.sent.clone()));
            // Dropping the previous sender lets its task flush and end.
            *guard = Some(Running {
                dest: dest.clone(),
                tx,
            });
        }
        if let Some(r) = guard.as_ref() {
            if r.tx.try_send(span).is_err() {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Spans dropped because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Spans the collector accepted.
    pub fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }
}

/// Collect batches and send them until every sender is gone.
async fn run(dest: Destination, mut rx: mpsc::Receiver<Span>, sent: std::sync::Arc<AtomicU64>) {
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http();
    let host = if dest.host.contains(':') {
        format!("[{}]", dest.host)
    } else {
        dest.host.clone()
    };
    let uri = format!("http://{host}:{}{EXPORT_PATH}", dest.port);
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        let deadline = tokio::time::Instant::now() + FLUSH;
        while batch.len() < BATCH {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(s)) => batch.push(s),
                _ => break,
            }
        }
        let n = batch.len() as u64;
        let body = frame(&request(&dest.service_name, batch));
        let req = match Request::post(&uri)
            .header(
                http::header::CONTENT_TYPE,
                HeaderValue::from_static("application/grpc"),
            )
            .header(http::header::TE, HeaderValue::from_static("trailers"))
            .body(Full::new(body))
        {
            Ok(r) => r,
            Err(e) => {
                debug!(error = %e, uri, "otlp: bad collector address");
                continue;
            }
        };
        let call = async {
            let resp = client.request(req).await.map_err(|e| e.to_string())?;
            let status = resp.status();
            let collected = resp
                .into_body()
                .collect()
                .await
                .map_err(|e| e.to_string())?;
            let grpc = collected
                .trailers()
                .and_then(|t| t.get("grpc-status"))
                .and_then(|v| v.to_str().ok())
                .unwrap_or("0")
                .to_string();
            if status.is_success() && grpc == "0" {
                Ok(())
            } else {
                Err(format!("http {status}, grpc-status {grpc}"))
            }
        };
        match tokio::time::timeout(EXPORT_TIMEOUT, call).await {
            Ok(Ok(())) => {
                sent.fetch_add(n, Ordering::Relaxed);
            }
            Ok(Err(e)) => debug!(error = %e, uri, spans = n, "otlp: export failed; spans dropped"),
            Err(_) => debug!(uri, spans = n, "otlp: export timed out; spans dropped"),
        }
    }
}

/// One export request: the spans under one resource (`service.name`) and scope.
pub fn request(service_name: &str, spans: Vec<Span>) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![KeyValue::string("service.name", service_name)],
                dropped_attributes_count: 0,
            }),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: "waypoint".into(),
                    version: env!("CARGO_PKG_VERSION").into(),
                }),
                spans,
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    }
}

/// gRPC length-prefixed framing (uncompressed).
fn frame(msg: &impl Message) -> Bytes {
    let len = msg.encoded_len();
    let mut buf = BytesMut::with_capacity(5 + len);
    buf.put_u8(0);
    buf.put_u32(len as u32);
    // Encoding into a buffer with enough capacity cannot fail.
    let _ = msg.encode(&mut buf);
    buf.freeze()
}

//! Test ext_authz servers on loopback, HTTP and gRPC, with one rule: allow when the request
//! carries `x-ext-authz: allow`, else deny 403 with a body and a header; every check counted.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use envoy_types::pb::envoy::config::core::v3::{HeaderValue, HeaderValueOption};
use envoy_types::pb::envoy::r#type::v3::HttpStatus;
use envoy_types::pb::envoy::service::auth::v3::authorization_server::{
    Authorization, AuthorizationServer,
};
use envoy_types::pb::envoy::service::auth::v3::check_response::HttpResponse;
use envoy_types::pb::envoy::service::auth::v3::{
    CheckRequest, CheckResponse, DeniedHttpResponse, OkHttpResponse,
};
use envoy_types::pb::google::rpc::Status;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// Header the servers look at.
pub const DECIDING_HEADER: &str = "x-ext-authz";
/// Header the servers answer with (`allowed` / `denied`).
pub const RESULT_HEADER: &str = "x-ext-authz-check-result";
/// Body of a denial.
pub const DENY_BODY: &str = "denied by ext_authz\n";

/// A running test ext_authz server.
#[derive(Debug, Clone)]
pub struct AuthzServer {
    pub addr: SocketAddr,
    /// Checks received.
    pub calls: Arc<AtomicUsize>,
    /// Path (with query) of the last HTTP check.
    pub last_path: Arc<std::sync::Mutex<String>>,
}

impl AuthzServer {
    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

/// HTTP ext_authz server: 200 + `x-ext-authz-check-result: allowed` when allowed, else 403
/// with [`DENY_BODY`] and `x-ext-authz-check-result: denied`.
pub async fn http_authz(bind: SocketAddr) -> AuthzServer {
    let listener = TcpListener::bind(bind).await.expect("bind http authz");
    let server = AuthzServer {
        addr: listener.local_addr().expect("addr"),
        calls: Arc::new(AtomicUsize::new(0)),
        last_path: Arc::default(),
    };
    let s = server.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let s = s.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req: http::Request<Incoming>| {
                    let s = s.clone();
                    async move {
                        s.calls.fetch_add(1, Ordering::SeqCst);
                        if let Ok(mut p) = s.last_path.lock() {
                            *p = req.uri().to_string();
                        }
                        let allow = req
                            .headers()
                            .get(DECIDING_HEADER)
                            .is_some_and(|v| v.as_bytes() == b"allow");
                        let resp = if allow {
                            http::Response::builder()
                                .status(200)
                                .header(RESULT_HEADER, "allowed")
                                .header("x-not-for-upstream", "1")
                                .body(Full::new(Bytes::new()))
                        } else {
                            http::Response::builder()
                                .status(403)
                                .header(RESULT_HEADER, "denied")
                                .header("content-type", "text/plain")
                                .body(Full::new(Bytes::from_static(DENY_BODY.as_bytes())))
                        };
                        Ok::<_, Infallible>(resp.unwrap_or_default())
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tcp), svc)
                    .await;
            });
        }
    });
    server
}

struct Checker(AuthzServer);

fn header(k: &str, v: &str) -> HeaderValueOption {
    HeaderValueOption {
        header: Some(HeaderValue {
            key: k.into(),
            value: v.into(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[tonic::async_trait]
impl Authorization for Checker {
    async fn check(
        &self,
        request: tonic::Request<CheckRequest>,
    ) -> Result<tonic::Response<CheckResponse>, tonic::Status> {
        self.0.calls.fetch_add(1, Ordering::SeqCst);
        let http = request
            .into_inner()
            .attributes
            .and_then(|a| a.request)
            .and_then(|r| r.http)
            .unwrap_or_default();
        if let Ok(mut p) = self.0.last_path.lock() {
            p.clone_from(&http.path);
        }
        let allow = http.headers.get(DECIDING_HEADER).map(String::as_str) == Some("allow");
        let resp = if allow {
            CheckResponse {
                status: Some(Status::default()),
                http_response: Some(HttpResponse::OkResponse(OkHttpResponse {
                    headers: vec![header(RESULT_HEADER, "allowed")],
                    ..Default::default()
                })),
                ..Default::default()
            }
        } else {
            CheckResponse {
                // PERMISSION_DENIED
                status: Some(Status {
                    code: 7,
                    ..Default::default()
                }),
                http_response: Some(HttpResponse::DeniedResponse(DeniedHttpResponse {
                    status: Some(HttpStatus { code: 403 }),
                    headers: vec![
                        header(RESULT_HEADER, "denied"),
                        header("content-type", "text/plain"),
                    ],
                    body: DENY_BODY.into(),
                })),
                ..Default::default()
            }
        };
        Ok(tonic::Response::new(resp))
    }
}

/// gRPC ext_authz server (`envoy.service.auth.v3.Authorization/Check`), same rule.
pub async fn grpc_authz(bind: SocketAddr) -> AuthzServer {
    let listener = TcpListener::bind(bind).await.expect("bind grpc authz");
    let server = AuthzServer {
        addr: listener.local_addr().expect("addr"),
        calls: Arc::new(AtomicUsize::new(0)),
        last_path: Arc::default(),
    };
    let svc = AuthorizationServer::new(Checker(server.clone()));
    tokio::spawn(async move {
        let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
        let _ = tonic::transport::Server::builder()
            .add_service(svc)
            .serve_with_incoming(incoming)
            .await;
    });
    server
}

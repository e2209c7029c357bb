//! A fake Istio CA on 127.0.0.1: `IstioCertificateService/CreateCertificate` over TLS (served
//! as `istiod.istio-system.svc` under the test PKI's root), checking Istio's auth metadata.
//!
//! Like istiod (`security/pkg/server/ca/server.go`, `authenticate/kubeauth/kube_jwt.go`): a
//! wrong `authorization: Bearer` token or `clusterid` is UNAUTHENTICATED; the CSR is signed by
//! the mesh root with the requested lifetime capped by ours; the answer is `[leaf, root]`.
//! It can be taken "down" (connections closed at once) and back up.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_stream::StreamExt;
use tonic::codegen::{BoxFuture, Context, Poll, Service};
use tonic::server::{NamedService, UnaryService};
use tonic::transport::{Identity as TlsIdentity, Server, ServerTlsConfig};
use tonic::{Request, Response, Status};
use waypoint_devtools::dev_ca::DevCa;
use waypoint_hbone::tls::Identity;
use waypoint_istio_ca::proto::{
    IstioCertificateRequest, IstioCertificateResponse, CREATE_CERTIFICATE, SERVICE,
};
use waypoint_istio_ca::CaOptions;

use crate::pki::{Pki, TempDir};

/// The name the fake CA's certificate carries (istiod's in a cluster).
pub const SERVER_NAME: &str = "istiod.istio-system.svc";

/// What the fake CA accepts and how long it signs for.
#[derive(Debug)]
struct State {
    ca: DevCa,
    token: Mutex<String>,
    cluster_id: String,
    max_ttl: Mutex<Duration>,
    down: AtomicBool,
    refused: AtomicUsize,
    requests: AtomicUsize,
    issued: AtomicUsize,
    requested_ttls: Mutex<Vec<i64>>,
}

/// A running fake CA; its files (root, token) live in a temporary directory.
#[derive(Debug)]
pub struct FakeCa {
    pub addr: SocketAddr,
    pub root_file: PathBuf,
    pub token_file: PathBuf,
    state: Arc<State>,
    task: JoinHandle<()>,
    _dir: TempDir,
}

impl Drop for FakeCa {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeCa {
    /// Serve as `pki`'s CA, accepting `token` for cluster `cluster_id`, signing for at most
    /// `max_ttl`. The token file holds `token` (tests overwrite it to test rejections).
    pub async fn start(pki: &Pki, token: &str, cluster_id: &str, max_ttl: Duration) -> FakeCa {
        let ca = DevCa::load(pki.dir.path(), &pki.trust_domain).expect("load the test CA");
        let serving = ca.issue_server(SERVER_NAME).expect("server certificate");
        let dir = TempDir::new("fake-ca");
        let root_file = dir.path().join("root-cert.pem");
        let token_file = dir.path().join("istio-token");
        std::fs::write(&root_file, ca.ca_pem()).expect("write root");
        std::fs::write(&token_file, format!("{token}\n")).expect("write token");
        let state = Arc::new(State {
            ca,
            token: Mutex::new(token.to_string()),
            cluster_id: cluster_id.to_string(),
            max_ttl: Mutex::new(max_ttl),
            down: AtomicBool::new(false),
            refused: AtomicUsize::new(0),
            requests: AtomicUsize::new(0),
            issued: AtomicUsize::new(0),
            requested_ttls: Mutex::default(),
        });
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let down = state.clone();
        // While "down", every connection is closed before the TLS handshake.
        let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener).filter(move |_| {
            let is_down = down.down.load(Ordering::SeqCst);
            if is_down {
                down.refused.fetch_add(1, Ordering::SeqCst);
            }
            !is_down
        });
        let tls = ServerTlsConfig::new().identity(TlsIdentity::from_pem(
            serving.cert_pem.as_bytes(),
            serving.key_pem.as_bytes(),
        ));
        let service = CaService(state.clone());
        let task = tokio::spawn(async move {
            let r = Server::builder()
                .tls_config(tls)
                .expect("tls config")
                .add_service(service)
                .serve_with_incoming(incoming)
                .await;
            if let Err(e) = r {
                eprintln!("fake CA stopped: {e}");
            }
        });
        FakeCa {
            addr,
            root_file,
            token_file,
            state,
            task,
            _dir: dir,
        }
    }

    /// Client options for `identity` pointing at this CA (its files, its name).
    pub fn options(&self, identity: Identity, cluster_id: &str) -> CaOptions {
        let mut o = CaOptions::new(identity);
        o.address = self.addr.to_string();
        o.server_name = Some(SERVER_NAME.to_string());
        o.root = self.root_file.clone();
        o.token = self.token_file.clone();
        o.cluster_id = cluster_id.to_string();
        o.timeout = Duration::from_secs(5);
        o
    }

    /// Take the CA down (connections closed at once) or bring it back.
    pub fn set_down(&self, down: bool) {
        self.state.down.store(down, Ordering::SeqCst);
    }

    /// Accept another token from now on.
    pub fn set_token(&self, token: &str) {
        *self.state.token.lock().expect("lock") = token.to_string();
    }

    /// Sign for at most this long from now on.
    pub fn set_max_ttl(&self, ttl: Duration) {
        *self.state.max_ttl.lock().expect("lock") = ttl;
    }

    /// Connections closed because the CA was down.
    pub fn refused(&self) -> usize {
        self.state.refused.load(Ordering::SeqCst)
    }

    /// Requests that reached the service (authenticated or not).
    pub fn requests(&self) -> usize {
        self.state.requests.load(Ordering::SeqCst)
    }

    /// Certificates issued.
    pub fn issued(&self) -> usize {
        self.state.issued.load(Ordering::SeqCst)
    }

    /// `validity_duration` of each request, in order.
    pub fn requested_ttls(&self) -> Vec<i64> {
        self.state.requested_ttls.lock().expect("lock").clone()
    }
}

impl State {
    fn create(
        &self,
        req: Request<IstioCertificateRequest>,
    ) -> Result<Response<IstioCertificateResponse>, Status> {
        self.requests.fetch_add(1, Ordering::SeqCst);
        let header = |name: &str| {
            req.metadata()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let want = format!("Bearer {}", self.token.lock().expect("lock"));
        if header("authorization").as_deref() != Some(want.as_str()) {
            return Err(Status::unauthenticated(
                "authenticate failed: the bearer token is not valid",
            ));
        }
        if header("clusterid").as_deref() != Some(self.cluster_id.as_str()) {
            return Err(Status::unauthenticated(format!(
                "client claims to be in cluster {:?}, which is not known",
                header("clusterid")
            )));
        }
        let body = req.into_inner();
        self.requested_ttls
            .lock()
            .expect("lock")
            .push(body.validity_duration);
        let max = *self.max_ttl.lock().expect("lock");
        let ttl = match u64::try_from(body.validity_duration) {
            Ok(s) if s > 0 => Duration::from_secs(s).min(max),
            _ => max,
        };
        let now = SystemTime::now();
        let (_, leaf) = self
            .ca
            .sign_csr_valid(&body.csr, now, now + ttl)
            .map_err(|e| Status::invalid_argument(format!("{e:#}")))?;
        self.issued.fetch_add(1, Ordering::SeqCst);
        Ok(Response::new(IstioCertificateResponse {
            cert_chain: vec![leaf, self.ca.ca_pem()],
        }))
    }
}

/// The gRPC service, written out as tonic's generated code would be.
#[derive(Debug, Clone)]
struct CaService(Arc<State>);

impl NamedService for CaService {
    const NAME: &'static str = SERVICE;
}

struct Create(Arc<State>);

impl UnaryService<IstioCertificateRequest> for Create {
    type Response = IstioCertificateResponse;
    type Future = BoxFuture<Response<IstioCertificateResponse>, Status>;

    fn call(&mut self, req: Request<IstioCertificateRequest>) -> Self::Future {
        let state = self.0.clone();
        Box::pin(async move { state.create(req) })
    }
}

impl Service<http::Request<tonic::body::Body>> for CaService {
    type Response = http::Response<tonic::body::Body>;
    type Error = std::convert::Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<tonic::body::Body>) -> Self::Future {
        let state = self.0.clone();
        if req.uri().path() != CREATE_CERTIFICATE {
            return Box::pin(async move {
                Ok(Status::unimplemented(req.uri().path().to_string()).into_http())
            });
        }
        Box::pin(async move {
            let mut grpc = tonic::server::Grpc::new(tonic_prost::ProstCodec::default());
            Ok(grpc.unary(Create(state), req).await)
        })
    }
}

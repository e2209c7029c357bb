//! The client side of `waypoint demo`: HTTP/1.1 over HBONE tunnels to service VIPs through
//! the waypoint, as a workload's ztunnel would send it, and per-backend tallies of answers.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, Method, Request};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use waypoint_hbone::tls::Identity;
use waypoint_hbone::HboneClient;

/// One workload sending through the waypoint.
#[derive(Debug, Clone)]
pub struct Caller {
    /// Service account name, for the summary.
    pub name: String,
    pub client: Arc<HboneClient>,
    /// The waypoint's HBONE address and identity.
    pub waypoint: SocketAddr,
    pub waypoint_id: Identity,
}

/// One HTTP request to a service.
#[derive(Debug, Clone)]
pub struct Call {
    /// HBONE `:authority`: the service VIP and port (`10.96.0.12:9080`).
    pub vip: String,
    /// `Host` header (`reviews:9080`).
    pub host: String,
    pub method: Method,
    pub path: String,
    pub headers: Vec<(&'static str, &'static str)>,
}

/// What came back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    /// `x-served-by` of the backend (absent for responses the waypoint made itself).
    pub served_by: Option<String>,
}

/// A kept-alive HTTP/1.1 connection through one tunnel.
pub struct Conn {
    send: SendRequest<Full<Bytes>>,
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Conn")
    }
}

impl Caller {
    /// Open a tunnel to `vip` and an HTTP/1.1 connection over it.
    pub async fn open(&self, vip: &str) -> anyhow::Result<Conn> {
        let mut headers = HeaderMap::new();
        // ztunnel tells the waypoint the original source in `forwarded`.
        if let Ok(v) = "for=\"127.0.0.1\"".parse() {
            headers.insert("forwarded", v);
        }
        let stream = self
            .client
            .connect(
                self.waypoint,
                std::slice::from_ref(&self.waypoint_id),
                vip,
                headers,
            )
            .await?;
        let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(Conn { send })
    }

    /// One request on a fresh tunnel.
    pub async fn once(&self, call: &Call) -> anyhow::Result<Answer> {
        let mut conn = self.open(&call.vip).await?;
        conn.send(call).await
    }
}

impl Conn {
    /// Send `call` and read the whole response.
    pub async fn send(&mut self, call: &Call) -> anyhow::Result<Answer> {
        let mut b = Request::builder()
            .method(call.method.clone())
            .uri(call.path.as_str())
            .header(http::header::HOST, call.host.as_str());
        for (k, v) in &call.headers {
            b = b.header(*k, *v);
        }
        let body = if call.method == Method::POST {
            Bytes::from_static(b"{\"rating\":5}")
        } else {
            Bytes::new()
        };
        let req = b.body(Full::new(body))?;
        self.send.ready().await?;
        let resp = self.send.send_request(req).await?;
        let status = resp.status().as_u16();
        let served_by = resp
            .headers()
            .get("x-served-by")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let _ = resp.into_body().collect().await?;
        Ok(Answer { status, served_by })
    }
}

/// Answers counted by who served them (`reviews-v1`), or by status when the waypoint
/// answered itself (`403`), or `error`.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Tally(pub BTreeMap<String, usize>);

impl Tally {
    pub fn add(&mut self, a: &anyhow::Result<Answer>) {
        let key = match a {
            Ok(Answer {
                status: 200,
                served_by: Some(s),
            }) => s.clone(),
            Ok(Answer { status, served_by }) => match served_by {
                Some(s) => format!("{s} {status}"),
                None => status.to_string(),
            },
            Err(_) => "error".into(),
        };
        *self.0.entry(key).or_default() += 1;
    }

    pub fn get(&self, k: &str) -> usize {
        self.0.get(k).copied().unwrap_or(0)
    }

    pub fn total(&self) -> usize {
        self.0.values().sum()
    }

    /// `reviews-v1 452 (90.4%)  reviews-v3 48 (9.6%)`.
    pub fn line(&self) -> String {
        let total = self.total().max(1) as f64;
        self.0
            .iter()
            .map(|(k, n)| format!("{k} {n} ({:.1}%)", *n as f64 * 100.0 / total))
            .collect::<Vec<_>>()
            .join("  ")
    }
}

/// Send `count` copies of `call` over `concurrency` kept-alive tunnels; `progress` is called
/// with the running tally after each answer.
pub async fn burst(
    caller: &Caller,
    call: &Call,
    count: usize,
    concurrency: usize,
    progress: impl Fn(&Tally) + Send + Sync + 'static,
) -> Tally {
    let tally = Arc::new(std::sync::Mutex::new(Tally::default()));
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let progress = Arc::new(progress);
    let mut workers = Vec::new();
    for _ in 0..concurrency.clamp(1, 64) {
        let (caller, call) = (caller.clone(), call.clone());
        let (tally, next, progress) = (tally.clone(), next.clone(), progress.clone());
        workers.push(tokio::spawn(async move {
            let mut conn: Option<Conn> = None;
            while next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < count {
                let answer = match conn.as_mut() {
                    Some(c) => c.send(&call).await,
                    None => match caller.open(&call.vip).await {
                        Ok(mut c) => {
                            let a = c.send(&call).await;
                            conn = Some(c);
                            a
                        }
                        Err(e) => Err(e),
                    },
                };
                if answer.is_err() {
                    conn = None;
                }
                let mut t = tally.lock().unwrap_or_else(|p| p.into_inner());
                t.add(&answer);
                progress(&t);
            }
        }));
    }
    for w in workers {
        let _ = w.await;
    }
    let t = tally.lock().unwrap_or_else(|p| p.into_inner());
    t.clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tally_keys_by_backend_or_status() {
        let mut t = Tally::default();
        for a in [
            Ok(Answer {
                status: 200,
                served_by: Some("reviews-v1".into()),
            }),
            Ok(Answer {
                status: 200,
                served_by: Some("reviews-v1".into()),
            }),
            Ok(Answer {
                status: 403,
                served_by: None,
            }),
            Ok(Answer {
                status: 404,
                served_by: Some("reviews-v3".into()),
            }),
            Err(anyhow::anyhow!("reset")),
        ] {
            t.add(&a);
        }
        assert_eq!(t.get("reviews-v1"), 2);
        assert_eq!(t.get("403"), 1);
        assert_eq!(t.get("reviews-v3 404"), 1);
        assert_eq!(t.get("error"), 1);
        assert_eq!(t.total(), 5);
        assert!(t.line().contains("reviews-v1 2 (40.0%)"), "{}", t.line());
    }
}

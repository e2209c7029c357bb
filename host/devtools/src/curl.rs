//! `waypoint curl`: one HTTP/1.1 request through a waypoint over HBONE, presenting a workload's
//! certificate as that workload's ztunnel would, and the response the waypoint sent back.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, StatusCode, Version};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use waypoint_hbone::tls::{certs, CertPaths, CertStore, Identity};
use waypoint_hbone::HboneClient;

use crate::dev_ca::{workload_dir, DevCa};

/// One request to send through the waypoint.
#[derive(Debug, Clone)]
pub struct Outgoing {
    /// The waypoint's HBONE address.
    pub waypoint: SocketAddr,
    /// Identities the waypoint may present (empty: any of our trust domain).
    pub expected: Vec<Identity>,
    /// The CONNECT `:authority`: the original destination (`VIP:port`, `host:port`).
    pub authority: String,
    pub method: Method,
    /// Path and query.
    pub path: String,
    /// `Host` header.
    pub host: String,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub body: Bytes,
    /// For the tunnel, the request and the whole response.
    pub timeout: Duration,
}

/// The waypoint's answer.
#[derive(Debug, Clone)]
pub struct Answer {
    pub version: Version,
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// Why the request got no HTTP answer.
#[derive(Debug, thiserror::Error)]
pub enum CurlError {
    /// The waypoint refused the tunnel (its CONNECT status: 401 L4 policy, 503 no config or
    /// no endpoint, 400 bad authority).
    #[error("the waypoint at {waypoint} refused the tunnel to {authority}: {status}{hint}")]
    Refused {
        waypoint: SocketAddr,
        authority: String,
        status: StatusCode,
        hint: &'static str,
    },
    /// No HBONE connection (nothing listening, TLS failure, wrong identity).
    #[error("no HBONE tunnel through {waypoint}: {detail} (is `waypoint run` listening there?)")]
    Tunnel {
        waypoint: SocketAddr,
        detail: String,
    },
    /// The HTTP exchange inside the tunnel failed.
    #[error("the request through {waypoint} failed: {detail}")]
    Http {
        waypoint: SocketAddr,
        detail: String,
    },
    #[error("no answer from {waypoint} within {timeout:?}")]
    Timeout {
        waypoint: SocketAddr,
        timeout: Duration,
    },
}

/// What a refused CONNECT status means on `waypoint run`.
fn refusal_hint(status: StatusCode) -> &'static str {
    match status.as_u16() {
        401 => " (an L4 AuthorizationPolicy denies this source)",
        503 => " (no config loaded yet, no endpoint, or the destination cannot be reached)",
        400 => " (the destination is not a valid host:port)",
        _ => "",
    }
}

/// Send `out` through the waypoint with `client`'s identity and collect the answer.
pub async fn send(client: &HboneClient, out: &Outgoing) -> Result<Answer, CurlError> {
    tokio::time::timeout(out.timeout, exchange(client, out))
        .await
        .unwrap_or(Err(CurlError::Timeout {
            waypoint: out.waypoint,
            timeout: out.timeout,
        }))
}

async fn exchange(client: &HboneClient, out: &Outgoing) -> Result<Answer, CurlError> {
    let http_err = |e: &dyn std::fmt::Display| CurlError::Http {
        waypoint: out.waypoint,
        detail: e.to_string(),
    };
    let stream = client
        .connect(
            out.waypoint,
            &out.expected,
            &out.authority,
            HeaderMap::new(),
        )
        .await
        .map_err(|e| match e.status() {
            Some(status) => CurlError::Refused {
                waypoint: out.waypoint,
                authority: out.authority.clone(),
                status,
                hint: refusal_hint(status),
            },
            None => CurlError::Tunnel {
                waypoint: out.waypoint,
                detail: e.to_string(),
            },
        })?;
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| http_err(&e))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let req = request(out).map_err(|e| http_err(&e))?;
    let resp = send.send_request(req).await.map_err(|e| http_err(&e))?;
    let (parts, body) = resp.into_parts();
    let body = body.collect().await.map_err(|e| http_err(&e))?.to_bytes();
    Ok(Answer {
        version: parts.version,
        status: parts.status,
        headers: parts.headers,
        body,
    })
}

/// The HTTP/1.1 request of `out`.
pub fn request(out: &Outgoing) -> Result<Request<Full<Bytes>>, http::Error> {
    let mut b = Request::builder()
        .method(out.method.clone())
        .uri(&out.path)
        .header(http::header::HOST, &out.host);
    for (k, v) in &out.headers {
        b = b.header(k, v);
    }
    b.body(Full::new(out.body.clone()))
}

/// The certificate of workload `ns/sa` from a `dev-ca` directory: `dir/<ns>.<sa>/`, issued by
/// the dev CA in `dir` (and written there) when it is not there yet or has expired.
pub fn dev_identity(dir: &Path, id: &Identity) -> anyhow::Result<(PathBuf, Arc<CertStore>)> {
    let wdir = workload_dir(dir, id);
    let existing = CertPaths::find(&wdir)
        .ok()
        .filter(|p| still_valid(&p.cert))
        .and_then(|p| certs::load(&p).ok());
    let material = match existing {
        Some(m) if m.identity == *id => m,
        _ => {
            anyhow::ensure!(
                dir.join("ca.pem").is_file() && dir.join("ca-key.pem").is_file(),
                "no certificate for {id} in {} and no dev CA in {} to issue one \
                 (run `waypoint dev-ca --out {} --workload {}/{}` first)",
                wdir.display(),
                dir.display(),
                dir.display(),
                id.namespace,
                id.service_account
            );
            let ca = DevCa::load(dir, &id.trust_domain)
                .with_context(|| format!("the dev CA in {}", dir.display()))?;
            ca.write_workload(dir, id)?;
            certs::load(&CertPaths::from_dir(&wdir))?
        }
    };
    Ok((wdir, CertStore::new(material)?))
}

/// Whether the leaf in the chain file `chain` is valid for at least another minute.
fn still_valid(chain: &Path) -> bool {
    let Ok(pem) = std::fs::read_to_string(chain) else {
        return false;
    };
    let Ok(chain) = certs::parse_certs(&pem) else {
        return false;
    };
    let Some(Ok((_, leaf))) = chain
        .first()
        .map(|c| x509_parser::parse_x509_certificate(c.as_ref()))
    else {
        return false;
    };
    let soon = x509_parser::time::ASN1Time::from_timestamp(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64 + 60),
    );
    soon.is_ok_and(|t| leaf.validity().not_after > t)
}

/// The response head as curl prints it: status line, then one `name: value` per header.
pub fn head(answer: &Answer) -> String {
    let mut s = format!(
        "{:?} {} {}\n",
        answer.version,
        answer.status.as_u16(),
        answer.status.canonical_reason().unwrap_or("")
    );
    for (k, v) in &answer.headers {
        s.push_str(&format!("{k}: {}\n", String::from_utf8_lossy(v.as_bytes())));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_carries_method_path_host_headers_and_body() {
        let out = Outgoing {
            waypoint: "127.0.0.1:15008".parse().expect("addr"),
            expected: vec![],
            authority: "productpage:9080".into(),
            method: Method::POST,
            path: "/api/v1?x=1".into(),
            host: "productpage:9080".into(),
            headers: vec![(
                HeaderName::from_static("end-user"),
                HeaderValue::from_static("jason"),
            )],
            body: Bytes::from_static(b"{}"),
            timeout: Duration::from_secs(1),
        };
        let req = request(&out).expect("request");
        assert_eq!(req.method(), Method::POST);
        assert_eq!(req.uri(), "/api/v1?x=1");
        assert_eq!(req.headers()["host"], "productpage:9080");
        assert_eq!(req.headers()["end-user"], "jason");
    }

    #[test]
    fn dev_identity_issues_once_then_reuses() {
        let dir = std::env::temp_dir().join(format!("wp-curl-id-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let id = Identity::new("cluster.local", "default", "curl");
        // No CA yet: an error that says what to run.
        let e = dev_identity(&dir, &id).expect_err("no CA");
        assert!(format!("{e:#}").contains("waypoint dev-ca --out"), "{e:#}");
        DevCa::load_or_generate(&dir, "cluster.local").expect("ca");
        let (wdir, store) = dev_identity(&dir, &id).expect("issued");
        assert_eq!(store.identity(), id);
        let first = std::fs::read_to_string(wdir.join("cert-chain.pem")).expect("read");
        let (_, again) = dev_identity(&dir, &id).expect("reused");
        assert_eq!(again.identity(), id);
        let second = std::fs::read_to_string(wdir.join("cert-chain.pem")).expect("read");
        assert_eq!(first, second, "a valid certificate is reused, not reissued");
        std::fs::remove_dir_all(&dir).ok();
    }
}

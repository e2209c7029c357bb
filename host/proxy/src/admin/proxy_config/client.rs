//! Reads a running waypoint's admin: detects Envoy (`/server_info`) or the host
//! (`/proxy_config`) and returns the one [`ProxyConfig`] shape for both.

use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::rt::TokioIo;
use serde_json::Value;

use super::view::ProxyConfig;

/// Largest admin answer read (Envoy's config dump of a large mesh is a few MiB).
const MAX_BODY: usize = 64 << 20;

/// Why the admin could not be read. Each variant names the address and path.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("admin {addr}: cannot resolve or connect")]
    Connect {
        addr: String,
        source: std::io::Error,
    },
    #[error("admin {addr}{path}: {message}")]
    Http {
        addr: String,
        path: String,
        message: String,
    },
    #[error("admin {addr}{path}: no answer within {timeout:?}")]
    Timeout {
        addr: String,
        path: String,
        timeout: Duration,
    },
    #[error("admin {addr}{path}: answered {status}: {body}")]
    Status {
        addr: String,
        path: String,
        status: u16,
        body: String,
    },
    #[error("admin {addr}{path}: not the expected JSON: {message}")]
    Json {
        addr: String,
        path: String,
        message: String,
    },
    #[error(
        "admin {addr} is neither Envoy (/server_info answered {envoy}) nor a waypoint host \
         (/proxy_config answered {host})"
    )]
    Unknown { addr: String, envoy: u16, host: u16 },
}

/// One GET: (status, body).
pub async fn get(addr: &str, path: &str, timeout: Duration) -> Result<(u16, Bytes), FetchError> {
    let work = async {
        let tcp = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|source| FetchError::Connect {
                addr: addr.to_string(),
                source,
            })?;
        let http = |e: &dyn std::fmt::Display| FetchError::Http {
            addr: addr.to_string(),
            path: path.to_string(),
            message: e.to_string(),
        };
        let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
            .await
            .map_err(|e| http(&e))?;
        let conn = tokio::spawn(conn);
        let req = http::Request::builder()
            .uri(path)
            .header(http::header::HOST, addr)
            .body(Empty::<Bytes>::new())
            .map_err(|e| http(&e))?;
        let resp = send.send_request(req).await.map_err(|e| http(&e))?;
        let status = resp.status().as_u16();
        let body = Limited::new(resp.into_body(), MAX_BODY)
            .collect()
            .await
            .map_err(|e| http(&*e))?
            .to_bytes();
        conn.abort();
        Ok((status, body))
    };
    tokio::time::timeout(timeout, work)
        .await
        .map_err(|_| FetchError::Timeout {
            addr: addr.to_string(),
            path: path.to_string(),
            timeout,
        })?
}

/// GET `path` expecting 200 and JSON.
async fn get_json(addr: &str, path: &str, timeout: Duration) -> Result<Value, FetchError> {
    let (status, body) = get(addr, path, timeout).await?;
    if status != 200 {
        return Err(FetchError::Status {
            addr: addr.to_string(),
            path: path.to_string(),
            status,
            body: String::from_utf8_lossy(&body[..body.len().min(200)])
                .trim()
                .to_string(),
        });
    }
    serde_json::from_slice(&body).map_err(|e| FetchError::Json {
        addr: addr.to_string(),
        path: path.to_string(),
        message: e.to_string(),
    })
}

/// Read the waypoint behind the admin at `addr` (`host:port`). Envoy is recognised by its
/// `/server_info`; relative module `config_paths` resolve against `envoy_workdir`.
pub async fn fetch(
    addr: &str,
    envoy_workdir: &Path,
    timeout: Duration,
) -> Result<ProxyConfig, FetchError> {
    let (status, body) = get(addr, "/server_info", timeout).await?;
    let is_envoy = status == 200
        && serde_json::from_slice::<Value>(&body)
            .is_ok_and(|v| v.get("command_line_options").is_some());
    if is_envoy {
        let dump = get_json(addr, "/config_dump?include_eds", timeout).await?;
        let certs = get_json(addr, "/certs", timeout).await?;
        return Ok(super::envoy::view(&dump, &certs, envoy_workdir));
    }
    let (host_status, body) = get(addr, "/proxy_config", timeout).await?;
    if host_status != 200 {
        return Err(FetchError::Unknown {
            addr: addr.to_string(),
            envoy: status,
            host: host_status,
        });
    }
    serde_json::from_slice(&body).map_err(|e| FetchError::Json {
        addr: addr.to_string(),
        path: "/proxy_config".into(),
        message: e.to_string(),
    })
}

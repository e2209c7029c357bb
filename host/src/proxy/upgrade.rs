//! HTTP/1.1 upgrades (WebSocket and friends) through the proxy: the upgrade request goes to
//! the upstream on a dedicated connection; on `101` both sides are spliced byte for byte.

use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tracing::debug;

use super::upstream::{BoxError, ProxyBody, Target, UpstreamError, Upstreams};

/// Is this an HTTP/1.1 upgrade request (`connection: upgrade` + `upgrade: <proto>`)?
pub fn is_upgrade(req: &Request<Incoming>) -> bool {
    req.version() == http::Version::HTTP_11
        && req.headers().contains_key(http::header::UPGRADE)
        && req
            .headers()
            .get_all(http::header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
}

/// Send the upgrade request `req` (headers already mutated; `authority`/`path` final) to
/// `target`; splice the connections when it answers `101`.
pub async fn forward(
    upstreams: &Upstreams,
    target: &Target,
    mut req: Request<Incoming>,
    authority: &str,
    path: &str,
) -> Result<Response<ProxyBody>, UpstreamError> {
    let err = |message: String| UpstreamError::Reset {
        target: target.to_string(),
        message,
    };
    let downstream_upgrade = hyper::upgrade::on(&mut req);
    let io = upstreams.connect(target).await?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(|e| UpstreamError::Connect {
            target: target.to_string(),
            message: e.to_string(),
        })?;
    let t = target.to_string();
    tokio::spawn(async move {
        if let Err(e) = conn.with_upgrades().await {
            debug!(target = %t, error = %e, "upgrade: upstream connection ended");
        }
    });
    let (parts, body) = req.into_parts();
    let mut up = Request::new(body.map_err(|e| Box::new(e) as BoxError).boxed());
    *up.method_mut() = parts.method;
    *up.uri_mut() = path
        .parse()
        .map_err(|e| err(format!("bad path {path}: {e}")))?;
    *up.headers_mut() = parts.headers;
    if let Ok(v) = HeaderValue::from_str(authority) {
        up.headers_mut().insert(http::header::HOST, v);
    }
    let mut resp = sender
        .send_request(up)
        .await
        .map_err(|e| err(e.to_string()))?;
    if resp.status() != StatusCode::SWITCHING_PROTOCOLS {
        let (p, b) = resp.into_parts();
        return Ok(Response::from_parts(
            p,
            b.map_err(|e| Box::new(e) as BoxError).boxed(),
        ));
    }
    let upstream_upgrade = hyper::upgrade::on(&mut resp);
    tokio::spawn(async move {
        match (downstream_upgrade.await, upstream_upgrade.await) {
            (Ok(d), Ok(u)) => {
                let (mut d, mut u) = (TokioIo::new(d), TokioIo::new(u));
                if let Err(e) = tokio::io::copy_bidirectional(&mut d, &mut u).await {
                    debug!(error = %e, "upgrade: splice ended with error");
                }
            }
            (d, u) => debug!(downstream = ?d.err(), upstream = ?u.err(), "upgrade: failed"),
        }
    });
    let (p, _) = resp.into_parts();
    Ok(Response::from_parts(
        p,
        http_body_util::Empty::new().map_err(|e| match e {}).boxed(),
    ))
}

//! HTTP/1.1 upgrades through the proxy: which are allowed (WebSocket by default, `h2c`
//! stripped, inner CONNECT refused), then the upgrade request goes to the upstream on a
//! dedicated connection; on `101` both sides are spliced byte for byte.

use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper_util::rt::TokioIo;
use tracing::{debug, info};

use crate::connect::guard::ProxyOptions;
use crate::http::head::RequestHead;
use crate::http::headers::apply_ops;
use crate::http::reply::{self, Outcome, ProxyError};
use crate::http::request_timeout::InBody;
use crate::policy::plan::ForwardPlan;
use crate::telemetry::response_flag::ResponseFlag;
use crate::upstream::{BoxError, ProxyBody, Target, UpstreamError, Upstreams};
use crate::Shared;

/// Why a request is refused before policy: Envoy's local reply (403, details
/// `upgrade_failed`) for an upgrade type or a CONNECT the connection manager is not
/// configured for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// `CONNECT` inside a tunnel (HTTP/1 or HTTP/2) without `allow_connect`.
    Connect,
    /// An `Upgrade` type that is not in the allowed list.
    Upgrade,
}

impl Refusal {
    pub const STATUS: u16 = 403;
}

/// Screen a request's CONNECT / upgrade before it reaches policy and the upstream, as Envoy's
/// HTTP connection manager does under Istio: `Upgrade: h2c` is removed with `HTTP2-Settings`
/// and their `connection` tokens (Envoy's HTTP/1 codec strips h2c upgrades), so the request is
/// served as plain HTTP/1.1; other types must be allowed (`websocket` by default).
pub fn screen<B>(opts: &ProxyOptions, req: &mut Request<B>) -> Result<(), Refusal> {
    if req.method() == http::Method::CONNECT && !opts.allow_connect {
        return Err(Refusal::Connect);
    }
    let Some(kind) = req.headers().get(http::header::UPGRADE) else {
        return Ok(());
    };
    let kind = kind.to_str().unwrap_or("").trim();
    if kind.eq_ignore_ascii_case("h2c") {
        strip_h2c(req.headers_mut());
        return Ok(());
    }
    if !is_upgrade(req) || opts.upgrade_allowed(kind) {
        // Without `connection: upgrade` it is no upgrade: the header is hop-by-hop and
        // dropped before forwarding.
        return Ok(());
    }
    Err(Refusal::Upgrade)
}

/// Remove an h2c upgrade: `upgrade`, `http2-settings`, and those tokens from `connection`.
fn strip_h2c(headers: &mut http::HeaderMap) {
    headers.remove(http::header::UPGRADE);
    headers.remove("http2-settings");
    let kept: Vec<String> = headers
        .get_all(http::header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|t| {
            !t.is_empty()
                && !t.eq_ignore_ascii_case("upgrade")
                && !t.eq_ignore_ascii_case("http2-settings")
        })
        .map(str::to_string)
        .collect();
    headers.remove(http::header::CONNECTION);
    if !kept.is_empty() {
        if let Ok(v) = HeaderValue::from_str(&kept.join(", ")) {
            headers.insert(http::header::CONNECTION, v);
        }
    }
}

/// Is this an HTTP/1.1 upgrade request (`connection: upgrade` + `upgrade: <proto>`)?
pub fn is_upgrade<B>(req: &Request<B>) -> bool {
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
    mut req: Request<InBody>,
    authority: &str,
    path: &str,
    idle: Option<std::time::Duration>,
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
                // An upgraded stream idle for the stream idle timeout is closed (Envoy's
                // `stream_idle_timeout` applies to upgraded streams).
                if let Err(e) = crate::connect::relay::relay(&mut d, &mut u, idle).await {
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

/// The router for an upgrade request: header mutations and rewrites apply, then one attempt
/// on the first endpoint (upgrades are not retried, as in Envoy).
pub async fn route(
    shared: &Shared,
    fp: &ForwardPlan,
    mut req: Request<InBody>,
    head: &RequestHead,
) -> (Response<ProxyBody>, Outcome) {
    for ops in &fp.request_headers {
        apply_ops(req.headers_mut(), ops);
    }
    let authority = fp.authority.as_deref().unwrap_or(&head.authority);
    let path = fp.path.as_deref().unwrap_or(&head.path);
    let mut targets = fp.targets.clone();
    if fp.outlier.is_some() {
        shared.outliers.order(&mut targets);
    }
    let target = targets[0].clone();
    let idle = waypoint_hbone::timeouts::Timeouts::enabled(shared.timeouts.stream_idle);
    match forward(&shared.upstreams, &target, req, authority, path, idle).await {
        Ok(mut resp) => {
            for ops in &fp.response_headers {
                apply_ops(resp.headers_mut(), ops);
            }
            let status = resp.status().as_u16();
            (
                resp,
                Outcome {
                    status,
                    flag: ResponseFlag::None,
                    target: Some(target),
                    attempts: 1,
                },
            )
        }
        Err(e) => {
            info!(target = %target, error = %e, "upgrade: upstream failed");
            reply::error(ProxyError::UpgradeUpstream(e), Some(target), 1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(method: &str, version: http::Version, headers: &[(&str, &str)]) -> Request<()> {
        let mut b = Request::builder()
            .method(method)
            .uri("/details")
            .version(version);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).expect("request")
    }

    #[test]
    fn screening() {
        let o = ProxyOptions::default();
        let h11 = http::Version::HTTP_11;
        let mut r = req(
            "GET",
            h11,
            &[
                ("connection", "Upgrade, HTTP2-Settings, keep-alive"),
                ("upgrade", "h2c"),
                ("http2-settings", "AAMAAABkAARAAAAAAAIAAAAA"),
            ],
        );
        assert_eq!(screen(&o, &mut r), Ok(()));
        assert!(r.headers().get("upgrade").is_none());
        assert!(r.headers().get("http2-settings").is_none());
        assert_eq!(
            r.headers().get("connection").map(|v| v.as_bytes()),
            Some(&b"keep-alive"[..])
        );
        assert!(!is_upgrade(&r));
        let mut r = req("GET", h11, &[("connection", "upgrade"), ("upgrade", "H2C")]);
        assert_eq!(screen(&o, &mut r), Ok(()));
        assert!(r.headers().get("connection").is_none());
        let mut r = req(
            "GET",
            h11,
            &[("connection", "upgrade"), ("upgrade", "websocket")],
        );
        assert_eq!(screen(&o, &mut r), Ok(()));
        assert!(is_upgrade(&r));
        let mut r = req(
            "GET",
            h11,
            &[("connection", "upgrade"), ("upgrade", "foo/1")],
        );
        assert_eq!(screen(&o, &mut r), Err(Refusal::Upgrade));
        let mut r = req("GET", h11, &[("upgrade", "foo/1")]);
        assert_eq!(
            screen(&o, &mut r),
            Ok(()),
            "no connection: upgrade, no upgrade"
        );
        for v in [h11, http::Version::HTTP_2] {
            let mut r = req("CONNECT", v, &[]);
            assert_eq!(screen(&o, &mut r), Err(Refusal::Connect));
        }
        let open = ProxyOptions {
            upgrades: vec!["websocket".into(), "foo/1".into()],
            allow_connect: true,
            ..ProxyOptions::default()
        };
        let mut r = req(
            "GET",
            h11,
            &[("connection", "upgrade"), ("upgrade", "foo/1")],
        );
        assert_eq!(screen(&open, &mut r), Ok(()));
        let mut r = req("CONNECT", h11, &[]);
        assert_eq!(screen(&open, &mut r), Ok(()));
    }
}

//! The request as it goes upstream, without its body (headers mutated, authority and path
//! rewritten, wire protocol chosen), and the `http::Request` each attempt or mirror sends.

use http::request::Parts;
use http::{HeaderValue, Request, Uri, Version};

use crate::upstream::{ProxyBody, Wire};

/// The request as it goes upstream, without its body.
#[derive(Debug)]
pub struct UpstreamRequest {
    pub parts: Parts,
    pub wire: Wire,
    pub authority: String,
    pub path: String,
    /// The request target: an absolute URI on HTTP/2, origin form on HTTP/1.1 (`None`: the
    /// authority or path make none).
    uri: Option<Uri>,
    /// `Host` on HTTP/1.1 (`None`: the authority is no valid header value).
    host: Option<HeaderValue>,
}

impl UpstreamRequest {
    pub fn new(parts: Parts, wire: Wire, authority: String, path: String) -> Self {
        let (uri, host) = match wire {
            Wire::Http2 => (
                format!("http://{authority}{path}").parse::<Uri>().ok(),
                None,
            ),
            Wire::Http1 => (
                path.parse::<Uri>().ok(),
                HeaderValue::from_str(&authority).ok(),
            ),
        };
        UpstreamRequest {
            parts,
            wire,
            authority,
            path,
            uri,
            host,
        }
    }

    /// The request for one attempt with `body` (`Host` set on HTTP/1.1, removed on HTTP/2).
    /// `None` when the authority or path make no valid request.
    pub fn build(&self, body: ProxyBody) -> Option<Request<ProxyBody>> {
        let uri = self.uri.clone()?;
        let host = match self.wire {
            Wire::Http1 => Some(self.host.clone()?),
            Wire::Http2 => None,
        };
        let mut r = Request::new(body);
        *r.method_mut() = self.parts.method.clone();
        *r.uri_mut() = uri;
        *r.version_mut() = match self.wire {
            Wire::Http2 => Version::HTTP_2,
            Wire::Http1 => Version::HTTP_11,
        };
        *r.headers_mut() = self.parts.headers.clone();
        match host {
            Some(h) => {
                r.headers_mut().insert(http::header::HOST, h);
            }
            None => {
                r.headers_mut().remove(http::header::HOST);
            }
        }
        Some(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::reply::full;

    fn up(wire: Wire, authority: &str, path: &str) -> UpstreamRequest {
        let (mut parts, ()) = Request::builder()
            .method("POST")
            .uri("/original")
            .header("host", "client-host")
            .header("x-a", "1")
            .body(())
            .expect("request")
            .into_parts();
        parts.version = Version::HTTP_11;
        UpstreamRequest::new(parts, wire, authority.into(), path.into())
    }

    #[test]
    fn attempts_carry_the_rewritten_target() {
        let r = up(Wire::Http1, "reviews:9080", "/r?x=1")
            .build(full(""))
            .expect("h1");
        assert_eq!(r.uri().to_string(), "/r?x=1");
        assert_eq!(r.version(), Version::HTTP_11);
        assert_eq!(r.method(), "POST");
        assert_eq!(
            r.headers().get("host").map(|v| v.as_bytes()),
            Some(&b"reviews:9080"[..])
        );
        assert!(r.headers().contains_key("x-a"));
        let r = up(Wire::Http2, "reviews:9080", "/r")
            .build(full(""))
            .expect("h2");
        assert_eq!(r.uri().to_string(), "http://reviews:9080/r");
        assert_eq!(r.version(), Version::HTTP_2);
        assert!(r.headers().get("host").is_none());
        assert!(up(Wire::Http1, "reviews:9080", "no slash")
            .build(full(""))
            .is_none());
        assert!(up(Wire::Http1, "bad\nhost", "/").build(full("")).is_none());
    }
}

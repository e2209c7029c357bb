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
}

impl UpstreamRequest {
    /// The request for one attempt with `body`: an absolute URI on HTTP/2, origin form and
    /// `Host` on HTTP/1.1. `None` when the authority or path make no valid request.
    pub fn build(&self, body: ProxyBody) -> Option<Request<ProxyBody>> {
        let (authority, path) = (&self.authority, &self.path);
        let uri = match self.wire {
            Wire::Http2 => format!("http://{authority}{path}").parse::<Uri>().ok()?,
            Wire::Http1 => path.parse::<Uri>().ok()?,
        };
        let mut r = Request::new(body);
        *r.method_mut() = self.parts.method.clone();
        *r.uri_mut() = uri;
        *r.version_mut() = match self.wire {
            Wire::Http2 => Version::HTTP_2,
            Wire::Http1 => Version::HTTP_11,
        };
        *r.headers_mut() = self.parts.headers.clone();
        if self.wire == Wire::Http1 {
            r.headers_mut()
                .insert(http::header::HOST, HeaderValue::from_str(authority).ok()?);
        } else {
            r.headers_mut().remove(http::header::HOST);
        }
        Some(r)
    }
}

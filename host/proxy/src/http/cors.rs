//! CORS at the host's edge: the core decides (`waypoint_core::cors`, shared with the Envoy
//! module), this file reads the request's headers and writes the response's.

use http::header::{HeaderMap, HeaderValue};
use waypoint_core::route::Cors;

pub use waypoint_core::CorsAction;

/// Decide for a request with `method` and `headers` under `cors`.
pub fn evaluate(cors: &Cors, method: &str, headers: &HeaderMap) -> CorsAction {
    let origin = headers.get("origin").and_then(|v| v.to_str().ok());
    cors.evaluate(
        method,
        origin,
        headers.contains_key("access-control-request-method"),
    )
}

/// Add `headers` to a response header map (overwriting).
pub fn decorate(out: &mut HeaderMap, headers: &[(&'static str, String)]) {
    for (k, v) in headers {
        if let Ok(v) = HeaderValue::from_str(v) {
            out.insert(*k, v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use waypoint_core::matchers::StringMatch;

    /// The adapter only reads `Origin` and `Access-Control-Request-Method` and writes headers;
    /// what CORS decides is tested in the core (`waypoint_core::cors`).
    #[test]
    fn request_headers_are_read_and_response_headers_written() {
        let c = Cors {
            allow_origins: vec![StringMatch::Exact("https://a.example".into())],
            ..Cors::default()
        };
        let mut h = HeaderMap::new();
        h.insert("origin", HeaderValue::from_static("https://a.example"));
        assert!(matches!(
            evaluate(&c, "OPTIONS", &h),
            CorsAction::Decorate(_)
        ));
        h.insert(
            "access-control-request-method",
            HeaderValue::from_static("POST"),
        );
        let CorsAction::Preflight(reply) = evaluate(&c, "OPTIONS", &h) else {
            panic!("an allowed preflight");
        };
        let mut out = HeaderMap::new();
        decorate(&mut out, &reply);
        assert_eq!(out["access-control-allow-origin"], "https://a.example");
        assert_eq!(evaluate(&c, "GET", &HeaderMap::new()), CorsAction::None);
    }
}

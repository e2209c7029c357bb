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
    use std::time::Duration;
    use waypoint_core::matchers::StringMatch;

    fn cors() -> Cors {
        Cors {
            allow_origins: vec![StringMatch::Exact("https://a.example".into())],
            allow_methods: vec!["GET".into(), "POST".into()],
            allow_headers: vec!["x-token".into()],
            expose_headers: vec!["x-trace".into()],
            max_age: Some(Duration::from_secs(600)),
            allow_credentials: Some(true),
        }
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn preflight_actual_and_foreign() {
        let c = cors();
        let pre = evaluate(
            &c,
            "OPTIONS",
            &headers(&[
                ("origin", "https://a.example"),
                ("access-control-request-method", "POST"),
            ]),
        );
        let CorsAction::Preflight(h) = pre else {
            panic!("expected preflight, got {pre:?}");
        };
        assert!(h.contains(&("access-control-allow-methods", "GET,POST".into())));
        assert!(h.contains(&("access-control-max-age", "600".into())));
        let actual = evaluate(&c, "GET", &headers(&[("origin", "https://a.example")]));
        let CorsAction::Decorate(h) = actual else {
            panic!("expected decorate, got {actual:?}");
        };
        assert!(h.contains(&("access-control-expose-headers", "x-trace".into())));
        assert!(h.contains(&("access-control-allow-credentials", "true".into())));
        assert_eq!(
            evaluate(&c, "GET", &headers(&[("origin", "https://evil.example")])),
            CorsAction::None
        );
        assert_eq!(evaluate(&c, "GET", &HeaderMap::new()), CorsAction::None);
    }
}

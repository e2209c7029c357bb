//! CORS as Envoy's CORS filter applies it: answer allowed preflights locally, and add the
//! `access-control-*` headers to responses of allowed cross-origin requests.

use http::header::{HeaderMap, HeaderValue};
use waypoint_core::route::Cors;

/// What CORS does with one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CorsAction {
    /// Not a cross-origin request, or the origin is not allowed: leave it alone.
    None,
    /// An allowed preflight: reply 200 locally with these headers.
    Preflight(Vec<(String, String)>),
    /// An allowed actual request: add these headers to the response.
    Decorate(Vec<(String, String)>),
}

/// Decide for a request with `method` and `headers` under `cors`.
pub fn evaluate(cors: &Cors, method: &str, headers: &HeaderMap) -> CorsAction {
    let Some(origin) = headers.get("origin").and_then(|v| v.to_str().ok()) else {
        return CorsAction::None;
    };
    if !cors.allow_origins.iter().any(|m| m.matches(origin)) {
        return CorsAction::None;
    }
    let mut out = vec![(
        "access-control-allow-origin".to_string(),
        origin.to_string(),
    )];
    if cors.allow_credentials == Some(true) {
        out.push((
            "access-control-allow-credentials".to_string(),
            "true".to_string(),
        ));
    }
    let preflight = method == "OPTIONS" && headers.contains_key("access-control-request-method");
    if preflight {
        if !cors.allow_methods.is_empty() {
            out.push((
                "access-control-allow-methods".to_string(),
                cors.allow_methods.join(","),
            ));
        }
        if !cors.allow_headers.is_empty() {
            out.push((
                "access-control-allow-headers".to_string(),
                cors.allow_headers.join(","),
            ));
        }
        if let Some(age) = cors.max_age {
            out.push((
                "access-control-max-age".to_string(),
                age.as_secs().to_string(),
            ));
        }
        CorsAction::Preflight(out)
    } else {
        if !cors.expose_headers.is_empty() {
            out.push((
                "access-control-expose-headers".to_string(),
                cors.expose_headers.join(","),
            ));
        }
        CorsAction::Decorate(out)
    }
}

/// Add `headers` to a response header map (overwriting).
pub fn decorate(out: &mut HeaderMap, headers: &[(String, String)]) {
    for (k, v) in headers {
        if let (Ok(n), Ok(v)) = (
            http::HeaderName::from_bytes(k.as_bytes()),
            HeaderValue::from_str(v),
        ) {
            out.insert(n, v);
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
        assert!(h.contains(&("access-control-allow-methods".into(), "GET,POST".into())));
        assert!(h.contains(&("access-control-max-age".into(), "600".into())));
        let actual = evaluate(&c, "GET", &headers(&[("origin", "https://a.example")]));
        let CorsAction::Decorate(h) = actual else {
            panic!("expected decorate, got {actual:?}");
        };
        assert!(h.contains(&("access-control-expose-headers".into(), "x-trace".into())));
        assert!(h.contains(&("access-control-allow-credentials".into(), "true".into())));
        assert_eq!(
            evaluate(&c, "GET", &headers(&[("origin", "https://evil.example")])),
            CorsAction::None
        );
        assert_eq!(evaluate(&c, "GET", &HeaderMap::new()), CorsAction::None);
    }
}

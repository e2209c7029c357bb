//! CORS as Envoy's CORS filter applies a route's policy: an allowed preflight is answered
//! locally, an allowed actual request gets `access-control-*` headers on its response.

use crate::route::Cors;

/// What CORS does with one request. Header names are lowercase; values are ready to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CorsAction {
    /// Not a cross-origin request, or the origin is not allowed: leave it alone.
    None,
    /// An allowed preflight: reply 200 locally with these headers.
    Preflight(Vec<(&'static str, String)>),
    /// An allowed actual request: add these headers to the response.
    Decorate(Vec<(&'static str, String)>),
}

impl Cors {
    /// Decide for a request with `method`, its `Origin` header and whether it carries
    /// `Access-Control-Request-Method`.
    ///
    /// Envoy's `CorsFilter::isPreflight` compares the method to `OPTIONS` exactly (methods are
    /// case-sensitive, RFC 9110 §9.1): `options` is an actual request, not a preflight.
    pub fn evaluate(
        &self,
        method: &str,
        origin: Option<&str>,
        has_request_method: bool,
    ) -> CorsAction {
        let Some(origin) = origin else {
            return CorsAction::None;
        };
        if !self.allow_origins.iter().any(|m| m.matches(origin)) {
            return CorsAction::None;
        }
        let mut out = vec![("access-control-allow-origin", origin.to_string())];
        if self.allow_credentials == Some(true) {
            out.push(("access-control-allow-credentials", "true".to_string()));
        }
        if method == "OPTIONS" && has_request_method {
            if !self.allow_methods.is_empty() {
                out.push(("access-control-allow-methods", self.allow_methods.join(",")));
            }
            if !self.allow_headers.is_empty() {
                out.push(("access-control-allow-headers", self.allow_headers.join(",")));
            }
            if let Some(age) = self.max_age {
                out.push(("access-control-max-age", age.as_secs().to_string()));
            }
            CorsAction::Preflight(out)
        } else {
            if !self.expose_headers.is_empty() {
                out.push((
                    "access-control-expose-headers",
                    self.expose_headers.join(","),
                ));
            }
            CorsAction::Decorate(out)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::matchers::StringMatch;
    use std::time::Duration;

    fn cors() -> Cors {
        Cors {
            allow_origins: vec![StringMatch::Exact("https://a.example".into())],
            allow_methods: vec!["GET".into(), "POST".into()],
            allow_headers: vec!["x-a".into()],
            expose_headers: vec!["x-b".into()],
            max_age: Some(Duration::from_secs(60)),
            allow_credentials: Some(true),
        }
    }

    #[test]
    fn allowed_preflight_gets_the_policy_headers() {
        let a = cors().evaluate("OPTIONS", Some("https://a.example"), true);
        assert_eq!(
            a,
            CorsAction::Preflight(vec![
                ("access-control-allow-origin", "https://a.example".into()),
                ("access-control-allow-credentials", "true".into()),
                ("access-control-allow-methods", "GET,POST".into()),
                ("access-control-allow-headers", "x-a".into()),
                ("access-control-max-age", "60".into()),
            ])
        );
    }

    #[test]
    fn actual_request_is_decorated_with_expose_headers() {
        let a = cors().evaluate("GET", Some("https://a.example"), false);
        assert_eq!(
            a,
            CorsAction::Decorate(vec![
                ("access-control-allow-origin", "https://a.example".into()),
                ("access-control-allow-credentials", "true".into()),
                ("access-control-expose-headers", "x-b".into()),
            ])
        );
    }

    #[test]
    fn lowercase_options_is_not_a_preflight() {
        // Envoy compares the method exactly; both runtimes used to disagree here.
        let a = cors().evaluate("options", Some("https://a.example"), true);
        assert!(matches!(a, CorsAction::Decorate(_)), "{a:?}");
    }

    #[test]
    fn preflight_without_request_method_is_an_actual_request() {
        let a = cors().evaluate("OPTIONS", Some("https://a.example"), false);
        assert!(matches!(a, CorsAction::Decorate(_)), "{a:?}");
    }

    #[test]
    fn other_or_missing_origin_is_left_alone() {
        assert_eq!(
            cors().evaluate("OPTIONS", Some("https://b.example"), true),
            CorsAction::None
        );
        assert_eq!(cors().evaluate("GET", None, false), CorsAction::None);
    }
}

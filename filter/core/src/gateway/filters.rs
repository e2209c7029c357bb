//! HTTPRoute / GRPCRoute filters (rule-level and backendRef-level) converted once into
//! neutral effects; the backendRef and GRPC filter types are re-typed into the rule-level type.

use std::time::Duration;

use gateway_api::apis::experimental::httproutes::{
    HttpRouteRulesFilters, HttpRouteRulesFiltersRequestHeaderModifier,
    HttpRouteRulesFiltersRequestRedirectPathType, HttpRouteRulesFiltersType,
    HttpRouteRulesFiltersUrlRewritePathType,
};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::matchers::StringMatch;
use crate::route::{Cors, HeaderOps, PathRewrite, RedirectPort};

use super::backends::RefSpec;

/// Re-type a value between two generated structs with the same JSON shape (the crate has
/// separate, identical structs for rule-level, backendRef-level and GRPCRoute filters).
pub(crate) fn retype<T: Serialize, U: DeserializeOwned>(v: &T) -> Result<U, String> {
    serde_json::to_value(v)
        .and_then(serde_json::from_value)
        .map_err(|e| e.to_string())
}

/// A path modifier before it is tied to the prefix the rule matched on.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum PathModifier {
    Full(String),
    Prefix(String),
}

impl PathModifier {
    /// Tie to the match: `ReplacePrefixMatch` needs a PathPrefix match ("only compatible with
    /// a `PathPrefix` HTTPRouteMatch"); the replacement loses its trailing `/` so that
    /// `replacement + rest` gives the spec's table (`/foo` -> `/` on `/foo/bar` = `/bar`).
    pub(crate) fn resolve(&self, matched: Option<&StringMatch>) -> Result<PathRewrite, String> {
        match self {
            PathModifier::Full(p) => Ok(PathRewrite::Full(p.clone())),
            PathModifier::Prefix(rep) => match matched {
                Some(StringMatch::PathPrefix(prefix)) => Ok(PathRewrite::Prefix {
                    prefix: prefix.clone(),
                    replacement: rep.trim_end_matches('/').to_string(),
                }),
                _ => Err("ReplacePrefixMatch requires a PathPrefix path match".to_string()),
            },
        }
    }
}

/// RequestRedirect before the path is tied to the match.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RedirectSpec {
    pub scheme: Option<String>,
    pub host: Option<String>,
    pub port: RedirectPort,
    pub path: Option<PathModifier>,
    pub status: u16,
}

/// URLRewrite before the path is tied to the match.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RewriteSpec {
    pub host: Option<String>,
    pub path: Option<PathModifier>,
}

/// What one filter does.
#[derive(Debug, Clone)]
pub(crate) enum FilterEffect {
    RequestHeaders(HeaderOps),
    ResponseHeaders(HeaderOps),
    Mirror(RefSpec, f64),
    Redirect(RedirectSpec),
    Rewrite(RewriteSpec),
    Cors(Cors),
    /// A filter the waypoint cannot apply: "requests that would have been processed by that
    /// filter MUST receive a HTTP error response" (500).
    Unsupported(String),
}

/// Convert one filter. Errors are (field below the filter, message) for invalid content.
pub(crate) fn convert(f: &HttpRouteRulesFilters) -> Result<FilterEffect, (String, String)> {
    let missing = |field: &str| {
        (
            field.to_string(),
            "missing for this filter type".to_string(),
        )
    };
    Ok(match f.r#type {
        HttpRouteRulesFiltersType::RequestHeaderModifier => FilterEffect::RequestHeaders(
            header_ops(
                f.request_header_modifier
                    .as_ref()
                    .ok_or_else(|| missing("requestHeaderModifier"))?,
            )
            .map_err(|e| ("requestHeaderModifier".to_string(), e))?,
        ),
        HttpRouteRulesFiltersType::ResponseHeaderModifier => {
            let m = f
                .response_header_modifier
                .as_ref()
                .ok_or_else(|| missing("responseHeaderModifier"))?;
            let m: HttpRouteRulesFiltersRequestHeaderModifier =
                retype(m).map_err(|e| ("responseHeaderModifier".to_string(), e))?;
            FilterEffect::ResponseHeaders(
                header_ops(&m).map_err(|e| ("responseHeaderModifier".to_string(), e))?,
            )
        }
        HttpRouteRulesFiltersType::RequestMirror => {
            let m = f
                .request_mirror
                .as_ref()
                .ok_or_else(|| missing("requestMirror"))?;
            // Istio: fraction wins over percent; absent = 100%.
            let percent = match (&m.fraction, m.percent) {
                (Some(fr), _) => {
                    let den = fr.denominator.unwrap_or(100);
                    if den <= 0 || fr.numerator < 0 || fr.numerator > den {
                        return Err((
                            "requestMirror.fraction".into(),
                            "numerator must be in 0..=denominator, denominator > 0".into(),
                        ));
                    }
                    100.0 * f64::from(fr.numerator) / f64::from(den)
                }
                (None, Some(p)) if (0..=100).contains(&p) => f64::from(p),
                (None, Some(_)) => {
                    return Err(("requestMirror.percent".into(), "must be 0..=100".into()))
                }
                (None, None) => 100.0,
            };
            let b = &m.backend_ref;
            FilterEffect::Mirror(
                RefSpec {
                    group: b.group.clone(),
                    kind: b.kind.clone(),
                    name: b.name.clone(),
                    namespace: b.namespace.clone(),
                    port: b.port,
                },
                percent,
            )
        }
        HttpRouteRulesFiltersType::RequestRedirect => {
            let r = f
                .request_redirect
                .as_ref()
                .ok_or_else(|| missing("requestRedirect"))?;
            let status = match r.status_code {
                None => 302,
                Some(c @ (301 | 302 | 303 | 307 | 308)) => c as u16,
                Some(c) => {
                    return Err((
                        "requestRedirect.statusCode".into(),
                        format!("unsupported status {c}"),
                    ))
                }
            };
            let scheme = r.scheme.as_ref().map(super::matches::variant_name);
            // "When empty, port (if specified) of the request is used" — Istio:
            // FROM_PROTOCOL_DEFAULT when the scheme is set, else FROM_REQUEST_PORT.
            let port = match r.port {
                Some(p) => RedirectPort::Set(u16::try_from(p).ok().filter(|p| *p > 0).ok_or_else(
                    || {
                        (
                            "requestRedirect.port".to_string(),
                            format!("port {p} out of range"),
                        )
                    },
                )?),
                None if scheme.is_some() => RedirectPort::ProtocolDefault,
                None => RedirectPort::Keep,
            };
            let path =
                match &r.path {
                    None => None,
                    Some(p) => {
                        Some(match p.r#type {
                            HttpRouteRulesFiltersRequestRedirectPathType::ReplaceFullPath => {
                                PathModifier::Full(p.replace_full_path.clone().ok_or_else(
                                    || missing("requestRedirect.path.replaceFullPath"),
                                )?)
                            }
                            HttpRouteRulesFiltersRequestRedirectPathType::ReplacePrefixMatch => {
                                PathModifier::Prefix(p.replace_prefix_match.clone().ok_or_else(
                                    || missing("requestRedirect.path.replacePrefixMatch"),
                                )?)
                            }
                        })
                    }
                };
            FilterEffect::Redirect(RedirectSpec {
                scheme,
                host: r.hostname.clone(),
                port,
                path,
                status,
            })
        }
        HttpRouteRulesFiltersType::UrlRewrite => {
            let r = f
                .url_rewrite
                .as_ref()
                .ok_or_else(|| missing("urlRewrite"))?;
            let path = match &r.path {
                None => None,
                Some(p) => Some(match p.r#type {
                    HttpRouteRulesFiltersUrlRewritePathType::ReplaceFullPath => PathModifier::Full(
                        p.replace_full_path
                            .clone()
                            .ok_or_else(|| missing("urlRewrite.path.replaceFullPath"))?,
                    ),
                    HttpRouteRulesFiltersUrlRewritePathType::ReplacePrefixMatch => {
                        PathModifier::Prefix(
                            p.replace_prefix_match
                                .clone()
                                .ok_or_else(|| missing("urlRewrite.path.replacePrefixMatch"))?,
                        )
                    }
                }),
            };
            FilterEffect::Rewrite(RewriteSpec {
                host: r.hostname.clone(),
                path,
            })
        }
        HttpRouteRulesFiltersType::Cors => {
            let c = f.cors.as_ref().ok_or_else(|| missing("cors"))?;
            FilterEffect::Cors(cors(c))
        }
        HttpRouteRulesFiltersType::ExtensionRef => {
            let what = f
                .extension_ref
                .as_ref()
                .map(|e| format!(" {}/{} {}", e.group, e.kind, e.name))
                .unwrap_or_default();
            FilterEffect::Unsupported(format!("unsupported filter type \"ExtensionRef\"{what}"))
        }
        HttpRouteRulesFiltersType::ExternalAuth => {
            FilterEffect::Unsupported("unsupported filter type \"ExternalAuth\"".to_string())
        }
    })
}

/// Header modifier to HeaderOps. Names are case-insensitive ("Subsequent entries with an
/// equivalent header name MUST be ignored"); values must not hold control characters
/// (Istio rejects them).
fn header_ops(m: &HttpRouteRulesFiltersRequestHeaderModifier) -> Result<HeaderOps, String> {
    let mut ops = HeaderOps::default();
    let list = |l: &mut Vec<(String, String)>, name: &str, value: &str| -> Result<(), String> {
        if !value.bytes().all(|c| c == 0x09 || (c >= 0x20 && c != 0x7f)) {
            return Err(format!("header {name:?} value contains invalid characters"));
        }
        let name = name.to_ascii_lowercase();
        if !l.iter().any(|(n, _)| *n == name) {
            l.push((name, value.to_string()));
        }
        Ok(())
    };
    for h in m.set.iter().flatten() {
        list(&mut ops.set, &h.name, &h.value)?;
    }
    for h in m.add.iter().flatten() {
        list(&mut ops.add, &h.name, &h.value)?;
    }
    for r in m.remove.iter().flatten() {
        let name = r.to_ascii_lowercase();
        if !ops.remove.contains(&name) {
            ops.remove.push(name);
        }
    }
    Ok(ops)
}

/// CORS filter as Istio converts it: `*` = any well-formed origin, no `*` = exact, one
/// trailing `*` = prefix, other wildcards = regex. maxAge defaults to 5s (CRD default).
fn cors(c: &gateway_api::apis::experimental::httproutes::HttpRouteRulesFiltersCors) -> Cors {
    let mut out = Cors::default();
    for o in c.allow_origins.iter().flatten() {
        if o.is_empty() {
            continue;
        }
        let m = if o == "*" {
            StringMatch::regex(r"[a-zA-Z][a-zA-Z0-9+.-]*://[^/\s?#]+").ok()
        } else if !o.contains('*') {
            Some(StringMatch::Exact(o.clone()))
        } else if o.matches('*').count() == 1 && o.ends_with('*') {
            Some(StringMatch::Prefix(o.trim_end_matches('*').to_string()))
        } else {
            StringMatch::regex(&regex::escape(o).replace(r"\*", ".*")).ok()
        };
        out.allow_origins.extend(m);
    }
    out.allow_methods = c.allow_methods.clone().unwrap_or_default();
    out.allow_headers = c.allow_headers.clone().unwrap_or_default();
    out.expose_headers = c.expose_headers.clone().unwrap_or_default();
    let max_age = c.max_age.unwrap_or(5);
    out.max_age = u64::try_from(max_age)
        .ok()
        .filter(|s| *s > 0)
        .map(Duration::from_secs);
    out.allow_credentials = c.allow_credentials.filter(|b| *b);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_rewrite_table_from_spec() {
        // HTTPPathModifier docs: request path, prefix match, replacement, result.
        for (path, prefix, rep, want) in [
            ("/foo/bar", "/foo", "/xyz", "/xyz/bar"),
            ("/foo/bar", "/foo", "/xyz/", "/xyz/bar"),
            ("/foo/bar", "/foo/", "/xyz", "/xyz/bar"),
            ("/foo/bar", "/foo/", "/xyz/", "/xyz/bar"),
            ("/foo", "/foo", "/xyz", "/xyz"),
            ("/foo/", "/foo", "/xyz", "/xyz/"),
            ("/foo/bar", "/foo", "", "/bar"),
            ("/foo/", "/foo", "", "/"),
            ("/foo", "/foo", "", "/"),
            ("/foo/", "/foo", "/", "/"),
            ("/foo", "/foo", "/", "/"),
            ("/strip-prefix/three", "/strip-prefix", "/", "/three"),
            ("/anything", "/", "/x", "/x/anything"),
        ] {
            let m = StringMatch::path_prefix(prefix);
            let rw = PathModifier::Prefix(rep.to_string())
                .resolve(Some(&m))
                .expect("prefix match");
            let got = crate::snapshot::rewrite_path(path, &rw, Some(&m));
            assert_eq!(got, want, "{path} {prefix} {rep}");
        }
    }

    #[test]
    fn prefix_modifier_needs_prefix_match() {
        let m = StringMatch::Exact("/a".into());
        assert!(PathModifier::Prefix("/b".into()).resolve(Some(&m)).is_err());
        assert!(PathModifier::Full("/b".into()).resolve(Some(&m)).is_ok());
    }

    #[test]
    fn cors_origins() {
        let c = gateway_api::apis::experimental::httproutes::HttpRouteRulesFiltersCors {
            allow_origins: Some(vec![
                "*".into(),
                "https://a.com".into(),
                "https://b.*".into(),
                "https://*.c.com".into(),
            ]),
            ..Default::default()
        };
        let out = cors(&c);
        let any = |o: &str| out.allow_origins.iter().any(|m| m.matches(o));
        assert!(any("http://x.y:8080"));
        assert!(!out.allow_origins[0].matches("not an origin"));
        assert!(out.allow_origins[1].matches("https://a.com"));
        assert!(out.allow_origins[2].matches("https://b.org"));
        assert!(out.allow_origins[3].matches("https://x.c.com"));
        assert!(!out.allow_origins[3].matches("https://x.d.com"));
        assert_eq!(out.max_age, Some(Duration::from_secs(5)));
        assert_eq!(out.allow_credentials, None);
    }
}

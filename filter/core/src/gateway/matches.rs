//! HTTPRouteMatch and GRPCRouteMatch compiled into `RequestMatch` (path, method, headers, query).
//! Defaults follow the CRDs: no matches = one PathPrefix `/` match; path type PathPrefix, value `/`.

use gateway_api::apis::experimental::grpcroutes::{
    GrpcRouteRulesMatches, GrpcRouteRulesMatchesHeadersType, GrpcRouteRulesMatchesMethodType,
};
use gateway_api::apis::experimental::httproutes::{
    HttpRouteRulesMatches, HttpRouteRulesMatchesHeadersType, HttpRouteRulesMatchesPathType,
    HttpRouteRulesMatchesQueryParamsType,
};

use crate::matchers::StringMatch;
use crate::route::{HeaderMatch, QueryMatch, RequestMatch};

/// Compile one HTTPRouteMatch. Errors name the field below the match (`path.value`).
pub(crate) fn http_match(m: &HttpRouteRulesMatches) -> Result<RequestMatch, (String, String)> {
    let mut out = RequestMatch::default();
    let (ty, value) = match &m.path {
        Some(p) => (
            p.r#type
                .clone()
                .unwrap_or(HttpRouteRulesMatchesPathType::PathPrefix),
            p.value.clone().unwrap_or_else(|| "/".to_string()),
        ),
        None => (HttpRouteRulesMatchesPathType::PathPrefix, "/".to_string()),
    };
    if !value.starts_with('/') && ty != HttpRouteRulesMatchesPathType::RegularExpression {
        return Err(("path.value".into(), "must be an absolute path".into()));
    }
    out.path = Some(match ty {
        HttpRouteRulesMatchesPathType::Exact => StringMatch::Exact(value),
        // "Matches based on a URL path prefix split by `/`... a trailing `/` is ignored."
        HttpRouteRulesMatchesPathType::PathPrefix => StringMatch::path_prefix(&value),
        // RegularExpression: full match, RE2 syntax (Envoy safe_regex, as Istio emits).
        HttpRouteRulesMatchesPathType::RegularExpression => {
            regex(&value).map_err(|e| ("path.value".to_string(), e))?
        }
    });
    if let Some(method) = &m.method {
        // The serde rename of the enum variant is the HTTP method token.
        let name = variant_name(method);
        out.method = Some(StringMatch::Exact(name));
    }
    // "If multiple entries specify equivalent header names, only the first entry with an
    // equivalent name MUST be considered." Names are case-insensitive.
    for (i, h) in m.headers.iter().flatten().enumerate() {
        let name = h.name.to_ascii_lowercase();
        if out.headers.iter().any(|x| x.name == name) {
            continue;
        }
        let matcher = match h.r#type {
            Some(HttpRouteRulesMatchesHeadersType::RegularExpression) => {
                regex(&h.value).map_err(|e| (format!("headers[{i}].value"), e))?
            }
            _ => StringMatch::Exact(h.value.clone()),
        };
        out.headers.push(HeaderMatch {
            name,
            matcher: Some(matcher),
            invert: false,
        });
    }
    // Query param names are case-sensitive; first entry with a name wins.
    for (i, q) in m.query_params.iter().flatten().enumerate() {
        if out.query.iter().any(|x| x.name == q.name) {
            continue;
        }
        let matcher = match q.r#type {
            Some(HttpRouteRulesMatchesQueryParamsType::RegularExpression) => {
                regex(&q.value).map_err(|e| (format!("queryParams[{i}].value"), e))?
            }
            _ => StringMatch::Exact(q.value.clone()),
        };
        out.query.push(QueryMatch {
            name: q.name.clone(),
            matcher: Some(matcher),
        });
    }
    Ok(out)
}

/// Compile one GRPCRouteMatch into a `:path` match as Istio does (`/service/method`):
/// Exact with both -> exact path; service only -> prefix `/service/`; method only -> regex
/// `/[^/]+/method`; RegularExpression -> regex over the same shape.
pub(crate) fn grpc_match(m: &GrpcRouteRulesMatches) -> Result<RequestMatch, (String, String)> {
    let mut out = RequestMatch::default();
    if let Some(mm) = &m.method {
        let regex_type = matches!(
            mm.r#type,
            Some(GrpcRouteRulesMatchesMethodType::RegularExpression)
        );
        let path = match (mm.service.as_deref(), mm.method.as_deref(), regex_type) {
            (None, None, _) => {
                return Err((
                    "method".into(),
                    "one of service or method must be set".into(),
                ))
            }
            (Some(s), Some(me), false) => Ok(StringMatch::Exact(format!("/{s}/{me}"))),
            (Some(s), None, false) => Ok(StringMatch::Prefix(format!("/{s}/"))),
            (None, Some(me), _) => regex(&format!("/[^/]+/{me}")),
            (Some(s), None, true) => regex(&format!("/{s}/.+")),
            (Some(s), Some(me), true) => regex(&format!("/{s}/{me}")),
        }
        .map_err(|e| ("method".to_string(), e))?;
        out.path = Some(path);
    }
    for (i, h) in m.headers.iter().flatten().enumerate() {
        let name = h.name.to_ascii_lowercase();
        if out.headers.iter().any(|x| x.name == name) {
            continue;
        }
        let matcher = match h.r#type {
            Some(GrpcRouteRulesMatchesHeadersType::RegularExpression) => {
                regex(&h.value).map_err(|e| (format!("headers[{i}].value"), e))?
            }
            _ => StringMatch::Exact(h.value.clone()),
        };
        out.headers.push(HeaderMatch {
            name,
            matcher: Some(matcher),
            invert: false,
        });
    }
    Ok(out)
}

fn regex(pattern: &str) -> Result<StringMatch, String> {
    StringMatch::regex(pattern).map_err(|e| format!("invalid regular expression: {e}"))
}

/// The serialized (wire) name of a unit enum variant, e.g. `GET`.
pub(crate) fn variant_name<T: serde::Serialize>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(s)) => s,
        Ok(other) => other.to_string(),
        Err(_) => String::new(),
    }
}

//! The rate limit service client: `envoy.service.ratelimit.v3.RateLimitService/ShouldRateLimit`
//! with envoy-types' messages, framed by hand over the host's pooled HTTP/2 upstreams.
//!
//! [`answer`] maps a response as Envoy's ratelimit filter does: OK or OVER_LIMIT, the service's
//! header additions, and the `x-ratelimit-*` values of the descriptor with the least remaining.

use envoy_types::pb::envoy::extensions::common::ratelimit::v3::{
    rate_limit_descriptor::Entry, RateLimitDescriptor,
};
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_response::{rate_limit::Unit, Code};
use envoy_types::pb::envoy::service::ratelimit::v3::{RateLimitRequest, RateLimitResponse};

use crate::upstream::grpc_unary::{self, UnaryError};
use crate::upstream::{Target, Upstreams};

/// The gRPC method path.
pub const SHOULD_RATE_LIMIT: &str = "/envoy.service.ratelimit.v3.RateLimitService/ShouldRateLimit";

/// Why a call gave no answer (Envoy: `ratelimit.error`).
#[derive(Debug, thiserror::Error)]
pub enum RlsError {
    #[error("no endpoint for the rate limit service")]
    NoEndpoint,
    #[error("timed out")]
    Timeout,
    #[error("transport: {0}")]
    Transport(String),
    #[error("gRPC status {0}: {1}")]
    Grpc(i32, String),
    #[error("bad response: {0}")]
    BadResponse(String),
}

/// What the service said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RlsAnswer {
    pub over_limit: bool,
    /// `response_headers_to_add` (lower-case names).
    pub response_headers: Vec<(String, String)>,
    /// `request_headers_to_add`: for the upstream request when allowed.
    pub request_headers: Vec<(String, String)>,
    /// `raw_body`: the limited response's body.
    pub body: String,
    /// `x-ratelimit-limit`, `-remaining`, `-reset` values (from the descriptors' statuses).
    pub x_ratelimit: Option<[String; 3]>,
}

/// The request Envoy sends: the domain and one descriptor per list of entries.
pub fn build_request(domain: &str, descriptors: &[Vec<(String, String)>]) -> RateLimitRequest {
    RateLimitRequest {
        domain: domain.to_string(),
        descriptors: descriptors
            .iter()
            .map(|d| RateLimitDescriptor {
                entries: d
                    .iter()
                    .map(|(k, v)| Entry {
                        key: k.clone(),
                        value: v.clone(),
                    })
                    .collect(),
                ..Default::default()
            })
            .collect(),
        hits_addend: 0,
    }
}

/// A limit's window in seconds, as Envoy's `x-ratelimit-limit` quota policy writes it.
fn window(unit: i32) -> Option<u64> {
    Some(match Unit::try_from(unit).ok()? {
        Unit::Second => 1,
        Unit::Minute => 60,
        Unit::Hour => 3600,
        Unit::Day => 86_400,
        Unit::Week => 604_800,
        Unit::Month => 2_592_000,
        Unit::Year => 31_536_000,
        Unit::Unknown => return None,
    })
}

/// Map a response as Envoy's filter does; a code other than OK / OVER_LIMIT is an error.
pub fn answer(resp: RateLimitResponse) -> Result<RlsAnswer, RlsError> {
    let over_limit = match Code::try_from(resp.overall_code) {
        Ok(Code::Ok) => false,
        Ok(Code::OverLimit) => true,
        _ => {
            return Err(RlsError::BadResponse(format!(
                "overall_code {}",
                resp.overall_code
            )))
        }
    };
    let headers = |list: &[envoy_types::pb::envoy::config::core::v3::HeaderValue]| {
        list.iter()
            .map(|h| (h.key.to_ascii_lowercase(), h.value.clone()))
            .collect::<Vec<_>>()
    };
    // DRAFT_VERSION_03: the status with the least remaining gives remaining and reset; the
    // limit lists its own value, then every status's quota policy `<n>;w=<secs>`.
    let mut least: Option<(u32, u32, u64)> = None;
    let mut policy = String::new();
    for s in &resp.statuses {
        let Some(l) = &s.current_limit else { continue };
        if least.is_none_or(|(_, r, _)| s.limit_remaining < r) {
            let reset = s
                .duration_until_reset
                .as_ref()
                .map(|d| d.seconds.max(0) as u64)
                .unwrap_or(0);
            least = Some((l.requests_per_unit, s.limit_remaining, reset));
        }
        if let Some(w) = window(l.unit) {
            policy.push_str(&format!(", {};w={w}", l.requests_per_unit));
            if !l.name.is_empty() {
                policy.push_str(&format!(";name=\"{}\"", l.name));
            }
        }
    }
    Ok(RlsAnswer {
        over_limit,
        response_headers: headers(&resp.response_headers_to_add),
        request_headers: headers(&resp.request_headers_to_add),
        body: String::from_utf8_lossy(&resp.raw_body).into_owned(),
        x_ratelimit: least.map(|(limit, remaining, reset)| {
            [
                format!("{limit}{policy}"),
                remaining.to_string(),
                reset.to_string(),
            ]
        }),
    })
}

/// One call to `target` (`authority`: the cluster's name, as Envoy's `envoy_grpc` sends it).
pub async fn should_rate_limit(
    upstreams: &Upstreams,
    target: &Target,
    authority: &str,
    request: &RateLimitRequest,
) -> Result<RlsAnswer, RlsError> {
    // The cluster name is no valid URI authority (`outbound|8081||host`): the target decides
    // where the call goes, the `:authority` is only what the service sees.
    let host = if http::uri::Authority::try_from(authority).is_ok() {
        authority
    } else {
        "ratelimit"
    };
    let uri = format!("http://{host}{SHOULD_RATE_LIMIT}");
    let resp: RateLimitResponse = grpc_unary::call(upstreams, target, &uri, request)
        .await
        .map_err(|e| match e {
            UnaryError::Transport(m) => RlsError::Transport(m),
            UnaryError::Grpc(c, m) => RlsError::Grpc(c, m),
            UnaryError::BadResponse(m) => RlsError::BadResponse(m),
        })?;
    answer(resp)
}

#[cfg(test)]
mod tests {
    use super::*;
    use envoy_types::pb::envoy::config::core::v3::HeaderValue as PbHeader;
    use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_response::{
        DescriptorStatus, RateLimit,
    };
    use envoy_types::pb::google::protobuf::Duration as PbDuration;

    fn status(per_unit: u32, unit: Unit, remaining: u32, reset: i64) -> DescriptorStatus {
        DescriptorStatus {
            code: Code::Ok as i32,
            current_limit: Some(RateLimit {
                requests_per_unit: per_unit,
                unit: unit as i32,
                ..Default::default()
            }),
            limit_remaining: remaining,
            duration_until_reset: Some(PbDuration {
                seconds: reset,
                nanos: 0,
            }),
            ..Default::default()
        }
    }

    #[test]
    fn request_carries_domain_and_descriptors() {
        let r = build_request(
            "ratelimit",
            &[vec![
                ("PATH".into(), "/a".into()),
                ("user".into(), "x".into()),
            ]],
        );
        assert_eq!(r.domain, "ratelimit");
        assert_eq!(r.descriptors.len(), 1);
        let keys: Vec<&str> = r.descriptors[0]
            .entries
            .iter()
            .map(|e| e.key.as_str())
            .collect();
        assert_eq!(keys, ["PATH", "user"]);
    }

    #[test]
    fn over_limit_with_headers_and_the_least_remaining_status() {
        let resp = RateLimitResponse {
            overall_code: Code::OverLimit as i32,
            statuses: vec![
                status(10, Unit::Minute, 4, 30),
                status(2, Unit::Second, 0, 1),
            ],
            response_headers_to_add: vec![PbHeader {
                key: "X-Why".into(),
                value: "busy".into(),
                ..Default::default()
            }],
            ..Default::default()
        };
        let a = answer(resp).expect("answer");
        assert!(a.over_limit);
        assert_eq!(
            a.response_headers,
            [("x-why".to_string(), "busy".to_string())]
        );
        assert_eq!(
            a.x_ratelimit,
            Some(["2, 10;w=60, 2;w=1".to_string(), "0".into(), "1".into()])
        );
        let unknown = RateLimitResponse::default();
        assert!(answer(unknown).is_err());
    }
}

//! Envoy's response flags, the short codes its access logs and Istio's `response_flags` metric
//! label carry for why a response is not simply the upstream's.

/// One Envoy response flag (`%RESPONSE_FLAGS%`); [`ResponseFlag::as_str`] is the label value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ResponseFlag {
    /// `-`: none (the upstream's response, or a policy's own reply such as an RBAC deny).
    None,
    /// `NR`: no route matched.
    NoRouteFound,
    /// `FI`: the request was aborted by fault injection.
    FaultInjected,
    /// `UAEX`: denied by the external authorization service.
    UnauthorizedExternalService,
    /// `DPE`: the downstream request had an HTTP protocol error.
    DownstreamProtocolError,
    /// `SI`: the stream idle timeout fired.
    StreamIdleTimeout,
    /// `UF`: upstream connection failure.
    UpstreamConnectionFailure,
    /// `UC`: upstream connection termination.
    UpstreamConnectionTermination,
    /// `UT`: upstream request timeout.
    UpstreamRequestTimeout,
    /// `UO`: upstream overflow (a cluster's circuit breaker was full).
    UpstreamOverflow,
    /// `UH`: no healthy upstream (every endpoint ejected by outlier detection).
    NoHealthyUpstream,
    /// `RL`: limited by the local or global rate limit filter.
    RateLimited,
    /// `RLSE`: the rate limit service failed and `failure_mode_deny` denied the request.
    RateLimitServiceError,
}

impl ResponseFlag {
    /// The flag as Envoy prints it.
    pub fn as_str(self) -> &'static str {
        match self {
            ResponseFlag::None => "-",
            ResponseFlag::NoRouteFound => "NR",
            ResponseFlag::FaultInjected => "FI",
            ResponseFlag::UnauthorizedExternalService => "UAEX",
            ResponseFlag::DownstreamProtocolError => "DPE",
            ResponseFlag::StreamIdleTimeout => "SI",
            ResponseFlag::UpstreamConnectionFailure => "UF",
            ResponseFlag::UpstreamConnectionTermination => "UC",
            ResponseFlag::UpstreamRequestTimeout => "UT",
            ResponseFlag::UpstreamOverflow => "UO",
            ResponseFlag::NoHealthyUpstream => "UH",
            ResponseFlag::RateLimited => "RL",
            ResponseFlag::RateLimitServiceError => "RLSE",
        }
    }
}

impl std::fmt::Display for ResponseFlag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

//! The HTTP path inside a tunnel: `pipeline` serves each request through its stages in order —
//! `plan` (policy), `filters` (CORS, fault, header mutations), `authz` (ext_authz), then the
//! router: `body`, `mirror`, `retry` over `attempt`s, `deadline`s — and `report`s it; `reply`
//! maps every local answer and proxy error to a response. The rest are helpers (headers, CORS
//! rules, upgrades, the request and header-read timers).

pub mod attempt;
pub mod authz;
pub mod body;
pub mod cors;
pub mod deadline;
pub mod filters;
pub mod global_ratelimit;
pub mod head;
pub mod head_timer;
pub mod headers;
pub mod jwt;
pub mod mirror;
pub mod pipeline;
pub mod plan;
pub mod random;
pub mod ratelimit;
pub mod reply;
pub mod report;
pub mod request_timeout;
pub mod retry;
pub mod rls_client;
pub mod trace;
pub mod upgrade;
pub mod upstream_request;

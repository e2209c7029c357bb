//! The HTTP path inside a tunnel: `forward` serves each request (policy, filters, upstream
//! attempts); the rest are its parts (headers, CORS, retries, deadlines, upgrades, timers).

pub mod cors;
pub mod deadline;
pub mod forward;
pub mod head_timer;
pub mod headers;
pub mod request_timeout;
pub mod retry;
pub mod upgrade;

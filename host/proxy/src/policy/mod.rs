//! The policy adapter: the core's decision for one request turned into what the proxy does
//! (`decide`: destination, authz, route; `plan`: the forward plan or a local reply).

pub mod decide;
pub mod plan;

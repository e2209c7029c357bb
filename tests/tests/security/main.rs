//! The security suite: every finding of the hardening review (issue 11) as a regression test,
//! against the standalone host and against stock Envoy with our module and generated bootstrap.
//!
//! | module | rows |
//! | --- | --- |
//! | `protocol` | DENY skipped by a silent client, h2c splice, raw (unnormalised) paths, tunnels to the waypoint's own loopback / ports, authority port 0 — host |
//! | `listeners` | admin endpoints reachable from outside, slowloris on every listener, metric label growth, certificate and ALPN checks — host |
//! | `envoy` | every row above against Envoy + module (`--originator` layout) |
//! | `config` | slow / deep / huge manifests, one bad resource among good ones — both modes |

mod config;
mod envoy;
mod listeners;
mod protocol;

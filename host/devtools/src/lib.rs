//! waypoint-devtools: for development and demos only. `dev_ca` is a local mesh CA issuing
//! SPIFFE workload certificates; `demo` runs bookinfo on loopback through the waypoint;
//! `curl` sends one request through a waypoint as a workload.

pub mod curl;
pub mod demo;
pub mod dev_ca;

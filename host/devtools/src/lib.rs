//! waypoint-devtools: for development and demos only. `dev_ca` is a local mesh CA issuing
//! SPIFFE workload certificates; `demo` runs bookinfo on loopback through the waypoint.

pub mod demo;
pub mod dev_ca;

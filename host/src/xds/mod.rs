//! `waypoint xds`: an ADS server (state-of-the-world and delta) for stock Envoy, serving the
//! resources of `waypoint bootstrap` as LDS/RDS/CDS/EDS/SDS.

pub mod proto;

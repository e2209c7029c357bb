//! waypoint-envoy-config: stock Envoy 1.40 as the waypoint. `bootstrap` generates a complete
//! static bootstrap (listeners, clusters, our module's config); `xds` serves it over ADS.

pub mod bootstrap;
pub mod xds;

//! waypoint-envoy: the policy core as an Envoy 1.40 dynamic-module HTTP filter.
//! Not yet implemented (issue 3); this crate only reserves its place in the workspace.

//! waypoint-benches: benchmark helpers (synthetic config generators).

//! Flag parsers the commands share: a bad value is refused by clap with the flag named,
//! before anything starts.

use waypoint_core::NamespacedName;

/// `--waypoint NS/NAME`: a valid Kubernetes `namespace/name` (an invalid one used to be
/// ignored silently by `run`).
pub fn waypoint_name(s: &str) -> Result<String, String> {
    NamespacedName::parse(s)
        .map(|n| n.to_string())
        .map_err(|e| e.to_string())
}

//! The names the verbs read and write: waypoint classes, Istio's binding labels, the traffic
//! types of `istio.io/waypoint-for`, and the check of a waypoint's name.

use std::fmt;
use std::str::FromStr;

pub use waypoint_controller::labels::{HBONE_PORT, WAYPOINT_FOR};

/// Our GatewayClass (`host/deploy/kustomize/base/gatewayclass.yaml`).
pub const DEFAULT_CLASS: &str = "waypoint";
/// Istio's waypoint class (`istioctl waypoint apply` writes it); listed and summarised too.
pub const ISTIO_CLASS: &str = "istio-waypoint";
/// The name `istioctl waypoint apply` gives a waypoint when none is given.
pub const DEFAULT_NAME: &str = "waypoint";
/// The listener of a waypoint: HBONE on 15008, named `mesh`.
pub const LISTENER: &str = "mesh";
pub const PROTOCOL: &str = "HBONE";
/// A Namespace or Service labelled with it sends its traffic through the named waypoint.
pub const USE_WAYPOINT: &str = "istio.io/use-waypoint";
/// The waypoint's namespace when it is not the labelled object's own.
pub const USE_WAYPOINT_NAMESPACE: &str = "istio.io/use-waypoint-namespace";
/// Istio's revision label; `list` prints it as istioctl does (`default` when absent).
pub const REVISION: &str = "istio.io/rev";
/// Field manager of the objects these verbs write.
pub const FIELD_MANAGER: &str = "waypoint";
/// The `istio.io/use-waypoint` value that opts an object out of its namespace's waypoint.
pub const NONE: &str = "none";

/// Traffic a waypoint handles (`istio.io/waypoint-for`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TrafficType {
    Service,
    Workload,
    All,
    None,
}

impl TrafficType {
    pub fn as_str(self) -> &'static str {
        match self {
            TrafficType::Service => "service",
            TrafficType::Workload => "workload",
            TrafficType::All => "all",
            TrafficType::None => "none",
        }
    }
}

impl fmt::Display for TrafficType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for TrafficType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "service" => Ok(TrafficType::Service),
            "workload" => Ok(TrafficType::Workload),
            "all" => Ok(TrafficType::All),
            "none" => Ok(TrafficType::None),
            _ => Err(format!(
                "{s:?}: expected service, workload, all or none (istio.io/waypoint-for)"
            )),
        }
    }
}

/// A waypoint name is a DNS-1123 label (it names the Gateway, its Service and Deployment and
/// is the value of a label); `none` is reserved (it opts objects out of waypoints).
pub fn check_name(name: &str) -> Result<(), String> {
    if name == NONE {
        return Err(format!(
            "{name:?} is reserved ({USE_WAYPOINT}=none opts out of waypoints)"
        ));
    }
    let ok_chars = name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    let ok_ends = name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric());
    if name.is_empty() || name.len() > 63 || !ok_chars || !ok_ends {
        return Err(format!(
            "{name:?} is not a DNS-1123 label (lower-case letters, digits and '-', at most 63, \
             starting and ending with a letter or digit)"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_dns_1123_labels_and_none_is_reserved() {
        for good in ["waypoint", "a", "wp-1", "9x"] {
            assert_eq!(check_name(good), Ok(()), "{good}");
        }
        for bad in ["", "Waypoint", "-a", "a-", "a.b", "a_b", &"x".repeat(64)] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
        assert!(check_name("none")
            .expect_err("an error")
            .contains("reserved"));
    }

    #[test]
    fn traffic_types_round_trip_and_others_are_refused() {
        for t in ["service", "workload", "all", "none"] {
            assert_eq!(t.parse::<TrafficType>().map(|t| t.as_str()), Ok(t));
        }
        let e = "services".parse::<TrafficType>().expect_err("an error");
        assert!(
            e.contains("\"services\"") && e.contains("waypoint-for"),
            "{e}"
        );
    }
}

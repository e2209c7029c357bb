//! Every message type `waypoint analyze` reports: Istio's codes where the meaning is Istio's
//! (pkg/config/analysis/msg/messages.yaml), `WPA` codes for waypoint-only findings.

use crate::message::{Level, MessageType};

const fn t(code: &'static str, name: &'static str, level: Level) -> MessageType {
    MessageType { code, name, level }
}

/// A reference (host, subset, targetRef, parentRef, waypoint) names nothing in the config.
pub const REFERENCED_RESOURCE_NOT_FOUND: MessageType =
    t("IST0101", "ReferencedResourceNotFound", Level::Error);
/// The resource is invalid (rejected, or rejected in part) when compiled.
pub const SCHEMA_VALIDATION_ERROR: MessageType =
    t("IST0106", "SchemaValidationError", Level::Error);
/// A VirtualService rule no request can reach.
pub const VIRTUAL_SERVICE_UNREACHABLE_RULE: MessageType =
    t("IST0130", "VirtualServiceUnreachableRule", Level::Warning);
/// A VirtualService match an earlier match already takes.
pub const VIRTUAL_SERVICE_INEFFECTIVE_MATCH: MessageType =
    t("IST0131", "VirtualServiceIneffectiveMatch", Level::Info);
/// Accepted, with a validation warning (Istio's webhook warnings, e.g. DENY without rules).
pub const SCHEMA_WARNING: MessageType = t("IST0133", "SchemaWarning", Level::Warning);
/// A policy nothing enforces.
pub const INEFFECTIVE_POLICY: MessageType = t("IST0167", "IneffectivePolicy", Level::Warning);
/// A DestinationRule subset whose labels select no endpoint.
pub const DESTINATION_RULE_SUBSET_NOT_SELECT_PODS: MessageType = t(
    "IST0173",
    "DestinationRuleSubsetNotSelectPods",
    Level::Error,
);
/// A DestinationRule host that is no service of the config.
pub const UNKNOWN_DESTINATION_RULE_HOST: MessageType =
    t("IST0174", "UnknownDestinationRuleHost", Level::Warning);

/// A field or resource the waypoint accepts but does not apply.
pub const IGNORED_BY_WAYPOINT: MessageType = t("WPA0001", "IgnoredByWaypoint", Level::Warning);
/// A kind the waypoint does not read.
pub const KIND_NOT_USED: MessageType = t("WPA0002", "KindNotUsedByWaypoint", Level::Info);
/// A Gateway API route rule or match no request reaches.
pub const ROUTE_RULE_SHADOWED: MessageType = t("WPA0003", "RouteRuleShadowed", Level::Warning);
/// VirtualService destination weights that do not add up to 100.
pub const WEIGHTS_NOT_100: MessageType = t("WPA0004", "WeightsDoNotAddUpTo100", Level::Info);
/// An AuthorizationPolicy with a `selector` and L7 attributes in a namespace with a waypoint.
pub const SELECTOR_POLICY_IGNORED: MessageType =
    t("WPA0005", "SelectorPolicyIgnoredByWaypoint", Level::Warning);
/// The config has no waypoint Gateway.
pub const NO_WAYPOINT: MessageType = t("WPA0006", "NoWaypoint", Level::Info);
/// A VirtualService host that matches no service of the config.
pub const VIRTUAL_SERVICE_HOST_UNUSED: MessageType =
    t("WPA0007", "VirtualServiceHostMatchesNoService", Level::Info);

/// All message types, by code.
pub const ALL: &[MessageType] = &[
    REFERENCED_RESOURCE_NOT_FOUND,
    SCHEMA_VALIDATION_ERROR,
    VIRTUAL_SERVICE_UNREACHABLE_RULE,
    VIRTUAL_SERVICE_INEFFECTIVE_MATCH,
    SCHEMA_WARNING,
    INEFFECTIVE_POLICY,
    DESTINATION_RULE_SUBSET_NOT_SELECT_PODS,
    UNKNOWN_DESTINATION_RULE_HOST,
    IGNORED_BY_WAYPOINT,
    KIND_NOT_USED,
    ROUTE_RULE_SHADOWED,
    WEIGHTS_NOT_100,
    SELECTOR_POLICY_IGNORED,
    NO_WAYPOINT,
    VIRTUAL_SERVICE_HOST_UNUSED,
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_sorted_and_prefixed() {
        let codes: Vec<&str> = ALL.iter().map(|m| m.code).collect();
        let mut sorted = codes.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(codes, sorted, "unique and in code order");
        assert!(codes
            .iter()
            .all(|c| c.len() == 7 && (c.starts_with("IST0") || c.starts_with("WPA0"))));
    }
}

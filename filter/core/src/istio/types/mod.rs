//! Strict serde input types for `networking.istio.io` VirtualService and DestinationRule specs
//! (v1, v1beta1 and v1alpha3 share one schema): unknown fields are errors, as the CRDs reject them.

pub mod destination_rule;
pub mod virtual_service;

pub use destination_rule::*;
pub use virtual_service::*;

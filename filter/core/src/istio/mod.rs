//! Istio networking resources: VirtualService and DestinationRule compiled into the shared
//! route model and destination policies.

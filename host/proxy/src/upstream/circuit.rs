//! Envoy's cluster circuit breakers for a DestinationRule `connectionPool`: per cluster, the
//! requests in flight, requests waiting for a connection, connections and retries, each capped.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustc_hash::FxHashMap as HashMap;
use tokio::sync::Notify;
use waypoint_core::route::ConnectionPool;

/// Envoy's cluster connect timeout when `connectTimeout` is not set (Istio's mesh default).
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The pool settings of the cluster a request goes to (`outbound|port|subset|host`).
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterPool {
    pub cluster: Arc<str>,
    pub settings: ConnectionPool,
}

/// The thresholds of one cluster. Istio puts `u32::MAX` wherever the rule sets nothing (or 0)
/// (pilot `getDefaultCircuitBreakerThresholds`), so only what a rule sets ever trips.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_connections: u32,
    pub max_pending_requests: u32,
    pub max_requests: u32,
    pub max_retries: u32,
}

impl Limits {
    pub fn of(p: &ConnectionPool) -> Limits {
        let set = |v: Option<u32>| v.filter(|v| *v > 0).unwrap_or(u32::MAX);
        Limits {
            max_connections: set(p.max_connections),
            max_pending_requests: set(p.http1_max_pending_requests),
            max_requests: set(p.http2_max_requests),
            max_retries: set(p.max_retries),
        }
    }
}

/// What a cluster has in use now.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    pub connections: u32,
    pub pending: u32,
    pub requests: u32,
    pub retries: u32,
}

/// The live counts of one cluster, and a wake-up for requests waiting on a connection.
#[derive(Debug, Default)]
pub struct ClusterState {
    usage: Mutex<Usage>,
    /// Signalled when a connection closes or one goes back to the pool.
    pub freed: Notify,
}

/// Which count a [`Slot`] holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource {
    Connection,
    Pending,
    Request,
    Retry,
}

fn field(u: &mut Usage, r: Resource) -> &mut u32 {
    match r {
        Resource::Connection => &mut u.connections,
        Resource::Pending => &mut u.pending,
        Resource::Request => &mut u.requests,
        Resource::Retry => &mut u.retries,
    }
}

/// One unit of a cluster resource, given back when dropped.
#[derive(Debug)]
pub struct Slot {
    state: Arc<ClusterState>,
    resource: Resource,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut u = self.state.usage.lock().unwrap_or_else(|p| p.into_inner());
        let n = field(&mut u, self.resource);
        *n = n.saturating_sub(1);
        drop(u);
        if self.resource == Resource::Connection {
            self.state.freed.notify_waiters();
        }
    }
}

impl ClusterState {
    /// Take one `resource` if fewer than `max` are in use (Envoy's `canCreate`).
    pub fn try_take(self: &Arc<Self>, resource: Resource, max: u32) -> Option<Slot> {
        let mut u = self.usage.lock().unwrap_or_else(|p| p.into_inner());
        let n = field(&mut u, resource);
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(Slot {
            state: self.clone(),
            resource,
        })
    }

    pub fn usage(&self) -> Usage {
        *self.usage.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Every cluster's state, by name; kept across config reloads (as Envoy keeps a cluster
/// whose definition did not change).
#[derive(Debug, Default)]
pub struct Circuits {
    clusters: Mutex<HashMap<Arc<str>, Arc<ClusterState>>>,
}

impl Circuits {
    pub fn state(&self, cluster: &Arc<str>) -> Arc<ClusterState> {
        let mut m = self.clusters.lock().unwrap_or_else(|p| p.into_inner());
        m.entry(cluster.clone()).or_default().clone()
    }

    /// The usage of `cluster`, for tests and the admin view.
    pub fn usage(&self, cluster: &str) -> Usage {
        let m = self.clusters.lock().unwrap_or_else(|p| p.into_inner());
        m.get(cluster).map(|s| s.usage()).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unset_and_zero_limits_are_unlimited() {
        let l = Limits::of(&ConnectionPool {
            max_connections: Some(0),
            http1_max_pending_requests: Some(1),
            ..ConnectionPool::default()
        });
        assert_eq!(l.max_connections, u32::MAX);
        assert_eq!(l.max_pending_requests, 1);
        assert_eq!(l.max_requests, u32::MAX);
        assert_eq!(l.max_retries, u32::MAX);
    }

    #[test]
    fn slots_are_capped_and_given_back() {
        let c = Circuits::default();
        let name: Arc<str> = Arc::from("outbound|80||a");
        let s = c.state(&name);
        let one = s.try_take(Resource::Pending, 1).expect("first");
        assert!(s.try_take(Resource::Pending, 1).is_none(), "over the limit");
        assert!(
            s.try_take(Resource::Request, 1).is_some(),
            "counts are separate"
        );
        assert_eq!(c.usage("outbound|80||a").pending, 1);
        drop(one);
        assert_eq!(c.usage("outbound|80||a").pending, 0);
        assert!(s.try_take(Resource::Pending, 1).is_some());
    }
}

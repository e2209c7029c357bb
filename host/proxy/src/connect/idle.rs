//! Connection idle tracking for the HTTP/2 servers inside tunnels: requests in flight and when
//! the last one ended, so a connection without streams is closed after the idle timeout
//! (Envoy `common_http_protocol_options.idle_timeout`; hyper has no such server option).

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Requests in flight on one connection and when the last one ended.
#[derive(Debug)]
pub struct ConnActivity {
    start: Instant,
    active: AtomicUsize,
    /// Milliseconds since `start` when the connection last went idle.
    idle_since_ms: AtomicU64,
}

impl Default for ConnActivity {
    fn default() -> Self {
        ConnActivity {
            start: Instant::now(),
            active: AtomicUsize::new(0),
            idle_since_ms: AtomicU64::new(0),
        }
    }
}

/// Marks one request in flight until dropped.
#[derive(Debug)]
pub struct Active(Arc<ConnActivity>);

impl Drop for Active {
    fn drop(&mut self) {
        let ms = self.0.start.elapsed().as_millis() as u64;
        self.0.idle_since_ms.fetch_max(ms, Ordering::Relaxed);
        self.0.active.fetch_sub(1, Ordering::Relaxed);
    }
}

impl ConnActivity {
    /// A request starts.
    pub fn begin(self: &Arc<Self>) -> Active {
        self.active.fetch_add(1, Ordering::Relaxed);
        Active(self.clone())
    }

    /// How long until the connection has been idle for `limit`: `None` when it already has.
    pub fn remaining(&self, limit: Duration) -> Option<Duration> {
        if self.active.load(Ordering::Relaxed) > 0 {
            return Some(limit);
        }
        let since = Duration::from_millis(self.idle_since_ms.load(Ordering::Relaxed));
        let idle = self.start.elapsed().saturating_sub(since);
        limit.checked_sub(idle).filter(|d| !d.is_zero())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idle_only_without_requests() {
        let a = Arc::new(ConnActivity::default());
        let limit = Duration::from_millis(30);
        let g = a.begin();
        std::thread::sleep(Duration::from_millis(40));
        assert_eq!(a.remaining(limit), Some(limit), "a request is in flight");
        drop(g);
        assert!(
            a.remaining(limit).is_some(),
            "idle only from the end of the request"
        );
        std::thread::sleep(Duration::from_millis(40));
        assert_eq!(a.remaining(limit), None);
    }
}

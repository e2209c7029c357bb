//! `waypoint_requests_total{decision, route}` counted in the module: one relaxed atomic add per
//! request, flushed to Envoy's labelled counter from the main thread at most twice a second.
//! (An Envoy labelled-counter increment resolves its tags on every call: ~4k instructions.)

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use waypoint_core::decision::Action;

/// How long counts may wait in the module before they reach Envoy's stats.
pub const FLUSH_DELAY: Duration = Duration::from_millis(500);

/// Every decision, in slot order.
const ACTIONS: [Action; 7] = [
    Action::Route,
    Action::Deny,
    Action::Redirect,
    Action::DirectResponse,
    Action::FaultAbort,
    Action::NotFound,
    Action::Passthrough,
];

fn action_slot(a: Action) -> usize {
    match a {
        Action::Route => 0,
        Action::Deny => 1,
        Action::Redirect => 2,
        Action::DirectResponse => 3,
        Action::FaultAbort => 4,
        Action::NotFound => 5,
        Action::Passthrough => 6,
    }
}

/// Pending request counts per (decision, route) of one filter config.
pub struct RequestCounts {
    /// Route labels by route index (index 0 is `none`, no rule matched).
    routes: Vec<String>,
    /// `ACTIONS.len()` slots per route.
    slots: Vec<AtomicU64>,
    /// A flush is scheduled (or running) for counts added before this was cleared.
    armed: AtomicBool,
    /// Schedules a flush (set once by the ABI adapter; absent in unit tests).
    arm: OnceLock<Box<dyn Fn() -> bool + Send + Sync>>,
}

impl std::fmt::Debug for RequestCounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestCounts")
            .field("routes", &self.routes.len())
            .finish_non_exhaustive()
    }
}

impl RequestCounts {
    /// Counts for routes `labels` (index = route index; index 0 must be `none`).
    pub fn new(labels: Vec<String>) -> Self {
        let slots = (0..labels.len() * ACTIONS.len())
            .map(|_| AtomicU64::new(0))
            .collect();
        RequestCounts {
            routes: labels,
            slots,
            armed: AtomicBool::new(false),
            arm: OnceLock::new(),
        }
    }

    /// Install the function that schedules a flush (returns false if it could not).
    pub fn set_arm(&self, arm: Box<dyn Fn() -> bool + Send + Sync>) {
        let _ = self.arm.set(arm);
    }

    /// Count one request. Returns false when `route` is unknown (the caller counts it itself).
    pub fn add(&self, action: Action, route: usize) -> bool {
        let Some(slot) = self.slots.get(route * ACTIONS.len() + action_slot(action)) else {
            return false;
        };
        slot.fetch_add(1, Ordering::Relaxed);
        if !self.armed.load(Ordering::Relaxed) && !self.armed.swap(true, Ordering::AcqRel) {
            let scheduled = self.arm.get().is_some_and(|arm| arm());
            if !scheduled {
                // Nothing will flush: let the next request try again.
                self.armed.store(false, Ordering::Release);
            }
        }
        true
    }

    /// Take every pending count: `emit(decision, route, n)` for each non-zero one. Clears the
    /// armed flag first, so a count added during the drain either is taken here or arms the
    /// next flush.
    pub fn drain(&self, mut emit: impl FnMut(&str, &str, u64)) {
        self.armed.store(false, Ordering::Release);
        for (i, slot) in self.slots.iter().enumerate() {
            if slot.load(Ordering::Relaxed) == 0 {
                continue;
            }
            let n = slot.swap(0, Ordering::AcqRel);
            if n > 0 {
                let (route, action) = (i / ACTIONS.len(), i % ACTIONS.len());
                emit(ACTIONS[action].as_str(), &self.routes[route], n);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::sync::Arc;

    #[test]
    fn counts_are_drained_once_and_a_flush_is_armed_once_per_batch() {
        let counts = RequestCounts::new(vec!["none".into(), "VirtualService/ns/vs#0".into()]);
        let arms = Arc::new(AtomicUsize::new(0));
        let a = arms.clone();
        counts.set_arm(Box::new(move || {
            a.fetch_add(1, Ordering::SeqCst);
            true
        }));
        for _ in 0..5 {
            assert!(counts.add(Action::Route, 1));
        }
        assert!(counts.add(Action::Deny, 0));
        assert!(!counts.add(Action::Route, 2), "unknown route index");
        assert_eq!(
            arms.load(Ordering::SeqCst),
            1,
            "one flush for the whole batch"
        );
        let mut got = Vec::new();
        counts.drain(|d, r, n| got.push((d.to_string(), r.to_string(), n)));
        got.sort();
        assert_eq!(
            got,
            vec![
                ("deny".to_string(), "none".to_string(), 1),
                ("route".to_string(), "VirtualService/ns/vs#0".to_string(), 5),
            ]
        );
        let mut again = 0;
        counts.drain(|_, _, _| again += 1);
        assert_eq!(again, 0, "drained counts are gone");
        // After a drain the next request arms a new flush.
        counts.add(Action::NotFound, 0);
        assert_eq!(arms.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn a_failed_arm_is_retried_by_the_next_request() {
        let counts = RequestCounts::new(vec!["none".into()]);
        let arms = Arc::new(AtomicUsize::new(0));
        let a = arms.clone();
        counts.set_arm(Box::new(move || a.fetch_add(1, Ordering::SeqCst) > 0));
        counts.add(Action::Route, 0);
        counts.add(Action::Route, 0);
        counts.add(Action::Route, 0);
        assert_eq!(arms.load(Ordering::SeqCst), 2, "failed once, then armed");
        let mut total = 0;
        counts.drain(|_, _, n| total += n);
        assert_eq!(total, 3);
    }
}

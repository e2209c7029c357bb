//! One shared timer thread for fault delays: the HTTP filter ABI has no per-stream timer, so
//! delayed streams register a wake-up here and the thread commits Envoy's scheduler on time.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::stream::Wake;

struct Entry {
    at: Instant,
    seq: u64,
    event_id: u64,
    wake: Box<dyn Wake>,
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Entry {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

struct State {
    heap: BinaryHeap<Reverse<Entry>>,
    seq: u64,
    started: bool,
}

/// A timer thread with its queue. The filter uses the one process-wide `TIMER`.
pub struct Timer {
    state: Mutex<State>,
    cond: Condvar,
}

static TIMER: Timer = Timer::new();

impl Default for Timer {
    fn default() -> Self {
        Timer::new()
    }
}

/// Fire `wake` with `event_id` after `delay` on the shared timer thread. Returns false if the
/// thread could not be started (the caller then continues without the delay).
pub fn schedule(delay: Duration, event_id: u64, wake: Box<dyn Wake>) -> bool {
    TIMER.schedule(delay, event_id, wake)
}

/// Drop every pending wake-up of the shared timer without firing it. Called when the last
/// filter config is destroyed: Envoy keeps a config alive while any of its streams exists, so
/// no stream is left to wake, and Envoy asks modules to quiesce such threads before its
/// workers shut down.
pub fn cancel_all() -> usize {
    TIMER.cancel_all()
}

impl Timer {
    pub const fn new() -> Timer {
        Timer {
            state: Mutex::new(State {
                heap: BinaryHeap::new(),
                seq: 0,
                started: false,
            }),
            cond: Condvar::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        match self.state.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// See [`schedule`].
    pub fn schedule(&'static self, delay: Duration, event_id: u64, wake: Box<dyn Wake>) -> bool {
        let mut st = self.lock();
        if !st.started {
            let spawned = std::thread::Builder::new()
                .name("waypoint-timer".into())
                .spawn(move || self.run());
            if spawned.is_err() {
                return false;
            }
            st.started = true;
        }
        st.seq += 1;
        let seq = st.seq;
        st.heap.push(Reverse(Entry {
            at: Instant::now() + delay,
            seq,
            event_id,
            wake,
        }));
        drop(st);
        self.cond.notify_one();
        true
    }

    /// See [`cancel_all`].
    pub fn cancel_all(&self) -> usize {
        let drained: Vec<Entry> = std::mem::take(&mut self.lock().heap)
            .into_iter()
            .map(|Reverse(e)| e)
            .collect();
        let n = drained.len();
        for e in drained {
            e.wake.cancel();
        }
        n
    }

    /// Number of wake-ups not fired yet.
    pub fn pending(&self) -> usize {
        self.lock().heap.len()
    }

    fn run(&'static self) {
        let mut st = self.lock();
        loop {
            let now = Instant::now();
            let next_at = st.heap.peek().map(|Reverse(e)| e.at);
            match next_at {
                Some(at) if at <= now => {
                    if let Some(Reverse(e)) = st.heap.pop() {
                        // Fire outside the lock: wake() calls into Envoy.
                        drop(st);
                        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                            e.wake.wake(e.event_id)
                        }));
                        st = self.lock();
                    }
                }
                Some(at) => {
                    st = match self.cond.wait_timeout(st, at - now) {
                        Ok((g, _)) => g,
                        Err(p) => p.into_inner().0,
                    };
                }
                None => {
                    st = match self.cond.wait(st) {
                        Ok(g) => g,
                        Err(p) => p.into_inner(),
                    };
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{mpsc, Arc};

    struct Probe(mpsc::Sender<(u64, Instant)>);
    impl Wake for Probe {
        fn wake(self: Box<Self>, event_id: u64) {
            let _ = self.0.send((event_id, Instant::now()));
        }
    }

    struct Counted(Arc<AtomicUsize>, Arc<AtomicUsize>);
    impl Wake for Counted {
        fn wake(self: Box<Self>, _event_id: u64) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
        fn cancel(self: Box<Self>) {
            self.1.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn cancel_all_releases_without_waking() {
        let (woken, cancelled) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let t: &'static Timer = Box::leak(Box::new(Timer::new()));
        for _ in 0..3 {
            let w = Counted(Arc::clone(&woken), Arc::clone(&cancelled));
            assert!(t.schedule(Duration::from_secs(3600), 9, Box::new(w)));
        }
        assert_eq!(t.pending(), 3);
        assert_eq!(t.cancel_all(), 3);
        assert_eq!(t.pending(), 0);
        assert_eq!(cancelled.load(Ordering::SeqCst), 3);
        assert_eq!(woken.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn fires_in_deadline_order_after_the_delay() {
        let t: &'static Timer = Box::leak(Box::new(Timer::new()));
        let (tx, rx) = mpsc::channel();
        let start = Instant::now();
        for (ms, id) in [(60u64, 3u64), (20, 1), (40, 2)] {
            assert!(t.schedule(Duration::from_millis(ms), id, Box::new(Probe(tx.clone()))));
        }
        let mut got = Vec::new();
        for _ in 0..3 {
            let (id, at) = rx.recv_timeout(Duration::from_secs(5)).expect("fired");
            got.push((id, at - start));
        }
        assert_eq!(got.iter().map(|g| g.0).collect::<Vec<_>>(), vec![1, 2, 3]);
        for (id, elapsed) in got {
            assert!(
                elapsed >= Duration::from_millis(20 * id),
                "{id}: {elapsed:?}"
            );
        }
    }
}

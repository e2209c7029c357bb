//! One shared timer thread for fault delays: the HTTP filter ABI has no per-stream timer, so
//! delayed streams register a wake-up here and the thread commits Envoy's scheduler on time.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::{Condvar, Mutex, OnceLock};
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

#[derive(Default)]
struct State {
    heap: BinaryHeap<Reverse<Entry>>,
    seq: u64,
    started: bool,
}

struct Timer {
    state: Mutex<State>,
    cond: Condvar,
}

fn timer() -> &'static Timer {
    static TIMER: OnceLock<Timer> = OnceLock::new();
    TIMER.get_or_init(|| Timer {
        state: Mutex::new(State::default()),
        cond: Condvar::new(),
    })
}

/// Fire `wake` with `event_id` after `delay`. Returns false if the timer thread could not
/// be started (the caller then continues without the delay).
pub fn schedule(delay: Duration, event_id: u64, wake: Box<dyn Wake>) -> bool {
    let t = timer();
    let mut st = match t.state.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    };
    if !st.started {
        let spawned = std::thread::Builder::new()
            .name("waypoint-timer".into())
            .spawn(run);
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
    t.cond.notify_one();
    true
}

/// Number of wake-ups not fired yet.
pub fn pending() -> usize {
    match timer().state.lock() {
        Ok(g) => g.heap.len(),
        Err(p) => p.into_inner().heap.len(),
    }
}

fn run() {
    let t = timer();
    let mut st = match t.state.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    };
    loop {
        let now = Instant::now();
        let next_at = st.heap.peek().map(|Reverse(e)| e.at);
        match next_at {
            Some(at) if at <= now => {
                if let Some(Reverse(e)) = st.heap.pop() {
                    // Fire outside the lock: wake() calls into Envoy.
                    drop(st);
                    let fired = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        e.wake.wake(e.event_id)
                    }));
                    let _ = fired;
                    st = match t.state.lock() {
                        Ok(g) => g,
                        Err(p) => p.into_inner(),
                    };
                }
            }
            Some(at) => {
                st = match t.cond.wait_timeout(st, at - now) {
                    Ok((g, _)) => g,
                    Err(p) => p.into_inner().0,
                };
            }
            None => {
                st = match t.cond.wait(st) {
                    Ok(g) => g,
                    Err(p) => p.into_inner(),
                };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    struct Probe(mpsc::Sender<(u64, Instant)>);
    impl Wake for Probe {
        fn wake(self: Box<Self>, event_id: u64) {
            let _ = self.0.send((event_id, Instant::now()));
        }
    }

    #[test]
    fn fires_in_deadline_order_after_the_delay() {
        let (tx, rx) = mpsc::channel();
        let start = Instant::now();
        for (ms, id) in [(60u64, 3u64), (20, 1), (40, 2)] {
            assert!(schedule(
                Duration::from_millis(ms),
                id,
                Box::new(Probe(tx.clone()))
            ));
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

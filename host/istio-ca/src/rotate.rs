//! When to renew and how to retry: renew at half the lifetime, back off exponentially with
//! jitter on failure, keep the current certificate meanwhile. Timers are tokio's.

use std::future::Future;
use std::time::{Duration, SystemTime};

use tracing::{error, info, warn};

use crate::chain::Validity;
use crate::error::CaError;

/// First retry delay after a failed request.
pub const BACKOFF_BASE: Duration = Duration::from_secs(1);
/// Longest delay between retries.
pub const BACKOFF_CAP: Duration = Duration::from_secs(300);
/// Retry delays are shortened by up to this fraction, so replicas do not retry in step.
const JITTER: f64 = 0.2;

/// When to ask for the next certificate: halfway through the lifetime, as ztunnel
/// (`src/tls/certificate.rs`, `refresh_at`) and istio-agent (`SECRET_GRACE_PERIOD_RATIO` 0.5).
pub fn renew_at(v: &Validity) -> SystemTime {
    let life = v.not_after.duration_since(v.not_before).unwrap_or_default();
    v.not_before + life / 2
}

/// How long from `now` until [`renew_at`] (zero when it is past).
pub fn renew_delay(v: &Validity, now: SystemTime) -> Duration {
    renew_at(v).duration_since(now).unwrap_or_default()
}

/// Exponential backoff: `base`, `2·base`, `4·base`... capped at `cap`, each shortened by a
/// jitter of up to 20 %.
#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    cap: Duration,
    attempt: u32,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff::new(BACKOFF_BASE, BACKOFF_CAP)
    }
}

impl Backoff {
    pub fn new(base: Duration, cap: Duration) -> Self {
        Backoff {
            base,
            cap,
            attempt: 0,
        }
    }

    /// The delay before the next retry; `r` in `[0, 1)` picks the jitter.
    pub fn next_with(&mut self, r: f64) -> Duration {
        let factor = 2u32.saturating_pow(self.attempt.min(30));
        let full = self.base.saturating_mul(factor).min(self.cap);
        self.attempt = self.attempt.saturating_add(1);
        full.mul_f64(1.0 - JITTER * r.clamp(0.0, 1.0))
    }

    /// The delay before the next retry, with random jitter.
    pub fn next_delay(&mut self) -> Duration {
        self.next_with(random_unit())
    }

    /// Back to `base` (after a success).
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

/// A number in `[0, 1)` from std's per-process random hash keys (jitter needs no more).
fn random_unit() -> f64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(0);
    (h.finish() >> 11) as f64 / (1u64 << 53) as f64
}

/// Keep a certificate fresh, forever (abort the task to stop): sleep until [`renew_at`] of
/// `validity`, `fetch` a new one, `install` it; on failure retry with `backoff`, keeping the
/// installed certificate (it serves until it expires; after that handshakes fail, and we keep
/// retrying). `now` is the wall clock (a parameter so paused-time tests can drive it).
pub async fn keep_fresh<T, F, Fut, I>(
    mut fetch: F,
    mut install: I,
    mut validity: Validity,
    mut backoff: Backoff,
    now: impl Fn() -> SystemTime,
) where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(T, Validity), CaError>>,
    I: FnMut(T) -> Result<(), CaError>,
{
    loop {
        let wait = renew_delay(&validity, now());
        info!(renew_in = ?wait, expires_in = ?until(validity.not_after, now()), "certificate renewal scheduled");
        tokio::time::sleep(wait).await;
        backoff.reset();
        loop {
            let result = match fetch().await {
                Ok((cert, v)) => install(cert).map(|()| v),
                Err(e) => Err(e),
            };
            match result {
                Ok(v) => {
                    info!(expires_in = ?until(v.not_after, now()), "certificate renewed and installed");
                    validity = v;
                    break;
                }
                Err(e) => {
                    let retry_in = backoff.next_delay();
                    let left = until(validity.not_after, now());
                    if left.is_zero() {
                        error!(error = %e, ?retry_in, "certificate renewal failed and the current certificate has expired; peers will refuse handshakes until a renewal succeeds");
                    } else {
                        warn!(error = %e, ?retry_in, expires_in = ?left, "certificate renewal failed; keeping the current certificate");
                    }
                    tokio::time::sleep(retry_in).await;
                }
            }
        }
    }
}

fn until(t: SystemTime, now: SystemTime) -> Duration {
    t.duration_since(now).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use tokio::time::Instant;

    fn validity(start: SystemTime, secs: u64) -> Validity {
        Validity {
            not_before: start,
            not_after: start + Duration::from_secs(secs),
        }
    }

    #[test]
    fn renews_at_half_life() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let v = validity(t0, 24 * 3600);
        assert_eq!(renew_at(&v), t0 + Duration::from_secs(12 * 3600));
        assert_eq!(renew_delay(&v, t0), Duration::from_secs(12 * 3600));
        assert_eq!(
            renew_delay(&v, t0 + Duration::from_secs(3600)),
            Duration::from_secs(11 * 3600)
        );
        // Past the half-life (or expired): renew now.
        assert_eq!(
            renew_delay(&v, t0 + Duration::from_secs(13 * 3600)),
            Duration::ZERO
        );
        // A window that ends before it starts renews at once.
        let bad = Validity {
            not_before: t0,
            not_after: t0 - Duration::from_secs(1),
        };
        assert_eq!(renew_delay(&bad, t0), Duration::ZERO);
    }

    #[test]
    fn backoff_doubles_to_the_cap_with_bounded_jitter() {
        let mut b = Backoff::default();
        let plain: Vec<u64> = (0..12).map(|_| b.next_with(0.0).as_secs()).collect();
        assert_eq!(plain, vec![1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300, 300]);
        b.reset();
        assert_eq!(b.next_with(0.0), Duration::from_secs(1));
        // Jitter only shortens, by at most 20 %.
        let mut b = Backoff::new(Duration::from_secs(10), Duration::from_secs(300));
        assert_eq!(b.next_with(0.5), Duration::from_secs(9));
        for _ in 0..5 {
            b.next_with(0.0);
        }
        // At the cap now: random jitter keeps it within [80 %, 100 %] of it.
        for _ in 0..50 {
            let d = b.next_delay();
            assert!(
                d <= Duration::from_secs(300) && d >= Duration::from_secs(240),
                "{d:?}"
            );
        }
        // Many attempts do not overflow.
        let mut b = Backoff::default();
        for _ in 0..200 {
            b.next_with(0.0);
        }
        assert_eq!(b.next_with(0.0), BACKOFF_CAP);
    }

    #[test]
    fn random_unit_is_in_range() {
        for _ in 0..100 {
            let r = random_unit();
            assert!((0.0..1.0).contains(&r));
        }
    }

    /// Paused time: a 2 h certificate is renewed at 1 h; then the CA fails three times and
    /// succeeds; the retries are spaced by the backoff and nothing is installed meanwhile.
    #[tokio::test(start_paused = true)]
    async fn renews_then_backs_off_keeping_the_current_certificate() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(2_000_000_000);
        let start = Instant::now();
        let now = move || t0 + start.elapsed();
        let calls: Arc<Mutex<Vec<Duration>>> = Arc::default();
        let installed: Arc<Mutex<Vec<(u32, Duration)>>> = Arc::default();
        let c = calls.clone();
        let fetch = move || {
            let c = c.clone();
            async move {
                let n = {
                    let mut c = c.lock().expect("lock");
                    c.push(start.elapsed());
                    c.len()
                };
                // Call 1 succeeds; calls 2, 3, 4 fail; call 5 succeeds.
                match n {
                    2..=4 => Err(CaError::Connect {
                        address: "ca".into(),
                        detail: "down".into(),
                    }),
                    _ => Ok((n as u32, validity(now(), 7200))),
                }
            }
        };
        let i = installed.clone();
        let install = move |n: u32| {
            i.lock().expect("lock").push((n, start.elapsed()));
            Ok(())
        };
        let task = tokio::spawn(keep_fresh(
            fetch,
            install,
            validity(t0, 7200),
            Backoff::new(Duration::from_secs(1), Duration::from_secs(300)),
            now,
        ));
        tokio::time::sleep(Duration::from_secs(3 * 3600)).await;
        task.abort();
        let calls = calls.lock().expect("lock").clone();
        let installed = installed.lock().expect("lock").clone();
        let secs: Vec<f64> = calls.iter().map(|d| d.as_secs_f64()).collect();
        // 1 h: first renewal. 2 h: renewal of that one fails three times (retries after
        // ~1 s, ~2 s, ~4 s, each up to 20 % shorter), the fourth attempt works.
        assert_eq!(secs.len(), 5, "{secs:?}");
        assert_eq!(secs[0], 3600.0);
        assert_eq!(secs[1], 7200.0);
        let gaps: Vec<f64> = secs.windows(2).skip(1).map(|w| w[1] - w[0]).collect();
        for (gap, full) in gaps.iter().zip([1.0, 2.0, 4.0]) {
            assert!(*gap <= full && *gap >= full * 0.8, "{gaps:?}");
        }
        assert_eq!(installed.len(), 2, "{installed:?}");
        assert_eq!(installed[0], (1, Duration::from_secs(3600)));
        assert_eq!(installed[1].0, 5);
        assert_eq!(installed[1].1, calls[4]);
    }

    /// An install failure (say, a bad chain) is retried like a fetch failure.
    #[tokio::test(start_paused = true)]
    async fn install_failures_are_retried() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(2_000_000_000);
        let start = Instant::now();
        let now = move || t0 + start.elapsed();
        let tries = Arc::new(Mutex::new(0u32));
        let t = tries.clone();
        let task = tokio::spawn(keep_fresh(
            move || async move { Ok(((), validity(now(), 100))) },
            move |()| {
                let mut t = t.lock().expect("lock");
                *t += 1;
                if *t == 1 {
                    Err(CaError::Install("bad".into()))
                } else {
                    Ok(())
                }
            },
            validity(t0, 100),
            Backoff::default(),
            now,
        ));
        // 50 s: renew, fail to install; ~1 s later: installed; next renewal ~50 s after that.
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert_eq!(*tries.lock().expect("lock"), 2);
        tokio::time::sleep(Duration::from_secs(45)).await;
        assert_eq!(*tries.lock().expect("lock"), 3);
        task.abort();
    }
}

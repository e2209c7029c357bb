//! Exported hooks of the module and filter-config lifecycle (main thread): the ABI handshake,
//! compiling `filter_config`, defining metrics, flushing the request counter, dropping a config.

use std::ffi::{c_char, c_void};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use super::callbacks::*;
use super::envoy_stream::log;
use super::scheduler::{ConfigScheduler, FlushWake};
use super::types::{EnvoyBuffer, ModuleBuffer, ABI_VERSION, METRICS_SUCCESS};
use crate::config::FilterConfig;
use crate::counts::FLUSH_DELAY;
use crate::filter::panic_message;
use crate::istio_batch::{self, CounterSink, HistogramIds, IstioMetricIds};
use crate::metrics;
use crate::stream::LogLevel;
use crate::timer;
use waypoint_core::telemetry_labels::{DENIAL_LABELS, POLICY_DENIALS, REQUEST_LABELS};

/// Event id of the `waypoint_requests_total` flush on the config's main-thread scheduler.
const FLUSH_EVENT: u64 = 1;
/// Event id of the Istio metrics flush.
const ISTIO_FLUSH_EVENT: u64 = 2;

/// Filter configs alive (created by config_new, not yet destroyed).
static LIVE_CONFIGS: AtomicUsize = AtomicUsize::new(0);

/// The handshake: Envoy calls it once after `dlopen` and wants the ABI version (doc §2.1).
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_program_init() -> *const c_char {
    ABI_VERSION.as_ptr().cast()
}

/// Compile one `filter_config`; NULL rejects it (Envoy then fails the listener).
///
/// # Safety
/// Called by Envoy only, on the main thread: `config_envoy` is its live filter-config pointer
/// and `name` and `config` are buffers it keeps valid during the call.
#[no_mangle]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_config_new(
    config_envoy: *mut c_void,
    name: EnvoyBuffer,
    config: EnvoyBuffer,
) -> *const c_void {
    let result = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: both buffers are Envoy's arguments to this hook (the hook's contract).
        let (name, raw) = unsafe { (name.bytes(), config.bytes()) };
        let name = String::from_utf8_lossy(name).into_owned();
        match FilterConfig::from_bytes(&name, raw) {
            Ok(mut cfg) => {
                for w in &cfg.warnings {
                    log(
                        LogLevel::Warn,
                        &format!("waypoint filter {name}: warning: {w}"),
                    );
                }
                // SAFETY: `config_envoy` is live during this hook (the hook's contract).
                cfg.metrics.requests = unsafe {
                    define_counter(
                        config_envoy,
                        "waypoint_requests_total",
                        &["decision", "route"],
                    )
                };
                // SAFETY: as above.
                cfg.metrics.istio = unsafe { define_istio(config_envoy) };
                if cfg.metrics.requests.is_some() || cfg.metrics.istio.is_some() {
                    // SAFETY: as above.
                    unsafe { install_flushes(config_envoy, &cfg) };
                }
                log(
                    LogLevel::Info,
                    &format!(
                        "waypoint filter {name}: config loaded for waypoint {} ({} resources, {} services bound)",
                        cfg.engine.waypoint_name(),
                        cfg.engine.resource_count(),
                        cfg.engine.bound_services()
                    ),
                );
                // Counted here, uncounted in config_destroy: the last destroy quiesces timers.
                LIVE_CONFIGS.fetch_add(1, Ordering::SeqCst);
                Box::into_raw(Box::new(Arc::new(cfg)))
                    .cast_const()
                    .cast::<c_void>()
            }
            Err(e) => {
                log(
                    LogLevel::Error,
                    &format!("waypoint filter {name}: rejected: {e}"),
                );
                ptr::null()
            }
        }
    }));
    match result {
        Ok(p) => p,
        Err(p) => {
            log(
                LogLevel::Error,
                &format!(
                    "waypoint: panic while loading config: {}",
                    panic_message(&p)
                ),
            );
            ptr::null()
        }
    }
}

/// Envoy's two metric definers (same C signature).
type Define =
    unsafe extern "C" fn(*mut c_void, ModuleBuffer, *mut ModuleBuffer, usize, *mut usize) -> u32;

/// Define a labelled counter (only possible inside config_new; doc §5.7).
///
/// # Safety
/// `config_envoy` must be Envoy's live config pointer of the running config_new hook.
unsafe fn define_counter(config_envoy: *mut c_void, name: &str, labels: &[&str]) -> Option<usize> {
    // SAFETY: the caller's contract.
    unsafe {
        define(
            envoy_dynamic_module_callback_http_filter_config_define_counter,
            config_envoy,
            name,
            labels,
        )
    }
}

/// Istio's request counter and histograms, labelled as the host labels them. Each histogram
/// is three counters (`_bucket` with `le` after Istio's labels, `_sum`, `_count`) that the
/// module fills from its own buckets (`istio_batch`).
///
/// # Safety
/// `config_envoy` must be Envoy's live config pointer of the running config_new hook.
unsafe fn define_istio(config_envoy: *mut c_void) -> Option<IstioMetricIds> {
    let labels = &REQUEST_LABELS[..];
    // SAFETY: the caller's contract, for each definition.
    unsafe {
        Some(IstioMetricIds {
            requests: define_counter(config_envoy, metrics::REQUESTS, labels)?,
            duration: define_histogram(config_envoy, metrics::DURATION)?,
            request_bytes: define_histogram(config_envoy, metrics::REQUEST_BYTES)?,
            response_bytes: define_histogram(config_envoy, metrics::RESPONSE_BYTES)?,
            denials: define_counter(config_envoy, POLICY_DENIALS, &DENIAL_LABELS)?,
        })
    }
}

/// The three counters of histogram `name`.
///
/// # Safety
/// `config_envoy` must be Envoy's live config pointer of the running config_new hook.
unsafe fn define_histogram(config_envoy: *mut c_void, name: &str) -> Option<HistogramIds> {
    let mut with_le = REQUEST_LABELS.to_vec();
    with_le.push("le");
    // SAFETY: the caller's contract, for each definition.
    unsafe {
        Some(HistogramIds {
            bucket: define_counter(config_envoy, &format!("{name}_bucket"), &with_le)?,
            sum: define_counter(config_envoy, &format!("{name}_sum"), &REQUEST_LABELS)?,
            count: define_counter(config_envoy, &format!("{name}_count"), &REQUEST_LABELS)?,
        })
    }
}

/// Define one labelled metric with `definer`.
///
/// # Safety
/// `config_envoy` must be Envoy's live config pointer of the running config_new hook.
unsafe fn define(
    definer: Define,
    config_envoy: *mut c_void,
    name: &str,
    labels: &[&str],
) -> Option<usize> {
    let mut names: Vec<ModuleBuffer> = labels.iter().map(|l| ModuleBuffer::of(l)).collect();
    let mut id: usize = 0;
    // SAFETY: live `config_envoy` (the caller's contract); `names`, the strs it points into
    // and `id` are valid for the call.
    let r = unsafe {
        definer(
            config_envoy,
            ModuleBuffer::of(name),
            names.as_mut_ptr(),
            names.len(),
            &mut id,
        )
    };
    if r == METRICS_SUCCESS {
        Some(id)
    } else {
        log(
            LogLevel::Warn,
            &format!("waypoint: defining metric {name} returned {r}"),
        );
        None
    }
}

/// Make `cfg.counts` and `cfg.istio` schedule their flushes through a main-thread scheduler of
/// `config_envoy`.
///
/// # Safety
/// `config_envoy` must be Envoy's live config pointer of the running config_new hook.
unsafe fn install_flushes(config_envoy: *mut c_void, cfg: &FilterConfig) {
    // SAFETY: the caller's contract.
    let Some(sched) = (unsafe { ConfigScheduler::new(config_envoy) }) else {
        log(
            LogLevel::Warn,
            "waypoint: no config scheduler; requests are counted one by one",
        );
        return;
    };
    let sched = Arc::new(sched);
    let istio = sched.clone();
    cfg.counts.set_arm(Box::new(move || {
        timer::schedule(FLUSH_DELAY, FLUSH_EVENT, Box::new(FlushWake(sched.clone())))
    }));
    cfg.istio.set_arm(Box::new(move || {
        let wake = Box::new(FlushWake(istio.clone()));
        timer::schedule(istio_batch::FLUSH_DELAY, ISTIO_FLUSH_EVENT, wake)
    }));
}

/// Envoy's config-context counters: the flush's sink, on the main thread.
struct ConfigCounters(*mut c_void);

impl CounterSink for ConfigCounters {
    fn add(&mut self, id: usize, labels: &[&str], n: u64) {
        let mut values = [ModuleBuffer::NULL; 26];
        let n_labels = labels.len().min(values.len());
        for (v, l) in values.iter_mut().zip(labels) {
            *v = ModuleBuffer::of(l);
        }
        // SAFETY: `self.0` is the live config pointer of the running config_scheduled hook
        // (the only place a ConfigCounters is made); `id` was defined with `n_labels` labels;
        // `values` and the strs it points at outlive the call.
        let r = unsafe {
            envoy_dynamic_module_callback_http_filter_config_increment_counter(
                self.0,
                id,
                values.as_mut_ptr(),
                n_labels,
                n,
            )
        };
        if r != METRICS_SUCCESS {
            log(
                LogLevel::Debug,
                &format!("waypoint: config increment_counter returned {r}"),
            );
        }
    }
}

/// Main thread, after a `FLUSH_EVENT` commit: move the module's request counts into Envoy's
/// `waypoint_requests_total{decision, route}`; after an `ISTIO_FLUSH_EVENT`, Istio's metrics.
///
/// # Safety
/// Called by Envoy only, on the main thread, with the live config pointers: `config` is what
/// config_new returned for `config_envoy`.
#[no_mangle]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_config_scheduled(
    config_envoy: *mut c_void,
    config: *const c_void,
    event_id: u64,
) {
    if event_id != FLUSH_EVENT && event_id != ISTIO_FLUSH_EVENT {
        return;
    }
    let r = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: `config` is our live Box<Arc<FilterConfig>>: Envoy runs this hook only
        // while the config exists (its scheduler holds a weak reference to it).
        let Some(cfg) = (unsafe { config.cast::<Arc<FilterConfig>>().as_ref() }) else {
            return;
        };
        if event_id == ISTIO_FLUSH_EVENT {
            if let Some(ids) = &cfg.metrics.istio {
                let registry = cfg.engine.registry();
                cfg.istio
                    .flush(registry, ids, &mut ConfigCounters(config_envoy));
            }
            return;
        }
        let Some(id) = cfg.metrics.requests else {
            return;
        };
        cfg.counts.drain(|decision, route, n| {
            let mut labels = [ModuleBuffer::of(decision), ModuleBuffer::of(route)];
            // SAFETY: live config pointer of this hook; `id` was defined with two labels;
            // `labels` and the strs it points at outlive the call.
            let r = unsafe {
                envoy_dynamic_module_callback_http_filter_config_increment_counter(
                    config_envoy,
                    id,
                    labels.as_mut_ptr(),
                    labels.len(),
                    n,
                )
            };
            if r != METRICS_SUCCESS {
                log(
                    LogLevel::Debug,
                    &format!("waypoint: config increment_counter returned {r}"),
                );
            }
        });
    }));
    if r.is_err() {
        log(LogLevel::Error, "waypoint: panic while flushing counters");
    }
}

/// Drop a filter config (streams created from it hold their own `Arc`).
///
/// # Safety
/// Called by Envoy only, once per config: `config` is null or what config_new returned, and
/// Envoy never passes it again afterwards.
#[no_mangle]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_config_destroy(config: *const c_void) {
    if config.is_null() {
        return;
    }
    let r = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: `config` is the Box<Arc<FilterConfig>> we leaked in config_new; Envoy calls
        // destroy exactly once, after which it never passes the pointer again.
        drop(unsafe { Box::from_raw(config.cast_mut().cast::<Arc<FilterConfig>>()) });
        if LIVE_CONFIGS.fetch_sub(1, Ordering::SeqCst) == 1 {
            // The last config is gone, so are all its streams: quiesce the timer thread.
            let n = timer::cancel_all();
            if n > 0 {
                log(
                    LogLevel::Debug,
                    &format!("waypoint: cancelled {n} pending fault delays"),
                );
            }
        }
    }));
    if r.is_err() {
        log(LogLevel::Error, "waypoint: panic while dropping config");
    }
}

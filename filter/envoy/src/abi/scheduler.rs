//! Envoy's schedulers as `Wake`s for the shared timer thread: a stream's (fault delays) and a
//! filter config's main-thread one (request-counter flushes). Doc §5.8.

use std::ffi::c_void;
use std::sync::Arc;

use super::callbacks::*;
use crate::stream::Wake;

/// An Envoy HTTP-filter scheduler, owned by us until `wake` deletes it.
pub struct StreamScheduler(pub *mut c_void);

// SAFETY: Envoy documents scheduler_commit as safe to call from any thread (a no-op once the
// filter is gone) and scheduler_delete frees the object wherever it is called; the pointer is
// used by exactly one owner (the timer thread) after it leaves the worker.
unsafe impl Send for StreamScheduler {}

impl Wake for StreamScheduler {
    fn wake(self: Box<Self>, event_id: u64) {
        // SAFETY: the scheduler pointer is live (deleted only here or in cancel, once, since
        // `self` is consumed); commit is thread-safe per the ABI.
        unsafe {
            envoy_dynamic_module_callback_http_filter_scheduler_commit(self.0, event_id);
            envoy_dynamic_module_callback_http_filter_scheduler_delete(self.0);
        }
    }

    fn cancel(self: Box<Self>) {
        // SAFETY: as in wake; deleting without a commit only frees the scheduler.
        unsafe { envoy_dynamic_module_callback_http_filter_scheduler_delete(self.0) }
    }
}

/// Envoy's main-thread scheduler of one filter config, shared by the config's flush closure and
/// the timer thread's pending wake-up; deleted when the last holder lets go.
pub struct ConfigScheduler(*mut c_void);

impl ConfigScheduler {
    /// A scheduler for the config `config_envoy` (None when Envoy could not make one).
    ///
    /// # Safety
    /// `config_envoy` must be Envoy's live filter-config pointer of the running
    /// `on_http_filter_config_new` hook.
    pub unsafe fn new(config_envoy: *mut c_void) -> Option<ConfigScheduler> {
        // SAFETY: the caller's contract.
        let raw =
            unsafe { envoy_dynamic_module_callback_http_filter_config_scheduler_new(config_envoy) };
        (!raw.is_null()).then_some(ConfigScheduler(raw))
    }
}

// SAFETY: Envoy's config scheduler may be committed from any thread (it posts to the main
// dispatcher and holds only a weak reference to the config, so a commit after the config is
// gone does nothing) and deleted from any thread; `Drop` deletes it exactly once.
unsafe impl Send for ConfigScheduler {}
// SAFETY: as above; commit takes no lock of ours and Envoy's post is thread-safe.
unsafe impl Sync for ConfigScheduler {}

impl Drop for ConfigScheduler {
    fn drop(&mut self) {
        // SAFETY: the pointer came from config_scheduler_new and is deleted only here, once.
        unsafe { envoy_dynamic_module_callback_http_filter_config_scheduler_delete(self.0) }
    }
}

/// The timer's wake-up for a counter flush: commits the config scheduler.
pub struct FlushWake(pub Arc<ConfigScheduler>);

impl Wake for FlushWake {
    fn wake(self: Box<Self>, event_id: u64) {
        // SAFETY: the scheduler is alive while this Arc holds it; commit is thread-safe.
        unsafe {
            envoy_dynamic_module_callback_http_filter_config_scheduler_commit(self.0 .0, event_id)
        }
    }
}

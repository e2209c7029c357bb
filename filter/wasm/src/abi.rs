//! The proxy-wasm contexts Envoy's Wasm runtime calls (wasm32 only): a root context per VM
//! holding the compiled config and the fault-delay timer, an HTTP context per request.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, SystemTime};

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, BufferType, ContextType, LogLevel, MapType};
use waypoint_core::decision::{Action as Decided, LocalResponse};
use waypoint_core::SplitMix64;

use crate::config::WasmConfig;
use crate::filter::{self, Outcome, RequestState, Stream};

/// How often the root context checks held requests while any is waiting (a fault delay is
/// late by at most this).
const DELAY_TICK: Duration = Duration::from_millis(5);

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Root::new()) });
}}

/// A request held for its fault delay: resumed (or answered with the abort) by the root
/// context's tick, the only timer the proxy-wasm ABI has.
struct Held {
    due: SystemTime,
    context_id: u32,
    reply: Option<LocalResponse>,
}

/// State the root context shares with its HTTP contexts (one VM = one thread).
struct Shared {
    config: Option<WasmConfig>,
    rng: SplitMix64,
    held: Vec<Held>,
}

struct Root {
    shared: Rc<RefCell<Shared>>,
}

fn now() -> SystemTime {
    hostcalls::get_current_time().unwrap_or(SystemTime::UNIX_EPOCH)
}

fn log(level: LogLevel, msg: &str) {
    let _ = hostcalls::log(level, msg);
}

impl Root {
    fn new() -> Root {
        let seed = now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0x9e37_79b9_7f4a_7c15);
        Root {
            shared: Rc::new(RefCell::new(Shared {
                config: None,
                rng: SplitMix64(seed),
                held: Vec::new(),
            })),
        }
    }
}

impl Context for Root {}

impl RootContext for Root {
    fn on_configure(&mut self, size: usize) -> bool {
        let raw = hostcalls::get_buffer(BufferType::PluginConfiguration, 0, size)
            .ok()
            .flatten()
            .unwrap_or_default();
        match WasmConfig::from_bytes(&raw) {
            Ok(cfg) => {
                for w in &cfg.warnings {
                    log(LogLevel::Warn, &format!("waypoint: {w}"));
                }
                log(
                    LogLevel::Info,
                    &format!(
                        "waypoint wasm: config loaded ({} bound services)",
                        cfg.snapshot.bound_services().count()
                    ),
                );
                self.shared.borrow_mut().config = Some(cfg);
                true
            }
            Err(e) => {
                log(LogLevel::Error, &e.to_string());
                false
            }
        }
    }

    fn on_tick(&mut self) {
        let t = now();
        let due: Vec<Held> = {
            let mut shared = self.shared.borrow_mut();
            let (due, waiting) = std::mem::take(&mut shared.held)
                .into_iter()
                .partition(|h| h.due <= t);
            shared.held = waiting;
            if shared.held.is_empty() {
                let _ = hostcalls::set_tick_period(Duration::ZERO);
            }
            due
        };
        for h in due {
            // The stream may be gone (reset while held): then there is nothing to resume.
            if hostcalls::set_effective_context(h.context_id).is_err() {
                continue;
            }
            let mut s = Host;
            match &h.reply {
                Some(local) => filter::reply(&mut s, Decided::FaultAbort, local),
                None => {
                    let _ = hostcalls::resume_http_request();
                }
            }
        }
    }

    fn create_http_context(&self, context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Http {
            context_id,
            shared: Rc::clone(&self.shared),
            state: RequestState::default(),
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct Http {
    context_id: u32,
    shared: Rc<RefCell<Shared>>,
    state: RequestState,
}

impl Context for Http {}

impl HttpContext for Http {
    fn on_http_request_headers(&mut self, _: usize, _: bool) -> Action {
        let mut s = Host;
        let mut shared = self.shared.borrow_mut();
        let Shared { config, rng, held } = &mut *shared;
        let Some(cfg) = config.as_ref() else {
            // No valid config (Envoy normally refuses the listener first): fail closed.
            s.send_reply(500, &[], "waypoint: no configuration");
            return Action::Pause;
        };
        match filter::on_request(cfg, &mut s, rng, &mut self.state) {
            Outcome::Continue => Action::Continue,
            Outcome::Replied => Action::Pause,
            Outcome::Delay(delay, reply) => {
                if held.is_empty() && hostcalls::set_tick_period(DELAY_TICK).is_err() {
                    log(LogLevel::Warn, "waypoint: no timer for the fault delay");
                    return match reply {
                        Some(local) => {
                            filter::reply(&mut s, Decided::FaultAbort, &local);
                            Action::Pause
                        }
                        None => Action::Continue,
                    };
                }
                held.push(Held {
                    due: now() + delay,
                    context_id: self.context_id,
                    reply,
                });
                Action::Pause
            }
        }
    }

    fn on_http_response_headers(&mut self, _: usize, _: bool) -> Action {
        filter::on_response(&mut Host, &self.state);
        Action::Continue
    }
}

/// The current stream, through proxy-wasm host calls (they act on the effective context).
struct Host;

impl Stream for Host {
    fn request_headers(&self) -> Vec<(String, String)> {
        hostcalls::get_map(MapType::HttpRequestHeaders).unwrap_or_default()
    }

    fn property(&self, path: &[&str]) -> Option<String> {
        let bytes = hostcalls::get_property(path.to_vec()).ok().flatten()?;
        String::from_utf8(bytes).ok()
    }

    fn set_request_header(&mut self, name: &str, value: Option<&str>) {
        let _ = hostcalls::set_map_value(MapType::HttpRequestHeaders, name, value);
    }

    fn add_request_header(&mut self, name: &str, value: &str) {
        let _ = hostcalls::add_map_value(MapType::HttpRequestHeaders, name, value);
    }

    fn set_response_header(&mut self, name: &str, value: Option<&str>) {
        let _ = hostcalls::set_map_value(MapType::HttpResponseHeaders, name, value);
    }

    fn add_response_header(&mut self, name: &str, value: &str) {
        let _ = hostcalls::add_map_value(MapType::HttpResponseHeaders, name, value);
    }

    fn send_reply(&mut self, status: u16, headers: &[(&str, &str)], body: &str) {
        if hostcalls::send_http_response(u32::from(status), headers.to_vec(), Some(body.as_bytes()))
            .is_err()
        {
            log(LogLevel::Error, "waypoint: local reply failed");
        }
    }

    fn log_warn(&self, msg: &str) {
        log(LogLevel::Warn, msg);
    }
}

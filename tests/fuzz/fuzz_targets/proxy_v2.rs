//! libFuzzer entry point for `waypoint_fuzz::proxy_v2` (run with `make fuzz`); the body is a
//! plain function so `cargo test` replays the same code over corpus/proxy_v2.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| waypoint_fuzz::proxy_v2(data));

//! libFuzzer entry point for `waypoint_fuzz::normalize_path` (run with `make fuzz`); the body is a
//! plain function so `cargo test` replays the same code over corpus/normalize_path.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| waypoint_fuzz::normalize_path(data));

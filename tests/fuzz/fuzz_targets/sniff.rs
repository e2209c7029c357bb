//! libFuzzer entry point for `waypoint_fuzz::sniff` (run with `make fuzz`); the body is a
//! plain function so `cargo test` replays the same code over corpus/sniff.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| waypoint_fuzz::sniff(data));

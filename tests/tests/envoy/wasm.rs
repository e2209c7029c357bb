//! The proxy-wasm filter (filter/wasm) in real Envoy 1.40 on V8: the shared scenario suite
//! through it (what it cannot express is a visible SKIP), and the generated bootstrap with
//! `--filter wasm` validated by Envoy.

use crate::scenarios::{run_file, Filter};
use waypoint_tests::scenario;

#[test]
fn shared_scenarios_decide_the_same_through_the_wasm_filter() {
    let files = scenario::scenario_files();
    assert!(!files.is_empty(), "no scenario files");
    let mut failures = Vec::new();
    let mut ran = 0;
    for f in &files {
        match run_file(f, Filter::Wasm) {
            Ok(n) => {
                println!(
                    "{}: {n} cases matched the core through the Wasm filter",
                    f.display()
                );
                ran += n
            }
            Err(e) => failures.extend(e),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(
        ran >= 10,
        "only {ran} scenario cases ran through the Wasm filter"
    );
}

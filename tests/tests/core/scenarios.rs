//! Runs the shared scenario suite (tests/scenarios/*.yaml) through the policy core and checks
//! every expected field of every case.

use waypoint_tests::scenario::{build_snapshot, contains, core_decision, load, scenario_files};

#[test]
fn scenario_suite_through_the_core() {
    let files = scenario_files();
    assert!(!files.is_empty(), "no scenario files found");
    let mut failures = Vec::new();
    let mut count = 0;
    for f in &files {
        let file = load(f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        let snap = build_snapshot(&file).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        for case in &file.cases {
            count += 1;
            match core_decision(&snap, case) {
                Ok(actual) => {
                    if let Err(diff) = contains(&actual, &case.expect, "") {
                        failures.push(format!(
                            "{} / {}: {diff}\n  got: {actual}",
                            f.display(),
                            case.name
                        ));
                    }
                }
                Err(e) => failures.push(format!("{} / {}: {e}", f.display(), case.name)),
            }
        }
    }
    println!(
        "scenario suite (core): {count} cases, {} failed",
        failures.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

//! The reviews 90/10 canary of the bookinfo example, over 2,000 seeded draws, in both the
//! VirtualService and the HTTPRoute form: each share within ±2 points of its weight.

use waypoint_tests::scenario::{build_snapshot, core_decision, Case, CaseRequest, ScenarioFile};

fn shares(config: &[&str], key: &str) -> (usize, usize, usize) {
    let file = ScenarioFile {
        config: config.iter().map(|s| s.to_string()).collect(),
        waypoint: None,
        cases: vec![],
    };
    let snap = build_snapshot(&file).expect("snapshot");
    let (mut a, mut b, mut other) = (0, 0, 0);
    for seed in 0..2000u64 {
        let case = Case {
            name: "split".into(),
            request: CaseRequest {
                method: "GET".into(),
                url: "http://reviews:9080/reviews/1".into(),
                headers: vec![],
                source_principal: Some(
                    "spiffe://cluster.local/ns/default/sa/bookinfo-productpage".into(),
                ),
                source_ip: None,
                dest: None,
                seed,
            },
            expect: serde_json::Value::Null,
        };
        let d = core_decision(&snap, &case).expect("decision");
        match d["backend"][key].as_str() {
            Some("v1") | Some("reviews-v1") => a += 1,
            Some("v3") | Some("reviews-v3") => b += 1,
            _ => other += 1,
        }
    }
    (a, b, other)
}

fn assert_90_10((v1, v3, other): (usize, usize, usize)) {
    println!("v1 {v1}, v3 {v3}, other {other} of 2000");
    assert_eq!(other, 0);
    let p1 = v1 as f64 / 2000.0 * 100.0;
    assert!((88.0..=92.0).contains(&p1), "v1 share {p1}%");
    let p3 = v3 as f64 / 2000.0 * 100.0;
    assert!((8.0..=12.0).contains(&p3), "v3 share {p3}%");
}

#[test]
fn virtual_service_split_is_90_10() {
    assert_90_10(shares(&["examples/bookinfo"], "subset"));
}

#[test]
fn httproute_split_is_90_10() {
    assert_90_10(shares(
        &["examples/bookinfo/base", "examples/bookinfo-httproute"],
        "service",
    ));
}

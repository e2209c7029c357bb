//! End-to-end: stock Envoy 1.40 with libwaypoint.so in front of local echo upstreams, driven by
//! tests/data/envoy-bookinfo; asserts the decisions the core makes, as seen through Envoy.

use std::time::{Duration, Instant};

use waypoint_tests::envoy_harness::{
    http_get, http_request_with_body, https_get, repo_root, Bookinfo, Response,
};

/// Service VIPs from tests/data/envoy-bookinfo/bookinfo.yaml; the destination reaches the
/// module as `x-envoy-original-dst-host` (what an HBONE hop gives as the original destination).
const PRODUCTPAGE: (&str, &str) = ("productpage:9080", "10.96.0.10:9080");
const REVIEWS: (&str, &str) = ("reviews:9080", "10.96.0.11:9080");
const RATINGS: (&str, &str) = ("ratings:9080", "10.96.0.12:9080");
const DETAILS: (&str, &str) = ("details:9080", "10.96.0.13:9080");

fn get(b: &Bookinfo, svc: (&str, &str), path: &str, extra: &[(&str, &str)]) -> Response {
    let mut h = vec![("x-envoy-original-dst-host", svc.1)];
    h.extend_from_slice(extra);
    http_get(b.plain_port, svc.0, path, &h).unwrap_or_else(|e| panic!("GET {path}: {e}"))
}

/// One scenario against the running Envoy.
type Check = fn(&Bookinfo) -> Result<(), String>;

/// Runs every check against one Envoy and reports all failures together.
#[test]
fn envoy_applies_waypoint_decisions() {
    let config = serde_json::json!({
        "waypoint": "bookinfo/waypoint",
        "config_paths": [repo_root().join("tests/data/envoy-bookinfo").display().to_string()],
    });
    let mut b = Bookinfo::start(&config).unwrap_or_else(|e| panic!("start: {e}"));
    let checks: Vec<(&str, Check)> = vec![
        ("weighted split 90/10", split_90_10),
        ("header routing", header_routing),
        ("redirect", redirect),
        ("rewrite", rewrite),
        ("header set/add/remove", header_mutations),
        ("fault abort", fault_abort),
        ("fault delay", fault_delay),
        ("404 for unmatched", not_found),
        ("SPIFFE allow/deny", spiffe_authz),
        (
            "identity and destination from filter state",
            filter_state_input,
        ),
        ("mirror", mirror),
        ("mirror with a body", mirror_with_body),
        ("panic fails closed", panic_fails_closed),
        ("metrics and metadata", metrics_and_metadata),
    ];
    let mut failures = Vec::new();
    for (name, check) in checks {
        let started = Instant::now();
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| check(&b)))
            .unwrap_or_else(|p| Err(format!("panicked: {p:?}")));
        eprintln!(
            "{name}: {:?} in {:?}",
            r.as_ref().map(|_| "ok"),
            started.elapsed()
        );
        if let Err(e) = r {
            failures.push(format!("{name}: {e}"));
        }
    }
    assert!(b.envoy.alive(), "Envoy died:\n{}", b.envoy.log_text());
    assert!(
        failures.is_empty(),
        "{} check(s) failed:\n{}\n--- envoy log (tail) ---\n{}",
        failures.len(),
        failures.join("\n"),
        tail(&b.envoy.log_text(), 40)
    );
}

fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

fn expect(cond: bool, msg: impl FnOnce() -> String) -> Result<(), String> {
    if cond {
        Ok(())
    } else {
        Err(msg())
    }
}

fn split_90_10(b: &Bookinfo) -> Result<(), String> {
    const N: usize = 1000;
    let (mut v1, mut v3, mut other) = (0usize, 0usize, Vec::new());
    for i in 0..N {
        let r = get(b, REVIEWS, &format!("/reviews/{i}"), &[]);
        match r.upstream().as_deref() {
            Some("reviews-v1") => v1 += 1,
            Some("reviews-v3") => v3 += 1,
            _ => other.push(format!("{} {:?}", r.status, r.body)),
        }
    }
    expect(other.is_empty(), || {
        format!(
            "{} requests went elsewhere: {:?}",
            other.len(),
            &other[..other.len().min(3)]
        )
    })?;
    // Binomial(1000, 0.1): mean 100, sd 9.5; ±4.5 sd keeps false failures below 1e-5.
    expect((57..=143).contains(&v3), || {
        format!("v1={v1} v3={v3}, expected about 900/100")
    })
}

fn header_routing(b: &Bookinfo) -> Result<(), String> {
    for _ in 0..20 {
        let r = get(b, REVIEWS, "/reviews/1", &[("end-user", "jason")]);
        expect(r.upstream().as_deref() == Some("reviews-v2"), || {
            format!(
                "end-user: jason went to {:?} ({} {})",
                r.upstream(),
                r.status,
                r.body
            )
        })?;
    }
    Ok(())
}

fn redirect(b: &Bookinfo) -> Result<(), String> {
    let r = get(b, DETAILS, "/old/page", &[]);
    expect(r.status == 301, || {
        format!("status {} {:?}", r.status, r.body)
    })?;
    let loc = r.header("location").unwrap_or("");
    expect(loc.ends_with("/details") && loc.contains("details"), || {
        format!("location {loc:?}")
    })
}

fn rewrite(b: &Bookinfo) -> Result<(), String> {
    let r = get(b, DETAILS, "/v1/abc?x=1", &[]);
    let path = r
        .json()
        .get("path")
        .and_then(|p| p.as_str())
        .map(str::to_string);
    expect(
        r.status == 200 && path.as_deref() == Some("/details/abc?x=1"),
        || format!("status {} upstream path {path:?}", r.status),
    )
}

fn header_mutations(b: &Bookinfo) -> Result<(), String> {
    let r = get(
        b,
        DETAILS,
        "/details/1",
        &[
            ("x-set", "from-client"),
            ("x-add", "from-client"),
            ("x-remove", "secret"),
        ],
    );
    expect(r.status == 200, || {
        format!("status {} {}", r.status, r.body)
    })?;
    expect(
        r.upstream_header("x-set") == vec!["set-by-waypoint"],
        || format!("x-set upstream: {:?}", r.upstream_header("x-set")),
    )?;
    expect(
        r.upstream_header("x-add") == vec!["from-client", "added-by-waypoint"],
        || format!("x-add upstream: {:?}", r.upstream_header("x-add")),
    )?;
    expect(r.upstream_header("x-remove").is_empty(), || {
        "x-remove reached the upstream".into()
    })?;
    expect(r.upstream_header("x-waypoint-cluster").is_empty(), || {
        "the cluster-selection header leaked upstream".into()
    })?;
    expect(r.header("x-response-added") == Some("yes"), || {
        format!("response headers: {:?}", r.headers)
    })
}

fn fault_abort(b: &Bookinfo) -> Result<(), String> {
    let r = get(b, RATINGS, "/ratings/abort", &[]);
    expect(r.status == 418 && r.upstream().is_none(), || {
        format!("status {} {}", r.status, r.body)
    })
}

fn fault_delay(b: &Bookinfo) -> Result<(), String> {
    let t = Instant::now();
    let r = get(b, RATINGS, "/ratings/delay", &[]);
    let took = t.elapsed();
    expect(
        r.status == 200 && r.upstream().as_deref() == Some("ratings-v1"),
        || format!("status {} {}", r.status, r.body),
    )?;
    expect(took >= Duration::from_millis(300), || {
        format!("delay took only {took:?}")
    })?;
    let t = Instant::now();
    let r = get(b, RATINGS, "/ratings/1", &[]);
    let fast = t.elapsed();
    expect(r.status == 200 && fast < Duration::from_millis(300), || {
        format!("undelayed request: {} in {fast:?}", r.status)
    })
}

fn not_found(b: &Bookinfo) -> Result<(), String> {
    let r = get(b, DETAILS, "/no-such-route", &[]);
    expect(r.status == 404 && r.upstream().is_none(), || {
        format!("status {} {}", r.status, r.body)
    })
}

fn spiffe_authz(b: &Bookinfo) -> Result<(), String> {
    let hdr = [("x-envoy-original-dst-host", PRODUCTPAGE.1)];
    let sleep = b
        .pki
        .client(Some("spiffe://cluster.local/ns/bookinfo/sa/sleep"));
    let r = https_get(b.tls_port, sleep, PRODUCTPAGE.0, "/productpage", &hdr)?;
    expect(
        r.status == 200 && r.upstream().as_deref() == Some("productpage-v1"),
        || format!("sleep: {} {}", r.status, r.body),
    )?;
    let other = b
        .pki
        .client(Some("spiffe://cluster.local/ns/bookinfo/sa/notsleep"));
    let r = https_get(b.tls_port, other, PRODUCTPAGE.0, "/productpage", &hdr)?;
    expect(r.status == 403 && r.body == "RBAC: access denied", || {
        format!("notsleep: {} {:?}", r.status, r.body)
    })?;
    // Plaintext has no identity: denied too.
    let r = get(b, PRODUCTPAGE, "/productpage", &[]);
    expect(r.status == 403 && r.body == "RBAC: access denied", || {
        format!("plaintext: {} {:?}", r.status, r.body)
    })?;
    // Without a client certificate the mTLS listener refuses the handshake.
    let anon = b.pki.client(None);
    let r = https_get(b.tls_port, anon, PRODUCTPAGE.0, "/productpage", &hdr);
    expect(r.is_err(), || format!("no client cert was accepted: {r:?}"))
}

/// The `fs` listener sets the principal (sa/sleep) and destination (productpage VIP) in
/// filter state, as an HBONE-terminating hop would: productpage's ALLOW policy admits it even
/// though the request names another host and carries no certificate.
fn filter_state_input(b: &Bookinfo) -> Result<(), String> {
    let r = http_get(b.fs_port, "opaque.example", "/productpage", &[])?;
    expect(
        r.status == 200 && r.upstream().as_deref() == Some("productpage-v1"),
        || format!("fs listener: {} {:?}", r.status, r.body),
    )
}

/// `/ratings/mirror` is answered by ratings and shadowed to reviews v2 with a `-shadow` host.
fn mirror(b: &Bookinfo) -> Result<(), String> {
    let r = get(b, RATINGS, "/ratings/mirror-1", &[]);
    answered_by_ratings(&r)?;
    let host = at_mirror(b, "the mirror", |v2| {
        v2.seen()
            .into_iter()
            .find(|(p, _)| p == "/ratings/mirror-1")
            .map(|(_, host)| host)
    })?;
    expect(host == "ratings-shadow:9080", || {
        format!("shadow host {host:?}")
    })
}

/// A POST to the mirrored route: ratings answers, and reviews v2 gets the same 200 kB body
/// once the body has passed (the module copies it as it streams).
fn mirror_with_body(b: &Bookinfo) -> Result<(), String> {
    let body: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let r = http_request_with_body(
        b.plain_port,
        "POST",
        RATINGS.0,
        "/ratings/mirror-body",
        &[("x-envoy-original-dst-host", RATINGS.1)],
        &body,
    )?;
    answered_by_ratings(&r)?;
    let got = at_mirror(b, "the mirrored body", |v2| {
        v2.bodies()
            .into_iter()
            .find(|(p, _)| p == "/ratings/mirror-body")
            .map(|(_, got)| got)
    })?;
    expect(got == body, || {
        format!("mirrored body: {} bytes, want {}", got.len(), body.len())
    })
}

/// The main request of a mirrored route is answered by ratings.
fn answered_by_ratings(r: &Response) -> Result<(), String> {
    expect(
        r.status == 200 && r.upstream().as_deref() == Some("ratings-v1"),
        || format!("mirror main request: {} {}", r.status, r.body),
    )
}

/// Poll the reviews-v2 upstream (the mirror target) for up to 5 s until `found` sees `what`.
fn at_mirror<T>(
    b: &Bookinfo,
    what: &str,
    found: impl Fn(&waypoint_tests::envoy_harness::upstream::Upstream) -> Option<T>,
) -> Result<T, String> {
    let v2 = b
        .upstreams
        .iter()
        .find(|u| u.name == "reviews-v2")
        .ok_or("no reviews-v2 upstream")?;
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if let Some(t) = found(v2) {
            return Ok(t);
        }
        if Instant::now() > deadline {
            return Err(format!("reviews-v2 never saw {what}: {:?}", v2.seen()));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn panic_fails_closed(b: &Bookinfo) -> Result<(), String> {
    let r = get(
        b,
        REVIEWS,
        "/reviews/1",
        &[("x-waypoint-test-panic", "decide")],
    );
    expect(r.status == 403, || {
        format!("panic before decision: {} {}", r.status, r.body)
    })?;
    let r = get(
        b,
        REVIEWS,
        "/reviews/1",
        &[("x-waypoint-test-panic", "apply")],
    );
    expect(r.status == 500, || {
        format!("panic while applying: {} {}", r.status, r.body)
    })?;
    for _ in 0..5 {
        let r = get(b, REVIEWS, "/reviews/1", &[("end-user", "jason")]);
        expect(
            r.status == 200 && r.upstream().as_deref() == Some("reviews-v2"),
            || format!("after panics: {} {}", r.status, r.body),
        )?;
    }
    Ok(())
}

fn metrics_and_metadata(b: &Bookinfo) -> Result<(), String> {
    // The module counts in memory and flushes to Envoy's counter every 0.5 s (main thread).
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let stats = http_get(
            b.envoy.admin_port,
            "127.0.0.1",
            "/stats?filter=waypoint_requests_total",
            &[],
        )?;
        let routed =
            stats.body.contains("waypoint_requests_total") && stats.body.contains("decision.route");
        let denied = stats.body.contains("decision.deny");
        if routed && denied {
            break;
        }
        if Instant::now() > deadline {
            return Err(format!(
                "counters missing (route: {routed}, deny: {denied}): {}",
                stats.body
            ));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    // Exact counts: every request is counted once, after at most one flush interval.
    let total = |b: &Bookinfo| -> Result<u64, String> {
        let stats = http_get(
            b.envoy.admin_port,
            "127.0.0.1",
            "/stats?filter=waypoint_requests_total",
            &[],
        )?;
        Ok(stats
            .body
            .lines()
            .filter_map(|l| {
                l.rsplit_once(": ")
                    .and_then(|(_, v)| v.trim().parse::<u64>().ok())
            })
            .sum())
    };
    let settled = |b: &Bookinfo| -> Result<u64, String> {
        // Two reads 0.7 s apart (longer than the flush interval) that agree.
        let mut last = total(b)?;
        loop {
            std::thread::sleep(Duration::from_millis(700));
            let now = total(b)?;
            if now == last {
                return Ok(now);
            }
            last = now;
        }
    };
    let before = settled(b)?;
    for i in 0..25 {
        let r = get(b, REVIEWS, &format!("/reviews/count-{i}"), &[]);
        expect(r.status == 200, || {
            format!("count request {i}: {}", r.status)
        })?;
    }
    let after = settled(b)?;
    expect(after == before + 25, || {
        format!("waypoint_requests_total went {before} -> {after}, expected +25")
    })?;
    // Envoy buffers the stdout access log; wait for it to flush.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let log = b.envoy.log_text();
        let routed = log.contains("decision=route route=VirtualService/bookinfo/reviews#split");
        let denied = log.contains("ACCESS GET /productpage 403 waypoint_deny decision=deny");
        if routed && denied {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!(
                "access log lacks waypoint metadata (route: {routed}, deny: {denied})"
            ));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

//! Network-namespace helpers for multi-host tests: whether we may create namespaces (root),
//! and a visible SKIP line when we may not.

/// True when running as root (needed for `ip netns`).
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(1).map(|u| u == "0"))
        })
        .unwrap_or(false)
}

/// Print a visible skip line; returns true when the test should skip.
pub fn skip_unless_root(test: &str) -> bool {
    if is_root() {
        return false;
    }
    println!("SKIP {test}: needs root for network namespaces");
    eprintln!("SKIP {test}: needs root for network namespaces");
    true
}

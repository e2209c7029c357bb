//! Fuzz target bodies: plain functions over bytes, driven by libFuzzer (`fuzz_targets/`,
//! `make fuzz`) and replayed over the committed seed corpora by `cargo test` (`make test`).
//! Each checks an invariant beyond "does not panic".

use std::sync::OnceLock;

use waypoint_core::authz::{normalize_path as normalize, try_normalize_path};
use waypoint_core::resource::{is_manifest_error, parse_manifests};
use waypoint_core::{BuildOptions, Snapshot};
use waypoint_hbone::originate::proxy_header;
use waypoint_hbone::server::parse_authority;
use waypoint_proxy::connect::sniff::classify;

/// Manifest loading: parse (under the loader's limits) and compile a snapshot. Errors about
/// the text name the origin.
pub fn manifests(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (resources, errors) = parse_manifests(text, "fuzz.yaml", "default", 0);
    for e in errors.iter().filter(|e| is_manifest_error(e)) {
        assert!(e.name.starts_with("fuzz.yaml"), "{e}");
    }
    let (_snapshot, _diags) = Snapshot::build(&resources, &BuildOptions::default());
}

/// Path normalization (Istio's `BASE`): idempotent, and no `.`/`..` segment survives in the
/// path part (what authorization matches and the upstream receives).
pub fn normalize_path(data: &[u8]) {
    let Ok(path) = std::str::from_utf8(data) else {
        return;
    };
    let once = normalize(path);
    let strict = try_normalize_path(path);
    if let Some(s) = &strict {
        assert_eq!(s, &once, "try_normalize_path agrees with normalize_path");
    }
    if path.starts_with('/') && strict.is_some() {
        let p = waypoint_core::authz::path_without_query(&once);
        assert!(
            p.split('/').all(|seg| seg != "." && seg != ".."),
            "{path:?} -> {once:?} keeps a dot segment"
        );
        // One pass, as Envoy's: an invalid escape followed by a decoded one (`%4%41` ->
        // `%4A`) forms a new escape that a second pass would decode. Any other change on a
        // second pass is a bug.
        if !has_unreserved_escape(&once) {
            let twice = normalize(&once);
            assert_eq!(twice, once, "normalizing {path:?} twice changes it");
        }
    }
    // What the decision uses: normalized to a fixed point, in every mode.
    use waypoint_core::mesh::PathNormalization as M;
    for mode in [M::None, M::Base, M::MergeSlashes, M::DecodeAndMergeSlashes] {
        if let Some(stable) = waypoint_core::authz::normalize_path_stable(mode, path) {
            let again = waypoint_core::authz::normalize_path_stable(mode, &stable);
            assert_eq!(
                again.as_deref(),
                Some(&*stable),
                "{mode:?}: {path:?} -> {stable:?} is not a fixed point"
            );
        }
    }
}

/// Does `path` hold a `%XX` escape of an unreserved character (which normalization decodes)?
fn has_unreserved_escape(path: &str) -> bool {
    let b = path.as_bytes();
    b.windows(3).any(|w| {
        let hex = |c: u8| (c as char).to_digit(16);
        match (w[0], hex(w[1]), hex(w[2])) {
            (b'%', Some(h), Some(l)) => {
                let c = (h * 16 + l) as u8;
                c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~')
            }
            _ => false,
        }
    })
}

/// A small snapshot with a bound service, for destination resolution.
fn snapshot() -> &'static Snapshot {
    static SNAP: OnceLock<Snapshot> = OnceLock::new();
    SNAP.get_or_init(|| {
        let yaml = concat!(
            "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\n",
            "metadata: {name: waypoint, namespace: default}\n",
            "spec: {gatewayClassName: istio-waypoint, listeners: [{name: mesh, port: 15008, protocol: HBONE}]}\n",
            "---\napiVersion: v1\nkind: Service\n",
            "metadata: {name: ratings, namespace: default, labels: {istio.io/use-waypoint: waypoint}}\n",
            "spec: {clusterIP: 10.96.0.9, ports: [{name: http, port: 9080}]}\n",
        );
        let (rs, _) = parse_manifests(yaml, "fuzz-snapshot.yaml", "default", 0);
        Snapshot::build(&rs, &BuildOptions::default()).0
    })
}

/// CONNECT authority parsing as the HBONE server does, then destination resolution: an
/// accepted authority has a non-empty host and a port; a resolved one names a real service.
pub fn connect_authority(data: &[u8]) {
    let Ok(authority) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(addr) = parse_authority(authority) {
        let (host, port) = waypoint_core::request::split_host_port(authority);
        assert!(
            addr.is_some() || (!host.is_empty() && port.is_some()),
            "{authority:?} accepted without host:port"
        );
    }
    let snap = snapshot();
    if let Ok(r) = snap.resolve_destination(authority) {
        assert!(r.index < snap.registry.services.len());
    }
}

/// PROXY v2 header parsing: a header that parses re-encodes to one that parses the same.
pub fn proxy_v2(data: &[u8]) {
    if data.len() < 16 {
        return;
    }
    let mut fixed = [0u8; 16];
    fixed.copy_from_slice(&data[..16]);
    let Ok(h) = proxy_header::parse(&fixed, &data[16..]) else {
        return;
    };
    if let (Some(s), Some(d)) = (h.source, h.destination) {
        let tlvs: Vec<(u8, &[u8])> = h.tlvs.iter().map(|(t, v)| (*t, v.as_slice())).collect();
        let encoded = proxy_header::encode(s, d, &tlvs);
        let mut fixed2 = [0u8; 16];
        fixed2.copy_from_slice(&encoded[..16]);
        let again = proxy_header::parse(&fixed2, &encoded[16..]);
        assert_eq!(
            again.as_ref(),
            Ok(&h),
            "re-encoded header parses differently"
        );
    }
}

/// Protocol sniffing: a decision made on a prefix never changes as more bytes arrive.
pub fn sniff(data: &[u8]) {
    let full = classify(data);
    for k in 0..data.len().min(64) {
        if let Some(p) = classify(&data[..k]) {
            assert_eq!(
                Some(p),
                full,
                "{:?}: decided {p:?} on {k} bytes",
                &data[..k]
            );
        }
    }
}

#[cfg(test)]
mod replay {
    //! Every seed of corpus/<target>/ through its target body (what `make test` runs).

    use std::path::Path;

    fn replay(target: &str, body: fn(&[u8])) {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("corpus")
            .join(target);
        let mut n = 0;
        let mut entries: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        entries.sort();
        for path in entries {
            let data = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            eprintln!("{target}: {}", path.display());
            body(&data);
            n += 1;
        }
        assert!(n > 0, "no seeds in {}", dir.display());
    }

    #[test]
    fn manifests() {
        replay("manifests", super::manifests);
    }

    #[test]
    fn normalize_path() {
        replay("normalize_path", super::normalize_path);
    }

    #[test]
    fn connect_authority() {
        replay("connect_authority", super::connect_authority);
    }

    #[test]
    fn proxy_v2() {
        replay("proxy_v2", super::proxy_v2);
    }

    #[test]
    fn sniff() {
        replay("sniff", super::sniff);
    }
}

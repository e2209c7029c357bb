//! The consistent-hash header: the core's hash input for a DestinationRule `consistentHash`
//! goes into `x-waypoint-hash` (which the generated routes hash); a client's own never stays.

use std::sync::Arc;

use crate::config::FilterConfig;
use crate::fake::FakeStream;
use crate::filter::HttpFilter;
use crate::router::HASH_HEADER;
use crate::stream::{Attribute, HeaderKind, HeadersStatus, StreamHandle};

use super::MINI;

fn config(dr: &str) -> Arc<FilterConfig> {
    let spec = serde_json::json!({"waypoint": "bookinfo/waypoint", "config_inline": format!("{MINI}{dr}")});
    Arc::new(FilterConfig::from_bytes("waypoint", spec.to_string().as_bytes()).expect("config"))
}

const BY_USER: &str = "---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: reviews, namespace: bookinfo}\nspec:\n  host: reviews\n  trafficPolicy: {loadBalancer: {consistentHash: {httpHeaderName: x-user}}}\n";
const BY_SOURCE: &str = "---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: reviews, namespace: bookinfo}\nspec:\n  host: reviews\n  trafficPolicy: {loadBalancer: {consistentHash: {useSourceIp: true}}}\n";

#[test]
fn the_hash_input_is_written_and_a_client_value_never_kept() {
    let sleep = "spiffe://cluster.local/ns/bookinfo/sa/sleep";
    // (rule, request headers, the hash header Envoy sees)
    type Case<'a> = (&'a str, Vec<(&'a str, &'a str)>, Vec<String>);
    let cases: Vec<Case> = vec![
        (BY_USER, vec![("x-user", "jason")], vec!["jason".into()]),
        (
            BY_USER,
            vec![("x-user", "jason"), (HASH_HEADER, "evil")],
            vec!["jason".into()],
        ),
        // The request lacks the key: no hash (Envoy picks as without one), the client's gone.
        (BY_USER, vec![(HASH_HEADER, "evil")], vec![]),
        (BY_USER, vec![], vec![]),
        (BY_SOURCE, vec![], vec!["10.0.0.7".into()]),
        // No consistent hash at all.
        ("", vec![("x-user", "jason"), (HASH_HEADER, "evil")], vec![]),
    ];
    for (dr, extra, want) in cases {
        let mut s = FakeStream::request(
            "GET",
            "reviews.bookinfo.svc.cluster.local:9080",
            "/",
            &extra,
        )
        .with_attribute(Attribute::PeerUriSan, sleep)
        .with_attribute(Attribute::SourceAddress, "10.0.0.7:40000");
        let st = HttpFilter::new(config(dr)).on_request_headers(&mut s, true);
        assert_eq!(st, HeadersStatus::Continue, "{extra:?}");
        assert_eq!(
            s.header_values(HeaderKind::Request, HASH_HEADER),
            want,
            "{dr} {extra:?}"
        );
    }
}

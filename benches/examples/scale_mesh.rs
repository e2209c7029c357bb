//! Writes the scale benchmark's inputs for N services (`scale_mesh N OUT_DIR CERT_DIR`):
//! `OUT_DIR/mesh/mesh.yaml` (our config) and `OUT_DIR/anchor.yaml` (the anchor's Envoy config).
//!
//! The anchor is stock Envoy shaped like Istio's ambient waypoint for the same services, as
//! pilot builds it (`cluster_waypoint.go`, `listener_waypoint.go`), with stock extensions only:
//! `connect_terminate` (HBONE in) → internal `main_internal` whose filter-chain matcher picks one
//! chain per service VIP (HCM, RBAC for the service's ALLOW policy, router, its routes) →
//! `inbound-vip|80|http|<host>` cluster per service, endpoints addressed to the one internal
//! `connect_originate` listener with the pod address in metadata → one ORIGINAL_DST
//! `connect_originate` cluster (pod IP, port 15008, mTLS). Certificates from `CERT_DIR`
//! (`waypoint.crt/.key`, `root.pem`, as the shared harness makes them).

use std::fmt::Write;

use waypoint_benches::scale_mesh::{addresses, manifests};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(n), Some(out), Some(certs)) = (
        args.get(1).and_then(|a| a.parse::<usize>().ok()),
        args.get(2),
        args.get(3),
    ) else {
        eprintln!("usage: scale_mesh N OUT_DIR CERT_DIR");
        std::process::exit(2);
    };
    let mesh = std::path::Path::new(out).join("mesh");
    std::fs::create_dir_all(&mesh).expect("create OUT_DIR/mesh");
    std::fs::write(mesh.join("mesh.yaml"), manifests(n)).expect("write mesh.yaml");
    std::fs::write(
        std::path::Path::new(out).join("anchor.yaml"),
        anchor(n, certs),
    )
    .expect("write anchor.yaml");
}

fn host(i: usize) -> String {
    format!("svc{i}.default.svc.cluster.local")
}

fn anchor(n: usize, certs: &str) -> String {
    let mut y = String::with_capacity(8192 + n * 3000);
    let _ = write!(
        y,
        r#"admin:
  address: {{socket_address: {{address: 127.0.0.1, port_value: 15000}}}}
bootstrap_extensions:
- name: envoy.bootstrap.internal_listener
  typed_config:
    "@type": type.googleapis.com/envoy.extensions.bootstrap.internal_listener.v3.InternalListener
static_resources:
  listeners:
  - name: connect_terminate
    address: {{socket_address: {{address: 127.0.0.1, port_value: 15008}}}}
    filter_chains:
    - transport_socket:
        name: envoy.transport_sockets.tls
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext
          require_client_certificate: true
          common_tls_context:
            alpn_protocols: ["h2"]
            tls_certificates:
            - certificate_chain: {{filename: "{certs}/waypoint.crt"}}
              private_key: {{filename: "{certs}/waypoint.key"}}
            validation_context:
              trusted_ca: {{filename: "{certs}/root.pem"}}
              match_typed_subject_alt_names:
              - {{san_type: URI, matcher: {{prefix: "spiffe://cluster.local/"}}}}
      filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: connect_terminate
          codec_type: HTTP2
          http2_protocol_options: {{allow_connect: true}}
          upgrade_configs: [{{upgrade_type: CONNECT}}]
          http_filters:
          - name: authn
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.set_filter_state.v3.Config
              on_request_headers:
              - object_key: io.istio.peer_principal
                factory_key: envoy.string
                format_string: {{text_format_source: {{inline_string: "%DOWNSTREAM_PEER_URI_SAN%"}}}}
                shared_with_upstream: ONCE
          - name: envoy.filters.http.router
            typed_config: {{"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}}
          route_config:
            name: connect_terminate
            virtual_hosts:
            - name: connect
              domains: ["*"]
              routes:
              - match: {{connect_matcher: {{}}}}
                route: {{cluster: main_internal, upgrade_configs: [{{upgrade_type: CONNECT, connect_config: {{}}}}]}}
  - name: connect_originate
    internal_listener: {{}}
    listener_filters:
    - name: envoy.filters.listener.original_dst
      typed_config: {{"@type": type.googleapis.com/envoy.extensions.filters.listener.original_dst.v3.OriginalDst}}
    filter_chains:
    - filters:
      - name: tcp_proxy
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy
          stat_prefix: connect_originate
          cluster: connect_originate
          tunneling_config: {{hostname: "%DOWNSTREAM_LOCAL_ADDRESS%"}}
  - name: main_internal
    internal_listener: {{}}
    filter_chain_matcher:
      matcher_tree:
        input:
          name: ip
          typed_config: {{"@type": type.googleapis.com/envoy.extensions.matching.common_inputs.network.v3.DestinationIPInput}}
        exact_match_map:
          map:
"#
    );
    for i in 0..n {
        let (vip, _) = addresses(i);
        let _ = write!(
            y,
            "            \"{vip}\":\n              action: {{name: c, typed_config: {{\"@type\": type.googleapis.com/google.protobuf.StringValue, value: \"inbound-vip|80|http|{h}\"}}}}\n",
            h = host(i)
        );
    }
    y.push_str("    filter_chains:\n");
    for i in 0..n {
        let h = host(i);
        let _ = write!(
            y,
            r#"    - name: "inbound-vip|80|http|{h}"
      filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: "inbound-vip|80|http|{h}"
          http_filters:
          - name: envoy.filters.http.rbac
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC
              rules:
                action: ALLOW
                policies:
                  "ns[default]-policy[allow-svc{i}]-rule[0]":
                    permissions: [{{or_rules: {{rules: [{{header: {{name: ":method", string_match: {{exact: GET}}}}}}, {{header: {{name: ":method", string_match: {{exact: POST}}}}}}]}}}}]
                    principals: [{{filter_state: {{key: io.istio.peer_principal, string_match: {{exact: "spiffe://cluster.local/ns/default/sa/sleep"}}}}}}]
          - name: envoy.filters.http.router
            typed_config: {{"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}}
          route_config:
            name: "{h}:80"
            virtual_hosts:
            - name: "{h}:80"
              domains: ["*"]
              routes:
              - match: {{path_separated_prefix: /api}}
                route: {{cluster: "inbound-vip|80|http|{h}", timeout: 10s}}
              - match: {{prefix: /}}
                route: {{cluster: "inbound-vip|80|http|{h}"}}
"#
        );
    }
    let _ = write!(
        y,
        r#"  clusters:
  - name: main_internal
    load_assignment:
      cluster_name: main_internal
      endpoints: [{{lb_endpoints: [{{endpoint: {{address: {{envoy_internal_address: {{server_listener_name: main_internal}}}}}}}}]}}]
    transport_socket:
      name: internal_upstream
      typed_config:
        "@type": type.googleapis.com/envoy.extensions.transport_sockets.internal_upstream.v3.InternalUpstreamTransport
        transport_socket: {{name: raw_buffer, typed_config: {{"@type": type.googleapis.com/envoy.extensions.transport_sockets.raw_buffer.v3.RawBuffer}}}}
  - name: connect_originate
    type: ORIGINAL_DST
    lb_policy: CLUSTER_PROVIDED
    original_dst_lb_config: {{upstream_port_override: 15008}}
    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        explicit_http_config: {{http2_protocol_options: {{allow_connect: true}}}}
    transport_socket:
      name: tls
      typed_config:
        "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext
        common_tls_context:
          alpn_protocols: ["h2"]
          tls_certificates:
          - certificate_chain: {{filename: "{certs}/waypoint.crt"}}
            private_key: {{filename: "{certs}/waypoint.key"}}
          validation_context:
            trusted_ca: {{filename: "{certs}/root.pem"}}
            match_typed_subject_alt_names:
            - {{san_type: URI, matcher: {{prefix: "spiffe://cluster.local/"}}}}
"#
    );
    for i in 0..n {
        let (h, (_, pod)) = (host(i), addresses(i));
        let _ = write!(
            y,
            r#"  - name: "inbound-vip|80|http|{h}"
    type: STATIC
    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        use_downstream_protocol_config: {{}}
    transport_socket:
      name: internal_upstream
      typed_config:
        "@type": type.googleapis.com/envoy.extensions.transport_sockets.internal_upstream.v3.InternalUpstreamTransport
        passthrough_metadata: [{{kind: {{host: {{}}}}, name: envoy.filters.listener.original_dst}}]
        transport_socket: {{name: raw_buffer, typed_config: {{"@type": type.googleapis.com/envoy.extensions.transport_sockets.raw_buffer.v3.RawBuffer}}}}
    load_assignment:
      cluster_name: "inbound-vip|80|http|{h}"
      endpoints:
      - lb_endpoints:
        - endpoint: {{address: {{envoy_internal_address: {{server_listener_name: connect_originate, endpoint_id: "{pod}:8080"}}}}}}
          metadata: {{filter_metadata: {{envoy.filters.listener.original_dst: {{local: "{pod}:8080"}}}}}}
"#
        );
    }
    y
}

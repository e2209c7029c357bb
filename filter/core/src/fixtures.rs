//! Test manifests shared by the workspace's crates: compiled for the core's own tests and,
//! through the `test-fixtures` feature, only where a crate enables it as a dev-dependency.

/// The `istio-waypoint` Gateway `waypoint` in namespace `$ns` (HBONE on 15008), followed by
/// a document separator. A string literal, so a test manifest can start with it in `concat!`:
/// `concat!(waypoint_core::waypoint_gateway_yaml!("shop"), "apiVersion: v1\n...")`.
#[macro_export]
macro_rules! waypoint_gateway_yaml {
    ($ns:literal) => {
        concat!(
            "apiVersion: gateway.networking.k8s.io/v1\n",
            "kind: Gateway\n",
            "metadata: {name: waypoint, namespace: ",
            $ns,
            "}\n",
            "spec: {gatewayClassName: istio-waypoint, listeners: [{name: mesh, port: 15008, protocol: HBONE}]}\n",
            "---\n"
        )
    };
}

//! Manifest builders shared by the end-to-end tests (Services and their pods as YAML).
//! Tests compose these instead of repeating the same Kubernetes boilerplate.

/// A non-mesh Service `name` (VIP `vip`, port 80) with one pod at `ip:port`.
pub fn plain_service(name: &str, vip: &str, ip: &str, port: u16) -> String {
    service(name, vip, ip, port, false)
}

/// A Service `name` (VIP `vip`, port 80, bound to the waypoint) with one pod at `ip:port`
/// running as service account `name`; `mesh`: the pod is ambient (reached over HBONE).
pub fn service(name: &str, vip: &str, ip: &str, port: u16, mesh: bool) -> String {
    named_port_service(name, vip, "http", ip, port, mesh)
}

/// As [`service`], with the port named `port_name` (its protocol, by Istio's naming rule:
/// `http`, `tcp-db`, `unknown`, ...).
pub fn named_port_service(
    name: &str,
    vip: &str,
    port_name: &str,
    ip: &str,
    port: u16,
    mesh: bool,
) -> String {
    service_with_pods(name, vip, port_name, port, &[ip], mesh)
}

/// A Service `name` (VIP `vip`, port 80 named `port_name`, bound to the waypoint) with one pod
/// per IP in `pods` (`name-0`, `name-1`, ...) listening on `target_port`, running as service
/// account `name`; `mesh`: the pods are ambient (reached over HBONE).
pub fn service_with_pods(
    name: &str,
    vip: &str,
    port_name: &str,
    target_port: u16,
    pods: &[&str],
    mesh: bool,
) -> String {
    let mode = if mesh { "ambient" } else { "none" };
    let mut y = format!(
        r#"
---
apiVersion: v1
kind: Service
metadata:
  name: {name}
  namespace: default
  labels:
    istio.io/use-waypoint: waypoint
spec:
  clusterIP: {vip}
  ports:
  - name: {port_name}
    port: 80
    targetPort: {target_port}
  selector:
    app: {name}
"#
    );
    for (i, ip) in pods.iter().enumerate() {
        y.push_str(&format!(
            r#"
---
apiVersion: v1
kind: Pod
metadata:
  name: {name}-{i}
  namespace: default
  labels:
    app: {name}
    istio.io/dataplane-mode: {mode}
spec:
  serviceAccountName: {name}
  containers:
  - name: app
    image: example
status:
  podIP: {ip}
"#
        ));
    }
    y
}

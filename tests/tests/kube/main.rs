//! Config from the Kubernetes API server, without a cluster: the real kube client against the
//! fake API server (`waypoint_tests::kube`), and the waypoint end to end (one test binary).

mod e2e;
mod fake_writes;
mod harness;
mod verbs;
mod watchers;

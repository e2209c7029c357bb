//! Which connection facts a snapshot's decisions can read, so a data path fetches only
//! those per request (each is a call into the proxy in the Envoy module).

use super::Snapshot;
use crate::authz::Attr;
use crate::route::HashKey;

/// Connection facts beyond the request headers and the peer principal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ConnectionInputs {
    /// Some policy matches `ipBlocks`/`remoteIpBlocks` (or `source.ip`/`remote.ip`), or a
    /// DestinationRule hashes on `useSourceIp`.
    pub source_ip: bool,
    /// Some policy matches `connection.sni`.
    pub sni: bool,
}

impl Snapshot {
    /// The connection facts any decision of this snapshot can depend on. Requests decided
    /// without a fact the snapshot never reads decide the same (only authorization reads them).
    pub fn connection_inputs(&self) -> ConnectionInputs {
        let mut out = ConnectionInputs::default();
        let conds = self.policies.iter().flat_map(|p| {
            p.rules.iter().flat_map(|r| {
                r.from
                    .iter()
                    .chain(r.to.iter())
                    .flatten()
                    .chain(r.when.iter())
            })
        });
        for c in conds {
            match c.attr {
                Attr::SourceIp(_) | Attr::RemoteIp(_) => out.source_ip = true,
                Attr::Sni(_) => out.sni = true,
                _ => {}
            }
        }
        let policies = self.destination_list.iter().flat_map(|d| {
            std::iter::once(&d.traffic_policy)
                .chain(d.port_policies.values())
                .chain(
                    d.subsets
                        .values()
                        .flat_map(|s| s.traffic_policy.iter().chain(s.port_policies.values())),
                )
        });
        if policies
            .filter_map(|p| p.load_balancer.as_ref()?.hash_key())
            .any(|k| *k == HashKey::SourceIp)
        {
            out.source_ip = true;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resource::parse_manifests;
    use crate::snapshot::BuildOptions;

    fn inputs(policy_rules: &str) -> ConnectionInputs {
        let yaml = format!(
            "apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {{name: p, namespace: default}}
spec:
  rules:
{policy_rules}"
        );
        let (docs, errors) = parse_manifests(&yaml, "test.yaml", "default", 0);
        assert!(errors.is_empty(), "{errors:?}");
        let (snap, _) = Snapshot::build(&docs, &BuildOptions::default());
        snap.connection_inputs()
    }

    #[test]
    fn a_source_ip_hash_reads_the_source_address() {
        let dr = |lb: &str| {
            let yaml = format!("apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {{name: r, namespace: default}}\nspec:\n  host: reviews\n  subsets:\n  - name: v1\n    labels: {{version: v1}}\n    trafficPolicy: {{loadBalancer: {lb}}}\n");
            let (docs, errors) = parse_manifests(&yaml, "test.yaml", "default", 0);
            assert!(errors.is_empty(), "{errors:?}");
            Snapshot::build(&docs, &BuildOptions::default())
                .0
                .connection_inputs()
                .source_ip
        };
        assert!(dr("{consistentHash: {useSourceIp: true}}"));
        assert!(!dr("{consistentHash: {httpHeaderName: x-user}}"));
    }

    #[test]
    fn reports_the_connection_facts_policies_match_on() {
        assert_eq!(
            inputs("  - from: [{source: {principals: [\"*\"]}}]\n"),
            ConnectionInputs::default()
        );
        assert_eq!(
            inputs("  - from: [{source: {ipBlocks: [10.0.0.0/8]}}]\n"),
            ConnectionInputs {
                source_ip: true,
                sni: false
            }
        );
        assert_eq!(
            inputs("  - from: [{source: {notRemoteIpBlocks: [10.0.0.0/8]}}]\n"),
            ConnectionInputs {
                source_ip: true,
                sni: false
            }
        );
        assert_eq!(
            inputs("  - when: [{key: connection.sni, values: [a.example]}]\n"),
            ConnectionInputs {
                source_ip: false,
                sni: true
            }
        );
        assert_eq!(
            inputs("  - when: [{key: source.ip, values: [10.0.0.1]}]\n"),
            ConnectionInputs {
                source_ip: true,
                sni: false
            }
        );
    }
}

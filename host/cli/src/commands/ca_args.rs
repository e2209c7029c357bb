//! The flags for Istio's CA (address, token and root files, cluster, identity, lifetime) of
//! `waypoint run` and `waypoint xds`, defaulting to Istio's environment variables and paths.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::task::JoinHandle;
use waypoint_hbone::tls::{CertStore, Identity};
use waypoint_istio_ca::client::{
    CaOptions, DEFAULT_ADDRESS, DEFAULT_CLUSTER_ID, DEFAULT_ROOT, DEFAULT_TOKEN,
};

/// The CA flags with the trust domain (`waypoint run`, which has no other trust-domain flag).
#[derive(clap::Args, Debug, Clone)]
pub struct CaArgs {
    #[command(flatten)]
    pub flags: CaFlags,
    /// Trust domain of the identity requested.
    #[arg(long, env = "TRUST_DOMAIN", default_value = "cluster.local")]
    pub trust_domain: String,
}

impl CaArgs {
    /// See [`CaFlags::enabled`].
    pub fn enabled(&self, files: bool) -> anyhow::Result<bool> {
        self.flags.enabled(files)
    }

    /// The client's options.
    pub fn options(&self) -> anyhow::Result<CaOptions> {
        self.flags.options(&self.trust_domain)
    }

    /// The first certificate (before serving) and the task that rotates it.
    pub async fn start(&self) -> anyhow::Result<(Arc<CertStore>, JoinHandle<()>)> {
        let opts = self.options()?;
        let address = opts.address.clone();
        waypoint_istio_ca::start(opts)
            .await
            .with_context(|| format!("getting the waypoint's certificate from the CA at {address}"))
    }
}

/// The CA flags without the trust domain (`waypoint xds` takes it from its generator flags).
#[derive(clap::Args, Debug, Clone)]
pub struct CaFlags {
    /// Get the waypoint's certificate from Istio's CA and rotate it at half-life, instead of
    /// certificate files. Also on when `--ca-address` (or `CA_ADDR`) is set and no
    /// certificate files are given.
    #[arg(long)]
    pub ca: bool,
    /// Istio's CA, `host:port` [default: istiod.istio-system.svc:15012].
    #[arg(long, env = "CA_ADDR", value_name = "HOST:PORT")]
    pub ca_address: Option<String>,
    /// Name the CA's serving certificate must carry [default: the host of --ca-address].
    #[arg(long, value_name = "NAME")]
    pub ca_server_name: Option<String>,
    /// The mesh root (ConfigMap `istio-ca-root-cert`, key `root-cert.pem`) the CA's
    /// certificate chains to.
    #[arg(long, value_name = "FILE", default_value = DEFAULT_ROOT)]
    pub ca_root: PathBuf,
    /// Projected service-account token with audience `istio-ca`; re-read on every request.
    #[arg(long, value_name = "FILE", default_value = DEFAULT_TOKEN)]
    pub ca_token: PathBuf,
    /// Sent to the CA as `clusterid` (the cluster whose API server reviews the token).
    #[arg(long, env = "CLUSTER_ID", default_value = DEFAULT_CLUSTER_ID)]
    pub cluster_id: String,
    /// The pod's namespace (identity `spiffe://TD/ns/NS/sa/SA`); required with the CA.
    #[arg(long, env = "POD_NAMESPACE", value_name = "NS")]
    pub pod_namespace: Option<String>,
    /// The pod's service account; required with the CA.
    #[arg(long, env = "SERVICE_ACCOUNT", value_name = "SA")]
    pub service_account: Option<String>,
    /// Requested certificate lifetime (istiod caps it; renewal happens at half of what it
    /// grants).
    #[arg(long, value_name = "DURATION", value_parser = duration, default_value = "24h")]
    pub cert_ttl: Duration,
}

fn duration(s: &str) -> Result<Duration, String> {
    waypoint_core::istio::parse_duration(s)
}

impl CaFlags {
    /// Whether the certificate comes from the CA; `files` says whether certificate files were
    /// given (`--certs`, `--cert`, `--key`, `--roots`).
    pub fn enabled(&self, files: bool) -> anyhow::Result<bool> {
        if self.ca && files {
            anyhow::bail!(
                "--ca and certificate files (--certs, --cert, --key, --roots) exclude each other"
            );
        }
        Ok(self.ca || (self.ca_address.is_some() && !files))
    }

    /// The client's options, for an identity in `trust_domain`.
    pub fn options(&self, trust_domain: &str) -> anyhow::Result<CaOptions> {
        let ns = self
            .pod_namespace
            .as_deref()
            .context("the CA needs the pod's namespace: --pod-namespace or POD_NAMESPACE")?;
        let sa = self.service_account.as_deref().context(
            "the CA needs the pod's service account: --service-account or SERVICE_ACCOUNT",
        )?;
        let mut opts = CaOptions::new(Identity::new(trust_domain, ns, sa));
        opts.address = self
            .ca_address
            .clone()
            .unwrap_or_else(|| DEFAULT_ADDRESS.to_string());
        opts.server_name = self.ca_server_name.clone();
        opts.root = self.ca_root.clone();
        opts.token = self.ca_token.clone();
        opts.cluster_id = self.cluster_id.clone();
        opts.ttl = self.cert_ttl;
        Ok(opts)
    }

    /// The first certificate written into `dir` as `names` before returning, and the task
    /// that renews it there.
    pub async fn start_to_dir(
        &self,
        trust_domain: &str,
        dir: PathBuf,
        names: waypoint_istio_ca::files::FileNames,
    ) -> anyhow::Result<JoinHandle<()>> {
        let opts = self.options(trust_domain)?;
        let address = opts.address.clone();
        waypoint_istio_ca::files::start_to_dir(opts, dir, names)
            .await
            .with_context(|| format!("getting the waypoint's certificate from the CA at {address}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser, Debug)]
    struct Cli {
        #[command(flatten)]
        ca: CaArgs,
    }

    #[test]
    fn flags_and_defaults() {
        let cli = Cli::try_parse_from([
            "x",
            "--ca",
            "--pod-namespace",
            "apps",
            "--service-account",
            "wp",
            "--cert-ttl",
            "1h",
        ])
        .expect("parse");
        assert!(cli.ca.enabled(false).expect("ok"));
        assert!(cli.ca.enabled(true).is_err());
        let o = cli.ca.options().expect("options");
        assert_eq!(
            o.identity.to_string(),
            "spiffe://cluster.local/ns/apps/sa/wp"
        );
        assert_eq!(o.address, "istiod.istio-system.svc:15012");
        assert_eq!(o.server_name(), "istiod.istio-system.svc");
        assert_eq!(
            o.root,
            PathBuf::from("/var/run/secrets/istio/root-cert.pem")
        );
        assert_eq!(
            o.token,
            PathBuf::from("/var/run/secrets/tokens/istio-token")
        );
        assert_eq!(o.cluster_id, "Kubernetes");
        assert_eq!(o.ttl, Duration::from_secs(3600));

        // No `--ca`: an address turns it on unless files are given.
        let cli = Cli::try_parse_from(["x", "--ca-address", "ca:1"]).expect("parse");
        assert!(cli.ca.enabled(false).expect("ok"));
        assert!(!cli.ca.enabled(true).expect("ok"));
        let e = cli.ca.options().expect_err("no namespace");
        assert!(e.to_string().contains("POD_NAMESPACE"), "{e}");
        assert!(Cli::try_parse_from(["x", "--cert-ttl", "soon"]).is_err());
    }
}

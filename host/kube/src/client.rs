//! The API server client: a kubeconfig file when given, else kube's inference (in-cluster
//! service account, then `KUBECONFIG` / `~/.kube/config`).

use std::path::Path;

use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

/// Why no client could be built.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    // Messages name what failed; the cause follows as the error source (anyhow prints the chain).
    #[error("reading kubeconfig {path}")]
    Kubeconfig {
        path: String,
        #[source]
        source: kube::config::KubeconfigError,
    },
    #[error("inferring the API server config (in-cluster or KUBECONFIG)")]
    Infer(#[source] kube::config::InferConfigError),
    #[error("building the client")]
    Build(#[source] kube::Error),
}

/// A client for `kubeconfig` if given, else in-cluster config or `KUBECONFIG`.
pub async fn client(kubeconfig: Option<&Path>) -> Result<Client, ClientError> {
    let config = match kubeconfig {
        Some(path) => {
            let err = |source| ClientError::Kubeconfig {
                path: path.display().to_string(),
                source,
            };
            let kc = Kubeconfig::read_from(path).map_err(err)?;
            Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
                .await
                .map_err(err)?
        }
        None => Config::infer().await.map_err(ClientError::Infer)?,
    };
    Client::try_from(config).map_err(ClientError::Build)
}

//! The controller loop: kube-runtime's `Controller` on Gateways (woken by their class and
//! the Deployments they own, resynced every minute), server-side apply of [`reconcile`]'s
//! objects and status, and a sweep of the cluster-scoped bindings whose Gateway is gone.

use std::fmt::Debug;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::StreamExt;
use gateway_api::gatewayclasses::GatewayClass;
use gateway_api::gateways::Gateway;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{ConfigMap, Service, ServiceAccount};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{ClusterRoleBinding, RoleBinding};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Api, Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::reconcile::{self, params_name, Input};
use crate::render::rbac;
use crate::{labels, Options};

/// Resync period: also how soon a changed parameters ConfigMap is applied (ConfigMaps are
/// read, not watched, so the controller needs no cluster-wide ConfigMap access).
const RESYNC: Duration = Duration::from_secs(60);
/// Retry after a failed reconcile.
const RETRY: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The API server's answer in the message itself: the reconcile loop logs only the
    /// error's Display (a bare "kubernetes API" hid a 404 `namespaces "istio-system" not found`).
    #[error("kubernetes API: {0}")]
    Kube(kube::Error),
    #[error(transparent)]
    Render(#[from] crate::Error),
}

impl From<kube::Error> for RunError {
    fn from(e: kube::Error) -> Self {
        RunError::Kube(e)
    }
}

struct Context {
    client: Client,
    options: Options,
}

/// Connect (in-cluster config or kubeconfig) and run until SIGTERM/SIGINT.
pub async fn start(options: Options) -> Result<(), RunError> {
    let client = Client::try_default().await?;
    run(client, options).await
}

pub async fn run(client: Client, options: Options) -> Result<(), RunError> {
    let ctx = Arc::new(Context {
        client: client.clone(),
        options,
    });
    let owned = watcher::Config::default().labels(&format!(
        "{}={}",
        labels::MANAGED_BY,
        labels::FIELD_MANAGER
    ));
    let controller = Controller::new(
        Api::<Gateway>::all(client.clone()),
        watcher::Config::default(),
    );
    let gateways = controller.store();
    tokio::spawn(sweep_loop(ctx.clone()));
    controller
        .owns(Api::<Deployment>::all(client.clone()), owned)
        .watches(
            Api::<GatewayClass>::all(client.clone()),
            watcher::Config::default(),
            move |class| {
                let name = class.name_any();
                gateways
                    .state()
                    .into_iter()
                    .filter(|g| g.spec.gateway_class_name == name)
                    .map(|g| ObjectRef::from_obj(&*g))
                    .collect::<Vec<_>>()
            },
        )
        .shutdown_on_signal()
        .run(reconcile_one, error_policy, ctx)
        .for_each(|r| async move {
            match r {
                Ok((gw, _)) => tracing::debug!(gateway = %gw, "reconciled"),
                Err(e) => tracing::warn!(error = %e, "reconcile failed"),
            }
        })
        .await;
    Ok(())
}

fn error_policy(_gw: Arc<Gateway>, e: &RunError, _ctx: Arc<Context>) -> Action {
    tracing::warn!(error = %e, "retrying");
    Action::requeue(RETRY)
}

fn now() -> Time {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    Time(Timestamp::from_second(secs).unwrap_or(Timestamp::UNIX_EPOCH))
}

async fn reconcile_one(gw: Arc<Gateway>, ctx: Arc<Context>) -> Result<Action, RunError> {
    Ok(match sync(&ctx.client, &ctx.options, &gw).await? {
        Synced::NotOurs => Action::await_change(),
        Synced::Applied => Action::requeue(RESYNC),
    })
}

/// What one [`sync`] did.
#[derive(Debug, PartialEq, Eq)]
pub enum Synced {
    /// The Gateway's class is missing or not ours: nothing done.
    NotOurs,
    /// Objects (if accepted) and status applied.
    Applied,
}

/// One reconcile of one Gateway against the API server: read its class, parameters and
/// Deployment, apply the desired objects, delete a dropped HPA/PDB, write changed status.
pub async fn sync(client: &Client, o: &Options, gw: &Gateway) -> Result<Synced, RunError> {
    let classes = Api::<GatewayClass>::all(client.clone());
    let class = classes.get_opt(&gw.spec.gateway_class_name).await?;
    if !class.as_ref().is_some_and(|c| reconcile::owns_class(c, o)) {
        // A Gateway that left our class (or whose class is gone) keeps nothing of ours.
        release(client, o, gw).await?;
        return Ok(Synced::NotOurs);
    }
    let Some(class) = class else {
        return Ok(Synced::NotOurs);
    };
    let ns = gw.namespace().unwrap_or_default();
    let name = gw.name_any();
    let params = match params_name(gw) {
        Some(n) => {
            Api::<ConfigMap>::namespaced(client.clone(), &ns)
                .get_opt(n)
                .await?
        }
        None => None,
    };
    let deployment = Api::<Deployment>::namespaced(client.clone(), &ns)
        .get_opt(&name)
        .await?;
    let now = now();
    let outcome = reconcile::reconcile(
        Input {
            class: &class,
            gateway: gw,
            params: params.as_ref(),
            deployment: deployment.as_ref(),
            now: &now,
        },
        o,
    )?;
    if let Some(d) = &outcome.desired {
        let uid = gw.uid().unwrap_or_default();
        apply(
            &Api::<ServiceAccount>::namespaced(client.clone(), &ns),
            &d.service_account,
        )
        .await?;
        apply(
            &Api::<ClusterRoleBinding>::all(client.clone()),
            &d.cluster_role_binding,
        )
        .await?;
        apply(
            &Api::<RoleBinding>::namespaced(client.clone(), &o.istio_namespace),
            &d.mesh_config_binding,
        )
        .await?;
        apply(
            &Api::<Deployment>::namespaced(client.clone(), &ns),
            &d.deployment,
        )
        .await?;
        apply(&Api::<Service>::namespaced(client.clone(), &ns), &d.service).await?;
        let hpa = Api::<HorizontalPodAutoscaler>::namespaced(client.clone(), &ns);
        match &d.autoscaler {
            Some(h) => apply(&hpa, h).await?,
            None => delete_owned(&hpa, &name, &uid).await?,
        }
        let pdb = Api::<PodDisruptionBudget>::namespaced(client.clone(), &ns);
        match &d.disruption_budget {
            Some(p) => apply(&pdb, p).await?,
            None => delete_owned(&pdb, &name, &uid).await?,
        }
    }
    let status_params = PatchParams::apply(labels::FIELD_MANAGER).force();
    if gw.status.as_ref() != Some(&outcome.gateway_status) {
        let body = crate::status::gateway_status_patch(gw, &outcome.gateway_status);
        Api::<Gateway>::namespaced(client.clone(), &ns)
            .patch_status(&name, &status_params, &Patch::Apply(body))
            .await?;
        tracing::info!(gateway = %format!("{ns}/{name}"), addresses = ?outcome.gateway_status.addresses, "status written");
    }
    if class.status.as_ref() != Some(&outcome.class_status) {
        let body = crate::status::class_status_patch(&class, &outcome.class_status);
        classes
            .patch_status(&class.name_any(), &status_params, &Patch::Apply(body))
            .await?;
    }
    Ok(Synced::Applied)
}

/// Undo what we did for a Gateway that is no longer ours, if we did anything (our field
/// manager wrote its status): delete the objects it owns and its RBAC bindings, and withdraw
/// our status conditions (an empty server-side apply of the status with our field manager
/// removes the fields only we own; another controller's status stays).
async fn release(client: &Client, o: &Options, gw: &Gateway) -> Result<(), RunError> {
    let ours = gw
        .managed_fields()
        .iter()
        .any(|m| m.manager.as_deref() == Some(labels::FIELD_MANAGER));
    if !ours {
        return Ok(());
    }
    let ns = gw.namespace().unwrap_or_default();
    let name = gw.name_any();
    let uid = gw.uid().unwrap_or_default();
    tracing::info!(gateway = %format!("{ns}/{name}"), class = %gw.spec.gateway_class_name, "no longer of our class: removing its waypoint");
    delete_owned(
        &Api::<Deployment>::namespaced(client.clone(), &ns),
        &name,
        &uid,
    )
    .await?;
    delete_owned(
        &Api::<Service>::namespaced(client.clone(), &ns),
        &name,
        &uid,
    )
    .await?;
    delete_owned(
        &Api::<ServiceAccount>::namespaced(client.clone(), &ns),
        &name,
        &uid,
    )
    .await?;
    delete_owned(
        &Api::<HorizontalPodAutoscaler>::namespaced(client.clone(), &ns),
        &name,
        &uid,
    )
    .await?;
    delete_owned(
        &Api::<PodDisruptionBudget>::namespaced(client.clone(), &ns),
        &name,
        &uid,
    )
    .await?;
    let selector = format!(
        "{}={},{}={ns},{}={name}",
        labels::MANAGED_BY,
        labels::FIELD_MANAGER,
        rbac::OWNER_NAMESPACE,
        rbac::OWNER_NAME
    );
    let crbs = Api::<ClusterRoleBinding>::all(client.clone());
    for b in crbs.list(&ListParams::default().labels(&selector)).await? {
        crbs.delete(&b.name_any(), &DeleteParams::default()).await?;
    }
    let rbs = Api::<RoleBinding>::namespaced(client.clone(), &o.istio_namespace);
    for b in rbs.list(&ListParams::default().labels(&selector)).await? {
        rbs.delete(&b.name_any(), &DeleteParams::default()).await?;
    }
    let withdraw = serde_json::json!({
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "Gateway",
        "metadata": {"name": name, "namespace": ns},
        "status": {},
    });
    Api::<Gateway>::namespaced(client.clone(), &ns)
        .patch_status(
            &name,
            &PatchParams::apply(labels::FIELD_MANAGER).force(),
            &Patch::Apply(withdraw),
        )
        .await?;
    Ok(())
}

/// Server-side apply with our field manager; `force` takes over fields another manager
/// (e.g. `kubectl edit`) set, as a controller must.
async fn apply<K>(api: &Api<K>, obj: &K) -> Result<(), RunError>
where
    K: Resource + Serialize + DeserializeOwned + Clone + Debug,
{
    let name = obj.meta().name.clone().unwrap_or_default();
    api.patch(
        &name,
        &PatchParams::apply(labels::FIELD_MANAGER).force(),
        &Patch::Apply(obj),
    )
    .await?;
    Ok(())
}

/// Delete `name` if the Gateway `uid` owns it (parameters no longer ask for it).
async fn delete_owned<K>(api: &Api<K>, name: &str, uid: &str) -> Result<(), RunError>
where
    K: Resource + DeserializeOwned + Clone + Debug,
{
    if let Some(obj) = api.get_opt(name).await? {
        if obj.owner_references().iter().any(|r| r.uid == uid) {
            api.delete(name, &DeleteParams::default()).await?;
        }
    }
    Ok(())
}

async fn sweep_loop(ctx: Arc<Context>) {
    loop {
        if let Err(e) = sweep(&ctx).await {
            tracing::warn!(error = %e, "sweeping bindings");
        }
        tokio::time::sleep(RESYNC).await;
    }
}

/// Delete the bindings of Gateways that no longer exist (or were recreated with a new uid).
async fn sweep(ctx: &Context) -> Result<(), RunError> {
    let client = &ctx.client;
    let crbs = Api::<ClusterRoleBinding>::all(client.clone());
    let rbs = Api::<RoleBinding>::namespaced(client.clone(), &ctx.options.istio_namespace);
    let selector = format!("{}={}", labels::MANAGED_BY, labels::FIELD_MANAGER);
    for b in crbs.list(&ListParams::default().labels(&selector)).await? {
        let l = b.labels();
        let (Some(ns), Some(gw)) = (l.get(rbac::OWNER_NAMESPACE), l.get(rbac::OWNER_NAME)) else {
            continue;
        };
        let want = b
            .annotations()
            .get(rbac::OWNER_UID)
            .cloned()
            .unwrap_or_default();
        let live = Api::<Gateway>::namespaced(client.clone(), ns)
            .get_opt(gw)
            .await?;
        if live.as_ref().and_then(|g| g.uid()) == Some(want) {
            continue;
        }
        let name = b.name_any();
        tracing::info!(binding = %name, "gateway gone: deleting its bindings");
        crbs.delete(&name, &DeleteParams::default()).await?;
        if rbs.get_opt(&name).await?.is_some() {
            rbs.delete(&name, &DeleteParams::default()).await?;
        }
    }
    Ok(())
}

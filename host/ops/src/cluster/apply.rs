//! `apply`: create the waypoint Gateway (or replace it with `--overwrite`), optionally wait
//! for `Programmed`, then label its namespace. Every check runs before the first write.

use std::time::Duration;

use gateway_api::gateways::Gateway;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};

use crate::binding;
use crate::error::{is_not_found, is_unserved, Error};
use crate::gateway::{self, WaypointSpec};
use crate::names;
use crate::object::Object;

/// What `apply` is asked to do.
#[derive(Clone, Debug)]
pub struct ApplyRequest {
    pub spec: WaypointSpec,
    /// Label the namespace `istio.io/use-waypoint=<name>`.
    pub enroll_namespace: bool,
    /// Replace an existing waypoint Gateway of that name (one of another class is refused),
    /// and a namespace label naming another waypoint.
    pub overwrite: bool,
    /// Wait this long for `Programmed=True`.
    pub wait: Option<Duration>,
    /// How often to read the Gateway while waiting.
    pub poll: Duration,
}

/// What `apply` did, in order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ApplyReport {
    /// `namespace/name`.
    pub key: String,
    /// An existing Gateway was replaced (`--overwrite`).
    pub replaced: bool,
    /// The wait ended with `Programmed=True`.
    pub programmed: bool,
    /// The namespace was labelled (it did not already use this waypoint).
    pub enrolled: bool,
    /// Worth saying, not failing for (the namespace is not in ambient mode...).
    pub warnings: Vec<String>,
}

impl ApplyReport {
    /// What the command prints.
    pub fn lines(&self, req: &ApplyRequest) -> Vec<String> {
        let mut out: Vec<String> = self
            .warnings
            .iter()
            .map(|w| format!("warning: {w}"))
            .collect();
        let verb = if self.replaced { "replaced" } else { "applied" };
        out.push(format!(
            "waypoint {} {verb} (class {})",
            self.key, req.spec.class
        ));
        if self.programmed {
            out.push(format!("waypoint {} is ready (Programmed)", self.key));
        }
        if req.enroll_namespace {
            let what = if self.enrolled {
                "labelled"
            } else {
                "already labelled"
            };
            out.push(format!(
                "namespace {} {what} {}={}",
                req.spec.namespace,
                names::USE_WAYPOINT,
                req.spec.name
            ));
        }
        out
    }
}

/// Check the namespace before anything is written; returns whether it needs the label.
async fn check_namespace(
    client: &Client,
    req: &ApplyRequest,
    report: &mut ApplyReport,
) -> Result<bool, Error> {
    let ns_name = &req.spec.namespace;
    let ns = Api::<Namespace>::all(client.clone())
        .get_opt(ns_name)
        .await
        .map_err(Error::kube(format!("reading Namespace {ns_name}")))?
        .ok_or_else(|| Error::NamespaceNotFound(ns_name.clone()))?;
    let o = Object {
        namespace: String::new(),
        name: ns_name.clone(),
        labels: ns.labels().clone(),
        value: serde_json::Value::Null,
    };
    if o.label(waypoint_controller::labels::DATAPLANE_MODE) != Some("ambient") {
        report.warnings.push(format!(
            "namespace {ns_name} is not in ambient mode (kubectl label namespace {ns_name} {}=ambient)",
            waypoint_controller::labels::DATAPLANE_MODE
        ));
    }
    binding::needs_enroll(&o, &req.spec.name, req.overwrite)
}

/// Create (or with `overwrite` server-side apply, forced) the waypoint Gateway.
async fn write_gateway(
    api: &Api<Gateway>,
    req: &ApplyRequest,
    report: &mut ApplyReport,
) -> Result<(), Error> {
    let gw = gateway::waypoint_gateway(&req.spec)?;
    let key = req.spec.key();
    let classify = |e: kube::Error, what: String| {
        if is_unserved(&e) {
            Error::NoGatewayApi { what }
        } else if is_not_found(&e) {
            Error::NamespaceNotFound(req.spec.namespace.clone())
        } else {
            Error::kube(what)(e)
        }
    };
    if req.overwrite {
        let existing = api
            .get_opt(&req.spec.name)
            .await
            .map_err(|e| classify(e, format!("reading Gateway {key}")))?;
        if let Some(g) = existing {
            // --overwrite replaces a waypoint, never another kind of Gateway.
            let g = gateway::to_object(&g)?;
            if !gateway::is_waypoint(&g, std::slice::from_ref(&req.spec.class)) {
                return Err(Error::NotAWaypoint {
                    key,
                    class: gateway::class(&g).to_string(),
                });
            }
            report.replaced = true;
        }
        let pp = PatchParams::apply(names::FIELD_MANAGER).force();
        api.patch(&req.spec.name, &pp, &Patch::Apply(&gw))
            .await
            .map_err(|e| classify(e, format!("applying Gateway {key}")))?;
        return Ok(());
    }
    let pp = PostParams {
        field_manager: Some(names::FIELD_MANAGER.to_string()),
        ..Default::default()
    };
    match api.create(&pp, &gw).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.is_already_exists() => {
            let class = api
                .get_opt(&req.spec.name)
                .await
                .ok()
                .flatten()
                .map(|g| g.spec.gateway_class_name)
                .unwrap_or_else(|| "unknown".to_string());
            Err(Error::AlreadyExists { key, class })
        }
        Err(e) => Err(classify(e, format!("creating Gateway {key}"))),
    }
}

/// Read the Gateway every `poll` until it is `Programmed=True`, for at most `timeout`.
pub async fn wait_programmed(
    api: &Api<Gateway>,
    name: &str,
    timeout: Duration,
    poll: Duration,
) -> Result<(), Error> {
    let key = format!("{}/{name}", api.namespace().unwrap_or_default());
    let start = tokio::time::Instant::now();
    let mut last = "the Gateway has no Programmed condition".to_string();
    loop {
        match api.get_opt(name).await {
            Ok(Some(gw)) => {
                let o = gateway::to_object(&gw)?;
                if gateway::programmed(&o) {
                    return Ok(());
                }
                if let Some(c) = gateway::condition(&o, "Programmed") {
                    last = format!("Programmed={} ({}: {})", c.status, c.reason, c.message);
                }
            }
            Ok(None) => last = "the Gateway is gone".to_string(),
            Err(e) => {
                tracing::debug!(error = %e, gateway = %key, "reading the Gateway while waiting");
                last = format!("reading it failed: {e}");
            }
        }
        if start.elapsed() >= timeout {
            return Err(Error::Timeout {
                key,
                after: timeout,
                last,
            });
        }
        tokio::time::sleep(poll.min(timeout.saturating_sub(start.elapsed()))).await;
    }
}

/// Do `req` against the API server.
pub async fn apply(client: &Client, req: &ApplyRequest) -> Result<ApplyReport, Error> {
    // The name is checked before anything is read.
    gateway::waypoint_gateway(&req.spec)?;
    let mut report = ApplyReport {
        key: req.spec.key(),
        ..Default::default()
    };
    let label = if req.enroll_namespace {
        check_namespace(client, req, &mut report).await?
    } else {
        false
    };
    let api = Api::<Gateway>::namespaced(client.clone(), &req.spec.namespace);
    write_gateway(&api, req, &mut report).await?;
    tracing::info!(gateway = %report.key, replaced = report.replaced, "waypoint applied");
    if let Some(timeout) = req.wait {
        wait_programmed(&api, &req.spec.name, timeout, req.poll).await?;
        report.programmed = true;
    }
    if label {
        let ns = &req.spec.namespace;
        Api::<Namespace>::all(client.clone())
            .patch(
                ns,
                &PatchParams::default(),
                &Patch::Merge(binding::enroll_patch(&req.spec.name)),
            )
            .await
            .map_err(Error::kube(format!("labelling Namespace {ns}")))?;
        report.enrolled = true;
    }
    Ok(report)
}

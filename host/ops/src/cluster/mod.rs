//! The verbs against the API server (thin async calls around the pure modules): apply,
//! delete, the reads `list` and `status` summarise, and the waypoint admin for `status`.

pub mod admin;
pub mod apply;
pub mod delete;
pub mod read;

use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use kube::Client;

use crate::cert;
use crate::summary::{self, ListRow, Selection, WaypointStatus};
use crate::Error;

pub use apply::{apply, ApplyReport, ApplyRequest};
pub use delete::{delete, DeleteReport, DeleteRequest};

/// `list` against the API server.
pub async fn list(client: &Client, sel: &Selection) -> Result<Vec<ListRow>, Error> {
    let inv = read::for_list(client, sel.namespace.as_deref()).await?;
    Ok(summary::list(&inv, sel))
}

/// `status` against the API server; with `admin`, the certificate of the one selected
/// waypoint is read from that admin address.
pub async fn status(
    client: &Client,
    sel: &Selection,
    admin: Option<&str>,
) -> Result<Vec<WaypointStatus>, Error> {
    let inv = read::for_status(client, sel.namespace.as_deref()).await?;
    let why = if admin.is_some() {
        "--admin reads one waypoint's: pass --name"
    } else {
        "no --admin address given"
    };
    let mut all = summary::status(&inv, sel, why);
    if let (Some(addr), [one]) = (admin, all.as_mut_slice()) {
        certificate(one, addr).await;
    }
    Ok(all)
}

/// Fill in `st`'s certificate from the admin at `addr` (its failure is the reason it is
/// unknown, not an error of `status`).
pub async fn certificate(st: &mut WaypointStatus, addr: &str) {
    st.certificate = match admin::config_dump(addr, Duration::from_secs(5)).await {
        Ok(doc) => cert::from_config_dump(&doc, Timestamp::now()),
        Err(why) => cert::CertStatus::unknown(why),
    };
    if let cert::CertStatus::Known {
        identity: Some(id), ..
    } = &st.certificate
    {
        let own = format!("/ns/{}/sa/{}", st.namespace, st.name);
        if !id.ends_with(&own) {
            st.notes.push(format!(
                "the admin at {addr} serves {id}, not this waypoint's identity (…{own})"
            ));
        }
    }
}

//! Reading from the API server what a summary needs, as [`Object`]s; a kind whose CRD is
//! missing is empty, except Gateways (without them there are no waypoints).

use gateway_api::gatewayclasses::GatewayClass;
use gateway_api::gateways::Gateway;
use k8s_openapi::api::core::v1::{Namespace, Service};
use kube::api::{ApiResource, DynamicObject, ListParams};
use kube::{Api, Client, Resource};

use crate::error::{is_unserved, Error};
use crate::object::{AttachKind, Inventory, Object};

const GATEWAY_GROUP: &str = "gateway.networking.k8s.io";

fn typed<K: Resource<DynamicType = ()>>() -> ApiResource {
    ApiResource::erase::<K>(&())
}

/// The API of a kind attached to waypoints, as the waypoint watches it (`waypoint-kube`).
fn attach_api(kind: AttachKind) -> Option<ApiResource> {
    waypoint_kube::kinds("istio-system")
        .into_iter()
        .find(|k| k.api.kind == kind.kind())
        .map(|k| k.api)
}

/// Every object of `api` (in `namespace`, or all); `optional`: a kind not served is empty.
pub async fn list(
    client: &Client,
    api: &ApiResource,
    namespace: Option<&str>,
    optional: bool,
) -> Result<Vec<Object>, Error> {
    let a: Api<DynamicObject> = match namespace {
        Some(ns) => Api::namespaced_with(client.clone(), ns, api),
        None => Api::all_with(client.clone(), api),
    };
    let what = match namespace {
        Some(ns) => format!("listing {} in {ns}", api.kind),
        None => format!("listing {}", api.kind),
    };
    match a.list(&ListParams::default()).await {
        Ok(list) => list
            .items
            .into_iter()
            .map(|o| {
                serde_json::to_value(&o)
                    .map(Object::from_value)
                    .map_err(|e| Error::Encode {
                        what: format!("{} {:?}", api.kind, o.metadata.name),
                        reason: e.to_string(),
                    })
            })
            .collect(),
        Err(e) if optional && is_unserved(&e) => Ok(Vec::new()),
        Err(e) if api.group == GATEWAY_GROUP && is_unserved(&e) => {
            Err(Error::NoGatewayApi { what })
        }
        Err(source) => Err(Error::kube(what)(source)),
    }
}

/// The Gateways in `namespace` (or all).
pub async fn gateways(client: &Client, namespace: Option<&str>) -> Result<Vec<Object>, Error> {
    list(client, &typed::<Gateway>(), namespace, false).await
}

/// GatewayClasses, best effort: a user allowed only their namespace may not list them
/// (cluster-scoped); then a Gateway without `istio.io/waypoint-for` reads as istiod's default.
async fn classes(client: &Client) -> Result<Vec<Object>, Error> {
    match list(client, &typed::<GatewayClass>(), None, true).await {
        Err(Error::Api { code: 403, .. }) => {
            tracing::warn!("GatewayClasses cannot be listed (forbidden): their istio.io/waypoint-for is not read");
            Ok(Vec::new())
        }
        other => other,
    }
}

/// What `list` needs: Gateways and their classes.
pub async fn for_list(client: &Client, namespace: Option<&str>) -> Result<Inventory, Error> {
    let mut inv = Inventory {
        gateways: gateways(client, namespace).await?,
        classes: classes(client).await?,
        ..Default::default()
    };
    inv.sort();
    Ok(inv)
}

/// What `status` needs: also every Namespace and Service (bindings may cross namespaces) and
/// the routes and policies that can attach.
pub async fn for_status(client: &Client, namespace: Option<&str>) -> Result<Inventory, Error> {
    let mut inv = for_list(client, namespace).await?;
    inv.namespaces = list(client, &typed::<Namespace>(), None, false).await?;
    inv.services = list(client, &typed::<Service>(), None, false).await?;
    for kind in AttachKind::ALL {
        if let Some(api) = attach_api(kind) {
            let objects = list(client, &api, None, true).await?;
            inv.attachable.insert(kind, objects);
        }
    }
    inv.sort();
    Ok(inv)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_attaching_kind_has_an_api() {
        for k in AttachKind::ALL {
            let api = attach_api(k).expect("watched kind");
            assert_eq!(api.kind, k.kind());
        }
        assert_eq!(
            attach_api(AttachKind::AuthorizationPolicy).map(|a| a.api_version),
            Some("security.istio.io/v1".to_string())
        );
    }
}

//! Releases Istio DestinationRules a Rollout no longer uses: when a Rollout stops naming the
//! DestinationRule it managed (its `trafficRouting` or `destinationRule` removed, or another one
//! named) or is deleted, the managed-by annotation and the `rollouts-pod-template-hash` labels
//! injected into the subsets are removed (Argo's Istio controller `syncDestinationRule`).
//!
//! DestinationRules are watched (when the CRD is served) and each one annotated as managed is
//! checked against its Rollout as the API server has it, so a release missed while the
//! controller was down happens when it starts again.

use std::sync::Arc;

use kube::{
    Api, ResourceExt,
    api::{ApiResource, DynamicObject, PostParams},
    runtime::{controller::Action as Requeue, reflector::ObjectRef, reflector::Store},
};
use shared_types::{
    constants::{field_manager, keys},
    rollout::Rollout,
};
use tracing::info;

use crate::{Context, Error};

/// The DestinationRule a Rollout routes with, if any.
pub fn referenced(rollout: &Rollout) -> Option<&str> {
    rollout
        .spec
        .strategy
        .canary
        .as_ref()?
        .traffic_routing
        .as_ref()?
        .istio
        .as_ref()?
        .destination_rule
        .as_ref()
        .map(|dr| dr.name.as_str())
}

/// DestinationRules in the store marked as managed by this Rollout that it no longer names
/// (all of them once it is deleted).
pub fn to_release(
    store: &Store<DynamicObject>,
    resource: &ApiResource,
    rollout: &Rollout,
) -> Vec<ObjectRef<DynamicObject>> {
    let namespace = rollout.namespace();
    let name = rollout.name_any();
    let keep = if rollout.metadata.deletion_timestamp.is_some() {
        None
    } else {
        referenced(rollout)
    };
    store
        .state()
        .into_iter()
        .filter(|dr| {
            dr.namespace() == namespace
                && dr.annotations().get(keys::MANAGED_BY_ROLLOUTS) == Some(&name)
                && Some(dr.name_any().as_str()) != keep
        })
        .map(|dr| ObjectRef::from_obj_with(&*dr, resource.clone()))
        .collect()
}

/// Reconciles one DestinationRule: released when the Rollout its annotation names does not
/// exist or does not name it.
pub async fn reconcile(dr: Arc<DynamicObject>, ctx: Arc<Context>) -> Result<Requeue, Error> {
    if !ctx.leader.is_leader() {
        return Ok(Requeue::await_change());
    }
    let Some(owner) = dr.annotations().get(keys::MANAGED_BY_ROLLOUTS) else {
        return Ok(Requeue::await_change());
    };
    let namespace = dr.namespace().unwrap_or_default();
    let rollouts: Api<Rollout> = Api::namespaced(ctx.client.clone(), &namespace);
    // The API server, not the cache: the cache may still hold a Rollout being deleted.
    let still_used = match rollouts.get_opt(owner).await {
        Ok(Some(rollout)) => {
            rollout.metadata.deletion_timestamp.is_none() && referenced(&rollout) == Some(&dr.name_any())
        }
        Ok(None) => false,
        // A Rollout we cannot parse is left alone: it may well still use the object.
        Err(kube::Error::SerdeError(_)) => true,
        Err(e) => return Err(Error::Api(e)),
    };
    if still_used {
        return Ok(Requeue::await_change());
    }
    let value = serde_json::to_value(&*dr).map_err(Error::Serialize)?;
    let released = crate::traffic::istio::release_destination_rule(&value);
    if released != value {
        let obj: DynamicObject = serde_json::from_value(released).map_err(Error::Serialize)?;
        let api: Api<DynamicObject> = Api::namespaced_with(ctx.client.clone(), &namespace, &resource(&ctx));
        let params = PostParams {
            field_manager: Some(field_manager::ROLLOUT_CONTROLLER.into()),
            ..Default::default()
        };
        api.replace(&dr.name_any(), &params, &obj)
            .await
            .map_err(Error::Api)?;
        info!(destinationrule = %dr.name_any(), rollout = %owner, "released DestinationRule no longer used by its Rollout");
    }
    Ok(Requeue::await_change())
}

/// The DestinationRule API resource in the configured Istio version.
pub fn resource(ctx: &Context) -> ApiResource {
    ctx.config.istio_resource("DestinationRule")
}

//! Releases Services a Rollout no longer manages: when the Rollout is deleted or stops naming
//! the Service, the managed-by annotation and the injected pod-template-hash selector are
//! removed so the Service selects all pods of the app again (Argo's service controller).

use std::sync::Arc;

use k8s_openapi::api::core::v1::Service;
use kube::{
    Api, ResourceExt,
    api::{ApiResource, DynamicObject, Patch, PatchParams},
    runtime::controller::Action as Requeue,
};
use serde_json::json;
use shared_types::constants::{field_manager, keys};
use tracing::info;

use crate::{Context, Error, plan::referenced_services};

/// Reconciles one Service.
pub async fn reconcile(service: Arc<Service>, ctx: Arc<Context>) -> Result<Requeue, Error> {
    if !ctx.leader.is_leader() {
        return Ok(Requeue::await_change());
    }
    let Some(owner) = service.annotations().get(keys::MANAGED_BY_ROLLOUTS) else {
        return Ok(Requeue::await_change());
    };
    let namespace = service.namespace().unwrap_or_default();
    // Ask the API server rather than our cache: the cache holds only this instance's Rollouts
    // and may still show a Rollout whose deletion is what brought us here.
    {
        let rollouts: Api<DynamicObject> = Api::namespaced_with(
            ctx.client.clone(),
            &namespace,
            &ApiResource::erase::<shared_types::rollout::Rollout>(&()),
        );
        // A Rollout being deleted (held by its finalizer) no longer uses the Service.
        if let Some(rollout) = rollouts
            .get_opt(owner)
            .await
            .map_err(Error::Api)?
            .filter(|r| r.metadata.deletion_timestamp.is_none())
        {
            let spec = rollout.data.get("spec").cloned().unwrap_or_default();
            let typed: Option<shared_types::rollout::RolloutSpec> = serde_json::from_value(spec).ok();
            let referenced = typed.is_none_or(|spec| {
                let ro = shared_types::rollout::Rollout::new(owner, spec);
                referenced_services(&ro)
                    .iter()
                    .any(|(_, s)| *s == service.name_any())
            });
            if referenced {
                return Ok(Requeue::await_change());
            }
        }
    }
    let api: Api<Service> = Api::namespaced(ctx.client.clone(), &namespace);
    let patch = json!({
        "metadata": {"resourceVersion": service.resource_version(), "annotations": {keys::MANAGED_BY_ROLLOUTS: null}},
        "spec": {"selector": {keys::POD_TEMPLATE_HASH: null}},
    });
    let params = PatchParams {
        field_manager: Some(field_manager::ROLLOUT_CONTROLLER.into()),
        ..Default::default()
    };
    api.patch(&service.name_any(), &params, &Patch::Merge(&patch))
        .await
        .map_err(Error::Api)?;
    info!(service = %service.name_any(), "released Service no longer managed by a Rollout");
    Ok(Requeue::await_change())
}

//! The thin IO around [`crate::plan`]: gather what the plan needs from the caches, run it, and
//! execute its actions against the API server.

use std::{collections::BTreeMap, sync::Arc, time::Instant};

use k8s_openapi::{
    api::{
        apps::v1::ReplicaSet,
        core::v1::{Pod, Service},
        networking::v1::Ingress,
    },
    jiff::Timestamp,
};
use kube::{
    Api, Resource, ResourceExt,
    api::{
        ApiResource, DeleteParams, DynamicObject, EvictParams, ListParams, Patch, PatchParams, PostParams,
    },
    core::DeserializeGuard,
    core::GroupVersionKind,
    runtime::controller::Action as Requeue,
};
use serde_json::{Value, json};
use shared_runtime::events::{EventType, Occurrence};
use shared_types::{
    constants::{condition_type, event_reason, field_manager, keys, message, reason},
    rollout::Rollout,
    validation::selector_matches,
};
use tracing::{debug, info, warn};

use crate::{
    Context, Error,
    metrics::RolloutLabels,
    plan::{Action, Observed, Plan, ReplicaSetUpdate, plan, referenced_services},
    replicaset as rsutil,
};

/// Reconciles one Rollout.
pub async fn reconcile(guard: Arc<DeserializeGuard<Rollout>>, ctx: Arc<Context>) -> Result<Requeue, Error> {
    let started = Instant::now();
    let (namespace, name) = match &guard.0 {
        Ok(r) => (r.namespace().unwrap_or_default(), r.name_any()),
        Err(invalid) => (
            invalid.metadata.namespace.clone().unwrap_or_default(),
            invalid.metadata.name.clone().unwrap_or_default(),
        ),
    };
    let labels = RolloutLabels { namespace, name };
    let guard = match &guard.0 {
        Ok(rollout) => match caught_up(&guard, rollout, &ctx).await {
            Some(fresh) => fresh,
            None => {
                // Still not there: look again soon without holding a worker (the watch event
                // carrying our write may also have been merged into the trigger of this run).
                debug!(rollout = %labels.name, "caches do not show our last writes yet");
                return Ok(Requeue::requeue(std::time::Duration::from_millis(200)));
            }
        },
        Err(_) => guard,
    };
    let result = match &guard.0 {
        Ok(rollout) => reconcile_rollout(rollout, &ctx).await,
        Err(invalid) => report_malformed(invalid, &ctx).await,
    };
    ctx.metrics.observe(
        &labels,
        started.elapsed(),
        result.as_ref().err().map(Error::category),
    );
    if result.is_ok() {
        ctx.backoff.succeeded(&crate::controller::backoff_key(&guard));
    }
    result
}

async fn reconcile_rollout(rollout: &Rollout, ctx: &Context) -> Result<Requeue, Error> {
    if rollout.metadata.deletion_timestamp.is_some() {
        return Ok(Requeue::await_change());
    }
    // Planning against half-filled caches would see ReplicaSets and Services as missing (and
    // try to recreate or report them); wait for the initial lists.
    let synced = async {
        let rs = ctx.replica_sets.wait_until_ready().await;
        let svc = ctx.services.wait_until_ready().await;
        rs.is_ok() && svc.is_ok()
    };
    if !tokio::time::timeout(std::time::Duration::from_secs(30), synced)
        .await
        .unwrap_or(false)
    {
        return Err(Error::Startup("ReplicaSet and Service caches are not synced yet"));
    }
    let namespace = rollout.namespace().unwrap_or_default();
    let uid = rollout.uid().unwrap_or_default();
    let replica_sets = gather_replica_sets(rollout, &namespace, &uid, ctx).await?;
    let services: BTreeMap<String, Service> = referenced_services(rollout)
        .into_iter()
        .filter_map(|(_, svc)| {
            let key = kube::runtime::reflector::ObjectRef::new(&svc).within(&namespace);
            ctx.services.get(&key).map(|s| (svc, (*s).clone()))
        })
        .collect();
    let pods = if crate::plan::Ctx::restart_pending(rollout) || crate::ephemeral::in_use(rollout) {
        list_pods(rollout, &namespace, ctx).await?
    } else {
        Vec::new()
    };
    let (virtual_services, destination_rule, ingresses) =
        gather_traffic_objects(rollout, &namespace, ctx).await?;
    let workload = gather_workload(rollout, &namespace, ctx).await?;
    let observed = Observed {
        rollout: rollout.clone(),
        replica_sets,
        services,
        pods,
        virtual_services,
        destination_rule,
        ingresses,
        workload,
        now: Timestamp::now(),
    };
    let plan = plan(&observed);
    execute(rollout, &plan, ctx).await?;
    Ok(match plan.requeue_after {
        Some(after) => Requeue::requeue(after),
        // A fallback resync keeps the controller eventually consistent if a watch event is lost.
        None => Requeue::requeue(ctx.config.resync),
    })
}

/// The Rollout as the caches show it once they include this process's last writes to it and
/// its ReplicaSets (see [`crate::expectations`]): usually at once; right after a write, within
/// the milliseconds its watch events take. None if they still lag after a short wait (a
/// worker is not held longer: under load the events take longer and the workers are needed).
async fn caught_up(
    guard: &Arc<DeserializeGuard<Rollout>>,
    rollout: &Rollout,
    ctx: &Context,
) -> Option<Arc<DeserializeGuard<Rollout>>> {
    const WAIT: std::time::Duration = std::time::Duration::from_millis(50);
    const POLL: std::time::Duration = std::time::Duration::from_millis(10);
    let namespace = rollout.namespace().unwrap_or_default();
    let uid = rollout.uid().unwrap_or_default();
    let key = kube::runtime::reflector::ObjectRef::from_obj(&**guard);
    let deadline = Instant::now() + WAIT;
    let mut latest = guard.clone();
    loop {
        if let Ok(current) = &latest.0 {
            let view = CachedView {
                rollout: current,
                namespace: &namespace,
                ctx,
            };
            if ctx.expectations.satisfied(&uid, &view) {
                return Some(latest);
            }
        }
        if Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(POLL).await;
        // Deleted meanwhile: nothing left to wait for.
        latest = ctx.rollouts.get(&key)?;
    }
}

/// The caches as [`crate::expectations::Expectations`] reads them.
struct CachedView<'a> {
    rollout: &'a Rollout,
    namespace: &'a str,
    ctx: &'a Context,
}

impl crate::expectations::CacheView for CachedView<'_> {
    fn rollout_version(&self) -> Option<String> {
        self.rollout.resource_version()
    }

    fn replica_set_version(&self, name: &str) -> Option<String> {
        let key = kube::runtime::reflector::ObjectRef::new(name).within(self.namespace);
        self.ctx
            .replica_sets
            .get(&key)
            .and_then(|rs| rs.resource_version())
    }
}

/// ReplicaSets controlled by the Rollout, adopting orphans whose labels match its selector.
async fn gather_replica_sets(
    rollout: &Rollout,
    namespace: &str,
    uid: &str,
    ctx: &Context,
) -> Result<Vec<ReplicaSet>, Error> {
    let selector = rollout.spec.selector.clone().unwrap_or_default();
    let api: Api<ReplicaSet> = Api::namespaced(ctx.client.clone(), namespace);
    let mut out = Vec::new();
    for rs in ctx.replica_sets.state() {
        if rs.namespace().as_deref() != Some(namespace) || rs.metadata.deletion_timestamp.is_some() {
            continue;
        }
        if rsutil::is_owned_by(&rs, uid) {
            out.push((*rs).clone());
        } else if !rsutil::has_controller(&rs)
            && selector_matches(&selector, rs.metadata.labels.as_ref().unwrap_or(&BTreeMap::new()))
        {
            let owner = rsutil::owner_reference(rollout);
            let patch = json!({
                "metadata": {
                    "resourceVersion": rs.resource_version(),
                    "ownerReferences": [owner],
                }
            });
            let adopted = api
                .patch(&rs.name_any(), &patch_params(), &Patch::Merge(&patch))
                .await
                .map_err(Error::Api)?;
            info!(replicaset = %adopted.name_any(), "adopted orphan ReplicaSet");
            out.push(adopted);
        }
    }
    out.sort_by_key(|rs| rs.metadata.creation_timestamp.clone().map(|t| t.0));
    Ok(out)
}

type TrafficObjects = (BTreeMap<String, Value>, Option<Value>, BTreeMap<String, Ingress>);

/// The Istio and Ingress objects the Rollout's traffic routing names (missing ones are absent).
async fn gather_traffic_objects(
    rollout: &Rollout,
    namespace: &str,
    ctx: &Context,
) -> Result<TrafficObjects, Error> {
    let mut virtual_services = BTreeMap::new();
    let mut destination_rule = None;
    let mut ingresses = BTreeMap::new();
    let Some(tr) = rollout
        .spec
        .strategy
        .canary
        .as_ref()
        .and_then(|c| c.traffic_routing.as_ref())
    else {
        return Ok((virtual_services, destination_rule, ingresses));
    };
    if let Some(istio) = &tr.istio {
        for vs_ref in crate::traffic::plan::virtual_services(istio) {
            let (name, ns) = crate::traffic::istio::parse_virtual_service_ref(&vs_ref.name, namespace);
            let api: Api<DynamicObject> = Api::namespaced_with(
                ctx.client.clone(),
                &ns,
                &ctx.config.istio_resource("VirtualService"),
            );
            if let Some(obj) = get_missing_ok(&api, &name).await? {
                virtual_services.insert(
                    vs_ref.name.clone(),
                    serde_json::to_value(obj).unwrap_or(Value::Null),
                );
            }
        }
        if let Some(dr) = &istio.destination_rule {
            let api: Api<DynamicObject> = Api::namespaced_with(
                ctx.client.clone(),
                namespace,
                &ctx.config.istio_resource("DestinationRule"),
            );
            destination_rule = get_missing_ok(&api, &dr.name)
                .await?
                .map(|o| serde_json::to_value(o).unwrap_or(Value::Null));
        }
    }
    if tr.nginx.is_some() {
        let api: Api<Ingress> = Api::namespaced(ctx.client.clone(), namespace);
        let rollout_name = rollout.name_any();
        for stable in crate::traffic::plan::stable_ingresses(tr) {
            let canary = crate::traffic::nginx::canary_ingress_name(&rollout_name, &stable);
            for name in [stable, canary] {
                if let Some(ing) = get_missing_ok(&api, &name).await? {
                    ingresses.insert(name, ing);
                }
            }
        }
    }
    Ok((virtual_services, destination_rule, ingresses))
}

/// After a Rollout is deleted: route all traffic to the stable Service/subset again and release
/// the DestinationRule. Failures are logged; there is nothing left to retry against.
pub async fn restore_traffic(rollout: &Rollout, ctx: &Context) {
    let Some(canary) = rollout.spec.strategy.canary.as_ref() else {
        return;
    };
    let Some(istio) = canary.traffic_routing.as_ref().and_then(|tr| tr.istio.as_ref()) else {
        return;
    };
    let namespace = rollout.namespace().unwrap_or_default();
    let managed = canary
        .traffic_routing
        .as_ref()
        .and_then(|tr| tr.managed_routes.clone())
        .unwrap_or_default();
    let split = crate::traffic::plan::split(istio, canary, rollout);
    for vs_ref in crate::traffic::plan::virtual_services(istio) {
        let (name, ns) = crate::traffic::istio::parse_virtual_service_ref(&vs_ref.name, &namespace);
        let api: Api<DynamicObject> = Api::namespaced_with(
            ctx.client.clone(),
            &ns,
            &ctx.config.istio_resource("VirtualService"),
        );
        let result = async {
            let Some(vs) = get_missing_ok(&api, &name).await? else {
                return Ok(());
            };
            let value = serde_json::to_value(&vs).map_err(Error::Serialize)?;
            let restored = crate::traffic::istio::restore_stable(&value, vs_ref, &managed, &split)
                .map_err(|e| Error::Traffic(e.to_string()))?;
            if restored != value {
                let obj: DynamicObject = serde_json::from_value(restored).map_err(Error::Serialize)?;
                api.replace(&name, &post_params(), &obj)
                    .await
                    .map_err(Error::Api)?;
                info!(virtualservice = %name, "routed all traffic to stable after Rollout deletion");
            }
            Ok::<(), Error>(())
        };
        if let Err(e) = result.await {
            warn!(virtualservice = %name, error = %e, "cannot restore VirtualService after Rollout deletion");
        }
    }
    if let Some(dr_ref) = &istio.destination_rule {
        let api: Api<DynamicObject> = Api::namespaced_with(
            ctx.client.clone(),
            &namespace,
            &ctx.config.istio_resource("DestinationRule"),
        );
        let result = async {
            let Some(dr) = get_missing_ok(&api, &dr_ref.name).await? else {
                return Ok(());
            };
            let value = serde_json::to_value(&dr).map_err(Error::Serialize)?;
            let released = crate::traffic::istio::release_destination_rule(&value);
            if released != value {
                let obj: DynamicObject = serde_json::from_value(released).map_err(Error::Serialize)?;
                api.replace(&dr_ref.name, &post_params(), &obj)
                    .await
                    .map_err(Error::Api)?;
            }
            Ok::<(), Error>(())
        };
        if let Err(e) = result.await {
            warn!(destinationrule = %dr_ref.name, error = %e, "cannot release DestinationRule after Rollout deletion");
        }
    }
}

/// The object `spec.workloadRef` names, as JSON (absent when it does not exist).
async fn gather_workload(rollout: &Rollout, namespace: &str, ctx: &Context) -> Result<Option<Value>, Error> {
    let Some(reference) = &rollout.spec.workload_ref else {
        return Ok(None);
    };
    let kind = reference.kind.clone().unwrap_or_default();
    let Some((group, version, plural)) = crate::workload::resource(&kind) else {
        return Ok(None);
    };
    let resource = ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, &kind), plural);
    let api: Api<DynamicObject> = Api::namespaced_with(ctx.client.clone(), namespace, &resource);
    let object = get_missing_ok(&api, reference.name.as_deref().unwrap_or_default()).await?;
    object
        .map(|o| serde_json::to_value(o).map_err(Error::Serialize))
        .transpose()
}

/// GET that treats 404 (and a kind the server does not serve) as absent.
async fn get_missing_ok<K>(api: &Api<K>, name: &str) -> Result<Option<K>, Error>
where
    K: Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    match api.get(name).await {
        Ok(obj) => Ok(Some(obj)),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(None),
        Err(e) => Err(Error::Api(e)),
    }
}

/// Pods selected by the Rollout (only needed while a restart is pending).
async fn list_pods(rollout: &Rollout, namespace: &str, ctx: &Context) -> Result<Vec<Pod>, Error> {
    let selector = rollout
        .spec
        .selector
        .as_ref()
        .map(crate::canary::format_selector)
        .unwrap_or_default();
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), namespace);
    Ok(api
        .list(&ListParams::default().labels(&selector))
        .await
        .map_err(Error::Api)?
        .items)
}

fn post_params() -> PostParams {
    PostParams {
        field_manager: Some(field_manager::ROLLOUT_CONTROLLER.into()),
        ..Default::default()
    }
}

fn patch_params() -> PatchParams {
    PatchParams {
        field_manager: Some(field_manager::ROLLOUT_CONTROLLER.into()),
        ..Default::default()
    }
}

/// Executes the plan's actions in order, then its status and events.
async fn execute(rollout: &Rollout, plan: &Plan, ctx: &Context) -> Result<(), Error> {
    let namespace = rollout.namespace().unwrap_or_default();
    let name = rollout.name_any();
    let rollouts: Api<Rollout> = Api::namespaced(ctx.client.clone(), &namespace);
    let replica_sets: Api<ReplicaSet> = Api::namespaced(ctx.client.clone(), &namespace);
    let services: Api<Service> = Api::namespaced(ctx.client.clone(), &namespace);
    // Writes to the Rollout itself move its resourceVersion; later writes must use the new one.
    let mut resource_version = rollout.resource_version();
    let uid = rollout.uid().unwrap_or_default();
    let rollout_written = |before: &Option<String>, updated: &Rollout| {
        if let Some(before) = before
            && updated.resource_version().as_ref() != Some(before)
        {
            ctx.expectations.rollout_written(&uid, before);
        }
    };
    for action in &plan.actions {
        debug!(?action, "executing");
        match action {
            Action::DefaultSpecReplicas => {
                let patch =
                    json!({"metadata": {"resourceVersion": resource_version}, "spec": {"replicas": 1}});
                let updated = rollouts
                    .patch(&name, &patch_params(), &Patch::Merge(&patch))
                    .await
                    .map_err(Error::Api)?;
                rollout_written(&resource_version, &updated);
                resource_version = updated.resource_version();
            }
            Action::SetRolloutRevision(revision) => {
                let patch = json!({"metadata": {"resourceVersion": resource_version, "annotations": {keys::REVISION: revision}}});
                let updated = rollouts
                    .patch(&name, &patch_params(), &Patch::Merge(&patch))
                    .await
                    .map_err(Error::Api)?;
                rollout_written(&resource_version, &updated);
                resource_version = updated.resource_version();
            }
            Action::CreateReplicaSet(rs) => create_replica_set(rollout, rs, &replica_sets, ctx).await?,
            Action::UpdateReplicaSet(update) => {
                let updated = replica_sets
                    .patch(
                        &update.name,
                        &patch_params(),
                        &Patch::Merge(&update_patch(update)),
                    )
                    .await
                    .map_err(Error::Api)?;
                if updated.resource_version() != update.resource_version {
                    ctx.expectations.replica_set_written(
                        &uid,
                        &update.name,
                        update.resource_version.as_deref(),
                    );
                }
            }
            Action::DeleteReplicaSet(rs) => {
                info!(replicaset = %rs, "deleting old ReplicaSet beyond revisionHistoryLimit");
                match replica_sets.delete(rs, &DeleteParams::background()).await {
                    Ok(_) => {
                        let key = kube::runtime::reflector::ObjectRef::new(rs).within(&namespace);
                        let before = ctx.replica_sets.get(&key).and_then(|r| r.resource_version());
                        ctx.expectations.replica_set_written(
                            &uid,
                            rs,
                            Some(before.as_deref().unwrap_or_default()),
                        );
                    }
                    Err(kube::Error::Api(e)) if e.code == 404 => {}
                    Err(e) => return Err(Error::Api(e)),
                }
            }
            Action::AnnotateRollout { key, value } => {
                let patch =
                    json!({"metadata": {"resourceVersion": resource_version, "annotations": {key: value}}});
                let updated = rollouts
                    .patch(&name, &patch_params(), &Patch::Merge(&patch))
                    .await
                    .map_err(Error::Api)?;
                rollout_written(&resource_version, &updated);
                resource_version = updated.resource_version();
            }
            Action::ScaleWorkload {
                name: deployment,
                replicas,
            } => {
                let api: Api<k8s_openapi::api::apps::v1::Deployment> =
                    Api::namespaced(ctx.client.clone(), &namespace);
                let patch = json!({"spec": {"replicas": replicas}});
                api.patch(deployment, &patch_params(), &Patch::Merge(&patch))
                    .await
                    .map_err(Error::Api)?;
                info!(deployment = %deployment, replicas, "scaled the referenced Deployment (workloadRef.scaleDown)");
            }
            Action::PatchPodMetadata { pod, change } => {
                let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &namespace);
                let patch = json!({"metadata": metadata_patch(change)});
                match pods.patch(pod, &patch_params(), &Patch::Merge(&patch)).await {
                    Ok(_) => {}
                    // The pod went away meanwhile; its replacement gets the template's metadata.
                    Err(kube::Error::Api(e)) if e.code == 404 => {}
                    Err(e) => return Err(Error::Api(e)),
                }
            }
            Action::EvictPod(pod) => {
                let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &namespace);
                match pods.evict(pod, &EvictParams::default()).await {
                    Ok(_) => info!(pod = %pod, "evicted pod for restart"),
                    // 429: a PodDisruptionBudget forbids it now; the restart retries later.
                    Err(kube::Error::Api(e)) if e.code == 429 || e.code == 404 => {
                        debug!(pod = %pod, code = e.code, "eviction not possible now")
                    }
                    Err(e) => return Err(Error::Api(e)),
                }
            }
            Action::UpdateVirtualService(reference, object) => {
                let (vs_name, vs_namespace) =
                    crate::traffic::istio::parse_virtual_service_ref(reference, &namespace);
                let api: Api<DynamicObject> = Api::namespaced_with(
                    ctx.client.clone(),
                    &vs_namespace,
                    &ctx.config.istio_resource("VirtualService"),
                );
                let obj: DynamicObject =
                    serde_json::from_value((**object).clone()).map_err(Error::Serialize)?;
                api.replace(&vs_name, &post_params(), &obj)
                    .await
                    .map_err(Error::Api)?;
            }
            Action::UpdateDestinationRule(object) => {
                let api: Api<DynamicObject> = Api::namespaced_with(
                    ctx.client.clone(),
                    &namespace,
                    &ctx.config.istio_resource("DestinationRule"),
                );
                let obj: DynamicObject =
                    serde_json::from_value((**object).clone()).map_err(Error::Serialize)?;
                api.replace(&obj.name_any(), &post_params(), &obj)
                    .await
                    .map_err(Error::Api)?;
            }
            Action::ApplyIngress(ingress) => {
                let api: Api<Ingress> = Api::namespaced(ctx.client.clone(), &namespace);
                let mut desired = (**ingress).clone();
                desired.metadata.resource_version = None;
                desired.metadata.managed_fields = None;
                let params = PatchParams::apply(field_manager::ROLLOUT_CONTROLLER).force();
                api.patch(&desired.name_any(), &params, &Patch::Apply(&desired))
                    .await
                    .map_err(Error::Api)?;
            }
            Action::DeleteIngress(name) => {
                let api: Api<Ingress> = Api::namespaced(ctx.client.clone(), &namespace);
                match api.delete(name, &DeleteParams::background()).await {
                    Ok(_) => {}
                    Err(kube::Error::Api(e)) if e.code == 404 => {}
                    Err(e) => return Err(Error::Api(e)),
                }
            }
            Action::SwitchService { service, hash } => {
                let patch = json!({
                    "metadata": {"annotations": {keys::MANAGED_BY_ROLLOUTS: name}},
                    "spec": {"selector": {keys::POD_TEMPLATE_HASH: hash}},
                });
                services
                    .patch(service, &patch_params(), &Patch::Merge(&patch))
                    .await
                    .map_err(Error::Api)?;
            }
        }
    }
    if let Some(status) = &plan.status {
        let old = serde_json::to_value(rollout.status.clone().unwrap_or_default()).unwrap_or(Value::Null);
        let new = serde_json::to_value(status).unwrap_or(Value::Null);
        if let Some(diff) = merge_patch_diff(&old, &new) {
            // A merge patch (as Argo does) rather than server-side apply: the plugin writes some
            // of these fields too (pauseConditions, abort, promoteFull) and they must be
            // cleared no matter which manager set them. resourceVersion guards against a
            // concurrent user change being overwritten.
            let patch = json!({"metadata": {"resourceVersion": resource_version}, "status": diff});
            let updated = rollouts
                .patch_status(&name, &patch_params(), &Patch::Merge(&patch))
                .await
                .map_err(Error::Api)?;
            rollout_written(&resource_version, &updated);
        }
    }
    // Only once the status that ended them is written, so a conflict does not count twice.
    for finished in &plan.finished_durations {
        ctx.metrics.observe_duration(finished);
    }
    publish_events(rollout, plan, ctx);
    if plan.invalid_spec {
        return Err(Error::InvalidSpec);
    }
    Ok(())
}

async fn create_replica_set(
    rollout: &Rollout,
    rs: &ReplicaSet,
    api: &Api<ReplicaSet>,
    ctx: &Context,
) -> Result<(), Error> {
    match api
        .create(
            &PostParams {
                field_manager: Some(field_manager::ROLLOUT_CONTROLLER.into()),
                ..Default::default()
            },
            rs,
        )
        .await
    {
        Ok(_) => {
            ctx.expectations
                .replica_set_written(&rollout.uid().unwrap_or_default(), &rs.name_any(), None);
            Ok(())
        }
        Err(kube::Error::Api(e)) if e.code == 409 => {
            // Same name exists: reuse it when it is ours with the same template, else bump the
            // collision count so the next hash differs.
            let existing = api.get(&rs.name_any()).await.map_err(Error::Api)?;
            let ours = rsutil::is_owned_by(&existing, &rollout.uid().unwrap_or_default());
            // The stored template carries the API server's defaults; compare what they mean.
            let normalized = |t: &Option<k8s_openapi::api::core::v1::PodTemplateSpec>| {
                crate::template::normalized(&t.clone().unwrap_or_default())
            };
            let same = normalized(&existing.spec.template) == normalized(&rs.spec.template);
            if ours && same {
                return Ok(());
            }
            let count = rollout
                .status
                .as_ref()
                .and_then(|s| s.collision_count)
                .unwrap_or(0)
                + 1;
            warn!(replicaset = %rs.name_any(), count, "hash collision; bumping collisionCount");
            let rollouts: Api<Rollout> =
                Api::namespaced(ctx.client.clone(), &rollout.namespace().unwrap_or_default());
            let patch = json!({"status": {"collisionCount": count}});
            rollouts
                .patch_status(&rollout.name_any(), &patch_params(), &Patch::Merge(&patch))
                .await
                .map_err(Error::Api)?;
            Err(Error::HashCollision(rs.name_any()))
        }
        Err(kube::Error::Api(e)) => {
            let rs_name = rs.name_any();
            let msg = message::replica_set_create_error(&rs_name, &e.message);
            record(rollout, ctx, true, reason::REPLICA_SET_CREATE_ERROR, &msg);
            Err(Error::Api(kube::Error::Api(e)))
        }
        Err(e) => Err(Error::Api(e)),
    }
}

/// JSON merge patch of one ReplicaSet update.
fn update_patch(update: &ReplicaSetUpdate) -> Value {
    let mut metadata = serde_json::Map::new();
    if let Some(rv) = &update.resource_version {
        metadata.insert("resourceVersion".into(), json!(rv));
    }
    if !update.annotations.is_empty() {
        let annotations: serde_json::Map<String, Value> = update
            .annotations
            .iter()
            .map(|(k, v)| (k.clone(), v.as_ref().map_or(Value::Null, |v| json!(v))))
            .collect();
        metadata.insert("annotations".into(), Value::Object(annotations));
    }
    let mut spec = serde_json::Map::new();
    if let Some(change) = &update.template_metadata {
        spec.insert("template".into(), json!({"metadata": metadata_patch(change)}));
    }
    if let Some(r) = update.replicas {
        spec.insert("replicas".into(), json!(r));
    }
    if let Some(m) = update.min_ready_seconds {
        spec.insert("minReadySeconds".into(), json!(m));
    }
    let mut patch = serde_json::Map::new();
    patch.insert("metadata".into(), Value::Object(metadata));
    if !spec.is_empty() {
        patch.insert("spec".into(), Value::Object(spec));
    }
    Value::Object(patch)
}

/// `{labels, annotations}` of a merge patch (null removes a key).
fn metadata_patch(change: &crate::plan::MetadataChange) -> Value {
    let map = |m: &BTreeMap<String, Option<String>>| {
        Value::Object(
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_ref().map_or(Value::Null, |v| json!(v))))
                .collect(),
        )
    };
    json!({"labels": map(&change.labels), "annotations": map(&change.annotations)})
}

/// The RFC 7386 merge patch turning `old` into `new`, or None when they are equal.
pub fn merge_patch_diff(old: &Value, new: &Value) -> Option<Value> {
    match (old, new) {
        (Value::Object(o), Value::Object(n)) => {
            let mut patch = serde_json::Map::new();
            for (k, nv) in n {
                match o.get(k) {
                    Some(ov) => {
                        if let Some(d) = merge_patch_diff(ov, nv) {
                            patch.insert(k.clone(), d);
                        }
                    }
                    None => {
                        patch.insert(k.clone(), nv.clone());
                    }
                }
            }
            for k in o.keys() {
                if !n.contains_key(k) {
                    patch.insert(k.clone(), Value::Null);
                }
            }
            (!patch.is_empty()).then_some(Value::Object(patch))
        }
        (o, n) if o == n => None,
        (_, n) => Some(n.clone()),
    }
}

fn publish_events(rollout: &Rollout, plan: &Plan, ctx: &Context) {
    for event in &plan.events {
        record(rollout, ctx, event.warning, &event.reason, &event.message);
    }
}

/// Records an Event on the Rollout (queued; failures are logged, never fatal).
fn record(rollout: &Rollout, ctx: &Context, warning: bool, reason: &str, note: &str) {
    info!(reason, message = note, "event");
    ctx.events.publish(Occurrence {
        regarding: rollout.object_ref(&()),
        type_: if warning {
            EventType::Warning
        } else {
            EventType::Normal
        },
        reason: reason.into(),
        message: note.into(),
    });
}

/// A Rollout whose JSON does not fit the schema we understand: say so on the object and move on.
async fn report_malformed(
    invalid: &kube::core::error_boundary::InvalidObject,
    ctx: &Context,
) -> Result<Requeue, Error> {
    let name = invalid.metadata.name.clone().unwrap_or_default();
    let namespace = invalid.metadata.namespace.clone().unwrap_or_default();
    // Our own status write changes the object and brings it back here: report each generation once.
    let key = (
        invalid.metadata.uid.clone().unwrap_or_default(),
        invalid.metadata.generation,
        invalid.error.clone(),
    );
    {
        let mut reported = ctx
            .malformed_reported
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if !reported.insert(key) {
            return Ok(Requeue::await_change());
        }
    }
    warn!(rollout = %name, namespace = %namespace, error = %invalid.error, "cannot parse Rollout");
    let api: Api<Rollout> = Api::namespaced(ctx.client.clone(), &namespace);
    let msg = message::invalid_spec(&name, &invalid.error);
    // Second precision, like the API server's own timestamps.
    let now = Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
    let patch = json!({"status": {
        "phase": "Degraded",
        "message": format!("{}: {msg}", reason::INVALID_SPEC),
        "conditions": [{
            "type": condition_type::INVALID_SPEC, "status": "True", "reason": reason::INVALID_SPEC,
            "message": msg, "lastUpdateTime": now, "lastTransitionTime": now,
        }],
    }});
    if let Err(e) = api
        .patch_status(&name, &patch_params(), &Patch::Merge(&patch))
        .await
    {
        warn!(rollout = %name, error = %e, "cannot report the parse error on the Rollout status");
    }
    let reference = k8s_openapi::api::core::v1::ObjectReference {
        api_version: Some(Rollout::api_version(&()).into_owned()),
        kind: Some(Rollout::kind(&()).into_owned()),
        name: Some(name.clone()),
        namespace: Some(namespace),
        uid: invalid.metadata.uid.clone(),
        ..Default::default()
    };
    ctx.events.publish(Occurrence {
        regarding: reference,
        type_: EventType::Warning,
        reason: event_reason::INVALID_SPEC.into(),
        message: msg,
    });
    // Nothing to do until the object changes.
    Ok(Requeue::await_change())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7386: what the API server does with a JSON merge patch.
    fn apply_merge_patch(target: &Value, patch: &Value) -> Value {
        match patch {
            Value::Object(p) => {
                let mut out = match target {
                    Value::Object(t) => t.clone(),
                    _ => serde_json::Map::new(),
                };
                for (k, v) in p {
                    if v.is_null() {
                        out.remove(k);
                    } else {
                        let merged = apply_merge_patch(out.get(k).unwrap_or(&Value::Null), v);
                        out.insert(k.clone(), merged);
                    }
                }
                Value::Object(out)
            }
            other => other.clone(),
        }
    }

    /// A small deterministic generator of status-like JSON (objects nest, no nulls: a status
    /// never holds null, and merge patches cannot express one).
    struct Gen(u64);
    impl Gen {
        fn next(&mut self, n: u64) -> u64 {
            self.0 = self
                .0
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (self.0 >> 33) % n
        }
        fn value(&mut self, depth: u32) -> Value {
            match self.next(if depth == 0 { 4 } else { 6 }) {
                0 => json!(self.next(3) == 0),
                1 => json!(self.next(5)),
                2 => json!(["a", "b", "c"][usize::try_from(self.next(3)).unwrap_or(0)]),
                3 => Value::Array((0..self.next(3)).map(|_| json!(self.next(4))).collect()),
                _ => {
                    let keys = ["abort", "phase", "canary", "weights", "stableRS", "conditions"];
                    let mut map = serde_json::Map::new();
                    for _ in 0..self.next(4) {
                        let k = keys[usize::try_from(self.next(6)).unwrap_or(0)];
                        map.insert(k.into(), self.value(depth - 1));
                    }
                    Value::Object(map)
                }
            }
        }
    }

    #[test]
    fn merge_patch_diff_applied_to_the_old_status_gives_the_new_one() {
        let mut g = Gen(7);
        for case in 0..5000 {
            let old = Value::Object(g.value(3).as_object().cloned().unwrap_or_default());
            let new = Value::Object(g.value(3).as_object().cloned().unwrap_or_default());
            match merge_patch_diff(&old, &new) {
                Some(patch) => assert_eq!(
                    apply_merge_patch(&old, &patch),
                    new,
                    "case {case}: {old} -> {new} via {patch}"
                ),
                None => assert_eq!(old, new, "case {case}: no patch for a change"),
            }
        }
    }

    #[test]
    fn merge_patch_diff_sets_changes_and_nulls_removals() {
        let old = json!({"a": 1, "b": {"c": 2, "d": 3}, "e": [1]});
        let new = json!({"a": 1, "b": {"c": 5}, "e": [1, 2], "f": true});
        assert_eq!(
            merge_patch_diff(&old, &new),
            Some(json!({"b": {"c": 5, "d": null}, "e": [1, 2], "f": true}))
        );
        assert_eq!(merge_patch_diff(&old, &old), None);
    }

    #[test]
    fn update_patch_carries_resource_version_and_removals() {
        let mut update = ReplicaSetUpdate {
            name: "rs".into(),
            resource_version: Some("7".into()),
            replicas: Some(3),
            ..Default::default()
        };
        update.annotations.insert("scale-down-deadline".into(), None);
        update
            .annotations
            .insert("rollout.argoproj.io/desired-replicas".into(), Some("5".into()));
        assert_eq!(
            update_patch(&update),
            json!({
                "metadata": {"resourceVersion": "7", "annotations": {"scale-down-deadline": null, "rollout.argoproj.io/desired-replicas": "5"}},
                "spec": {"replicas": 3}
            })
        );
    }
}

//! The thin IO around [`crate::plan`]: gather what the plan needs from the caches, run it, and
//! execute its actions against the API server.

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::Arc,
    time::Instant,
};

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
    api::{DeleteParams, DynamicObject, EvictParams, ListParams, Patch, PatchParams, PostParams},
    core::DeserializeGuard,
    runtime::{
        controller::Action as Requeue,
        reflector::{ObjectRef, Store},
    },
};
use serde_json::{Value, json};
use shared_runtime::events::{EventType, Occurrence};
use shared_types::{
    analysis::AnalysisRun,
    constants::{condition_type, event_reason, field_manager, keys, message, reason},
    experiment::Experiment,
    merge_patch,
    object_meta::{controller_reference, has_controller, is_owned_by},
    rollout::Rollout,
};
use tracing::{debug, info, warn};

use crate::{
    Context, Error,
    metrics::RolloutLabels,
    plan::{Action, Observed, Plan, ReplicaSetUpdate, plan, referenced_services},
};

/// Reconciles one Rollout.
pub async fn reconcile(guard: Arc<DeserializeGuard<Rollout>>, ctx: Arc<Context>) -> Result<Requeue, Error> {
    // A standby only keeps its caches warm; it reconciles everything once it leads.
    if !ctx.leader.is_leader() {
        return Ok(Requeue::await_change());
    }
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
    ctx.metrics.reconcile.observe(
        &labels,
        started.elapsed(),
        result.as_ref().err().map(Error::category),
    );
    if result.is_ok() {
        ctx.failures.succeeded(&crate::controller::backoff_key(&guard));
    }
    result
}

async fn reconcile_rollout(rollout: &Rollout, ctx: &Context) -> Result<Requeue, Error> {
    // Planning against half-filled caches would see ReplicaSets and Services as missing (and
    // try to recreate or report them); wait for the initial lists.
    let synced = shared_runtime::synced::Synced::all(ctx.planning_synced.clone());
    if !tokio::time::timeout(std::time::Duration::from_secs(30), synced)
        .await
        .unwrap_or(false)
    {
        return Err(Error::Startup("ReplicaSet and Service caches are not synced yet"));
    }
    let observed = observe(rollout, ctx).await?;
    let plan = plan(&observed);
    execute(rollout, &plan, ctx).await?;
    Ok(match plan.requeue_after {
        Some(after) => Requeue::requeue(after),
        // A fallback resync keeps the controller eventually consistent if a watch event is lost.
        None => Requeue::requeue(ctx.config.resync),
    })
}

/// Everything the plan looks at, from the watch caches (Pods, only needed while a restart or
/// ephemeral metadata is pending, are listed).
async fn observe(rollout: &Rollout, ctx: &Context) -> Result<Observed, Error> {
    let namespace = rollout.namespace().unwrap_or_default();
    let workload = ctx.workloads.get(rollout).await?;
    // A workloadRef Rollout has no selector of its own: its ReplicaSets and pods are found with
    // the referenced object's (none while that is missing: then nothing is adopted or listed).
    let selector = crate::workload::resolve(rollout, workload.as_ref())
        .ok()
        .and_then(|r| r.spec.selector)
        .map(kube::core::Selector::try_from)
        .and_then(Result::ok);
    let (replica_sets, orphans, taken_replica_set_names) =
        replica_sets_of(rollout, &namespace, selector.as_ref(), ctx);
    let services: BTreeMap<String, Service> = referenced_services(rollout)
        .into_iter()
        .filter_map(|(_, svc)| {
            let key = ObjectRef::new(&svc).within(&namespace);
            ctx.services.get(&key).map(|s| (svc, (*s).clone()))
        })
        .collect();
    let pods = match &selector {
        Some(selector) if crate::plan::Ctx::restart_pending(rollout) || crate::ephemeral::in_use(rollout) => {
            let api: Api<Pod> = Api::namespaced(ctx.client.clone(), &namespace);
            api.list(&ListParams::default().labels(&selector.to_string()))
                .await
                .map_err(Error::Api)?
                .items
        }
        _ => Vec::new(),
    };
    let (virtual_services, destination_rule, ingresses) = traffic_objects(rollout, &namespace, ctx);
    let uid = rollout.uid().unwrap_or_default();
    // Templates are copied only for a Rollout that runs analyses or experiments.
    let (analysis_templates, cluster_analysis_templates) = if uses_templates(rollout) {
        (
            ctx.analysis_templates
                .state()
                .into_iter()
                .filter(|t| t.namespace().as_deref() == Some(namespace.as_str()))
                .map(|t| (t.name_any(), (*t).clone()))
                .collect(),
            ctx.cluster_analysis_templates
                .state()
                .into_iter()
                .map(|t| (t.name_any(), (*t).clone()))
                .collect(),
        )
    } else {
        (BTreeMap::new(), BTreeMap::new())
    };
    Ok(Observed {
        rollout: rollout.clone(),
        replica_sets,
        orphans,
        taken_replica_set_names,
        services,
        pods,
        virtual_services,
        destination_rule,
        ingresses,
        workload,
        analysis_runs: owned(&ctx.analysis_runs, &namespace, &uid),
        experiments: owned(&ctx.experiments, &namespace, &uid),
        analysis_templates,
        cluster_analysis_templates,
        now: Timestamp::now(),
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

/// The cached objects in `namespace` whose controller is the Rollout `uid`.
fn owned<K>(store: &Store<K>, namespace: &str, uid: &str) -> Vec<K>
where
    K: kube::Resource + Clone + 'static,
    K::DynamicType: Clone + Eq + std::hash::Hash,
{
    store
        .state()
        .into_iter()
        .filter(|obj| obj.meta().namespace.as_deref() == Some(namespace) && is_owned_by(obj.meta(), uid))
        .map(|obj| (*obj).clone())
        .collect()
}

/// Whether the Rollout runs analyses or experiments (and so needs the analysis templates).
fn uses_templates(rollout: &Rollout) -> bool {
    let strategy = &rollout.spec.strategy;
    strategy
        .blue_green
        .as_ref()
        .is_some_and(|bg| bg.pre_promotion_analysis.is_some() || bg.post_promotion_analysis.is_some())
        || strategy.canary.as_ref().is_some_and(|c| {
            c.analysis.is_some()
                || c.steps
                    .iter()
                    .flatten()
                    .any(|step| step.analysis.is_some() || step.experiment.is_some())
        })
}

/// The Rollout's ReplicaSets (oldest first), the orphans its selector matches, and the names of
/// other ReplicaSets its new ReplicaSet's name could collide with.
fn replica_sets_of(
    rollout: &Rollout,
    namespace: &str,
    selector: Option<&kube::core::Selector>,
    ctx: &Context,
) -> (Vec<ReplicaSet>, Vec<ReplicaSet>, BTreeSet<String>) {
    use kube::core::SelectorExt;
    let uid = rollout.uid().unwrap_or_default();
    let prefix = format!("{}-", rollout.name_any());
    let (mut owned, mut orphans, mut taken) = (Vec::new(), Vec::new(), BTreeSet::new());
    for rs in ctx.replica_sets.state() {
        if rs.namespace().as_deref() != Some(namespace) {
            continue;
        }
        let gone = rs.metadata.deletion_timestamp.is_some();
        if is_owned_by(&rs.metadata, &uid) {
            if !gone {
                owned.push((*rs).clone());
            }
        } else if !gone
            && !has_controller(&rs.metadata)
            && selector.is_some_and(|s| !s.selects_all() && s.matches(rs.labels()))
        {
            orphans.push((*rs).clone());
        } else if rs.name_any().starts_with(&prefix) {
            taken.insert(rs.name_any());
        }
    }
    owned.sort_by_key(|rs| rs.metadata.creation_timestamp.clone().map(|t| t.0));
    (owned, orphans, taken)
}

type TrafficObjects = (BTreeMap<String, Value>, Option<Value>, BTreeMap<String, Ingress>);

/// The Istio and Ingress objects the Rollout's traffic routing names, from the caches (missing
/// ones, and kinds the API server does not serve, are absent).
fn traffic_objects(rollout: &Rollout, namespace: &str, ctx: &Context) -> TrafficObjects {
    let mut virtual_services = BTreeMap::new();
    let mut destination_rule = None;
    let Some(tr) = rollout
        .spec
        .strategy
        .canary
        .as_ref()
        .and_then(|c| c.traffic_routing.as_ref())
    else {
        return (virtual_services, destination_rule, BTreeMap::new());
    };
    let cached = |store: &Option<Store<DynamicObject>>, kind: &str, name: &str, ns: &str| {
        let key = ObjectRef::new_with(name, ctx.config.istio_resource(kind)).within(ns);
        store
            .as_ref()?
            .get(&key)
            .and_then(|obj| serde_json::to_value(&*obj).ok())
    };
    if let Some(istio) = &tr.istio {
        for vs_ref in crate::traffic::plan::virtual_services(istio) {
            let (name, ns) = crate::traffic::istio::parse_virtual_service_ref(&vs_ref.name, namespace);
            if let Some(vs) = cached(&ctx.virtual_services, "VirtualService", &name, &ns) {
                virtual_services.insert(vs_ref.name.clone(), vs);
            }
        }
        if let Some(dr) = &istio.destination_rule {
            destination_rule = cached(&ctx.destination_rules, "DestinationRule", &dr.name, namespace);
        }
    }
    let ingresses = crate::traffic::plan::ingress_names(rollout)
        .into_iter()
        .filter_map(|name| {
            let ing = ctx.ingresses.get(&ObjectRef::new(&name).within(namespace))?;
            Some((name, (*ing).clone()))
        })
        .collect();
    (virtual_services, destination_rule, ingresses)
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
            Action::AdoptReplicaSet {
                name: rs_name,
                resource_version: rs_version,
            } => {
                let patch = json!({
                    "metadata": {
                        "resourceVersion": rs_version,
                        "ownerReferences": [controller_reference(rollout)],
                    }
                });
                let adopted = replica_sets
                    .patch(rs_name, &patch_params(), &Patch::Merge(&patch))
                    .await
                    .map_err(Error::Api)?;
                ctx.expectations
                    .replica_set_written(&uid, rs_name, rs_version.as_deref());
                info!(replicaset = %adopted.name_any(), "adopted orphan ReplicaSet");
            }
            Action::AddFinalizer | Action::RemoveFinalizer => {
                let mut finalizers: Vec<String> = rollout
                    .metadata
                    .finalizers
                    .clone()
                    .unwrap_or_default()
                    .into_iter()
                    .filter(|f| f != keys::TRAFFIC_FINALIZER)
                    .collect();
                if matches!(action, Action::AddFinalizer) {
                    finalizers.push(keys::TRAFFIC_FINALIZER.into());
                }
                let patch =
                    json!({"metadata": {"resourceVersion": resource_version, "finalizers": finalizers}});
                match rollouts
                    .patch(&name, &patch_params(), &Patch::Merge(&patch))
                    .await
                {
                    Ok(updated) => {
                        rollout_written(&resource_version, &updated);
                        resource_version = updated.resource_version();
                    }
                    // Removing the last finalizer of a deleted Rollout may let it go at once.
                    Err(kube::Error::Api(e)) if e.code == 404 => return Ok(()),
                    Err(e) => return Err(Error::Api(e)),
                }
            }
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
            Action::CreateAnalysisRun(run) => {
                let api: Api<AnalysisRun> = Api::namespaced(ctx.client.clone(), &namespace);
                match api.create(&post_params(), run).await {
                    Ok(_) => {}
                    // The cache missed it: ours to reuse under Argo's collision rule, else the
                    // next reconcile (seeing it) picks the next name.
                    Err(kube::Error::Api(e)) if e.code == 409 => {
                        let existing = api.get(&run.name_any()).await.map_err(Error::Api)?;
                        if !crate::analysis::is_reusable(&existing, run, &uid) {
                            return Err(Error::Api(kube::Error::Api(e)));
                        }
                    }
                    Err(e) => return Err(Error::Api(e)),
                }
            }
            Action::CreateExperiment(experiment) => {
                let api: Api<Experiment> = Api::namespaced(ctx.client.clone(), &namespace);
                match api.create(&post_params(), experiment).await {
                    Ok(_) => {}
                    Err(kube::Error::Api(e)) if e.code == 409 => {
                        let existing = api.get(&experiment.name_any()).await.map_err(Error::Api)?;
                        if !crate::experiment::is_reusable(&existing, experiment, &uid) {
                            return Err(Error::Api(kube::Error::Api(e)));
                        }
                    }
                    Err(e) => return Err(Error::Api(e)),
                }
            }
            Action::TerminateAnalysisRun(run) => {
                let api: Api<AnalysisRun> = Api::namespaced(ctx.client.clone(), &namespace);
                terminate(&api, run).await?;
            }
            Action::TerminateExperiment(experiment) => {
                let api: Api<Experiment> = Api::namespaced(ctx.client.clone(), &namespace);
                terminate(&api, experiment).await?;
            }
            Action::DeleteAnalysisRun(run) => {
                let api: Api<AnalysisRun> = Api::namespaced(ctx.client.clone(), &namespace);
                delete_missing_ok(&api, run).await?;
            }
            Action::DeleteExperiment(experiment) => {
                let api: Api<Experiment> = Api::namespaced(ctx.client.clone(), &namespace);
                delete_missing_ok(&api, experiment).await?;
            }
        }
    }
    if let Some(status) = &plan.status {
        let old = serde_json::to_value(rollout.status.clone().unwrap_or_default()).unwrap_or(Value::Null);
        let new = serde_json::to_value(status).unwrap_or(Value::Null);
        if let Some(diff) = merge_patch::diff(&old, &new) {
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

/// `{"spec":{"terminate":true}}` on an AnalysisRun or Experiment (gone already: nothing to stop).
async fn terminate<K>(api: &Api<K>, name: &str) -> Result<(), Error>
where
    K: Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let patch = json!({"spec": {"terminate": true}});
    match api.patch(name, &patch_params(), &Patch::Merge(&patch)).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        Err(e) => Err(Error::Api(e)),
    }
}

/// DELETE that treats 404 as done.
async fn delete_missing_ok<K>(api: &Api<K>, name: &str) -> Result<(), Error>
where
    K: Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    match api.delete(name, &DeleteParams::background()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        Err(e) => Err(Error::Api(e)),
    }
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
        // The name is taken by a ReplicaSet the cache does not show yet: the next reconcile
        // sees it (reused if ours, else a collision counted in the status).
        Err(kube::Error::Api(e)) if e.code == 409 => Err(Error::HashCollision(rs.name_any())),
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

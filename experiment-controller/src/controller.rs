//! Wiring and I/O around [`crate::decide`]: the Experiment loop on the shared runtime (triggered
//! by Experiments and the ReplicaSets, Services and AnalysisRuns they control), the writes a
//! decision asks for, status writes as merge patches, Events and metrics.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use futures::StreamExt;
use k8s_openapi::{
    api::{apps::v1::ReplicaSet, core::v1::Service},
    jiff::Timestamp,
};
use kube::{
    Api, Client, Resource, ResourceExt,
    api::{DeleteParams, Patch, PatchParams, PostParams},
    runtime::{
        Controller, WatchStreamExt,
        controller::{Action as Requeue, Config as ControllerConfig},
        reflector::Store,
        watcher,
    },
};
use shared_runtime::{
    events::{EventPublisher, EventType, Occurrence},
    flags::CommonArgs,
    leader::{LeaderArgs, LeaderGate},
    metrics::ReconcileMetrics,
    runtime::{Failure, FailurePolicy, Runtime, object_key, observe_reconcile},
    synced::{self, Synced},
};
use shared_types::{
    analysis::{AnalysisPhase, AnalysisRun, AnalysisTemplate, ClusterAnalysisTemplate},
    analysis_run::{Templates, collision_name},
    constants::{event_reason, field_manager, keys},
    experiment::{EXPERIMENT_TEMPLATE_NAME_ANNOTATION, Experiment, ExperimentStatus, TemplateStatusCode},
    object_meta,
};
use tracing::{debug, info, warn};

use crate::{
    Error,
    decide::{Action, Decision, Inputs, decide},
};

/// Lease of the experiment controller (`-<instance-id>` appended when set). Not the rollout
/// controller's `argo-rollouts-controller-lock`: both run side by side, each with its leader.
pub const EXPERIMENT_CONTROLLER_LEASE: &str = "argo-rollouts-experiment-controller-lock";

/// Flags of the experiment controller.
#[derive(clap::Parser, Clone, Debug)]
#[command(
    name = "experiment-controller",
    version,
    about = "Runs argoproj.io Experiments"
)]
pub struct Args {
    /// Flags shared by all controllers.
    #[command(flatten)]
    pub common: CommonArgs,
    /// Leader election.
    #[command(flatten)]
    pub leader: LeaderArgs,
    /// Experiments reconciled in parallel.
    #[arg(long, env = "ARGO_ROLLOUTS_EXPERIMENT_THREADS", default_value_t = 10)]
    pub experiment_threads: u16,
}

/// Everything a reconcile needs.
pub struct Context {
    client: Client,
    events: EventPublisher,
    metrics: ReconcileMetrics,
    failures: FailurePolicy,
    leader: LeaderGate,
    replica_sets: Store<ReplicaSet>,
    services: Store<Service>,
    runs: Store<AnalysisRun>,
    templates: Store<AnalysisTemplate>,
    cluster_templates: Store<ClusterAnalysisTemplate>,
    synced: Vec<Synced>,
}

/// Runs the controller until SIGTERM/SIGINT.
pub async fn run(args: Args) -> Result<(), Error> {
    let mut rt = Runtime::start(&args.common, "experiment-controller", "rollouts-controller").await?;
    rt.require_served::<Experiment>().await?;
    rt.require_served::<AnalysisRun>().await?;
    let leader = rt.elect(&args.leader, EXPERIMENT_CONTROLLER_LEASE)?;
    let instance = || watcher::Config::default().labels(&rt.instance_selector);

    let (experiments, experiment_events, experiments_synced) =
        synced::cached(rt.api::<Experiment>(), instance());
    let (replica_sets, rs_events, rs_synced) = synced::cached(
        rt.api::<ReplicaSet>(),
        watcher::Config::default().labels(keys::POD_TEMPLATE_HASH),
    );
    let (services, service_events, services_synced) =
        synced::cached(rt.api::<Service>(), watcher::Config::default());
    let (runs, run_events, runs_synced) = synced::cached(rt.api::<AnalysisRun>(), instance());
    let (templates, template_events, templates_synced) =
        synced::cached(rt.api::<AnalysisTemplate>(), instance());
    let (cluster_templates, cluster_template_events, cluster_templates_synced) =
        synced::cached(Api::<ClusterAnalysisTemplate>::all(rt.client.clone()), instance());
    let synced = vec![
        experiments_synced,
        rs_synced,
        services_synced,
        runs_synced,
        templates_synced,
        cluster_templates_synced,
    ];
    let ctx = Arc::new(Context {
        client: rt.client.clone(),
        events: rt.events.clone(),
        metrics: crate::metrics::register(&mut rt.registry, experiments.clone()),
        failures: FailurePolicy::new(rt.events.clone(), event_reason::RECONCILE_ERROR),
        leader: leader.clone(),
        replica_sets,
        services,
        runs,
        templates,
        cluster_templates,
        synced: synced.clone(),
    });
    let work = Controller::for_stream(experiment_events.applied_objects(), experiments)
        .with_config(ControllerConfig::default().concurrency(args.experiment_threads))
        .reconcile_all_on(leader.on_leading())
        .owns_stream(rs_events.applied_objects())
        .owns_stream(service_events.applied_objects())
        .owns_stream(run_events.applied_objects())
        .graceful_shutdown_on(rt.shutdown_signal())
        .run(reconcile, error_policy, ctx)
        .for_each(|res| async move {
            match res {
                Ok((obj, _)) => debug!(experiment = %obj.name, "reconciled"),
                Err(kube::runtime::controller::Error::ReconcilerFailed(
                    ref e @ Error::Api(kube::Error::Api(ref s)),
                    ref obj,
                )) if s.code == 409 => debug!(experiment = %obj.name, error = %e, "conflict; retrying"),
                Err(e) => warn!(error = %e, "reconcile failed"),
            }
        });
    // The template caches are only read; drive their watches alongside the loop.
    let drive = futures::future::join(
        template_events.for_each(|_| futures::future::ready(())),
        cluster_template_events.for_each(|_| futures::future::ready(())),
    );
    let all = async move {
        tokio::select! {
            () = work => {},
            _ = drive => warn!("an analysis template watch ended"),
        }
    };
    rt.run(Synced::all(synced), all).await?;
    Ok(())
}

async fn reconcile(ex: Arc<Experiment>, ctx: Arc<Context>) -> Result<Requeue, Error> {
    if !ctx.leader.is_leader() || ex.metadata.deletion_timestamp.is_some() {
        return Ok(Requeue::await_change());
    }
    // Decide only on complete caches: a missing ReplicaSet would otherwise be created again.
    if !Synced::all(ctx.synced.clone()).await {
        return Ok(Requeue::await_change());
    }
    observe_reconcile(
        &*ex,
        &ctx.metrics,
        &ctx.failures,
        Error::category,
        reconcile_experiment(&ex, &ctx),
    )
    .await
}

/// The objects of kind `K` in the experiment's namespace that it controls, by template name.
fn controlled_by_template<K>(store: &Store<K>, ex: &Experiment) -> BTreeMap<String, K>
where
    K: Resource<DynamicType = ()> + Clone + 'static,
{
    let (namespace, uid) = (ex.namespace(), ex.uid().unwrap_or_default());
    store
        .state()
        .into_iter()
        .filter(|o| o.meta().namespace == namespace && object_meta::is_owned_by(o.meta(), &uid))
        .filter(|o| {
            object_meta::annotation(o.meta(), shared_types::experiment::EXPERIMENT_NAME_ANNOTATION)
                == Some(ex.name_any().as_str())
        })
        .filter_map(|o| {
            let template =
                object_meta::annotation(o.meta(), EXPERIMENT_TEMPLATE_NAME_ANNOTATION)?.to_string();
            Some((template, (*o).clone()))
        })
        .collect()
}

async fn reconcile_experiment(ex: &Arc<Experiment>, ctx: &Arc<Context>) -> Result<Requeue, Error> {
    let namespace = ex.namespace().unwrap_or_default();
    let uid = ex.uid().unwrap_or_default();
    let replica_sets = controlled_by_template(&ctx.replica_sets, ex);
    let services = controlled_by_template(&ctx.services, ex);
    let runs: Vec<AnalysisRun> = ctx
        .runs
        .state()
        .into_iter()
        .filter(|r| {
            r.namespace().as_deref() == Some(&namespace) && object_meta::is_owned_by(&r.metadata, &uid)
        })
        .map(|r| (*r).clone())
        .collect();
    let namespaced: BTreeMap<String, AnalysisTemplate> = ctx
        .templates
        .state()
        .into_iter()
        .filter(|t| t.namespace().as_deref() == Some(&namespace))
        .map(|t| (t.name_any(), (*t).clone()))
        .collect();
    let cluster: BTreeMap<String, ClusterAnalysisTemplate> = ctx
        .cluster_templates
        .state()
        .into_iter()
        .map(|t| (t.name_any(), (*t).clone()))
        .collect();
    let now = Timestamp::now();
    let mut decision = decide(&Inputs {
        experiment: ex,
        replica_sets: &replica_sets,
        services: &services,
        runs: &runs,
        templates: Templates {
            namespaced: &namespaced,
            cluster: &cluster,
        },
        now,
    });
    for action in std::mem::take(&mut decision.actions) {
        apply(ex, action, &mut decision, ctx).await?;
    }
    write_status(ex, &decision.status, ctx).await?;
    for event in &decision.events {
        ctx.events.publish(Occurrence {
            regarding: ex.object_ref(&()),
            type_: if event.warning {
                EventType::Warning
            } else {
                EventType::Normal
            },
            reason: event.reason.clone(),
            message: event.message.clone(),
        });
    }
    for (owner, reason, message) in &decision.rollout_events {
        ctx.events.publish(Occurrence {
            regarding: k8s_openapi::api::core::v1::ObjectReference {
                api_version: Some(owner.api_version.clone()),
                kind: Some(owner.kind.clone()),
                name: Some(owner.name.clone()),
                namespace: ex.namespace(),
                uid: Some(owner.uid.clone()),
                ..Default::default()
            },
            type_: EventType::Warning,
            reason: reason.clone(),
            message: message.clone(),
        });
    }
    Ok(match decision.wake_at {
        Some(at) => Requeue::requeue(
            Duration::try_from(at.duration_since(now))
                .unwrap_or_default()
                .max(Duration::from_millis(100)),
        ),
        None => Requeue::await_change(),
    })
}

fn params() -> PostParams {
    PostParams {
        field_manager: Some(field_manager::EXPERIMENT_CONTROLLER.into()),
        ..Default::default()
    }
}

fn patch_params() -> PatchParams {
    PatchParams {
        field_manager: Some(field_manager::EXPERIMENT_CONTROLLER.into()),
        ..Default::default()
    }
}

fn api_code(e: &kube::Error) -> Option<u16> {
    match e {
        kube::Error::Api(s) => Some(s.code),
        _ => None,
    }
}

/// A request the API server refused for good (invalid object, forbidden): reported in the
/// status instead of retried.
fn is_permanent(e: &kube::Error) -> bool {
    matches!(api_code(e), Some(400 | 403 | 422))
}

fn set_template_error(status: &mut ExperimentStatus, template: &str, message: String) {
    if let Some(ts) = status
        .template_statuses
        .iter_mut()
        .flatten()
        .find(|t| t.name == template)
    {
        ts.status = Some(TemplateStatusCode::Error);
        ts.message = Some(message);
    }
}

async fn apply(ex: &Experiment, action: Action, decision: &mut Decision, ctx: &Context) -> Result<(), Error> {
    let namespace = ex.namespace().unwrap_or_default();
    let uid = ex.uid().unwrap_or_default();
    let event = |decision: &mut Decision, reason: &str, message: String| {
        decision.events.push(crate::decide::Event {
            warning: false,
            reason: reason.into(),
            message,
        });
    };
    match action {
        Action::CreateReplicaSet {
            template,
            replica_set,
        } => {
            let api: Api<ReplicaSet> = Api::namespaced(ctx.client.clone(), &namespace);
            let name = replica_set.name_any();
            match api.create(&params(), &replica_set).await {
                // Created at 0 replicas: no Event, as in Argo (scaling up records one).
                Ok(_) => info!(experiment = %ex.name_any(), replica_set = %name, "created ReplicaSet"),
                Err(e) if api_code(&e) == Some(409) => {
                    let existing = api.get_opt(&name).await.map_err(Error::Api)?;
                    if !existing.is_some_and(|rs| object_meta::is_owned_by(&rs.metadata, &uid)) {
                        set_template_error(
                            &mut decision.status,
                            &template,
                            format!(
                                "Failed to create ReplicaSet for template '{template}': replicasets \"{name}\" already exists and belongs to another owner"
                            ),
                        );
                    }
                }
                Err(e) if is_permanent(&e) => set_template_error(
                    &mut decision.status,
                    &template,
                    format!("Failed to create ReplicaSet for template '{template}': {e}"),
                ),
                Err(e) => return Err(Error::Api(e)),
            }
        }
        Action::ScaleReplicaSet { name, from, to } => {
            let api: Api<ReplicaSet> = Api::namespaced(ctx.client.clone(), &namespace);
            let patch = serde_json::json!({"spec": {"replicas": to}});
            match api.patch(&name, &patch_params(), &Patch::Merge(&patch)).await {
                Ok(_) => {
                    let direction = if to > from { "up" } else { "down" };
                    event(
                        decision,
                        event_reason::SCALING_REPLICA_SET,
                        format!("Scaled {direction} ReplicaSet {name} from {from} to {to}"),
                    );
                }
                Err(e) if api_code(&e) == Some(404) => {}
                Err(e) => return Err(Error::Api(e)),
            }
        }
        Action::SetScaleDownDeadline { name, deadline } => {
            let api: Api<ReplicaSet> = Api::namespaced(ctx.client.clone(), &namespace);
            let value = deadline.strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
            let patch = serde_json::json!({"metadata": {"annotations": {keys::SCALE_DOWN_DEADLINE: value}}});
            match api.patch(&name, &patch_params(), &Patch::Merge(&patch)).await {
                Ok(_) => {}
                Err(e) if api_code(&e) == Some(404) => {}
                Err(e) => return Err(Error::Api(e)),
            }
        }
        Action::CreateService { template, service } => {
            let api: Api<Service> = Api::namespaced(ctx.client.clone(), &namespace);
            let name = service.name_any();
            match api.create(&params(), &service).await {
                Ok(_) => info!(experiment = %ex.name_any(), service = %name, "created Service"),
                Err(e) if api_code(&e) == Some(409) => {
                    let existing = api.get_opt(&name).await.map_err(Error::Api)?;
                    if !existing.is_some_and(|s| object_meta::is_owned_by(&s.metadata, &uid)) {
                        set_template_error(
                            &mut decision.status,
                            &template,
                            format!(
                                "Failed to create Service {name} for template '{template}': service {name} already exists and is not owned by experiment template {template}"
                            ),
                        );
                    }
                }
                Err(e) if is_permanent(&e) => set_template_error(
                    &mut decision.status,
                    &template,
                    format!("Failed to create Service {name} for template '{template}': {e}"),
                ),
                Err(e) => return Err(Error::Api(e)),
            }
        }
        Action::DeleteService { name, .. } => {
            let api: Api<Service> = Api::namespaced(ctx.client.clone(), &namespace);
            match api.delete(&name, &DeleteParams::background()).await {
                Ok(_) => info!(experiment = %ex.name_any(), service = %name, "deleted Service"),
                Err(e) if api_code(&e) == Some(404) => {}
                Err(e) => return Err(Error::Api(e)),
            }
        }
        Action::CreateAnalysisRun { analysis, run } => {
            create_run(ex, &analysis, *run, decision, ctx).await?;
        }
        Action::TerminateAnalysisRun { name } => {
            let api: Api<AnalysisRun> = Api::namespaced(ctx.client.clone(), &namespace);
            let patch = serde_json::json!({"spec": {"terminate": true}});
            match api.patch(&name, &patch_params(), &Patch::Merge(&patch)).await {
                Ok(_) => {}
                Err(e) if api_code(&e) == Some(404) => {}
                Err(e) => return Err(Error::Api(e)),
            }
        }
    }
    Ok(())
}

/// Creates an analysis's run; a name taken by a run of another owner moves on to `.1`, `.2`,
/// ...; a run of this experiment under the name is adopted (its creation was not recorded).
async fn create_run(
    ex: &Experiment,
    analysis: &str,
    run: AnalysisRun,
    decision: &mut Decision,
    ctx: &Context,
) -> Result<(), Error> {
    let namespace = ex.namespace().unwrap_or_default();
    let uid = ex.uid().unwrap_or_default();
    let api: Api<AnalysisRun> = Api::namespaced(ctx.client.clone(), &namespace);
    let base = run.name_any();
    let mut outcome: Result<String, String> = Err(format!("AnalysisRun names {base}.. are taken"));
    for n in 0..10 {
        let name = collision_name(&base, n);
        let mut candidate = run.clone();
        candidate.metadata.name = Some(name.clone());
        match api.create(&params(), &candidate).await {
            Ok(_) => {
                info!(experiment = %ex.name_any(), run = %name, "created AnalysisRun");
                outcome = Ok(name);
                break;
            }
            Err(e) if api_code(&e) == Some(409) => {
                let existing = api.get_opt(&name).await.map_err(Error::Api)?;
                if existing.is_some_and(|r| object_meta::is_owned_by(&r.metadata, &uid)) {
                    outcome = Ok(name);
                    break;
                }
            }
            Err(e) if is_permanent(&e) => {
                outcome = Err(e.to_string());
                break;
            }
            Err(e) => return Err(Error::Api(e)),
        }
    }
    if let Some(st) = decision
        .status
        .analysis_runs
        .iter_mut()
        .flatten()
        .find(|a| a.name == analysis)
    {
        match outcome {
            Ok(name) => st.analysis_run = name,
            Err(e) => {
                st.phase = AnalysisPhase::Error;
                st.message = Some(format!(
                    "Failed to create AnalysisRun for analysis '{analysis}': {e}"
                ));
            }
        }
    }
    Ok(())
}

/// Writes the decided status when it differs (a merge patch of the difference).
async fn write_status(ex: &Experiment, status: &ExperimentStatus, ctx: &Context) -> Result<(), Error> {
    let old = serde_json::to_value(ex.status.clone().unwrap_or_default()).map_err(Error::Serialize)?;
    let new = serde_json::to_value(status).map_err(Error::Serialize)?;
    let Some(diff) = shared_types::merge_patch::diff(&old, &new) else {
        return Ok(());
    };
    let api: Api<Experiment> = Api::namespaced(ctx.client.clone(), &ex.namespace().unwrap_or_default());
    let patch = serde_json::json!({
        "metadata": {"resourceVersion": ex.resource_version()},
        "status": diff,
    });
    api.patch_status(&ex.name_any(), &patch_params(), &Patch::Merge(&patch))
        .await
        .map_err(Error::Api)?;
    Ok(())
}

fn error_policy(ex: Arc<Experiment>, error: &Error, ctx: Arc<Context>) -> Requeue {
    let conflict = matches!(error, Error::Api(kube::Error::Api(e)) if e.code == 409);
    let wait = ctx.failures.failed(Failure {
        regarding: ex.object_ref(&()),
        key: &object_key(&*ex),
        category: error.category(),
        message: error.to_string(),
        report: !conflict,
    });
    Requeue::requeue(wait)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory, Parser};

    #[test]
    fn flags_parse_with_defaults_and_the_lease_is_its_own() {
        Args::command().debug_assert();
        let args = Args::try_parse_from(["experiment-controller"]).unwrap();
        assert_eq!(args.experiment_threads, 10);
        assert_ne!(
            EXPERIMENT_CONTROLLER_LEASE,
            shared_runtime::leader::ROLLOUT_CONTROLLER_LEASE
        );
        assert_eq!(
            shared_runtime::leader::lease_name(EXPERIMENT_CONTROLLER_LEASE, Some("blue")),
            "argo-rollouts-experiment-controller-lock-blue"
        );
    }
}

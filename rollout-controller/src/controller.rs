//! Wiring: flags, the shared [`Context`], and the three loops of this binary (the Rollout
//! controller and the controllers releasing Services and DestinationRules a Rollout no longer
//! uses) over the watches of [`crate::watches`], run on the shared runtime.

use std::{sync::Arc, time::Duration};

use futures::{FutureExt, Stream, StreamExt, future::BoxFuture, stream::BoxStream};
use k8s_openapi::{
    api::{apps::v1::ReplicaSet, core::v1::Service, networking::v1::Ingress},
    apimachinery::pkg::apis::meta::v1::Time,
    jiff::Timestamp,
};
use kube::{
    Client, Resource, ResourceExt,
    api::{ApiResource, DynamicObject},
    core::DeserializeGuard,
    runtime::{
        Controller,
        controller::{Action as Requeue, Config as ControllerConfig},
        reflector::{ObjectRef, Store},
        watcher,
    },
};
use shared_runtime::{
    flags::CommonArgs,
    leader::{LeaderArgs, LeaderGate, ROLLOUT_CONTROLLER_LEASE},
    runtime::{Failure, FailurePolicy, Runtime},
    synced::Synced,
};
use shared_types::{
    analysis::{AnalysisRun, AnalysisTemplate, ClusterAnalysisTemplate},
    constants::keys,
    experiment::Experiment,
    rollout::Rollout,
};
use tracing::{debug, warn};

use crate::{
    Error, metrics::Metrics, plan::referenced_services, reconcile, services, watches::Watches,
    workload::WorkloadWatches,
};

/// Flags of the rollout controller.
#[derive(clap::Parser, Clone, Debug)]
#[command(
    name = "rollout-controller",
    version,
    about = "Runs blue-green and canary updates of argoproj.io Rollouts"
)]
pub struct Args {
    /// Flags shared by all controllers.
    #[command(flatten)]
    pub common: CommonArgs,
    /// Leader election.
    #[command(flatten)]
    pub leader: LeaderArgs,
    /// Seconds between full resyncs of a Rollout when nothing else requeues it.
    #[arg(long, env = "ARGO_ROLLOUTS_ROLLOUT_RESYNC", default_value_t = 900)]
    pub rollout_resync: u64,
    /// API version of the Istio networking kinds (VirtualService, DestinationRule).
    #[arg(long, env = "ARGO_ROLLOUTS_ISTIO_API_VERSION", default_value = "v1alpha3")]
    pub istio_api_version: String,
    /// Rollouts reconciled in parallel. A reconcile mostly waits on the API server, so more
    /// in flight means less queueing: at 500 Rollouts changed at once, 10 (Argo's default) put
    /// the last new ReplicaSet 13 s after its image change, 50 put it under 1 s
    /// (e2e/bench/RESULTS.md).
    #[arg(long, env = "ARGO_ROLLOUTS_ROLLOUT_THREADS", default_value_t = 50)]
    pub rollout_threads: u16,
}

/// Settings the reconcilers read.
#[derive(Clone, Debug)]
pub struct Config {
    /// Fallback requeue interval.
    pub resync: Duration,
    /// Version of the `networking.istio.io` API to use.
    pub istio_api_version: String,
}

impl Config {
    /// The API resource of an Istio networking kind.
    pub fn istio_resource(&self, kind: &str) -> ApiResource {
        let gvk = kube::core::GroupVersionKind::gvk("networking.istio.io", &self.istio_api_version, kind);
        ApiResource::from_gvk_with_plural(&gvk, &format!("{}s", kind.to_lowercase()))
    }
}

/// Everything a reconcile needs, shared by all reconciles.
pub struct Context {
    /// API client.
    pub client: Client,
    /// Writes Events without holding up reconciles.
    pub events: shared_runtime::events::EventPublisher,
    /// Metrics.
    pub metrics: Metrics,
    /// Settings.
    pub config: Config,
    /// Cached Rollouts (of this instance).
    pub rollouts: Store<DeserializeGuard<Rollout>>,
    /// Cached ReplicaSets carrying the pod-template-hash label.
    pub replica_sets: Store<ReplicaSet>,
    /// Cached Services.
    pub services: Store<Service>,
    /// Whether the ReplicaSet and Service caches have listed their objects.
    pub planning_synced: Vec<Synced>,
    /// Cached Istio VirtualServices, None when the kind is not served.
    pub virtual_services: Option<Store<DynamicObject>>,
    /// Cached Istio DestinationRules, None when the kind is not served.
    pub destination_rules: Option<Store<DynamicObject>>,
    /// Cached Ingresses.
    pub ingresses: Store<Ingress>,
    /// Cached AnalysisRuns (of this instance).
    pub analysis_runs: Store<AnalysisRun>,
    /// Cached Experiments (of this instance).
    pub experiments: Store<Experiment>,
    /// Cached AnalysisTemplates.
    pub analysis_templates: Store<AnalysisTemplate>,
    /// Cached ClusterAnalysisTemplates.
    pub cluster_analysis_templates: Store<ClusterAnalysisTemplate>,
    /// Objects `spec.workloadRef` names, watched per kind from first use.
    pub workloads: WorkloadWatches,
    /// Whether this process leads: only the leader writes.
    pub leader: LeaderGate,
    /// Back-off and Warning Events after failed reconciles.
    pub failures: FailurePolicy,
    /// Writes not yet seen in the caches.
    pub expectations: crate::expectations::Expectations,
    /// Malformed Rollouts already reported, by (uid, generation, error).
    pub malformed_reported: std::sync::Mutex<std::collections::HashSet<(String, Option<i64>, String)>>,
}

/// Runs the controller until SIGTERM/SIGINT.
pub async fn run(args: Args) -> Result<(), Error> {
    let mut rt = Runtime::start(&args.common, "rollout-controller", "rollouts-controller").await?;
    rt.require_served::<Rollout>().await?;
    rt.require_served::<AnalysisRun>().await?;
    rt.require_served::<Experiment>().await?;
    let leader = rt.elect(&args.leader, ROLLOUT_CONTROLLER_LEASE)?;
    let config = Config {
        resync: Duration::from_secs(args.rollout_resync.max(1)),
        istio_api_version: args.istio_api_version.clone(),
    };
    let mut w = Watches::start(&rt, &config).await?;
    let ctx = Arc::new(Context::new(&mut rt, &w, config, leader));
    // Deletions are seen only by the Rollout watch itself (shared-stream subscribers get
    // changes); it hands the deleted Rollout's Services and DestinationRules to their loops.
    let (deleted_services, released_services) = futures::channel::mpsc::unbounded();
    let (deleted_drs, released_drs) = futures::channel::mpsc::unbounded();
    let rollouts = rollout_loop(&rt, &mut w, &ctx, args.rollout_threads);
    let services = service_release(&rt, &mut w, &ctx, released_services);
    let destination_rules = destination_rule_release(&rt, &mut w, &ctx, released_drs);
    let watch = on_rollout_events(take(&mut w.rollout_watch), &ctx, deleted_services, deleted_drs);
    let caches = futures::future::join_all(std::mem::take(&mut w.caches));
    let work = async move {
        // The loops drain on shutdown; the watches feeding them are dropped with them.
        tokio::select! {
            _ = futures::future::join3(rollouts, services, destination_rules) => {},
            () = watch => warn!("the Rollout watch ended"),
            _ = caches => warn!("a cache watch ended"),
        }
    };
    rt.run(Synced::all(std::mem::take(&mut w.synced)), work).await?;
    Ok(())
}

impl Context {
    fn new(rt: &mut Runtime, w: &Watches, config: Config, leader: LeaderGate) -> Self {
        Self {
            client: rt.client.clone(),
            events: rt.events.clone(),
            metrics: Metrics::register(&mut rt.registry, w.rollouts.clone()),
            config,
            rollouts: w.rollouts.clone(),
            replica_sets: w.replica_sets.clone(),
            planning_synced: w.planning_synced.clone(),
            services: w.services.clone(),
            virtual_services: w.virtual_services.clone(),
            destination_rules: w.destination_rules.clone(),
            ingresses: w.ingresses.clone(),
            analysis_runs: w.analysis_runs.clone(),
            experiments: w.experiments.clone(),
            analysis_templates: w.analysis_templates.clone(),
            cluster_analysis_templates: w.cluster_analysis_templates.clone(),
            workloads: WorkloadWatches::new(rt.client.clone(), rt.namespace.clone(), w.rollouts.clone()),
            leader,
            failures: FailurePolicy::new(
                rt.events.clone(),
                shared_types::constants::event_reason::RECONCILE_ERROR,
            ),
            expectations: Default::default(),
            malformed_reported: Default::default(),
        }
    }
}

/// Moves a stream out of [`Watches`] (each has one consumer).
fn take<T: Send + 'static>(stream: &mut BoxStream<'static, T>) -> BoxStream<'static, T> {
    std::mem::replace(stream, futures::stream::empty().boxed())
}

/// The Rollout loop: triggered by Rollouts, their ReplicaSets, AnalysisRuns and Experiments
/// (phase changes only), the Services, Ingresses and VirtualServices they name, and the objects
/// their workloadRefs name; everything again when this process becomes the leader.
fn rollout_loop(rt: &Runtime, w: &mut Watches, ctx: &Arc<Context>, threads: u16) -> BoxFuture<'static, ()> {
    let (services, ingresses) = (w.rollouts.clone(), w.rollouts.clone());
    let mut controller =
        Controller::for_shared_stream(take(&mut w.rollouts_for_reconcile), w.rollouts.clone())
            .with_config(ControllerConfig::default().concurrency(threads))
            .reconcile_all_on(ctx.leader.on_leading())
            .owns_stream(take(&mut w.replica_set_events))
            .owns_stream(take(&mut w.analysis_run_events))
            .owns_stream(take(&mut w.experiment_events))
            .reconcile_on(ctx.workloads.triggers())
            .watches_shared_stream(take(&mut w.services_for_rollouts), move |svc: Arc<Service>| {
                let name = svc.name_any();
                referencing(&services, svc.namespace().as_deref(), |r| {
                    referenced_services(r).iter().any(|(_, s)| *s == name)
                })
            })
            .watches_stream(take(&mut w.ingress_events), move |ing: Ingress| {
                let name = ing.name_any();
                referencing(&ingresses, ing.namespace().as_deref(), |r| {
                    crate::traffic::plan::ingress_names(r).contains(&name)
                })
            });
    if let Some(events) = w.virtual_service_events.take() {
        let rollouts = w.rollouts.clone();
        controller = controller.watches_stream_with(
            events,
            move |vs: DynamicObject| {
                let key = (vs.namespace().unwrap_or_default(), vs.name_any());
                referencing(&rollouts, None, |r| {
                    crate::traffic::plan::virtual_service_keys(r).contains(&key)
                })
            },
            ctx.config.istio_resource("VirtualService"),
        );
    }
    controller
        .graceful_shutdown_on(rt.shutdown_signal())
        .run(reconcile::reconcile, error_policy, ctx.clone())
        .for_each(|res| async move {
            match res {
                Ok((obj, _)) => debug!(rollout = %obj.name, "reconciled"),
                Err(kube::runtime::controller::Error::ReconcilerFailed(Error::InvalidSpec, obj)) => {
                    debug!(rollout = %obj.name, "invalid spec reported")
                }
                // Stale cache: retried with fresh data; not worth a warning.
                Err(kube::runtime::controller::Error::ReconcilerFailed(
                    ref e @ Error::Api(kube::Error::Api(ref s)),
                    ref obj,
                )) if s.code == 409 => debug!(rollout = %obj.name, error = %e, "conflict; retrying"),
                Err(e) => warn!(error = %e, "reconcile failed"),
            }
        })
        .boxed()
}

/// The loop releasing Services a Rollout no longer names (or that a deleted Rollout named).
fn service_release(
    rt: &Runtime,
    w: &mut Watches,
    ctx: &Arc<Context>,
    deleted: impl Stream<Item = ObjectRef<Service>> + Send + 'static,
) -> BoxFuture<'static, ()> {
    let managed = w.services.clone();
    Controller::for_shared_stream(take(&mut w.services_for_release), w.services.clone())
        .reconcile_on(deleted)
        .reconcile_all_on(ctx.leader.on_leading())
        .watches_shared_stream(
            take(&mut w.rollouts_for_services),
            move |guard: Arc<DeserializeGuard<Rollout>>| match &guard.0 {
                Ok(rollout) => services_to_release(&managed, rollout),
                Err(_) => Vec::new(),
            },
        )
        .graceful_shutdown_on(rt.shutdown_signal())
        .run(services::reconcile, retry_later, ctx.clone())
        .for_each(|res| async move {
            if let Err(e) = res {
                warn!(error = %e, "service release failed");
            }
        })
        .boxed()
}

/// The loop releasing DestinationRules a Rollout no longer names (none without Istio).
fn destination_rule_release(
    rt: &Runtime,
    w: &mut Watches,
    ctx: &Arc<Context>,
    deleted: impl Stream<Item = ObjectRef<DynamicObject>> + Send + 'static,
) -> BoxFuture<'static, ()> {
    let Some(controller) = w.destination_rule_release.take() else {
        // An unread subscriber would hold the shared Rollout watch back once its buffer fills.
        drop(take(&mut w.rollouts_for_destination_rules));
        return futures::future::ready(()).boxed();
    };
    let (store, resource) = (controller.store(), ctx.config.istio_resource("DestinationRule"));
    let rollouts = take(&mut w.rollouts_for_destination_rules);
    controller
        .reconcile_on(deleted)
        .reconcile_all_on(ctx.leader.on_leading())
        .watches_shared_stream(
            rollouts,
            move |guard: Arc<DeserializeGuard<Rollout>>| match &guard.0 {
                Ok(rollout) => crate::destination_rules::to_release(&store, &resource, rollout),
                Err(_) => Vec::new(),
            },
        )
        .graceful_shutdown_on(rt.shutdown_signal())
        .run(crate::destination_rules::reconcile, retry_later, ctx.clone())
        .for_each(|res| async move {
            if let Err(e) = res {
                warn!(error = %e, "DestinationRule release failed");
            }
        })
        .boxed()
}

/// Polls the Rollout watch; a deletion drops the per-Rollout state kept in memory and hands
/// the Services and DestinationRules the Rollout used to their release loops.
fn on_rollout_events(
    events: BoxStream<'static, Result<watcher::Event<DeserializeGuard<Rollout>>, watcher::Error>>,
    ctx: &Arc<Context>,
    services: futures::channel::mpsc::UnboundedSender<ObjectRef<Service>>,
    destination_rules: futures::channel::mpsc::UnboundedSender<ObjectRef<DynamicObject>>,
) -> BoxFuture<'static, ()> {
    let ctx = ctx.clone();
    events
        .for_each(move |event| {
            match event {
                Ok(watcher::Event::Delete(obj)) => {
                    ctx.expectations.forget(&obj.uid().unwrap_or_default());
                    ctx.metrics.reconcile.forget(&crate::metrics::RolloutLabels {
                        namespace: obj.namespace().unwrap_or_default(),
                        name: obj.name_any(),
                    });
                    if let Ok(rollout) = &obj.0 {
                        // A Delete carries the last state, usually without a deletionTimestamp.
                        let mut gone = rollout.clone();
                        gone.metadata
                            .deletion_timestamp
                            .get_or_insert_with(|| Time(Timestamp::now()));
                        // The receivers live as long as the loops; a send fails only at shutdown.
                        for svc in services_to_release(&ctx.services, &gone) {
                            let _ = services.unbounded_send(svc);
                        }
                        if let Some(store) = &ctx.destination_rules {
                            let resource = ctx.config.istio_resource("DestinationRule");
                            for dr in crate::destination_rules::to_release(store, &resource, &gone) {
                                let _ = destination_rules.unbounded_send(dr);
                            }
                        }
                    }
                }
                Err(e) => warn!(error = %e, "Rollout watch error"),
                Ok(_) => {}
            }
            futures::future::ready(())
        })
        .boxed()
}

/// Rollouts (in `namespace`, when given) for which `names_it` holds.
fn referencing(
    store: &Store<DeserializeGuard<Rollout>>,
    namespace: Option<&str>,
    names_it: impl Fn(&Rollout) -> bool,
) -> Vec<ObjectRef<DeserializeGuard<Rollout>>> {
    store
        .state()
        .into_iter()
        .filter(|guard| match &guard.0 {
            Ok(r) => namespace.is_none_or(|ns| r.metadata.namespace.as_deref() == Some(ns)) && names_it(r),
            Err(_) => false,
        })
        .map(|guard| ObjectRef::from_obj(&*guard))
        .collect()
}

/// Services the release controller must look at for a Rollout event: for a deleted Rollout,
/// every Service it named or managed; for a live one, the Services annotated as managed by it
/// that it no longer names (normally none, so a Rollout update costs no API call here).
fn services_to_release(store: &Store<Service>, rollout: &Rollout) -> Vec<ObjectRef<Service>> {
    let namespace = rollout.namespace().unwrap_or_default();
    let name = rollout.name_any();
    let referenced: Vec<String> = referenced_services(rollout).into_iter().map(|(_, s)| s).collect();
    let deleted = rollout.metadata.deletion_timestamp.is_some();
    let mut out: Vec<ObjectRef<Service>> = store
        .state()
        .into_iter()
        .filter(|svc| {
            svc.namespace().as_deref() == Some(namespace.as_str())
                && svc.annotations().get(keys::MANAGED_BY_ROLLOUTS) == Some(&name)
                && (deleted || !referenced.contains(&svc.name_any()))
        })
        .map(|svc| ObjectRef::from_obj(&*svc))
        .collect();
    if deleted {
        for svc in &referenced {
            let r = ObjectRef::<Service>::new(svc).within(&namespace);
            if !out.contains(&r) {
                out.push(r);
            }
        }
    }
    out
}

/// After a failed reconcile: back off per Rollout (a persistent error does not loop at a fixed
/// rate) and say why on the Rollout with a Warning Event, at most once per cause every five
/// minutes. Invalid specs have their own condition and Event; conflicts are transient.
fn error_policy(guard: Arc<DeserializeGuard<Rollout>>, error: &Error, ctx: Arc<Context>) -> Requeue {
    let key = backoff_key(&guard);
    let conflict = matches!(error, Error::Api(kube::Error::Api(e)) if e.code == 409);
    let wait = ctx.failures.failed(Failure {
        regarding: match &guard.0 {
            Ok(rollout) => rollout.object_ref(&()),
            Err(_) => Default::default(),
        },
        key: &key,
        category: error.category(),
        message: error.to_string(),
        report: guard.0.is_ok() && !conflict && !matches!(error, Error::InvalidSpec),
    });
    Requeue::requeue(wait)
}

/// The per-Rollout key of the error back-off.
pub fn backoff_key(guard: &DeserializeGuard<Rollout>) -> String {
    format!("{}/{}", guard.namespace().unwrap_or_default(), guard.name_any())
}

/// The release controllers act on objects whose Rollout is gone; a failure is retried later.
fn retry_later<K>(_: Arc<K>, _: &Error, _: Arc<Context>) -> Requeue {
    Requeue::requeue(Duration::from_secs(5))
}

//! Wiring: flags, the shared [`Context`], the watches, and the three loops of this binary (the
//! Rollout controller and the controllers releasing Services and DestinationRules a Rollout no
//! longer uses), run on the shared runtime.
//!
//! Everything a reconcile reads comes from watch caches: one Rollout watch shared by the three
//! loops; ReplicaSets; Services; Istio VirtualServices and DestinationRules (when served);
//! Ingresses; AnalysisRuns, Experiments and analysis templates; and, started on first use, the
//! kinds `spec.workloadRef` names.

use std::{sync::Arc, time::Duration};

use futures::{FutureExt, Stream, StreamExt, future::BoxFuture};
use k8s_openapi::api::{apps::v1::ReplicaSet, core::v1::Service, networking::v1::Ingress};
use kube::{
    Api, Client, Resource, ResourceExt,
    api::{ApiResource, DynamicObject, ListParams},
    core::DeserializeGuard,
    runtime::{
        Controller, WatchStreamExt,
        controller::{Action as Requeue, Config as ControllerConfig},
        reflector::{self, ObjectRef, Store},
        watcher,
    },
};
use shared_runtime::{
    flags::CommonArgs,
    leader::{LeaderArgs, LeaderGate, ROLLOUT_CONTROLLER_LEASE},
    runtime::{Failure, FailurePolicy, Runtime},
    synced::{self, Synced},
};
use shared_types::{
    analysis::{AnalysisPhase, AnalysisRun, AnalysisTemplate, ClusterAnalysisTemplate},
    constants::keys,
    experiment::Experiment,
    rollout::Rollout,
};
use tracing::{debug, info, warn};

use crate::{
    Error, metrics::Metrics, plan::referenced_services, reconcile, services, workload::WorkloadWatches,
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

/// A reflector feeding the store behind `writer`, driven by whoever polls the returned stream,
/// and whether it has listed its objects.
fn reflect<K>(
    api: Api<K>,
    config: watcher::Config,
    writer: reflector::store::Writer<K>,
) -> (
    impl Stream<Item = Result<K, watcher::Error>> + Send + 'static,
    Synced,
)
where
    K: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + Sync + 'static,
    K::DynamicType: Clone + Eq + std::hash::Hash + Default,
{
    let (events, synced) = synced::track(watcher(api, config).default_backoff().reflect(writer));
    (events.touched_objects(), synced)
}

/// A subscriber of a shared reflector (only fails for a writer built without sharing).
fn subscribe<K>(
    writer: &reflector::store::Writer<K>,
) -> Result<impl Stream<Item = Arc<K>> + Send + 'static, Error>
where
    K: Resource + Clone + Send + Sync + 'static,
    K::DynamicType: Clone + Eq + std::hash::Hash + Default + Send + Sync,
{
    writer.subscribe().ok_or(Error::Startup("watch subscription"))
}

/// Polls a reflector stream that only fills a cache, logging watch errors.
async fn drive<K: Send, S: Stream<Item = Result<K, watcher::Error>> + Send>(what: &'static str, stream: S) {
    stream
        .for_each(|event| async move {
            if let Err(e) = event {
                warn!(error = %e, "{what} watch error");
            }
        })
        .await;
}

/// The Istio kind's API in the watched namespace, or None (logged once) when it is not served.
async fn istio_api(rt: &Runtime, resource: &ApiResource) -> Option<Api<DynamicObject>> {
    let api = match &rt.namespace {
        Some(ns) => Api::namespaced_with(rt.client.clone(), ns, resource),
        None => Api::all_with(rt.client.clone(), resource),
    };
    match api.list_metadata(&ListParams::default().limit(1)).await {
        Ok(_) => Some(api),
        Err(e) => {
            info!(kind = %resource.kind, error = %e, "Istio kind not served; Rollouts routing through it will report it missing");
            None
        }
    }
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
    // Caches only read (not triggers) are filled by these futures; `synced_caches` says when each
    // watch has listed its objects.
    let mut caches: Vec<BoxFuture<'static, ()>> = Vec::new();
    let mut synced_caches: Vec<Synced> = Vec::new();
    let instance = || watcher::Config::default().labels(&rt.instance_selector);

    // One Rollout watch, shared by the three loops.
    let (rollouts, rollout_writer) = reflector::store_shared::<DeserializeGuard<Rollout>>(1024);
    let rollout_events = subscribe(&rollout_writer)?;
    let rollouts_for_services = subscribe(&rollout_writer)?;
    let rollouts_for_drs = subscribe(&rollout_writer)?;
    let (svc_store, svc_writer) = reflector::store_shared::<Service>(1024);
    let svc_for_rollouts = subscribe(&svc_writer)?;
    let svc_for_release = subscribe(&svc_writer)?;
    let (svc_events, svc_synced) = synced::track(
        watcher(rt.api::<Service>(), watcher::Config::default())
            .default_backoff()
            .reflect_shared(svc_writer),
    );
    caches.push(drive("Service", svc_events).boxed());
    synced_caches.push(svc_synced.clone());

    let (rs_store, rs_writer) = reflector::store::<ReplicaSet>();
    let (rs_events, rs_synced) = reflect(
        rt.api::<ReplicaSet>(),
        watcher::Config::default().labels(keys::POD_TEMPLATE_HASH),
        rs_writer,
    );
    let (ingresses, ingress_writer) = reflector::store::<Ingress>();
    let (ingress_events, ingress_synced) =
        reflect(rt.api::<Ingress>(), watcher::Config::default(), ingress_writer);
    // Only a phase change of a run or experiment matters to its Rollout: measurements written
    // into a running AnalysisRun do not trigger a reconcile.
    let phase = |phase: Option<AnalysisPhase>| {
        use std::hash::{DefaultHasher, Hash, Hasher};
        let mut h = DefaultHasher::new();
        phase.hash(&mut h);
        Some(h.finish())
    };
    let (analysis_runs, ar_writer) = reflector::store::<AnalysisRun>();
    let (ar_events, ar_synced) = reflect(rt.api::<AnalysisRun>(), instance(), ar_writer);
    let ar_events = ar_events.predicate_filter(
        move |ar: &AnalysisRun| phase(ar.status.as_ref().and_then(|s| s.phase)),
        Default::default(),
    );
    let (experiments, exp_writer) = reflector::store::<Experiment>();
    let (exp_events, exp_synced) = reflect(rt.api::<Experiment>(), instance(), exp_writer);
    let exp_events = exp_events.predicate_filter(
        move |e: &Experiment| phase(e.status.as_ref().and_then(|s| s.phase)),
        Default::default(),
    );
    let planning_synced = vec![rs_synced.clone(), svc_synced.clone()];
    synced_caches.extend([rs_synced, ingress_synced, ar_synced, exp_synced]);
    let (analysis_templates, writer) = reflector::store::<AnalysisTemplate>();
    let (events, templates_synced) = reflect(rt.api::<AnalysisTemplate>(), instance(), writer);
    caches.push(drive("AnalysisTemplate", events).boxed());
    let (cluster_analysis_templates, writer) = reflector::store::<ClusterAnalysisTemplate>();
    let (events, cluster_templates_synced) = reflect(Api::all(rt.client.clone()), instance(), writer);
    caches.push(drive("ClusterAnalysisTemplate", events).boxed());
    synced_caches.extend([templates_synced, cluster_templates_synced]);

    let vs_resource = config.istio_resource("VirtualService");
    let dr_resource = config.istio_resource("DestinationRule");
    let vs_api = istio_api(&rt, &vs_resource).await;
    let dr_api = istio_api(&rt, &dr_resource).await;
    let (virtual_services, vs_events) = match vs_api {
        Some(api) => {
            let writer = reflector::store::Writer::new(vs_resource.clone());
            let store = writer.as_reader();
            let (events, vs_synced) = synced::track(
                watcher(api, watcher::Config::default())
                    .default_backoff()
                    .reflect(writer),
            );
            synced_caches.push(vs_synced);
            (Some(store), Some(events.touched_objects()))
        }
        None => (None, None),
    };
    // The release controller's watch is also the cache reconciles read DestinationRules from
    // (shared streams need a static kind; this one is dynamic).
    let dr_controller = dr_api.map(|api| {
        let writer = reflector::store::Writer::new(dr_resource.clone());
        let store = writer.as_reader();
        let (events, dr_synced) = synced::track(
            watcher(api, watcher::Config::default())
                .default_backoff()
                .reflect(writer),
        );
        synced_caches.push(dr_synced);
        Controller::for_stream_with(events.touched_objects(), store, dr_resource.clone())
    });
    let destination_rules = dr_controller.as_ref().map(Controller::store);

    let ctx = Arc::new(Context {
        client: rt.client.clone(),
        events: rt.events.clone(),
        metrics: Metrics::register(&mut rt.registry, rollouts.clone()),
        config,
        rollouts: rollouts.clone(),
        replica_sets: rs_store.clone(),
        planning_synced,
        services: svc_store.clone(),
        virtual_services: virtual_services.clone(),
        destination_rules: destination_rules.clone(),
        ingresses: ingresses.clone(),
        analysis_runs: analysis_runs.clone(),
        experiments: experiments.clone(),
        analysis_templates: analysis_templates.clone(),
        cluster_analysis_templates: cluster_analysis_templates.clone(),
        workloads: WorkloadWatches::new(rt.client.clone(), rt.namespace.clone(), rollouts.clone()),
        leader: leader.clone(),
        failures: FailurePolicy::new(
            rt.events.clone(),
            shared_types::constants::event_reason::RECONCILE_ERROR,
        ),
        expectations: Default::default(),
        malformed_reported: Default::default(),
    });

    // The Rollout loop.
    let mut controller = Controller::for_shared_stream(rollout_events, rollouts.clone())
        .with_config(ControllerConfig::default().concurrency(args.rollout_threads))
        .reconcile_all_on(leader.on_leading())
        .owns_stream(rs_events)
        .owns_stream(ar_events)
        .owns_stream(exp_events)
        .reconcile_on(ctx.workloads.triggers())
        .watches_shared_stream(svc_for_rollouts, {
            let rollouts = rollouts.clone();
            move |svc: Arc<Service>| {
                let name = svc.name_any();
                referencing(&rollouts, svc.namespace().as_deref(), |r| {
                    referenced_services(r).iter().any(|(_, s)| *s == name)
                })
            }
        })
        .watches_stream(ingress_events, {
            let rollouts = rollouts.clone();
            move |ing: Ingress| {
                let name = ing.name_any();
                referencing(&rollouts, ing.namespace().as_deref(), |r| {
                    crate::traffic::plan::ingress_names(r).contains(&name)
                })
            }
        });
    if let Some(events) = vs_events {
        let rollouts = rollouts.clone();
        controller = controller.watches_stream_with(
            events,
            move |vs: DynamicObject| {
                let (name, namespace) = (vs.name_any(), vs.namespace().unwrap_or_default());
                referencing(&rollouts, None, |r| {
                    crate::traffic::plan::virtual_service_keys(r).contains(&(namespace.clone(), name.clone()))
                })
            },
            vs_resource.clone(),
        );
    }
    // Deleted Rollouts (seen only by the watch below, not by shared-stream subscribers) hand
    // the Services and DestinationRules they used to the release controllers.
    let (release_services, released_services) = futures::channel::mpsc::unbounded();
    let (release_drs, released_drs) = futures::channel::mpsc::unbounded();
    let dr_release = dr_controller.map(|dr_controller| {
        let (mapper_store, resource) = (dr_controller.store(), dr_resource.clone());
        dr_controller
            .reconcile_on(released_drs)
            .reconcile_all_on(leader.on_leading())
            .watches_shared_stream(
                rollouts_for_drs,
                move |guard: Arc<DeserializeGuard<Rollout>>| match &guard.0 {
                    Ok(rollout) => crate::destination_rules::to_release(&mapper_store, &resource, rollout),
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
    });
    let rollout_loop = controller
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
        });
    let managed_services = svc_store.clone();
    let service_release = Controller::for_shared_stream(svc_for_release, svc_store.clone())
        .reconcile_on(released_services)
        .reconcile_all_on(leader.on_leading())
        .watches_shared_stream(
            rollouts_for_services,
            move |guard: Arc<DeserializeGuard<Rollout>>| match &guard.0 {
                Ok(rollout) => services_to_release(&managed_services, rollout),
                Err(_) => Vec::new(),
            },
        )
        .graceful_shutdown_on(rt.shutdown_signal())
        .run(services::reconcile, retry_later, ctx.clone())
        .for_each(|res| async move {
            if let Err(e) = res {
                warn!(error = %e, "service release failed");
            }
        });
    // The Rollout watch itself; deletions drop the per-Rollout state kept in memory.
    let forget_ctx = ctx.clone();
    let (svc_store_for_deletes, dr_store_for_deletes) = (svc_store.clone(), destination_rules.clone());
    let (rollout_events_all, rollouts_synced) = synced::track(
        watcher(rt.api::<DeserializeGuard<Rollout>>(), instance())
            .default_backoff()
            .reflect_shared(rollout_writer),
    );
    synced_caches.push(rollouts_synced);
    let rollout_watch = rollout_events_all.for_each(move |event| {
        match event {
            Ok(watcher::Event::Delete(obj)) => {
                forget_ctx.expectations.forget(&obj.uid().unwrap_or_default());
                forget_ctx
                    .metrics
                    .reconcile
                    .forget(&crate::metrics::RolloutLabels {
                        namespace: obj.namespace().unwrap_or_default(),
                        name: obj.name_any(),
                    });
                if let Ok(rollout) = &obj.0 {
                    // A Delete carries the last state, usually without a deletionTimestamp.
                    let mut gone = rollout.clone();
                    gone.metadata.deletion_timestamp.get_or_insert_with(|| {
                        k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                            k8s_openapi::jiff::Timestamp::now(),
                        )
                    });
                    // The receivers live as long as the loops; a send fails only at shutdown.
                    for svc in services_to_release(&svc_store_for_deletes, &gone) {
                        let _ = release_services.unbounded_send(svc);
                    }
                    if let Some(store) = &dr_store_for_deletes {
                        for dr in crate::destination_rules::to_release(store, &dr_resource, &gone) {
                            let _ = release_drs.unbounded_send(dr);
                        }
                    }
                }
            }
            Err(e) => warn!(error = %e, "Rollout watch error"),
            Ok(_) => {}
        }
        futures::future::ready(())
    });

    let all_synced = Synced::all(synced_caches);
    let work = async move {
        let loops = async {
            futures::join!(rollout_loop, service_release, async {
                if let Some(l) = dr_release {
                    l.await
                }
            });
        };
        // The loops drain on shutdown; the watches that feed them are dropped with them.
        tokio::select! {
            () = loops => {},
            () = rollout_watch => warn!("the Rollout watch ended"),
            _ = futures::future::join_all(caches) => warn!("a cache watch ended"),
        }
    };
    rt.run(all_synced, work).await?;
    Ok(())
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

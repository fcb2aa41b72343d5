//! The rollout controller's watches. Everything a reconcile reads comes from these caches: one
//! Rollout watch shared by the three loops; ReplicaSets; Services (shared by the Rollout loop and
//! the Service release loop); Ingresses; AnalysisRuns, Experiments and analysis templates; Istio
//! VirtualServices and DestinationRules when their CRDs are served. (The kinds
//! `spec.workloadRef` names are watched from first use, see [`crate::workload`].)

use std::sync::Arc;

use futures::{FutureExt, Stream, StreamExt, future::BoxFuture, stream::BoxStream};
use k8s_openapi::{
    api::{apps::v1::ReplicaSet, core::v1::Service, networking::v1::Ingress},
    apimachinery::pkg::apis::meta::v1::Time,
    jiff::Timestamp,
};
use kube::{
    Api, Resource,
    api::{ApiResource, DynamicObject, ListParams},
    core::DeserializeGuard,
    runtime::{
        Controller, WatchStreamExt,
        reflector::{self, Store},
        watcher,
    },
};
use shared_runtime::{
    runtime::Runtime,
    synced::{self, Synced},
};
use shared_types::{
    analysis::{AnalysisPhase, AnalysisRun, AnalysisTemplate, ClusterAnalysisTemplate},
    constants::keys,
    experiment::Experiment,
    rollout::Rollout,
};
use tracing::{info, warn};

use crate::{Config, Error};

type Triggered<K> = BoxStream<'static, Result<K, watcher::Error>>;
type Shared<K> = BoxStream<'static, Arc<K>>;

/// The caches, and the streams that fill them and trigger the loops.
pub struct Watches {
    pub rollouts: Store<DeserializeGuard<Rollout>>,
    pub replica_sets: Store<ReplicaSet>,
    pub services: Store<Service>,
    pub ingresses: Store<Ingress>,
    pub analysis_runs: Store<AnalysisRun>,
    pub experiments: Store<Experiment>,
    pub analysis_templates: Store<AnalysisTemplate>,
    pub cluster_analysis_templates: Store<ClusterAnalysisTemplate>,
    pub virtual_services: Option<Store<DynamicObject>>,
    pub destination_rules: Option<Store<DynamicObject>>,
    /// The Rollout watch with all its events (deletions included); must be polled.
    pub rollout_watch: BoxStream<'static, Result<watcher::Event<DeserializeGuard<Rollout>>, watcher::Error>>,
    /// Rollout changes for each of the three loops.
    pub rollouts_for_reconcile: Shared<DeserializeGuard<Rollout>>,
    pub rollouts_for_services: Shared<DeserializeGuard<Rollout>>,
    pub rollouts_for_destination_rules: Shared<DeserializeGuard<Rollout>>,
    /// Service changes for the Rollout loop and the Service release loop.
    pub services_for_rollouts: Shared<Service>,
    pub services_for_release: Shared<Service>,
    /// Changes of objects the Rollout loop owns or reads.
    pub replica_set_events: Triggered<ReplicaSet>,
    pub ingress_events: Triggered<Ingress>,
    pub analysis_run_events: Triggered<AnalysisRun>,
    pub experiment_events: Triggered<Experiment>,
    pub virtual_service_events: Option<Triggered<DynamicObject>>,
    /// The DestinationRule release loop, over its own watch (also the cache reconciles read).
    pub destination_rule_release: Option<Controller<DynamicObject>>,
    /// Watches that only fill caches.
    pub caches: Vec<BoxFuture<'static, ()>>,
    /// Whether each watch has listed its objects (readiness).
    pub synced: Vec<Synced>,
    /// The ReplicaSet and Service watches' (planning waits for them).
    pub planning_synced: Vec<Synced>,
}

impl Watches {
    /// Sets up every watch (nothing runs until the streams are polled).
    pub async fn start(rt: &Runtime, config: &Config) -> Result<Self, Error> {
        let instance = || watcher::Config::default().labels(&rt.instance_selector);
        let mut synced_all = Vec::new();
        let mut caches = Vec::new();

        let (rollouts, writer) = reflector::store_shared::<DeserializeGuard<Rollout>>(1024);
        let (rollouts_for_reconcile, rollouts_for_services, rollouts_for_destination_rules) =
            (subscribe(&writer)?, subscribe(&writer)?, subscribe(&writer)?);
        let (rollout_watch, rollouts_synced) = synced::track(
            watcher(rt.api::<DeserializeGuard<Rollout>>(), instance())
                .default_backoff()
                .reflect_shared(writer),
        );

        let (services, writer) = reflector::store_shared::<Service>(1024);
        let (services_for_rollouts, services_for_release) = (subscribe(&writer)?, subscribe(&writer)?);
        let (events, services_synced) = synced::track(
            watcher(rt.api::<Service>(), watcher::Config::default())
                .default_backoff()
                .reflect_shared(writer),
        );
        caches.push(drive("Service", events).boxed());

        let (replica_sets, writer) = reflector::store::<ReplicaSet>();
        let (replica_set_events, rs_synced) = reflect(
            rt.api::<ReplicaSet>(),
            watcher::Config::default().labels(keys::POD_TEMPLATE_HASH),
            writer,
        );
        let (ingresses, writer) = reflector::store::<Ingress>();
        let (ingress_events, ingress_synced) =
            reflect(rt.api::<Ingress>(), watcher::Config::default(), writer);
        // Only a phase change (or the deletion) of a run or experiment matters to its Rollout:
        // measurements written into a running AnalysisRun do not trigger a reconcile.
        let (analysis_runs, writer) = reflector::store::<AnalysisRun>();
        let (analysis_run_events, ar_synced) =
            reflect_phase_changes(rt.api(), instance(), writer, |ar: &AnalysisRun| {
                ar.status.as_ref().and_then(|s| s.phase)
            });
        let (experiments, writer) = reflector::store::<Experiment>();
        let (experiment_events, exp_synced) =
            reflect_phase_changes(rt.api(), instance(), writer, |e: &Experiment| {
                e.status.as_ref().and_then(|s| s.phase)
            });
        let (analysis_templates, writer) = reflector::store::<AnalysisTemplate>();
        let (events, templates_synced) = reflect(rt.api::<AnalysisTemplate>(), instance(), writer);
        caches.push(drive("AnalysisTemplate", events).boxed());
        let (cluster_analysis_templates, writer) = reflector::store::<ClusterAnalysisTemplate>();
        let (events, cluster_templates_synced) = reflect(Api::all(rt.client.clone()), instance(), writer);
        caches.push(drive("ClusterAnalysisTemplate", events).boxed());

        let (virtual_services, virtual_service_events) =
            match istio_api(rt, &config.istio_resource("VirtualService")).await {
                Some((api, resource)) => {
                    let (store, events, vs_synced) = reflect_dynamic(api, resource);
                    synced_all.push(vs_synced);
                    (Some(store), Some(events))
                }
                None => (None, None),
            };
        let (destination_rules, destination_rule_release) =
            match istio_api(rt, &config.istio_resource("DestinationRule")).await {
                Some((api, resource)) => {
                    let (store, events, dr_synced) = reflect_dynamic(api, resource.clone());
                    synced_all.push(dr_synced);
                    let release = Controller::for_stream_with(events, store.clone(), resource);
                    (Some(store), Some(release))
                }
                None => (None, None),
            };

        let planning_synced = vec![rs_synced.clone(), services_synced.clone()];
        synced_all.extend([
            rollouts_synced,
            services_synced,
            rs_synced,
            ingress_synced,
            ar_synced,
            exp_synced,
            templates_synced,
            cluster_templates_synced,
        ]);
        Ok(Self {
            rollouts,
            replica_sets,
            services,
            ingresses,
            analysis_runs,
            experiments,
            analysis_templates,
            cluster_analysis_templates,
            virtual_services,
            destination_rules,
            rollout_watch: rollout_watch.boxed(),
            rollouts_for_reconcile: rollouts_for_reconcile.boxed(),
            rollouts_for_services: rollouts_for_services.boxed(),
            rollouts_for_destination_rules: rollouts_for_destination_rules.boxed(),
            services_for_rollouts: services_for_rollouts.boxed(),
            services_for_release: services_for_release.boxed(),
            replica_set_events: replica_set_events.boxed(),
            ingress_events: ingress_events.boxed(),
            analysis_run_events,
            experiment_events,
            virtual_service_events,
            destination_rule_release,
            caches,
            synced: synced_all,
            planning_synced,
        })
    }
}

/// Like [`reflect`], but passing on an object only when its phase changes or it is deleted
/// (a deletion is marked with a `deletionTimestamp`, so the phase filter lets it through).
fn reflect_phase_changes<K>(
    api: Api<K>,
    config: watcher::Config,
    writer: reflector::store::Writer<K>,
    phase: fn(&K) -> Option<AnalysisPhase>,
) -> (Triggered<K>, Synced)
where
    K: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + Sync + 'static,
    K::DynamicType: Clone + Eq + std::hash::Hash + Default,
{
    let (events, synced) = synced::track(watcher(api, config).default_backoff().reflect(writer));
    let objects = events.filter_map(|event| {
        futures::future::ready(match event {
            Ok(watcher::Event::Apply(obj) | watcher::Event::InitApply(obj)) => Some(Ok(obj)),
            Ok(watcher::Event::Delete(mut obj)) => {
                obj.meta_mut()
                    .deletion_timestamp
                    .get_or_insert_with(|| Time(Timestamp::now()));
                Some(Ok(obj))
            }
            Ok(_) => None,
            Err(e) => Some(Err(e)),
        })
    });
    let changes = objects.predicate_filter(
        move |obj: &K| {
            use std::hash::{DefaultHasher, Hash, Hasher};
            let mut h = DefaultHasher::new();
            (phase(obj), obj.meta().deletion_timestamp.is_some()).hash(&mut h);
            Some(h.finish())
        },
        Default::default(),
    );
    (changes.boxed(), synced)
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

/// [`reflect`] for a kind known only at run time.
fn reflect_dynamic(
    api: Api<DynamicObject>,
    resource: ApiResource,
) -> (Store<DynamicObject>, Triggered<DynamicObject>, Synced) {
    let writer = reflector::store::Writer::new(resource);
    let store = writer.as_reader();
    let (events, synced) = synced::track(
        watcher(api, watcher::Config::default())
            .default_backoff()
            .reflect(writer),
    );
    (store, events.touched_objects().boxed(), synced)
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
async fn istio_api(rt: &Runtime, resource: &ApiResource) -> Option<(Api<DynamicObject>, ApiResource)> {
    let api = match &rt.namespace {
        Some(ns) => Api::namespaced_with(rt.client.clone(), ns, resource),
        None => Api::all_with(rt.client.clone(), resource),
    };
    match api.list_metadata(&ListParams::default().limit(1)).await {
        Ok(_) => Some((api, resource.clone())),
        Err(e) => {
            info!(kind = %resource.kind, error = %e, "Istio kind not served; Rollouts routing through it will report it missing");
            None
        }
    }
}

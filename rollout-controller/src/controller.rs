//! Wiring: flags, the shared [`Context`], watches and the two controllers (Rollouts and the
//! Services they release), the admin server and shutdown.

use std::{sync::Arc, time::Duration};

use futures::StreamExt;
use k8s_openapi::{
    api::{apps::v1::ReplicaSet, core::v1::Service},
    apimachinery::pkg::apis::meta::v1::Time,
    jiff::Timestamp,
};
use kube::{
    Api, Client, ResourceExt,
    api::{DynamicObject, ListParams},
    core::DeserializeGuard,
    runtime::{
        Controller, WatchStreamExt,
        controller::{Action as Requeue, Config as ControllerConfig},
        reflector::{self, ObjectRef, Store},
        watcher,
    },
};
use prometheus_client::registry::Registry;
use shared_runtime::{admin, flags::CommonArgs};
use shared_types::{constants::keys, rollout::Rollout};
use tracing::{error, info, warn};

use crate::{Error, metrics::Metrics, plan::referenced_services, reconcile, services};

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
    pub fn istio_resource(&self, kind: &str) -> kube::core::ApiResource {
        let gvk = kube::core::GroupVersionKind::gvk("networking.istio.io", &self.istio_api_version, kind);
        kube::core::ApiResource::from_gvk_with_plural(&gvk, &format!("{}s", kind.to_lowercase()))
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
    /// Cached ReplicaSets carrying the pod-template-hash label.
    pub replica_sets: Store<ReplicaSet>,
    /// Cached Services.
    pub services: Store<Service>,
    /// Cached Rollouts.
    pub rollouts: Store<DeserializeGuard<Rollout>>,
    /// Waits after failed reconciles, per Rollout.
    pub backoff: shared_runtime::backoff::ErrorBackoff,
    /// Writes not yet seen in the caches.
    pub expectations: crate::expectations::Expectations,
    /// Malformed Rollouts already reported, by (uid, generation, error).
    pub malformed_reported: std::sync::Mutex<std::collections::HashSet<(String, Option<i64>, String)>>,
}

fn api<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
    <K as kube::Resource>::DynamicType: Default,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// Runs the controller until SIGTERM/SIGINT.
pub async fn run(args: Args) -> Result<(), Error> {
    shared_runtime::logging::init(&args.common.loglevel, args.common.logformat)?;
    let client = shared_runtime::client(args.common.kubeconfig.as_deref(), "rollout-controller").await?;
    let namespace = args.common.namespace.as_deref().filter(|n| !n.is_empty());
    // Fail fast with a clear message when the CRD is missing.
    let typed: Api<Rollout> = api(&client, namespace);
    typed
        .list(&ListParams::default().limit(1))
        .await
        .map_err(Error::CrdMissing)?;

    let (rs_store, rs_writer) = reflector::store::<ReplicaSet>();
    let rs_stream = watcher(
        api::<ReplicaSet>(&client, namespace),
        watcher::Config::default().labels(keys::POD_TEMPLATE_HASH),
    )
    .default_backoff()
    .reflect(rs_writer)
    .touched_objects();
    // One Service watch feeds both the Rollout controller (as a trigger) and the release controller.
    let (svc_store, svc_writer) = reflector::store_shared::<Service>(1024);
    let svc_for_rollouts = svc_writer
        .subscribe()
        .ok_or(Error::Startup("service subscription"))?;
    let svc_for_release = svc_writer
        .subscribe()
        .ok_or(Error::Startup("service subscription"))?;
    let svc_watch = watcher(api::<Service>(&client, namespace), watcher::Config::default())
        .default_backoff()
        .reflect_shared(svc_writer)
        .for_each(|event| async move {
            if let Err(e) = event {
                warn!(error = %e, "service watch error");
            }
        });

    let rollouts_api: Api<DeserializeGuard<Rollout>> = api(&client, namespace);
    let rollout_watch = watcher::Config::default().labels(&args.common.instance_selector());
    let controller = Controller::new(rollouts_api, rollout_watch)
        .with_config(ControllerConfig::default().concurrency(args.rollout_threads));
    let rollouts = controller.store();
    let mapper_store = rollouts.clone();
    let controller = controller
        .owns_stream(rs_stream)
        .watches_shared_stream(svc_for_rollouts, move |svc: Arc<Service>| {
            rollouts_referencing(&mapper_store, &svc)
        });

    let mut registry = Registry::default();
    let metrics = Metrics::register(&mut registry, rollouts.clone());
    let admin_state = admin::AdminState::new(registry);
    let admin_tasks = admin::serve(
        admin_state.clone(),
        &[args.common.metrics_addr, args.common.healthz_addr],
    )
    .await?;

    let ctx = Arc::new(Context {
        client: client.clone(),
        events: shared_runtime::events::EventPublisher::start(
            client.clone(),
            "rollouts-controller",
            std::env::var("POD_NAME").ok(),
        ),
        metrics,
        config: Config {
            resync: Duration::from_secs(args.rollout_resync.max(1)),
            istio_api_version: args.istio_api_version.clone(),
        },
        replica_sets: rs_store.clone(),
        services: svc_store.clone(),
        rollouts: rollouts.clone(),
        backoff: shared_runtime::backoff::ErrorBackoff::new(
            Duration::from_millis(200),
            Duration::from_secs(60),
        ),
        expectations: Default::default(),
        malformed_reported: Default::default(),
    });

    let readiness = {
        let (rollouts, rs_store, svc_store, admin_state) = (
            rollouts.clone(),
            rs_store.clone(),
            svc_store.clone(),
            admin_state.clone(),
        );
        async move {
            let synced = rollouts.wait_until_ready().await.is_ok()
                && rs_store.wait_until_ready().await.is_ok()
                && svc_store.wait_until_ready().await.is_ok();
            if synced {
                info!("caches synced; ready");
                admin_state.set_ready(true);
            }
            synced
        }
    };
    let release_ctx = ctx.clone();
    let dr_ctx = ctx.clone();
    let namespace_owned = namespace.map(str::to_string);
    let release_ctx_rollouts_api: Api<DeserializeGuard<Rollout>> = api(&client, namespace);
    let instance_selector = args.common.instance_selector();
    let release = async move {
        // Releasing Services needs the full Rollout cache, or live Services would look orphaned.
        if !readiness.await {
            return;
        }
        // A deleted Rollout releases its Services (trigger below) and its traffic routing: no
        // traffic may be left pointing at ReplicaSets the garbage collector is removing.
        let cleanup_ctx = release_ctx.clone();
        // DestinationRules a Rollout stopped using are released by their own controller, fed
        // from the same Rollout events (only when the Istio CRD is served).
        let (dr_release, dr_triggers) = futures::channel::mpsc::unbounded::<ObjectRef<DynamicObject>>();
        let dr_controller = destination_rule_controller(&release_ctx, namespace_owned.as_deref()).await;
        let dr_store = dr_controller.as_ref().map(Controller::store);
        let deleted_rollouts = watcher(
            release_ctx_rollouts_api,
            watcher::Config::default().labels(&instance_selector),
        )
        .default_backoff()
        .filter_map(move |event| {
            let ctx = cleanup_ctx.clone();
            let (dr_store, dr_release) = (dr_store.clone(), dr_release.clone());
            let dr_resource = crate::destination_rules::resource(&ctx);
            async move {
                let rollout_event = match event {
                    Ok(watcher::Event::Delete(mut obj)) => {
                        ctx.expectations.forget(&obj.uid().unwrap_or_default());
                        ctx.metrics.forget(&crate::metrics::RolloutLabels {
                            namespace: obj.namespace().unwrap_or_default(),
                            name: obj.name_any(),
                        });
                        if let Ok(rollout) = obj.0.as_mut() {
                            let gone = rollout.clone();
                            tokio::spawn(async move { reconcile::restore_traffic(&gone, &ctx).await });
                            // Marks the object as gone for the mappers below (a watch Delete
                            // carries the last state, usually without a deletionTimestamp).
                            rollout
                                .metadata
                                .deletion_timestamp
                                .get_or_insert_with(|| Time(Timestamp::now()));
                        }
                        obj
                    }
                    // A changed Rollout may have stopped naming a Service or DestinationRule it
                    // managed (e.g. blue-green to canary): those are released too.
                    Ok(watcher::Event::Apply(obj)) => obj,
                    Err(e) => return Some(Err(e)),
                    Ok(_) => return None,
                };
                if let (Some(store), Ok(rollout)) = (&dr_store, &rollout_event.0) {
                    for dr in crate::destination_rules::to_release(store, &dr_resource, rollout) {
                        // The receiver lives as long as this stream; a send only fails at shutdown.
                        let _ = dr_release.unbounded_send(dr);
                    }
                }
                Some(Ok(rollout_event))
            }
        });
        let dr_release_loop = async move {
            let Some(controller) = dr_controller else { return };
            controller
                .reconcile_on(dr_triggers)
                .graceful_shutdown_on(shared_runtime::shutdown_signal())
                .run(crate::destination_rules::reconcile, error_policy_dr, dr_ctx)
                .for_each(|res| async move {
                    if let Err(e) = res {
                        warn!(error = %e, "DestinationRule release failed");
                    }
                })
                .await;
        };
        let managed_store = svc_store.clone();
        let service_release_loop = Controller::for_shared_stream(svc_for_release, svc_store)
            .watches_stream(
                deleted_rollouts,
                move |guard: DeserializeGuard<Rollout>| match guard.0 {
                    Ok(rollout) => services_to_release(&managed_store, &rollout),
                    Err(_) => Vec::new(),
                },
            )
            .graceful_shutdown_on(shared_runtime::shutdown_signal())
            .run(services::reconcile, error_policy_service, release_ctx)
            .for_each(|res| async move {
                if let Err(e) = res {
                    warn!(error = %e, "service release failed");
                }
            });
        futures::join!(service_release_loop, dr_release_loop);
    };
    let rollout_controller = controller
        .graceful_shutdown_on(shared_runtime::shutdown_signal())
        .run(reconcile::reconcile, error_policy, ctx)
        .for_each(|res| async move {
            match res {
                Ok((obj, _)) => tracing::debug!(rollout = %obj.name, "reconciled"),
                Err(kube::runtime::controller::Error::ReconcilerFailed(Error::InvalidSpec, obj)) => {
                    tracing::debug!(rollout = %obj.name, "invalid spec reported")
                }
                // Stale cache: retried at once with fresh data; not worth a warning.
                Err(kube::runtime::controller::Error::ReconcilerFailed(
                    ref e @ Error::Api(kube::Error::Api(ref s)),
                    ref obj,
                )) if s.code == 409 => {
                    tracing::debug!(rollout = %obj.name, error = %e, "conflict; retrying")
                }
                Err(e) => warn!(error = %e, "reconcile failed"),
            }
        });
    info!(
        namespace = namespace.unwrap_or("<all>"),
        instance_id = args.common.instance_id.as_deref().unwrap_or(""),
        "starting rollout controller"
    );
    // Not ready from the moment shutdown begins, so traffic and probes move away while we drain.
    let unready_on_shutdown = {
        let admin_state = admin_state.clone();
        tokio::spawn(async move {
            shared_runtime::shutdown_signal().await;
            admin_state.set_ready(false);
        })
    };
    tokio::select! {
        () = rollout_controller => {},
        () = svc_watch => error!("service watch ended"),
        () = release => {},
    }
    admin_state.set_ready(false);
    unready_on_shutdown.abort();
    for task in admin_tasks {
        task.abort();
    }
    info!("rollout controller stopped");
    Ok(())
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

/// Rollouts in the Service's namespace that name it.
fn rollouts_referencing(
    store: &Store<DeserializeGuard<Rollout>>,
    svc: &Service,
) -> Vec<ObjectRef<DeserializeGuard<Rollout>>> {
    let namespace = svc.namespace();
    let name = svc.name_any();
    store
        .state()
        .into_iter()
        .filter(|guard| match &guard.0 {
            Ok(r) => r.namespace() == namespace && referenced_services(r).iter().any(|(_, s)| *s == name),
            Err(_) => false,
        })
        .map(|guard| ObjectRef::from_obj(&*guard))
        .collect()
}

/// Back-off after a failed reconcile: quick for conflicts, slower for everything else.
/// After a failed reconcile: back off per Rollout (a persistent error no longer loops at a fixed
/// rate), and say why on the Rollout with a Warning Event, at most once per cause every five
/// minutes. Invalid specs have their own condition and Event; conflicts are transient.
fn error_policy(guard: Arc<DeserializeGuard<Rollout>>, error: &Error, ctx: Arc<Context>) -> Requeue {
    let key = backoff_key(&guard);
    let wait = ctx.backoff.failed(&key);
    let conflict = matches!(error, Error::Api(kube::Error::Api(e)) if e.code == 409);
    if let (Ok(rollout), false, false) = (&guard.0, conflict, matches!(error, Error::InvalidSpec)) {
        ctx.events.publish_at_most_every(
            format!("{key}/{}", error.category()),
            Duration::from_secs(300),
            shared_runtime::events::Occurrence {
                regarding: kube::Resource::object_ref(rollout, &()),
                type_: shared_runtime::events::EventType::Warning,
                reason: shared_types::constants::event_reason::RECONCILE_ERROR.into(),
                message: format!(
                    "reconcile failed (retrying in {}s): {error}",
                    wait.as_secs().max(1)
                ),
            },
        );
    }
    Requeue::requeue(wait)
}

/// The per-Rollout key of the error back-off.
pub fn backoff_key(guard: &DeserializeGuard<Rollout>) -> String {
    format!("{}/{}", guard.namespace().unwrap_or_default(), guard.name_any())
}

fn error_policy_service(_: Arc<Service>, _: &Error, _: Arc<Context>) -> Requeue {
    Requeue::requeue(Duration::from_secs(5))
}

fn error_policy_dr(_: Arc<DynamicObject>, _: &Error, _: Arc<Context>) -> Requeue {
    Requeue::requeue(Duration::from_secs(5))
}

/// The controller releasing DestinationRules, or None (logged once) when the Istio
/// DestinationRule kind is not served.
async fn destination_rule_controller(
    ctx: &Context,
    namespace: Option<&str>,
) -> Option<Controller<DynamicObject>> {
    let resource = crate::destination_rules::resource(ctx);
    let api: Api<DynamicObject> = match namespace {
        Some(ns) => Api::namespaced_with(ctx.client.clone(), ns, &resource),
        None => Api::all_with(ctx.client.clone(), &resource),
    };
    if let Err(e) = api.list(&ListParams::default().limit(1)).await {
        info!(error = %e, "Istio DestinationRules are not served; DestinationRule release is off");
        return None;
    }
    Some(Controller::new_with(api, watcher::Config::default(), resource))
}

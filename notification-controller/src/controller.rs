//! Wiring and I/O: the notification configuration (ConfigMap and Secret, reloaded on change),
//! two loops on the shared runtime (Rollouts, with their ReplicaSets; AnalysisRuns), and for
//! each object the send → record cycle around the pure [`crate::trigger`] and
//! [`crate::record`] logic.
//!
//! Sending is claimed before it happens: the record entry is written with the object's
//! `resourceVersion` as precondition, so a stale cache or a second replica gets a conflict
//! instead of a duplicate; an entry whose send failed is removed again, so the send is retried.

use std::{
    collections::BTreeMap,
    sync::{Arc, RwLock},
    time::Duration,
};

use futures::{StreamExt, future::join_all};
use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::{
    apps::v1::ReplicaSet,
    core::v1::{ConfigMap, ObjectReference, Secret},
};
use kube::{
    Api, Resource, ResourceExt,
    api::{Patch, PatchParams},
    runtime::{
        Controller, WatchStreamExt,
        controller::{Action as Requeue, Config as ControllerConfig},
        reflector::{self, Store},
        watcher,
    },
};
use serde::{Serialize, de::DeserializeOwned};
use serde_json::{Value, json};
use shared_runtime::{
    events::{EventPublisher, EventType, Occurrence},
    flags::CommonArgs,
    leader::{LeaderArgs, LeaderGate},
    metrics::ReconcileMetrics,
    runtime::{Failure, FailurePolicy, Runtime, object_key, observe_reconcile},
    synced::{self, Synced},
};
use shared_types::{
    analysis::AnalysisRun,
    constants::{field_manager, keys},
    experiment::Experiment,
    rollout::Rollout,
};
use tokio::sync::watch;
use tracing::{debug, info, warn};

use crate::{
    Error,
    config::{CONFIG_MAP, Config, SECRET},
    metrics::SendMetrics,
    record::{self, Due, Record},
    retry::RetryGate,
    service::{self, Backoff},
    subscription::{Destination, destinations},
    template,
    trigger::{self, Subject, is_analysis_trigger},
};

/// Lease of the notification controller (`-<instance-id>` appended when set).
pub const NOTIFICATION_CONTROLLER_LEASE: &str = "argo-rollouts-notification-controller-lock";

/// Event reasons of this controller.
pub mod reason {
    /// A notification could not be delivered (after retries); names the service and cause.
    pub const NOTIFICATION_FAILED: &str = "NotificationFailed";
    /// A template could not be rendered; names the template, field and error.
    pub const TEMPLATE_ERROR: &str = "NotificationTemplateError";
    /// A trigger condition could not be evaluated, or names an unknown template or service.
    pub const TRIGGER_ERROR: &str = "NotificationTriggerError";
    /// A key of the notification ConfigMap was left out.
    pub const CONFIG_ERROR: &str = "NotificationConfigError";
    /// A reconcile failed (API errors).
    pub const RECONCILE_ERROR: &str = "NotificationReconcileError";
}

/// Flags of the notification controller.
#[derive(clap::Parser, Clone, Debug)]
#[command(
    name = "notification-controller",
    version,
    about = "Sends Argo Rollouts notifications (Slack, webhook, email) from Rollout and AnalysisRun status"
)]
pub struct Args {
    /// Flags shared by all controllers.
    #[command(flatten)]
    pub common: CommonArgs,
    /// Leader election.
    #[command(flatten)]
    pub leader: LeaderArgs,
    /// Namespace of `argo-rollouts-notification-configmap` and `-secret` (default: the
    /// `POD_NAMESPACE` environment variable, else `argo-rollouts`).
    #[arg(long, env = "ARGO_ROLLOUTS_NOTIFICATIONS_NAMESPACE")]
    pub notifications_namespace: Option<String>,
    /// Objects handled in parallel (sends to different destinations of one object run in
    /// parallel too).
    #[arg(long, env = "ARGO_ROLLOUTS_NOTIFICATION_THREADS", default_value_t = 10)]
    pub notification_threads: u16,
    /// First wait between delivery attempts (doubles up to 5s).
    #[arg(long, env = "ARGO_ROLLOUTS_NOTIFICATION_RETRY_WAIT", default_value = "1s", value_parser = shared_types::duration::parse_duration)]
    pub notification_retry_wait: Duration,
}

/// Everything a reconcile needs.
pub struct Context {
    client: kube::Client,
    events: EventPublisher,
    config: RwLock<Arc<Config>>,
    rollouts: Store<Rollout>,
    replica_sets: Store<ReplicaSet>,
    runs: Store<AnalysisRun>,
    experiments: Store<Experiment>,
    leader: LeaderGate,
    reconciles: ReconcileMetrics,
    sends: SendMetrics,
    failures: FailurePolicy,
    /// Back-off of failed destinations.
    retries: RetryGate,
    backoff: Backoff,
    synced: Vec<Synced>,
}

impl Context {
    fn config(&self) -> Arc<Config> {
        self.config
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

/// Runs the controller until SIGTERM/SIGINT.
pub async fn run(args: Args) -> Result<(), Error> {
    let mut rt = Runtime::start(&args.common, "notification-controller", "notification-controller").await?;
    rt.require_served::<Rollout>().await?;
    rt.require_served::<AnalysisRun>().await?;
    let leader = rt.elect(&args.leader, NOTIFICATION_CONTROLLER_LEASE)?;
    let config_namespace = args
        .notifications_namespace
        .clone()
        .or_else(|| std::env::var("POD_NAMESPACE").ok())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "argo-rollouts".to_string());
    let instance = || watcher::Config::default().labels(&rt.instance_selector);

    let (rollouts, rollout_events, rollouts_synced) = synced::cached(rt.api::<Rollout>(), instance());
    let (replica_sets, rs_events, rs_synced) = synced::cached(
        rt.api::<ReplicaSet>(),
        watcher::Config::default().labels(keys::POD_TEMPLATE_HASH),
    );
    let (runs, run_events, runs_synced) = synced::cached(rt.api::<AnalysisRun>(), instance());
    let (experiments, experiment_events, experiments_synced) =
        synced::cached(rt.api::<Experiment>(), instance());
    let named = |name: &str| watcher::Config::default().fields(&format!("metadata.name={name}"));
    let (config_maps, config_map_events, config_map_synced) = synced::cached(
        Api::<ConfigMap>::namespaced(rt.client.clone(), &config_namespace),
        named(CONFIG_MAP),
    );
    let (secrets, secret_events, secret_synced) = synced::cached(
        Api::<Secret>::namespaced(rt.client.clone(), &config_namespace),
        named(SECRET),
    );
    // Objects are looked at once the configuration is loaded, not with the catalog alone.
    let (config_loaded_tx, config_loaded) = synced::manual();
    let synced = vec![
        rollouts_synced,
        rs_synced,
        runs_synced,
        experiments_synced,
        config_loaded,
    ];
    let ctx = Arc::new(Context {
        client: rt.client.clone(),
        events: rt.events.clone(),
        config: RwLock::new(Arc::new(Config::parse(&BTreeMap::new(), BTreeMap::new()))),
        rollouts: rollouts.clone(),
        replica_sets,
        runs: runs.clone(),
        experiments,
        leader: leader.clone(),
        reconciles: ReconcileMetrics::register(&mut rt.registry, "notification", "notification"),
        sends: SendMetrics::register(&mut rt.registry),
        failures: FailurePolicy::new(rt.events.clone(), reason::RECONCILE_ERROR),
        retries: RetryGate::default(),
        backoff: Backoff {
            first: args.notification_retry_wait,
            max: Duration::from_secs(5).max(args.notification_retry_wait),
        },
        synced: synced.clone(),
    });

    // Every change of the ConfigMap or Secret rebuilds the configuration and looks at every
    // object again (a new subscription or a fixed template may now have something to send).
    let (reloaded_tx, reloaded_rx) = watch::channel(());
    let reload = {
        let ctx = ctx.clone();
        let mut changes = Box::pin(futures::stream::select(
            config_map_events.map(|_| ()),
            secret_events.map(|_| ()),
        ));
        async move {
            let mut loaded = None;
            while changes.next().await.is_some() {
                // Load once both objects are listed (not a ConfigMap without its Secret), and
                // again only when their contents change.
                if !config_map_synced.is_synced() || !secret_synced.is_synced() {
                    continue;
                }
                let config_map = config_maps.state().into_iter().next();
                let secret = secrets.state().into_iter().next();
                let contents = (
                    config_map.as_ref().and_then(|c| c.data.clone()),
                    secret.as_ref().and_then(|s| s.data.clone()),
                );
                if loaded.as_ref() == Some(&contents) {
                    continue;
                }
                reload_config(&ctx, config_map.as_deref(), secret.as_deref());
                loaded = Some(contents);
                config_loaded_tx.send_replace(true);
                let _ = reloaded_tx.send(());
            }
        }
    };
    let on_reload = |rx: watch::Receiver<()>| {
        futures::stream::unfold(
            rx,
            |mut rx| async move { rx.changed().await.ok().map(|()| ((), rx)) },
        )
    };
    let concurrency = ControllerConfig::default().concurrency(args.notification_threads);
    let rollout_loop = Controller::for_stream(rollout_events.applied_objects(), rollouts)
        .with_config(concurrency.clone())
        .reconcile_all_on(leader.on_leading())
        .reconcile_all_on(on_reload(reloaded_rx.clone()))
        .owns_stream(rs_events.applied_objects())
        .graceful_shutdown_on(rt.shutdown_signal())
        .run(reconcile_rollout, error_policy, ctx.clone())
        .for_each(log_result);
    let run_loop = Controller::for_stream(run_events.applied_objects(), runs)
        .with_config(concurrency)
        .reconcile_all_on(leader.on_leading())
        .reconcile_all_on(on_reload(reloaded_rx))
        .graceful_shutdown_on(rt.shutdown_signal())
        .run(reconcile_run, error_policy, ctx)
        .for_each(log_result);
    let all = async move {
        let experiments = experiment_events.for_each(|_| futures::future::ready(()));
        tokio::select! {
            _ = futures::future::join(rollout_loop, run_loop) => {},
            () = reload => warn!("the notification configuration watch ended"),
            () = experiments => warn!("the Experiment watch ended"),
        }
    };
    rt.run(Synced::all(synced), all).await?;
    Ok(())
}

async fn log_result<K: Resource, E: std::fmt::Display>(
    res: Result<
        (kube::runtime::reflector::ObjectRef<K>, Requeue),
        kube::runtime::controller::Error<E, watcher::Error>,
    >,
) {
    match res {
        Ok((obj, _)) => debug!(object = %obj.name, "reconciled"),
        Err(e) => warn!(error = %e, "reconcile failed"),
    }
}

fn reload_config(ctx: &Context, config_map: Option<&ConfigMap>, secret: Option<&Secret>) {
    let data = config_map.and_then(|c| c.data.clone()).unwrap_or_default();
    let secrets: BTreeMap<String, String> = secret
        .and_then(|s| s.data.clone())
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, String::from_utf8_lossy(&v.0).into_owned()))
        .collect();
    let config = Config::parse(&data, secrets);
    let previous = ctx.config();
    info!(
        triggers = config.triggers.len(),
        templates = config.templates.len(),
        services = config.services.len(),
        problems = config.problems.len(),
        "notification configuration loaded"
    );
    if config.problems != previous.problems {
        for problem in &config.problems {
            warn!(problem = %problem, "notification configuration");
            if let Some(cm) = config_map {
                ctx.events.publish(Occurrence {
                    regarding: cm.object_ref(&()),
                    type_: EventType::Warning,
                    reason: reason::CONFIG_ERROR.into(),
                    message: problem.clone(),
                });
            }
        }
    }
    *ctx.config
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(config);
}

fn error_policy<K>(obj: Arc<K>, error: &Error, ctx: Arc<Context>) -> Requeue
where
    K: Resource<DynamicType = ()>,
{
    let wait = ctx.failures.failed(Failure {
        regarding: obj.object_ref(&()),
        key: &object_key(&*obj),
        category: error.category(),
        message: error.to_string(),
        report: true,
    });
    Requeue::requeue(wait)
}

/// Whether to act on objects now: the leader, with complete caches.
async fn acting(ctx: &Context) -> bool {
    ctx.leader.is_leader() && Synced::all(ctx.synced.clone()).await
}

async fn reconcile_rollout(rollout: Arc<Rollout>, ctx: Arc<Context>) -> Result<Requeue, Error> {
    if !acting(&ctx).await || rollout.metadata.deletion_timestamp.is_some() {
        return Ok(Requeue::await_change());
    }
    observe_reconcile(
        &*rollout,
        &ctx.reconciles,
        &ctx.failures,
        Error::category,
        async {
            let config = ctx.config();
            let wanted: Vec<Destination> = destinations(&config, [rollout.annotations()], rollout.labels())
                .into_iter()
                .filter(|d| !is_analysis_trigger(&d.trigger))
                .collect();
            if wanted.is_empty() {
                return Ok(Requeue::await_change());
            }
            let json = to_json(&*rollout)?;
            let replica_sets = if wanted.iter().any(|d| d.trigger == "on-scaling-replica-set") {
                owned_replica_sets(&ctx, &rollout)?
            } else {
                Vec::new()
            };
            let subject = Subject::Rollout {
                rollout: &json,
                replica_sets: &replica_sets,
            };
            let vars = json!({
                "rollout": json,
                "analysisRuns": rollout_runs(&ctx, &rollout)?,
            });
            notify(&*rollout, &wanted, &subject, vars, &config, &ctx).await
        },
    )
    .await
}

async fn reconcile_run(run: Arc<AnalysisRun>, ctx: Arc<Context>) -> Result<Requeue, Error> {
    if !acting(&ctx).await || run.metadata.deletion_timestamp.is_some() {
        return Ok(Requeue::await_change());
    }
    observe_reconcile(&*run, &ctx.reconciles, &ctx.failures, Error::category, async {
        let config = ctx.config();
        // A run created by a Rollout, or by an Experiment (itself perhaps created by a Rollout),
        // inherits their subscriptions to the analysis triggers.
        let namespace = run.namespace().unwrap_or_default();
        let experiment = owner(&run.metadata, "Experiment").and_then(|name| {
            ctx.experiments
                .get(&reflector::ObjectRef::new(&name).within(&namespace))
        });
        let rollout = owner(&run.metadata, "Rollout")
            .or_else(|| experiment.as_ref().and_then(|e| owner(&e.metadata, "Rollout")))
            .and_then(|name| {
                ctx.rollouts
                    .get(&reflector::ObjectRef::new(&name).within(&namespace))
            });
        let mut annotation_sets = vec![run.annotations()];
        annotation_sets.extend(experiment.as_ref().map(|e| e.annotations()));
        annotation_sets.extend(rollout.as_ref().map(|r| r.annotations()));
        let labels = rollout.as_ref().map_or(run.labels(), |r| r.labels());
        let wanted: Vec<Destination> = destinations(&config, annotation_sets, labels)
            .into_iter()
            .filter(|d| is_analysis_trigger(&d.trigger))
            .collect();
        if wanted.is_empty() {
            return Ok(Requeue::await_change());
        }
        let run_json = to_json(&*run)?;
        let mut vars = BTreeMap::from([
            ("analysisRun".to_string(), run_json.clone()),
            ("analysisRuns".to_string(), json!([run_json])),
        ]);
        if let Some(r) = &rollout {
            vars.insert("rollout".into(), to_json(&**r)?);
        }
        if let Some(e) = &experiment {
            vars.insert("experiment".into(), to_json(&**e)?);
        }
        let subject = Subject::AnalysisRun {
            run: &run_json,
            vars: &vars,
        };
        let template_vars = Value::Object(vars.clone().into_iter().collect());
        notify(&*run, &wanted, &subject, template_vars, &config, &ctx).await
    })
    .await
}

fn owner(meta: &kube::api::ObjectMeta, kind: &str) -> Option<String> {
    meta.owner_references
        .iter()
        .flatten()
        .find(|o| o.kind == kind && o.controller == Some(true))
        .map(|o| o.name.clone())
}

fn to_json<K: Serialize>(obj: &K) -> Result<Value, Error> {
    serde_json::to_value(obj).map_err(Error::Serialize)
}

fn owned_replica_sets(ctx: &Context, rollout: &Rollout) -> Result<Vec<Value>, Error> {
    let uid = rollout.uid().unwrap_or_default();
    ctx.replica_sets
        .state()
        .iter()
        .filter(|rs| {
            rs.namespace() == rollout.namespace()
                && shared_types::object_meta::is_owned_by(&rs.metadata, &uid)
        })
        .map(|rs| to_json(&**rs))
        .collect()
}

/// Argo's `analysisRuns` variable: the Rollout's runs of its current pod template, newest first.
fn rollout_runs(ctx: &Context, rollout: &Rollout) -> Result<Value, Error> {
    let uid = rollout.uid().unwrap_or_default();
    let hash = rollout
        .status
        .as_ref()
        .and_then(|s| s.current_pod_hash.clone())
        .unwrap_or_default();
    let mut runs: Vec<Arc<AnalysisRun>> = ctx
        .runs
        .state()
        .into_iter()
        .filter(|r| {
            r.namespace() == rollout.namespace()
                && shared_types::object_meta::is_owned_by(&r.metadata, &uid)
                && r.labels().get(keys::POD_TEMPLATE_HASH) == Some(&hash)
        })
        .collect();
    runs.sort_by(|a, b| b.metadata.creation_timestamp.cmp(&a.metadata.creation_timestamp));
    Ok(Value::Array(
        runs.iter().map(|r| to_json(&**r)).collect::<Result<_, _>>()?,
    ))
}

/// A notification ready to go: rendered for its destination.
struct Ready {
    due: Due,
    rendered: Vec<template::Rendered>,
}

/// Evaluates the subscribed triggers on `obj`, then claims, sends and records what is due.
async fn notify<K>(
    obj: &K,
    wanted: &[Destination],
    subject: &Subject<'_>,
    vars: Value,
    config: &Config,
    ctx: &Context,
) -> Result<Requeue, Error>
where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug,
{
    let regarding = obj.object_ref(&());
    let key = object_key(obj);
    let mut evaluated = Vec::new();
    for destination in wanted {
        let Some(conditions) = config.triggers.get(&destination.trigger) else {
            report(
                ctx,
                &regarding,
                &key,
                reason::TRIGGER_ERROR,
                format!(
                    "subscription to trigger {:?} ({}): no such trigger in {CONFIG_MAP}",
                    destination.trigger, destination.service
                ),
            );
            continue;
        };
        let (outcomes, errors) = trigger::evaluate(&destination.trigger, conditions, subject);
        for error in errors {
            report(ctx, &regarding, &key, reason::TRIGGER_ERROR, error.to_string());
        }
        evaluated.push((destination.clone(), outcomes));
    }
    let recorded = match Record::parse(obj.annotations().get(keys::NOTIFIED).map(String::as_str)) {
        Ok(record) => record,
        Err(problem) => {
            report(
                ctx,
                &regarding,
                &key,
                reason::TRIGGER_ERROR,
                format!("{problem}; starting a new record"),
            );
            Record::default()
        }
    };
    let (due, kept) = record::plan(&recorded, &evaluated);

    // A destination that failed recently (to render or to deliver) waits for its back-off: the
    // writes that release a failed claim would otherwise bring the object straight back here.
    let gate_key = |due: &Due| format!("{key}|{}", due.key);
    let mut next_try: Option<std::time::Instant> = None;
    // Render before claiming: a template that fails is reported and nothing half-made is sent.
    let mut ready = Vec::new();
    for due in due {
        if let Some(at) = ctx.retries.not_before(&gate_key(&due), std::time::Instant::now()) {
            earliest(&mut next_try, at);
            continue;
        }
        let Some(service) = config.services.get(&due.destination.service) else {
            report(
                ctx,
                &regarding,
                &key,
                reason::TRIGGER_ERROR,
                format!(
                    "subscription to {:?} through service {:?}: no service.*.{} in {CONFIG_MAP}",
                    due.destination.trigger, due.destination.service, due.destination.service
                ),
            );
            continue;
        };
        let mut destination_vars = vars.clone();
        if let Value::Object(map) = &mut destination_vars {
            map.insert("recipient".into(), json!(due.destination.recipient));
            // Argo's `serviceType` is the service's name (`slack`, or a webhook's name).
            map.insert("serviceType".into(), json!(due.destination.service));
            map.insert("secrets".into(), json!(config.secrets));
        }
        let rendered: Result<Vec<_>, String> = due
            .templates
            .iter()
            .map(|name| match config.templates.get(name) {
                Some(t) => template::render(name, t, &destination_vars).map_err(|e| e.to_string()),
                None => Err(format!("template {name:?} is not defined in {CONFIG_MAP}")),
            })
            .collect();
        match rendered {
            Ok(rendered) => ready.push(Ready { due, rendered }),
            Err(problem) => {
                earliest(
                    &mut next_try,
                    ctx.retries.failed(&gate_key(&due), std::time::Instant::now()),
                );
                ctx.sends.failed(&due.destination.trigger, service.kind());
                report(
                    ctx,
                    &regarding,
                    &key,
                    reason::TEMPLATE_ERROR,
                    format!(
                        "trigger {:?} to {}: {problem}; not sent",
                        due.destination.trigger, due.destination.service
                    ),
                );
            }
        }
    }
    let later = |next_try: Option<std::time::Instant>| match next_try {
        Some(at) => Requeue::requeue(at.saturating_duration_since(std::time::Instant::now())),
        None => Requeue::await_change(),
    };
    if ready.is_empty() {
        if kept != recorded {
            write_record::<K>(ctx, obj, &kept, None).await?;
        }
        return Ok(later(next_try));
    }

    // Claim every send in one write, conditional on the version this decision was made from.
    let now = jiff::Timestamp::now().as_second();
    let mut claimed = kept.clone();
    for r in &ready {
        claimed.0.insert(r.due.key.clone(), now);
    }
    match write_record::<K>(ctx, obj, &claimed, obj.resource_version()).await {
        Ok(()) => {}
        // Changed since we looked (or our cache is behind): decide again on the new version.
        Err(Error::Api(kube::Error::Api(s))) if s.code == 409 => {
            debug!(object = %key, "object changed before the notification claim; deciding again");
            return Ok(Requeue::requeue(Duration::from_millis(500)));
        }
        Err(e) => return Err(e),
    }

    let results = join_all(ready.iter().map(|r| deliver(r, config, ctx))).await;
    let failed: Vec<(&Ready, String)> = ready
        .iter()
        .zip(results)
        .filter_map(|(r, result)| result.err().map(|e| (r, e)))
        .collect();
    for r in &ready {
        if !failed.iter().any(|(f, _)| std::ptr::eq(*f, r)) {
            ctx.retries.succeeded(&gate_key(&r.due));
        }
    }
    if failed.is_empty() {
        return Ok(later(next_try));
    }
    // Release the failed claims so the next attempt sends them, after its back-off.
    let mut released = claimed;
    for (r, problem) in &failed {
        released.0.remove(&r.due.key);
        earliest(
            &mut next_try,
            ctx.retries.failed(&gate_key(&r.due), std::time::Instant::now()),
        );
        ctx.events.publish_at_most_every(
            format!(
                "{key}/{}/{}",
                r.due.destination.service, r.due.destination.trigger
            ),
            Duration::from_secs(300),
            Occurrence {
                regarding: regarding.clone(),
                type_: EventType::Warning,
                reason: reason::NOTIFICATION_FAILED.into(),
                message: format!("trigger {:?}: {problem}; will retry", r.due.destination.trigger),
            },
        );
    }
    write_record::<K>(ctx, obj, &released, None).await?;
    Ok(later(next_try))
}

/// Keeps the earlier of `next` and `at`.
fn earliest(next: &mut Option<std::time::Instant>, at: std::time::Instant) {
    *next = Some(next.map_or(at, |n| n.min(at)));
}

async fn deliver(ready: &Ready, config: &Config, ctx: &Context) -> Result<(), String> {
    let destination = &ready.due.destination;
    let Some(service) = config.services.get(&destination.service) else {
        return Err(format!("no service {:?}", destination.service));
    };
    for rendered in &ready.rendered {
        let started = std::time::Instant::now();
        let result = service::send(
            &destination.service,
            service,
            &destination.recipient,
            rendered,
            ctx.backoff,
        )
        .await;
        ctx.sends.observe(service.kind(), started.elapsed());
        match result {
            Ok(()) => {
                ctx.sends.succeeded(&destination.trigger, service.kind());
                info!(trigger = %destination.trigger, service = %destination.service, recipient = %destination.recipient, "notification sent");
            }
            Err(e) => {
                ctx.sends.failed(&destination.trigger, service.kind());
                warn!(trigger = %destination.trigger, service = %destination.service, error = %e, "notification failed");
                return Err(e.to_string());
            }
        }
    }
    Ok(())
}

/// Writes the record annotation, optionally only if the object is still at `resource_version`.
async fn write_record<K>(
    ctx: &Context,
    obj: &K,
    record: &Record,
    resource_version: Option<String>,
) -> Result<(), Error>
where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug,
{
    let api: Api<K> = Api::namespaced(ctx.client.clone(), &obj.namespace().unwrap_or_default());
    // An empty record removes the annotation, as Argo's.
    let value = if record.0.is_empty() {
        Value::Null
    } else {
        json!(record.to_annotation())
    };
    let mut metadata = json!({"annotations": {keys::NOTIFIED: value}});
    if let Some(rv) = resource_version {
        metadata["resourceVersion"] = json!(rv);
    }
    let params = PatchParams {
        field_manager: Some(field_manager::NOTIFICATION_CONTROLLER.into()),
        ..Default::default()
    };
    api.patch(
        &obj.name_any(),
        &params,
        &Patch::Merge(json!({ "metadata": metadata })),
    )
    .await
    .map(|_| ())
    .map_err(Error::Api)
}

/// A Warning Event on the object, at most once per cause every five minutes, and a log line.
fn report(ctx: &Context, regarding: &ObjectReference, key: &str, reason: &'static str, message: String) {
    warn!(object = %key, reason, message = %message, "notification problem");
    ctx.events.publish_at_most_every(
        format!("{key}/{reason}/{message}"),
        Duration::from_secs(300),
        Occurrence {
            regarding: regarding.clone(),
            type_: EventType::Warning,
            reason: reason.into(),
            message,
        },
    );
}

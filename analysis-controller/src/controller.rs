//! Wiring and I/O around [`crate::decide`]: the AnalysisRun loop on the shared runtime, argument
//! lookups (Secrets, fields of the run), provider calls run as tasks off the reconcile path
//! (their results wake the run again), status writes as merge patches, Events and metrics.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    sync::{Arc, Mutex},
    time::Duration,
};

use futures::StreamExt;
use jiff::Timestamp;
use k8s_openapi::api::{batch::v1::Job, core::v1::Secret};
use kube::{
    Api, Client, Resource, ResourceExt,
    api::{DeleteParams, Patch, PatchParams},
    runtime::{
        Controller, WatchStreamExt,
        controller::{Action as Requeue, Config as ControllerConfig},
        reflector::ObjectRef,
        watcher,
    },
};
use shared_runtime::{
    events::{EventPublisher, EventType, Occurrence},
    flags::CommonArgs,
    leader::{LeaderArgs, LeaderGate},
    metrics::{ObjectLabels, ReconcileMetrics},
    runtime::{Failure, FailurePolicy, Runtime, object_key, observe_reconcile},
    shard::{self, Ownership, Shard, ShardArgs},
    synced::{self, Synced},
};
use shared_types::{
    analysis::{AnalysisRun, AnalysisTemplate, ClusterAnalysisTemplate, FieldRef, Metric, SecretKeyRef},
    constants::field_manager,
};
use tracing::{debug, info, warn};

use crate::{
    Error,
    args::{ArgSource, LookupError, ResolvedArgs},
    decide::{CallKind, Decision, Finished, Inputs, decide},
    provider::{self, ProviderContext, ProviderEnv},
};

/// Flags of the analysis controller.
#[derive(clap::Parser, Clone, Debug)]
#[command(
    name = "analysis-controller",
    version,
    about = "Measures argoproj.io AnalysisRuns"
)]
pub struct Args {
    /// Flags shared by all controllers.
    #[command(flatten)]
    pub common: CommonArgs,
    /// Leader election: one replica measures (unless `--sharding`).
    #[command(flatten)]
    pub leader: LeaderArgs,
    /// Sharding: every replica measures its share of the runs.
    #[command(flatten)]
    pub shard: ShardArgs,
    /// AnalysisRuns reconciled in parallel (provider calls run outside these workers).
    #[arg(long, env = "ARGO_ROLLOUTS_ANALYSIS_THREADS", default_value_t = 30)]
    pub analysis_threads: u16,
    /// Longest a single provider call may take, whatever the metric says.
    #[arg(long, env = "ARGO_ROLLOUTS_PROVIDER_TIMEOUT_SECONDS", default_value_t = 60)]
    pub provider_timeout_seconds: u64,
}

/// Everything a reconcile needs.
pub struct Context {
    client: Client,
    events: EventPublisher,
    metrics: ReconcileMetrics,
    failures: FailurePolicy,
    env: ProviderEnv,
    provider_timeout: Duration,
    /// Provider calls in flight, by run uid and metric name.
    in_flight: Mutex<HashMap<String, BTreeSet<String>>>,
    /// Finished provider calls not yet written into their run's status, by run uid.
    finished: Mutex<HashMap<String, Vec<Finished>>>,
    /// Wakes a run whose provider call finished.
    wake: futures::channel::mpsc::UnboundedSender<ObjectRef<AnalysisRun>>,
    /// The resourceVersion each run had when this process last wrote its status: while the
    /// cache still shows it, the write has not arrived and a reconcile would only conflict.
    written_from: Mutex<HashMap<String, (String, std::time::Instant)>>,
    /// Whether this process leads: only the leader measures.
    leader: LeaderGate,
    /// With `--sharding`: which runs are this replica's.
    shard: Option<Shard>,
}

/// The Lease of the analysis controller (the rollout controller's is `argo-rollouts-controller-lock`).
pub const ANALYSIS_CONTROLLER_LEASE: &str = "argo-rollouts-analysis-controller-lock";

/// The shard group of the analysis controller's replicas with `--sharding`: member Leases
/// `argo-rollouts-analysis-controller[-<instance-id>]-member-<id>`.
pub const ANALYSIS_CONTROLLER_SHARD_GROUP: &str = "argo-rollouts-analysis-controller";

impl Context {
    /// Whether this process measures `run` now: the leader measures every run; with sharding,
    /// each replica its own share (a run taken over from another replica after the handoff).
    fn ownership(&self, run: &AnalysisRun) -> Ownership {
        match &self.shard {
            Some(shard) => shard.ownership(run.metadata.uid.as_deref().unwrap_or_default()),
            None if self.leader.is_leader() => Ownership::Mine,
            None => Ownership::NotMine,
        }
    }
}

/// Runs the controller until SIGTERM/SIGINT.
pub async fn run(args: Args) -> Result<(), Error> {
    provider::install_crypto_provider();
    let mut rt = Runtime::start(&args.common, "analysis-controller", "rollouts-controller").await?;
    rt.require_served::<AnalysisRun>().await?;
    let (leader, shard) = if args.shard.sharding {
        let group = shared_runtime::leader::lease_name(
            ANALYSIS_CONTROLLER_SHARD_GROUP,
            args.common.instance_id.as_deref(),
        );
        let shard = shard::join(
            rt.client.clone(),
            &args.leader.namespace(),
            &group,
            &args.shard,
            rt.shutdown.clone(),
        )
        .await?;
        shard.register_metrics(&mut rt.registry, "analysis_controller");
        (LeaderGate::always(), Some(shard))
    } else {
        (rt.elect(&args.leader, ANALYSIS_CONTROLLER_LEASE)?, None)
    };
    let instance = || watcher::Config::default().labels(&rt.instance_selector);
    let (runs, run_events, runs_synced) = synced::cached(rt.api::<AnalysisRun>(), instance());
    // Job metrics: a finished Job wakes its run.
    let (job_events, jobs_synced) = synced::track(
        watcher(
            rt.api::<Job>(),
            watcher::Config::default().labels("analysisrun.argoproj.io/uid"),
        )
        .default_backoff(),
    );
    // Templates only feed `analysis_template_info` / `analysis_template_metric_info`.
    let (templates, template_events, templates_synced) =
        synced::cached(rt.api::<AnalysisTemplate>(), instance());
    let (cluster_templates, cluster_template_events, cluster_templates_synced) =
        synced::cached(Api::<ClusterAnalysisTemplate>::all(rt.client.clone()), instance());
    let caches = futures::future::join(
        template_events.for_each(|_| futures::future::ready(())),
        cluster_template_events.for_each(|_| futures::future::ready(())),
    );
    let (wake, woken) = futures::channel::mpsc::unbounded();
    let ctx = Arc::new(Context {
        client: rt.client.clone(),
        events: rt.events.clone(),
        metrics: crate::metrics::register(
            &mut rt.registry,
            runs.clone(),
            templates,
            cluster_templates,
            shard.clone(),
        ),
        failures: FailurePolicy::new(rt.events.clone(), "ReconcileError"),
        env: ProviderEnv::from_env(),
        provider_timeout: Duration::from_secs(args.provider_timeout_seconds.max(1)),
        in_flight: Mutex::default(),
        finished: Mutex::default(),
        wake,
        written_from: Mutex::default(),
        leader: leader.clone(),
        shard: shard.clone(),
    });
    // A deleted run leaves nothing behind: its metrics series and what is kept in memory.
    let on_delete = ctx.clone();
    let events = run_events.inspect(move |event| {
        if let Ok(watcher::Event::Delete(run)) = event {
            forget_deleted(&on_delete, run);
        }
    });
    let membership_changes = match &shard {
        Some(shard) => shard.on_change().boxed(),
        None => futures::stream::pending().boxed(),
    };
    let work = Controller::for_stream(events.applied_objects(), runs)
        .with_config(ControllerConfig::default().concurrency(args.analysis_threads))
        .reconcile_all_on(leader.on_leading())
        .reconcile_all_on(membership_changes)
        .owns_stream(job_events.applied_objects())
        .reconcile_on(woken)
        .graceful_shutdown_on(rt.shutdown_signal())
        .run(reconcile, error_policy, ctx)
        .for_each(|res| async move {
            match res {
                // A run deleted while a re-check was scheduled: nothing to do.
                Err(kube::runtime::controller::Error::ObjectNotFound(obj)) => {
                    debug!(run = %obj.name, "run gone")
                }
                Err(e) => warn!(error = %e, "reconcile failed"),
                Ok(_) => {}
            }
        });
    let work = async move {
        tokio::select! {
            () = work => {},
            _ = caches => warn!("a template watch ended"),
        }
    };
    let synced = Synced::all([
        runs_synced,
        jobs_synced,
        templates_synced,
        cluster_templates_synced,
    ]);
    rt.run(synced, work).await?;
    Ok(())
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

async fn reconcile(run: Arc<AnalysisRun>, ctx: Arc<Context>) -> Result<Requeue, Error> {
    if run.metadata.deletion_timestamp.is_some() {
        return Ok(Requeue::await_change());
    }
    match ctx.ownership(&run) {
        Ownership::Mine => {}
        Ownership::MineFrom(at) => {
            return Ok(Requeue::requeue(
                at.saturating_duration_since(std::time::Instant::now()),
            ));
        }
        Ownership::NotMine => {
            // Another replica's (now): what this one kept about the run is stale.
            forget_unless_busy(&ctx, run.metadata.uid.as_deref().unwrap_or_default());
            return Ok(Requeue::await_change());
        }
    }
    observe_reconcile(
        &*run,
        &ctx.metrics,
        &ctx.failures,
        Error::category,
        reconcile_run(&run, &ctx),
    )
    .await
}

async fn reconcile_run(run: &Arc<AnalysisRun>, ctx: &Arc<Context>) -> Result<Requeue, Error> {
    let uid = run.uid().unwrap_or_default();
    {
        let mut written = lock(&ctx.written_from);
        match written.get(&uid) {
            // Our last status write is not in the cache yet: look again in a moment (for a few
            // seconds at most; then the write is taken as lost and the conflict, if any, retried).
            Some((from, at))
                if Some(from) == run.resource_version().as_ref() && at.elapsed() < Duration::from_secs(5) =>
            {
                return Ok(Requeue::requeue(Duration::from_millis(100)));
            }
            Some(_) => {
                written.remove(&uid);
            }
            None => {}
        }
    }
    let namespace = run.namespace().unwrap_or_default();
    // In this order: a call finishing in between is then seen as in flight, not as absent.
    let in_flight = lock(&ctx.in_flight).get(&uid).cloned().unwrap_or_default();
    let finished = lock(&ctx.finished).get(&uid).cloned().unwrap_or_default();
    // Secrets are read only for runs that still measure.
    let completed = run
        .status
        .as_ref()
        .is_some_and(|s| s.phase_or_pending().is_completed());
    let lookups = if completed {
        Lookups::default()
    } else {
        Lookups::read(run, &ctx.client).await?
    };
    let args = run.spec.args.clone().unwrap_or_default();
    // Two resolutions: the real one for the providers, and one with secrets masked for the
    // status (conditions quoted in messages) so no secret reaches the status.
    let resolved = ResolvedArgs::resolve(&args, &lookups);
    let shown = ResolvedArgs::resolve_without_secrets(&args, &lookups);
    let substitute = |r: &Result<ResolvedArgs, crate::args::ArgsError>| -> Result<Vec<Metric>, String> {
        let r = r
            .as_ref()
            .map_err(|e| format!("Unable to resolve metric arguments: {e}"))?;
        run.spec
            .metrics
            .iter()
            .map(|m| r.resolve_metric(m))
            .collect::<Result<_, _>>()
            .map_err(|e| format!("Unable to resolve metric arguments: {e}"))
    };
    let metrics_shown = substitute(&shown);
    let metrics_real = substitute(&resolved).unwrap_or_default();
    let secrets: Vec<String> = resolved
        .as_ref()
        .map(|r| r.secrets().to_vec())
        .unwrap_or_default();
    let now = Timestamp::now();
    let decision = decide(&Inputs {
        run,
        metrics: metrics_shown,
        finished: &finished,
        in_flight: &in_flight,
        now,
    });
    if decision.delete {
        info!(run = %run.name_any(), "deleting AnalysisRun past its ttlStrategy");
        let api: Api<AnalysisRun> = Api::namespaced(ctx.client.clone(), &namespace);
        match api.delete(&run.name_any(), &DeleteParams::background()).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => return Err(Error::Api(e)),
        }
        forget(ctx, &uid);
        return Ok(Requeue::await_change());
    }
    write_status(run, &decision, &secrets, ctx).await?;
    // Written: what was recorded may go.
    if !finished.is_empty() {
        let mut map = lock(&ctx.finished);
        if let Some(list) = map.get_mut(&uid) {
            list.drain(..finished.len().min(list.len()));
            if list.is_empty() {
                map.remove(&uid);
            }
        }
    }
    for event in &decision.events {
        ctx.events.publish(Occurrence {
            regarding: run.object_ref(&()),
            type_: if event.warning {
                EventType::Warning
            } else {
                EventType::Normal
            },
            reason: event.reason.clone(),
            message: crate::args::redact(&event.message, &secrets),
        });
    }
    for call in decision.calls {
        let Some(metric) = metrics_real.iter().find(|m| m.name == call.metric.name).cloned() else {
            continue;
        };
        start_call(run.clone(), metric, call.kind, ctx.clone());
    }
    if decision.status.phase_or_pending().is_completed() {
        forget_unless_busy(ctx, &uid);
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

/// Writes the decided status when it differs (a merge patch of the difference), with secret
/// values masked wherever a provider may have echoed them.
async fn write_status(
    run: &AnalysisRun,
    decision: &Decision,
    secrets: &[String],
    ctx: &Context,
) -> Result<(), Error> {
    let old = serde_json::to_value(run.status.clone().unwrap_or_default()).map_err(Error::Serialize)?;
    let mut new = serde_json::to_value(&decision.status).map_err(Error::Serialize)?;
    redact_strings(&mut new, secrets);
    let Some(diff) = shared_types::merge_patch::diff(&old, &new) else {
        return Ok(());
    };
    let api: Api<AnalysisRun> = Api::namespaced(ctx.client.clone(), &run.namespace().unwrap_or_default());
    let patch = serde_json::json!({
        "metadata": {"resourceVersion": run.resource_version()},
        "status": diff,
    });
    let params = PatchParams {
        field_manager: Some(field_manager::ANALYSIS_CONTROLLER.into()),
        ..Default::default()
    };
    let written = api
        .patch_status(&run.name_any(), &params, &Patch::Merge(&patch))
        .await
        .map_err(Error::Api)?;
    if let (Some(uid), Some(from)) = (run.uid(), run.resource_version())
        && written.resource_version().as_ref() != Some(&from)
    {
        lock(&ctx.written_from).insert(uid, (from, std::time::Instant::now()));
    }
    Ok(())
}

/// Masks secret values in the text a provider or a condition produced (`message`, `value` and
/// `metadata` fields), leaving everything else (phases, times, counts, names) as it is.
fn redact_strings(value: &mut serde_json::Value, secrets: &[String]) {
    fn all(value: &mut serde_json::Value, secrets: &[String]) {
        match value {
            serde_json::Value::String(text) => *text = crate::args::redact(text, secrets),
            serde_json::Value::Array(items) => items.iter_mut().for_each(|v| all(v, secrets)),
            serde_json::Value::Object(map) => map.values_mut().for_each(|v| all(v, secrets)),
            _ => {}
        }
    }
    match value {
        serde_json::Value::Array(items) => items.iter_mut().for_each(|v| redact_strings(v, secrets)),
        serde_json::Value::Object(map) => {
            for (key, v) in map.iter_mut() {
                match key.as_str() {
                    "message" | "value" | "metadata" => all(v, secrets),
                    _ => redact_strings(v, secrets),
                }
            }
        }
        _ => {}
    }
}

/// Forgets a deleted run: its per-run metrics series and the state kept in memory.
fn forget_deleted(ctx: &Context, run: &AnalysisRun) {
    let uid = run.uid().unwrap_or_default();
    forget(ctx, &uid);
    lock(&ctx.written_from).remove(&uid);
    ctx.metrics.forget(&ObjectLabels {
        namespace: run.namespace().unwrap_or_default(),
        name: run.name_any(),
    });
    ctx.failures.succeeded(&object_key(run));
}

/// Runs one provider call as a task; its result is kept for the run's next reconcile, which it
/// triggers.
fn start_call(run: Arc<AnalysisRun>, metric: Metric, kind: CallKind, ctx: Arc<Context>) {
    let uid = run.uid().unwrap_or_default();
    lock(&ctx.in_flight)
        .entry(uid.clone())
        .or_default()
        .insert(metric.name.clone());
    tokio::spawn(async move {
        let started_at = Timestamp::now();
        let provider_ctx = ProviderContext {
            run: &run,
            kube: Some(&ctx.client),
            env: &ctx.env,
        };
        let call = async {
            match &kind {
                CallKind::Measure => provider::measure(provider_ctx, &metric).await,
                CallKind::Resume(metadata) => provider::resume(provider_ctx, &metric, metadata).await,
                CallKind::Terminate(metadata) => provider::terminate(provider_ctx, &metric, metadata).await,
            }
        };
        let outcome = match tokio::time::timeout(ctx.provider_timeout, call).await {
            Ok(outcome) => outcome,
            Err(_) => Err(provider::ProviderError::new(format!(
                "provider call did not finish within {}s",
                ctx.provider_timeout.as_secs()
            ))),
        };
        debug!(run = %run.name_any(), metric = %metric.name, ok = outcome.is_ok(), "provider call finished");
        lock(&ctx.finished)
            .entry(uid.clone())
            .or_default()
            .push(Finished {
                metric: metric.name.clone(),
                started_at,
                outcome,
            });
        if let Some(set) = lock(&ctx.in_flight).get_mut(&uid) {
            set.remove(&metric.name);
        }
        // The receiver lives as long as the controller; a failed send means shutdown.
        let _ = ctx.wake.unbounded_send(ObjectRef::from_obj(&*run));
    });
}

/// Drops what is kept in memory for a run.
fn forget(ctx: &Context, uid: &str) {
    lock(&ctx.finished).remove(uid);
    lock(&ctx.in_flight).remove(uid);
}

fn forget_unless_busy(ctx: &Context, uid: &str) {
    let busy = lock(&ctx.in_flight).get(uid).is_some_and(|s| !s.is_empty());
    if !busy {
        forget(ctx, uid);
    }
}

fn error_policy(run: Arc<AnalysisRun>, error: &Error, ctx: Arc<Context>) -> Requeue {
    let conflict = matches!(error, Error::Api(kube::Error::Api(e)) if e.code == 409);
    let wait = ctx.failures.failed(Failure {
        regarding: run.object_ref(&()),
        key: &object_key(&*run),
        category: error.category(),
        message: error.to_string(),
        report: !conflict,
    });
    Requeue::requeue(wait)
}

/// Argument lookups: the Secrets the run's arguments name (read once per reconcile) and the
/// run's own fields.
#[derive(Default)]
struct Lookups {
    secrets: BTreeMap<String, BTreeMap<String, String>>,
    fields: serde_json::Value,
}

impl Lookups {
    async fn read(run: &AnalysisRun, client: &Client) -> Result<Self, Error> {
        let api: Api<Secret> = Api::namespaced(client.clone(), &run.namespace().unwrap_or_default());
        let mut secrets = BTreeMap::new();
        for arg in run.spec.args.iter().flatten() {
            let Some(r) = arg.value_from.as_ref().and_then(|v| v.secret_key_ref.as_ref()) else {
                continue;
            };
            if secrets.contains_key(&r.name) {
                continue;
            }
            // A missing Secret is reported by the lookup below, naming the argument.
            if let Some(secret) = api.get_opt(&r.name).await.map_err(Error::Api)? {
                let data = secret
                    .data
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(k, v)| (k, String::from_utf8_lossy(&v.0).into_owned()))
                    .chain(secret.string_data.unwrap_or_default())
                    .collect();
                secrets.insert(r.name.clone(), data);
            }
        }
        Ok(Self {
            secrets,
            fields: serde_json::to_value(run).map_err(Error::Serialize)?,
        })
    }
}

impl ArgSource for Lookups {
    fn secret(&self, r: &SecretKeyRef) -> Result<String, LookupError> {
        let data = self
            .secrets
            .get(&r.name)
            .ok_or_else(|| LookupError(format!("secrets \"{}\" not found", r.name)))?;
        data.get(&r.key)
            .cloned()
            .ok_or_else(|| LookupError::missing_key(r))
    }

    fn field(&self, f: &FieldRef) -> Result<String, LookupError> {
        field_value(&self.fields, &f.field_path)
            .ok_or_else(|| LookupError(format!("field {} not found in the AnalysisRun", f.field_path)))
    }
}

/// `metadata.name`, `metadata.labels['app']`, `spec.x.y` ... of an object, as a string.
fn field_value(object: &serde_json::Value, path: &str) -> Option<String> {
    let mut current = object;
    let mut rest = path;
    while !rest.is_empty() {
        let (segment, tail) = match rest.find(['.', '[']) {
            Some(0) if rest.starts_with('[') => {
                let end = rest.find(']')?;
                let key = rest[1..end].trim_matches(|c| c == '\'' || c == '"');
                current = current.get(key)?;
                rest = rest[end + 1..].trim_start_matches('.');
                continue;
            }
            Some(i) => (&rest[..i], rest[i..].trim_start_matches('.')),
            None => (rest, ""),
        };
        current = current.get(segment)?;
        rest = tail;
    }
    match current {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Null | serde_json::Value::Object(_) | serde_json::Value::Array(_) => None,
        other => Some(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn field_paths_read_like_the_downward_api() {
        let run =
            json!({"metadata": {"name": "r", "labels": {"app": "web", "a.b/c": "x"}}, "spec": {"n": 3}});
        assert_eq!(field_value(&run, "metadata.name").as_deref(), Some("r"));
        assert_eq!(
            field_value(&run, "metadata.labels['app']").as_deref(),
            Some("web")
        );
        assert_eq!(
            field_value(&run, "metadata.labels['a.b/c']").as_deref(),
            Some("x")
        );
        assert_eq!(field_value(&run, "spec.n").as_deref(), Some("3"));
        assert_eq!(field_value(&run, "metadata.labels['missing']"), None);
        assert_eq!(field_value(&run, "metadata"), None);
    }
}

#[cfg(test)]
mod redaction_tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_provider_text_is_masked() {
        let mut status = json!({
            "phase": "Error", "message": "token 1 refused", "startedAt": "2026-01-01T00:00:01Z",
            "metricResults": [{"name": "m1", "count": 1, "measurements": [{
                "value": "[1]", "message": "GET /1 failed", "metadata": {"url": "/x/1"},
                "finishedAt": "2026-01-01T00:00:01Z"
            }]}]
        });
        redact_strings(&mut status, &["1".to_string()]);
        assert_eq!(status["startedAt"], "2026-01-01T00:00:01Z");
        assert_eq!(status["metricResults"][0]["name"], "m1");
        assert_eq!(status["metricResults"][0]["count"], 1);
        let m = &status["metricResults"][0]["measurements"][0];
        assert_eq!(m["finishedAt"], "2026-01-01T00:00:01Z");
        for field in [
            &status["message"],
            &m["value"],
            &m["message"],
            &m["metadata"]["url"],
        ] {
            assert!(!field.to_string().contains('1'), "{field}");
        }
    }
}

//! The frame every controller binary runs in. A controller's `run` builds its watches and its
//! reconcile, and hands them to [`Runtime::run`]; everything around them is here, once:
//! logging, the client, the CRD-served check, the admin server and its readiness, the shutdown
//! token every loop drains on, the metrics registry, Events and the per-object error back-off.

use std::{future::Future, time::Duration};

use kube::{Api, Client, Resource, api::ListParams};
use prometheus_client::registry::Registry;
use tokio_util::sync::CancellationToken;
use tracing::{error, info};

use crate::{
    Error, admin,
    backoff::ErrorBackoff,
    events::{EventPublisher, EventType, Occurrence},
    flags::CommonArgs,
    leader::{LeaderArgs, LeaderGate, Leadership},
};

/// What a controller binary shares between its loops.
pub struct Runtime {
    /// API client (User-Agent `<component>/<version>`).
    pub client: Client,
    /// `rollout-controller`, `analysis-controller`, ...
    pub component: &'static str,
    /// The watched namespace, or None for all namespaces.
    pub namespace: Option<String>,
    /// The instance-id label selector the controller's own kinds are watched with.
    pub instance_selector: String,
    /// Cancelled on SIGTERM/SIGINT; every loop of the binary drains on it.
    pub shutdown: CancellationToken,
    /// Writes Events off the reconcile path.
    pub events: EventPublisher,
    /// Metrics, served on `/metrics` once [`Runtime::run`] starts.
    pub registry: Registry,
    common: CommonArgs,
    election: Option<(Leadership, CancellationToken)>,
}

impl Runtime {
    /// Sets up logging and the client, and ties the shutdown token to SIGTERM/SIGINT.
    /// Events name `event_source` as their reporting component (Argo's controllers use
    /// `rollouts-controller`).
    pub async fn start(
        common: &CommonArgs,
        component: &'static str,
        event_source: &'static str,
    ) -> Result<Self, Error> {
        crate::logging::init(&common.loglevel, common.logformat)?;
        let client = crate::client(common.kubeconfig.as_deref(), component).await?;
        let shutdown = CancellationToken::new();
        let on_signal = shutdown.clone();
        tokio::spawn(async move {
            crate::shutdown_signal().await;
            on_signal.cancel();
        });
        Ok(Self {
            events: EventPublisher::start(client.clone(), event_source, std::env::var("POD_NAME").ok()),
            client,
            component,
            namespace: common.namespace.clone().filter(|n| !n.is_empty()),
            instance_selector: common.instance_selector(),
            shutdown,
            registry: Registry::default(),
            common: common.clone(),
            election: None,
        })
    }

    /// Takes part in leader election on the Lease `<lease_base>[-<instance-id>]` (when
    /// `--leader-elect`); the returned gate tells reconciles whether to act. The standby keeps
    /// its caches warm; losing the lease ends [`Runtime::run`] with an error (the process exits
    /// non-zero), and a leader shutting down releases the lease after its loops have drained.
    pub fn elect(&mut self, args: &LeaderArgs, lease_base: &str) -> Result<LeaderGate, Error> {
        let lease = crate::leader::lease_name(lease_base, self.common.instance_id.as_deref());
        // Its own token: the lease is released only after the loops stop writing.
        let token = CancellationToken::new();
        let leadership = crate::leader::start(self.client.clone(), args, &lease, token.clone())?;
        leadership.register_metrics(&mut self.registry);
        let gate = leadership.gate();
        self.election = Some((leadership, token));
        Ok(gate)
    }

    /// An API for `K` in the watched namespace (or all namespaces).
    pub fn api<K>(&self) -> Api<K>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        <K as Resource>::DynamicType: Default,
    {
        match &self.namespace {
            Some(ns) => Api::namespaced(self.client.clone(), ns),
            None => Api::all(self.client.clone()),
        }
    }

    /// Fails with a message naming the CRD when the kind `K` is not served (CRD not installed)
    /// or cannot be listed (RBAC), instead of watch errors repeating in the log.
    pub async fn require_served<K>(&self) -> Result<(), Error>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope>
            + Clone
            + serde::de::DeserializeOwned
            + std::fmt::Debug,
        <K as Resource>::DynamicType: Default,
    {
        let dt = Default::default();
        self.api::<K>()
            .list_metadata(&ListParams::default().limit(1))
            .await
            .map(|_| ())
            .map_err(|source| Error::NotServed {
                resource: format!("{}.{}", K::plural(&dt), K::group(&dt)),
                source,
            })
    }

    /// A future that resolves when shutdown begins (for `graceful_shutdown_on`).
    pub fn shutdown_signal(&self) -> impl Future<Output = ()> + Send + 'static {
        self.shutdown.clone().cancelled_owned()
    }

    /// Serves the admin endpoints, marks the process ready once `synced` resolves true, and runs
    /// `work` (the controller loops, which drain on [`Runtime::shutdown_signal`]) until it ends.
    /// `/readyz` turns unready as soon as shutdown begins, so probes move away while loops drain.
    pub async fn run(
        self,
        synced: impl Future<Output = bool> + Send + 'static,
        work: impl Future<Output = ()>,
    ) -> Result<(), Error> {
        let mut admin_state = admin::AdminState::new(self.registry);
        if let Some((leadership, _)) = &self.election {
            admin_state = admin_state.with_leader(leadership.gate());
        }
        let admin_tasks = admin::serve(
            admin_state.clone(),
            &[self.common.metrics_addr, self.common.healthz_addr],
        )
        .await?;
        let readiness = {
            let (state, shutdown) = (admin_state.clone(), self.shutdown.clone());
            tokio::spawn(async move {
                tokio::select! {
                    ok = synced => if ok && !shutdown.is_cancelled() {
                        info!("caches synced; ready");
                        state.set_ready(true);
                    },
                    () = shutdown.cancelled() => {},
                }
                shutdown.cancelled().await;
                state.set_ready(false);
            })
        };
        info!(
            component = self.component,
            namespace = self.namespace.as_deref().unwrap_or("<all>"),
            instance_id = self.common.instance_id.as_deref().unwrap_or(""),
            "starting"
        );
        let lost = async {
            match &self.election {
                Some((leadership, _)) => leadership.lost().await,
                None => std::future::pending().await,
            }
        };
        let outcome = tokio::select! {
            () = work => {
                if !self.shutdown.is_cancelled() {
                    error!("controller loops ended before shutdown was requested");
                }
                Ok(())
            }
            () = lost => Err(Error::LeadershipLost),
        };
        if let Some((leadership, token)) = self.election {
            token.cancel();
            leadership.stopped().await;
        }
        admin_state.set_ready(false);
        readiness.abort();
        for task in admin_tasks {
            task.abort();
        }
        info!(component = self.component, "stopped");
        outcome
    }
}

/// What to do after a failed reconcile, shared by every controller: back off per object
/// (exponentially, reset by a success) and, unless the error is routine, say why on the object
/// with a Warning Event at most once per cause every five minutes.
pub struct FailurePolicy {
    backoff: ErrorBackoff,
    events: EventPublisher,
    reason: &'static str,
}

/// One failed reconcile, as [`FailurePolicy::failed`] reports it.
pub struct Failure<'a> {
    /// The object (for the Event).
    pub regarding: k8s_openapi::api::core::v1::ObjectReference,
    /// The back-off key (`namespace/name`).
    pub key: &'a str,
    /// A short category (deduplicates Events per cause).
    pub category: &'a str,
    /// What went wrong, for the Event message.
    pub message: String,
    /// Whether to record an Event (false for conflicts and errors reported otherwise).
    pub report: bool,
}

impl FailurePolicy {
    /// Waits from 200 ms doubling up to 60 s; Events use `reason`.
    pub fn new(events: EventPublisher, reason: &'static str) -> Self {
        Self {
            backoff: ErrorBackoff::new(Duration::from_millis(200), Duration::from_secs(60)),
            events,
            reason,
        }
    }

    /// The wait before retrying the object of `failure`, after recording it.
    pub fn failed(&self, failure: Failure<'_>) -> Duration {
        let wait = self.backoff.failed(failure.key);
        if failure.report {
            self.events.publish_at_most_every(
                format!("{}/{}", failure.key, failure.category),
                Duration::from_secs(300),
                Occurrence {
                    regarding: failure.regarding,
                    type_: EventType::Warning,
                    reason: self.reason.into(),
                    message: format!(
                        "reconcile failed (retrying in {}s): {}",
                        wait.as_secs().max(1),
                        failure.message
                    ),
                },
            );
        }
        wait
    }

    /// Resets the back-off of `key` after a successful reconcile.
    pub fn succeeded(&self, key: &str) {
        self.backoff.succeeded(key);
    }
}

/// The `main` of every controller binary: parse flags, run, and turn an error into a message on
/// stderr and a non-zero exit status (2 for a controller this build does not contain).
pub fn main<A, F>(component: &str, run: impl FnOnce(A) -> F) -> std::process::ExitCode
where
    A: clap::Parser,
    F: Future<Output = Result<(), Error>>,
{
    let args = A::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("{component}: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{component}: {e}");
            match e {
                Error::NotImplemented(_) => std::process::ExitCode::from(2),
                _ => std::process::ExitCode::FAILURE,
            }
        }
    }
}

/// `namespace/name`: the key of per-object state (back-off, Event deduplication).
pub fn object_key<K: kube::Resource>(obj: &K) -> String {
    let meta = obj.meta();
    format!(
        "{}/{}",
        meta.namespace.as_deref().unwrap_or_default(),
        meta.name.as_deref().unwrap_or_default()
    )
}

/// Runs one reconcile of `obj`: records its duration and, on failure, its error category in
/// `metrics`, and resets the object's back-off after a success.
pub async fn observe_reconcile<K, T, E>(
    obj: &K,
    metrics: &crate::metrics::ReconcileMetrics,
    failures: &FailurePolicy,
    category: impl Fn(&E) -> &'static str,
    reconcile: impl Future<Output = Result<T, E>>,
) -> Result<T, E>
where
    K: kube::Resource,
{
    let started = std::time::Instant::now();
    let result = reconcile.await;
    let meta = obj.meta();
    metrics.observe(
        &crate::metrics::ObjectLabels {
            namespace: meta.namespace.clone().unwrap_or_default(),
            name: meta.name.clone().unwrap_or_default(),
        },
        started.elapsed(),
        result.as_ref().err().map(category),
    );
    if result.is_ok() {
        failures.succeeded(&object_key(obj));
    }
    result
}

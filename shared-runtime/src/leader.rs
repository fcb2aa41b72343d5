//! Leader election on a `coordination.k8s.io/v1` Lease: of several replicas of a controller
//! exactly one reconciles, the others stand by and take over when it goes away.
//!
//! The algorithm is client-go's `leaderelection`, which Argo Rollouts uses, so the flags mean
//! what they mean there and a Lease written by one can be read by the other:
//! - every retry period a standby reads the Lease and claims it when it has no holder or when
//!   its record has not changed for the lease duration, measured on the standby's own clock from
//!   when it first saw that record (clock skew between nodes does not matter);
//! - the leader renews every retry period; when renewing keeps failing for the renew deadline,
//!   or another process holds the Lease, it has lost leadership and must stop reconciling;
//! - every write is conditional on the `resourceVersion` read, so two claims cannot both win;
//! - on shutdown the leader releases the Lease (no holder, 1s duration) so a standby takes over
//!   at its next retry instead of after the lease duration.
//!
//! Not the `kube-lease-manager` crate: it counts durations in whole seconds (no 2s retry period
//! and no sub-second timings), a standby sleeps until the expiry it last read instead of
//! re-reading every retry period (so a released Lease is taken over only when it would have
//! expired), that expiry is computed from the holder's `renewTime` against the local clock
//! (clock skew shifts it), and a holder whose renewals fail keeps reporting leadership (there is
//! no renew deadline), so two replicas could reconcile at once.

use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::{
    api::coordination::v1::{Lease, LeaseSpec},
    apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta},
    jiff::Timestamp,
};
use kube::{Api, Client, api::PostParams};
use prometheus_client::{metrics::gauge::Gauge, registry::Registry};
use shared_types::duration::parse_duration;
use tokio::{sync::watch, task::JoinHandle, time::Instant};
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use crate::Error;

/// The Lease the rollout controller elects its leader on: Argo's name, so that our controller
/// and Argo's never lead at the same time in one namespace.
pub const ROLLOUT_CONTROLLER_LEASE: &str = "argo-rollouts-controller-lock";

/// Argo's controller namespace when neither the flag nor `POD_NAMESPACE` names one.
const DEFAULT_NAMESPACE: &str = "argo-rollouts";

/// Leader election flags (Argo's names and defaults). Each binary flattens them into its clap
/// struct next to [`crate::flags::CommonArgs`].
#[derive(clap::Args, Clone, Debug)]
pub struct LeaderArgs {
    /// Elect a leader on a Lease so that only one replica reconciles. `--leader-elect=false`
    /// makes this process lead unconditionally (for a single replica).
    #[arg(
        long,
        env = "ARGO_ROLLOUTS_LEADER_ELECT",
        default_value_t = true,
        action = clap::ArgAction::Set,
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        value_parser = clap::builder::BoolishValueParser::new(),
    )]
    pub leader_elect: bool,
    /// Namespace of the Lease; defaults to POD_NAMESPACE, else `argo-rollouts`.
    #[arg(long, env = "ARGO_ROLLOUTS_LEADER_ELECTION_NAMESPACE")]
    pub leader_election_namespace: Option<String>,
    /// How long a standby waits after the leader's last renewal it saw before taking over.
    #[arg(
        long,
        env = "ARGO_ROLLOUTS_LEADER_ELECTION_LEASE_DURATION",
        default_value = "15s",
        value_parser = parse_duration
    )]
    pub leader_election_lease_duration: Duration,
    /// How long after its last successful renewal a leader whose renewals fail gives up
    /// leadership.
    #[arg(
        long,
        env = "ARGO_ROLLOUTS_LEADER_ELECTION_RENEW_DEADLINE",
        default_value = "10s",
        value_parser = parse_duration
    )]
    pub leader_election_renew_deadline: Duration,
    /// Wait between attempts to acquire or renew the Lease.
    #[arg(
        long,
        env = "ARGO_ROLLOUTS_LEADER_ELECTION_RETRY_PERIOD",
        default_value = "2s",
        value_parser = parse_duration
    )]
    pub leader_election_retry_period: Duration,
}

impl LeaderArgs {
    /// The namespace of the Lease: the flag, else `POD_NAMESPACE`, else `argo-rollouts`.
    pub fn namespace(&self) -> String {
        resolve_namespace(
            self.leader_election_namespace.as_deref(),
            std::env::var("POD_NAMESPACE").ok(),
        )
    }

    /// Checks that the timings leave room for each other: the leader must give up (renew
    /// deadline) before a standby may take over (lease duration), and must get more than one
    /// attempt (retry period) within its renew deadline.
    pub fn validate(&self) -> Result<(), Error> {
        let lease = self.leader_election_lease_duration;
        let renew = self.leader_election_renew_deadline;
        let retry = self.leader_election_retry_period;
        let message = if retry.is_zero() {
            Some("--leader-election-retry-period must be greater than zero".to_string())
        } else if renew <= retry {
            Some(format!(
                "--leader-election-retry-period ({retry:?}) must be shorter than \
                 --leader-election-renew-deadline ({renew:?})"
            ))
        } else if lease <= renew {
            Some(format!(
                "--leader-election-renew-deadline ({renew:?}) must be shorter than \
                 --leader-election-lease-duration ({lease:?})"
            ))
        } else {
            None
        };
        message.map_or(Ok(()), |m| Err(Error::LeaderElectionFlags(m)))
    }
}

/// Empty values count as unset, as Argo's empty `--leader-election-namespace` default does.
fn resolve_namespace(flag: Option<&str>, pod_namespace: Option<String>) -> String {
    flag.filter(|ns| !ns.is_empty())
        .map(str::to_string)
        .or(pod_namespace.filter(|ns| !ns.is_empty()))
        .unwrap_or_else(|| DEFAULT_NAMESPACE.to_string())
}

/// `<base>`, or `<base>-<instance-id>` so that controller instances with different instance
/// ids (which own disjoint objects) each elect their own leader.
pub fn lease_name(base: &str, instance_id: Option<&str>) -> String {
    match instance_id.filter(|id| !id.is_empty()) {
        Some(id) => format!("{base}-{id}"),
        None => base.to_string(),
    }
}

/// `<hostname>_<uuid>`, like Argo's: the hostname (the pod name) says which pod leads, the uuid
/// keeps a restarted pod with the same name from being taken for its predecessor.
fn identity() -> String {
    format!("{}_{}", hostname(), uuid::Uuid::new_v4())
}

fn hostname() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown".to_string())
}

/// Where the election stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Another process leads, or nobody yet.
    Standby,
    /// This process holds the Lease.
    Leading,
    /// This process held the Lease and lost it; the election is over.
    Lost,
    /// Shutdown ended the election (after releasing the Lease if held).
    Stopped,
}

/// This process's part in the election. Dropping it stops the election without releasing the
/// Lease (as a crash would); on shutdown cancel the token given to [`start`] and await
/// [`Leadership::stopped`] instead.
pub struct Leadership {
    identity: String,
    phase: watch::Receiver<Phase>,
    gauge: Gauge,
    task: Option<JoinHandle<()>>,
}

impl Leadership {
    /// Leadership without election (`--leader-elect=false`).
    fn always(identity: String) -> Self {
        // The sender is dropped at once: nothing changes, and receivers still see `Leading`.
        let (_, phase) = watch::channel(Phase::Leading);
        let gauge = Gauge::default();
        gauge.set(1);
        Self {
            identity,
            phase,
            gauge,
            task: None,
        }
    }

    /// `<hostname>_<uuid>`: the `holderIdentity` this process writes into the Lease.
    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// Whether this process leads now.
    pub fn is_leader(&self) -> bool {
        *self.phase.borrow() == Phase::Leading
    }

    /// Waits until this process leads: true then, false if the election ended first (shutdown
    /// while on standby, or leadership already lost).
    pub async fn became_leader(&self) -> bool {
        self.gate().became_leader().await
    }

    /// Resolves when this process led and then lost the Lease (renewals failed for the renew
    /// deadline, or another process took it). The process must then stop reconciling and exit
    /// non-zero: its caches and in-flight work date from its leadership. Never resolves after a
    /// release at shutdown or without election.
    pub async fn lost(&self) {
        let mut phase = self.phase.clone();
        if phase.wait_for(|p| *p == Phase::Lost).await.is_err() {
            std::future::pending::<()>().await;
        }
    }

    /// Waits until the election has ended. After the shutdown token is cancelled this returns
    /// once the Lease is released (bounded by the renew deadline), so the process may exit.
    pub async fn stopped(mut self) {
        if let Some(task) = self.task.take()
            && let Err(e) = task.await
        {
            warn!(error = %e, "leader election task failed");
        }
    }

    /// A cheap handle reconciles and the admin server use to ask whether this process leads.
    pub fn gate(&self) -> LeaderGate {
        LeaderGate(self.phase.clone())
    }

    /// Registers the `controller_leader` gauge (1 while this process leads, 0 otherwise); the
    /// election keeps it current.
    pub fn register_metrics(&self, registry: &mut Registry) {
        registry.register(
            "controller_leader",
            "1 if this process leads, 0 on standby",
            self.gauge.clone(),
        );
    }
}

/// Whether this process leads, for any number of readers (see [`Leadership::gate`]).
#[derive(Clone, Debug)]
pub struct LeaderGate(watch::Receiver<Phase>);

impl LeaderGate {
    /// A gate that always leads (tests, and binaries without election).
    pub fn always() -> Self {
        let (_, phase) = watch::channel(Phase::Leading);
        Self(phase)
    }

    /// Whether this process leads now.
    pub fn is_leader(&self) -> bool {
        *self.0.borrow() == Phase::Leading
    }

    /// `leader` or `standby`, as `/readyz` reports it.
    pub fn role(&self) -> &'static str {
        if self.is_leader() { "leader" } else { "standby" }
    }

    /// Waits until this process leads: true then, false if the election ended first.
    pub async fn became_leader(&self) -> bool {
        let mut phase = self.0.clone();
        matches!(
            phase.wait_for(|p| *p != Phase::Standby).await.map(|p| *p),
            Ok(Phase::Leading)
        )
    }

    /// Yields once when this process leads (at once if it already does), for a controller's
    /// `reconcile_all_on`: a new leader looks at every object. A process that loses the lead
    /// exits, so there is no second time.
    pub fn on_leading(&self) -> impl futures::Stream<Item = ()> + Send + 'static {
        let gate = self.clone();
        futures::stream::once(async move { gate.became_leader().await })
            .filter_map(|led| futures::future::ready(led.then_some(())))
    }
}

impl Drop for Leadership {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

/// Starts electing a leader on the Lease `lease_name` in the flags' namespace, in a background
/// task (call it inside the Tokio runtime). With `--leader-elect=false` the result leads at
/// once and no Lease is used.
///
/// Cancelling `shutdown` stops the election and releases the Lease if held. Cancel it after
/// the controller's loops have drained, so a standby does not start while this process still
/// writes. Fails only on contradictory timing flags; API errors are logged and retried.
pub fn start(
    client: Client,
    args: &LeaderArgs,
    lease_name: &str,
    shutdown: CancellationToken,
) -> Result<Leadership, Error> {
    let identity = identity();
    if !args.leader_elect {
        info!(identity, "leader election disabled; this process leads");
        return Ok(Leadership::always(identity));
    }
    args.validate()?;
    let namespace = args.namespace();
    let (phase_tx, phase) = watch::channel(Phase::Standby);
    let gauge = Gauge::default();
    let elector = Elector {
        api: Api::namespaced(client, &namespace),
        lease: lease_name.to_string(),
        display: format!("{namespace}/{lease_name}"),
        identity: identity.clone(),
        lease_seconds: lease_seconds(args.leader_election_lease_duration),
        renew_deadline: args.leader_election_renew_deadline,
        retry_period: args.leader_election_retry_period,
        cached: None,
        observed: None,
        phase: phase_tx,
        gauge: gauge.clone(),
    };
    info!(lease = %elector.display, identity, "attempting to acquire leader lease");
    let task = tokio::spawn(elector.run(shutdown));
    Ok(Leadership {
        identity,
        phase,
        gauge,
        task: Some(task),
    })
}

/// The lease duration as the Lease stores it, in whole seconds, rounded up: rounding down
/// would let standbys take over before this process's renew deadline ran out.
fn lease_seconds(duration: Duration) -> i32 {
    let secs = duration
        .as_secs()
        .saturating_add(u64::from(duration.subsec_nanos() > 0));
    i32::try_from(secs).unwrap_or(i32::MAX)
}

/// The outcome of one attempt to acquire or renew.
enum Attempt {
    /// This process holds the Lease.
    Holding,
    /// Another process holds a Lease that has not expired.
    HeldBy(String),
}

/// The background side of a [`Leadership`].
struct Elector {
    api: Api<Lease>,
    lease: String,
    /// `<namespace>/<name>` for logs.
    display: String,
    identity: String,
    lease_seconds: i32,
    renew_deadline: Duration,
    retry_period: Duration,
    /// The Lease as this process last wrote it. Its `resourceVersion` lets the next renewal
    /// (and the release) be written without reading first, and fail if anyone else wrote.
    cached: Option<Lease>,
    /// The Lease spec last seen and when (on our clock) it was first seen: a holder's claim is
    /// valid for its lease duration from then.
    observed: Option<(LeaseSpec, Instant)>,
    phase: watch::Sender<Phase>,
    gauge: Gauge,
}

impl Elector {
    async fn run(mut self, shutdown: CancellationToken) {
        if !self.acquire(&shutdown).await {
            self.set(Phase::Stopped);
            return;
        }
        info!(lease = %self.display, identity = %self.identity, "became leader");
        self.set(Phase::Leading);
        if self.renew(&shutdown).await {
            self.release().await;
            self.set(Phase::Stopped);
        } else {
            self.set(Phase::Lost);
        }
    }

    fn set(&self, phase: Phase) {
        self.gauge.set(i64::from(phase == Phase::Leading));
        self.phase.send_replace(phase);
    }

    /// Tries every retry period until this process holds the Lease; false if shutdown came
    /// first.
    async fn acquire(&mut self, shutdown: &CancellationToken) -> bool {
        let mut last_holder: Option<String> = None;
        loop {
            let attempt = tokio::select! {
                biased;
                () = shutdown.cancelled() => return false,
                attempt = tokio::time::timeout(self.renew_deadline, self.try_acquire_or_renew()) => attempt,
            };
            match attempt {
                Ok(Ok(Attempt::Holding)) => return true,
                Ok(Ok(Attempt::HeldBy(holder))) => {
                    if last_holder.as_deref() != Some(holder.as_str()) {
                        info!(lease = %self.display, %holder, "lease held by another process; standing by");
                        last_holder = Some(holder);
                    }
                }
                Ok(Err(e)) => {
                    warn!(lease = %self.display, error = %e, "cannot acquire leader lease; retrying")
                }
                Err(_) => warn!(lease = %self.display, "acquiring leader lease timed out; retrying"),
            }
            tokio::select! {
                biased;
                () = shutdown.cancelled() => return false,
                () = tokio::time::sleep(self.retry_period) => {},
            }
        }
    }

    /// Renews every retry period while leading. True when shutdown ended it, false when
    /// leadership was lost: nothing was renewed for the renew deadline, or another process
    /// holds the Lease.
    ///
    /// The deadline runs from the last successful renewal (client-go's from the start of the
    /// failing round), so the leader gives up before the lease duration has passed since the
    /// renewal standbys last saw, whatever the retry period.
    async fn renew(&mut self, shutdown: &CancellationToken) -> bool {
        let mut renewed_at = Instant::now();
        loop {
            tokio::select! {
                biased;
                () = shutdown.cancelled() => return true,
                () = tokio::time::sleep(self.retry_period) => {},
            }
            let deadline = renewed_at + self.renew_deadline;
            loop {
                // Standbys time the lease from when the renewal was written, which is no earlier
                // than when it was sent: counting from the send keeps our deadline the earlier.
                let sent_at = Instant::now();
                let attempt = tokio::select! {
                    biased;
                    () = shutdown.cancelled() => return true,
                    attempt = tokio::time::timeout_at(deadline, self.try_acquire_or_renew()) => attempt,
                };
                match attempt {
                    Ok(Ok(Attempt::Holding)) => {
                        renewed_at = sent_at;
                        break;
                    }
                    Ok(Ok(Attempt::HeldBy(holder))) => {
                        error!(lease = %self.display, %holder, "another process holds the leader lease; leadership lost");
                        return false;
                    }
                    Ok(Err(e)) => {
                        warn!(lease = %self.display, error = %e, "cannot renew leader lease; retrying")
                    }
                    Err(_) => {}
                }
                let now = Instant::now();
                if now >= deadline {
                    error!(lease = %self.display, renew_deadline = ?self.renew_deadline, "leader lease not renewed within the renew deadline; leadership lost");
                    return false;
                }
                tokio::select! {
                    biased;
                    () = shutdown.cancelled() => return true,
                    () = tokio::time::sleep_until((now + self.retry_period).min(deadline)) => {},
                }
            }
        }
    }

    /// One round of client-go's `tryAcquireOrRenew`.
    async fn try_acquire_or_renew(&mut self) -> Result<Attempt, kube::Error> {
        // Fast path for the holder: write over the Lease it wrote last, without reading first.
        if let Some(cached) = self.cached.as_ref().filter(|l| self.holds(l)) {
            let mut next = cached.clone();
            next.spec = Some(claimed_spec(
                cached.spec.as_ref(),
                &self.identity,
                self.lease_seconds,
                Timestamp::now(),
            ));
            match self.api.replace(&self.lease, &PostParams::default(), &next).await {
                Ok(written) => {
                    self.remember(written);
                    return Ok(Attempt::Holding);
                }
                Err(e) => {
                    debug!(lease = %self.display, error = %e, "renewing the cached lease failed; reading it")
                }
            }
        }
        let Some(lease) = self.api.get_opt(&self.lease).await? else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.lease.clone()),
                    ..Default::default()
                },
                spec: Some(claimed_spec(
                    None,
                    &self.identity,
                    self.lease_seconds,
                    Timestamp::now(),
                )),
            };
            let created = self.api.create(&PostParams::default(), &lease).await?;
            self.remember(created);
            return Ok(Attempt::Holding);
        };
        let spec = lease.spec.clone().unwrap_or_default();
        let now = Instant::now();
        let observed_at = match &self.observed {
            Some((seen, at)) if *seen == spec => *at,
            _ => {
                self.observed = Some((spec.clone(), now));
                now
            }
        };
        if let Some(holder) = held_by_other(&spec, &self.identity, observed_at, now) {
            return Ok(Attempt::HeldBy(holder));
        }
        let next = Lease {
            metadata: lease.metadata,
            spec: Some(claimed_spec(
                Some(&spec),
                &self.identity,
                self.lease_seconds,
                Timestamp::now(),
            )),
        };
        let written = self
            .api
            .replace(&self.lease, &PostParams::default(), &next)
            .await?;
        self.remember(written);
        Ok(Attempt::Holding)
    }

    fn holds(&self, lease: &Lease) -> bool {
        lease.spec.as_ref().and_then(|s| s.holder_identity.as_deref()) == Some(self.identity.as_str())
    }

    fn remember(&mut self, lease: Lease) {
        self.observed = Some((lease.spec.clone().unwrap_or_default(), Instant::now()));
        self.cached = Some(lease);
    }

    /// Gives the Lease up (client-go's `ReleaseOnCancel` record: no holder, 1s duration) so a
    /// standby claims it at its next retry instead of after the lease duration.
    async fn release(&mut self) {
        let Some(mut lease) = self.cached.take().filter(|l| self.holds(l)) else {
            return;
        };
        let now = Some(MicroTime(Timestamp::now()));
        lease.spec = Some(LeaseSpec {
            holder_identity: Some(String::new()),
            lease_duration_seconds: Some(1),
            acquire_time: now.clone(),
            renew_time: now,
            ..lease.spec.unwrap_or_default()
        });
        let params = PostParams::default();
        let release = self.api.replace(&self.lease, &params, &lease);
        match tokio::time::timeout(self.renew_deadline, release).await {
            Ok(Ok(_)) => info!(lease = %self.display, "released leader lease"),
            Ok(Err(e)) => {
                warn!(lease = %self.display, error = %e, "cannot release leader lease; a standby takes over when it expires")
            }
            Err(_) => {
                warn!(lease = %self.display, "releasing leader lease timed out; a standby takes over when it expires")
            }
        }
    }
}

/// The holder of `spec` if it is another process whose claim is still valid: its lease
/// duration has not passed since we first saw this record at `observed_at`.
fn held_by_other(spec: &LeaseSpec, identity: &str, observed_at: Instant, now: Instant) -> Option<String> {
    let holder = spec
        .holder_identity
        .as_deref()
        .filter(|h| !h.is_empty() && *h != identity)?;
    let seconds = u64::try_from(spec.lease_duration_seconds.unwrap_or(0)).unwrap_or(0);
    (observed_at + Duration::from_secs(seconds) > now).then(|| holder.to_string())
}

/// The spec claiming (or renewing) the Lease for `identity`: a renewal keeps the acquire time
/// and transition count, a takeover restarts the one and counts one more of the other.
fn claimed_spec(old: Option<&LeaseSpec>, identity: &str, lease_seconds: i32, now: Timestamp) -> LeaseSpec {
    let old = old.cloned();
    let renewing = old.as_ref().and_then(|s| s.holder_identity.as_deref()) == Some(identity);
    let transitions = old.as_ref().and_then(|s| s.lease_transitions).unwrap_or(0);
    let (acquire_time, transitions) = match &old {
        Some(spec) if renewing => (spec.acquire_time.clone(), transitions),
        Some(_) => (Some(MicroTime(now)), transitions.saturating_add(1)),
        None => (Some(MicroTime(now)), 0),
    };
    LeaseSpec {
        holder_identity: Some(identity.to_string()),
        lease_duration_seconds: Some(lease_seconds),
        acquire_time,
        renew_time: Some(MicroTime(now)),
        lease_transitions: Some(transitions),
        ..old.unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory, Parser};

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        leader: LeaderArgs,
    }

    fn parse(args: &[&str]) -> Result<LeaderArgs, clap::Error> {
        Cli::try_parse_from(std::iter::once("x").chain(args.iter().copied())).map(|c| c.leader)
    }

    fn err_text(args: &LeaderArgs) -> String {
        match args.validate() {
            Err(e) => e.to_string(),
            Ok(()) => panic!("{args:?} should be rejected"),
        }
    }

    #[test]
    fn clap_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn defaults_are_argos() {
        let args = parse(&[]).expect("parses with defaults");
        assert!(args.leader_elect);
        assert_eq!(args.leader_election_namespace, None);
        assert_eq!(args.leader_election_lease_duration, Duration::from_secs(15));
        assert_eq!(args.leader_election_renew_deadline, Duration::from_secs(10));
        assert_eq!(args.leader_election_retry_period, Duration::from_secs(2));
        args.validate().expect("defaults are consistent");
    }

    #[test]
    fn leader_elect_takes_go_style_booleans() {
        assert!(!parse(&["--leader-elect=false"]).expect("=false").leader_elect);
        assert!(parse(&["--leader-elect=true"]).expect("=true").leader_elect);
        assert!(parse(&["--leader-elect"]).expect("bare flag").leader_elect);
        assert!(parse(&["--leader-elect=maybe"]).is_err());
    }

    #[test]
    fn durations_are_go_duration_strings() {
        let args = parse(&[
            "--leader-election-lease-duration=1m30s",
            "--leader-election-renew-deadline",
            "1500ms",
            "--leader-election-retry-period=200ms",
            "--leader-election-namespace=ops",
        ])
        .expect("parses");
        assert_eq!(args.leader_election_lease_duration, Duration::from_secs(90));
        assert_eq!(args.leader_election_renew_deadline, Duration::from_millis(1500));
        assert_eq!(args.leader_election_retry_period, Duration::from_millis(200));
        assert_eq!(args.namespace(), "ops");
        let missing_unit = parse(&["--leader-election-lease-duration=15"])
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(missing_unit.contains("missing unit"), "{missing_unit}");
    }

    #[test]
    fn contradictory_timings_are_rejected_naming_the_flags() {
        let base = parse(&[]).expect("defaults");
        let text = err_text(&LeaderArgs {
            leader_election_renew_deadline: Duration::from_secs(15),
            ..base.clone()
        });
        assert!(
            text.contains("--leader-election-renew-deadline (15s) must be shorter than --leader-election-lease-duration (15s)"),
            "{text}"
        );
        let text = err_text(&LeaderArgs {
            leader_election_retry_period: Duration::from_secs(10),
            ..base.clone()
        });
        assert!(
            text.contains("--leader-election-retry-period (10s) must be shorter than --leader-election-renew-deadline (10s)"),
            "{text}"
        );
        let text = err_text(&LeaderArgs {
            leader_election_retry_period: Duration::ZERO,
            ..base
        });
        assert!(text.contains("--leader-election-retry-period"), "{text}");
    }

    #[test]
    fn namespace_is_flag_then_pod_namespace_then_argo_rollouts() {
        assert_eq!(resolve_namespace(Some("ops"), Some("pod".into())), "ops");
        assert_eq!(resolve_namespace(None, Some("pod".into())), "pod");
        assert_eq!(resolve_namespace(Some(""), Some("pod".into())), "pod");
        assert_eq!(resolve_namespace(None, None), "argo-rollouts");
        assert_eq!(resolve_namespace(None, Some(String::new())), "argo-rollouts");
    }

    #[test]
    fn lease_name_appends_the_instance_id() {
        assert_eq!(
            lease_name(ROLLOUT_CONTROLLER_LEASE, None),
            "argo-rollouts-controller-lock"
        );
        assert_eq!(
            lease_name(ROLLOUT_CONTROLLER_LEASE, Some("")),
            "argo-rollouts-controller-lock"
        );
        assert_eq!(
            lease_name(ROLLOUT_CONTROLLER_LEASE, Some("blue")),
            "argo-rollouts-controller-lock-blue"
        );
    }

    #[test]
    fn identity_is_hostname_underscore_uuid() {
        let id = identity();
        let (host, uuid) = id.rsplit_once('_').expect("has an underscore");
        assert!(!host.is_empty());
        let uuid = uuid::Uuid::parse_str(uuid).expect("a uuid");
        assert_eq!(uuid.get_version_num(), 4);
        assert_ne!(identity(), id, "a new uuid per process start");
    }

    #[test]
    fn lease_seconds_round_up() {
        assert_eq!(lease_seconds(Duration::from_secs(15)), 15);
        assert_eq!(lease_seconds(Duration::from_millis(1500)), 2);
        assert_eq!(lease_seconds(Duration::from_secs(u64::MAX)), i32::MAX);
        assert_eq!(lease_seconds(Duration::MAX), i32::MAX);
    }

    #[test]
    fn claims_count_transitions_and_renewals_keep_the_acquire_time() {
        let t0 = Timestamp::from_second(1_700_000_000).expect("valid");
        let t1 = Timestamp::from_second(1_700_000_002).expect("valid");
        let created = claimed_spec(None, "a", 15, t0);
        assert_eq!(created.holder_identity.as_deref(), Some("a"));
        assert_eq!(created.lease_transitions, Some(0));
        assert_eq!(created.lease_duration_seconds, Some(15));

        let renewed = claimed_spec(Some(&created), "a", 15, t1);
        assert_eq!(renewed.acquire_time, Some(MicroTime(t0)));
        assert_eq!(renewed.renew_time, Some(MicroTime(t1)));
        assert_eq!(renewed.lease_transitions, Some(0));

        let taken = claimed_spec(Some(&renewed), "b", 15, t1);
        assert_eq!(taken.holder_identity.as_deref(), Some("b"));
        assert_eq!(taken.acquire_time, Some(MicroTime(t1)));
        assert_eq!(taken.lease_transitions, Some(1));
    }

    #[test]
    fn another_holder_is_valid_for_its_duration_from_when_we_saw_it() {
        let spec = LeaseSpec {
            holder_identity: Some("b".into()),
            lease_duration_seconds: Some(15),
            ..Default::default()
        };
        let seen = Instant::now();
        assert_eq!(
            held_by_other(&spec, "a", seen, seen + Duration::from_secs(14)),
            Some("b".into())
        );
        assert_eq!(
            held_by_other(&spec, "a", seen, seen + Duration::from_secs(15)),
            None,
            "expired"
        );
        assert_eq!(held_by_other(&spec, "b", seen, seen), None, "our own claim");
        let released = LeaseSpec {
            holder_identity: Some(String::new()),
            lease_duration_seconds: Some(1),
            ..Default::default()
        };
        assert_eq!(held_by_other(&released, "a", seen, seen), None, "released");
    }

    /// An API server holding one Lease that answers 500 to everything once `failing` is set
    /// (a leader cut off from the API server).
    fn stub_client(failing: std::sync::Arc<std::sync::atomic::AtomicBool>) -> Client {
        type BoxError = Box<dyn std::error::Error + Send + Sync>;
        let stored = std::sync::Arc::new(std::sync::Mutex::new(None::<Vec<u8>>));
        let service = tower::service_fn(move |req: http::Request<kube::client::Body>| {
            let (stored, failing) = (stored.clone(), failing.clone());
            async move {
                let status = |code: u16, reason: &str| {
                    let body = format!(
                        r#"{{"kind":"Status","apiVersion":"v1","status":"Failure","reason":"{reason}","code":{code}}}"#
                    );
                    (code, body.into_bytes())
                };
                let (code, body) = if failing.load(std::sync::atomic::Ordering::SeqCst) {
                    status(500, "InternalError")
                } else if req.method() == http::Method::GET {
                    match stored.lock().expect("not poisoned").clone() {
                        Some(lease) => (200, lease),
                        None => status(404, "NotFound"),
                    }
                } else {
                    // Create and replace: store the Lease as written and echo it.
                    let lease = req.into_body().collect_bytes().await?.to_vec();
                    *stored.lock().expect("not poisoned") = Some(lease.clone());
                    (200, lease)
                };
                let response = http::Response::builder()
                    .status(code)
                    .header("content-type", "application/json")
                    .body(kube::client::Body::from(body))?;
                Ok::<_, BoxError>(response)
            }
        });
        Client::new(service, "default")
    }

    #[tokio::test]
    async fn a_leader_that_cannot_renew_gives_up_within_the_renew_deadline() {
        let failing = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let args = parse(&[
            "--leader-election-lease-duration=1s",
            "--leader-election-renew-deadline=300ms",
            "--leader-election-retry-period=50ms",
            "--leader-election-namespace=ops",
        ])
        .expect("parses");
        let shutdown = CancellationToken::new();
        let leadership = start(stub_client(failing.clone()), &args, "lock", shutdown.clone()).expect("valid");
        let led = tokio::time::timeout(Duration::from_secs(2), leadership.became_leader()).await;
        assert!(matches!(led, Ok(true)), "{led:?}");
        // Renewals keep succeeding meanwhile.
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert!(leadership.is_leader());

        failing.store(true, std::sync::atomic::Ordering::SeqCst);
        let cut_off = std::time::Instant::now();
        tokio::time::timeout(Duration::from_secs(2), leadership.lost())
            .await
            .expect("loss reported");
        let after = cut_off.elapsed();
        // Before a standby could take over (the lease duration), but not at the first failure.
        assert!(after < Duration::from_secs(1), "{after:?}");
        assert!(after >= Duration::from_millis(150), "{after:?}");
        assert!(!leadership.is_leader());
        assert!(!leadership.became_leader().await, "the election is over");
        shutdown.cancel();
        leadership.stopped().await;
    }

    #[tokio::test]
    async fn disabled_election_always_leads() {
        let config = kube::Config::new("http://127.0.0.1:9".parse().expect("static URL"));
        let client = Client::try_from(config).expect("client from static config");
        let args = parse(&["--leader-elect=false", "--leader-election-retry-period=1h"]).expect("parses");
        let leadership =
            start(client, &args, "lock", CancellationToken::new()).expect("no validation when disabled");
        assert!(leadership.is_leader());
        assert!(leadership.became_leader().await);
        let lost = tokio::time::timeout(Duration::from_millis(50), leadership.lost()).await;
        assert!(lost.is_err(), "never lost");

        let mut registry = Registry::default();
        leadership.register_metrics(&mut registry);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).expect("encodes");
        assert!(text.contains("controller_leader 1"), "{text}");
        leadership.stopped().await;
    }
}

//! One reconcile of a Rollout as a pure function: from what was observed (the Rollout, its
//! ReplicaSets and Services, the time) to what must change (actions, events, the new status and
//! when to look again). The apply step in [`crate::reconcile`] only executes the plan.
//!
//! The steps follow Argo Rollouts' `syncHandler` so the same inputs lead to the same writes.
//! Actions update a working copy of the observed objects, so later steps in the same reconcile
//! see earlier changes (a new ReplicaSet, a switched Service selector), as Argo's do.

use std::{
    collections::{BTreeMap, BTreeSet},
    time::Duration,
};

use serde_json::Value;

use k8s_openapi::{
    api::{
        apps::v1::ReplicaSet,
        core::v1::{Affinity, PodAffinityTerm, WeightedPodAffinityTerm},
        core::v1::{Pod, Service},
        networking::v1::Ingress,
    },
    apimachinery::pkg::apis::meta::v1::Time,
    apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement},
    jiff::Timestamp,
};
use shared_types::{
    analysis::{AnalysisRun, AnalysisTemplate, ClusterAnalysisTemplate},
    analysis_run::Templates,
    constants::{condition_type, event_reason, keys, message, reason},
    experiment::Experiment,
    field_error::FieldError,
    hash, pod_template, replicaset as rsutil,
    rollout::{Rollout, RolloutStatus},
    validation,
};

use crate::conditions::{calculate_phase, new_condition, remove_condition, set_condition};

/// Everything one reconcile looks at.
#[derive(Clone, Debug)]
pub struct Observed {
    /// The Rollout as last read.
    pub rollout: Rollout,
    /// ReplicaSets controlled by the Rollout.
    pub replica_sets: Vec<ReplicaSet>,
    /// ReplicaSets without a controller whose labels match the Rollout's selector: adopted
    /// before anything else is planned.
    pub orphans: Vec<ReplicaSet>,
    /// Names of other ReplicaSets in the namespace starting with `<rollout>-` (not ours): a new
    /// ReplicaSet whose name is taken means a hash collision.
    pub taken_replica_set_names: BTreeSet<String>,
    /// Services the Rollout references, by name; missing ones are absent.
    pub services: BTreeMap<String, Service>,
    /// Pods of the Rollout, only gathered while a restart (`spec.restartAt`) is pending.
    pub pods: Vec<Pod>,
    /// Istio VirtualServices the Rollout references, by the name it uses for them.
    pub virtual_services: BTreeMap<String, Value>,
    /// The Istio DestinationRule it references, if found.
    pub destination_rule: Option<Value>,
    /// Its NGINX stable Ingresses and existing canary Ingresses, by name.
    pub ingresses: BTreeMap<String, Ingress>,
    /// The object `spec.workloadRef` names, as JSON, if found.
    pub workload: Option<Value>,
    /// AnalysisRuns controlled by the Rollout.
    pub analysis_runs: Vec<AnalysisRun>,
    /// Experiments controlled by the Rollout.
    pub experiments: Vec<Experiment>,
    /// AnalysisTemplates of the Rollout's namespace, by name.
    pub analysis_templates: BTreeMap<String, AnalysisTemplate>,
    /// ClusterAnalysisTemplates, by name.
    pub cluster_analysis_templates: BTreeMap<String, ClusterAnalysisTemplate>,
    /// The current time.
    pub now: Timestamp,
}

impl Observed {
    /// The Rollout with nothing else observed (tests fill in what they need).
    pub fn empty(rollout: Rollout) -> Self {
        Self {
            rollout,
            replica_sets: Vec::new(),
            orphans: Vec::new(),
            taken_replica_set_names: BTreeSet::new(),
            services: BTreeMap::new(),
            pods: Vec::new(),
            virtual_services: BTreeMap::new(),
            destination_rule: None,
            ingresses: BTreeMap::new(),
            workload: None,
            analysis_runs: Vec::new(),
            experiments: Vec::new(),
            analysis_templates: BTreeMap::new(),
            cluster_analysis_templates: BTreeMap::new(),
            now: Timestamp::now(),
        }
    }
}

/// A write to the cluster.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// Write `spec.replicas: 1` into a Rollout that has none (needed by HPAs).
    DefaultSpecReplicas,
    /// Set the Rollout's revision annotation.
    SetRolloutRevision(String),
    /// Create a ReplicaSet.
    CreateReplicaSet(Box<ReplicaSet>),
    /// Make the Rollout the controller of an orphan ReplicaSet matching its selector.
    AdoptReplicaSet {
        /// ReplicaSet name.
        name: String,
        /// resourceVersion it was seen at (adopt only if unchanged).
        resource_version: Option<String>,
    },
    /// Add [`keys::TRAFFIC_FINALIZER`] to the Rollout.
    AddFinalizer,
    /// Remove [`keys::TRAFFIC_FINALIZER`] from the Rollout.
    RemoveFinalizer,
    /// Change a ReplicaSet's replicas, annotations (None removes) and minReadySeconds.
    UpdateReplicaSet(ReplicaSetUpdate),
    /// Delete an old ReplicaSet beyond the revision history limit.
    DeleteReplicaSet(String),
    /// Write back a VirtualService (by the name the Rollout uses for it).
    UpdateVirtualService(String, Box<Value>),
    /// Write back the DestinationRule.
    UpdateDestinationRule(Box<Value>),
    /// Create or update an NGINX canary Ingress.
    ApplyIngress(Box<Ingress>),
    /// Delete an NGINX canary Ingress.
    DeleteIngress(String),
    /// Set an annotation on the Rollout (e.g. the referenced workload's generation).
    AnnotateRollout {
        /// Annotation key.
        key: String,
        /// Value.
        value: String,
    },
    /// Scale the Deployment a Rollout's workloadRef names (`scaleDown`).
    ScaleWorkload {
        /// Deployment name.
        name: String,
        /// Replicas.
        replicas: i32,
    },
    /// Change a pod's labels and annotations in place (ephemeral metadata).
    PatchPodMetadata {
        /// Pod name.
        pod: String,
        /// What to set and remove.
        change: MetadataChange,
    },
    /// Evict a pod (restart), respecting PodDisruptionBudgets.
    EvictPod(String),
    /// Point a Service at a pod-template hash (and mark it managed by this Rollout).
    SwitchService {
        /// Service name.
        service: String,
        /// Hash to select.
        hash: String,
    },
    /// Create an AnalysisRun (a step, background or blue-green promotion analysis).
    CreateAnalysisRun(Box<AnalysisRun>),
    /// Ask an AnalysisRun to stop (`spec.terminate: true`); it is no longer needed.
    TerminateAnalysisRun(String),
    /// Delete an AnalysisRun beyond the history limits (or of a ReplicaSet that is gone).
    DeleteAnalysisRun(String),
    /// Create the Experiment of an experiment step.
    CreateExperiment(Box<Experiment>),
    /// Ask an Experiment to stop (`spec.terminate: true`).
    TerminateExperiment(String),
    /// Delete an Experiment beyond the history limits (or of a ReplicaSet that is gone).
    DeleteExperiment(String),
}

/// Changes to one ReplicaSet.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ReplicaSetUpdate {
    /// ReplicaSet name.
    pub name: String,
    /// resourceVersion the change was computed from (optimistic concurrency).
    pub resource_version: Option<String>,
    /// New `spec.replicas`.
    pub replicas: Option<i32>,
    /// New `spec.minReadySeconds`.
    pub min_ready_seconds: Option<i32>,
    /// Annotations to set (Some) or remove (None).
    pub annotations: BTreeMap<String, Option<String>>,
    /// Labels and annotations of the pod template to set or remove (ephemeral metadata).
    pub template_metadata: Option<MetadataChange>,
}

/// Labels and annotations to set (Some) or remove (None).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MetadataChange {
    /// Labels.
    pub labels: BTreeMap<String, Option<String>>,
    /// Annotations.
    pub annotations: BTreeMap<String, Option<String>>,
}

impl MetadataChange {
    /// Applies the change to a label or annotation map.
    pub fn apply(change: &BTreeMap<String, Option<String>>, target: &mut BTreeMap<String, String>) {
        for (k, v) in change {
            match v {
                Some(v) => {
                    target.insert(k.clone(), v.clone());
                }
                None => {
                    target.remove(k);
                }
            }
        }
    }
}

/// A Kubernetes Event to record on the Rollout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// `Normal` or `Warning`.
    pub warning: bool,
    /// Reason (CamelCase).
    pub reason: String,
    /// Human-readable note.
    pub message: String,
}

/// What one reconcile decided.
#[derive(Clone, Debug, Default)]
pub struct Plan {
    /// Writes, in order.
    pub actions: Vec<Action>,
    /// Events to record.
    pub events: Vec<Event>,
    /// The status to write when it differs from the current one.
    pub status: Option<RolloutStatus>,
    /// Look again after this long even if nothing changes (pause end, scale-down deadline,
    /// progress deadline).
    pub requeue_after: Option<Duration>,
    /// The spec is invalid (retry with back-off rather than at a fixed time).
    pub invalid_spec: bool,
    /// `status.duration` records this reconcile ended (for the duration metrics, once the
    /// status is written).
    pub finished_durations: Vec<shared_types::rollout::RolloutDuration>,
}

/// Pause and abort changes decided during a reconcile, applied to the status at the end
/// (Argo's `pauseContext`).
#[derive(Clone, Debug, Default)]
pub struct PauseChanges {
    pub add: Vec<&'static str>,
    pub remove: Vec<&'static str>,
    pub clear: bool,
    pub add_abort: bool,
    pub remove_abort: bool,
    pub abort_message: Option<String>,
}

/// Working state of one reconcile.
pub struct Ctx<'a> {
    pub rollout: &'a Rollout,
    /// The status as read, with the pause-condition bookkeeping of this reconcile applied.
    pub old: RolloutStatus,
    pub now: Time,
    pub replicas: i32,
    /// Working copies of the ReplicaSets.
    pub rss: Vec<ReplicaSet>,
    pub services: BTreeMap<String, Service>,
    pub pods: Vec<Pod>,
    pub virtual_services: BTreeMap<String, Value>,
    pub destination_rule: Option<Value>,
    pub ingresses: BTreeMap<String, Ingress>,
    /// Weights the traffic router was set to in this reconcile, for the status.
    pub traffic_weights: Option<shared_types::rollout::TrafficWeights>,
    /// The traffic router could not be brought in line: no scaling or step progress now.
    pub traffic_halted: bool,
    pub new_rs: Option<usize>,
    pub stable_rs: Option<usize>,
    pub pause: PauseChanges,
    pub plan: Plan,
    /// AnalysisRuns controlled by the Rollout.
    pub analysis_runs: &'a [AnalysisRun],
    /// Experiments controlled by the Rollout.
    pub experiments: &'a [Experiment],
    /// The templates AnalysisRuns are built from.
    pub templates: Templates<'a>,
    /// The AnalysisRuns the status tracks after this reconcile.
    pub current_runs: crate::analysis::CurrentRuns,
    /// `status.canary.currentExperiment` after this reconcile.
    pub current_experiment: Option<String>,
    /// See [`Observed::taken_replica_set_names`].
    pub taken_replica_set_names: &'a BTreeSet<String>,
}

/// Computes the plan for one reconcile.
pub fn plan(observed: &Observed) -> Plan {
    if observed.rollout.metadata.deletion_timestamp.is_some() {
        return crate::deletion::plan(observed);
    }
    // Claim matching orphans first (as Argo does); the next reconcile sees them as ours.
    if !observed.orphans.is_empty() {
        let actions = observed
            .orphans
            .iter()
            .map(|rs| Action::AdoptReplicaSet {
                name: rs.metadata.name.clone().unwrap_or_default(),
                resource_version: rs.metadata.resource_version.clone(),
            })
            .collect();
        return Plan {
            actions,
            ..Plan::default()
        };
    }
    let mut plan = plan_live(observed);
    if let Some(action) = crate::deletion::sync_finalizer(&observed.rollout) {
        plan.actions.insert(0, action);
    }
    plan
}

fn plan_live(observed: &Observed) -> Plan {
    // With a workloadRef the template and selector come from the referenced object.
    let resolved = crate::workload::resolve(&observed.rollout, observed.workload.as_ref());
    let rollout = resolved.as_ref().unwrap_or(&observed.rollout);
    let now = Time(observed.now);
    let old = rollout.status.clone().unwrap_or_default();
    let mut ctx = Ctx {
        rollout,
        current_runs: crate::analysis::CurrentRuns::from_status(&old),
        current_experiment: old.canary.as_ref().and_then(|c| c.current_experiment.clone()),
        old,
        now,
        replicas: rollout.spec.replicas(),
        rss: observed.replica_sets.clone(),
        services: observed.services.clone(),
        pods: observed.pods.clone(),
        virtual_services: observed.virtual_services.clone(),
        destination_rule: observed.destination_rule.clone(),
        ingresses: observed.ingresses.clone(),
        traffic_weights: None,
        traffic_halted: false,
        new_rs: None,
        stable_rs: None,
        pause: PauseChanges::default(),
        plan: Plan::default(),
        analysis_runs: &observed.analysis_runs,
        experiments: &observed.experiments,
        templates: observed.templates(),
        taken_replica_set_names: &observed.taken_replica_set_names,
    };
    if let Err(error) = &resolved {
        ctx.invalid_spec(std::slice::from_ref(error));
        // The referenced object is not watched: look again after a while (Argo: 20 s).
        ctx.requeue(Duration::from_secs(20));
        return ctx.plan;
    }
    if let Err(errors) = validate(observed, rollout) {
        ctx.invalid_spec(&errors);
        return ctx.plan;
    }
    ctx.sync_workload_generation(observed.workload.as_ref());
    if rollout.spec.replicas.is_none() {
        // Argo writes the default into the spec first and continues on the next event.
        ctx.plan.actions.push(Action::DefaultSpecReplicas);
        return ctx.plan;
    }
    ctx.find_replica_sets();
    // Nothing to abort once the update is complete: the request is dropped (as Argo does).
    let current = ctx.new_rs().and_then(rsutil::hash).map(str::to_string);
    if ctx.old.is_aborted() && current.is_some() && current == ctx.old.stable_rs {
        ctx.pause.remove_abort = true;
    }
    ctx.check_paused_conditions();
    let replicas_only = rollout.spec.is_paused()
        || ctx
            .pause_condition(shared_types::constants::pause_reason::INCONCLUSIVE_ANALYSIS_RUN)
            .is_some()
        || ctx.is_scaling_event();
    match (rollout.spec.strategy.blue_green.is_some(), replicas_only) {
        (true, false) => crate::bluegreen::reconcile(&mut ctx),
        (true, true) => crate::bluegreen::sync_replicas_only(&mut ctx),
        (false, false) => crate::canary::reconcile(&mut ctx),
        (false, true) => crate::canary::sync_replicas_only(&mut ctx),
    }
    ctx.scale_down_workload(observed.workload.as_ref());
    ctx.plan
}

/// Spec validation (of the spec as written) plus the checks on referenced Services and routing
/// objects (against the resolved template).
fn validate(observed: &Observed, rollout: &Rollout) -> Result<(), Vec<FieldError>> {
    validation::validate_rollout_spec(&observed.rollout.spec)?;
    let name = rollout.metadata.name.as_deref().unwrap_or_default();
    let template_labels = rollout
        .spec
        .template
        .as_ref()
        .and_then(|t| t.metadata.as_ref())
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    let mut errors = Vec::new();
    for (path, svc_name) in referenced_services(rollout) {
        match observed.services.get(&svc_name) {
            None => errors.push(FieldError::new(
                path,
                format!("Invalid value: {svc_name:?}: services {svc_name:?} not found"),
            )),
            Some(svc) => {
                let managed_by = svc
                    .metadata
                    .annotations
                    .as_ref()
                    .and_then(|a| a.get(keys::MANAGED_BY_ROLLOUTS));
                if managed_by.is_some_and(|m| m != name) {
                    errors.push(FieldError::new(
                        path.clone(),
                        format!(
                            "Invalid value: {svc_name:?}: Service {svc_name:?} is managed by another Rollout"
                        ),
                    ));
                }
                let selector = svc
                    .spec
                    .as_ref()
                    .and_then(|s| s.selector.clone())
                    .unwrap_or_default();
                for (k, v) in &selector {
                    if k != keys::POD_TEMPLATE_HASH && template_labels.get(k) != Some(v) {
                        errors.push(FieldError::new(
                            path.clone(),
                            format!("Invalid value: {svc_name:?}: Service {svc_name:?} has unmatch label {k:?} in rollout"),
                        ));
                    }
                }
            }
        }
    }
    errors.extend(crate::analysis::validate(rollout, observed.templates()));
    errors.extend(crate::traffic::plan::validate(
        rollout,
        &observed.virtual_services,
        observed.destination_rule.as_ref(),
        &observed.ingresses,
    ));
    if errors.is_empty() { Ok(()) } else { Err(errors) }
}

impl Observed {
    /// The observed templates, as the AnalysisRun builder takes them.
    pub fn templates(&self) -> Templates<'_> {
        Templates {
            namespaced: &self.analysis_templates,
            cluster: &self.cluster_analysis_templates,
        }
    }
}

/// `(field path, service name)` of every Service the strategy names.
pub fn referenced_services(rollout: &Rollout) -> Vec<(String, String)> {
    let strategy = &rollout.spec.strategy;
    let mut out = Vec::new();
    if let Some(bg) = &strategy.blue_green {
        out.push((
            "spec.strategy.blueGreen.activeService".to_string(),
            bg.active_service.clone(),
        ));
        if let Some(p) = &bg.preview_service {
            out.push(("spec.strategy.blueGreen.previewService".to_string(), p.clone()));
        }
    }
    if let Some(c) = &strategy.canary {
        if let Some(s) = &c.stable_service {
            out.push(("spec.strategy.canary.stableService".to_string(), s.clone()));
        }
        if let Some(s) = &c.canary_service {
            out.push(("spec.strategy.canary.canaryService".to_string(), s.clone()));
        }
        if let Some(pp) = &c.ping_pong {
            out.push((
                "spec.strategy.canary.pingPong.pingService".to_string(),
                pp.ping_service.clone(),
            ));
            out.push((
                "spec.strategy.canary.pingPong.pongService".to_string(),
                pp.pong_service.clone(),
            ));
        }
    }
    out.retain(|(_, name)| !name.is_empty());
    out
}

impl Ctx<'_> {
    pub fn name(&self) -> &str {
        self.rollout.metadata.name.as_deref().unwrap_or_default()
    }

    pub fn event(&mut self, reason: &str, message: impl Into<String>) {
        self.plan.events.push(Event {
            warning: false,
            reason: reason.into(),
            message: message.into(),
        });
    }

    pub fn warning(&mut self, reason: &str, message: impl Into<String>) {
        self.plan.events.push(Event {
            warning: true,
            reason: reason.into(),
            message: message.into(),
        });
    }

    /// Requeue no later than `after`.
    pub fn requeue(&mut self, after: Duration) {
        let after = after.max(Duration::from_millis(100));
        self.plan.requeue_after = Some(self.plan.requeue_after.map_or(after, |r| r.min(after)));
    }

    /// Requeue at an absolute time.
    pub fn requeue_at(&mut self, at: Timestamp) {
        let remaining = at.duration_since(self.now.0);
        let secs = remaining.as_secs_f64().max(0.0);
        // One extra second so the deadline has surely passed when we look again.
        self.requeue(Duration::from_secs_f64(secs) + Duration::from_secs(1));
    }

    fn invalid_spec(&mut self, errors: &[FieldError]) {
        let first = errors.first().map(ToString::to_string).unwrap_or_default();
        let msg = message::invalid_spec(self.name(), &first);
        let mut status = self.old.clone();
        let cond = new_condition(
            condition_type::INVALID_SPEC,
            "True",
            reason::INVALID_SPEC,
            msg.clone(),
            &self.now,
        );
        if set_condition(&mut status, cond) {
            self.warning(event_reason::INVALID_SPEC, msg);
        }
        self.plan.invalid_spec = true;
        self.finish_status(status);
    }

    /// Template hash the Rollout's current spec asks for.
    pub fn desired_hash(&self) -> String {
        let template = self.rollout.spec.template.clone().unwrap_or_default();
        hash::pod_template_hash(&template, self.old.collision_count)
    }

    /// Picks the new ReplicaSet (matching the template hash) and the stable one (`status.stableRS`).
    fn find_replica_sets(&mut self) {
        let desired = self.desired_hash();
        self.new_rs = self.index_of_hash(&desired).or_else(|| {
            // The same pods under another hash (e.g. a defaulted template copied back by undo).
            let want = pod_template::normalized(&self.rollout.spec.template.clone().unwrap_or_default());
            self.rss.iter().position(|rs| {
                rs.spec
                    .template
                    .as_ref()
                    .is_some_and(|t| pod_template::normalized(t) == want)
            })
        });
        let stable = self.old.stable_rs.clone().unwrap_or_default();
        self.stable_rs = if stable.is_empty() {
            None
        } else {
            self.index_of_hash(&stable)
        };
    }

    /// `spec.replicas` changed since the ReplicaSets were last scaled (Argo's `isScalingEvent`).
    fn is_scaling_event(&self) -> bool {
        // Only the new and stable ReplicaSets: old ones waiting out a scale-down delay keep
        // their former size (and annotation) on purpose.
        self.new_rs.is_some()
            && [self.new_rs, self.stable_rs]
                .into_iter()
                .flatten()
                .map(|i| &self.rss[i])
                .filter(|rs| rsutil::spec_replicas(rs) > 0)
                .any(|rs| {
                    rsutil::annotation(rs, keys::DESIRED_REPLICAS)
                        .and_then(|v| v.parse::<i32>().ok())
                        .is_some_and(|d| d != self.replicas)
                })
    }

    pub fn index_of_hash(&self, hash: &str) -> Option<usize> {
        self.rss.iter().position(|rs| rsutil::hash(rs) == Some(hash))
    }

    pub fn new_rs(&self) -> Option<&ReplicaSet> {
        self.new_rs.map(|i| &self.rss[i])
    }

    pub fn stable_rs(&self) -> Option<&ReplicaSet> {
        self.stable_rs.map(|i| &self.rss[i])
    }

    /// The stable ReplicaSet when it is distinct from the new one.
    pub fn distinct_stable(&self) -> Option<usize> {
        self.stable_rs.filter(|s| Some(*s) != self.new_rs)
    }

    /// Indices of ReplicaSets that are neither new nor stable.
    pub fn others(&self) -> Vec<usize> {
        (0..self.rss.len())
            .filter(|i| Some(*i) != self.new_rs && Some(*i) != self.stable_rs)
            .collect()
    }

    pub fn is_aborted(&self) -> bool {
        !self.pause.remove_abort && (self.pause.add_abort || self.old.is_aborted())
    }

    pub fn pause_condition(&self, reason: &str) -> Option<&shared_types::rollout::PauseCondition> {
        self.old.pause_conditions().iter().find(|c| c.reason == reason)
    }

    /// Argo's `checkPausedConditions`: keep the Progressing (Unknown) and Paused conditions in
    /// step with `spec.paused` and the pause conditions, and note a retry after an abort.
    fn check_paused_conditions(&mut self) {
        let observed_gen = self.rollout.metadata.generation.map(|g| g.to_string());
        if self.old.observed_generation != observed_gen {
            return;
        }
        let progressing = self.old.condition(condition_type::PROGRESSING).cloned();
        let prog_paused = progressing
            .as_ref()
            .is_some_and(|c| c.reason == reason::ROLLOUT_PAUSED);
        let is_paused = !self.old.pause_conditions().is_empty() || self.rollout.spec.is_paused();
        let abort_cond = progressing
            .as_ref()
            .is_some_and(|c| c.reason == reason::ROLLOUT_ABORTED);
        let mut updates = Vec::new();
        if is_paused != prog_paused && !abort_cond {
            updates.push(if is_paused {
                new_condition(
                    condition_type::PROGRESSING,
                    "Unknown",
                    reason::ROLLOUT_PAUSED,
                    message::PAUSED,
                    &self.now,
                )
            } else {
                new_condition(
                    condition_type::PROGRESSING,
                    "Unknown",
                    reason::ROLLOUT_RESUMED,
                    message::RESUMED,
                    &self.now,
                )
            });
        }
        if !self.old.is_aborted() && abort_cond {
            updates.push(new_condition(
                condition_type::PROGRESSING,
                "Unknown",
                reason::ROLLOUT_RETRY,
                message::RETRY,
                &self.now,
            ));
        }
        let paused_true = self
            .old
            .condition(condition_type::PAUSED)
            .is_some_and(|c| c.status == "True");
        if is_paused != paused_true && !abort_cond {
            let status = if is_paused { "True" } else { "False" };
            updates.push(new_condition(
                condition_type::PAUSED,
                status,
                reason::ROLLOUT_PAUSED,
                message::PAUSED,
                &self.now,
            ));
        }
        for cond in updates {
            set_condition(&mut self.old, cond);
        }
    }

    /// Creates the new ReplicaSet when missing and keeps revisions in order (Argo's
    /// `getAllReplicaSetsAndSyncRevision`).
    pub fn sync_revision(&mut self) {
        let max_old = self
            .rss
            .iter()
            .enumerate()
            .filter(|(i, _)| Some(*i) != self.new_rs)
            .map(|(_, rs)| rsutil::revision(rs))
            .max()
            .unwrap_or(0);
        let new_revision = max_old + 1;
        match self.new_rs {
            None => self.create_new_rs(new_revision),
            Some(i) => {
                let rs = &self.rss[i];
                let mut update = ReplicaSetUpdate {
                    name: rs.metadata.name.clone().unwrap_or_default(),
                    resource_version: rs.metadata.resource_version.clone(),
                    ..Default::default()
                };
                let current = rsutil::revision(rs);
                if current < new_revision {
                    update
                        .annotations
                        .insert(keys::REVISION.into(), Some(new_revision.to_string()));
                    if current > 0 {
                        let history = match rsutil::annotation(rs, keys::REVISION_HISTORY) {
                            Some(h) if !h.is_empty() => format!("{h},{current}"),
                            _ => current.to_string(),
                        };
                        update
                            .annotations
                            .insert(keys::REVISION_HISTORY.into(), Some(history));
                    }
                }
                let wanted = crate::replicaset::replica_set_annotations(self.rollout, 0, self.replicas);
                for (k, v) in wanted {
                    if k == keys::REVISION || k == keys::DESIRED_REPLICAS {
                        continue;
                    }
                    if rsutil::annotation(rs, &k) != Some(v.as_str()) {
                        update.annotations.insert(k, Some(v));
                    }
                }
                let min_ready = self.rollout.spec.min_ready_seconds;
                let rs_min_ready = rs.spec.min_ready_seconds;
                if min_ready.unwrap_or(0) != rs_min_ready.unwrap_or(0) {
                    update.min_ready_seconds = Some(min_ready.unwrap_or(0));
                }
                if !update.annotations.is_empty() || update.min_ready_seconds.is_some() {
                    self.apply_update(i, update);
                }
                let revision = rsutil::revision(&self.rss[i]).to_string();
                self.sync_rollout_revision(revision);
            }
        }
    }

    fn create_new_rs(&mut self, revision: i64) {
        let hash = self.desired_hash();
        let mut template = self.rollout.spec.template.clone().unwrap_or_default();
        if let Some(spec) = template.spec.as_mut() {
            spec.affinity = self.desired_affinity(&hash, spec.affinity.clone());
        }
        let has_stable = self
            .old
            .stable_rs
            .as_deref()
            .is_some_and(|s| !s.is_empty() && s != hash);
        let ephemeral = crate::ephemeral::for_new_replica_set(self.rollout, has_stable);
        if let Some(extra) = &ephemeral {
            let meta = template.metadata.get_or_insert_with(Default::default);
            meta.labels
                .get_or_insert_with(Default::default)
                .extend(extra.labels.clone().unwrap_or_default());
            meta.annotations
                .get_or_insert_with(Default::default)
                .extend(extra.annotations.clone().unwrap_or_default());
        }
        let mut rs = crate::replicaset::new_replica_set(self.rollout, &template, &hash, revision);
        if let Some(record) = ephemeral.and_then(|e| serde_json::to_string(&e).ok()) {
            rs.metadata
                .annotations
                .get_or_insert_with(Default::default)
                .insert(keys::EPHEMERAL_METADATA.into(), record);
        }
        let rs_name = rs.metadata.name.clone().unwrap_or_default();
        if self.taken_replica_set_names.contains(&rs_name) {
            // Another object holds the name: a hash collision. Counting it in the status
            // (written with the Rollout's resourceVersion) changes the hash the next reconcile
            // computes (Argo's collisionCount).
            let count = self.old.collision_count.unwrap_or(0) + 1;
            tracing::warn!(replicaset = %rs_name, count, "hash collision; bumping collisionCount");
            self.old.collision_count = Some(count);
            return;
        }
        self.event(
            event_reason::NEW_REPLICA_SET_CREATED,
            format!("Created ReplicaSet {rs_name} (revision {revision})"),
        );
        self.plan
            .actions
            .push(Action::CreateReplicaSet(Box::new(rs.clone())));
        self.rss.push(rs);
        self.new_rs = Some(self.rss.len() - 1);
        let cond = new_condition(
            condition_type::PROGRESSING,
            "True",
            reason::NEW_REPLICA_SET_CREATED,
            message::new_replica_set_created(&rs_name),
            &self.now,
        );
        set_condition(&mut self.old, cond);
        self.sync_rollout_revision(revision.to_string());
    }

    /// The pod affinity of the new ReplicaSet: the template's, plus (with `antiAffinity` and a
    /// distinct stable ReplicaSet) a term keeping new pods off the stable pods' nodes.
    pub fn desired_affinity(&self, new_hash: &str, base: Option<Affinity>) -> Option<Affinity> {
        let strategy = &self.rollout.spec.strategy;
        let anti = strategy
            .canary
            .as_ref()
            .and_then(|c| c.anti_affinity.as_ref())
            .or_else(|| {
                strategy
                    .blue_green
                    .as_ref()
                    .and_then(|b| b.anti_affinity.as_ref())
            });
        let stable = self.old.stable_rs.clone().unwrap_or_default();
        let (Some(anti), false) = (anti, stable.is_empty() || stable == new_hash) else {
            return base;
        };
        let term = PodAffinityTerm {
            label_selector: Some(LabelSelector {
                match_expressions: Some(vec![LabelSelectorRequirement {
                    key: keys::POD_TEMPLATE_HASH.into(),
                    operator: "In".into(),
                    values: Some(vec![stable]),
                }]),
                ..Default::default()
            }),
            namespaces: self.rollout.metadata.namespace.clone().map(|n| vec![n]),
            topology_key: "kubernetes.io/hostname".into(),
            ..Default::default()
        };
        let mut affinity = base.unwrap_or_default();
        let pod_anti = affinity.pod_anti_affinity.get_or_insert_with(Default::default);
        if let Some(preferred) = &anti.preferred_during_scheduling_ignored_during_execution {
            pod_anti
                .preferred_during_scheduling_ignored_during_execution
                .get_or_insert_with(Vec::new)
                .push(WeightedPodAffinityTerm {
                    pod_affinity_term: term,
                    weight: preferred.weight,
                });
        } else {
            pod_anti
                .required_during_scheduling_ignored_during_execution
                .get_or_insert_with(Vec::new)
                .push(term);
        }
        Some(affinity)
    }

    fn sync_rollout_revision(&mut self, revision: String) {
        let current = self
            .rollout
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(keys::REVISION));
        if current != Some(&revision) {
            self.event(
                event_reason::ROLLOUT_UPDATED,
                format!("Rollout updated to revision {revision}"),
            );
            self.plan.actions.push(Action::SetRolloutRevision(revision));
        }
    }

    /// The Rollout's revision after this reconcile.
    pub fn rollout_revision(&self) -> String {
        self.plan
            .actions
            .iter()
            .rev()
            .find_map(|a| match a {
                Action::SetRolloutRevision(r) => Some(r.clone()),
                _ => None,
            })
            .or_else(|| {
                self.rollout
                    .metadata
                    .annotations
                    .as_ref()
                    .and_then(|a| a.get(keys::REVISION).cloned())
            })
            .unwrap_or_default()
    }

    /// Records an update and applies it to the working copy.
    pub fn apply_update(&mut self, i: usize, update: ReplicaSetUpdate) {
        let rs = &mut self.rss[i];
        // After this write the version we read is stale: later writes in this reconcile go
        // without it rather than fail on a conflict with ourselves.
        rs.metadata.resource_version = None;
        if let Some(r) = update.replicas {
            rs.spec.replicas = Some(r);
        }
        if let Some(m) = update.min_ready_seconds {
            rs.spec.min_ready_seconds = Some(m);
        }
        if let Some(change) = &update.template_metadata {
            let meta = rs
                .spec
                .template
                .get_or_insert_with(Default::default)
                .metadata
                .get_or_insert_with(Default::default);
            MetadataChange::apply(&change.labels, meta.labels.get_or_insert_with(Default::default));
            MetadataChange::apply(
                &change.annotations,
                meta.annotations.get_or_insert_with(Default::default),
            );
        }
        let annotations = rs.metadata.annotations.get_or_insert_with(Default::default);
        for (k, v) in &update.annotations {
            match v {
                Some(v) => {
                    annotations.insert(k.clone(), v.clone());
                }
                None => {
                    annotations.remove(k);
                }
            }
        }
        // Merge consecutive updates of the same ReplicaSet into one write.
        if let Some(Action::UpdateReplicaSet(prev)) = self.plan.actions.last_mut()
            && prev.name == update.name
        {
            prev.replicas = update.replicas.or(prev.replicas);
            prev.min_ready_seconds = update.min_ready_seconds.or(prev.min_ready_seconds);
            prev.annotations.extend(update.annotations);
            prev.template_metadata = update.template_metadata.or(prev.template_metadata.take());
            return;
        }
        self.plan.actions.push(Action::UpdateReplicaSet(update));
    }

    /// Scales a ReplicaSet (Argo's `scaleReplicaSetAndRecordEvent`): also records the desired
    /// replicas annotation and drops a scale-down deadline when going to zero. Returns whether
    /// the replica count changed.
    pub fn scale(&mut self, i: usize, target: i32) -> bool {
        let rs = &self.rss[i];
        let current = rsutil::spec_replicas(rs);
        let desired_annotation = rsutil::annotation(rs, keys::DESIRED_REPLICAS).map(str::to_string);
        let wanted_annotation = self.replicas.to_string();
        if current == target && desired_annotation.as_deref() == Some(wanted_annotation.as_str()) {
            return false;
        }
        let name = rs.metadata.name.clone().unwrap_or_default();
        let mut update = ReplicaSetUpdate {
            name: name.clone(),
            resource_version: rs.metadata.resource_version.clone(),
            replicas: Some(target),
            ..Default::default()
        };
        update
            .annotations
            .insert(keys::DESIRED_REPLICAS.into(), Some(wanted_annotation));
        if target == 0 && rsutil::annotation(rs, keys::SCALE_DOWN_DEADLINE).is_some() {
            update.annotations.insert(keys::SCALE_DOWN_DEADLINE.into(), None);
        }
        let revision = rsutil::revision(rs);
        self.apply_update(i, update);
        if current != target {
            let direction = if target > current { "up" } else { "down" };
            self.event(
                event_reason::SCALING_REPLICA_SET,
                format!(
                    "Scaled {direction} ReplicaSet {name} (revision {revision}) from {current} to {target}"
                ),
            );
        }
        current != target
    }

    /// Sets or removes the scale-down deadline annotation.
    pub fn set_scale_down_deadline(&mut self, i: usize, deadline: Option<Timestamp>) {
        let rs = &self.rss[i];
        let value = deadline.map(format_deadline);
        if rsutil::annotation(rs, keys::SCALE_DOWN_DEADLINE) == value.as_deref() {
            return;
        }
        let mut update = ReplicaSetUpdate {
            name: rs.metadata.name.clone().unwrap_or_default(),
            resource_version: rs.metadata.resource_version.clone(),
            ..Default::default()
        };
        update.annotations.insert(keys::SCALE_DOWN_DEADLINE.into(), value);
        self.apply_update(i, update);
    }

    /// Removes scale-down deadlines from the new and stable ReplicaSets, so going back to a
    /// delayed ReplicaSet revives it.
    pub fn remove_scale_down_deadlines(&mut self, keep_new: bool) {
        let targets: Vec<usize> = [if keep_new { None } else { self.new_rs }, self.stable_rs]
            .into_iter()
            .flatten()
            .collect();
        for i in targets {
            if rsutil::annotation(&self.rss[i], keys::SCALE_DOWN_DEADLINE).is_some() {
                self.set_scale_down_deadline(i, None);
            }
        }
    }

    /// Points a Service at the ReplicaSet with `hash` (Argo's `switchServiceSelector`).
    pub fn switch_service(&mut self, service: &str, hash: &str) {
        let rollout_name = self.name().to_string();
        let Some(svc) = self.services.get_mut(service) else {
            return;
        };
        let selector = svc
            .spec
            .get_or_insert_with(Default::default)
            .selector
            .get_or_insert_with(Default::default);
        let old = selector.get(keys::POD_TEMPLATE_HASH).cloned().unwrap_or_default();
        let annotations = svc.metadata.annotations.get_or_insert_with(Default::default);
        let managed = annotations.get(keys::MANAGED_BY_ROLLOUTS).is_some();
        if old == hash && managed {
            return;
        }
        selector.insert(keys::POD_TEMPLATE_HASH.into(), hash.into());
        annotations.insert(keys::MANAGED_BY_ROLLOUTS.into(), rollout_name);
        self.plan.actions.push(Action::SwitchService {
            service: service.into(),
            hash: hash.into(),
        });
        if old != hash {
            self.event(
                event_reason::SWITCH_SERVICE,
                format!("Switched selector for service '{service}' from '{old}' to '{hash}'"),
            );
        }
    }

    /// The hash a Service currently selects.
    pub fn service_selector(&self, service: &str) -> Option<String> {
        self.services
            .get(service)?
            .spec
            .as_ref()?
            .selector
            .as_ref()?
            .get(keys::POD_TEMPLATE_HASH)
            .cloned()
    }

    /// Whether the Service is already marked as managed by a Rollout.
    pub fn service_is_managed(&self, service: &str) -> bool {
        self.services
            .get(service)
            .and_then(|s| s.metadata.annotations.as_ref())
            .is_some_and(|a| a.contains_key(keys::MANAGED_BY_ROLLOUTS))
    }

    /// Deletes the oldest scaled-down ReplicaSets beyond `revisionHistoryLimit`.
    pub fn cleanup_revision_history(&mut self) {
        let limit = usize::try_from(self.rollout.spec.revision_history_limit()).unwrap_or(0);
        let mut candidates: Vec<usize> = self
            .others()
            .into_iter()
            .filter(|i| {
                let rs = &self.rss[*i];
                rsutil::spec_replicas(rs) == 0
                    && rsutil::status_replicas(rs) == 0
                    && rs.metadata.deletion_timestamp.is_none()
            })
            .collect();
        if candidates.len() <= limit {
            return;
        }
        candidates.sort_by_key(|i| rsutil::revision(&self.rss[*i]));
        let excess = candidates.len() - limit;
        for i in candidates.into_iter().take(excess) {
            let name = self.rss[i].metadata.name.clone().unwrap_or_default();
            self.plan.actions.push(Action::DeleteReplicaSet(name));
        }
    }

    /// Size of the new ReplicaSet after an abort: kept for `delay` seconds (0 keeps it for
    /// good) counted from when the stable ReplicaSet is fully available again, then zero.
    pub fn abort_scale_down_target(&mut self, new: usize, delay: i64) -> i32 {
        let current = rsutil::spec_replicas(&self.rss[new]);
        let stable_ready = self
            .distinct_stable()
            .is_some_and(|s| rsutil::available_replicas(&self.rss[s]) >= self.replicas);
        if delay == 0 || !stable_ready {
            return current;
        }
        self.delayed_scale_down(new, delay, current)
    }

    /// Argo's `scaleDownDelayHelper`: keeps a ReplicaSet at its size until its deadline,
    /// annotates it with one if it has none, and scales it down at once past the revision limit.
    pub fn scale_down_delay(&mut self, i: usize, delay: i64, limit: Option<i32>, annotated: &mut i32) -> i32 {
        if limit.is_some_and(|l| *annotated >= l) {
            return 0;
        }
        if rsutil::scale_down_deadline(&self.rss[i]).is_none() && delay <= 0 {
            return 0;
        }
        *annotated += 1;
        let spec = rsutil::spec_replicas(&self.rss[i]);
        self.delayed_scale_down(i, delay, spec)
    }

    /// `keep` until the ReplicaSet's scale-down deadline (set to now + `delay` when missing),
    /// zero after it.
    fn delayed_scale_down(&mut self, i: usize, delay: i64, keep: i32) -> i32 {
        match rsutil::scale_down_deadline(&self.rss[i]) {
            Some(deadline) if deadline <= self.now.0 => 0,
            Some(deadline) => {
                self.requeue_at(deadline);
                keep
            }
            None => {
                let deadline = self.now.0 + k8s_openapi::jiff::SignedDuration::from_secs(delay);
                self.set_scale_down_deadline(i, Some(deadline));
                self.requeue_at(deadline);
                keep
            }
        }
    }

    /// Records the referenced workload's generation on the Rollout and in its status.
    fn sync_workload_generation(&mut self, workload: Option<&Value>) {
        if self.rollout.spec.workload_ref.is_none() {
            return;
        }
        // The referenced object is not watched: look at it again regularly.
        self.requeue(Duration::from_secs(20));
        let Some(generation) = crate::workload::generation(workload) else {
            return;
        };
        let current = self
            .rollout
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(keys::WORKLOAD_GENERATION));
        if current != Some(&generation) {
            self.plan.actions.push(Action::AnnotateRollout {
                key: keys::WORKLOAD_GENERATION.into(),
                value: generation.clone(),
            });
        }
        self.old.workload_observed_generation = Some(generation);
    }

    /// Hands the referenced Deployment's pods over to the Rollout (`workloadRef.scaleDown`).
    fn scale_down_workload(&mut self, workload: Option<&Value>) {
        let Some(status) = &self.plan.status else { return };
        let healthy = status.phase.as_deref() == Some(shared_types::constants::phase::HEALTHY);
        let ready = status.ready_replicas.unwrap_or(0);
        if let Some(replicas) = crate::workload::deployment_replicas(self.rollout, workload, healthy, ready) {
            let name = self
                .rollout
                .spec
                .workload_ref
                .as_ref()
                .and_then(|w| w.name.clone())
                .unwrap_or_default();
            self.plan.actions.push(Action::ScaleWorkload { name, replicas });
        }
    }

    /// Whether a restart (`spec.restartAt` newer than `status.restartedAt`) is pending.
    pub fn restart_pending(rollout: &Rollout) -> bool {
        let restart_at = rollout.spec.restart_at.as_ref();
        let done = rollout.status.as_ref().and_then(|s| s.restarted_at.as_ref());
        restart_at.is_some_and(|r| done.is_none_or(|d| d.0 < r.0))
    }

    /// Restarts pods created before `spec.restartAt` (once that time has come) by evicting them
    /// a few at a time, never below the availability budget (Argo's pod restarter). Returns the
    /// restart time once no old pod is left: then `status.restartedAt` becomes `spec.restartAt`.
    /// Returns whether pods were evicted (then nothing else is scaled in this reconcile, so
    /// the two cannot add up beyond the availability budget).
    pub fn reconcile_restart(&mut self, max_unavailable: i32) -> bool {
        if !Self::restart_pending(self.rollout) {
            return false;
        }
        let Some(restart_at) = self.rollout.spec.restart_at.clone() else {
            return false;
        };
        // A restart set for later (`restart --in`) starts then (Argo's `NeedsRestart`).
        if restart_at.0 > self.now.0 {
            self.requeue_at(restart_at.0);
            return false;
        }
        // Stable first, then new, then the others oldest first.
        let mut order: Vec<usize> = self.stable_rs.into_iter().chain(self.new_rs).collect();
        let mut others = self.others();
        others.sort_by_key(|i| rsutil::revision(&self.rss[*i]));
        order.extend(others);
        order.dedup();
        let mut old_pods: Vec<String> = Vec::new();
        for i in order {
            let Some(hash) = rsutil::hash(&self.rss[i]) else {
                continue;
            };
            let mut pods: Vec<&Pod> = self
                .pods
                .iter()
                .filter(|p| {
                    p.metadata
                        .labels
                        .as_ref()
                        .and_then(|l| l.get(keys::POD_TEMPLATE_HASH))
                        .map(String::as_str)
                        == Some(hash)
                })
                .filter(|p| p.metadata.deletion_timestamp.is_none())
                .filter(|p| {
                    p.metadata
                        .creation_timestamp
                        .as_ref()
                        .is_some_and(|c| c.0 < restart_at.0)
                })
                .collect();
            pods.sort_by_key(|p| p.metadata.creation_timestamp.clone().map(|t| t.0));
            old_pods.extend(pods.iter().filter_map(|p| p.metadata.name.clone()));
        }
        if old_pods.is_empty() {
            self.old.restarted_at = Some(restart_at);
            return false;
        }
        let desired: i32 = self
            .rss
            .iter()
            .map(rsutil::spec_replicas)
            .sum::<i32>()
            .max(self.replicas);
        let available: i32 = self.rss.iter().map(rsutil::available_replicas).sum();
        let budget = max_unavailable.max(1) - (desired - available);
        let before = self.plan.actions.len();
        for pod in old_pods.into_iter().take(usize::try_from(budget).unwrap_or(0)) {
            self.plan.actions.push(Action::EvictPod(pod));
        }
        // Evicted pods come back through the ReplicaSet; look again soon in case no event arrives.
        self.requeue(Duration::from_secs(5));
        self.plan.actions.len() > before
    }

    /// Counts over all ReplicaSets and the status fields every strategy shares (Argo's
    /// `calculateBaseStatus`).
    pub fn base_status(&self) -> RolloutStatus {
        let mut status = RolloutStatus {
            current_pod_hash: Some(
                self.new_rs()
                    .and_then(rsutil::hash)
                    .map(str::to_string)
                    .unwrap_or_else(|| self.desired_hash()),
            ),
            replicas: Some(self.rss.iter().map(rsutil::status_replicas).sum()),
            updated_replicas: Some(self.new_rs().map_or(0, rsutil::status_replicas)),
            ready_replicas: Some(self.rss.iter().map(rsutil::ready_replicas).sum()),
            collision_count: self.old.collision_count,
            conditions: self.old.conditions.clone(),
            restarted_at: self.old.restarted_at.clone(),
            workload_observed_generation: self.old.workload_observed_generation.clone(),
            stable_rs: self.old.stable_rs.clone(),
            ..Default::default()
        };
        remove_condition(&mut status, condition_type::INVALID_SPEC);
        let promote_full =
            self.old.promote_full.unwrap_or(false) && status.current_pod_hash != status.stable_rs;
        status.promote_full = promote_full.then_some(true);
        status
    }

    /// Whether the pod template or the canary steps changed since the status was written.
    pub fn template_or_steps_changed(&self) -> bool {
        let steps_changed = match self.old.current_step_hash.as_deref() {
            Some(h) if !h.is_empty() => {
                self.rollout.spec.strategy.canary.is_some() && h != steps_hash(self.rollout)
            }
            _ => false,
        };
        steps_changed || self.pod_spec_changed()
    }

    /// Whether the pod template changed since the status was written.
    pub fn pod_spec_changed(&self) -> bool {
        match self.old.current_pod_hash.as_deref() {
            Some(h) if !h.is_empty() => {
                let current = self
                    .new_rs()
                    .and_then(rsutil::hash)
                    .map(str::to_string)
                    .unwrap_or_else(|| self.desired_hash());
                h != current
            }
            _ => false,
        }
    }

    /// Clears what belongs to the previous update when a new one starts.
    pub fn reset_status(&mut self, status: &mut RolloutStatus) {
        self.pause.clear = true;
        self.pause.remove_abort = true;
        // Runs and experiments of the previous update are no longer current (they are
        // terminated and cleaned up on the next reconcile).
        self.current_runs = crate::analysis::CurrentRuns::default();
        self.current_experiment = None;
        status.promote_full = None;
        if let Some(bg) = status.blue_green.as_mut() {
            bg.scale_up_preview_check_point = None;
        }
        let steps = self.step_count();
        status.current_step_index = (steps > 0).then_some(0);
        status.restarted_at = self.rollout.spec.restart_at.clone();
    }

    /// The new ReplicaSet is older than the stable one and fewer than `rollbackWindow.revisions`
    /// ReplicaSets were created between them: a rollback that skips the steps.
    pub fn rollback_within_window(&self) -> bool {
        let Some(window) = self
            .rollout
            .spec
            .rollback_window
            .as_ref()
            .and_then(|w| w.revisions)
            .filter(|r| *r > 0)
        else {
            return false;
        };
        let (Some(new), Some(stable)) = (self.new_rs(), self.stable_rs()) else {
            return false;
        };
        let created = |rs: &ReplicaSet| rs.metadata.creation_timestamp.as_ref().map(|t| t.0);
        let (Some(new_at), Some(stable_at)) = (created(new), created(stable)) else {
            return false;
        };
        if new_at >= stable_at {
            return false;
        }
        let between = self
            .rss
            .iter()
            .filter_map(created)
            .filter(|t| *t > new_at && *t < stable_at)
            .count();
        i32::try_from(between).unwrap_or(i32::MAX) < window
    }

    /// Number of canary steps (0 for blue-green).
    fn step_count(&self) -> usize {
        self.rollout
            .spec
            .strategy
            .canary
            .as_ref()
            .map_or(0, |c| c.steps().len())
    }

    /// Makes the new ReplicaSet the stable one (Argo's `promoteStable`).
    pub fn promote_stable(&mut self, status: &mut RolloutStatus, why: &str) {
        self.pause.clear = true;
        self.pause.remove_abort = true;
        if let Some(canary) = &self.rollout.spec.strategy.canary {
            let steps = canary.steps().len();
            status.current_step_index = (steps > 0).then(|| i32::try_from(steps).unwrap_or(i32::MAX));
        }
        if status.stable_rs != status.current_pod_hash {
            let ping_pong = self
                .rollout
                .spec
                .strategy
                .canary
                .as_ref()
                .is_some_and(|c| c.ping_pong.is_some());
            if ping_pong {
                // The canary Service (now selecting the promoted pods) becomes the stable one.
                let was_ping = self
                    .old
                    .canary
                    .as_ref()
                    .and_then(|c| c.stable_ping_pong.as_deref())
                    == Some(shared_types::rollout::PING);
                let next = if was_ping {
                    shared_types::rollout::PONG
                } else {
                    shared_types::rollout::PING
                };
                status
                    .canary
                    .get_or_insert_with(Default::default)
                    .stable_ping_pong = Some(next.into());
            }
            status.stable_rs = status.current_pod_hash.clone();
            let revision = self.rollout_revision();
            let hash = status.current_pod_hash.clone().unwrap_or_default();
            self.event(
                event_reason::ROLLOUT_COMPLETED,
                format!("Rollout completed update to revision {revision} ({hash}): {why}"),
            );
        }
    }

    /// Progressing, Available, Healthy, Completed and abort conditions (Argo's
    /// `calculateRolloutConditions`).
    pub fn calculate_conditions(&mut self, status: &mut RolloutStatus, available_now: bool) {
        let is_paused = !self.old.pause_conditions().is_empty() || self.rollout.spec.is_paused();
        let aborted = self.is_aborted();
        let now = self.now.clone();
        let healthy = !is_paused && self.rollout_complete(status, true);
        let became_unhealthy = if healthy {
            set_condition(
                status,
                new_condition(
                    condition_type::HEALTHY,
                    "True",
                    reason::ROLLOUT_HEALTHY,
                    message::HEALTHY,
                    &now,
                ),
            );
            false
        } else {
            set_condition(
                status,
                new_condition(
                    condition_type::HEALTHY,
                    "False",
                    reason::ROLLOUT_HEALTHY,
                    message::NOT_HEALTHY,
                    &now,
                ),
            )
        };

        let current = self.old.condition(condition_type::PROGRESSING).cloned();
        let rs_name = self.new_rs().and_then(|rs| rs.metadata.name.clone());
        if !aborted {
            if self.rollout_complete(status, false) {
                let msg = message::replica_set_completed(rs_name.as_deref().unwrap_or_default());
                set_condition(
                    status,
                    new_condition(
                        condition_type::PROGRESSING,
                        "True",
                        reason::NEW_REPLICA_SET_AVAILABLE,
                        msg,
                        &now,
                    ),
                );
            } else if self.made_progress(status) || became_unhealthy {
                let (why, msg) = if status.stable_rs == status.current_pod_hash && became_unhealthy {
                    (
                        reason::REPLICA_SET_NOT_AVAILABLE,
                        message::NOT_AVAILABLE.to_string(),
                    )
                } else {
                    let msg = match &rs_name {
                        Some(n) => message::replica_set_progressing(n),
                        None => message::rollout_progressing(self.name()),
                    };
                    (reason::REPLICA_SET_UPDATED, msg)
                };
                let mut cond = new_condition(condition_type::PROGRESSING, "True", why, msg, &now);
                // Progress refreshes lastUpdateTime even with the same reason (it drives the deadline).
                if let Some(c) = &current {
                    if c.status == "True" {
                        cond.last_transition_time = c.last_transition_time.clone();
                    }
                    remove_condition(status, condition_type::PROGRESSING);
                }
                set_condition(status, cond);
            } else if !is_paused && self.timed_out(status) {
                let msg = match &rs_name {
                    Some(n) => message::replica_set_timed_out(n),
                    None => format!("Rollout \"{}\" has timed out progressing.", self.name()),
                };
                let cond = new_condition(
                    condition_type::PROGRESSING,
                    "False",
                    reason::PROGRESS_DEADLINE_EXCEEDED,
                    msg.clone(),
                    &now,
                );
                if set_condition(status, cond) {
                    self.warning(reason::PROGRESS_DEADLINE_EXCEEDED, msg.clone());
                    if self.rollout.spec.progress_deadline_abort()
                        && status.stable_rs != status.current_pod_hash
                    {
                        self.pause.add_abort = true;
                        self.pause.abort_message = Some(msg.clone());
                    }
                }
            }
        }
        if self.is_aborted() {
            let revision = self.rollout_revision();
            // The detail (e.g. the deadline that triggered the abort) is only known in the
            // reconcile that aborted; keep it afterwards instead of rewriting a shorter message.
            let kept = current
                .as_ref()
                .filter(|c| c.reason == reason::ROLLOUT_ABORTED && self.pause.abort_message.is_none())
                .map(|c| c.message.clone())
                .filter(|m| m.starts_with(&message::rollout_aborted(&revision, None)));
            let msg = kept
                .unwrap_or_else(|| message::rollout_aborted(&revision, self.pause.abort_message.as_deref()));
            let cond = new_condition(
                condition_type::PROGRESSING,
                "False",
                reason::ROLLOUT_ABORTED,
                msg.clone(),
                &now,
            );
            if set_condition(status, cond) {
                self.warning(reason::ROLLOUT_ABORTED, msg);
            }
        }

        let available = if available_now {
            new_condition(
                condition_type::AVAILABLE,
                "True",
                reason::AVAILABLE,
                message::AVAILABLE,
                &now,
            )
        } else {
            new_condition(
                condition_type::AVAILABLE,
                "False",
                reason::AVAILABLE,
                message::NOT_AVAILABLE,
                &now,
            )
        };
        set_condition(status, available);

        // A ReplicaSet that cannot create or delete pods (quota, admission) says so on the Rollout.
        let failure = self.new_rs().into_iter().chain(self.rss.iter()).find_map(|rs| {
            rs.status
                .as_ref()?
                .conditions
                .as_ref()?
                .iter()
                .find(|c| {
                    c.type_.as_deref() == Some(condition_type::REPLICA_FAILURE)
                        && c.status.as_deref() == Some("True")
                })
                .cloned()
        });
        match failure {
            Some(c) => {
                let cond = new_condition(
                    condition_type::REPLICA_FAILURE,
                    "True",
                    c.reason.as_deref().unwrap_or_default(),
                    c.message.clone().unwrap_or_default(),
                    &now,
                );
                set_condition(status, cond);
            }
            None => remove_condition(status, condition_type::REPLICA_FAILURE),
        }

        let completed = status.stable_rs.as_deref().is_some_and(|s| !s.is_empty())
            && status.stable_rs == status.current_pod_hash;
        let completed_status = if completed { "True" } else { "False" };
        set_condition(
            status,
            new_condition(
                condition_type::COMPLETED,
                completed_status,
                reason::ROLLOUT_COMPLETED,
                message::COMPLETED,
                &now,
            ),
        );
    }

    /// Argo's `RolloutComplete` / `RolloutHealthy`: all pods updated and available, the
    /// generation observed and the strategy finished.
    fn rollout_complete(&self, status: &RolloutStatus, _healthy: bool) -> bool {
        let replicas = self.replicas;
        let strategy_done = if let Some(bg) = &self.rollout.spec.strategy.blue_green {
            let bgs = status.blue_green.clone().unwrap_or_default();
            let active_done = bgs.active_selector == status.current_pod_hash;
            let preview_done =
                bg.preview_service.is_none() || bgs.preview_selector == status.current_pod_hash;
            active_done && preview_done
        } else {
            let steps = self.step_count();
            let all_steps = steps == 0
                || status.current_step_index.is_none()
                || status.current_step_index == i32::try_from(steps).ok();
            let stable = status.stable_rs.as_deref().is_some_and(|s| !s.is_empty())
                && status.stable_rs == status.current_pod_hash;
            all_steps && stable && status.replicas == Some(replicas)
        };
        let observed =
            self.old.observed_generation == self.rollout.metadata.generation.map(|g| g.to_string());
        strategy_done
            && status.updated_replicas == Some(replicas)
            && status.available_replicas == Some(replicas)
            && observed
    }

    /// Argo's `RolloutProgressing`.
    fn made_progress(&self, status: &RolloutStatus) -> bool {
        let old = &self.old;
        let strategy = if self.rollout.spec.strategy.blue_green.is_some() {
            let o = old.blue_green.clone().unwrap_or_default();
            let n = status.blue_green.clone().unwrap_or_default();
            o.active_selector != n.active_selector || o.preview_selector != n.preview_selector
        } else {
            let step_moved =
                matches!((old.current_step_index, status.current_step_index), (Some(a), Some(b)) if a != b);
            old.stable_rs != status.stable_rs
                || step_moved
                || old.current_step_hash != status.current_step_hash
        };
        let old_old = old.replicas.unwrap_or(0) - old.updated_replicas.unwrap_or(0);
        let new_old = status.replicas.unwrap_or(0) - status.updated_replicas.unwrap_or(0);
        old.updated_replicas.unwrap_or(0) != status.updated_replicas.unwrap_or(0)
            || new_old < old_old
            || status.ready_replicas.unwrap_or(0) > old.ready_replicas.unwrap_or(0)
            || status.available_replicas.unwrap_or(0) > old.available_replicas.unwrap_or(0)
            || strategy
    }

    /// Argo's `RolloutTimedOut`.
    fn timed_out(&mut self, status: &RolloutStatus) -> bool {
        let Some(cond) = status.condition(condition_type::PROGRESSING) else {
            return false;
        };
        if cond.reason == reason::ROLLOUT_ABORTED || cond.reason == reason::ROLLOUT_PAUSED {
            return false;
        }
        if cond.reason == reason::PROGRESS_DEADLINE_EXCEEDED {
            return true;
        }
        if self.progress_deadline_suspended() {
            return false;
        }
        let deadline = cond.last_update_time.0
            + k8s_openapi::jiff::SignedDuration::from_secs(i64::from(
                self.rollout.spec.progress_deadline_seconds(),
            ));
        if deadline < self.now.0 {
            return true;
        }
        let at = deadline;
        self.requeue_at(at);
        false
    }

    /// No deadline while waiting on a pause, analysis or experiment step, or a delayed scale-down.
    fn progress_deadline_suspended(&self) -> bool {
        if self.is_aborted() {
            return true;
        }
        if let Some(canary) = &self.rollout.spec.strategy.canary {
            let index = usize::try_from(self.old.current_step_index.unwrap_or(0)).unwrap_or(0);
            if let Some(step) = canary.steps().get(index)
                && (step.pause.is_some() || step.analysis.is_some() || step.experiment.is_some())
            {
                return true;
            }
        }
        if self
            .old
            .condition(condition_type::PAUSED)
            .is_some_and(|c| c.status == "True")
        {
            return true;
        }
        self.others()
            .into_iter()
            .any(|i| rsutil::scale_down_deadline(&self.rss[i]).is_some())
    }

    /// Applies the pause changes, stamps generation and phase, and stores the status in the plan.
    pub fn finish_status(&mut self, mut status: RolloutStatus) {
        let now = self.now.clone();
        if self.is_aborted() {
            status.abort = Some(true);
            status.aborted_at = self.old.aborted_at.clone().or(Some(now));
            status.pause_conditions = None;
            status.controller_pause = None;
        } else {
            status.abort = None;
            status.aborted_at = None;
            if !self.pause.clear {
                let mut controller_pause = self.old.is_controller_paused();
                let mut conds: Vec<_> = self
                    .old
                    .pause_conditions()
                    .iter()
                    .filter(|c| !self.pause.remove.contains(&c.reason.as_str()))
                    .cloned()
                    .collect();
                for reason in &self.pause.add {
                    if !self.old.pause_conditions().iter().any(|c| c.reason == *reason) {
                        conds.push(shared_types::rollout::PauseCondition {
                            reason: (*reason).into(),
                            start_time: now.clone(),
                        });
                        controller_pause = true;
                    }
                }
                if !conds.is_empty() {
                    status.controller_pause = controller_pause.then_some(true);
                    status.pause_conditions = Some(conds);
                }
            }
        }
        let had_pause = !self.old.pause_conditions().is_empty();
        let has_pause = !status.pause_conditions.as_deref().unwrap_or_default().is_empty();
        if has_pause && !had_pause {
            let first = status
                .pause_conditions()
                .first()
                .map(|c| c.reason.clone())
                .unwrap_or_default();
            self.event(
                event_reason::ROLLOUT_PAUSED,
                format!("Rollout is paused ({first})"),
            );
        } else if had_pause && !has_pause && !self.is_aborted() {
            self.event(event_reason::ROLLOUT_RESUMED, message::RESUMED);
        }
        status.observed_generation = self.rollout.metadata.generation.map(|g| g.to_string());
        let (phase, msg) = calculate_phase(&self.rollout.spec, &status);
        status.phase = Some(phase.into());
        status.message = (!msg.is_empty()).then_some(msg);
        // An invalid spec says nothing about the update: its record stays as it was.
        status.duration = if self.plan.invalid_spec {
            self.old.duration.clone()
        } else {
            let outcome = crate::duration::next(&self.duration_observation(&status));
            self.plan.finished_durations = outcome.finished;
            outcome.duration
        };
        self.plan.status = Some(status);
    }

    /// What `status.duration` needs to know about this reconcile (Argo's
    /// `calculateStatusDuration` inputs).
    fn duration_observation(&self, status: &RolloutStatus) -> crate::duration::Observation {
        // Steps only count for canary, which `template_or_steps_changed` already checks.
        let spec_changed = self.old.current_pod_hash.as_deref().is_none_or(str::is_empty)
            || self.template_or_steps_changed();
        let persisted = self.rollout.status.clone().unwrap_or_default();
        let current = status.current_pod_hash.as_deref().filter(|h| !h.is_empty());
        let complete = current.is_some()
            && status.stable_rs.as_deref() == current
            && self
                .new_rs()
                .is_some_and(|rs| rsutil::available_replicas(rs) >= self.replicas);
        crate::duration::Observation {
            previous: self.old.duration.clone(),
            spec_changed,
            rollback: self.rollback_kind(),
            stable_switched: current.is_some()
                && status.stable_rs.as_deref() == current
                && persisted.stable_rs.as_deref() != current,
            promote_full: persisted.promote_full.unwrap_or(false),
            aborted: self.is_aborted(),
            was_aborted: persisted
                .condition(condition_type::PROGRESSING)
                .is_some_and(|c| c.reason == reason::ROLLOUT_ABORTED),
            complete,
            manual_pause: self.rollout.spec.is_paused()
                || status
                    .pause_conditions()
                    .iter()
                    .any(|c| self.pause_needs_a_person(&c.reason, status)),
            now: self.now.0,
        }
    }

    /// Whether a pause lasts until someone acts (an indefinite pause step, blue-green without
    /// auto-promotion, an inconclusive analysis or experiment), unlike a timed one.
    fn pause_needs_a_person(&self, why: &str, status: &RolloutStatus) -> bool {
        use shared_types::constants::pause_reason;
        match why {
            pause_reason::CANARY_PAUSE_STEP => {
                let index = usize::try_from(status.current_step_index.unwrap_or(0)).unwrap_or(0);
                self.rollout
                    .spec
                    .strategy
                    .canary
                    .as_ref()
                    .and_then(|c| c.steps().get(index))
                    .and_then(|step| step.pause.as_ref())
                    .is_some_and(|pause| pause.duration.is_none())
            }
            pause_reason::BLUE_GREEN_PAUSE => self
                .rollout
                .spec
                .strategy
                .blue_green
                .as_ref()
                .is_some_and(|bg| !bg.auto_promotion_enabled()),
            _ => true,
        }
    }

    /// Whether the new ReplicaSet is an earlier revision than the stable one (a rollback), and
    /// if so whether it skips the steps: `Some(true)` back to stable, within `rollbackWindow` or
    /// (blue-green) within a scale-down delay; `Some(false)` otherwise (Argo's `isRollback` and
    /// `isFastRollback`).
    fn rollback_kind(&self) -> Option<bool> {
        let (new, stable) = (self.new_rs()?, self.stable_rs()?);
        let hash = rsutil::hash(new)?;
        let mut already_current = self.old.current_pod_hash.as_deref() == Some(hash);
        if self.rollout.spec.strategy.blue_green.is_some() {
            let active = self
                .old
                .blue_green
                .as_ref()
                .and_then(|b| b.active_selector.as_deref());
            already_current = already_current && active == Some(hash);
        }
        let to_stable = self.old.stable_rs.as_deref() == Some(hash);
        let created = |rs: &ReplicaSet| rs.metadata.creation_timestamp.as_ref().map(|t| t.0);
        let to_earlier = matches!((created(new), created(stable)), (Some(n), Some(s)) if n < s);
        if already_current || !(to_stable || to_earlier) {
            return None;
        }
        let within_delay = self.rollout.spec.strategy.blue_green.is_some()
            && rsutil::scale_down_deadline(new).is_some_and(|deadline| deadline > self.now.0);
        Some(to_stable || within_delay || self.rollback_within_window())
    }

    /// The pause reasons this reconcile adds.
    pub fn add_pause(&mut self, reason: &'static str) {
        if !self.pause.add.contains(&reason) {
            self.pause.add.push(reason);
        }
    }

    /// Aborts the update in this reconcile (a run or experiment failed), with the detail the
    /// Progressing condition shows after `Rollout aborted update to revision <n>: `.
    pub fn abort(&mut self, detail: Option<String>) {
        self.pause.add_abort = true;
        self.pause.abort_message = detail.filter(|d| !d.is_empty());
    }

    /// The pause reasons this reconcile removes.
    pub fn remove_pause(&mut self, reason: &'static str) {
        if !self.pause.remove.contains(&reason) {
            self.pause.remove.push(reason);
        }
    }
}

/// `status.currentStepHash` of a canary Rollout.
pub fn steps_hash(rollout: &Rollout) -> String {
    rollout
        .spec
        .strategy
        .canary
        .as_ref()
        .map(|c| c.steps_hash())
        .unwrap_or_default()
}

/// RFC 3339 UTC with second precision, as Argo writes `scale-down-deadline`.
pub fn format_deadline(t: Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

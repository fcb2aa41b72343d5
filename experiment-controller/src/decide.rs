//! One reconcile of an Experiment, decided without I/O (Argo's `experiments/experiment.go`):
//! from the Experiment, the ReplicaSets, Services and AnalysisRuns it controls, the analysis
//! templates and the time, what to create, scale, delete and terminate, the new status, the
//! Events, and when to look again. [`crate::controller`] carries the decision out.

use std::collections::BTreeMap;

use k8s_openapi::{
    api::{
        apps::v1::ReplicaSet,
        core::v1::{PodTemplateSpec, Service, ServicePort, ServiceSpec},
    },
    apimachinery::pkg::{
        apis::meta::v1::{ObjectMeta, OwnerReference, Time},
        util::intstr::IntOrString,
    },
    jiff::{SignedDuration, Timestamp},
};
use kube::ResourceExt;
use shared_types::{
    analysis::{AnalysisPhase, AnalysisRun, AnalysisTemplateRef},
    analysis_run::Templates,
    constants::keys,
    experiment::{
        EXPERIMENT_COMPLETED_REASON, EXPERIMENT_CONDITION_INVALID_SPEC, EXPERIMENT_CONDITION_PROGRESSING,
        EXPERIMENT_NAME_ANNOTATION, EXPERIMENT_TEMPLATE_NAME_ANNOTATION, Experiment,
        ExperimentAnalysisRunStatus, ExperimentAnalysisTemplateRef, ExperimentCondition, ExperimentStatus,
        INVALID_SPEC_REASON, NEW_REPLICA_SET_AVAILABLE_REASON, REPLICA_SET_UPDATED_REASON, TemplateSpec,
        TemplateStatus, TemplateStatusCode, experiment_completed_message, experiment_progressing_message,
        experiment_running_message, template_deadline_exceeded_message, validate_experiment_spec,
    },
    object_meta,
    replicaset::{self, ReplicaSetParts},
};

use crate::args::{ArgContext, TemplateFacts};

/// What one reconcile looks at.
pub struct Inputs<'a> {
    /// The Experiment.
    pub experiment: &'a Experiment,
    /// The ReplicaSets it controls, by template name.
    pub replica_sets: &'a BTreeMap<String, ReplicaSet>,
    /// The Services it controls, by template name.
    pub services: &'a BTreeMap<String, Service>,
    /// The AnalysisRuns it controls.
    pub runs: &'a [AnalysisRun],
    /// AnalysisTemplates of its namespace and ClusterAnalysisTemplates.
    pub templates: Templates<'a>,
    /// The time of the reconcile.
    pub now: Timestamp,
}

/// A write to carry out.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// Create the ReplicaSet of a template (at 0 replicas).
    CreateReplicaSet {
        /// Template name.
        template: String,
        /// The object to create.
        replica_set: Box<ReplicaSet>,
    },
    /// Set `spec.replicas`.
    ScaleReplicaSet {
        /// ReplicaSet name.
        name: String,
        /// Current `spec.replicas`.
        from: i32,
        /// Wanted `spec.replicas`.
        to: i32,
    },
    /// Annotate the ReplicaSet with `scale-down-deadline`.
    SetScaleDownDeadline {
        /// ReplicaSet name.
        name: String,
        /// The deadline.
        deadline: Timestamp,
    },
    /// Create a template's Service.
    CreateService {
        /// Template name.
        template: String,
        /// The object to create.
        service: Box<Service>,
    },
    /// Delete a template's Service.
    DeleteService {
        /// Template name.
        template: String,
        /// Service name.
        name: String,
    },
    /// Create an analysis's AnalysisRun.
    CreateAnalysisRun {
        /// Analysis name.
        analysis: String,
        /// The object to create.
        run: Box<AnalysisRun>,
    },
    /// Set `spec.terminate` on a running AnalysisRun.
    TerminateAnalysisRun {
        /// AnalysisRun name.
        name: String,
    },
}

/// An Event to record on the Experiment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// Warning (else Normal).
    pub warning: bool,
    /// Reason.
    pub reason: String,
    /// Message.
    pub message: String,
}

/// The outcome of [`decide`].
#[derive(Clone, Debug, PartialEq)]
pub struct Decision {
    /// The status to write (written only where it differs).
    pub status: ExperimentStatus,
    /// Writes to carry out, in order.
    pub actions: Vec<Action>,
    /// Events to record.
    pub events: Vec<Event>,
    /// When something falls due (duration end, progress deadline, scale-down deadline).
    pub wake_at: Option<Timestamp>,
    /// Warning Events for the parent Rollout (its owner reference, reason, message).
    pub rollout_events: Vec<(OwnerReference, String, String)>,
}

fn seconds(now: Timestamp) -> Timestamp {
    Timestamp::from_second(now.as_second()).unwrap_or(now)
}

fn after(t: Timestamp, secs: i64) -> Timestamp {
    t.checked_add(SignedDuration::from_secs(secs)).unwrap_or(t)
}

/// The ReplicaSet name of a template: `<experiment>-<template>`.
pub fn replica_set_name(experiment: &str, template: &str) -> String {
    replicaset::name(experiment, template)
}

/// The AnalysisRun name of an analysis: `<experiment>-<analysis>`.
pub fn analysis_run_name(experiment: &str, analysis: &str) -> String {
    format!("{experiment}-{analysis}")
}

/// The pod template a template's hash is computed over: its own, without a hash label.
fn hashed_template(template: &TemplateSpec) -> PodTemplateSpec {
    let mut t = template.template.clone();
    if let Some(labels) = t.metadata.as_mut().and_then(|m| m.labels.as_mut()) {
        labels.remove(keys::POD_TEMPLATE_HASH);
    }
    t
}

/// The ReplicaSet of a template, at 0 replicas (Argo's `newReplicaSetFromTemplate`).
pub fn new_replica_set(
    experiment: &Experiment,
    template: &TemplateSpec,
    collision_count: Option<i32>,
) -> ReplicaSet {
    let pod_template = hashed_template(template);
    let hash = shared_types::hash::pod_template_hash(&pod_template, collision_count);
    // Argo labels the ReplicaSet with the hash only (the pods keep the template's labels).
    let labels = BTreeMap::new();
    let annotations = BTreeMap::from([
        (EXPERIMENT_NAME_ANNOTATION.to_string(), experiment.name_any()),
        (
            EXPERIMENT_TEMPLATE_NAME_ANNOTATION.to_string(),
            template.name.clone(),
        ),
    ]);
    replicaset::new_replica_set(ReplicaSetParts {
        name: replica_set_name(&experiment.name_any(), &template.name),
        namespace: experiment.namespace(),
        owner: object_meta::controller_reference(experiment),
        labels,
        annotations,
        selector: template.selector.clone().unwrap_or_default(),
        template: &pod_template,
        hash: &hash,
        replicas: 0,
        min_ready_seconds: template.min_ready_seconds,
    })
}

/// The Service of a template: selects the labels of its ReplicaSet (the pod-template hash), one
/// port per container port. None when the pods declare no port.
pub fn new_service(experiment: &Experiment, template: &TemplateSpec, rs: &ReplicaSet) -> Option<Service> {
    let ports: Vec<ServicePort> = template
        .template
        .spec
        .iter()
        .flat_map(|s| s.containers.iter())
        .flat_map(|c| c.ports.iter().flatten())
        .map(|p| ServicePort {
            name: p.name.clone(),
            port: p.container_port,
            target_port: Some(IntOrString::Int(p.container_port)),
            protocol: p.protocol.clone(),
            ..Default::default()
        })
        .collect();
    if ports.is_empty() {
        return None;
    }
    let name = template
        .service
        .as_ref()
        .and_then(|s| s.name.clone())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| rs.name_any());
    Some(Service {
        metadata: ObjectMeta {
            name: Some(name),
            namespace: experiment.namespace(),
            annotations: Some(BTreeMap::from([
                (EXPERIMENT_NAME_ANNOTATION.to_string(), experiment.name_any()),
                (
                    EXPERIMENT_TEMPLATE_NAME_ANNOTATION.to_string(),
                    template.name.clone(),
                ),
            ])),
            owner_references: Some(vec![object_meta::controller_reference(experiment)]),
            ..Default::default()
        },
        spec: Some(ServiceSpec {
            selector: rs.metadata.labels.clone(),
            ports: Some(ports),
            ..Default::default()
        }),
        status: None,
    })
}

fn is_failure(phase: AnalysisPhase) -> bool {
    matches!(
        phase,
        AnalysisPhase::Failed | AnalysisPhase::Error | AnalysisPhase::Inconclusive
    )
}

/// All `requiredForCompletion` analyses (at least one) have succeeded.
pub fn required_runs_successful(experiment: &Experiment, status: &ExperimentStatus) -> bool {
    let required: Vec<&ExperimentAnalysisTemplateRef> = experiment
        .spec
        .analyses()
        .iter()
        .filter(|a| a.is_required_for_completion())
        .collect();
    !required.is_empty()
        && required.iter().all(|a| {
            status
                .analysis_run(&a.name)
                .is_some_and(|s| s.phase == AnalysisPhase::Successful)
        })
}

/// Whether the experiment is winding down (Argo's `IsTerminating`): asked to, finished, a
/// template or analysis failed, or every required analysis succeeded.
pub fn is_terminating(experiment: &Experiment) -> bool {
    let status = experiment.status.clone().unwrap_or_default();
    experiment.spec.is_terminating()
        || status.phase_or_pending().is_completed()
        || status.template_statuses.iter().flatten().any(|t| {
            matches!(
                t.status,
                Some(TemplateStatusCode::Failed | TemplateStatusCode::Error)
            )
        })
        || status.analysis_runs.iter().flatten().any(|a| is_failure(a.phase))
        || required_runs_successful(experiment, &status)
}

/// Whether `duration` has passed since `availableAt`, and when it ends.
pub fn duration_end(experiment: &Experiment) -> Option<Timestamp> {
    let available = experiment.status.as_ref()?.available_at.as_ref()?.0;
    let duration = experiment.spec.duration().ok().flatten()?;
    let secs = i64::try_from(duration.as_millis()).ok()?;
    available.checked_add(SignedDuration::from_millis(secs)).ok()
}

/// Desired replicas of a template (Argo's `CalculateTemplateReplicasCount`).
pub fn desired_replicas(experiment: &Experiment, template: &TemplateSpec) -> i32 {
    if is_terminating(experiment) {
        return 0;
    }
    let done = experiment
        .status
        .as_ref()
        .and_then(|s| s.template_status(&template.name))
        .and_then(|t| t.status)
        .is_some_and(TemplateStatusCode::is_completed);
    if done { 0 } else { template.replicas() }
}

fn template_order(code: TemplateStatusCode) -> u8 {
    match code {
        TemplateStatusCode::Successful => 0,
        TemplateStatusCode::Running => 1,
        TemplateStatusCode::Progressing => 2,
        TemplateStatusCode::Error => 3,
        TemplateStatusCode::Failed => 4,
    }
}

/// The templates' aggregate phase and message (Argo's `assessTemplates`): the worst template
/// status, a missing one counting as Progressing.
pub fn assess_templates(experiment: &Experiment, status: &ExperimentStatus) -> (AnalysisPhase, String) {
    let mut worst = TemplateStatusCode::Successful;
    let mut message = String::new();
    for t in &experiment.spec.templates {
        let (code, msg) = status
            .template_status(&t.name)
            .map(|s| {
                (
                    s.status.unwrap_or(TemplateStatusCode::Progressing),
                    s.message.clone().unwrap_or_default(),
                )
            })
            .unwrap_or((TemplateStatusCode::Progressing, String::new()));
        if template_order(code) > template_order(worst) {
            worst = code;
            message = msg;
        }
    }
    let phase = match worst {
        TemplateStatusCode::Progressing => AnalysisPhase::Pending,
        TemplateStatusCode::Running => AnalysisPhase::Running,
        TemplateStatusCode::Successful => AnalysisPhase::Successful,
        TemplateStatusCode::Failed => AnalysisPhase::Failed,
        TemplateStatusCode::Error => AnalysisPhase::Error,
    };
    (phase, message)
}

/// Argo's `analysisStatusOrder`, best to worst.
fn analysis_order(phase: AnalysisPhase) -> u8 {
    match phase {
        AnalysisPhase::Successful => 0,
        AnalysisPhase::Running => 1,
        AnalysisPhase::Pending => 2,
        AnalysisPhase::Inconclusive => 3,
        AnalysisPhase::Error => 4,
        AnalysisPhase::Failed => 5,
    }
}

/// The analyses' aggregate phase and message (Argo's `assessAnalysisRuns`): the worst phase
/// (order Successful, Running, Pending, Inconclusive, Error, Failed; Successful when there are
/// none), Successful with `Required AnalysisRuns completed` once every required one succeeded and
/// nothing is still going or worse, and Pending reported as Running.
pub fn assess_analyses(experiment: &Experiment, status: &ExperimentStatus) -> (AnalysisPhase, String) {
    let mut worst = AnalysisPhase::Successful;
    let mut message = String::new();
    for a in experiment.spec.analyses() {
        let (phase, msg) = status
            .analysis_run(&a.name)
            .map(|s| (s.phase, s.message.clone().unwrap_or_default()))
            .unwrap_or((AnalysisPhase::Pending, String::new()));
        if analysis_order(phase) > analysis_order(worst) {
            worst = phase;
            message = msg;
        }
    }
    if required_runs_successful(experiment, status)
        && analysis_order(worst) < analysis_order(AnalysisPhase::Running)
    {
        return (AnalysisPhase::Successful, REQUIRED_ANALYSES_COMPLETED.to_string());
    }
    if worst == AnalysisPhase::Pending {
        worst = AnalysisPhase::Running;
    }
    (worst, message)
}

/// Message of an experiment that completed because its required analyses succeeded.
pub const REQUIRED_ANALYSES_COMPLETED: &str = "Required AnalysisRuns completed";

/// The experiment phase and message from the new template and analysis statuses (Argo's
/// `calculateStatus`). Completed phases are final.
pub fn calculate_phase(
    experiment: &Experiment,
    status: &ExperimentStatus,
) -> (AnalysisPhase, Option<String>) {
    let current = status.phase;
    let Some(phase) = current else {
        return (AnalysisPhase::Pending, status.message.clone());
    };
    if phase.is_completed() {
        return (phase, status.message.clone());
    }
    let (templates, template_msg) = assess_templates(experiment, status);
    let (analyses, analysis_msg) = assess_analyses(experiment, status);
    let any_required = experiment
        .spec
        .analyses()
        .iter()
        .any(ExperimentAnalysisTemplateRef::is_required_for_completion);
    let analyses_done = analyses.is_completed();
    let (phase, message) = if templates.is_completed() {
        if templates == AnalysisPhase::Successful && (analyses_done || any_required) {
            (analyses, analysis_msg)
        } else {
            (templates, template_msg)
        }
    } else if (analyses.is_completed() && analyses != AnalysisPhase::Successful)
        || required_runs_successful(experiment, status)
    {
        // A failed analysis ends the experiment early; so does success of every required one.
        (analyses, analysis_msg)
    } else {
        (templates, template_msg)
    };
    (phase, (!message.is_empty()).then_some(message))
}

fn set_condition(status: &mut ExperimentStatus, cond: ExperimentCondition) {
    let conditions = status.conditions.get_or_insert_with(Vec::new);
    match conditions
        .iter_mut()
        .find(|c| c.condition_type == cond.condition_type)
    {
        Some(existing) if existing.status == cond.status && existing.reason == cond.reason => {}
        Some(existing) => {
            let keep_transition = existing.status == cond.status;
            let transition = existing.last_transition_time.clone();
            *existing = cond;
            if keep_transition {
                existing.last_transition_time = transition;
            }
        }
        None => conditions.push(cond),
    }
}

fn condition(kind: &str, status: &str, reason: &str, message: String, now: Timestamp) -> ExperimentCondition {
    ExperimentCondition {
        condition_type: kind.into(),
        status: status.into(),
        last_update_time: Time(now),
        last_transition_time: Time(now),
        reason: reason.into(),
        message,
    }
}

struct State<'a> {
    inputs: &'a Inputs<'a>,
    now: Timestamp,
    terminating: bool,
    status: ExperimentStatus,
    actions: Vec<Action>,
    events: Vec<Event>,
    wake_at: Option<Timestamp>,
    rollout_events: Vec<(OwnerReference, String, String)>,
    /// The ReplicaSets as they will be: existing ones and the ones being created.
    replica_sets: BTreeMap<String, ReplicaSet>,
}

impl State<'_> {
    fn wake(&mut self, at: Timestamp) {
        self.wake_at = Some(self.wake_at.map_or(at, |w| w.min(at)));
    }

    fn event(&mut self, warning: bool, reason: String, message: String) {
        self.events.push(Event {
            warning,
            reason,
            message,
        });
    }
}

/// Decides one reconcile of `inputs.experiment`.
pub fn decide(inputs: &Inputs<'_>) -> Decision {
    let ex = inputs.experiment;
    let now = seconds(inputs.now);
    let old = ex.status.clone().unwrap_or_default();
    let mut state = State {
        inputs,
        now,
        terminating: is_terminating(ex),
        status: old.clone(),
        actions: Vec::new(),
        events: Vec::new(),
        wake_at: None,
        rollout_events: Vec::new(),
        replica_sets: inputs.replica_sets.clone(),
    };
    if let Err(errors) = validate_experiment_spec(&ex.name_any(), &ex.spec) {
        let message = errors.first().map(|e| e.message.clone()).unwrap_or_default();
        set_condition(
            &mut state.status,
            condition(
                EXPERIMENT_CONDITION_INVALID_SPEC,
                "True",
                INVALID_SPEC_REASON,
                message.clone(),
                now,
            ),
        );
        if !old.phase_or_pending().is_completed() {
            state.status.phase = Some(AnalysisPhase::Error);
            state.status.message = Some(message);
            phase_event(&mut state, old.phase, AnalysisPhase::Error);
        }
        return finish(state);
    }
    if let Some(conds) = state.status.conditions.as_mut() {
        conds.retain(|c| c.condition_type != EXPERIMENT_CONDITION_INVALID_SPEC);
        if conds.is_empty() {
            state.status.conditions = None;
        }
    }
    let duration_passed = duration_end(ex).is_some_and(|end| now > end);
    for template in &ex.spec.templates {
        reconcile_template(&mut state, template, duration_passed);
    }
    if old.available_at.is_none() && !ex.spec.templates.is_empty() {
        let all_running = ex.spec.templates.iter().all(|t| {
            state
                .status
                .template_status(&t.name)
                .is_some_and(|s| s.status == Some(TemplateStatusCode::Running))
        });
        if all_running {
            state.status.available_at = Some(Time(now));
        }
    }
    for analysis in ex.spec.analyses() {
        reconcile_analysis(&mut state, analysis);
    }
    let (phase, message) = calculate_phase(ex, &state.status);
    if Some(phase) != old.phase {
        phase_event(&mut state, old.phase, phase);
    }
    state.status.phase = Some(phase);
    state.status.message = message;
    progressing_condition(ex, &old, &mut state.status, duration_passed, now);
    // The duration ends: look again then.
    if !phase.is_completed()
        && let Some(end) = duration_end(&Experiment {
            status: Some(state.status.clone()),
            ..ex.clone()
        })
        && end >= now
    {
        state.wake(after(end, 1));
    }
    finish(state)
}

/// Whether any template's replica counts changed, or a template got its first status (Argo's
/// `ExperimentProgressing`).
fn made_progress(old: &ExperimentStatus, new: &ExperimentStatus) -> bool {
    let old_list = old.template_statuses.as_deref().unwrap_or_default();
    let new_list = new.template_statuses.as_deref().unwrap_or_default();
    if old_list.len() < new_list.len() {
        return true;
    }
    old_list.iter().any(|o| {
        new_list.iter().find(|n| n.name == o.name).is_some_and(|n| {
            (
                o.replicas,
                o.updated_replicas,
                o.ready_replicas,
                o.available_replicas,
            ) != (
                n.replicas,
                n.updated_replicas,
                n.ready_replicas,
                n.available_replicas,
            )
        })
    })
}

/// The `Progressing` condition (Argo's `calculateExperimentConditions`): False/ExperimentCompleted
/// once completed; True/ReplicaSetUpdated (transition time kept) when the ReplicaSets made
/// progress; True/NewReplicaSetAvailable while running within the duration; else unchanged.
fn progressing_condition(
    ex: &Experiment,
    old: &ExperimentStatus,
    status: &mut ExperimentStatus,
    duration_passed: bool,
    now: Timestamp,
) {
    let name = ex.name_any();
    if status.phase_or_pending().is_completed() {
        set_condition(
            status,
            condition(
                EXPERIMENT_CONDITION_PROGRESSING,
                "False",
                EXPERIMENT_COMPLETED_REASON,
                experiment_completed_message(&name),
                now,
            ),
        );
    } else if made_progress(old, status) {
        let mut cond = condition(
            EXPERIMENT_CONDITION_PROGRESSING,
            "True",
            REPLICA_SET_UPDATED_REASON,
            experiment_progressing_message(&name),
            now,
        );
        if let Some(current) = old.condition(EXPERIMENT_CONDITION_PROGRESSING)
            && current.status == "True"
        {
            cond.last_transition_time = current.last_transition_time.clone();
        }
        let conditions = status.conditions.get_or_insert_with(Vec::new);
        conditions.retain(|c| c.condition_type != EXPERIMENT_CONDITION_PROGRESSING);
        conditions.push(cond);
    } else if old.available_at.is_some() && !duration_passed {
        set_condition(
            status,
            condition(
                EXPERIMENT_CONDITION_PROGRESSING,
                "True",
                NEW_REPLICA_SET_AVAILABLE_REASON,
                experiment_running_message(&name),
                now,
            ),
        );
    }
}

fn finish(state: State<'_>) -> Decision {
    Decision {
        status: state.status,
        actions: state.actions,
        events: state.events,
        wake_at: state.wake_at,
        rollout_events: state.rollout_events,
    }
}

fn phase_event(state: &mut State<'_>, from: Option<AnalysisPhase>, to: AnalysisPhase) {
    let from = from.map(AnalysisPhase::as_str).unwrap_or("");
    state.event(
        matches!(to, AnalysisPhase::Failed | AnalysisPhase::Error),
        format!("Experiment{}", to.as_str()),
        format!("Experiment transitioned from {from} -> {}", to.as_str()),
    );
}

fn reconcile_template(state: &mut State<'_>, template: &TemplateSpec, duration_passed: bool) {
    let ex = state.inputs.experiment;
    let now = state.now;
    let mut ts = state
        .status
        .template_status(&template.name)
        .cloned()
        .unwrap_or_else(|| TemplateStatus {
            name: template.name.clone(),
            ..Default::default()
        });
    let prev = ts.clone();
    let desired = desired_replicas(ex, template);
    let phase_done = ex
        .status
        .as_ref()
        .is_some_and(|s| s.phase_or_pending().is_completed());
    // A scale of the ReplicaSet is due (now or after the scale-down delay): the progress
    // deadline does not run meanwhile (Argo moves lastTransitionTime on every scale attempt).
    let mut scale_pending = false;
    match state.inputs.replica_sets.get(&template.name) {
        None if !phase_done => {
            let rs = new_replica_set(ex, template, ts.collision_count);
            ts.last_transition_time = Some(Time(now));
            state.actions.push(Action::CreateReplicaSet {
                template: template.name.clone(),
                replica_set: Box::new(rs.clone()),
            });
            state.replica_sets.insert(template.name.clone(), rs);
        }
        None => {}
        Some(rs) => {
            let current = replicaset::spec_replicas(rs);
            scale_pending = current != desired;
            if current != desired {
                let delay = ex.spec.scale_down_delay_seconds();
                if desired == 0 && delay > 0 {
                    match replicaset::scale_down_deadline(rs) {
                        None => {
                            let deadline = after(now, i64::from(delay));
                            state.actions.push(Action::SetScaleDownDeadline {
                                name: rs.name_any(),
                                deadline,
                            });
                            state.wake(after(deadline, 1));
                        }
                        Some(deadline) if deadline > now => state.wake(after(deadline, 1)),
                        Some(_) => {
                            state.actions.push(Action::ScaleReplicaSet {
                                name: rs.name_any(),
                                from: current,
                                to: 0,
                            });
                            ts.last_transition_time = Some(Time(now));
                        }
                    }
                } else {
                    state.actions.push(Action::ScaleReplicaSet {
                        name: rs.name_any(),
                        from: current,
                        to: desired,
                    });
                    ts.last_transition_time = Some(Time(now));
                }
            }
            ts.replicas = replicaset::status_replicas(rs);
            ts.updated_replicas = replicaset::status_replicas(rs);
            ts.ready_replicas = replicaset::ready_replicas(rs);
            ts.available_replicas = replicaset::available_replicas(rs);
        }
    }
    if template.service.is_some() {
        reconcile_service(state, template, &mut ts, desired);
    }
    if (
        prev.replicas,
        prev.updated_replicas,
        prev.ready_replicas,
        prev.available_replicas,
    ) != (
        ts.replicas,
        ts.updated_replicas,
        ts.ready_replicas,
        ts.available_replicas,
    ) {
        ts.last_transition_time = Some(Time(now));
    }
    let completed = prev.status.is_some_and(TemplateStatusCode::is_completed);
    if !completed {
        let (code, message) = if ts.available_replicas == desired {
            if duration_passed || state.terminating {
                (TemplateStatusCode::Successful, None)
            } else {
                (TemplateStatusCode::Running, None)
            }
        } else {
            let deadline_secs = ex.spec.progress_deadline_seconds();
            let since = ts.last_transition_time.as_ref().map_or(now, |t| t.0);
            let deadline = after(since, i64::from(deadline_secs));
            if now > deadline && !scale_pending {
                (
                    TemplateStatusCode::Failed,
                    Some(template_deadline_exceeded_message(&template.name, deadline_secs)),
                )
            } else if state.terminating {
                (TemplateStatusCode::Successful, None)
            } else {
                state.wake(after(deadline, 1));
                (TemplateStatusCode::Progressing, None)
            }
        };
        ts.status = Some(code);
        ts.message = message;
        if prev.status != Some(code) {
            ts.last_transition_time = Some(Time(now));
            let from = prev.status.map(TemplateStatusCode::as_str).unwrap_or("");
            let mut message = format!(
                "Template '{}' transitioned from {from} -> {}",
                template.name,
                code.as_str()
            );
            if let Some(m) = &ts.message {
                message.push_str(": ");
                message.push_str(m);
            }
            state.event(
                matches!(code, TemplateStatusCode::Failed | TemplateStatusCode::Error),
                format!("Template{}", code.as_str()),
                message,
            );
        }
    }
    let statuses = state.status.template_statuses.get_or_insert_with(Vec::new);
    match statuses.iter_mut().find(|s| s.name == template.name) {
        Some(s) => *s = ts,
        None => statuses.push(ts),
    }
}

fn reconcile_service(state: &mut State<'_>, template: &TemplateSpec, ts: &mut TemplateStatus, desired: i32) {
    let ex = state.inputs.experiment;
    let existing = state.inputs.services.get(&template.name);
    let rs = state.replica_sets.get(&template.name).cloned();
    if desired > 0 {
        match (existing, rs) {
            (Some(svc), Some(rs)) => {
                ts.service_name = Some(svc.name_any());
                ts.pod_template_hash = replicaset::hash(&rs).map(str::to_string);
            }
            (None, Some(rs)) => {
                if let Some(svc) = new_service(ex, template, &rs) {
                    ts.service_name = Some(svc.name_any());
                    ts.pod_template_hash = replicaset::hash(&rs).map(str::to_string);
                    state.actions.push(Action::CreateService {
                        template: template.name.clone(),
                        service: Box::new(svc),
                    });
                }
            }
            (_, None) => {}
        }
        return;
    }
    let Some(svc) = existing else {
        return;
    };
    let drained = rs
        .as_ref()
        .is_none_or(|rs| replicaset::spec_replicas(rs) == 0 && replicaset::available_replicas(rs) == 0);
    if drained {
        state.actions.push(Action::DeleteService {
            template: template.name.clone(),
            name: svc.name_any(),
        });
        ts.service_name = None;
        ts.pod_template_hash = None;
    } else {
        ts.service_name = Some(svc.name_any());
    }
}

/// The run of an analysis among the experiment's runs: the one its status names, else one
/// with the analysis's run name.
fn find_run<'a>(state: &State<'a>, analysis: &str) -> Option<&'a AnalysisRun> {
    let ex = state.inputs.experiment;
    let named = state
        .status
        .analysis_run(analysis)
        .map(|s| s.analysis_run.clone())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| analysis_run_name(&ex.name_any(), analysis));
    state.inputs.runs.iter().find(|r| r.name_any() == named)
}

/// The arguments' context: the ReplicaSets' names and hashes, availableAt and its end.
fn arg_context(state: &State<'_>) -> ArgContext {
    let templates = state
        .replica_sets
        .iter()
        .map(|(t, rs)| {
            (
                t.clone(),
                TemplateFacts {
                    replica_set: rs.name_any(),
                    pod_template_hash: replicaset::hash(rs).unwrap_or_default().to_string(),
                },
            )
        })
        .collect();
    let available_at = state.status.available_at.as_ref().map(|t| t.0);
    let finished_at = duration_end(&Experiment {
        status: Some(state.status.clone()),
        ..state.inputs.experiment.clone()
    });
    ArgContext {
        templates,
        available_at,
        finished_at,
    }
}

/// The AnalysisRun of an analysis (Argo's `newAnalysisRun`).
pub fn new_analysis_run(
    experiment: &Experiment,
    analysis: &ExperimentAnalysisTemplateRef,
    templates: Templates<'_>,
    args: &ArgContext,
) -> Result<AnalysisRun, String> {
    let resolved = args.resolve(analysis.args())?;
    let refs = [AnalysisTemplateRef {
        template_name: analysis.template_name.clone(),
        cluster_scope: analysis.cluster_scope,
    }];
    let spec = templates
        .run_spec(
            &refs,
            &resolved,
            experiment.spec.dry_run.as_deref().unwrap_or_default(),
            experiment
                .spec
                .measurement_retention
                .as_deref()
                .unwrap_or_default(),
        )
        .map_err(|e| e.to_string())?;
    let metadata = experiment.spec.analysis_run_metadata.clone().unwrap_or_default();
    let mut labels = metadata.labels.unwrap_or_default();
    if let Some(id) = experiment.labels().get(keys::CONTROLLER_INSTANCE_ID) {
        labels.insert(keys::CONTROLLER_INSTANCE_ID.into(), id.clone());
    }
    let mut run = AnalysisRun::new(&analysis_run_name(&experiment.name_any(), &analysis.name), spec);
    run.metadata.namespace = experiment.namespace();
    run.metadata.labels = (!labels.is_empty()).then_some(labels);
    run.metadata.annotations = metadata.annotations.filter(|a| !a.is_empty());
    run.metadata.owner_references = Some(vec![object_meta::controller_reference(experiment)]);
    Ok(run)
}

fn reconcile_analysis(state: &mut State<'_>, analysis: &ExperimentAnalysisTemplateRef) {
    let ex = state.inputs.experiment;
    let prev = state
        .status
        .analysis_run(&analysis.name)
        .cloned()
        .unwrap_or_else(|| ExperimentAnalysisRunStatus {
            name: analysis.name.clone(),
            ..Default::default()
        });
    let mut st = prev.clone();
    let available = ex.status.as_ref().is_some_and(|s| s.available_at.is_some());
    if prev.phase.is_completed() {
        // Completed analyses keep their outcome.
    } else if !available {
        let refs = [AnalysisTemplateRef {
            template_name: analysis.template_name.clone(),
            cluster_scope: analysis.cluster_scope,
        }];
        if let Err(e) = state.inputs.templates.flatten(&refs) {
            let kind = if analysis.is_cluster_scope() {
                "ClusterAnalysisTemplate"
            } else {
                "AnalysisTemplate"
            };
            st.phase = AnalysisPhase::Error;
            st.message = Some(format!(
                "{kind} verification failed for analysis '{}': {e}",
                analysis.name
            ));
        }
    } else {
        match find_run(state, &analysis.name) {
            None if state.terminating => {}
            None => match new_analysis_run(ex, analysis, state.inputs.templates, &arg_context(state)) {
                Ok(run) => {
                    st.analysis_run = run.name_any();
                    st.phase = AnalysisPhase::Pending;
                    st.message = None;
                    state.actions.push(Action::CreateAnalysisRun {
                        analysis: analysis.name.clone(),
                        run: Box::new(run),
                    });
                }
                Err(e) => {
                    st.phase = AnalysisPhase::Error;
                    st.message = Some(format!(
                        "Failed to create AnalysisRun for analysis '{}': {e}",
                        analysis.name
                    ));
                }
            },
            Some(run) => {
                let run_status = run.status.clone().unwrap_or_default();
                let phase = run_status.phase_or_pending();
                st.analysis_run = run.name_any();
                if state.terminating {
                    // Running runs are terminated once the experiment winds down; a run that has
                    // ended (e.g. terminated by us) is still mirrored, so that a required one does
                    // not hold a terminated experiment Running forever.
                    if phase.is_completed() {
                        st.phase = phase;
                        st.message = run_status.message.filter(|m| !m.is_empty());
                    } else if !run.spec.is_terminating() {
                        state
                            .actions
                            .push(Action::TerminateAnalysisRun { name: run.name_any() });
                        state.event(
                            false,
                            "AnalysisRunTerminating".into(),
                            format!("Terminating {} ({})", analysis.name, run.name_any()),
                        );
                    }
                } else {
                    st.phase = phase;
                    st.message = run_status.message.filter(|m| !m.is_empty());
                }
            }
        }
    }
    if prev.phase != st.phase {
        let mut message = format!(
            "AnalysisRun '{}' transitioned from {} -> {}",
            analysis.name,
            prev.phase.as_str(),
            st.phase.as_str()
        );
        if let Some(m) = &st.message {
            message.push_str(": ");
            message.push_str(m);
        }
        let reason = format!("AnalysisRun{}", st.phase.as_str());
        // The parent Rollout of a step experiment hears of it too (as a Warning, as in Argo).
        if let Some(owner) = ex
            .owner_references()
            .iter()
            .find(|o| o.controller == Some(true) && o.kind == "Rollout")
        {
            state
                .rollout_events
                .push((owner.clone(), reason.clone(), message.clone()));
        }
        state.event(is_failure(st.phase), reason, message);
    }
    let runs = state.status.analysis_runs.get_or_insert_with(Vec::new);
    match runs.iter_mut().find(|r| r.name == analysis.name) {
        Some(r) => *r = st,
        None => runs.push(st),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::ReplicaSetStatus;
    use serde_json::json;
    use shared_types::analysis::{AnalysisRunStatus, AnalysisTemplate, ClusterAnalysisTemplate};

    const T0: &str = "2024-05-01T10:00:00Z";

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn at(secs: i64) -> Timestamp {
        after(ts(T0), secs)
    }

    fn experiment(spec: serde_json::Value) -> Experiment {
        let mut ex: Experiment = serde_json::from_value(json!({
            "apiVersion": "argoproj.io/v1alpha1", "kind": "Experiment",
            "metadata": {"name": "exp", "namespace": "ns", "uid": "uid-1"},
            "spec": spec,
        }))
        .unwrap();
        ex.status = None;
        ex
    }

    fn template(name: &str) -> serde_json::Value {
        json!({
            "name": name,
            "replicas": 2,
            "selector": {"matchLabels": {"app": "a", "exp": name}},
            "template": {
                "metadata": {"labels": {"app": "a", "exp": name}},
                "spec": {"containers": [{"name": "c", "image": "img",
                    "ports": [{"containerPort": 8080, "name": "http", "protocol": "TCP"}]}]}
            }
        })
    }

    struct World {
        replica_sets: BTreeMap<String, ReplicaSet>,
        services: BTreeMap<String, Service>,
        runs: Vec<AnalysisRun>,
        templates: BTreeMap<String, AnalysisTemplate>,
        cluster: BTreeMap<String, ClusterAnalysisTemplate>,
    }

    impl World {
        fn new() -> Self {
            let t: AnalysisTemplate = serde_json::from_value(json!({
                "apiVersion": "argoproj.io/v1alpha1", "kind": "AnalysisTemplate",
                "metadata": {"name": "web", "namespace": "ns"},
                "spec": {
                    "args": [{"name": "hash"}, {"name": "rs"}],
                    "metrics": [{"name": "m", "provider": {"web": {"url": "http://x/{{args.hash}}"}}}]
                }
            }))
            .unwrap();
            Self {
                replica_sets: BTreeMap::new(),
                services: BTreeMap::new(),
                runs: Vec::new(),
                templates: BTreeMap::from([("web".to_string(), t)]),
                cluster: BTreeMap::new(),
            }
        }

        fn decide(&self, ex: &Experiment, now: Timestamp) -> Decision {
            decide(&Inputs {
                experiment: ex,
                replica_sets: &self.replica_sets,
                services: &self.services,
                runs: &self.runs,
                templates: Templates {
                    namespaced: &self.templates,
                    cluster: &self.cluster,
                },
                now,
            })
        }

        /// Applies the creations and scalings, with every pod available.
        fn apply(&mut self, d: &Decision, available: bool) {
            for a in &d.actions {
                match a {
                    Action::CreateReplicaSet {
                        template,
                        replica_set,
                    } => {
                        self.replica_sets
                            .insert(template.clone(), (**replica_set).clone());
                    }
                    Action::ScaleReplicaSet { name, to, .. } => {
                        for rs in self.replica_sets.values_mut() {
                            if rs.name_any() == *name {
                                rs.spec.replicas = Some(*to);
                            }
                        }
                    }
                    Action::SetScaleDownDeadline { name, deadline } => {
                        for rs in self.replica_sets.values_mut() {
                            if rs.name_any() == *name {
                                rs.metadata
                                    .annotations
                                    .get_or_insert_with(Default::default)
                                    .insert(
                                        keys::SCALE_DOWN_DEADLINE.into(),
                                        deadline.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
                                    );
                            }
                        }
                    }
                    Action::CreateService { template, service } => {
                        self.services.insert(template.clone(), (**service).clone());
                    }
                    Action::DeleteService { template, .. } => {
                        self.services.remove(template);
                    }
                    Action::CreateAnalysisRun { run, .. } => self.runs.push((**run).clone()),
                    Action::TerminateAnalysisRun { name } => {
                        for r in &mut self.runs {
                            if r.name_any() == *name {
                                r.spec.terminate = Some(true);
                            }
                        }
                    }
                }
            }
            if available {
                for rs in self.replica_sets.values_mut() {
                    let n = replicaset::spec_replicas(rs);
                    rs.status = Some(ReplicaSetStatus {
                        replicas: n,
                        ready_replicas: Some(n),
                        available_replicas: Some(n),
                        ..Default::default()
                    });
                }
            }
        }

        /// One reconcile at `now`: decide, apply, keep the status.
        fn step(&mut self, ex: &mut Experiment, now: Timestamp, available: bool) -> Decision {
            let d = self.decide(ex, now);
            self.apply(&d, available);
            ex.status = Some(d.status.clone());
            d
        }
    }

    fn phase(ex: &Experiment) -> AnalysisPhase {
        ex.status.as_ref().unwrap().phase_or_pending()
    }

    fn template_status(ex: &Experiment, name: &str) -> TemplateStatus {
        ex.status.as_ref().unwrap().template_status(name).unwrap().clone()
    }

    #[test]
    fn names_follow_argo() {
        assert_eq!(replica_set_name("exp", "baseline"), "exp-baseline");
        assert_eq!(analysis_run_name("exp", "compare"), "exp-compare");
    }

    #[test]
    fn replica_set_of_a_template() {
        let ex = experiment(json!({"templates": [template("canary")]}));
        let t = &ex.spec.templates[0];
        let rs = new_replica_set(&ex, t, None);
        assert_eq!(rs.name_any(), "exp-canary");
        assert_eq!(replicaset::spec_replicas(&rs), 0);
        let hash = shared_types::hash::pod_template_hash(&t.template, None);
        assert_eq!(replicaset::hash(&rs), Some(hash.as_str()));
        assert_eq!(
            rs.labels().clone(),
            BTreeMap::from([(keys::POD_TEMPLATE_HASH.to_string(), hash.clone())])
        );
        let pod_labels = rs
            .spec
            .template
            .as_ref()
            .unwrap()
            .metadata
            .as_ref()
            .unwrap()
            .labels
            .clone();
        assert_eq!(pod_labels.unwrap().get("app").map(String::as_str), Some("a"));
        assert_eq!(
            rs.annotations()
                .get(EXPERIMENT_NAME_ANNOTATION)
                .map(String::as_str),
            Some("exp")
        );
        assert_eq!(
            rs.annotations()
                .get(EXPERIMENT_TEMPLATE_NAME_ANNOTATION)
                .map(String::as_str),
            Some("canary")
        );
        assert!(object_meta::is_owned_by(&rs.metadata, "uid-1"));
        assert_eq!(
            rs.spec
                .selector
                .match_labels
                .as_ref()
                .unwrap()
                .get(keys::POD_TEMPLATE_HASH),
            Some(&hash)
        );
        // An existing hash label in the template does not change the hash; a collision count does.
        let mut labelled = t.clone();
        labelled
            .template
            .metadata
            .as_mut()
            .unwrap()
            .labels
            .as_mut()
            .unwrap()
            .insert(keys::POD_TEMPLATE_HASH.into(), "old".into());
        assert_eq!(
            replicaset::hash(&new_replica_set(&ex, &labelled, None)),
            Some(hash.as_str())
        );
        assert_ne!(
            replicaset::hash(&new_replica_set(&ex, t, Some(1))),
            Some(hash.as_str())
        );
    }

    #[test]
    fn three_templates_run_for_the_duration_then_scale_down_after_the_delay() {
        let mut ex = experiment(json!({
            "duration": "20s",
            "templates": [template("baseline"), template("canary"), template("experimental")]
        }));
        let mut w = World::new();
        // First pass: three ReplicaSets at 0 and phase Pending.
        let d = w.step(&mut ex, at(0), false);
        let created: Vec<_> = d
            .actions
            .iter()
            .filter_map(|a| match a {
                Action::CreateReplicaSet { replica_set, .. } => Some(replica_set.name_any()),
                _ => None,
            })
            .collect();
        assert_eq!(created, vec!["exp-baseline", "exp-canary", "exp-experimental"]);
        assert_eq!(phase(&ex), AnalysisPhase::Pending);
        assert_eq!(
            d.events.last().unwrap().message,
            "Experiment transitioned from  -> Pending"
        );
        assert_eq!(
            template_status(&ex, "canary").status,
            Some(TemplateStatusCode::Progressing)
        );
        // The progress deadline is due in 600 s.
        assert_eq!(d.wake_at, Some(at(601)));
        // Second pass: scaled to 2 each.
        let d = w.step(&mut ex, at(1), false);
        assert!(d.actions.contains(&Action::ScaleReplicaSet {
            name: "exp-canary".into(),
            from: 0,
            to: 2
        }));
        assert_eq!(phase(&ex), AnalysisPhase::Pending);
        // Pods available: every template Running, availableAt stamped, phase Running.
        let d = w.step(&mut ex, at(5), true);
        assert!(d.actions.is_empty(), "{:?}", d.actions);
        let d = w.step(&mut ex, at(6), true);
        assert_eq!(
            template_status(&ex, "canary").status,
            Some(TemplateStatusCode::Running)
        );
        assert_eq!(template_status(&ex, "canary").available_replicas, 2);
        let status = ex.status.clone().unwrap();
        assert_eq!(status.available_at, Some(Time(at(6))));
        assert_eq!(phase(&ex), AnalysisPhase::Running);
        // The pods came up in this pass: progress.
        let progressing = status.condition("Progressing").unwrap().clone();
        assert_eq!(
            (progressing.status.as_str(), progressing.reason.as_str()),
            ("True", REPLICA_SET_UPDATED_REASON)
        );
        // Wakes when the duration ends.
        assert_eq!(d.wake_at, Some(at(27)));
        // Next pass: running within the duration.
        let d = w.step(&mut ex, at(7), true);
        assert!(d.actions.is_empty() && d.events.is_empty());
        let running = ex
            .status
            .as_ref()
            .unwrap()
            .condition("Progressing")
            .unwrap()
            .clone();
        assert_eq!(running.reason, NEW_REPLICA_SET_AVAILABLE_REASON);
        assert_eq!(running.last_transition_time, progressing.last_transition_time);
        // Nothing to do before the end.
        let d = w.step(&mut ex, at(20), true);
        assert!(d.actions.is_empty() && d.events.is_empty());
        assert_eq!(d.status, ex.status.clone().unwrap());
        // Past the duration: templates Successful, experiment Successful.
        w.step(&mut ex, at(27), true);
        assert_eq!(
            template_status(&ex, "baseline").status,
            Some(TemplateStatusCode::Successful)
        );
        assert_eq!(phase(&ex), AnalysisPhase::Successful);
        assert_eq!(
            ex.status
                .as_ref()
                .unwrap()
                .condition("Progressing")
                .unwrap()
                .reason,
            EXPERIMENT_COMPLETED_REASON
        );
        // Then the scale-down deadline (30 s by default), then scaled to 0.
        let d = w.step(&mut ex, at(28), true);
        assert!(d.actions.contains(&Action::SetScaleDownDeadline {
            name: "exp-canary".into(),
            deadline: at(58)
        }));
        assert_eq!(d.wake_at, Some(at(59)));
        let d = w.step(&mut ex, at(40), true);
        assert!(d.actions.is_empty());
        let d = w.step(&mut ex, at(59), true);
        assert_eq!(
            d.actions
                .iter()
                .filter(|a| matches!(a, Action::ScaleReplicaSet { to: 0, .. }))
                .count(),
            3
        );
        assert_eq!(phase(&ex), AnalysisPhase::Successful);
        let d = w.step(&mut ex, at(60), true);
        assert!(d.actions.is_empty());
        assert_eq!(d.wake_at, None);
    }

    #[test]
    fn no_delay_scales_down_at_once_and_terminate_ends_successfully() {
        let mut ex = experiment(json!({
            "scaleDownDelaySeconds": 0,
            "templates": [template("canary")]
        }));
        let mut w = World::new();
        w.step(&mut ex, at(0), false);
        w.step(&mut ex, at(1), true);
        w.step(&mut ex, at(2), true);
        assert_eq!(phase(&ex), AnalysisPhase::Running);
        // Without a duration it runs until told otherwise.
        let d = w.step(&mut ex, at(5000), true);
        assert_eq!(phase(&ex), AnalysisPhase::Running);
        assert_eq!(d.wake_at, None);
        ex.spec.terminate = Some(true);
        let d = w.step(&mut ex, at(5001), true);
        assert_eq!(phase(&ex), AnalysisPhase::Successful);
        assert!(d.actions.contains(&Action::ScaleReplicaSet {
            name: "exp-canary".into(),
            from: 2,
            to: 0
        }));
    }

    #[test]
    fn progress_deadline_fails_the_template_and_the_experiment() {
        let mut ex = experiment(json!({
            "progressDeadlineSeconds": 30,
            "templates": [template("canary")]
        }));
        let mut w = World::new();
        w.step(&mut ex, at(0), false);
        // Scaling up at 1 s moves lastTransitionTime: the deadline is 31 s.
        let d = w.step(&mut ex, at(1), false);
        assert_eq!(d.wake_at, Some(at(32)));
        w.step(&mut ex, at(31), false);
        assert_eq!(phase(&ex), AnalysisPhase::Pending);
        let d = w.step(&mut ex, at(32), false);
        let t = template_status(&ex, "canary");
        assert_eq!(t.status, Some(TemplateStatusCode::Failed));
        assert_eq!(
            t.message.as_deref(),
            Some("Template 'canary' exceeded its progressDeadlineSeconds (30)")
        );
        assert_eq!(phase(&ex), AnalysisPhase::Failed);
        assert_eq!(
            ex.status.as_ref().unwrap().message.as_deref(),
            Some("Template 'canary' exceeded its progressDeadlineSeconds (30)")
        );
        assert!(d.events.iter().any(|e| e.reason == "TemplateFailed" && e.warning));
        assert!(d.events.iter().any(|e| e.reason == "ExperimentFailed"
            && e.message == "Experiment transitioned from Pending -> Failed"));
    }

    #[test]
    fn replica_count_changes_move_the_transition_time() {
        let mut ex = experiment(json!({"progressDeadlineSeconds": 30, "templates": [template("canary")]}));
        let mut w = World::new();
        w.step(&mut ex, at(0), false);
        w.step(&mut ex, at(1), false);
        // One pod at 25 s: the deadline restarts.
        w.replica_sets.get_mut("canary").unwrap().status = Some(ReplicaSetStatus {
            replicas: 1,
            available_replicas: Some(1),
            ..Default::default()
        });
        let d = w.step(&mut ex, at(25), false);
        assert_eq!(
            template_status(&ex, "canary").last_transition_time,
            Some(Time(at(25)))
        );
        assert_eq!(d.wake_at, Some(at(56)));
        w.step(&mut ex, at(40), false);
        assert_eq!(phase(&ex), AnalysisPhase::Pending);
    }

    #[test]
    fn services_are_created_with_the_pods_and_deleted_after_them() {
        let mut t = template("canary");
        t["service"] = json!({});
        let mut named = template("baseline");
        named["service"] = json!({"name": "base-svc"});
        let mut ex = experiment(json!({
            "duration": "10s", "scaleDownDelaySeconds": 0,
            "templates": [named, t]
        }));
        let mut w = World::new();
        let d = w.step(&mut ex, at(0), false);
        let services: Vec<_> = d
            .actions
            .iter()
            .filter_map(|a| match a {
                Action::CreateService { service, .. } => Some((**service).clone()),
                _ => None,
            })
            .collect();
        assert_eq!(services.len(), 2);
        assert_eq!(services[0].name_any(), "base-svc");
        assert_eq!(services[1].name_any(), "exp-canary");
        let spec = services[1].spec.clone().unwrap();
        let rs = &w.replica_sets["canary"];
        assert_eq!(spec.selector, rs.metadata.labels.clone());
        let port = &spec.ports.unwrap()[0];
        assert_eq!(
            (port.port, port.target_port.clone(), port.name.as_deref()),
            (8080, Some(IntOrString::Int(8080)), Some("http"))
        );
        assert!(object_meta::is_owned_by(&services[1].metadata, "uid-1"));
        let ts = template_status(&ex, "canary");
        assert_eq!(ts.service_name.as_deref(), Some("exp-canary"));
        assert_eq!(ts.pod_template_hash.as_deref(), replicaset::hash(rs));
        w.step(&mut ex, at(1), true);
        w.step(&mut ex, at(2), true);
        assert_eq!(phase(&ex), AnalysisPhase::Running);
        w.step(&mut ex, at(13), true);
        assert_eq!(phase(&ex), AnalysisPhase::Successful);
        // Scaled to 0 (no delay), then the Services go once no pod is left.
        let d = w.step(&mut ex, at(14), false);
        assert!(
            !d.actions
                .iter()
                .any(|a| matches!(a, Action::DeleteService { .. }))
        );
        w.step(&mut ex, at(15), true);
        let d = w.step(&mut ex, at(16), true);
        assert_eq!(
            d.actions
                .iter()
                .filter(|a| matches!(a, Action::DeleteService { .. }))
                .count(),
            2
        );
        assert_eq!(template_status(&ex, "canary").service_name, None);
    }

    fn analysis_experiment(required: bool, duration: Option<&str>) -> Experiment {
        let mut spec = json!({
            "scaleDownDelaySeconds": 0,
            "templates": [template("baseline"), template("canary")],
            "analyses": [{
                "name": "compare", "templateName": "web", "requiredForCompletion": required,
                "args": [
                    {"name": "hash", "value": "{{templates.canary.podTemplateHash}}"},
                    {"name": "rs", "value": "{{templates.baseline.replicaset.name}}"}
                ]
            }],
            "dryRun": [{"metricName": "m"}],
            "analysisRunMetadata": {"labels": {"team": "a"}, "annotations": {"note": "n"}}
        });
        if let Some(d) = duration {
            spec["duration"] = json!(d);
        }
        let mut ex = experiment(spec);
        ex.metadata.labels = Some(BTreeMap::from([(
            keys::CONTROLLER_INSTANCE_ID.to_string(),
            "blue".to_string(),
        )]));
        ex
    }

    fn set_run_phase(w: &mut World, phase: AnalysisPhase, message: &str) {
        w.runs[0].status = Some(AnalysisRunStatus {
            phase: Some(phase),
            message: Some(message.into()),
            ..Default::default()
        });
    }

    #[test]
    fn analyses_start_once_available_with_templated_args() {
        let mut ex = analysis_experiment(false, None);
        let mut w = World::new();
        w.step(&mut ex, at(0), false);
        w.step(&mut ex, at(1), true);
        let d = w.step(&mut ex, at(2), true);
        // availableAt is stamped in this pass; the run starts in the next.
        assert!(
            !d.actions
                .iter()
                .any(|a| matches!(a, Action::CreateAnalysisRun { .. }))
        );
        let d = w.step(&mut ex, at(3), true);
        let run = d
            .actions
            .iter()
            .find_map(|a| match a {
                Action::CreateAnalysisRun { run, .. } => Some((**run).clone()),
                _ => None,
            })
            .unwrap();
        assert_eq!(run.name_any(), "exp-compare");
        assert!(object_meta::is_owned_by(&run.metadata, "uid-1"));
        assert_eq!(run.labels().get("team").map(String::as_str), Some("a"));
        assert_eq!(
            run.labels().get(keys::CONTROLLER_INSTANCE_ID).map(String::as_str),
            Some("blue")
        );
        assert_eq!(run.annotations().get("note").map(String::as_str), Some("n"));
        let hash = replicaset::hash(&w.replica_sets["canary"]).unwrap().to_string();
        let args = run.spec.args();
        assert_eq!(args[0].value.as_deref(), Some(hash.as_str()));
        assert_eq!(args[1].value.as_deref(), Some("exp-baseline"));
        assert_eq!(run.spec.dry_run.as_ref().unwrap()[0].metric_name, "m");
        let st = ex
            .status
            .as_ref()
            .unwrap()
            .analysis_run("compare")
            .unwrap()
            .clone();
        assert_eq!(
            (st.analysis_run.as_str(), st.phase),
            ("exp-compare", AnalysisPhase::Pending)
        );
        // Read back through the run's status.
        set_run_phase(&mut w, AnalysisPhase::Running, "");
        let d = w.step(&mut ex, at(4), true);
        assert!(d.actions.is_empty());
        assert_eq!(
            ex.status.as_ref().unwrap().analysis_run("compare").unwrap().phase,
            AnalysisPhase::Running
        );
        assert!(d.events.iter().any(|e| e.reason == "AnalysisRunRunning"));
        assert_eq!(phase(&ex), AnalysisPhase::Running);
    }

    #[test]
    fn a_failed_analysis_fails_the_experiment_with_its_message() {
        let mut ex = analysis_experiment(false, None);
        let mut w = World::new();
        for s in 0..4 {
            w.step(&mut ex, at(s), true);
        }
        set_run_phase(&mut w, AnalysisPhase::Failed, "Metric \"m\" assessed Failed");
        let d = w.step(&mut ex, at(5), true);
        assert_eq!(phase(&ex), AnalysisPhase::Failed);
        assert_eq!(
            ex.status.as_ref().unwrap().message.as_deref(),
            Some("Metric \"m\" assessed Failed")
        );
        assert!(
            d.events
                .iter()
                .any(|e| e.reason == "AnalysisRunFailed" && e.warning)
        );
        // Terminating: templates end Successful and scale down.
        let d = w.step(&mut ex, at(6), true);
        assert!(
            d.actions
                .iter()
                .any(|a| matches!(a, Action::ScaleReplicaSet { to: 0, .. }))
        );
        assert_eq!(
            template_status(&ex, "canary").status,
            Some(TemplateStatusCode::Successful)
        );
        assert_eq!(phase(&ex), AnalysisPhase::Failed);
    }

    #[test]
    fn required_analysis_completes_the_experiment() {
        let mut ex = analysis_experiment(true, None);
        let mut w = World::new();
        for s in 0..4 {
            w.step(&mut ex, at(s), true);
        }
        set_run_phase(&mut w, AnalysisPhase::Successful, "");
        w.step(&mut ex, at(5), true);
        assert_eq!(phase(&ex), AnalysisPhase::Successful);
        assert_eq!(
            ex.status.as_ref().unwrap().message.as_deref(),
            Some("Required AnalysisRuns completed")
        );
    }

    #[test]
    fn a_running_analysis_is_terminated_when_the_duration_ends() {
        let mut ex = analysis_experiment(false, Some("10s"));
        let mut w = World::new();
        for s in 0..4 {
            w.step(&mut ex, at(s), true);
        }
        set_run_phase(&mut w, AnalysisPhase::Running, "");
        w.step(&mut ex, at(5), true);
        w.step(&mut ex, at(20), true);
        // Not required: the experiment ends with its templates.
        assert_eq!(phase(&ex), AnalysisPhase::Successful);
        let d = w.step(&mut ex, at(21), true);
        assert!(d.actions.contains(&Action::TerminateAnalysisRun {
            name: "exp-compare".into()
        }));
    }

    #[test]
    fn a_required_analysis_keeps_the_experiment_running_past_the_duration() {
        let mut ex = analysis_experiment(true, Some("10s"));
        let mut w = World::new();
        for s in 0..4 {
            w.step(&mut ex, at(s), true);
        }
        set_run_phase(&mut w, AnalysisPhase::Running, "");
        w.step(&mut ex, at(20), true);
        assert_eq!(phase(&ex), AnalysisPhase::Running);
        set_run_phase(&mut w, AnalysisPhase::Successful, "");
        w.step(&mut ex, at(21), true);
        assert_eq!(phase(&ex), AnalysisPhase::Successful);
    }

    #[test]
    fn terminating_with_a_running_required_analysis_terminates_it_and_ends() {
        let mut ex = analysis_experiment(true, None);
        let mut w = World::new();
        for s in 0..4 {
            w.step(&mut ex, at(s), true);
        }
        set_run_phase(&mut w, AnalysisPhase::Running, "");
        w.step(&mut ex, at(5), true);
        assert_eq!(phase(&ex), AnalysisPhase::Running);
        ex.spec.terminate = Some(true);
        let d = w.step(&mut ex, at(6), true);
        assert!(d.actions.contains(&Action::TerminateAnalysisRun {
            name: "exp-compare".into()
        }));
        assert!(w.runs[0].spec.is_terminating());
        // The analysis controller ends the terminated run (Argo: Successful, `Run Terminated`).
        set_run_phase(&mut w, AnalysisPhase::Successful, "Run Terminated");
        w.step(&mut ex, at(7), true);
        assert_eq!(phase(&ex), AnalysisPhase::Successful);
        let st = ex.status.clone().unwrap();
        assert_eq!(
            st.analysis_run("compare").unwrap().phase,
            AnalysisPhase::Successful
        );
        assert_eq!(
            template_status(&ex, "canary").status,
            Some(TemplateStatusCode::Successful)
        );
        // Nothing is terminated twice, and the outcome stays.
        let d = w.step(&mut ex, at(8), true);
        assert!(
            !d.actions
                .iter()
                .any(|a| matches!(a, Action::TerminateAnalysisRun { .. }))
        );
        assert_eq!(phase(&ex), AnalysisPhase::Successful);
    }

    #[test]
    fn a_missing_template_is_an_error_before_anything_runs() {
        let mut ex = analysis_experiment(false, None);
        ex.spec.analyses.as_mut().unwrap()[0].template_name = "missing".into();
        let mut w = World::new();
        w.step(&mut ex, at(0), false);
        let st = ex
            .status
            .as_ref()
            .unwrap()
            .analysis_run("compare")
            .unwrap()
            .clone();
        assert_eq!(st.phase, AnalysisPhase::Error);
        assert_eq!(
            st.message.as_deref(),
            Some(
                "AnalysisTemplate verification failed for analysis 'compare': AnalysisTemplate \"missing\" not found"
            )
        );
        // First pass only sets Pending; the next one ends in Error and winds down.
        let d = w.step(&mut ex, at(1), false);
        assert_eq!(phase(&ex), AnalysisPhase::Error);
        assert_eq!(
            ex.status.as_ref().unwrap().message.as_deref(),
            Some(
                "AnalysisTemplate verification failed for analysis 'compare': AnalysisTemplate \"missing\" not found"
            )
        );
        assert!(
            !d.actions
                .iter()
                .any(|a| matches!(a, Action::ScaleReplicaSet { to: 2, .. }))
        );
    }

    #[test]
    fn an_unresolvable_arg_is_an_analysis_error() {
        let mut ex = analysis_experiment(false, None);
        ex.spec.analyses.as_mut().unwrap()[0].args.as_mut().unwrap()[0].value =
            Some("{{templates.nope.podTemplateHash}}".into());
        let mut w = World::new();
        for s in 0..4 {
            w.step(&mut ex, at(s), true);
        }
        let st = ex
            .status
            .as_ref()
            .unwrap()
            .analysis_run("compare")
            .unwrap()
            .clone();
        assert_eq!(st.phase, AnalysisPhase::Error);
        assert_eq!(
            st.message.as_deref(),
            Some(
                "Failed to create AnalysisRun for analysis 'compare': failed to resolve {{templates.nope.podTemplateHash}}"
            )
        );
        assert_eq!(phase(&ex), AnalysisPhase::Error);
    }

    #[test]
    fn invalid_spec_is_an_error_without_replica_sets() {
        let mut ex = experiment(json!({"templates": [template("a"), template("a")]}));
        let w = World::new();
        let d = w.decide(&ex, at(0));
        assert!(d.actions.is_empty());
        assert_eq!(d.status.phase, Some(AnalysisPhase::Error));
        assert_eq!(
            d.status.message.as_deref(),
            Some("Experiment exp has repeated template name 'a' in templates")
        );
        assert_eq!(d.status.condition("InvalidSpec").unwrap().reason, "InvalidSpec");
        ex.status = Some(d.status);
        assert!(w.decide(&ex, at(1)).events.is_empty());
    }

    #[test]
    fn phase_aggregation_orders() {
        let ex = analysis_experiment(false, None);
        let status =
            |templates: &[(&str, TemplateStatusCode)], run: Option<AnalysisPhase>| ExperimentStatus {
                phase: Some(AnalysisPhase::Running),
                template_statuses: Some(
                    templates
                        .iter()
                        .map(|(n, c)| TemplateStatus {
                            name: n.to_string(),
                            status: Some(*c),
                            message: Some(format!("{n} msg")),
                            ..Default::default()
                        })
                        .collect(),
                ),
                analysis_runs: run.map(|p| {
                    vec![ExperimentAnalysisRunStatus {
                        name: "compare".into(),
                        analysis_run: "exp-compare".into(),
                        phase: p,
                        message: Some("run msg".into()),
                    }]
                }),
                ..Default::default()
            };
        use TemplateStatusCode as C;
        // Worst template wins; a missing template counts as Progressing.
        assert_eq!(
            assess_templates(&ex, &status(&[("baseline", C::Running)], None)).0,
            AnalysisPhase::Pending
        );
        assert_eq!(
            assess_templates(
                &ex,
                &status(&[("baseline", C::Failed), ("canary", C::Error)], None)
            ),
            (AnalysisPhase::Failed, "baseline msg".into())
        );
        assert_eq!(
            calculate_phase(
                &ex,
                &status(
                    &[("baseline", C::Running), ("canary", C::Running)],
                    Some(AnalysisPhase::Running)
                )
            )
            .0,
            AnalysisPhase::Running
        );
        assert_eq!(
            calculate_phase(
                &ex,
                &status(
                    &[("baseline", C::Running), ("canary", C::Running)],
                    Some(AnalysisPhase::Inconclusive)
                )
            ),
            (AnalysisPhase::Inconclusive, Some("run msg".into()))
        );
        // Templates done and successful, analysis still running and not required: Successful.
        assert_eq!(
            calculate_phase(
                &ex,
                &status(
                    &[("baseline", C::Successful), ("canary", C::Successful)],
                    Some(AnalysisPhase::Running)
                )
            )
            .0,
            AnalysisPhase::Successful
        );
        // A template failure beats a running analysis.
        assert_eq!(
            calculate_phase(
                &ex,
                &status(
                    &[("baseline", C::Failed), ("canary", C::Running)],
                    Some(AnalysisPhase::Running)
                )
            ),
            (AnalysisPhase::Failed, Some("baseline msg".into()))
        );
        // Completed phases are final; an unset phase becomes Pending.
        let mut done = status(&[("baseline", C::Running)], None);
        done.phase = Some(AnalysisPhase::Failed);
        assert_eq!(calculate_phase(&ex, &done).0, AnalysisPhase::Failed);
        done.phase = None;
        assert_eq!(calculate_phase(&ex, &done).0, AnalysisPhase::Pending);
    }
}

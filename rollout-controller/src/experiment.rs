//! Experiments of a Rollout's canary `experiment` steps (Argo's `rollout/experiment.go`): the
//! Experiment is built from the step and the new and stable ReplicaSets, created once the step is
//! reached, and read back through its phase: Successful completes the step, Inconclusive pauses
//! the rollout, Failed or Error aborts it. Experiments of other steps (or of an aborted or fully
//! promoted update) are terminated, old ones deleted beyond the history limits.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use shared_types::{
    analysis::AnalysisPhase,
    constants::{event_reason, keys, pause_reason},
    experiment::{Experiment, ExperimentAnalysisTemplateRef, ExperimentSpec, TemplateService, TemplateSpec},
    object_meta::{controller_reference, is_owned_by},
    replicaset as rsutil,
    rollout::RolloutExperimentStep,
};

use crate::{
    analysis::{HistoryEntry, history_limits, history_to_delete, resolve_experiment_args},
    plan::{Action, Ctx},
};

fn phase(experiment: &Experiment) -> AnalysisPhase {
    experiment
        .status
        .as_ref()
        .map(|s| s.phase_or_pending())
        .unwrap_or_default()
}

/// Name of the Experiment of step `index`: `<rollout>-<hash>-<revision>-<index>`, and on
/// collisions `-1`, `-2`, ... (`n` collisions so far).
pub fn experiment_name(rollout: &str, hash: &str, revision: &str, index: i32, n: u32) -> String {
    let base = format!("{rollout}-{hash}-{revision}-{index}");
    if n == 0 { base } else { format!("{base}-{n}") }
}

/// Argo's collision rule for Experiments: an existing one under the name is reused when the same
/// Rollout controls it, it has not finished and it runs the same spec.
pub fn is_reusable(existing: &Experiment, wanted: &Experiment, owner_uid: &str) -> bool {
    let comparable = |spec: &ExperimentSpec| ExperimentSpec {
        terminate: None,
        ..spec.clone()
    };
    is_owned_by(&existing.metadata, owner_uid)
        && !phase(existing).is_completed()
        && comparable(&existing.spec) == comparable(&wanted.spec)
}

/// The Experiment for the experiment step at `index` (Argo's `GetExperimentFromTemplate`): each
/// template's pods, selector and minReadySeconds come from the new (`specRef: canary`) or the
/// stable ReplicaSet, with the template's extra labels added to pods and selector.
pub fn build(ctx: &Ctx, step: &RolloutExperimentStep, index: i32) -> Result<Experiment, String> {
    let rollout = ctx.rollout;
    let new_rs = ctx.new_rs().ok_or("the new ReplicaSet does not exist yet")?;
    let hash = rsutil::hash(new_rs).unwrap_or_default().to_string();
    let revision = ctx.rollout_revision();
    let mut templates = Vec::new();
    for t in &step.templates {
        let source = match t.spec_ref.as_str() {
            "canary" => Some(new_rs),
            "stable" => ctx.stable_rs(),
            _ => return Err("Invalid template step SpecRef: must be canary or stable".into()),
        }
        .ok_or_else(|| format!("no ReplicaSet for specRef {:?}", t.spec_ref))?;
        let mut template = source.spec.template.clone().unwrap_or_default();
        let mut selector = t.selector.clone().unwrap_or_else(|| source.spec.selector.clone());
        if let Some(meta) = &t.metadata {
            let pod_meta = template.metadata.get_or_insert_with(Default::default);
            for (k, v) in meta.labels.iter().flatten() {
                pod_meta
                    .labels
                    .get_or_insert_with(Default::default)
                    .insert(k.clone(), v.clone());
                selector
                    .match_labels
                    .get_or_insert_with(Default::default)
                    .insert(k.clone(), v.clone());
            }
            for (k, v) in meta.annotations.iter().flatten() {
                pod_meta
                    .annotations
                    .get_or_insert_with(Default::default)
                    .insert(k.clone(), v.clone());
            }
        }
        templates.push(TemplateSpec {
            name: t.name.clone(),
            replicas: t.replicas,
            min_ready_seconds: source.spec.min_ready_seconds,
            selector: Some(selector),
            template,
            service: (t.weight.is_some() || t.service.is_some()).then(|| TemplateService {
                name: t
                    .service
                    .as_ref()
                    .and_then(|s| s.name.clone())
                    .filter(|n| !n.is_empty()),
            }),
        });
    }
    let analyses = step
        .analyses
        .iter()
        .flatten()
        .map(|a| {
            Ok(ExperimentAnalysisTemplateRef {
                args: Some(resolve_experiment_args(a.args(), rollout)?).filter(|v| !v.is_empty()),
                ..a.clone()
            })
        })
        .collect::<Result<Vec<_>, String>>()?;
    let mut labels = rollout.metadata.labels.clone().unwrap_or_default();
    labels.insert(keys::POD_TEMPLATE_HASH.into(), hash.clone());
    Ok(Experiment {
        metadata: ObjectMeta {
            name: Some(experiment_name(ctx.name(), &hash, &revision, index, 0)),
            namespace: rollout.metadata.namespace.clone(),
            labels: Some(labels),
            annotations: Some([(keys::REVISION.to_string(), revision)].into()),
            owner_references: Some(vec![controller_reference(rollout)]),
            ..Default::default()
        },
        spec: ExperimentSpec {
            templates,
            duration: step.duration.clone(),
            progress_deadline_seconds: rollout.spec.progress_deadline_seconds,
            analyses: Some(analyses).filter(|a| !a.is_empty()),
            scale_down_delay_seconds: step.scale_down_delay_seconds,
            dry_run: step.dry_run.clone(),
            analysis_run_metadata: step.analysis_run_metadata.clone(),
            ..Default::default()
        },
        status: None,
    })
}

/// The Experiment the status names as current.
pub(crate) fn tracked<'a>(ctx: &Ctx<'a>) -> Option<&'a Experiment> {
    let name = ctx.old.canary.as_ref()?.current_experiment.as_deref()?;
    ctx.experiments
        .iter()
        .find(|e| e.metadata.name.as_deref() == Some(name))
}

/// Whether the current experiment step is done: its Experiment ended Successful.
pub(crate) fn step_completed(ctx: &Ctx) -> bool {
    tracked(ctx).is_some_and(|e| phase(e) == AnalysisPhase::Successful)
}

fn terminate(ctx: &mut Ctx, experiment: &Experiment) {
    if !experiment.spec.is_terminating()
        && !phase(experiment).is_completed()
        && let Some(name) = experiment.metadata.name.clone()
    {
        ctx.plan.actions.push(Action::TerminateExperiment(name));
    }
}

/// Creates, reads back, terminates and cleans up the Rollout's Experiments for this reconcile
/// (Argo's `reconcileExperiments`) and records the running one in `ctx.current_experiment`.
pub(crate) fn reconcile(ctx: &mut Ctx) {
    let experiments = ctx.experiments;
    let current = tracked(ctx);
    ctx.current_experiment = None;
    if ctx.is_aborted() || ctx.old.promote_full.unwrap_or(false) {
        for e in experiments {
            terminate(ctx, e);
        }
        return;
    }
    if ctx
        .pause_condition(pause_reason::INCONCLUSIVE_ANALYSIS_RUN)
        .is_some()
    {
        ctx.current_experiment = current.and_then(|e| e.metadata.name.clone());
        return;
    }
    let index = ctx.old.current_step_index.unwrap_or(0);
    let rollout = ctx.rollout;
    let step = rollout
        .spec
        .strategy
        .canary
        .as_ref()
        .and_then(|c| c.steps().get(usize::try_from(index).ok()?))
        .and_then(|s| s.experiment.as_ref());
    let mut current = current.cloned();
    if let Some(step) = step {
        if current
            .as_ref()
            .is_some_and(|e| resumed_after_inconclusive(ctx, e))
        {
            // Someone resumed (promoted) the rollout the Inconclusive experiment paused: the step
            // runs a new Experiment (under the next free name); the old one is history.
            current = None;
        }
        if current.is_none() {
            if ctx.stable_rs.is_none() {
                return;
            }
            current = create(ctx, step, index);
        }
        if let Some(e) = &current {
            match phase(e) {
                AnalysisPhase::Inconclusive => ctx.add_pause(pause_reason::INCONCLUSIVE_EXPERIMENT),
                AnalysisPhase::Failed | AnalysisPhase::Error => {
                    ctx.abort(e.status.as_ref().and_then(|s| s.message.clone()))
                }
                _ => {}
            }
            // A Successful experiment is done with: the step completes and nothing is current.
            if phase(e) != AnalysisPhase::Successful {
                ctx.current_experiment = e.metadata.name.clone();
            }
        }
    }
    let keep = if step.is_some() {
        current.as_ref().and_then(|e| e.metadata.name.clone())
    } else {
        None
    };
    let others: Vec<&Experiment> = experiments
        .iter()
        .filter(|e| keep.is_none() || e.metadata.name != keep)
        .collect();
    let deleted = history_to_delete(
        others
            .iter()
            .map(|e| HistoryEntry::of(&e.metadata, e.status.as_ref().and_then(|s| s.phase))),
        &ctx.rss,
        history_limits(rollout),
    );
    for e in others {
        if !deleted
            .iter()
            .any(|d| e.metadata.name.as_deref() == Some(d.as_str()))
        {
            terminate(ctx, e);
        }
    }
    ctx.plan
        .actions
        .extend(deleted.into_iter().map(Action::DeleteExperiment));
}

/// Whether the rollout was resumed after `experiment` ended Inconclusive and paused it: the
/// controller's pause is still recorded but its `InconclusiveExperiment` condition was cleared
/// (`promote`). Like Argo's `needsNewAnalysisRun` for an Inconclusive AnalysisRun. (Argo itself
/// stops naming an Inconclusive experiment as current and starts a new one at once, even while
/// the rollout stays paused; here the new one waits for the promote.)
fn resumed_after_inconclusive(ctx: &Ctx, experiment: &Experiment) -> bool {
    phase(experiment) == AnalysisPhase::Inconclusive
        && ctx.old.is_controller_paused()
        && ctx
            .pause_condition(pause_reason::INCONCLUSIVE_EXPERIMENT)
            .is_none()
        && ctx.pause_condition(pause_reason::CANARY_PAUSE_STEP).is_none()
}

/// Creates the step's Experiment under the first free name (or takes over ours under it).
fn create(ctx: &mut Ctx, step: &RolloutExperimentStep, index: i32) -> Option<Experiment> {
    let mut experiment = match build(ctx, step, index) {
        Ok(e) => e,
        Err(e) => {
            ctx.warning(
                event_reason::RECONCILE_ERROR,
                format!("cannot create the Experiment of step {index}: {e}"),
            );
            return None;
        }
    };
    let uid = ctx.rollout.metadata.uid.clone().unwrap_or_default();
    let hash = ctx
        .new_rs()
        .and_then(rsutil::hash)
        .unwrap_or_default()
        .to_string();
    let revision = ctx.rollout_revision();
    for n in 0.. {
        let name = experiment_name(ctx.name(), &hash, &revision, index, n);
        match ctx
            .experiments
            .iter()
            .find(|e| e.metadata.name.as_deref() == Some(&name))
        {
            None => {
                experiment.metadata.name = Some(name.clone());
                ctx.plan
                    .actions
                    .push(Action::CreateExperiment(Box::new(experiment.clone())));
                ctx.event(
                    event_reason::EXPERIMENT_CREATED,
                    format!("Created Experiment '{name}'"),
                );
                return Some(experiment);
            }
            Some(existing) if is_reusable(existing, &experiment, &uid) => return Some(existing.clone()),
            Some(_) => {}
        }
    }
    None
}

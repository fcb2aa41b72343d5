//! AnalysisRuns of a Rollout (Argo's `rollout/analysis.go`), planned from what the analysis
//! controller reports in their status: the run of the current canary `analysis` step, the
//! background run of `canary.analysis`, and blue-green pre- and post-promotion runs. A run that
//! ends Successful lets the step or promotion go on, Inconclusive pauses the rollout, Failed or
//! Error aborts it with the run's message. Runs that are no longer current are terminated and
//! old ones deleted beyond the history limits.

use k8s_openapi::{
    api::apps::v1::ReplicaSet, apimachinery::pkg::apis::meta::v1::ObjectMeta, jiff::Timestamp,
};
use serde_json::Value;
use shared_types::{
    analysis::{AnalysisPhase, AnalysisRun, AnalysisTemplateRef, Argument},
    analysis_run::{
        RolloutRunKind, Templates, collision_name, is_semantically_equal, rollout_run_annotations,
        rollout_run_labels, rollout_run_name,
    },
    constants::{event_reason, keys, pause_reason},
    field_error::FieldError,
    object_meta::{controller_reference, is_owned_by},
    replicaset as rsutil,
    rollout::{AnalysisRunArgument, Rollout, RolloutAnalysis, RolloutAnalysisRunStatus, RolloutStatus},
};

use crate::plan::{Action, Ctx};

/// Runs and experiments of each kind kept when they are no longer current (Argo's defaults).
const DEFAULT_HISTORY_LIMIT: i32 = 5;

/// The runs a Rollout tracks, as its status records them (Argo's `CurrentAnalysisRuns`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CurrentRuns {
    /// `status.canary.currentStepAnalysisRunStatus`.
    pub step: Option<RolloutAnalysisRunStatus>,
    /// `status.canary.currentBackgroundAnalysisRunStatus`.
    pub background: Option<RolloutAnalysisRunStatus>,
    /// `status.blueGreen.prePromotionAnalysisRunStatus`.
    pub pre: Option<RolloutAnalysisRunStatus>,
    /// `status.blueGreen.postPromotionAnalysisRunStatus`.
    pub post: Option<RolloutAnalysisRunStatus>,
}

impl CurrentRuns {
    /// The runs the status names.
    pub fn from_status(status: &RolloutStatus) -> Self {
        let canary = status.canary.as_ref();
        let bg = status.blue_green.as_ref();
        CurrentRuns {
            step: canary.and_then(|c| c.current_step_analysis_run_status.clone()),
            background: canary.and_then(|c| c.current_background_analysis_run_status.clone()),
            pre: bg.and_then(|b| b.pre_promotion_analysis_run_status.clone()),
            post: bg.and_then(|b| b.post_promotion_analysis_run_status.clone()),
        }
    }

    fn get(&self, kind: RolloutRunKind) -> Option<&RolloutAnalysisRunStatus> {
        match kind {
            RolloutRunKind::Step(_) => self.step.as_ref(),
            RolloutRunKind::Background => self.background.as_ref(),
            RolloutRunKind::PrePromotion => self.pre.as_ref(),
            RolloutRunKind::PostPromotion => self.post.as_ref(),
        }
    }

    fn set(&mut self, kind: RolloutRunKind, value: Option<RolloutAnalysisRunStatus>) {
        match kind {
            RolloutRunKind::Step(_) => self.step = value,
            RolloutRunKind::Background => self.background = value,
            RolloutRunKind::PrePromotion => self.pre = value,
            RolloutRunKind::PostPromotion => self.post = value,
        }
    }

    fn names(&self) -> impl Iterator<Item = &str> {
        [&self.step, &self.background, &self.pre, &self.post]
            .into_iter()
            .flatten()
            .map(|s| s.name.as_str())
    }
}

/// Whether the tracked run of this kind ended Successful (what steps and promotion wait for).
pub(crate) fn succeeded(run: Option<&RolloutAnalysisRunStatus>) -> bool {
    run.is_some_and(|r| r.status == AnalysisPhase::Successful)
}

fn phase(run: &AnalysisRun) -> AnalysisPhase {
    run.status
        .as_ref()
        .map(|s| s.phase_or_pending())
        .unwrap_or_default()
}

fn completed(run: &AnalysisRun) -> bool {
    phase(run).is_completed()
}

fn run_status(run: &AnalysisRun) -> RolloutAnalysisRunStatus {
    RolloutAnalysisRunStatus {
        name: run.metadata.name.clone().unwrap_or_default(),
        status: phase(run),
        message: run.status.as_ref().and_then(|s| s.message.clone()),
    }
}

/// Argo's collision rule (`CreateWithCollisionCounter`): an existing run under the name we want
/// is ours to reuse when the same Rollout controls it, it is still going, and it measures the
/// same thing; otherwise the next name (`.1`, `.2`, ...) is tried. Shared by the plan (which sees
/// the cached runs) and the apply step (which may still meet a run the cache missed).
pub fn is_reusable(existing: &AnalysisRun, wanted: &AnalysisRun, owner_uid: &str) -> bool {
    is_owned_by(&existing.metadata, owner_uid)
        && !completed(existing)
        && is_semantically_equal(&existing.spec, &wanted.spec)
}

/// The template references of a Rollout analysis.
fn refs(analysis: &RolloutAnalysis) -> Vec<AnalysisTemplateRef> {
    analysis
        .templates
        .iter()
        .flatten()
        .map(|t| AnalysisTemplateRef {
            template_name: t.template_name.clone(),
            cluster_scope: t.cluster_scope,
        })
        .collect()
}

/// Every analysis the Rollout references, with the field path Argo reports problems under.
fn referenced_analyses(rollout: &Rollout) -> Vec<(String, &RolloutAnalysis)> {
    let strategy = &rollout.spec.strategy;
    let mut out = Vec::new();
    if let Some(canary) = &strategy.canary {
        for (i, step) in canary.steps().iter().enumerate() {
            if let Some(a) = &step.analysis {
                out.push((format!("spec.strategy.canary.steps[{i}].analysis.templates"), a));
            }
        }
        if let Some(bg) = &canary.analysis {
            out.push(("spec.strategy.canary.analysis.templates".into(), &bg.analysis));
        }
    }
    if let Some(bg) = &strategy.blue_green {
        if let Some(a) = &bg.pre_promotion_analysis {
            out.push(("spec.strategy.blueGreen.prePromotionAnalysis.templates".into(), a));
        }
        if let Some(a) = &bg.post_promotion_analysis {
            out.push((
                "spec.strategy.blueGreen.postPromotionAnalysis.templates".into(),
                a,
            ));
        }
    }
    out
}

/// Argo rejects a Rollout whose analyses name missing templates or cannot be built (clashing
/// metrics or arguments, an argument nobody supplies, a `fieldRef` that does not resolve): the
/// Rollout is marked InvalidSpec instead of failing when the run is due.
pub(crate) fn validate(rollout: &Rollout, templates: Templates) -> Vec<FieldError> {
    referenced_analyses(rollout)
        .into_iter()
        .filter_map(|(path, analysis)| {
            // The hashes are only known during an update; any value checks the rest.
            let built = resolve_rollout_args(analysis.args.as_deref().unwrap_or_default(), rollout, "", "")
                .and_then(|args| run_spec(templates, analysis, &args).map_err(|e| e.to_string()));
            built.err().map(|e| {
                let names: Vec<String> = refs(analysis).into_iter().map(|r| r.template_name).collect();
                FieldError::new(path, format!("Invalid value: {:?}: {e}", names.join(",")))
            })
        })
        .collect()
}

fn run_spec(
    templates: Templates,
    analysis: &RolloutAnalysis,
    args: &[Argument],
) -> Result<shared_types::analysis::AnalysisRunSpec, shared_types::analysis_run::BuildError> {
    templates.run_spec(
        &refs(analysis),
        args,
        analysis.dry_run.as_deref().unwrap_or_default(),
        analysis.measurement_retention.as_deref().unwrap_or_default(),
    )
}

/// Argument values a Rollout passes (Argo's `BuildArgumentsForRolloutAnalysisRun`): literal
/// values as they are, `podTemplateHashValue` as the new (`Latest`) or stable ReplicaSet's hash,
/// `fieldRef` read from the Rollout.
pub fn resolve_rollout_args(
    args: &[AnalysisRunArgument],
    rollout: &Rollout,
    new_hash: &str,
    stable_hash: &str,
) -> Result<Vec<Argument>, String> {
    args.iter()
        .map(|arg| {
            let from = arg.value_from.as_ref();
            let value = match (
                from.and_then(|f| f.pod_template_hash_value.as_deref()),
                from.and_then(|f| f.field_ref.as_ref()),
            ) {
                (Some("Latest"), _) => Some(new_hash.to_string()),
                (Some("Stable"), _) => Some(stable_hash.to_string()),
                (Some(other), _) => return Err(format!("invalid podTemplateHashValue {other:?}")),
                (None, Some(field)) => Some(field_value(rollout, &field.field_path)?),
                (None, None) => arg.value.clone(),
            };
            Ok(Argument {
                name: arg.name.clone(),
                value,
                value_from: None,
            })
        })
        .collect()
}

/// Argument values of an experiment step's analysis: `fieldRef` read from the Rollout; literal
/// values (which may hold experiment placeholders such as `{{templates.canary.podTemplateHash}}`)
/// and Secret references are left to the experiment and analysis controllers.
pub fn resolve_experiment_args(args: &[Argument], rollout: &Rollout) -> Result<Vec<Argument>, String> {
    args.iter()
        .map(
            |arg| match arg.value_from.as_ref().and_then(|f| f.field_ref.as_ref()) {
                Some(field) => Ok(Argument {
                    name: arg.name.clone(),
                    value: Some(field_value(rollout, &field.field_path)?),
                    value_from: None,
                }),
                None => Ok(arg.clone()),
            },
        )
        .collect()
}

/// A field of the Rollout as a string: `metadata.*` paths as the downward API reads them
/// (`metadata.name`, `metadata.labels['app']`), any other path as dotted keys and `[n]` indices
/// into the Rollout's JSON, ending in a string, number or boolean.
pub fn field_value(rollout: &Rollout, path: &str) -> Result<String, String> {
    let missing = || format!("field {path:?} not found in the Rollout");
    if let Some(rest) = path.strip_prefix("metadata.") {
        let meta = &rollout.metadata;
        let keyed = |prefix: &str| {
            rest.strip_prefix(prefix)
                .and_then(|r| r.strip_suffix("']"))
                .map(str::to_string)
        };
        return match rest {
            "name" => meta.name.clone().ok_or_else(missing),
            "namespace" => meta.namespace.clone().ok_or_else(missing),
            "uid" => meta.uid.clone().ok_or_else(missing),
            _ => {
                if let Some(key) = keyed("labels['") {
                    meta.labels
                        .as_ref()
                        .and_then(|l| l.get(&key).cloned())
                        .ok_or_else(missing)
                } else if let Some(key) = keyed("annotations['") {
                    meta.annotations
                        .as_ref()
                        .and_then(|a| a.get(&key).cloned())
                        .ok_or_else(missing)
                } else {
                    Err(format!("unsupported metadata field path {path:?}"))
                }
            }
        };
    }
    let json = serde_json::to_value(rollout).map_err(|e| e.to_string())?;
    let mut current = &json;
    for segment in path.split('.') {
        let (key, indices) = match segment.find('[') {
            Some(i) => (&segment[..i], &segment[i..]),
            None => (segment, ""),
        };
        if !key.is_empty() {
            current = current.get(key).ok_or_else(missing)?;
        }
        for index in indices.split('[').filter(|s| !s.is_empty()) {
            let n: usize = index.trim_end_matches(']').parse().map_err(|_| missing())?;
            current = current.get(n).ok_or_else(missing)?;
        }
    }
    match current {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        _ => Err(format!(
            "field {path:?} of the Rollout is not a string, number or boolean"
        )),
    }
}

/// The AnalysisRun a Rollout starts for `analysis` (Argo's `newAnalysisRunFromRollout`).
fn new_run(ctx: &Ctx, kind: RolloutRunKind, analysis: &RolloutAnalysis) -> Result<AnalysisRun, String> {
    let new_hash = ctx
        .new_rs()
        .and_then(rsutil::hash)
        .unwrap_or_default()
        .to_string();
    let stable_hash = ctx
        .stable_rs()
        .and_then(rsutil::hash)
        .unwrap_or_default()
        .to_string();
    let args = resolve_rollout_args(
        analysis.args.as_deref().unwrap_or_default(),
        ctx.rollout,
        &new_hash,
        &stable_hash,
    )?;
    let spec = run_spec(ctx.templates, analysis, &args).map_err(|e| e.to_string())?;
    let revision = ctx.rollout_revision();
    let metadata = analysis.analysis_run_metadata.as_ref();
    Ok(AnalysisRun {
        metadata: ObjectMeta {
            name: Some(rollout_run_name(ctx.name(), &new_hash, &revision, kind)),
            namespace: ctx.rollout.metadata.namespace.clone(),
            labels: Some(rollout_run_labels(ctx.rollout, &new_hash, kind, metadata)),
            annotations: Some(rollout_run_annotations(&revision, metadata)),
            owner_references: Some(vec![controller_reference(ctx.rollout)]),
            ..Default::default()
        },
        spec,
        status: None,
    })
}

/// Creates the run (or takes over the one a stale cache hid from us) and returns it.
fn create_run(ctx: &mut Ctx, kind: RolloutRunKind, analysis: &RolloutAnalysis) -> Option<AnalysisRun> {
    let mut run = match new_run(ctx, kind, analysis) {
        Ok(run) => run,
        Err(e) => {
            // Validation checks the same inputs, so this only happens if they change under us.
            ctx.warning(
                event_reason::RECONCILE_ERROR,
                format!("cannot create {} AnalysisRun: {e}", kind.rollout_type()),
            );
            return None;
        }
    };
    let base = run.metadata.name.clone().unwrap_or_default();
    let uid = ctx.rollout.metadata.uid.clone().unwrap_or_default();
    for n in 0.. {
        let name = collision_name(&base, n);
        match ctx
            .analysis_runs
            .iter()
            .find(|r| r.metadata.name.as_deref() == Some(&name))
        {
            None => {
                run.metadata.name = Some(name);
                ctx.plan
                    .actions
                    .push(Action::CreateAnalysisRun(Box::new(run.clone())));
                return Some(run);
            }
            Some(existing) if is_reusable(existing, &run, &uid) => return Some(existing.clone()),
            Some(_) => {}
        }
    }
    None
}

/// Argo's `needsNewAnalysisRun`: no run yet; or, once the controller paused for an Inconclusive
/// run and someone resumed, a new run; or, right after a retry, new runs for the new attempt.
fn needs_new_run(ctx: &Ctx, current: Option<&AnalysisRun>) -> bool {
    let Some(current) = current else { return true };
    if ctx.old.is_controller_paused()
        && ctx.pause_condition(pause_reason::CANARY_PAUSE_STEP).is_none()
        && ctx.pause_condition(pause_reason::BLUE_GREEN_PAUSE).is_none()
    {
        return phase(current) == AnalysisPhase::Inconclusive;
    }
    ctx.old.aborted_at.is_some()
}

/// Inconclusive pauses the rollout, Failed or Error aborts it with the run's message.
fn react_to(ctx: &mut Ctx, run: &AnalysisRun) {
    match phase(run) {
        AnalysisPhase::Inconclusive => ctx.add_pause(pause_reason::INCONCLUSIVE_ANALYSIS_RUN),
        AnalysisPhase::Failed | AnalysisPhase::Error => {
            ctx.abort(run.status.as_ref().and_then(|s| s.message.clone()))
        }
        _ => {}
    }
}

fn terminate(ctx: &mut Ctx, run: Option<&AnalysisRun>) {
    if let Some(run) = run
        && !run.spec.is_terminating()
        && !completed(run)
        && let Some(name) = run.metadata.name.clone()
    {
        ctx.plan.actions.push(Action::TerminateAnalysisRun(name));
    }
}

fn inconclusive_pause(ctx: &Ctx) -> bool {
    ctx.pause_condition(pause_reason::INCONCLUSIVE_ANALYSIS_RUN)
        .is_some()
}

/// Runs, terminates and cleans up the Rollout's AnalysisRuns for this reconcile (Argo's
/// `reconcileAnalysisRuns`) and records the current ones in `ctx.current_runs`.
pub(crate) fn reconcile(ctx: &mut Ctx) {
    let runs = ctx.analysis_runs;
    let by_name = |s: &Option<RolloutAnalysisRunStatus>| {
        s.as_ref().and_then(|s| {
            runs.iter()
                .find(|r| r.metadata.name.as_deref() == Some(s.name.as_str()))
        })
    };
    let tracked = CurrentRuns::from_status(&ctx.old);
    let current = [
        by_name(&tracked.step),
        by_name(&tracked.background),
        by_name(&tracked.pre),
        by_name(&tracked.post),
    ];
    let new_hash = ctx.new_rs().and_then(rsutil::hash).map(str::to_string);
    let skip = ctx.is_aborted()
        || ctx.old.promote_full.unwrap_or(false)
        || ctx
            .new_rs()
            .is_some_and(|rs| rsutil::scale_down_deadline(rs).is_some())
        || ctx.old.stable_rs.as_deref().is_none_or(str::is_empty)
        || ctx.rollback_within_window();
    if skip || new_hash.is_none() {
        // Nothing may be measured now: stop everything, keep reporting what was current.
        for run in runs {
            terminate(ctx, Some(run));
        }
        ctx.current_runs = refreshed(&tracked, &current);
        return;
    }
    let strategy = &ctx.rollout.spec.strategy;
    let mut now = [None, None, None, None];
    if strategy.canary.is_some() {
        now[0] = reconcile_step(ctx, current[0]);
        now[1] = reconcile_background(ctx, current[1]);
    }
    if strategy.blue_green.is_some() {
        now[2] = reconcile_promotion(ctx, RolloutRunKind::PrePromotion, current[2]);
        now[3] = reconcile_promotion(ctx, RolloutRunKind::PostPromotion, current[3]);
    }
    let kinds = [
        step_kind(ctx),
        RolloutRunKind::Background,
        RolloutRunKind::PrePromotion,
        RolloutRunKind::PostPromotion,
    ];
    let mut next = CurrentRuns::default();
    for (kind, run) in kinds.into_iter().zip(&now) {
        next.set(kind, run.as_ref().map(run_status));
        emit_phase_change(ctx, tracked.get(kind), run.as_ref(), kind);
    }
    let others: Vec<&AnalysisRun> = runs
        .iter()
        .filter(|r| !next.names().any(|n| r.metadata.name.as_deref() == Some(n)))
        .collect();
    let deleted = history_to_delete(
        others
            .iter()
            .map(|r| HistoryEntry::of(&r.metadata, r.status.as_ref().and_then(|s| s.phase))),
        &ctx.rss,
        history_limits(ctx.rollout),
    );
    for run in others {
        if !deleted
            .iter()
            .any(|d| run.metadata.name.as_deref() == Some(d.as_str()))
        {
            terminate(ctx, Some(run));
        }
    }
    ctx.plan
        .actions
        .extend(deleted.into_iter().map(Action::DeleteAnalysisRun));
    ctx.current_runs = next;
}

/// The tracked runs with the phase and message their objects show now.
fn refreshed(tracked: &CurrentRuns, current: &[Option<&AnalysisRun>; 4]) -> CurrentRuns {
    let pick = |old: &Option<RolloutAnalysisRunStatus>, run: Option<&AnalysisRun>| {
        run.map(run_status).or_else(|| old.clone())
    };
    CurrentRuns {
        step: pick(&tracked.step, current[0]),
        background: pick(&tracked.background, current[1]),
        pre: pick(&tracked.pre, current[2]),
        post: pick(&tracked.post, current[3]),
    }
}

fn step_kind(ctx: &Ctx) -> RolloutRunKind {
    RolloutRunKind::Step(ctx.old.current_step_index.unwrap_or(0))
}

/// The run of the current `analysis` step (Argo's `reconcileStepBasedAnalysisRun`).
fn reconcile_step(ctx: &mut Ctx, current: Option<&AnalysisRun>) -> Option<AnalysisRun> {
    let rollout = ctx.rollout;
    let index = ctx.old.current_step_index.unwrap_or(0);
    let step = rollout
        .spec
        .strategy
        .canary
        .as_ref()
        .and_then(|c| c.steps().get(usize::try_from(index).ok()?));
    if !ctx.old.pause_conditions().is_empty() || ctx.old.is_aborted() {
        return current.cloned();
    }
    let from_previous_step = current.is_some_and(|r| {
        r.metadata.labels.as_ref().and_then(|l| l.get(keys::STEP_INDEX)) != Some(&index.to_string())
    });
    let Some(analysis) = step
        .and_then(|s| s.analysis.as_ref())
        .filter(|_| !from_previous_step)
    else {
        terminate(ctx, current);
        return None;
    };
    if needs_new_run(ctx, current) {
        return create_run(ctx, RolloutRunKind::Step(index), analysis);
    }
    let current = current.cloned();
    if let Some(run) = &current {
        react_to(ctx, run);
    }
    current
}

/// The canary's background run (Argo's `reconcileBackgroundAnalysisRun`): from `startingStep`
/// on while an update is in progress.
fn reconcile_background(ctx: &mut Ctx, current: Option<&AnalysisRun>) -> Option<AnalysisRun> {
    let rollout = ctx.rollout;
    let canary = rollout.spec.strategy.canary.as_ref();
    let Some(background) = canary
        .and_then(|c| c.analysis.as_ref())
        .filter(|a| !a.analysis.templates.as_deref().unwrap_or_default().is_empty())
    else {
        terminate(ctx, current);
        return None;
    };
    let stable = ctx.old.stable_rs.as_deref().unwrap_or_default();
    let pod_hash = ctx.old.current_pod_hash.as_deref().unwrap_or_default();
    let before_start = background
        .starting_step
        .is_some_and(|start| ctx.old.current_step_index.unwrap_or(0) < start);
    if stable.is_empty() || pod_hash.is_empty() || stable == pod_hash || before_start {
        return None;
    }
    if inconclusive_pause(ctx) {
        return current.cloned();
    }
    if needs_new_run(ctx, current) {
        return create_run(ctx, RolloutRunKind::Background, &background.analysis);
    }
    let current = current.cloned();
    if let Some(run) = &current {
        react_to(ctx, run);
    }
    current
}

/// Blue-green pre-promotion (before the active Service switches, once the preview is
/// saturated) and post-promotion (after the switch, before the new ReplicaSet becomes stable)
/// runs (Argo's `reconcilePrePromotionAnalysisRun` / `reconcilePostPromotionAnalysisRun`).
fn reconcile_promotion(
    ctx: &mut Ctx,
    kind: RolloutRunKind,
    current: Option<&AnalysisRun>,
) -> Option<AnalysisRun> {
    let rollout = ctx.rollout;
    let bg = rollout.spec.strategy.blue_green.as_ref();
    let analysis = match kind {
        RolloutRunKind::PrePromotion => bg.and_then(|b| b.pre_promotion_analysis.as_ref()),
        _ => bg.and_then(|b| b.post_promotion_analysis.as_ref()),
    };
    let Some(analysis) = analysis else {
        terminate(ctx, current);
        return None;
    };
    let skip = if kind == RolloutRunKind::PrePromotion {
        skip_pre_promotion(ctx)
    } else {
        skip_post_promotion(ctx)
    };
    if skip {
        terminate(ctx, current);
        return current.cloned();
    }
    if inconclusive_pause(ctx) {
        return current.cloned();
    }
    if needs_new_run(ctx, current) {
        return create_run(ctx, kind, analysis);
    }
    let current = current.cloned();
    if let Some(run) = &current {
        react_to(ctx, run);
    }
    current
}

/// No pre-promotion run for the first deploy, after the switch, or before the preview is
/// saturated (previewReplicaCount pods when that is set).
fn skip_pre_promotion(ctx: &Ctx) -> bool {
    let Some(new) = ctx.new_rs() else { return true };
    let hash = rsutil::hash(new).unwrap_or_default();
    let active = ctx
        .old
        .blue_green
        .as_ref()
        .and_then(|b| b.active_selector.as_deref())
        .unwrap_or_default();
    if hash.is_empty() || ctx.old.stable_rs.as_deref() == Some(hash) || active.is_empty() || active == hash {
        return true;
    }
    match ctx
        .rollout
        .spec
        .strategy
        .blue_green
        .as_ref()
        .and_then(|b| b.preview_replica_count)
    {
        Some(count) => rsutil::spec_replicas(new) != count || rsutil::available_replicas(new) != count,
        None => !rsutil::is_saturated(new, ctx.replicas),
    }
}

/// No post-promotion run before the active Service selects the new ReplicaSet, or once it is stable.
fn skip_post_promotion(ctx: &Ctx) -> bool {
    let Some(new) = ctx.new_rs() else { return true };
    let hash = rsutil::hash(new).unwrap_or_default();
    let active = ctx
        .old
        .blue_green
        .as_ref()
        .and_then(|b| b.active_selector.as_deref());
    hash.is_empty()
        || ctx.old.stable_rs.as_deref() == Some(hash)
        || active != Some(hash)
        || !rsutil::is_saturated(new, ctx.replicas)
}

/// Argo's `AnalysisRun<Phase>` event when the tracked run of a kind changes phase.
fn emit_phase_change(
    ctx: &mut Ctx,
    previous: Option<&RolloutAnalysisRunStatus>,
    run: Option<&AnalysisRun>,
    kind: RolloutRunKind,
) {
    let Some(run) = run else { return };
    let Some(phase) = run.status.as_ref().and_then(|s| s.phase) else {
        return;
    };
    let name = run.metadata.name.clone().unwrap_or_default();
    let changed = previous.is_none_or(|p| p.name == name && p.status != phase);
    if !changed {
        return;
    }
    let before = previous.map_or("NoPreviousStatus".to_string(), |p| p.status.to_string());
    let message = format!(
        "{} Analysis Run '{name}' Status New: '{phase}' Previous: '{before}'",
        kind.rollout_type()
    );
    let reason = format!("AnalysisRun{phase}");
    if matches!(phase, AnalysisPhase::Failed | AnalysisPhase::Error) {
        ctx.warning(&reason, message);
    } else {
        ctx.event(&reason, message);
    }
}

/// `(successful, unsuccessful)` runs and experiments kept once they are no longer current.
pub(crate) fn history_limits(rollout: &Rollout) -> (i32, i32) {
    let strategy = rollout.spec.analysis.as_ref();
    (
        strategy
            .and_then(|a| a.successful_run_history_limit)
            .unwrap_or(DEFAULT_HISTORY_LIMIT),
        strategy
            .and_then(|a| a.unsuccessful_run_history_limit)
            .unwrap_or(DEFAULT_HISTORY_LIMIT),
    )
}

/// What the history clean-up looks at in an AnalysisRun or Experiment that is no longer current.
pub(crate) struct HistoryEntry<'a> {
    name: &'a str,
    hash: Option<&'a str>,
    phase: Option<AnalysisPhase>,
    created: Option<Timestamp>,
    deleting: bool,
}

impl<'a> HistoryEntry<'a> {
    pub(crate) fn of(meta: &'a ObjectMeta, phase: Option<AnalysisPhase>) -> Self {
        HistoryEntry {
            name: meta.name.as_deref().unwrap_or_default(),
            hash: meta
                .labels
                .as_ref()
                .and_then(|l| l.get(keys::POD_TEMPLATE_HASH))
                .map(String::as_str),
            phase,
            created: meta.creation_timestamp.as_ref().map(|t| t.0),
            deleting: meta.deletion_timestamp.is_some(),
        }
    }
}

/// Names to delete (Argo's `FilterAnalysisRunsToDelete` / `FilterExperimentsToDelete`): those
/// whose ReplicaSet is gone or going, and beyond the newest `limits.0` Successful and
/// `limits.1` Failed, Error or Inconclusive ones.
pub(crate) fn history_to_delete<'a>(
    entries: impl Iterator<Item = HistoryEntry<'a>>,
    rss: &[ReplicaSet],
    limits: (i32, i32),
) -> Vec<String> {
    let mut entries: Vec<HistoryEntry> = entries.filter(|e| !e.deleting).collect();
    entries.sort_by_key(|e| std::cmp::Reverse(e.created));
    let (mut successful, mut unsuccessful) = (0, 0);
    let mut out = Vec::new();
    for entry in entries {
        let rs = entry
            .hash
            .and_then(|h| rss.iter().find(|rs| rsutil::hash(rs) == Some(h)));
        let keep = match (rs, entry.phase) {
            (None, _) => false,
            (Some(rs), _) if rs.metadata.deletion_timestamp.is_some() => false,
            (Some(_), Some(AnalysisPhase::Successful)) => {
                successful += 1;
                successful <= limits.0
            }
            (Some(_), Some(AnalysisPhase::Failed | AnalysisPhase::Error | AnalysisPhase::Inconclusive)) => {
                unsuccessful += 1;
                unsuccessful <= limits.1
            }
            (Some(_), _) => true,
        };
        if !keep {
            out.push(entry.name.to_string());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rollout() -> Rollout {
        serde_json::from_value(json!({
            "apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
            "metadata": {"name": "r", "namespace": "ns", "labels": {"app": "web"}},
            "spec": {"replicas": 3, "strategy": {"canary": {"steps": [{"setWeight": 20}]}}},
        }))
        .expect("rollout parses")
    }

    #[test]
    fn rollout_args_resolve_hashes_and_fields() {
        let args: Vec<AnalysisRunArgument> = serde_json::from_value(json!([
            {"name": "literal", "value": "x"},
            {"name": "latest", "valueFrom": {"podTemplateHashValue": "Latest"}},
            {"name": "stable", "valueFrom": {"podTemplateHashValue": "Stable"}},
            {"name": "app", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
            {"name": "weight", "valueFrom": {"fieldRef": {"fieldPath": "spec.strategy.canary.steps[0].setWeight"}}},
        ]))
        .expect("args parse");
        let resolved = resolve_rollout_args(&args, &rollout(), "new", "old").expect("resolves");
        let values: Vec<(&str, Option<&str>)> = resolved
            .iter()
            .map(|a| (a.name.as_str(), a.value.as_deref()))
            .collect();
        assert_eq!(
            values,
            [
                ("literal", Some("x")),
                ("latest", Some("new")),
                ("stable", Some("old")),
                ("app", Some("web")),
                ("weight", Some("20")),
            ]
        );
    }

    #[test]
    fn field_paths_must_exist_and_end_in_a_value() {
        let r = rollout();
        assert_eq!(field_value(&r, "metadata.namespace").as_deref(), Ok("ns"));
        assert!(field_value(&r, "metadata.labels['missing']").is_err());
        assert!(
            field_value(&r, "spec.strategy").is_err(),
            "an object is not a value"
        );
        assert!(field_value(&r, "spec.nothing.here").is_err());
    }

    fn run(name: &str, hash: &str, phase: AnalysisPhase, created: i64) -> AnalysisRun {
        serde_json::from_value(json!({
            "apiVersion": "argoproj.io/v1alpha1", "kind": "AnalysisRun",
            "metadata": {"name": name, "labels": {keys::POD_TEMPLATE_HASH: hash},
                         "creationTimestamp": Timestamp::from_second(created).expect("time").to_string()},
            "spec": {"metrics": []},
            "status": {"phase": phase.as_str()},
        }))
        .expect("run parses")
    }

    #[test]
    fn history_keeps_the_newest_runs_of_existing_replica_sets() {
        let rs: ReplicaSet = serde_json::from_value(json!({
            "metadata": {"name": "r-a", "labels": {keys::POD_TEMPLATE_HASH: "a"}}
        }))
        .expect("rs parses");
        let runs = [
            run("ok-old", "a", AnalysisPhase::Successful, 1),
            run("ok-new", "a", AnalysisPhase::Successful, 2),
            run("failed", "a", AnalysisPhase::Failed, 3),
            run("running", "a", AnalysisPhase::Running, 4),
            run("orphan", "gone", AnalysisPhase::Successful, 5),
        ];
        let mut deleted = history_to_delete(
            runs.iter()
                .map(|r| HistoryEntry::of(&r.metadata, r.status.as_ref().and_then(|s| s.phase))),
            &[rs],
            (1, 0),
        );
        deleted.sort();
        assert_eq!(deleted, ["failed", "ok-old", "orphan"]);
    }
}

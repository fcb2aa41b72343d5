//! The canary strategy (Argo's `rolloutCanary`): steps of `setWeight` and `pause`, replica
//! weighting without traffic routing, and the stable/canary Service selectors.

use shared_types::{
    constants::{event_reason, keys, pause_reason},
    replicaset as rsutil,
    rollout::{CanaryStatus, CanaryStep, CanaryStrategy},
};

use crate::{
    plan::{Ctx, steps_hash},
    replicas::{BasicCanaryInput, RsCounts, basic_canary_counts, fence_posts},
    traffic,
};

fn strategy<'a>(ctx: &Ctx<'a>) -> &'a CanaryStrategy {
    // The caller only dispatches here for canary Rollouts; an empty strategy behaves like no steps.
    static EMPTY: std::sync::OnceLock<CanaryStrategy> = std::sync::OnceLock::new();
    ctx.rollout
        .spec
        .strategy
        .canary
        .as_ref()
        .unwrap_or_else(|| EMPTY.get_or_init(CanaryStrategy::default))
}

fn step_count(ctx: &Ctx) -> i32 {
    i32::try_from(strategy(ctx).steps().len()).unwrap_or(i32::MAX)
}

/// The current step index and step, from the status as read (Argo's `GetCurrentCanaryStep`).
fn current_step<'a>(ctx: &Ctx<'a>) -> (Option<i32>, Option<&'a CanaryStep>) {
    let steps = strategy(ctx).steps();
    if steps.is_empty() {
        return (None, None);
    }
    let index = ctx.old.current_step_index.unwrap_or(0);
    (
        Some(index),
        usize::try_from(index).ok().and_then(|i| steps.get(i)),
    )
}

/// Weight the canary should have now (Argo's `GetCanaryReplicasOrWeight` / `GetCurrentSetWeight`).
pub(crate) fn desired_weight(ctx: &Ctx) -> i32 {
    let max = strategy(ctx).max_traffic_weight();
    let stable = ctx.old.stable_rs.as_deref().unwrap_or_default();
    if ctx.old.promote_full.unwrap_or(false)
        || stable.is_empty()
        || ctx.old.current_pod_hash.as_deref() == Some(stable)
    {
        return max;
    }
    if ctx.is_aborted() {
        return 0;
    }
    let (index, step) = current_step(ctx);
    let (Some(index), Some(_)) = (index, step) else {
        return max;
    };
    let steps = strategy(ctx).steps();
    (0..=usize::try_from(index).unwrap_or(0))
        .rev()
        .find_map(|i| steps.get(i).and_then(|s| s.set_weight))
        .unwrap_or(0)
}

fn counts(ctx: &Ctx, i: Option<usize>) -> Option<RsCounts> {
    i.map(|i| RsCounts {
        spec: rsutil::spec_replicas(&ctx.rss[i]),
        available: rsutil::available_replicas(&ctx.rss[i]),
    })
}

/// Target `(canary, stable)` counts for this reconcile.
fn target_counts(ctx: &Ctx) -> (i32, i32) {
    if ctx.new_rs.is_none() {
        // No new ReplicaSet yet (e.g. paused before it was created): the stable one stays whole.
        return (0, ctx.replicas);
    }
    let canary = strategy(ctx);
    if canary.traffic_routing.is_some() {
        let index = ctx.old.current_step_index;
        let aborted = ctx.is_aborted();
        let promoted = ctx.old.stable_rs.is_some()
            && ctx.old.stable_rs == ctx.new_rs().and_then(rsutil::hash).map(str::to_string);
        let scale = if promoted {
            None
        } else {
            traffic::set_canary_scale_in_force(
                canary.steps(),
                index,
                aborted,
                canary.abort_scale_down_delay_seconds(),
            )
        };
        let recorded = ctx.old.canary.as_ref().and_then(|c| c.weights.as_ref());
        return traffic::traffic_routed_counts(&traffic::TrafficRoutedInput {
            replicas: ctx.replicas,
            max_weight: canary.max_traffic_weight(),
            weight: desired_weight(ctx),
            set_canary_scale: scale,
            min_pods_per_replica_set: canary.min_pods_per_replica_set,
            dynamic_stable_scale: canary.dynamic_stable_scale(),
            aborted,
            recorded_weights: recorded,
        });
    }
    let stable = ctx.distinct_stable();
    let others: i32 = ctx
        .others()
        .into_iter()
        .filter(|i| Some(*i) != stable)
        .map(|i| rsutil::spec_replicas(&ctx.rss[i]))
        .sum();
    basic_canary_counts(&BasicCanaryInput {
        replicas: ctx.replicas,
        weight: desired_weight(ctx),
        max_weight: canary.max_traffic_weight(),
        fence: fence_posts(
            ctx.replicas,
            canary.max_surge.as_ref(),
            canary.max_unavailable.as_ref(),
        ),
        new_rs: counts(ctx, ctx.new_rs),
        stable_rs: counts(ctx, stable),
        other_spec_replicas: others,
    })
}

/// Full reconcile of a canary Rollout.
pub(crate) fn reconcile(ctx: &mut Ctx) {
    let changed = ctx.template_or_steps_changed();
    ctx.sync_revision();
    if changed {
        return sync_status(ctx);
    }
    ctx.cleanup_revision_history();
    reconcile_services(ctx);
    let canary = strategy(ctx);
    let fence = fence_posts(
        ctx.replicas,
        canary.max_surge.as_ref(),
        canary.max_unavailable.as_ref(),
    );
    let evicted = ctx.reconcile_restart(fence.max_unavailable);
    crate::ephemeral::reconcile(ctx);
    let at_desired = at_desired_counts(ctx);
    ctx.traffic_weights = traffic::plan::reconcile(ctx, canary, at_desired);
    crate::experiment::reconcile(ctx);
    crate::analysis::reconcile(ctx);
    if !ctx.pause.add.is_empty() {
        // An Inconclusive run or experiment paused the rollout: nothing is scaled (Argo).
        return sync_status(ctx);
    }
    if !ctx.traffic_halted && !evicted && reconcile_replica_sets(ctx) {
        reconcile_pause(ctx);
    }
    sync_status(ctx);
}

/// Only keep ReplicaSet sizes right (spec.paused, a scaling event, an inconclusive pause).
/// AnalysisRuns are still followed (a background run may fail meanwhile), as in Argo.
pub(crate) fn sync_replicas_only(ctx: &mut Ctx) {
    if ctx.new_rs.is_some() {
        ctx.sync_revision();
    }
    reconcile_replica_sets(ctx);
    crate::analysis::reconcile(ctx);
    sync_status(ctx);
}

/// Stable Service to the stable ReplicaSet, canary Service to the new one (to stable when a
/// basic canary is aborted).
fn reconcile_services(ctx: &mut Ctx) {
    let canary = strategy(ctx);
    reconcile_ping_pong_services(ctx);
    if let (Some(svc), Some(stable)) = (canary.stable_service.clone(), ctx.stable_rs) {
        ensure_service_target(ctx, &svc, stable);
    }
    let Some(new) = ctx.new_rs else { return };
    let Some(svc) = canary.canary_service.clone() else {
        return;
    };
    if ctx.is_aborted() && canary.traffic_routing.is_none() {
        if let Some(stable) = ctx.stable_rs {
            ensure_service_target(ctx, &svc, stable);
        }
        return;
    }
    ensure_service_target(ctx, &svc, new);
}

/// Ping-pong: during an update the Service in the canary role selects the new ReplicaSet at
/// once (Argo switches it before the pods exist; it gets weight only through the router), and
/// the one in the stable role the stable ReplicaSet. When the update is promoted the roles
/// swap (`status.canary.stablePingPong`), so the Service already selecting the new pods keeps
/// them and becomes stable. (Argo leaves the stable-role Service alone, so one created without
/// a hash selector keeps selecting every pod until it has been canary once; we point it.)
fn reconcile_ping_pong_services(ctx: &mut Ctx) {
    let canary = strategy(ctx);
    if canary.ping_pong.is_none() {
        return;
    }
    let roles = canary.routed_services(
        ctx.old
            .canary
            .as_ref()
            .and_then(|c| c.stable_ping_pong.as_deref()),
    );
    let (stable_svc, canary_svc) = (roles.0.to_string(), roles.1.to_string());
    if let Some(stable) = ctx.stable_rs {
        ensure_service_target(ctx, &stable_svc, stable);
    }
    let promoted = ctx.old.stable_rs == ctx.old.current_pod_hash;
    if let (false, Some(new)) = (promoted, ctx.new_rs)
        && let Some(hash) = rsutil::hash(&ctx.rss[new]).map(str::to_string)
    {
        ctx.switch_service(&canary_svc, &hash);
    }
}

/// Switches a Service to a ReplicaSet once it can take traffic: fully available when the
/// Service is adopted, at least one available pod afterwards.
fn ensure_service_target(ctx: &mut Ctx, service: &str, rs: usize) {
    let Some(hash) = rsutil::hash(&ctx.rss[rs]).map(str::to_string) else {
        return;
    };
    let managed = ctx.service_is_managed(service);
    let replica_set = &ctx.rss[rs];
    if !managed && !rsutil::is_fully_available(replica_set) {
        return;
    }
    if ctx.service_selector(service).as_deref() != Some(hash.as_str())
        && managed
        && rsutil::available_replicas(replica_set) == 0
    {
        return;
    }
    ctx.switch_service(service, &hash);
}

/// Scales stable, then new, then the others, stopping after the first that changed (one
/// ReplicaSet per reconcile, as Argo does). Returns true when nothing was scaled.
fn reconcile_replica_sets(ctx: &mut Ctx) -> bool {
    let canary = strategy(ctx);
    let routed = canary.traffic_routing.is_some();
    // With traffic routing an aborted canary keeps its pods for abortScaleDownDelaySeconds.
    let abort_delay = routed && ctx.is_aborted() && ctx.distinct_stable().is_some() && ctx.new_rs.is_some();
    ctx.remove_scale_down_deadlines(abort_delay);
    let (canary_target, stable_target) = target_counts(ctx);
    if let Some(stable) = ctx.distinct_stable()
        && ctx.scale(stable, stable_target)
    {
        return false;
    }
    if let Some(new) = ctx.new_rs {
        let target = if abort_delay {
            ctx.abort_scale_down_target(new, i64::from(canary.abort_scale_down_delay_seconds()))
        } else {
            canary_target
        };
        if ctx.scale(new, target) {
            return false;
        }
    }
    let scaled = if routed {
        scale_down_others_routed(ctx)
    } else {
        scale_down_others(ctx)
    };
    scaled == 0
}

/// With traffic routing, old ReplicaSets still receiving traffic are left alone; the previous
/// stable one waits out scaleDownDelaySeconds (traffic may still reach it through proxies),
/// an intermediate one that never became stable goes at once.
fn scale_down_others_routed(ctx: &mut Ctx) -> i32 {
    let canary = strategy(ctx);
    let weights = ctx.old.canary.as_ref().and_then(|c| c.weights.clone());
    let mut referenced: Vec<String> = [ctx.old.stable_rs.clone(), ctx.old.current_pod_hash.clone()]
        .into_iter()
        .flatten()
        .collect();
    if let Some(w) = &weights {
        referenced.extend(w.canary.pod_template_hash.clone());
        referenced.extend(w.stable.pod_template_hash.clone());
    }
    for svc in [&canary.stable_service, &canary.canary_service]
        .into_iter()
        .flatten()
    {
        referenced.extend(ctx.service_selector(svc));
    }
    // Pods a DestinationRule subset still selects may still get traffic.
    if let Some(dr) = &ctx.destination_rule {
        let subsets = dr["spec"]["subsets"].as_array().into_iter().flatten();
        referenced.extend(
            subsets.filter_map(|s| s["labels"][keys::POD_TEMPLATE_HASH].as_str().map(str::to_string)),
        );
    }
    let fully_promoted = ctx.old.stable_rs.is_some() && ctx.old.stable_rs == ctx.old.current_pod_hash;
    let mut others: Vec<usize> = ctx
        .others()
        .into_iter()
        .filter(|i| rsutil::spec_replicas(&ctx.rss[*i]) > 0)
        .filter(|i| rsutil::hash(&ctx.rss[*i]).is_none_or(|h| !referenced.iter().any(|r| r == h)))
        .collect();
    others.sort_by_key(|i| std::cmp::Reverse(rsutil::revision(&ctx.rss[*i])));
    let delay = i64::from(canary.scale_down_delay_seconds());
    let mut annotated = 0;
    let mut total = 0;
    for i in others {
        let spec = rsutil::spec_replicas(&ctx.rss[i]);
        let delayed = fully_promoted || rsutil::scale_down_deadline(&ctx.rss[i]).is_some();
        let target = if delayed && !canary.dynamic_stable_scale() {
            ctx.scale_down_delay(i, delay, canary.scale_down_delay_revision_limit, &mut annotated)
        } else {
            0
        };
        if target != spec {
            ctx.scale(i, target);
            total += spec - target;
        }
    }
    total
}

/// Scales older ReplicaSets down: first to their available pods, then as far as the
/// unavailability budget allows, newest revision first. Returns the pods removed.
fn scale_down_others(ctx: &mut Ctx) -> i32 {
    let mut others: Vec<usize> = ctx
        .others()
        .into_iter()
        .filter(|i| rsutil::spec_replicas(&ctx.rss[*i]) > 0)
        .collect();
    if others.is_empty() {
        return 0;
    }
    let mut total = 0;
    for &i in &others {
        let rs = &ctx.rss[i];
        let (spec, available) = (rsutil::spec_replicas(rs), rsutil::available_replicas(rs));
        if spec > available {
            ctx.scale(i, available);
            total += spec - available;
        }
    }
    let canary = strategy(ctx);
    let fence = fence_posts(
        ctx.replicas,
        canary.max_surge.as_ref(),
        canary.max_unavailable.as_ref(),
    );
    let available: i32 = ctx.rss.iter().map(rsutil::available_replicas).sum();
    let mut max_scale_down = available - (ctx.replicas - fence.max_unavailable);
    others.sort_by_key(|i| std::cmp::Reverse(rsutil::revision(&ctx.rss[*i])));
    for i in others {
        if max_scale_down <= 0 {
            break;
        }
        let spec = rsutil::spec_replicas(&ctx.rss[i]);
        if spec == 0 {
            continue;
        }
        let desired = if spec > max_scale_down {
            spec - max_scale_down
        } else {
            0
        };
        if spec == desired {
            continue;
        }
        ctx.scale(i, desired);
        max_scale_down -= spec - desired;
        total += spec - desired;
    }
    total
}

/// Adds the `CanaryPauseStep` condition when a pause step is reached (Argo's `reconcileCanaryPause`).
fn reconcile_pause(ctx: &mut Ctx) {
    if ctx.rollout.spec.is_paused() || step_count(ctx) == 0 || ctx.old.is_aborted() {
        return;
    }
    let (_, Some(step)) = current_step(ctx) else {
        return;
    };
    let Some(pause) = &step.pause else { return };
    let seconds = pause.duration_seconds().ok().flatten();
    match ctx
        .pause_condition(pause_reason::CANARY_PAUSE_STEP)
        .map(|c| c.start_time.0)
    {
        None => {
            if !ctx.old.is_controller_paused() {
                start_pause(ctx, seconds);
            }
        }
        Some(start) => {
            if let Some(s) = seconds {
                let end = start + k8s_openapi::jiff::SignedDuration::from_secs(s);
                if end > ctx.now.0 {
                    ctx.requeue_at(end);
                }
            }
        }
    }
}

/// Pauses at a pause step (a timed one is looked at again when it ends).
fn start_pause(ctx: &mut Ctx, seconds: Option<i64>) {
    ctx.add_pause(pause_reason::CANARY_PAUSE_STEP);
    if let Some(s) = seconds {
        ctx.requeue(
            std::time::Duration::from_secs(u64::try_from(s).unwrap_or(0)) + std::time::Duration::from_secs(1),
        );
    }
}

/// Whether the current step is done (Argo's `completedCurrentCanaryStep`).
fn completed_current_step(ctx: &Ctx) -> bool {
    if ctx.rollout.spec.is_paused() || ctx.traffic_halted {
        return false;
    }
    let (_, Some(step)) = current_step(ctx) else {
        return false;
    };
    if let Some(pause) = &step.pause {
        let cond = ctx.pause_condition(pause_reason::CANARY_PAUSE_STEP);
        if ctx.old.is_controller_paused() && cond.is_none() {
            return true;
        }
        return match (pause.duration_seconds().ok().flatten(), cond) {
            (Some(secs), Some(c)) => {
                ctx.now.0 > c.start_time.0 + k8s_openapi::jiff::SignedDuration::from_secs(secs)
            }
            _ => false,
        };
    }
    if step.set_weight.is_some() || step.set_canary_scale.is_some() {
        return at_desired_counts(ctx);
    }
    if step.experiment.is_some() {
        return crate::experiment::step_completed(ctx);
    }
    if step.analysis.is_some() {
        return crate::analysis::succeeded(ctx.current_runs.step.as_ref());
    }
    // Header and mirror routes take effect at once; plugin steps complete when their plugin
    // reports success (not available: they wait).
    step.set_header_route.is_some() || step.set_mirror_route.is_some()
}

/// Canary and stable have exactly their target pods and no other ReplicaSet serves traffic
/// (Argo's `AtDesiredReplicaCountsForCanary`).
fn at_desired_counts(ctx: &Ctx) -> bool {
    let (canary_target, stable_target) = target_counts(ctx);
    let Some(new) = ctx.new_rs() else { return false };
    if rsutil::spec_replicas(new) != canary_target || rsutil::available_replicas(new) != canary_target {
        return false;
    }
    if !strategy(ctx).dynamic_stable_scale() {
        let Some(stable) = ctx.stable_rs() else {
            return false;
        };
        if rsutil::spec_replicas(stable) != stable_target || rsutil::status_replicas(stable) != stable_target
        {
            return false;
        }
    }
    if strategy(ctx).traffic_routing.is_some() {
        // The router decides where traffic goes; old pods do not receive any.
        return true;
    }
    let stable = ctx.distinct_stable();
    ctx.others()
        .into_iter()
        .filter(|i| Some(*i) != stable)
        .all(|i| rsutil::available_replicas(&ctx.rss[i]) == 0)
}

/// How Argo names a step in the `RolloutStepCompleted` event.
fn step_text(step: &CanaryStep) -> String {
    if let Some(w) = step.set_weight {
        return format!("setWeight: {w}");
    }
    if let Some(p) = &step.pause {
        return match &p.duration {
            None => "pause".into(),
            Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(i)) => format!("pause: {i}"),
            Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::String(s)) => {
                format!("pause: {s}")
            }
        };
    }
    if step.experiment.is_some() {
        return "experiment".into();
    }
    if step.analysis.is_some() {
        return "analysis".into();
    }
    if let Some(s) = &step.set_canary_scale {
        if let Some(w) = s.weight {
            return format!("setCanaryScale{{weight: {w}}}");
        }
        if let Some(r) = s.replicas {
            return format!("setCanaryScale{{replicas: {r}}}");
        }
        return "setCanaryScale{matchTrafficWeight: true}".into();
    }
    if let Some(h) = &step.set_header_route {
        return format!("setHeaderRoute: {}", h.name.clone().unwrap_or_default());
    }
    if let Some(m) = &step.set_mirror_route {
        return format!("setMirrorRoute: {}", m.name);
    }
    if let Some(p) = &step.plugin {
        return format!("plugin: {}", p.name);
    }
    String::new()
}

/// Computes and stores the status (Argo's `syncRolloutStatusCanary`).
fn sync_status(ctx: &mut Ctx) {
    let mut status = ctx.base_status();
    status.available_replicas = Some(ctx.rss.iter().map(rsutil::available_replicas).sum());
    status.hpa_replicas = Some(ctx.rss.iter().map(rsutil::status_replicas).sum());
    status.selector = ctx.rollout.spec.selector.as_ref().map(format_selector);
    status.current_step_hash = Some(steps_hash(ctx.rollout));
    if ctx.traffic_weights.is_some() {
        status.canary = Some(CanaryStatus {
            weights: ctx.traffic_weights.clone(),
            ..Default::default()
        });
    } else if strategy(ctx).traffic_routing.is_some() {
        status.canary = ctx.old.canary.clone();
    }
    if strategy(ctx).ping_pong.is_some() {
        // Which of ping and pong is stable changes only when an update is promoted.
        let stable = ctx.old.canary.as_ref().and_then(|c| c.stable_ping_pong.clone());
        status
            .canary
            .get_or_insert_with(Default::default)
            .stable_ping_pong = stable;
    }
    let steps = step_count(ctx);
    let (mut index, _) = current_step(ctx);

    if ctx.template_or_steps_changed() {
        ctx.reset_status(&mut status);
        let new_hash = ctx.new_rs().and_then(rsutil::hash).map(str::to_string);
        if new_hash.is_some() && new_hash == ctx.old.stable_rs && steps > 0 {
            ctx.event(event_reason::SKIP_STEPS, "Rollback to stable ReplicaSets");
            status.current_step_index = Some(steps);
        } else if ctx.rollback_within_window() && steps > 0 {
            ctx.event(
                event_reason::SKIP_STEPS,
                "Rollback to active ReplicaSets within RollbackWindow",
            );
            status.current_step_index = Some(steps);
        }
        return finish(ctx, status);
    }
    if ctx.old.promote_full.unwrap_or(false) {
        ctx.pause.clear = true;
        ctx.pause.remove_abort = true;
        if steps > 0 {
            index = Some(steps);
        }
    }
    if let Some(why) = should_full_promote(ctx) {
        status.current_step_index = index;
        ctx.promote_stable(&mut status, &why);
        return finish(ctx, status);
    }
    if ctx.is_aborted() {
        if steps > 0 {
            status.current_step_index = Some(if status.stable_rs == status.current_pod_hash {
                steps
            } else {
                0
            });
        }
        return finish(ctx, status);
    }
    if completed_current_step(ctx)
        && let Some(i) = index.as_mut()
    {
        *i += 1;
        let done = usize::try_from(*i - 1)
            .ok()
            .and_then(|k| strategy(ctx).steps().get(k))
            .map(step_text)
            .unwrap_or_default();
        let message = format!("Rollout step {}/{steps} completed ({done})", *i);
        ctx.event(event_reason::ROLLOUT_STEP_COMPLETED, message);
        ctx.remove_pause(pause_reason::CANARY_PAUSE_STEP);
        ctx.current_runs.step = None;
        // Arriving at a pause step pauses in the same status write (Argo needs a second
        // reconcile and a second write for it).
        let next_pause = usize::try_from(*i)
            .ok()
            .and_then(|k| strategy(ctx).steps().get(k))
            .and_then(|step| step.pause.as_ref());
        if let Some(pause) = next_pause
            && !ctx.rollout.spec.is_paused()
            && ctx.pause_condition(pause_reason::CANARY_PAUSE_STEP).is_none()
        {
            let seconds = pause.duration_seconds().ok().flatten();
            start_pause(ctx, seconds);
        }
    }
    status.current_step_index = index;
    finish(ctx, status);
}

fn finish(ctx: &mut Ctx, mut status: shared_types::rollout::RolloutStatus) {
    record_runs(ctx, &mut status);
    let available = status.available_replicas.unwrap_or(0) >= ctx.replicas;
    ctx.calculate_conditions(&mut status, available);
    ctx.finish_status(status);
}

/// The AnalysisRuns and Experiment the canary tracks, into `status.canary`.
fn record_runs(ctx: &Ctx, status: &mut shared_types::rollout::RolloutStatus) {
    let runs = &ctx.current_runs;
    let tracked = runs.step.is_some() || runs.background.is_some() || ctx.current_experiment.is_some();
    if !tracked && status.canary.is_none() {
        return;
    }
    let canary = status.canary.get_or_insert_with(Default::default);
    canary.current_step_analysis_run_status = runs.step.clone();
    canary.current_background_analysis_run_status = runs.background.clone();
    canary.current_experiment = ctx.current_experiment.clone();
}

/// Why the new ReplicaSet should become stable now, if it should (Argo's `shouldFullPromote`).
fn should_full_promote(ctx: &Ctx) -> Option<String> {
    if ctx.stable_rs.is_none() {
        return Some("Initial deploy".into());
    }
    if ctx.is_aborted() {
        return None;
    }
    let new = ctx.new_rs()?;
    if rsutil::available_replicas(new) != ctx.replicas {
        return None;
    }
    if ctx.old.promote_full.unwrap_or(false) {
        return Some("Full promotion requested".into());
    }
    if ctx.rollback_within_window() {
        return Some("Rollback within window".into());
    }
    let steps = step_count(ctx);
    let (index, _) = current_step(ctx);
    if steps == 0 || index == Some(steps) {
        return Some(format!("Completed all {steps} canary steps"));
    }
    None
}

/// `metav1.FormatLabelSelector`: `k=v` pairs and expressions, comma separated.
pub(crate) fn format_selector(
    selector: &k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector,
) -> String {
    // Like Go's labels.Selector: requirements sorted by key, set values sorted.
    let mut parts: Vec<(String, String)> = selector
        .match_labels
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), format!("{k}={v}")))
        .collect();
    for e in selector.match_expressions.iter().flatten() {
        let mut values = e.values.clone().unwrap_or_default();
        values.sort();
        let text = match e.operator.as_str() {
            "In" => format!("{} in ({})", e.key, values.join(",")),
            "NotIn" => format!("{} notin ({})", e.key, values.join(",")),
            "Exists" => e.key.clone(),
            "DoesNotExist" => format!("!{}", e.key),
            other => format!("{} {other} ({})", e.key, values.join(",")),
        };
        parts.push((e.key.clone(), text));
    }
    parts.sort_by(|a, b| a.0.cmp(&b.0));
    if parts.is_empty() {
        "<none>".into()
    } else {
        parts.into_iter().map(|(_, t)| t).collect::<Vec<_>>().join(",")
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};

    #[test]
    fn selectors_format_like_go() {
        let selector = LabelSelector {
            match_labels: Some(
                [
                    ("tier".to_string(), "web".to_string()),
                    ("app".to_string(), "x".to_string()),
                ]
                .into(),
            ),
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: "env".into(),
                operator: "In".into(),
                values: Some(vec!["prod".into(), "dev".into()]),
            }]),
        };
        assert_eq!(
            super::format_selector(&selector),
            "app=x,env in (dev,prod),tier=web"
        );
        assert_eq!(super::format_selector(&LabelSelector::default()), "<none>");
    }
}

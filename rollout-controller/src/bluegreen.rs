//! The blue-green strategy (Argo's `rolloutBlueGreen`): the new ReplicaSet is scaled up behind
//! the preview Service, the rollout pauses when auto-promotion is off, and the active Service is
//! switched once the new pods are all available.

use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use shared_types::{
    constants::pause_reason,
    replicaset as rsutil,
    rollout::{BlueGreenStatus, BlueGreenStrategy, RolloutStatus},
};

use crate::{canary::format_selector, plan::Ctx};

fn strategy<'a>(ctx: &Ctx<'a>) -> &'a BlueGreenStrategy {
    // Only dispatched for blue-green Rollouts; the fallback keeps this total without panicking.
    static EMPTY: std::sync::OnceLock<BlueGreenStrategy> = std::sync::OnceLock::new();
    ctx.rollout
        .spec
        .strategy
        .blue_green
        .as_ref()
        .unwrap_or_else(|| EMPTY.get_or_init(BlueGreenStrategy::default))
}

/// Full reconcile of a blue-green Rollout.
pub(crate) fn reconcile(ctx: &mut Ctx) {
    ctx.sync_revision();
    reconcile_preview_service(ctx);
    if ctx.pod_spec_changed() {
        return sync_status(ctx);
    }
    ctx.cleanup_revision_history();
    let unavailable = strategy(ctx).max_unavailable.clone();
    let max_unavailable =
        crate::replicas::fence_posts(ctx.replicas, Some(&IntOrString::Int(0)), unavailable.as_ref())
            .max_unavailable;
    if !ctx.reconcile_restart(max_unavailable) {
        reconcile_replica_sets(ctx);
    }
    crate::analysis::reconcile(ctx);
    reconcile_pause(ctx);
    reconcile_active_service(ctx);
    crate::ephemeral::reconcile(ctx);
    sync_status(ctx);
}

/// Only keep ReplicaSet sizes right (spec.paused, a scaling event).
pub(crate) fn sync_replicas_only(ctx: &mut Ctx) {
    if ctx.new_rs.is_some() {
        ctx.sync_revision();
    }
    reconcile_replica_sets(ctx);
    sync_status(ctx);
}

fn new_hash(ctx: &Ctx) -> Option<String> {
    ctx.new_rs().and_then(rsutil::hash).map(str::to_string)
}

/// The preview Service follows the new ReplicaSet from the moment it exists.
fn reconcile_preview_service(ctx: &mut Ctx) {
    if let (Some(svc), Some(hash)) = (strategy(ctx).preview_service.clone(), new_hash(ctx)) {
        ctx.switch_service(&svc, &hash);
    }
}

/// Replicas the new ReplicaSet should have (Argo's `NewRSNewReplicas` for blue-green).
fn new_rs_replicas(ctx: &Ctx) -> i32 {
    let bg = strategy(ctx);
    let Some(preview) = bg.preview_replica_count else {
        return ctx.replicas;
    };
    let active = ctx
        .old
        .blue_green
        .as_ref()
        .and_then(|b| b.active_selector.clone())
        .unwrap_or_default();
    let active_rs = ctx.index_of_hash(&active);
    if active_rs.is_none() || active_rs == ctx.new_rs {
        return ctx.replicas;
    }
    let bgs = ctx.old.blue_green.clone().unwrap_or_default();
    if !bgs.scale_up_preview_check_point.unwrap_or(false) && !ctx.old.promote_full.unwrap_or(false) {
        return preview;
    }
    ctx.replicas
}

/// The new ReplicaSet has all the pods it should have right now.
fn ready_for_pause(ctx: &Ctx) -> bool {
    let Some(new) = ctx.new_rs() else { return false };
    let want = new_rs_replicas(ctx);
    rsutil::spec_replicas(new) == want && rsutil::available_replicas(new) == want
}

fn reconcile_replica_sets(ctx: &mut Ctx) {
    let abort_delay = delays_scale_down_on_abort(ctx);
    ctx.remove_scale_down_deadlines(abort_delay);
    // The ReplicaSet the active Service selects stays at full size.
    let active_svc = strategy(ctx).active_service.clone();
    let active_rs = ctx
        .service_selector(&active_svc)
        .and_then(|h| ctx.index_of_hash(&h));
    if let Some(active) = active_rs {
        let replicas = ctx.replicas;
        ctx.scale(active, replicas);
    }
    if let Some(new) = ctx.new_rs {
        let want = if abort_delay {
            let delay = i64::from(strategy(ctx).abort_scale_down_delay_seconds());
            ctx.abort_scale_down_target(new, delay)
        } else {
            new_rs_replicas(ctx)
        };
        ctx.scale(new, want);
    }
    scale_down_others(ctx, active_rs);
}

/// After an abort the preview ReplicaSet is scaled down only after `abortScaleDownDelaySeconds`
/// (0 keeps it), counted from when the stable ReplicaSet is fully available again.
fn delays_scale_down_on_abort(ctx: &Ctx) -> bool {
    ctx.is_aborted() && ctx.distinct_stable().is_some() && ctx.new_rs.is_some()
}

/// Old ReplicaSets that nothing references get a scale-down deadline and go to zero after it.
fn scale_down_others(ctx: &mut Ctx, active_rs: Option<usize>) {
    if ctx
        .pause_condition(pause_reason::INCONCLUSIVE_ANALYSIS_RUN)
        .is_some()
    {
        return;
    }
    let referenced: Vec<String> = [
        ctx.old.stable_rs.clone(),
        ctx.old.current_pod_hash.clone(),
        ctx.old
            .blue_green
            .as_ref()
            .and_then(|b| b.active_selector.clone()),
        ctx.old
            .blue_green
            .as_ref()
            .and_then(|b| b.preview_selector.clone()),
    ]
    .into_iter()
    .flatten()
    .collect();
    let mut others: Vec<usize> = ctx
        .others()
        .into_iter()
        .filter(|i| Some(*i) != active_rs)
        .filter(|i| rsutil::hash(&ctx.rss[*i]).is_none_or(|h| !referenced.iter().any(|r| r == h)))
        .filter(|i| rsutil::spec_replicas(&ctx.rss[*i]) > 0)
        .collect();
    others.sort_by_key(|i| std::cmp::Reverse(rsutil::revision(&ctx.rss[*i])));
    let delay = i64::from(strategy(ctx).scale_down_delay_seconds());
    let limit = strategy(ctx).scale_down_delay_revision_limit;
    let mut annotated = 0;
    for i in others {
        let target = ctx.scale_down_delay(i, delay, limit, &mut annotated);
        if target != rsutil::spec_replicas(&ctx.rss[i]) {
            ctx.scale(i, target);
        }
    }
}

/// The active Service selects the new ReplicaSet or not yet, so pausing is pointless.
fn fast_tracked(ctx: &Ctx) -> bool {
    let active = ctx
        .service_selector(&strategy(ctx).active_service)
        .unwrap_or_default();
    let new = new_hash(ctx).unwrap_or_default();
    ctx.old.promote_full.unwrap_or(false)
        || ctx.rollback_within_window()
        || active.is_empty()
        || active == new
        || ctx.old.stable_rs.as_deref() == Some(new.as_str())
}

/// Pauses before the switch when auto-promotion is off or delayed (Argo's `reconcileBlueGreenPause`).
fn reconcile_pause(ctx: &mut Ctx) {
    if ctx.old.is_aborted() || ctx.rollout.spec.is_paused() || !ready_for_pause(ctx) {
        return;
    }
    // Past the previewReplicaCount trip-wire the pause is over for this update.
    if ctx
        .old
        .blue_green
        .as_ref()
        .and_then(|b| b.scale_up_preview_check_point)
        .unwrap_or(false)
    {
        return;
    }
    let bg = strategy(ctx);
    let auto = bg.auto_promotion_enabled();
    let seconds = i64::from(bg.auto_promotion_seconds.unwrap_or(0));
    if fast_tracked(ctx) || (auto && seconds == 0) {
        ctx.remove_pause(pause_reason::BLUE_GREEN_PAUSE);
        return;
    }
    // The pause (a person's decision) comes after a successful pre-promotion analysis.
    if !completed_pre_promotion_analysis(ctx) {
        return;
    }
    match ctx
        .pause_condition(pause_reason::BLUE_GREEN_PAUSE)
        .map(|c| c.start_time.0)
    {
        None => {
            if !ctx.old.is_controller_paused() {
                ctx.add_pause(pause_reason::BLUE_GREEN_PAUSE);
                if auto {
                    ctx.requeue(std::time::Duration::from_secs(
                        u64::try_from(seconds).unwrap_or(0) + 1,
                    ));
                }
            }
        }
        Some(start) if auto => {
            let end = start + k8s_openapi::jiff::SignedDuration::from_secs(seconds);
            if ctx.now.0 > end {
                ctx.remove_pause(pause_reason::BLUE_GREEN_PAUSE);
            } else {
                ctx.requeue_at(end);
            }
        }
        Some(_) => {}
    }
}

/// Whether the blue-green pause is over (Argo's `CompletedBlueGreenPause`).
fn completed_pause(ctx: &Ctx) -> bool {
    let bg = strategy(ctx);
    if ctx
        .old
        .blue_green
        .as_ref()
        .and_then(|b| b.scale_up_preview_check_point)
        .unwrap_or(false)
    {
        return true;
    }
    let seconds = i64::from(bg.auto_promotion_seconds.unwrap_or(0));
    let cond = ctx.pause_condition(pause_reason::BLUE_GREEN_PAUSE);
    if bg.auto_promotion_enabled() {
        return match cond {
            _ if seconds == 0 => true,
            Some(c) => ctx.now.0 > c.start_time.0 + k8s_openapi::jiff::SignedDuration::from_secs(seconds),
            None => ctx.old.is_controller_paused(),
        };
    }
    ctx.old.is_controller_paused() && cond.is_none()
}

/// Switches the active Service to the new ReplicaSet once it is saturated and the pause is over
/// (back to the stable one when aborted).
fn reconcile_active_service(ctx: &mut Ctx) {
    let svc = strategy(ctx).active_service.clone();
    if ctx.old.is_aborted() {
        if let Some(stable) = ctx.old.stable_rs.clone().filter(|s| !s.is_empty()) {
            ctx.switch_service(&svc, &stable);
        }
        return;
    }
    let Some(new) = ctx.new_rs() else { return };
    if !ready_for_pause(ctx) || !rsutil::is_saturated(new, ctx.replicas) {
        return;
    }
    let Some(hash) = new_hash(ctx) else { return };
    let paused_now = ctx.pause.add.contains(&pause_reason::BLUE_GREEN_PAUSE);
    if fast_tracked(ctx) || (!paused_now && completed_pause(ctx) && completed_pre_promotion_analysis(ctx)) {
        ctx.switch_service(&svc, &hash);
    }
}

/// No pre-promotion analysis, or its run ended Successful (Argo's `completedPrePromotionAnalysis`).
fn completed_pre_promotion_analysis(ctx: &Ctx) -> bool {
    strategy(ctx).pre_promotion_analysis.is_none()
        || crate::analysis::succeeded(ctx.current_runs.pre.as_ref())
}

/// Computes and stores the status (Argo's `syncRolloutStatusBlueGreen`).
fn sync_status(ctx: &mut Ctx) {
    let mut status = ctx.base_status();
    if ctx.pod_spec_changed() {
        ctx.reset_status(&mut status);
    }
    if ctx.old.promote_full.unwrap_or(false) {
        ctx.pause.clear = true;
    }
    let bg = strategy(ctx);
    let mut bgs = BlueGreenStatus {
        preview_selector: bg.preview_service.as_ref().and_then(|s| ctx.service_selector(s)),
        active_selector: ctx.service_selector(&bg.active_service),
        pre_promotion_analysis_run_status: ctx.current_runs.pre.clone(),
        post_promotion_analysis_run_status: ctx.current_runs.post.clone(),
        ..Default::default()
    };
    status.blue_green = Some(bgs.clone());
    if let Some(why) = should_full_promote(ctx, &status) {
        ctx.promote_stable(&mut status, &why);
    } else if !ctx.pod_spec_changed() {
        // A new template starts over: its preview must be promoted again.
        bgs.scale_up_preview_check_point = scale_up_preview_check_point(ctx, &status).then_some(true);
    }
    status.blue_green = Some(bgs.clone());
    let active = bgs.active_selector.as_deref().and_then(|h| ctx.index_of_hash(h));
    match active {
        Some(i) => {
            let rs = &ctx.rss[i];
            status.hpa_replicas = Some(rsutil::status_replicas(rs));
            status.selector = Some(format_selector(&rs.spec.selector));
            status.available_replicas = Some(rsutil::available_replicas(rs));
            status.ready_replicas = Some(rsutil::ready_replicas(rs));
        }
        None => {
            status.hpa_replicas = Some(ctx.rss.iter().map(rsutil::status_replicas).sum());
            status.selector = ctx.rollout.spec.selector.as_ref().map(format_selector);
            status.available_replicas = Some(ctx.rss.iter().map(rsutil::available_replicas).sum());
        }
    }
    let available = active.is_some_and(|i| rsutil::is_saturated(&ctx.rss[i], ctx.replicas));
    ctx.calculate_conditions(&mut status, available);
    ctx.finish_status(status);
}

/// Why the new ReplicaSet should become stable now, if it should.
fn should_full_promote(ctx: &Ctx, status: &RolloutStatus) -> Option<String> {
    if ctx.stable_rs.is_none() {
        return Some("Initial deploy".into());
    }
    let bgs = status.blue_green.clone().unwrap_or_default();
    let active = bgs.active_selector.unwrap_or_default();
    if active.is_empty() {
        return Some("Initial deploy".into());
    }
    if Some(active.as_str()) != status.current_pod_hash.as_deref() {
        return None;
    }
    if ctx.old.promote_full.unwrap_or(false) {
        return Some("Full promotion requested".into());
    }
    if ctx.rollback_within_window() {
        return Some("Rollback within window".into());
    }
    if ctx.is_aborted() {
        return None;
    }
    // Post-promotion analysis holds the promotion until its run succeeds.
    if strategy(ctx).post_promotion_analysis.is_some()
        && !crate::analysis::succeeded(ctx.current_runs.post.as_ref())
    {
        return None;
    }
    Some("Completed blue-green update".into())
}

/// previewReplicaCount trip-wire: once the pause is over, the preview may grow to full size.
fn scale_up_preview_check_point(ctx: &Ctx, status: &RolloutStatus) -> bool {
    let bg = strategy(ctx);
    if bg.preview_replica_count.is_none() || ctx.is_aborted() {
        return false;
    }
    if ctx
        .old
        .blue_green
        .as_ref()
        .and_then(|b| b.scale_up_preview_check_point)
        .unwrap_or(false)
    {
        // Stays set until the new ReplicaSet is promoted.
        return status.stable_rs != status.current_pod_hash;
    }
    ready_for_pause(ctx)
        && completed_pause(ctx)
        && completed_pre_promotion_analysis(ctx)
        && !ctx.pause.add.contains(&pause_reason::BLUE_GREEN_PAUSE)
}

//! The phase of a Rollout as clients see it (Argo's `rolloututil.GetRolloutPhase`).
//!
//! The controller writes `status.phase`/`status.message`, but a client must not trust them while
//! the controller has not yet processed the latest spec (observed generation behind) or a
//! resume (controller pause set without pause conditions): then the rollout is `Progressing`.
//! (Argo's workloadRef variant of the first check depends on an in-memory field that is never set
//! client side, so the plugin never shows it; neither do we.)
//! Without a written phase (very old controllers) it is computed from the status.

use shared_types::{
    constants::{condition_type, phase, reason},
    rollout::{Rollout, RolloutSpec, RolloutStatus},
};

/// `(phase, message)` of a rollout, as shown by `get`, `list` and `status`.
pub fn rollout_phase(ro: &Rollout) -> (String, String) {
    let status = ro.status.clone().unwrap_or_default();
    if !generation_observed(ro, &status) {
        return (phase::PROGRESSING.into(), phase::MSG_SPEC_NOT_OBSERVED.into());
    }
    if status.is_controller_paused() && status.pause_conditions().is_empty() {
        return (phase::PROGRESSING.into(), phase::MSG_WAITING_UNPAUSE.into());
    }
    if let Some(p) = status.phase.as_deref().filter(|p| !p.is_empty()) {
        return (p.to_string(), status.message.clone().unwrap_or_default());
    }
    calculate_rollout_phase(&ro.spec, &status)
}

/// Whether `status.observedGeneration` (a decimal string) has caught up with
/// `metadata.generation`. Non-numeric values are legacy hashes and count as observed.
fn generation_observed(ro: &Rollout, status: &RolloutStatus) -> bool {
    let Some(observed) = status
        .observed_generation
        .as_deref()
        .and_then(|g| g.parse::<i64>().ok())
    else {
        return true;
    };
    observed >= ro.metadata.generation.unwrap_or(0)
}

/// The phase computed from the status (Argo's `CalculateRolloutPhase`, first match wins).
pub fn calculate_rollout_phase(spec: &RolloutSpec, status: &RolloutStatus) -> (String, String) {
    let progressing = |m: &str| (phase::PROGRESSING.to_string(), m.to_string());
    for c in status.conditions() {
        if c.type_ == condition_type::INVALID_SPEC {
            return (
                phase::DEGRADED.into(),
                format!("{}: {}", condition_type::INVALID_SPEC, c.message),
            );
        }
    }
    for c in status.conditions() {
        if c.reason == reason::ROLLOUT_ABORTED || c.reason == reason::PROGRESS_DEADLINE_EXCEEDED {
            return (phase::DEGRADED.into(), format!("{}: {}", c.reason, c.message));
        }
    }
    if spec.is_paused() {
        return (phase::PAUSED.into(), phase::MSG_MANUALLY_PAUSED.into());
    }
    if let Some(pc) = status.pause_conditions().first() {
        return (phase::PAUSED.into(), pc.reason.clone());
    }
    if spec.restart_at.is_some() && spec.restart_at != status.restarted_at {
        return progressing(phase::MSG_RESTARTING);
    }
    let replicas = status.replicas.unwrap_or(0);
    let updated = status.updated_replicas.unwrap_or(0);
    let available = status.available_replicas.unwrap_or(0);
    if updated < spec.replicas() {
        return progressing(phase::MSG_MORE_REPLICAS_NEED_UPDATE);
    }
    if available < updated {
        return progressing(phase::MSG_UPDATED_BECOMING_AVAILABLE);
    }
    let current = status.current_pod_hash.as_deref().unwrap_or_default();
    let stable = status.stable_rs.as_deref().unwrap_or_default();
    if spec.strategy.blue_green.is_some() {
        let bg = status.blue_green.clone().unwrap_or_default();
        let active = bg.active_selector.as_deref().unwrap_or_default();
        if active.is_empty() || active != current {
            return progressing(phase::MSG_ACTIVE_CUTOVER_PENDING);
        }
        if stable != current {
            let post_done = bg
                .post_promotion_analysis_run_status
                .as_ref()
                .is_some_and(|s| s.status.is_completed());
            return progressing(if post_done {
                phase::MSG_WAITING_POST_PROMOTION
            } else {
                phase::MSG_WAITING_FOR_ANALYSIS
            });
        }
    } else if let Some(canary) = &spec.strategy.canary {
        if canary.traffic_routing.is_none() && replicas > updated {
            return progressing(phase::MSG_OLD_REPLICAS_PENDING);
        }
        if stable.is_empty() || stable != current {
            return progressing(phase::MSG_WAITING_FOR_STEPS);
        }
    }
    (phase::HEALTHY.into(), String::new())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ro(v: serde_json::Value) -> Rollout {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn written_phase_is_used_when_observed() {
        let r = ro(serde_json::json!({
            "apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
            "metadata": {"name": "r", "generation": 3},
            "spec": {"strategy": {"canary": {}}},
            "status": {"observedGeneration": "3", "phase": "Paused", "message": "CanaryPauseStep"}
        }));
        assert_eq!(rollout_phase(&r), ("Paused".into(), "CanaryPauseStep".into()));
    }

    #[test]
    fn client_side_overrides() {
        let r = ro(serde_json::json!({
            "apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
            "metadata": {"name": "r", "generation": 4},
            "spec": {"strategy": {"canary": {}}},
            "status": {"observedGeneration": "3", "phase": "Healthy"}
        }));
        assert_eq!(
            rollout_phase(&r).1,
            "waiting for rollout spec update to be observed"
        );
        let r = ro(serde_json::json!({
            "apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
            "metadata": {"name": "r", "generation": 3},
            "spec": {"strategy": {"canary": {}}},
            "status": {"observedGeneration": "3", "phase": "Paused", "controllerPause": true}
        }));
        assert_eq!(
            rollout_phase(&r),
            ("Progressing".into(), "waiting for rollout to unpause".into())
        );
    }

    #[test]
    fn computed_when_no_phase_is_written() {
        let r = ro(serde_json::json!({
            "apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
            "metadata": {"name": "r"},
            "spec": {"replicas": 3, "strategy": {"canary": {}}},
            "status": {"replicas": 3, "updatedReplicas": 1, "availableReplicas": 3}
        }));
        assert_eq!(rollout_phase(&r).1, "more replicas need to be updated");
        let r = ro(serde_json::json!({
            "apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
            "metadata": {"name": "r"},
            "spec": {"replicas": 1, "strategy": {"canary": {}}},
            "status": {"replicas": 1, "updatedReplicas": 1, "availableReplicas": 1,
                       "stableRS": "abc", "currentPodHash": "abc"}
        }));
        assert_eq!(rollout_phase(&r), ("Healthy".into(), String::new()));
    }
}

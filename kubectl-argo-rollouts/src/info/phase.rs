//! The phase of a Rollout as clients see it (Argo's `rolloututil.GetRolloutPhase`).
//!
//! The controller writes `status.phase`/`status.message`, but a client must not trust them while
//! the controller has not yet processed the latest spec (observed generation behind) or a
//! resume (controller pause set without pause conditions): then the rollout is `Progressing`.
//! (Argo's workloadRef variant of the first check depends on an in-memory field that is never set
//! client side, so the plugin never shows it; neither do we.)
//! Without a written phase (very old controllers) it is computed from the status, with the
//! controller's own calculation (`shared_types::rollout_phase`).

use shared_types::{
    constants::phase,
    rollout::{Rollout, RolloutStatus},
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
    let (phase, message) = shared_types::rollout_phase::calculate(&ro.spec, &status);
    (phase.to_string(), message)
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

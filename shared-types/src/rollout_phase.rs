//! The phase of a Rollout computed from its spec and status (Argo's
//! `rolloututil.CalculateRolloutPhase`, first match wins). The one copy: the rollout controller
//! writes it into `status.phase`, and the plugin falls back to it when no phase is written.

use crate::{
    constants::{condition_type, phase, reason},
    rollout::{RolloutSpec, RolloutStatus},
};

/// `(phase, message)` of a Rollout with this spec and status.
pub fn calculate(spec: &RolloutSpec, status: &RolloutStatus) -> (&'static str, String) {
    let progressing = |m: &str| (phase::PROGRESSING, m.to_string());
    if let Some(c) = status.condition(condition_type::INVALID_SPEC) {
        return (
            phase::DEGRADED,
            format!("{}: {}", reason::INVALID_SPEC, c.message),
        );
    }
    for c in status.conditions() {
        if c.reason == reason::ROLLOUT_ABORTED || c.reason == reason::PROGRESS_DEADLINE_EXCEEDED {
            return (phase::DEGRADED, format!("{}: {}", c.reason, c.message));
        }
    }
    if spec.is_paused() {
        return (phase::PAUSED, phase::MSG_MANUALLY_PAUSED.into());
    }
    if let Some(p) = status.pause_conditions().first() {
        return (phase::PAUSED, p.reason.clone());
    }
    if spec.restart_at.is_some() && spec.restart_at != status.restarted_at {
        return progressing(phase::MSG_RESTARTING);
    }
    let updated = status.updated_replicas.unwrap_or(0);
    if updated < spec.replicas() {
        return progressing(phase::MSG_MORE_REPLICAS_NEED_UPDATE);
    }
    if status.available_replicas.unwrap_or(0) < updated {
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
        if stable.is_empty() || stable != current {
            // Switched but not yet stable: a post-promotion analysis still running holds it
            // back; otherwise post-promotion verification does (Argo's
            // `waitingForBlueGreenPostPromotionAnalysis`).
            let waiting_for_analysis = spec
                .strategy
                .blue_green
                .as_ref()
                .is_some_and(|b| b.post_promotion_analysis.is_some())
                && !bg
                    .post_promotion_analysis_run_status
                    .as_ref()
                    .is_some_and(|s| s.status.is_completed());
            return progressing(if waiting_for_analysis {
                phase::MSG_WAITING_FOR_ANALYSIS
            } else {
                phase::MSG_WAITING_POST_PROMOTION
            });
        }
    } else if let Some(canary) = &spec.strategy.canary {
        if canary.traffic_routing.is_none() && status.replicas.unwrap_or(0) > updated {
            return progressing(phase::MSG_OLD_REPLICAS_PENDING);
        }
        if stable.is_empty() || stable != current {
            return progressing(phase::MSG_WAITING_FOR_STEPS);
        }
    }
    (phase::HEALTHY, String::new())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn calc(spec: serde_json::Value, status: serde_json::Value) -> (&'static str, String) {
        let spec: RolloutSpec = serde_json::from_value(spec).expect("spec parses");
        let status: RolloutStatus = serde_json::from_value(status).expect("status parses");
        calculate(&spec, &status)
    }

    /// Where the controller's and the plugin's copies used to disagree.
    #[test]
    fn blue_green_switched_but_not_stable_waits_for_post_promotion_analysis() {
        let spec = json!({"replicas": 2, "strategy": {"blueGreen": {"activeService": "a",
            "postPromotionAnalysis": {"templates": [{"templateName": "t"}]}}}});
        let base = json!({"replicas": 2, "updatedReplicas": 2, "availableReplicas": 2,
            "currentPodHash": "new", "stableRS": "old", "blueGreen": {"activeSelector": "new"}});
        assert_eq!(
            calc(spec.clone(), base.clone()),
            ("Progressing", "waiting for analysis to complete".into())
        );
        let mut running = base.clone();
        running["blueGreen"]["postPromotionAnalysisRunStatus"] = json!({"name": "ar", "status": "Running"});
        assert_eq!(
            calc(spec.clone(), running),
            ("Progressing", "waiting for analysis to complete".into())
        );
        // Without post-promotion analysis only verification can hold it.
        let plain = json!({"replicas": 2, "strategy": {"blueGreen": {"activeService": "a"}}});
        assert_eq!(
            calc(plain, base.clone()),
            (
                "Progressing",
                "waiting for post-promotion verification to complete".into()
            )
        );
        let mut done = base;
        done["blueGreen"]["postPromotionAnalysisRunStatus"] = json!({"name": "ar", "status": "Successful"});
        assert_eq!(
            calc(spec, done),
            (
                "Progressing",
                "waiting for post-promotion verification to complete".into()
            )
        );
    }

    #[test]
    fn canary_without_a_stable_replica_set_is_not_healthy() {
        let spec = json!({"replicas": 0, "strategy": {"canary": {}}});
        assert_eq!(
            calc(spec.clone(), json!({})),
            ("Progressing", "waiting for all steps to complete".into())
        );
        let healthy = json!({"currentPodHash": "a", "stableRS": "a"});
        assert_eq!(calc(spec, healthy), ("Healthy", String::new()));
    }

    #[test]
    fn first_match_wins() {
        let spec = json!({"replicas": 1, "paused": true, "strategy": {"canary": {}}});
        let status = json!({"conditions": [
            {"type": "Progressing", "status": "False", "reason": "RolloutAborted", "message": "Rollout aborted update to revision 2",
             "lastUpdateTime": "2026-01-01T00:00:00Z", "lastTransitionTime": "2026-01-01T00:00:00Z"}
        ], "pauseConditions": [{"reason": "CanaryPauseStep", "startTime": "2026-01-01T00:00:00Z"}]});
        assert_eq!(
            calc(spec.clone(), status),
            (
                "Degraded",
                "RolloutAborted: Rollout aborted update to revision 2".into()
            )
        );
        let paused =
            json!({"pauseConditions": [{"reason": "CanaryPauseStep", "startTime": "2026-01-01T00:00:00Z"}]});
        assert_eq!(calc(spec, paused), ("Paused", "manually paused".into()));
    }
}

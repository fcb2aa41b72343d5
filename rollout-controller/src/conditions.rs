//! Rollout conditions and the phase derived from them, with Argo's update rules.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use shared_types::rollout::{RolloutCondition, RolloutStatus};

/// A condition stamped with `now` for both times.
pub fn new_condition(
    type_: &str,
    status: &str,
    reason: &str,
    message: impl Into<String>,
    now: &Time,
) -> RolloutCondition {
    RolloutCondition {
        type_: type_.into(),
        status: status.into(),
        last_update_time: now.clone(),
        last_transition_time: now.clone(),
        reason: reason.into(),
        message: message.into(),
    }
}

/// Sets a condition: nothing happens when type, status, reason and message are unchanged; the
/// transition time is kept when only reason or message change. The updated condition moves to
/// the end of the list (as Argo's filter-and-append does). Returns whether anything changed.
pub fn set_condition(status: &mut RolloutStatus, mut condition: RolloutCondition) -> bool {
    let conditions = status.conditions.get_or_insert_with(Vec::new);
    if let Some(current) = conditions.iter().find(|c| c.type_ == condition.type_) {
        if current.status == condition.status
            && current.reason == condition.reason
            && current.message == condition.message
        {
            return false;
        }
        if current.status == condition.status {
            condition.last_transition_time = current.last_transition_time.clone();
        }
    }
    conditions.retain(|c| c.type_ != condition.type_);
    conditions.push(condition);
    true
}

/// Removes the condition of the given type.
pub fn remove_condition(status: &mut RolloutStatus, type_: &str) {
    if let Some(conditions) = status.conditions.as_mut() {
        conditions.retain(|c| c.type_ != type_);
        if conditions.is_empty() {
            status.conditions = None;
        }
    }
}

pub use shared_types::rollout_phase::calculate as calculate_phase;

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::jiff::Timestamp;
    use shared_types::rollout::{
        BlueGreenStatus, CanaryStrategy, PauseCondition, RolloutSpec, RolloutStrategy,
    };

    fn at(secs: i64) -> Time {
        Time(Timestamp::from_second(secs).expect("valid timestamp"))
    }

    #[test]
    fn unchanged_condition_is_not_rewritten_and_transition_time_survives_reason_change() {
        let mut status = RolloutStatus::default();
        assert!(set_condition(
            &mut status,
            new_condition("Progressing", "True", "A", "m", &at(1))
        ));
        assert!(!set_condition(
            &mut status,
            new_condition("Progressing", "True", "A", "m", &at(2))
        ));
        assert_eq!(status.conditions()[0].last_update_time, at(1));
        assert!(set_condition(
            &mut status,
            new_condition("Progressing", "True", "B", "m", &at(3))
        ));
        let c = &status.conditions()[0];
        assert_eq!(
            (c.reason.as_str(), &c.last_update_time, &c.last_transition_time),
            ("B", &at(3), &at(1))
        );
        assert!(set_condition(
            &mut status,
            new_condition("Progressing", "False", "B", "m", &at(4))
        ));
        assert_eq!(status.conditions()[0].last_transition_time, at(4));
    }

    #[test]
    fn updated_condition_moves_to_the_end() {
        let mut status = RolloutStatus::default();
        set_condition(
            &mut status,
            new_condition("Progressing", "True", "A", "m", &at(1)),
        );
        set_condition(&mut status, new_condition("Available", "True", "A", "m", &at(1)));
        set_condition(
            &mut status,
            new_condition("Progressing", "True", "B", "m", &at(2)),
        );
        let types: Vec<_> = status.conditions().iter().map(|c| c.type_.as_str()).collect();
        assert_eq!(types, ["Available", "Progressing"]);
        remove_condition(&mut status, "Available");
        remove_condition(&mut status, "Progressing");
        assert!(status.conditions.is_none());
    }

    fn canary_spec() -> RolloutSpec {
        RolloutSpec {
            replicas: Some(5),
            strategy: RolloutStrategy {
                canary: Some(CanaryStrategy::default()),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    fn settled(hash: &str) -> RolloutStatus {
        RolloutStatus {
            replicas: Some(5),
            updated_replicas: Some(5),
            available_replicas: Some(5),
            current_pod_hash: Some(hash.into()),
            stable_rs: Some(hash.into()),
            ..Default::default()
        }
    }

    #[test]
    fn phase_follows_argo_precedence() {
        let spec = canary_spec();
        assert_eq!(calculate_phase(&spec, &settled("a")), ("Healthy", String::new()));

        let mut aborted = settled("a");
        set_condition(
            &mut aborted,
            new_condition(
                "Progressing",
                "False",
                "RolloutAborted",
                "Rollout aborted update to revision 5",
                &at(1),
            ),
        );
        aborted.pause_conditions = Some(vec![PauseCondition {
            reason: "CanaryPauseStep".into(),
            start_time: at(1),
        }]);
        assert_eq!(
            calculate_phase(&spec, &aborted),
            (
                "Degraded",
                "RolloutAborted: Rollout aborted update to revision 5".into()
            )
        );

        let mut paused = settled("a");
        paused.pause_conditions = Some(vec![PauseCondition {
            reason: "CanaryPauseStep".into(),
            start_time: at(1),
        }]);
        assert_eq!(
            calculate_phase(&spec, &paused),
            ("Paused", "CanaryPauseStep".into())
        );
        let manual = RolloutSpec {
            paused: Some(true),
            ..canary_spec()
        };
        assert_eq!(
            calculate_phase(&manual, &paused),
            ("Paused", "manually paused".into())
        );

        let mut updating = settled("a");
        updating.updated_replicas = Some(1);
        assert_eq!(
            calculate_phase(&spec, &updating).1,
            "more replicas need to be updated"
        );
        let mut becoming = settled("a");
        becoming.available_replicas = Some(4);
        assert_eq!(
            calculate_phase(&spec, &becoming).1,
            "updated replicas are still becoming available"
        );
        let mut old_pending = settled("a");
        old_pending.replicas = Some(6);
        assert_eq!(
            calculate_phase(&spec, &old_pending).1,
            "old replicas are pending termination"
        );
        let mut steps = settled("b");
        steps.stable_rs = Some("a".into());
        assert_eq!(
            calculate_phase(&spec, &steps).1,
            "waiting for all steps to complete"
        );
    }

    #[test]
    fn blue_green_waits_for_active_cutover() {
        let spec = RolloutSpec {
            replicas: Some(5),
            strategy: RolloutStrategy {
                blue_green: Some(Default::default()),
                ..Default::default()
            },
            ..Default::default()
        };
        let mut status = settled("b");
        status.blue_green = Some(BlueGreenStatus {
            active_selector: Some("a".into()),
            ..Default::default()
        });
        assert_eq!(
            calculate_phase(&spec, &status),
            ("Progressing", "active service cutover pending".into())
        );
        status.blue_green = Some(BlueGreenStatus {
            active_selector: Some("b".into()),
            ..Default::default()
        });
        assert_eq!(calculate_phase(&spec, &status), ("Healthy", String::new()));
    }

    #[test]
    fn invalid_spec_wins() {
        let mut status = settled("a");
        set_condition(
            &mut status,
            new_condition(
                "InvalidSpec",
                "True",
                "InvalidSpec",
                "The Rollout \"x\" is invalid: bad",
                &at(1),
            ),
        );
        assert_eq!(
            calculate_phase(&canary_spec(), &status),
            (
                "Degraded",
                "InvalidSpec: The Rollout \"x\" is invalid: bad".into()
            )
        );
    }
}

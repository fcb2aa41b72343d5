//! `status.duration`: when the current update started, how long it waited on people, and how it
//! ended (Argo Rollouts' rollout duration tracking).
//!
//! A record starts when the pod template (canary: or the steps) changes, or when an aborted
//! update is retried. It ends when the new ReplicaSet is stable and fully available
//! (`Promoted`, or `FastPromoted` after `promote --full`), when the update is aborted
//! (`Aborted`), or when another update replaces it (`Superseded`; the new record starts in the
//! same reconcile). Going back to the stable or an older ReplicaSet keeps the record and marks
//! it `RolledBack` (`FastRolledBack` when the steps are skipped). Manual pauses (`spec.paused`,
//! an indefinite pause step, a blue-green rollout without auto-promotion, an inconclusive
//! analysis or experiment) are summed in whole seconds, each pause truncated on its own.
//!
//! Three behaviours follow Argo's later fixes rather than its first version: a record is ended
//! once even when an abort is pending as it is superseded, a rollback is not ended early by a
//! pending abort, and a rollback to the stable ReplicaSet ends as soon as that ReplicaSet is
//! available.

use k8s_openapi::{apimachinery::pkg::apis::meta::v1::Time, jiff::Timestamp};
use shared_types::rollout::RolloutDuration;

/// How an update ended (`status.duration.completionStatus`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Completion {
    /// Promoted after its steps or pauses.
    Promoted,
    /// Promoted with `promote --full`.
    FastPromoted,
    /// Aborted.
    Aborted,
    /// Replaced by a newer update before it finished.
    Superseded,
    /// Went back to an earlier revision that runs through the steps again.
    RolledBack,
    /// Went back to the stable revision, or to one within `rollbackWindow` or a blue-green
    /// scale-down delay, skipping the steps.
    FastRolledBack,
}

impl Completion {
    /// The JSON value.
    pub fn as_str(self) -> &'static str {
        match self {
            Completion::Promoted => "Promoted",
            Completion::FastPromoted => "FastPromoted",
            Completion::Aborted => "Aborted",
            Completion::Superseded => "Superseded",
            Completion::RolledBack => "RolledBack",
            Completion::FastRolledBack => "FastRolledBack",
        }
    }

    fn is_rollback(status: Option<&str>) -> bool {
        matches!(status, Some("RolledBack" | "FastRolledBack"))
    }
}

/// What one reconcile knows about the update, for [`next`].
#[derive(Clone, Debug, Default)]
pub struct Observation {
    /// The record as persisted.
    pub previous: Option<RolloutDuration>,
    /// The template (canary: or the steps) differs from the persisted `currentPodHash`
    /// (`currentStepHash`), or no pod hash was recorded yet.
    pub spec_changed: bool,
    /// The new ReplicaSet is an earlier revision: `Some(true)` when the steps are skipped.
    pub rollback: Option<bool>,
    /// The stable ReplicaSet switched to the new one in this reconcile.
    pub stable_switched: bool,
    /// `status.promoteFull` was set when it switched.
    pub promote_full: bool,
    /// The update is aborted now.
    pub aborted: bool,
    /// The persisted Progressing condition says aborted (so no abort now means a retry).
    pub was_aborted: bool,
    /// The new ReplicaSet is stable and has `spec.replicas` available pods.
    pub complete: bool,
    /// A person has to act to continue (see the module docs).
    pub manual_pause: bool,
    /// The time of this reconcile.
    pub now: Timestamp,
}

/// The record after this reconcile, and the records ended by it (for the duration metrics).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Outcome {
    /// `status.duration` to write.
    pub duration: Option<RolloutDuration>,
    /// Records that ended in this reconcile.
    pub finished: Vec<RolloutDuration>,
}

fn stamp(now: Timestamp) -> Time {
    // Status times are written with second precision; keep the record as it will be read back.
    Time(Timestamp::from_second(now.as_second()).unwrap_or(now))
}

fn seconds_between(from: &Time, to: Timestamp) -> i64 {
    to.as_second() - from.0.as_second()
}

/// Adds a running manual pause (truncated to whole seconds) to the total.
fn end_manual_pause(d: &mut RolloutDuration, now: Timestamp) {
    if let Some(started) = d.manual_pause_started_at.take() {
        let total =
            d.total_manual_pause_duration_seconds.unwrap_or(0) + seconds_between(&started, now).max(0);
        d.total_manual_pause_duration_seconds = Some(total);
    }
}

/// Ends the record, folding a running manual pause into the total.
fn complete(d: &mut RolloutDuration, now: Timestamp, status: &str) {
    end_manual_pause(d, now);
    d.finished_at = Some(stamp(now));
    d.completion_status = Some(status.to_string());
}

fn is_finished(d: &RolloutDuration) -> bool {
    d.finished_at.is_some()
}

/// The record after one reconcile.
pub fn next(o: &Observation) -> Outcome {
    let mut finished = Vec::new();
    let mut record = o.previous.clone();
    let in_progress = o
        .previous
        .as_ref()
        .is_some_and(|d| d.rollout_started_at.is_some() && !is_finished(d));
    let was_paused = o
        .previous
        .as_ref()
        .is_some_and(|d| d.manual_pause_started_at.is_some());

    if in_progress && let Some(d) = record.as_mut() {
        if o.stable_switched && d.completion_status.is_none() {
            let promoted = if o.promote_full {
                Completion::FastPromoted
            } else {
                Completion::Promoted
            };
            d.completion_status = Some(promoted.as_str().to_string());
        }
        if o.spec_changed {
            match o.rollback {
                Some(fast) => {
                    let status = if fast {
                        Completion::FastRolledBack
                    } else {
                        Completion::RolledBack
                    };
                    d.completion_status = Some(status.as_str().to_string());
                }
                None => {
                    complete(d, o.now, Completion::Superseded.as_str());
                    finished.push(d.clone());
                }
            }
        }
        if !is_finished(d) {
            if o.complete {
                let status = d
                    .completion_status
                    .clone()
                    .unwrap_or_else(|| Completion::Promoted.as_str().to_string());
                complete(d, o.now, &status);
                finished.push(d.clone());
                return Outcome {
                    duration: record,
                    finished,
                };
            }
            if o.aborted && !Completion::is_rollback(d.completion_status.as_deref()) {
                complete(d, o.now, Completion::Aborted.as_str());
                finished.push(d.clone());
            }
        }
    }

    let mut paused_before = was_paused;
    if record.as_ref().is_none_or(is_finished) {
        paused_before = false;
        let retry = !o.aborted && o.was_aborted;
        if o.spec_changed || retry {
            record = Some(RolloutDuration {
                rollout_started_at: Some(stamp(o.now)),
                ..Default::default()
            });
        }
    }
    let Some(d) = record.as_mut() else {
        return Outcome {
            duration: None,
            finished,
        };
    };
    if is_finished(d) {
        return Outcome {
            duration: record,
            finished,
        };
    }
    if paused_before && !o.manual_pause {
        end_manual_pause(d, o.now);
    } else if !paused_before && o.manual_pause && d.manual_pause_started_at.is_none() {
        d.manual_pause_started_at = Some(stamp(o.now));
    }
    Outcome {
        duration: record,
        finished,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + s).unwrap()
    }

    fn t(s: i64) -> Time {
        Time(at(s))
    }

    fn started(s: i64) -> RolloutDuration {
        RolloutDuration {
            rollout_started_at: Some(t(s)),
            ..Default::default()
        }
    }

    fn obs(previous: Option<RolloutDuration>, now: i64) -> Observation {
        Observation {
            previous,
            now: at(now),
            ..Default::default()
        }
    }

    #[test]
    fn initial_rollout_starts_then_ends_promoted_without_pause_total() {
        let first = next(&Observation {
            spec_changed: true,
            ..obs(None, 0)
        });
        assert_eq!(first.duration, Some(started(0)));
        assert!(first.finished.is_empty());
        // Initial deploy: stable switches before pods are available; nothing ends yet.
        let switched = next(&Observation {
            stable_switched: true,
            ..obs(first.duration, 1)
        });
        assert_eq!(
            switched
                .duration
                .as_ref()
                .and_then(|d| d.completion_status.as_deref()),
            Some("Promoted")
        );
        assert_eq!(
            switched.duration.as_ref().and_then(|d| d.finished_at.clone()),
            None
        );
        let done = next(&Observation {
            complete: true,
            ..obs(switched.duration, 9)
        });
        let d = done.duration.unwrap();
        assert_eq!(d.finished_at, Some(t(9)));
        assert_eq!(d.completion_status.as_deref(), Some("Promoted"));
        assert_eq!(d.total_manual_pause_duration_seconds, None);
        assert_eq!(done.finished.len(), 1);
    }

    #[test]
    fn healthy_rollout_and_scaling_only_changes_keep_the_record() {
        let mut done = started(0);
        complete(&mut done, at(30), "Promoted");
        for o in [
            obs(Some(done.clone()), 100),
            Observation {
                complete: true,
                ..obs(Some(done.clone()), 200)
            },
        ] {
            let out = next(&o);
            assert_eq!(out.duration.as_ref(), Some(&done));
            assert!(out.finished.is_empty(), "ended twice");
        }
        // Nothing was ever recorded (e.g. a Rollout older than the feature): stays absent.
        assert_eq!(next(&obs(None, 5)).duration, None);
    }

    #[test]
    fn timed_pauses_are_not_manual_and_indefinite_pauses_are_summed() {
        // A timed pause step is not a manual pause: the caller says manual_pause = false.
        let timed = next(&obs(Some(started(0)), 10));
        assert_eq!(timed.duration, Some(started(0)));
        // Indefinite pause: starts at 10, promoted at 75.5 s → 65 s (truncated).
        let paused = next(&Observation {
            manual_pause: true,
            ..obs(Some(started(0)), 10)
        });
        assert_eq!(
            paused.duration.as_ref().unwrap().manual_pause_started_at,
            Some(t(10))
        );
        // Still paused: nothing changes.
        let still = next(&Observation {
            manual_pause: true,
            ..obs(paused.duration.clone(), 40)
        });
        assert_eq!(still.duration, paused.duration);
        let resumed = next(&obs(paused.duration, 75));
        let d = resumed.duration.unwrap();
        assert_eq!(d.manual_pause_started_at, None);
        assert_eq!(d.total_manual_pause_duration_seconds, Some(65));
        // A second pause adds to the total.
        let again = next(&Observation {
            manual_pause: true,
            ..obs(Some(d), 100)
        });
        let d = next(&obs(again.duration, 103)).duration.unwrap();
        assert_eq!(d.total_manual_pause_duration_seconds, Some(68));
    }

    #[test]
    fn promotion_during_a_manual_pause_folds_it_in() {
        let mut paused = started(0);
        paused.manual_pause_started_at = Some(t(20));
        paused.total_manual_pause_duration_seconds = Some(5);
        let out = next(&Observation {
            stable_switched: true,
            complete: true,
            ..obs(Some(paused), 50)
        });
        let d = out.duration.unwrap();
        assert_eq!(d.total_manual_pause_duration_seconds, Some(35));
        assert_eq!(d.manual_pause_started_at, None);
        assert_eq!(d.completion_status.as_deref(), Some("Promoted"));
        assert_eq!(d.finished_at, Some(t(50)));
    }

    #[test]
    fn promote_full_is_fast_promoted() {
        let out = next(&Observation {
            stable_switched: true,
            promote_full: true,
            complete: true,
            ..obs(Some(started(0)), 12)
        });
        assert_eq!(
            out.duration.unwrap().completion_status.as_deref(),
            Some("FastPromoted")
        );
    }

    #[test]
    fn abort_ends_the_record_and_retry_starts_a_new_one() {
        let mut paused = started(0);
        paused.manual_pause_started_at = Some(t(10));
        let aborted = next(&Observation {
            aborted: true,
            ..obs(Some(paused), 30)
        });
        let d = aborted.duration.clone().unwrap();
        assert_eq!(d.completion_status.as_deref(), Some("Aborted"));
        assert_eq!(d.finished_at, Some(t(30)));
        assert_eq!(d.total_manual_pause_duration_seconds, Some(20));
        assert_eq!(aborted.finished.len(), 1);
        // Later reconciles while aborted change nothing.
        let still = next(&Observation {
            aborted: true,
            was_aborted: true,
            ..obs(aborted.duration.clone(), 60)
        });
        assert_eq!(still.duration, aborted.duration);
        assert!(still.finished.is_empty());
        // Retry: a fresh record, paused again at an indefinite step.
        let retried = next(&Observation {
            was_aborted: true,
            manual_pause: true,
            ..obs(aborted.duration, 90)
        });
        let d = retried.duration.unwrap();
        assert_eq!(d.rollout_started_at, Some(t(90)));
        assert_eq!(d.finished_at, None);
        assert_eq!(d.completion_status, None);
        assert_eq!(d.manual_pause_started_at, Some(t(90)));
    }

    #[test]
    fn superseded_update_ends_and_a_new_record_starts_in_the_same_reconcile() {
        let mut paused = started(0);
        paused.manual_pause_started_at = Some(t(10));
        let out = next(&Observation {
            spec_changed: true,
            ..obs(Some(paused), 40)
        });
        assert_eq!(out.finished.len(), 1);
        assert_eq!(out.finished[0].completion_status.as_deref(), Some("Superseded"));
        assert_eq!(out.finished[0].total_manual_pause_duration_seconds, Some(30));
        assert_eq!(out.duration, Some(started(40)));
        // Superseded while an abort is pending: ended once, as Superseded.
        let out = next(&Observation {
            spec_changed: true,
            aborted: true,
            ..obs(Some(started(0)), 40)
        });
        assert_eq!(out.finished.len(), 1);
        assert_eq!(out.finished[0].completion_status.as_deref(), Some("Superseded"));
        assert_eq!(out.duration, Some(started(40)));
        // spec.paused during the new update: its pause starts at once.
        let out = next(&Observation {
            spec_changed: true,
            manual_pause: true,
            ..obs(Some(started(0)), 40)
        });
        assert_eq!(out.duration.unwrap().manual_pause_started_at, Some(t(40)));
    }

    #[test]
    fn rollbacks_keep_the_record_and_end_when_promoted() {
        // Back to the stable ReplicaSet (or within rollbackWindow): fast, ends when available.
        let out = next(&Observation {
            spec_changed: true,
            rollback: Some(true),
            complete: true,
            ..obs(Some(started(0)), 20)
        });
        let d = out.duration.unwrap();
        assert_eq!(d.rollout_started_at, Some(t(0)), "same record");
        assert_eq!(d.completion_status.as_deref(), Some("FastRolledBack"));
        assert_eq!(d.finished_at, Some(t(20)));
        // Outside the window: marked, runs the steps, ends when promoted, keeping its status.
        let marked = next(&Observation {
            spec_changed: true,
            rollback: Some(false),
            manual_pause: true,
            ..obs(Some(started(0)), 20)
        });
        let d = marked.duration.clone().unwrap();
        assert_eq!(d.completion_status.as_deref(), Some("RolledBack"));
        assert_eq!(d.finished_at, None);
        assert_eq!(d.manual_pause_started_at, Some(t(20)));
        let done = next(&Observation {
            stable_switched: true,
            complete: true,
            ..obs(marked.duration, 50)
        });
        let d = done.duration.unwrap();
        assert_eq!(d.completion_status.as_deref(), Some("RolledBack"));
        assert_eq!(d.total_manual_pause_duration_seconds, Some(30));
        // A pending abort does not end a rollback early.
        let out = next(&Observation {
            spec_changed: true,
            rollback: Some(false),
            aborted: true,
            ..obs(Some(started(0)), 20)
        });
        let d = out.duration.unwrap();
        assert_eq!(d.finished_at, None);
        assert_eq!(d.completion_status.as_deref(), Some("RolledBack"));
        assert!(out.finished.is_empty());
    }

    #[test]
    fn a_rollback_after_a_finished_record_is_a_new_update() {
        let mut done = started(0);
        complete(&mut done, at(30), "Promoted");
        let out = next(&Observation {
            spec_changed: true,
            rollback: Some(true),
            ..obs(Some(done), 100)
        });
        assert_eq!(out.duration, Some(started(100)));
    }

    #[test]
    fn sub_second_times_are_written_as_whole_seconds() {
        let now = Timestamp::from_millisecond(1_800_000_000_750).unwrap();
        let out = next(&Observation {
            spec_changed: true,
            now,
            ..Default::default()
        });
        assert_eq!(out.duration.unwrap().rollout_started_at, Some(t(0)));
    }
}

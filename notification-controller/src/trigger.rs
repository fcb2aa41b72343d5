//! When a trigger holds, read from the object's **status** (never from Events).
//!
//! A trigger condition either has a `when` expression (expr-lang over the object, as Argo users
//! write them: `rollout.status.phase == 'Degraded'`), or is one of Argo's built-in triggers,
//! which Argo fires from Kubernetes Events and which are derived here from the status fields
//! those Events report. Each holding condition yields the identities of the transitions it
//! stands for (a built-in's identity plays the role of Argo's `oncePer`), so a transition is
//! notified once however often the object is seen.

use std::collections::BTreeMap;

use base64::Engine as _;
use serde_json::Value;
use sha1::{Digest, Sha1};

use crate::config::Condition;

/// The object a trigger is evaluated on.
pub enum Subject<'a> {
    /// A Rollout, with the ReplicaSets it owns (for `on-scaling-replica-set`).
    Rollout {
        rollout: &'a Value,
        replica_sets: &'a [Value],
    },
    /// An AnalysisRun (standalone, or created by a Rollout or an Experiment).
    AnalysisRun {
        run: &'a Value,
        vars: &'a BTreeMap<String, Value>,
    },
}

/// Triggers evaluated on AnalysisRuns rather than Rollouts.
pub fn is_analysis_trigger(trigger: &str) -> bool {
    trigger.starts_with("on-analysis-run-")
}

/// The outcome of one condition of a trigger.
#[derive(Clone, Debug, PartialEq)]
pub struct Outcome {
    /// Position of the condition in the trigger's list.
    pub index: usize,
    /// Argo's key part for the condition: sha1 of `when`, base64url.
    pub condition_hash: String,
    /// Templates to send.
    pub send: Vec<String>,
    pub state: State,
}

#[derive(Clone, Debug, PartialEq)]
pub enum State {
    /// The condition does not hold (or cannot be evaluated).
    False,
    /// It holds, once per false → true transition (a `when` without `oncePer`).
    Holds,
    /// It holds, once per each of these identities (`oncePer` values, built-in transitions).
    HoldsOncePer(Vec<String>),
}

/// An expression that failed; reported, and the condition counts as false.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("trigger {trigger:?} condition {index}: {reason}")]
pub struct ConditionError {
    pub trigger: String,
    pub index: usize,
    pub reason: String,
}

/// Evaluates every condition of `trigger`.
pub fn evaluate(
    trigger: &str,
    conditions: &[Condition],
    subject: &Subject<'_>,
) -> (Vec<Outcome>, Vec<ConditionError>) {
    let mut errors = Vec::new();
    let outcomes = conditions
        .iter()
        .enumerate()
        .map(|(index, condition)| {
            let state = if condition.when.trim().is_empty() {
                match builtin(trigger, subject) {
                    Some(ids) if ids.is_empty() => State::False,
                    Some(ids) => State::HoldsOncePer(ids),
                    None => {
                        errors.push(ConditionError {
                            trigger: trigger.into(),
                            index,
                            reason: "has no `when` and is not a built-in trigger, so it never fires".into(),
                        });
                        State::False
                    }
                }
            } else {
                match custom(condition, subject) {
                    Ok(state) => state,
                    Err(reason) => {
                        errors.push(ConditionError {
                            trigger: trigger.into(),
                            index,
                            reason,
                        });
                        State::False
                    }
                }
            };
            Outcome {
                index,
                condition_hash: condition_hash(&condition.when),
                send: condition.send.clone(),
                state,
            }
        })
        .collect();
    (outcomes, errors)
}

/// sha1 of the condition text, base64url without padding (the key part of Argo's record).
pub fn condition_hash(when: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha1::digest(when.as_bytes()))
}

fn str_at<'v>(value: &'v Value, path: &[&str]) -> &'v str {
    path.iter()
        .try_fold(value, |v, key| v.get(key))
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// The built-in triggers' transitions, from status. `None`: not a built-in trigger.
fn builtin(trigger: &str, subject: &Subject<'_>) -> Option<Vec<String>> {
    match subject {
        Subject::Rollout {
            rollout,
            replica_sets,
        } => rollout_builtin(trigger, rollout, replica_sets),
        Subject::AnalysisRun { run, .. } => {
            let phase = str_at(run, &["status", "phase"]);
            let wanted = match trigger {
                "on-analysis-run-running" => "Running",
                "on-analysis-run-failed" => "Failed",
                "on-analysis-run-error" => "Error",
                _ => return None,
            };
            // The record lives on the run itself, so the phase is the whole identity.
            Some(if phase == wanted {
                vec![phase.to_string()]
            } else {
                vec![]
            })
        }
    }
}

fn rollout_builtin(trigger: &str, rollout: &Value, replica_sets: &[Value]) -> Option<Vec<String>> {
    let status = rollout.get("status").cloned().unwrap_or(Value::Null);
    let hash = str_at(&status, &["currentPodHash"]);
    let revision = str_at(
        rollout,
        &["metadata", "annotations", shared_types::constants::keys::REVISION],
    );
    let observed = status.get("observedGeneration").map(generation)
        == rollout.pointer("/metadata/generation").map(generation);
    let ids = match trigger {
        // The stable ReplicaSet is the current one: the update was promoted (or was the first).
        "on-rollout-completed" => (observed && !hash.is_empty() && str_at(&status, &["stableRS"]) == hash)
            .then(|| format!("{revision}.{hash}"))
            .into_iter()
            .collect(),
        // A canary step was completed during an update (the first revision skips its steps).
        "on-rollout-step-completed" => {
            let index = status
                .get("currentStepIndex")
                .and_then(Value::as_u64)
                .unwrap_or(0);
            let has_steps = rollout
                .pointer("/spec/strategy/canary/steps")
                .and_then(Value::as_array)
                .is_some_and(|s| !s.is_empty());
            (has_steps && index > 0 && !hash.is_empty() && revision != "1")
                .then(|| format!("{revision}.{hash}.{index}"))
                .into_iter()
                .collect()
        }
        // A new revision of the pod template.
        "on-rollout-updated" => (!revision.is_empty() && revision != "1")
            .then(|| revision.to_string())
            .into_iter()
            .collect(),
        "on-rollout-paused" => status
            .get("pauseConditions")
            .and_then(Value::as_array)
            .and_then(|conditions| conditions.first())
            .map(|first| format!("{}.{}", str_at(first, &["reason"]), str_at(first, &["startTime"])))
            .into_iter()
            .collect(),
        "on-rollout-aborted" => (status.get("abort").and_then(Value::as_bool) == Some(true))
            .then(|| format!("{hash}.{}", str_at(&status, &["abortedAt"])))
            .into_iter()
            .collect(),
        // Every ReplicaSet at its current scale: a new size is a new transition.
        "on-scaling-replica-set" => replica_sets
            .iter()
            .map(|rs| {
                format!(
                    "{}.{}.{}",
                    str_at(rs, &["metadata", "name"]),
                    str_at(
                        rs,
                        &["metadata", "annotations", shared_types::constants::keys::REVISION]
                    ),
                    rs.pointer("/spec/replicas").and_then(Value::as_i64).unwrap_or(1)
                )
            })
            .collect(),
        _ => return None,
    };
    Some(ids)
}

/// A generation, as a number or as the string Argo's `status.observedGeneration` is.
fn generation(v: &Value) -> i64 {
    v.as_i64()
        .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
        .unwrap_or_default()
}

/// The variables a `when` expression sees: `rollout` (Rollout triggers), or `analysisRun` plus
/// the run's `rollout`/`experiment` (AnalysisRun triggers).
fn expression_vars(subject: &Subject<'_>) -> BTreeMap<String, Value> {
    match subject {
        Subject::Rollout { rollout, .. } => BTreeMap::from([("rollout".to_string(), (*rollout).clone())]),
        Subject::AnalysisRun { vars, .. } => (*vars).clone(),
    }
}

fn custom(condition: &Condition, subject: &Subject<'_>) -> Result<State, String> {
    let vars = expression_vars(subject);
    let holds = match run(&condition.when, &vars)? {
        expr::Value::Bool(b) => b,
        other => return Err(format!("`when` {:?} gave {other}, not a bool", condition.when)),
    };
    if !holds {
        return Ok(State::False);
    }
    if condition.once_per.trim().is_empty() {
        return Ok(State::Holds);
    }
    let value = match run(&condition.once_per, &vars)? {
        expr::Value::String(s) => s,
        expr::Value::Nil => String::new(),
        other => other.to_string(),
    };
    Ok(State::HoldsOncePer(vec![value]))
}

fn run(code: &str, vars: &BTreeMap<String, Value>) -> Result<expr::Value, String> {
    let program = expr::compile(code).map_err(|e| one_line(&e.to_string()))?;
    let mut ctx = expr::Context::default();
    for (name, value) in vars {
        ctx.insert(name.clone(), to_expr(value));
    }
    expr::Environment::new()
        .run(&program, &ctx)
        .map_err(|e| format!("cannot evaluate {code:?}: {}", one_line(&e.to_string())))
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn to_expr(json: &Value) -> expr::Value {
    match json {
        Value::Null => expr::Value::Nil,
        Value::Bool(b) => expr::Value::Bool(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => expr::Value::Integer(i),
            None => n.as_f64().map_or(expr::Value::Nil, expr::Value::Float),
        },
        Value::String(s) => expr::Value::String(s.clone()),
        Value::Array(items) => expr::Value::Array(items.iter().map(to_expr).collect()),
        Value::Object(map) => expr::Value::Map(map.iter().map(|(k, v)| (k.clone(), to_expr(v))).collect()),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn condition(when: &str, once_per: &str) -> Condition {
        Condition {
            when: when.into(),
            send: vec!["t".into()],
            once_per: once_per.into(),
            description: String::new(),
        }
    }

    fn states(trigger: &str, conditions: &[Condition], subject: &Subject<'_>) -> Vec<State> {
        let (outcomes, errors) = evaluate(trigger, conditions, subject);
        assert!(errors.is_empty(), "{errors:?}");
        outcomes.into_iter().map(|o| o.state).collect()
    }

    fn rollout(revision: &str, status: Value) -> Value {
        json!({
            "metadata": {"name": "web", "generation": 3, "annotations": {"rollout.argoproj.io/revision": revision}},
            "spec": {"strategy": {"canary": {"steps": [{"setWeight": 20}, {"pause": {}}]}}},
            "status": status,
        })
    }

    fn builtin_ids(trigger: &str, r: &Value, replica_sets: &[Value]) -> State {
        let subject = Subject::Rollout {
            rollout: r,
            replica_sets,
        };
        states(trigger, &[Condition::default()], &subject).remove(0)
    }

    #[test]
    fn completed_holds_once_the_current_revision_is_stable() {
        let updating = rollout(
            "2",
            json!({"observedGeneration": 3, "currentPodHash": "b", "stableRS": "a"}),
        );
        assert_eq!(builtin_ids("on-rollout-completed", &updating, &[]), State::False);
        let done = rollout(
            "2",
            json!({"observedGeneration": "3", "currentPodHash": "b", "stableRS": "b"}),
        );
        assert_eq!(
            builtin_ids("on-rollout-completed", &done, &[]),
            State::HoldsOncePer(vec!["2.b".into()])
        );
        // A spec change the controller has not seen yet is not "completed".
        let unobserved = rollout(
            "2",
            json!({"observedGeneration": 2, "currentPodHash": "b", "stableRS": "b"}),
        );
        assert_eq!(
            builtin_ids("on-rollout-completed", &unobserved, &[]),
            State::False
        );
    }

    #[test]
    fn step_paused_aborted_and_updated_come_from_status() {
        let r = rollout(
            "2",
            json!({"observedGeneration": 3, "currentPodHash": "b", "stableRS": "a", "currentStepIndex": 1,
                   "pauseConditions": [{"reason": "CanaryPauseStep", "startTime": "2026-12-06T10:00:00Z"}]}),
        );
        assert_eq!(
            builtin_ids("on-rollout-step-completed", &r, &[]),
            State::HoldsOncePer(vec!["2.b.1".into()])
        );
        assert_eq!(
            builtin_ids("on-rollout-paused", &r, &[]),
            State::HoldsOncePer(vec!["CanaryPauseStep.2026-12-06T10:00:00Z".into()])
        );
        assert_eq!(builtin_ids("on-rollout-aborted", &r, &[]), State::False);
        assert_eq!(
            builtin_ids("on-rollout-updated", &r, &[]),
            State::HoldsOncePer(vec!["2".into()])
        );
        let first = rollout(
            "1",
            json!({"currentPodHash": "a", "stableRS": "a", "currentStepIndex": 2}),
        );
        assert_eq!(
            builtin_ids("on-rollout-step-completed", &first, &[]),
            State::False
        );
        assert_eq!(builtin_ids("on-rollout-updated", &first, &[]), State::False);
        let aborted = rollout(
            "2",
            json!({"currentPodHash": "b", "abort": true, "abortedAt": "2026-12-06T10:01:00Z"}),
        );
        assert_eq!(
            builtin_ids("on-rollout-aborted", &aborted, &[]),
            State::HoldsOncePer(vec!["b.2026-12-06T10:01:00Z".into()])
        );
    }

    #[test]
    fn scaling_yields_one_identity_per_replica_set_size() {
        let r = rollout("2", json!({}));
        let sets = [
            json!({"metadata": {"name": "web-a", "annotations": {"rollout.argoproj.io/revision": "1"}}, "spec": {"replicas": 0}}),
            json!({"metadata": {"name": "web-b", "annotations": {"rollout.argoproj.io/revision": "2"}}, "spec": {"replicas": 2}}),
        ];
        assert_eq!(
            builtin_ids("on-scaling-replica-set", &r, &sets),
            State::HoldsOncePer(vec!["web-a.1.0".into(), "web-b.2.2".into()])
        );
    }

    #[test]
    fn analysis_run_triggers_follow_the_phase() {
        let vars = BTreeMap::new();
        let run = json!({"status": {"phase": "Failed", "message": "Metric \"x\" assessed Failed"}});
        let subject = Subject::AnalysisRun {
            run: &run,
            vars: &vars,
        };
        assert_eq!(
            states("on-analysis-run-failed", &[Condition::default()], &subject),
            vec![State::HoldsOncePer(vec!["Failed".into()])]
        );
        assert_eq!(
            states("on-analysis-run-error", &[Condition::default()], &subject),
            vec![State::False]
        );
    }

    #[test]
    fn custom_when_and_once_per_are_expressions() {
        let r = rollout(
            "4",
            json!({"phase": "Degraded", "message": "ProgressDeadlineExceeded"}),
        );
        let subject = Subject::Rollout {
            rollout: &r,
            replica_sets: &[],
        };
        assert_eq!(
            states(
                "on-degraded",
                &[condition("rollout.status.phase == 'Degraded'", "")],
                &subject
            ),
            vec![State::Holds]
        );
        assert_eq!(
            states(
                "on-degraded",
                &[condition(
                    "rollout.status.phase == 'Degraded'",
                    "rollout.metadata.annotations['rollout.argoproj.io/revision']"
                )],
                &subject
            ),
            vec![State::HoldsOncePer(vec!["4".into()])]
        );
        assert_eq!(
            states(
                "on-healthy",
                &[condition("rollout.status.phase == 'Healthy'", "")],
                &subject
            ),
            vec![State::False]
        );
    }

    #[test]
    fn bad_conditions_are_errors_not_sends() {
        let r = rollout("1", json!({}));
        let subject = Subject::Rollout {
            rollout: &r,
            replica_sets: &[],
        };
        let (outcomes, errors) = evaluate("on-x", &[condition("rollout.status.phase ==", "")], &subject);
        assert_eq!(outcomes[0].state, State::False);
        assert_eq!(errors.len(), 1);
        let (_, errors) = evaluate("on-rollout-resumed", &[Condition::default()], &subject);
        assert!(
            errors[0]
                .to_string()
                .contains("has no `when` and is not a built-in trigger"),
            "{errors:?}"
        );
        let (_, errors) = evaluate("on-x", &[condition("rollout.metadata.name", "")], &subject);
        assert!(errors[0].reason.contains("not a bool"), "{errors:?}");
    }

    #[test]
    fn condition_hash_is_sha1_base64url() {
        // sha1("") = da39a3ee5e6b4b0d3255bfef95601890afd80709
        assert_eq!(condition_hash(""), "2jmj7l5rSw0yVb_vlWAYkK_YBwk");
    }
}

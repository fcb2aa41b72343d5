//! `wait NAME --for=healthy|paused|degraded|step=N [--timeout D]` (not in Argo's plugin): blocks
//! until the rollout reaches the condition. Exit status 0 when reached, 3 when the rollout is
//! Degraded instead (unless waiting for that), 4 on timeout, 1 on other errors.

use futures::StreamExt;
use kube::Api;
use shared_types::{constants::phase, rollout::Rollout};

use super::watch::{deadline, interrupted, rollout_updates};
use crate::{Io, cli::WaitArgs, error::Error, info::phase::rollout_phase, kube::Session};

/// What to wait for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Condition {
    /// Phase Healthy.
    Healthy,
    /// Phase Paused.
    Paused,
    /// Phase Degraded.
    Degraded,
    /// Canary step index at least N (the controller is at or past step N).
    Step(i32),
}

impl std::str::FromStr for Condition {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Condition::parse(s).map_err(|e| e.to_string())
    }
}

impl Condition {
    /// Parses `healthy`, `paused`, `degraded` or `step=N` (case-insensitive).
    pub fn parse(s: &str) -> Result<Self, Error> {
        let lower = s.trim().to_ascii_lowercase();
        match lower.as_str() {
            "healthy" => Ok(Condition::Healthy),
            "paused" => Ok(Condition::Paused),
            "degraded" => Ok(Condition::Degraded),
            _ => lower
                .strip_prefix("step=")
                .and_then(|n| n.parse::<i32>().ok())
                .filter(|n| *n >= 0)
                .map(Condition::Step)
                .ok_or_else(|| {
                    Error::Usage(format!(
                        "invalid --for {s:?}: expected healthy, paused, degraded or step=N"
                    ))
                }),
        }
    }

    fn describe(self) -> String {
        match self {
            Condition::Healthy => "be Healthy".into(),
            Condition::Paused => "be Paused".into(),
            Condition::Degraded => "be Degraded".into(),
            Condition::Step(n) => format!("reach step {n}"),
        }
    }
}

/// Outcome of checking a rollout against a condition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Check {
    /// Reached; the text describes the state.
    Met(String),
    /// The rollout is Degraded (and the condition is something else); the phase message.
    Degraded(String),
    /// Not yet.
    Pending,
}

/// Checks `ro` against `condition`. Nothing counts until the controller has observed the
/// latest spec, so a wait issued right after a change does not see the old state.
pub fn check(ro: &Rollout, condition: Condition) -> Check {
    let (current, message) = rollout_phase(ro);
    if current == phase::PROGRESSING && message == phase::MSG_SPEC_NOT_OBSERVED {
        return Check::Pending;
    }
    let name = ro.metadata.name.as_deref().unwrap_or_default();
    let with_message = |p: &str| {
        if message.is_empty() {
            format!("rollout '{name}' is {p}")
        } else {
            format!("rollout '{name}' is {p} - {message}")
        }
    };
    let met = match condition {
        Condition::Healthy => current == phase::HEALTHY,
        Condition::Paused => current == phase::PAUSED,
        Condition::Degraded => current == phase::DEGRADED,
        Condition::Step(n) => ro
            .status
            .as_ref()
            .and_then(|s| s.current_step_index)
            .is_some_and(|i| i >= n),
    };
    if met {
        return Check::Met(match condition {
            Condition::Step(_) => {
                let index = ro.status.as_ref().and_then(|s| s.current_step_index).unwrap_or(0);
                let total = ro
                    .spec
                    .strategy
                    .canary
                    .as_ref()
                    .map(|c| c.steps().len())
                    .unwrap_or(0);
                format!("rollout '{name}' is at step {index}/{total}")
            }
            _ => with_message(&current),
        });
    }
    if current == phase::DEGRADED {
        return Check::Degraded(message);
    }
    Check::Pending
}

/// Runs `wait`.
pub async fn run(session: &Session, args: &WaitArgs, io: &mut Io<'_>) -> Result<(), Error> {
    let condition = args.condition;
    let timeout = args.timeout.0;
    let api: Api<Rollout> = Api::namespaced(session.client.clone(), &session.namespace);
    let ro = api.get(&args.name).await?;
    if let Condition::Step(n) = condition {
        let Some(canary) = &ro.spec.strategy.canary else {
            return Err(Error::Usage("--for=step=N needs a canary rollout".into()));
        };
        let steps = canary.steps().len();
        if usize::try_from(n).map_or(true, |n| n > steps) {
            return Err(Error::Usage(format!(
                "step {n} is out of range: the rollout has {steps} steps"
            )));
        }
    }
    let degraded = |m: &str| Error::Degraded(format!("rollout '{}' is Degraded: {m}", args.name));
    let mut state = check(&ro, condition);
    let mut updates = rollout_updates(api, &args.name);
    let stop = deadline(timeout);
    let ctrl_c = interrupted();
    tokio::pin!(stop, ctrl_c);
    loop {
        match state {
            Check::Met(text) => {
                writeln!(io.out, "{text}")?;
                return Ok(());
            }
            Check::Degraded(m) => return Err(degraded(&m)),
            Check::Pending => {}
        }
        tokio::select! {
            update = updates.next() => match update {
                Some(Some(ro)) => state = check(&ro, condition),
                Some(None) => return Err(Error::Api(format!("rollouts.argoproj.io \"{}\" not found", args.name))),
                None => return Err(Error::msg("the watch ended unexpectedly")),
            },
            () = &mut stop => {
                return Err(Error::Timeout(format!("timed out waiting for rollout '{}' to {}", args.name, condition.describe())));
            }
            () = &mut ctrl_c => return Err(Error::Interrupted),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ro(status: serde_json::Value) -> Rollout {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
            "metadata": {"name": "r", "generation": 2},
            "spec": {"strategy": {"canary": {"steps": [{"setWeight": 20}, {"pause": {}}, {"setWeight": 100}]}}},
            "status": status
        }))
        .unwrap()
    }

    #[test]
    fn parses_conditions() {
        assert_eq!(Condition::parse("Healthy").unwrap(), Condition::Healthy);
        assert_eq!(Condition::parse("step=2").unwrap(), Condition::Step(2));
        assert!(Condition::parse("step=x").is_err());
        assert!(Condition::parse("done").is_err());
    }

    #[test]
    fn checks() {
        let paused = ro(
            serde_json::json!({"observedGeneration": "2", "phase": "Paused", "message": "CanaryPauseStep", "currentStepIndex": 1}),
        );
        assert_eq!(
            check(&paused, Condition::Paused),
            Check::Met("rollout 'r' is Paused - CanaryPauseStep".into())
        );
        assert_eq!(
            check(&paused, Condition::Step(1)),
            Check::Met("rollout 'r' is at step 1/3".into())
        );
        assert_eq!(check(&paused, Condition::Healthy), Check::Pending);
        let degraded = ro(
            serde_json::json!({"observedGeneration": "2", "phase": "Degraded", "message": "RolloutAborted: x"}),
        );
        assert_eq!(
            check(&degraded, Condition::Healthy),
            Check::Degraded("RolloutAborted: x".into())
        );
        assert!(matches!(check(&degraded, Condition::Degraded), Check::Met(_)));
        let stale = ro(serde_json::json!({"observedGeneration": "1", "phase": "Healthy"}));
        assert_eq!(check(&stale, Condition::Healthy), Check::Pending);
    }
}

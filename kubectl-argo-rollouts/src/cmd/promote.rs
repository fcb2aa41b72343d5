//! `promote NAME [--full]`.
//!
//! A normal promote resumes: it clears `spec.paused` if set and clears `status.pauseConditions`
//! (the controller reads "controller pause without conditions" as resumed). A canary that is not
//! paused (e.g. waiting on an analysis or experiment step) has its current step skipped instead.
//! `--full` asks the controller to skip all remaining steps, pauses and analyses.

use std::io::Write;

use kube::Api;
use serde_json::{Value, json};
use shared_types::rollout::Rollout;

use super::patch;
use crate::{cli::PromoteArgs, error::Error, info::rollout::current_step_index, kube::Session};

/// The patches one promotion sends.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PromotePatches {
    /// Merge patch of the main resource (spec).
    pub spec: Option<Value>,
    /// Merge patch of the status subresource.
    pub status: Option<Value>,
    /// Spec and status in one patch, used instead when the status subresource is missing.
    pub unified: Option<Value>,
}

/// What to promote.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PromoteMode {
    /// `--full`.
    pub full: bool,
    /// Deprecated `--skip-current-step`.
    pub skip_current_step: bool,
    /// Deprecated `--skip-all-steps`.
    pub skip_all_steps: bool,
}

/// Computes the patches for promoting `ro` (Argo's `getPatches`).
pub fn promote_patches(ro: &Rollout, mode: PromoteMode) -> Result<PromotePatches, Error> {
    if mode.skip_current_step && mode.skip_all_steps {
        return Err(Error::Usage(
            "Cannot use skip-current-step and skip-all-steps flags at the same time".into(),
        ));
    }
    let steps = ro.spec.strategy.canary.as_ref().map(|c| c.steps().len());
    if mode.skip_current_step || mode.skip_all_steps {
        if ro.spec.strategy.blue_green.is_some() {
            return Err(Error::Usage(
                "Cannot skip steps of a bluegreen rollout. Run without a flags".into(),
            ));
        }
        if steps == Some(0) {
            return Err(Error::Usage(
                "Cannot skip steps of a rollout without steps".into(),
            ));
        }
    }
    let status = ro.status.clone().unwrap_or_default();
    let next_step = || current_step_index(ro).map(|i| (i + 1).min(steps.unwrap_or(0)));
    let mut p = PromotePatches::default();
    if mode.skip_current_step {
        if let Some(next) = next_step() {
            let v = json!({"status": {"currentStepIndex": next}});
            p.status = Some(v.clone());
            p.unified = Some(v);
        }
    } else if mode.skip_all_steps {
        let v = json!({"status": {"currentStepIndex": steps.unwrap_or(0)}});
        p.status = Some(v.clone());
        p.unified = Some(v);
    } else if mode.full {
        if status.current_pod_hash != status.stable_rs {
            p.status = Some(json!({"status": {"promoteFull": true}}));
        }
    } else {
        p.unified = Some(json!({"spec": {"paused": false}, "status": {"pauseConditions": null}}));
        if ro.spec.is_paused() {
            p.spec = Some(json!({"spec": {"paused": false}}));
        }
        if !status.pause_conditions().is_empty() {
            p.status = Some(json!({"status": {"pauseConditions": null}}));
        } else if ro.spec.strategy.canary.is_some() {
            // Nothing is paused: skip the current step (e.g. an analysis or experiment), never
            // both clearing conditions and advancing.
            if let Some(next) = next_step() {
                p.status = Some(json!({"status": {"pauseConditions": null, "currentStepIndex": next}}));
                p.unified = Some(
                    json!({"spec": {"paused": false}, "status": {"pauseConditions": null, "currentStepIndex": next}}),
                );
            }
        }
    }
    Ok(p)
}

/// Promotes the rollout and prints `rollout '<name>' promoted` (or `fully promoted`).
pub async fn run(session: &Session, args: &PromoteArgs, out: &mut dyn Write) -> Result<(), Error> {
    let mode = PromoteMode {
        full: args.full,
        skip_current_step: args.skip_current_step,
        skip_all_steps: args.skip_all_steps,
    };
    let ro = promote(session, &args.name, mode).await?;
    let name = ro.metadata.name.as_deref().unwrap_or(&args.name);
    if args.full {
        writeln!(out, "rollout '{name}' fully promoted")?;
    } else {
        writeln!(out, "rollout '{name}' promoted")?;
    }
    Ok(())
}

/// Reads the rollout and sends the promotion patches.
pub async fn promote(session: &Session, name: &str, mode: PromoteMode) -> Result<Rollout, Error> {
    let api: Api<Rollout> = Api::namespaced(session.client.clone(), &session.namespace);
    let mut ro = api.get(name).await?;
    let patches = promote_patches(&ro, mode)?;
    if let Some(status) = &patches.status {
        // Without a status subresource the unified patch goes to the main resource; it repeats
        // the spec change, which the spec patch below then re-applies harmlessly.
        let fallback = patches.unified.as_ref().unwrap_or(status);
        ro = patch::rollout_status(&api, name, status, fallback).await?;
    }
    if let Some(spec) = &patches.spec {
        ro = patch::merge(&api, name, spec).await?;
    }
    Ok(ro)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canary(status: Value, paused: bool) -> Rollout {
        serde_json::from_value(json!({
            "apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
            "metadata": {"name": "r"},
            "spec": {"paused": paused, "strategy": {"canary": {"steps": [{"setWeight": 20}, {"pause": {}}, {"analysis": {}}]}}},
            "status": status
        }))
        .unwrap()
    }

    #[test]
    fn promote_clears_pause_conditions() {
        let ro = canary(
            json!({"currentStepIndex": 1, "pauseConditions": [{"reason": "CanaryPauseStep", "startTime": "2025-01-01T00:00:00Z"}]}),
            false,
        );
        let p = promote_patches(&ro, PromoteMode::default()).unwrap();
        assert_eq!(p.status, Some(json!({"status": {"pauseConditions": null}})));
        assert_eq!(p.spec, None);
    }

    #[test]
    fn promote_unpauses_spec_and_skips_a_running_step() {
        let ro = canary(json!({"currentStepIndex": 2}), true);
        let p = promote_patches(&ro, PromoteMode::default()).unwrap();
        assert_eq!(p.spec, Some(json!({"spec": {"paused": false}})));
        assert_eq!(
            p.status,
            Some(json!({"status": {"pauseConditions": null, "currentStepIndex": 3}}))
        );
    }

    #[test]
    fn full_promotion_only_when_not_yet_stable() {
        let ro = canary(json!({"currentPodHash": "a", "stableRS": "b"}), false);
        let p = promote_patches(
            &ro,
            PromoteMode {
                full: true,
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(p.status, Some(json!({"status": {"promoteFull": true}})));
        let ro = canary(json!({"currentPodHash": "a", "stableRS": "a"}), false);
        assert_eq!(
            promote_patches(
                &ro,
                PromoteMode {
                    full: true,
                    ..Default::default()
                }
            )
            .unwrap(),
            PromotePatches::default()
        );
    }

    #[test]
    fn blue_green_promote_and_invalid_flags() {
        let ro: Rollout = serde_json::from_value(json!({
            "apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout", "metadata": {"name": "r"},
            "spec": {"strategy": {"blueGreen": {"activeService": "a"}}},
            "status": {"pauseConditions": [{"reason": "BlueGreenPause", "startTime": "2025-01-01T00:00:00Z"}]}
        }))
        .unwrap();
        let p = promote_patches(&ro, PromoteMode::default()).unwrap();
        assert_eq!(p.status, Some(json!({"status": {"pauseConditions": null}})));
        let err = promote_patches(
            &ro,
            PromoteMode {
                skip_current_step: true,
                ..Default::default()
            },
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "Cannot skip steps of a bluegreen rollout. Run without a flags"
        );
    }
}

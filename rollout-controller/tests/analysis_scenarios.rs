//! Analysis and experiment steps through the rollout controller's seam, before the analysis and
//! experiment controllers exist: the tests play those controllers by setting the phase of the
//! AnalysisRuns and Experiments the plan creates, and check what the Rollout does with it. The
//! first test is the seed's 2.2.5 case (Istio VirtualService and an analysis step).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: failing loudly is the point

mod common;

use std::collections::BTreeMap;

use common::*;
use shared_types::{
    analysis::AnalysisPhase::{self, Failed, Inconclusive, Pending, Running, Successful},
    constants::keys,
    rollout::Rollout,
};

/// The seed's 2.2.5 manifest: setWeight 20, pause 30 s, analysis `success-rate`, setWeight 100.
const ISTIO_ANALYSIS: &str = include_str!(
    "../../examples/seed/manifest14-canary-with-istio-virtual-service-and-analysistemplate-test-case.yaml"
);
const CANARY: &str = include_str!("../../examples/seed/manifest11-canary-success-test-case.yaml");
const BLUE_GREEN: &str = include_str!("../../examples/seed/manifest10-blue-green-test-case.yaml");

/// The seed's `success-rate` template, added to manifests that do not carry it.
const SUCCESS_RATE: &str = r#"
---
apiVersion: argoproj.io/v1alpha1
kind: AnalysisTemplate
metadata:
  name: success-rate
spec:
  metrics:
  - name: success-rate
    interval: 30s
    count: 3
    successCondition: result >= 0.95
    failureLimit: 2
    provider:
      prometheus:
        address: http://prometheus.istio-system.svc.cluster.local:9090
        query: scalar(1)
"#;

const FAILED_MESSAGE: &str = r#"Metric "success-rate" assessed Failed due to failed (3) > failureLimit (2)"#;

fn status_run(
    w: &World,
    pick: impl Fn(&shared_types::rollout::RolloutStatus) -> Option<(String, AnalysisPhase)>,
) -> Option<(String, AnalysisPhase)> {
    w.rollout.status.as_ref().and_then(pick)
}

fn step_run(w: &World) -> Option<(String, AnalysisPhase)> {
    status_run(w, |s| {
        s.canary
            .as_ref()?
            .current_step_analysis_run_status
            .as_ref()
            .map(|r| (r.name.clone(), r.status))
    })
}

fn background_run(w: &World) -> Option<(String, AnalysisPhase)> {
    status_run(w, |s| {
        s.canary
            .as_ref()?
            .current_background_analysis_run_status
            .as_ref()
            .map(|r| (r.name.clone(), r.status))
    })
}

fn stable(w: &World) -> Option<String> {
    w.rollout.status.as_ref().and_then(|s| s.stable_rs.clone())
}

fn runs(entries: &[(&str, AnalysisPhase, bool)]) -> BTreeMap<String, (AnalysisPhase, bool)> {
    entries
        .iter()
        .map(|(n, p, t)| (n.to_string(), (*p, *t)))
        .collect()
}

fn with_steps(manifest: &str, steps: serde_json::Value) -> World {
    let mut w = World::new(&format!("{manifest}{SUCCESS_RATE}"));
    w.rollout.spec.strategy.canary.as_mut().expect("canary").steps =
        Some(serde_json::from_value(steps).expect("steps parse"));
    w
}

const STEP_RUN: &str = "mock-server-7c6fcfb847-2-2";

#[test]
fn seed_2_2_5_failed_analysis_aborts_then_retry_succeeds() {
    let mut w = World::new(ISTIO_ANALYSIS);
    w.settle();
    assert_eq!(w.phase(), ("Healthy".into(), String::new()));
    assert!(w.analysis_runs.is_empty(), "no analysis on the initial deploy");

    w.set_image("ghcr.io/ssup2/mock-go-server:2.0.0");
    w.settle();
    assert_eq!(w.phase(), ("Paused".into(), "CanaryPauseStep".into()));
    assert_eq!(w.step(), Some(1));
    assert!(w.analysis_runs.is_empty());

    // After the 30 s pause the analysis step starts its run.
    w.advance(31);
    w.settle();
    assert_eq!(w.step(), Some(2));
    assert_eq!(w.runs(), runs(&[(STEP_RUN, Pending, false)]));
    assert_eq!(step_run(&w), Some((STEP_RUN.into(), Pending)));
    assert_eq!(
        w.phase(),
        ("Progressing".into(), "more replicas need to be updated".into())
    );
    let run = w.run(STEP_RUN);
    let labels = run.metadata.labels.clone().unwrap_or_default();
    assert_eq!(labels["rollouts-pod-template-hash"], V2);
    assert_eq!(labels["rollout-type"], "Step");
    assert_eq!(labels["step-index"], "2");
    assert_eq!(labels["app"], "mock-server", "the Rollout's selector labels");
    assert_eq!(
        run.metadata.annotations.clone().unwrap_or_default()["rollout.argoproj.io/revision"],
        "2"
    );
    assert_eq!(run.spec.metrics[0].name, "success-rate");
    let owner = &run.metadata.owner_references.clone().unwrap_or_default()[0];
    assert_eq!((owner.kind.as_str(), owner.controller), ("Rollout", Some(true)));

    // The analysis controller measures: running, then failed.
    w.set_run_phase(STEP_RUN, Running, None);
    w.settle();
    assert_eq!(step_run(&w), Some((STEP_RUN.into(), Running)));
    assert!(w.events.iter().any(|e| e
        == "AnalysisRunRunning: Step Analysis Run 'mock-server-7c6fcfb847-2-2' Status New: 'Running' Previous: 'Pending'"));
    w.set_run_phase(STEP_RUN, Failed, Some(FAILED_MESSAGE));
    w.settle();
    assert_eq!(
        w.phase(),
        (
            "Degraded".into(),
            format!("RolloutAborted: Rollout aborted update to revision 2: {FAILED_MESSAGE}")
        )
    );
    assert_eq!(w.step(), Some(0));
    assert!(w.events.iter().any(|e| e
        == "AnalysisRunFailed: Step Analysis Run 'mock-server-7c6fcfb847-2-2' Status New: 'Failed' Previous: 'Running'"));
    // Traffic back to stable at once; the canary pod goes after abortScaleDownDelaySeconds.
    w.advance(31);
    w.settle();
    assert_eq!(w.replica_sets()[&rs(V2)].0, 0);
    assert_eq!(w.replica_sets()[&rs(V1)].0, 5);
    assert_eq!(stable(&w).as_deref(), Some(V1));

    // Retry: the steps start over; the analysis step gets a new run (the old name is taken).
    w.retry();
    w.settle();
    assert_eq!(w.phase(), ("Paused".into(), "CanaryPauseStep".into()));
    assert_eq!(w.step(), Some(1));
    w.advance(31);
    w.settle();
    assert_eq!(w.step(), Some(2));
    let retried = format!("{STEP_RUN}.1");
    assert_eq!(
        w.runs(),
        runs(&[(STEP_RUN, Failed, false), (retried.as_str(), Pending, false)])
    );
    w.set_run_phase(&retried, Successful, None);
    w.settle();
    assert_eq!(w.phase(), ("Healthy".into(), String::new()));
    assert_eq!(w.step(), Some(4));
    assert_eq!(stable(&w).as_deref(), Some(V2));
    assert_eq!(w.replica_sets()[&rs(V2)].0, 5);
    assert_eq!(step_run(&w), None, "a completed step forgets its run");
    assert!(
        w.events
            .iter()
            .any(|e| e == "RolloutStepCompleted: Rollout step 3/4 completed (analysis)")
    );
    // Both runs are kept as history.
    assert_eq!(w.analysis_runs.len(), 2);
}

#[test]
fn inconclusive_step_analysis_pauses_until_promoted() {
    let mut w = World::new(ISTIO_ANALYSIS);
    w.settle();
    w.set_image("ghcr.io/ssup2/mock-go-server:2.0.0");
    w.settle();
    w.advance(31);
    w.settle();
    w.set_run_phase(
        STEP_RUN,
        Inconclusive,
        Some("inconclusive (1) > inconclusiveLimit (0)"),
    );
    w.settle();
    assert_eq!(w.phase(), ("Paused".into(), "InconclusiveAnalysisRun".into()));
    assert_eq!(w.step(), Some(2));
    assert_eq!(step_run(&w), Some((STEP_RUN.into(), Inconclusive)));

    // promote: the pause is cleared and a new run decides.
    w.promote();
    w.settle();
    let second = format!("{STEP_RUN}.1");
    assert_eq!(step_run(&w), Some((second.clone(), Pending)));
    w.set_run_phase(&second, Successful, None);
    w.settle();
    assert_eq!(w.phase(), ("Healthy".into(), String::new()));
    assert_eq!(stable(&w).as_deref(), Some(V2));
}

#[test]
fn abort_terminates_the_running_step_analysis() {
    let mut w = World::new(ISTIO_ANALYSIS);
    w.settle();
    w.set_image("ghcr.io/ssup2/mock-go-server:2.0.0");
    w.settle();
    w.advance(31);
    w.settle();
    w.set_run_phase(STEP_RUN, Running, None);
    w.settle();
    w.abort();
    w.settle();
    assert_eq!(
        w.phase(),
        (
            "Degraded".into(),
            "RolloutAborted: Rollout aborted update to revision 2".into()
        )
    );
    assert_eq!(w.runs(), runs(&[(STEP_RUN, Running, true)]));
}

#[test]
fn skipping_the_analysis_step_terminates_its_run() {
    let mut w = World::new(ISTIO_ANALYSIS);
    w.settle();
    w.set_image("ghcr.io/ssup2/mock-go-server:2.0.0");
    w.settle();
    w.advance(31);
    w.settle();
    w.set_run_phase(STEP_RUN, Running, None);
    w.settle();
    // `promote` with nothing paused skips the current step.
    if let Some(s) = w.rollout.status.as_mut() {
        s.current_step_index = Some(3);
    }
    w.settle();
    assert_eq!(w.runs(), runs(&[(STEP_RUN, Running, true)]));
    assert_eq!(step_run(&w), None);
    assert_eq!(w.phase(), ("Healthy".into(), String::new()));
}

#[test]
fn promote_full_terminates_the_running_analysis() {
    let mut w = World::new(ISTIO_ANALYSIS);
    w.settle();
    w.set_image("ghcr.io/ssup2/mock-go-server:2.0.0");
    w.settle();
    w.advance(31);
    w.settle();
    w.promote_full_now();
    w.settle();
    assert_eq!(w.runs(), runs(&[(STEP_RUN, Pending, true)]));
    assert_eq!(w.phase(), ("Healthy".into(), String::new()));
}

/// Manifest 11 with background analysis from step 1 on.
fn with_background() -> World {
    let mut w = World::new(&format!("{CANARY}{SUCCESS_RATE}"));
    w.rollout.spec.strategy.canary.as_mut().expect("canary").analysis = Some(
        serde_json::from_value(serde_json::json!({
            "templates": [{"templateName": "success-rate"}],
            "startingStep": 1,
            "args": [{"name": "unused", "valueFrom": {"podTemplateHashValue": "Latest"}}],
        }))
        .expect("analysis parses"),
    );
    w
}

const BACKGROUND_RUN: &str = "mock-server-7c6fcfb847-2";

#[test]
fn background_analysis_failure_aborts() {
    let mut w = with_background();
    w.settle();
    w.set_image("ghcr.io/ssup2/mock-go-server:2.0.0");
    w.settle();
    // Paused at step 1 (the indefinite pause); the background run started with it.
    assert_eq!(w.phase(), ("Paused".into(), "CanaryPauseStep".into()));
    assert_eq!(w.runs(), runs(&[(BACKGROUND_RUN, Pending, false)]));
    assert_eq!(background_run(&w), Some((BACKGROUND_RUN.into(), Pending)));
    assert_eq!(
        w.run(BACKGROUND_RUN).metadata.labels.clone().unwrap_or_default()["rollout-type"],
        "Background"
    );
    w.set_run_phase(BACKGROUND_RUN, Failed, Some(FAILED_MESSAGE));
    w.settle();
    assert_eq!(
        w.phase(),
        (
            "Degraded".into(),
            format!("RolloutAborted: Rollout aborted update to revision 2: {FAILED_MESSAGE}")
        )
    );
    assert_eq!(
        w.replica_sets()[&rs(V2)].0,
        0,
        "basic canary: scaled down at once"
    );
}

#[test]
fn background_analysis_is_terminated_once_fully_promoted() {
    let mut w = with_background();
    w.settle();
    w.set_image("ghcr.io/ssup2/mock-go-server:2.0.0");
    w.settle();
    w.set_run_phase(BACKGROUND_RUN, Running, None);
    w.promote();
    w.settle();
    assert_eq!(w.step(), Some(3));
    w.advance(31);
    w.settle();
    assert_eq!(w.phase(), ("Healthy".into(), String::new()));
    assert_eq!(w.runs(), runs(&[(BACKGROUND_RUN, Running, true)]));
    assert_eq!(background_run(&w), None);
}

/// Manifest 10 (5 replicas) with analysis before and/or after the switch.
fn blue_green_with(analysis: serde_json::Value) -> World {
    let manifest = BLUE_GREEN.replace("replicas: 3", "replicas: 5");
    let mut w = World::new(&format!("{manifest}{SUCCESS_RATE}"));
    let bg = w.rollout.spec.strategy.blue_green.as_mut().expect("blue-green");
    let mut value = serde_json::to_value(&*bg).expect("serializes");
    for (k, v) in analysis.as_object().expect("object") {
        value[k] = v.clone();
    }
    *bg = serde_json::from_value(value).expect("parses");
    w
}

fn active(w: &World) -> String {
    w.selector("mock-server-active")
}

#[test]
fn blue_green_pre_promotion_analysis_gates_the_switch() {
    let mut w = blue_green_with(serde_json::json!({
        "prePromotionAnalysis": {"templates": [{"templateName": "success-rate"}]}
    }));
    w.settle();
    assert!(w.analysis_runs.is_empty());
    w.set_image("ghcr.io/ssup2/mock-go-server:2.0.0");
    w.settle();
    let pre = "mock-server-7c6fcfb847-2-pre";
    assert_eq!(w.runs(), runs(&[(pre, Pending, false)]));
    assert_eq!(
        w.run(pre).metadata.labels.clone().unwrap_or_default()["rollout-type"],
        "PrePromotion"
    );
    // No pause and no switch while the analysis runs.
    assert_eq!(active(&w), V1);
    assert_eq!(
        w.phase(),
        ("Progressing".into(), "active service cutover pending".into())
    );
    let pre_status = w
        .rollout
        .status
        .as_ref()
        .and_then(|s| s.blue_green.as_ref())
        .and_then(|b| b.pre_promotion_analysis_run_status.clone())
        .map(|r| r.name);
    assert_eq!(pre_status.as_deref(), Some(pre));

    // Success: the rollout pauses for a person (autoPromotionEnabled: false), then switches.
    w.set_run_phase(pre, Successful, None);
    w.settle();
    assert_eq!(w.phase(), ("Paused".into(), "BlueGreenPause".into()));
    assert_eq!(active(&w), V1);
    w.promote();
    w.settle();
    assert_eq!(active(&w), V2);
    assert_eq!(w.phase(), ("Healthy".into(), String::new()));
}

#[test]
fn blue_green_failed_pre_promotion_analysis_aborts_without_switching() {
    let mut w = blue_green_with(serde_json::json!({
        "prePromotionAnalysis": {"templates": [{"templateName": "success-rate"}]}
    }));
    w.settle();
    w.set_image("ghcr.io/ssup2/mock-go-server:2.0.0");
    w.settle();
    w.set_run_phase("mock-server-7c6fcfb847-2-pre", Failed, Some(FAILED_MESSAGE));
    w.settle();
    assert_eq!(
        w.phase(),
        (
            "Degraded".into(),
            format!("RolloutAborted: Rollout aborted update to revision 2: {FAILED_MESSAGE}")
        )
    );
    assert_eq!(active(&w), V1);
}

#[test]
fn blue_green_post_promotion_analysis_holds_the_stable_replica_set() {
    let mut w = blue_green_with(serde_json::json!({
        "autoPromotionEnabled": true,
        "postPromotionAnalysis": {"templates": [{"templateName": "success-rate"}]}
    }));
    w.settle();
    w.set_image("ghcr.io/ssup2/mock-go-server:2.0.0");
    w.settle();
    let post = "mock-server-7c6fcfb847-2-post";
    assert_eq!(active(&w), V2, "switched at once");
    assert_eq!(stable(&w).as_deref(), Some(V1), "not stable before the analysis");
    assert_eq!(w.runs(), runs(&[(post, Pending, false)]));
    assert_eq!(
        w.phase(),
        ("Progressing".into(), "waiting for analysis to complete".into())
    );
    w.set_run_phase(post, Successful, None);
    w.settle();
    assert_eq!(stable(&w).as_deref(), Some(V2));
    assert_eq!(w.phase(), ("Healthy".into(), String::new()));
}

#[test]
fn blue_green_failed_post_promotion_analysis_switches_back() {
    let mut w = blue_green_with(serde_json::json!({
        "autoPromotionEnabled": true,
        "postPromotionAnalysis": {"templates": [{"templateName": "success-rate"}]}
    }));
    w.settle();
    w.set_image("ghcr.io/ssup2/mock-go-server:2.0.0");
    w.settle();
    w.set_run_phase("mock-server-7c6fcfb847-2-post", Failed, Some(FAILED_MESSAGE));
    w.settle();
    assert_eq!(w.phase().0, "Degraded");
    assert_eq!(active(&w), V1);
    assert_eq!(stable(&w).as_deref(), Some(V1));
}

/// Manifest 11 with an experiment as the second step.
fn with_experiment() -> World {
    with_steps(
        CANARY,
        serde_json::json!([
            {"setWeight": 20},
            {"experiment": {
                "duration": "5m",
                "templates": [
                    {"name": "canary", "specRef": "canary", "metadata": {"labels": {"role": "exp-canary"}}},
                    {"name": "baseline", "specRef": "stable", "service": {"name": "baseline-svc"}}
                ],
                "analyses": [{"name": "compare", "templateName": "success-rate",
                              "args": [{"name": "rollout", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]}]
            }},
            {"setWeight": 100}
        ]),
    )
}

const EXPERIMENT: &str = "mock-server-7c6fcfb847-2-1";

fn current_experiment(w: &World) -> Option<String> {
    w.rollout
        .status
        .as_ref()
        .and_then(|s| s.canary.as_ref())
        .and_then(|c| c.current_experiment.clone())
}

#[test]
fn experiment_step_succeeds() {
    let mut w = with_experiment();
    w.settle();
    assert!(w.experiments.is_empty());
    w.set_image("ghcr.io/ssup2/mock-go-server:2.0.0");
    w.settle();
    assert_eq!(w.step(), Some(1));
    assert_eq!(
        w.experiment_states().into_keys().collect::<Vec<_>>(),
        [EXPERIMENT]
    );
    assert_eq!(current_experiment(&w).as_deref(), Some(EXPERIMENT));
    assert!(
        w.events
            .iter()
            .any(|e| e == &format!("ExperimentCreated: Created Experiment '{EXPERIMENT}'"))
    );
    let experiment = &w.experiments[0];
    let labels = experiment.metadata.labels.clone().unwrap_or_default();
    assert_eq!(labels[keys::POD_TEMPLATE_HASH], V2);
    assert_eq!(experiment.spec.duration.as_deref(), Some("5m"));
    let templates = &experiment.spec.templates;
    let pod_hash = |i: usize| {
        templates[i]
            .template
            .metadata
            .as_ref()
            .and_then(|m| m.labels.clone())
            .unwrap_or_default()[keys::POD_TEMPLATE_HASH]
            .clone()
    };
    assert_eq!((pod_hash(0), pod_hash(1)), (V2.to_string(), V1.to_string()));
    let selector = templates[0]
        .selector
        .clone()
        .unwrap_or_default()
        .match_labels
        .unwrap_or_default();
    assert_eq!(selector["role"], "exp-canary");
    assert_eq!(templates[0].service, None);
    assert_eq!(
        templates[1].service.as_ref().and_then(|s| s.name.as_deref()),
        Some("baseline-svc")
    );
    let args = experiment.spec.analyses()[0].args();
    assert_eq!(args[0].value.as_deref(), Some("mock-server"), "fieldRef resolved");

    w.set_experiment_phase(EXPERIMENT, Running, None);
    w.settle();
    assert_eq!(w.step(), Some(1));
    w.set_experiment_phase(EXPERIMENT, Successful, None);
    w.settle();
    assert_eq!(w.phase(), ("Healthy".into(), String::new()));
    assert_eq!(w.step(), Some(3));
    assert_eq!(current_experiment(&w), None);
    assert!(
        w.events
            .iter()
            .any(|e| e == "RolloutStepCompleted: Rollout step 2/3 completed (experiment)")
    );
}

#[test]
fn experiment_step_failure_aborts() {
    let mut w = with_experiment();
    w.settle();
    w.set_image("ghcr.io/ssup2/mock-go-server:2.0.0");
    w.settle();
    w.set_experiment_phase(
        EXPERIMENT,
        Failed,
        Some("Template 'canary' exceeded its progressDeadlineSeconds (600)"),
    );
    w.settle();
    assert_eq!(
        w.phase(),
        (
            "Degraded".into(),
            "RolloutAborted: Rollout aborted update to revision 2: Template 'canary' exceeded its progressDeadlineSeconds (600)"
                .into()
        )
    );
    assert_eq!(w.step(), Some(0));
    assert_eq!(current_experiment(&w), None);

    // Retry creates a new Experiment under the next name.
    w.retry();
    w.settle();
    assert_eq!(w.step(), Some(1));
    assert_eq!(
        current_experiment(&w).as_deref(),
        Some(format!("{EXPERIMENT}-1").as_str())
    );
}

fn pause_reasons(w: &World) -> Vec<String> {
    w.rollout
        .status
        .as_ref()
        .and_then(|s| s.pause_conditions.clone())
        .unwrap_or_default()
        .into_iter()
        .map(|c| c.reason)
        .collect()
}

#[test]
fn inconclusive_experiment_pauses_until_promoted_then_runs_a_new_one() {
    let mut w = with_experiment();
    w.settle();
    w.set_image("ghcr.io/ssup2/mock-go-server:2.0.0");
    w.settle();
    w.set_experiment_phase(EXPERIMENT, Running, None);
    w.settle();
    w.set_experiment_phase(
        EXPERIMENT,
        Inconclusive,
        Some("Metric \"m\" assessed Inconclusive"),
    );
    w.settle();
    assert_eq!(w.phase().0, "Paused");
    assert_eq!(pause_reasons(&w), ["InconclusiveExperiment"]);
    assert_eq!(w.step(), Some(1));
    // Paused: the step neither completes nor starts another Experiment.
    w.advance(60);
    w.settle();
    assert_eq!(pause_reasons(&w), ["InconclusiveExperiment"]);
    assert_eq!(w.experiment_states().len(), 1);
    assert_eq!(current_experiment(&w).as_deref(), Some(EXPERIMENT));

    // Promote: a new Experiment runs the step again, and its success completes it.
    w.promote();
    w.settle();
    let next = format!("{EXPERIMENT}-1");
    assert_eq!(pause_reasons(&w), Vec::<String>::new());
    assert_eq!(w.phase().0, "Progressing");
    assert_eq!(w.step(), Some(1));
    assert_eq!(current_experiment(&w).as_deref(), Some(next.as_str()));
    assert_eq!(
        w.experiment_states().into_keys().collect::<Vec<_>>(),
        [EXPERIMENT.to_string(), next.clone()]
    );
    w.set_experiment_phase(&next, Running, None);
    w.settle();
    w.set_experiment_phase(&next, Successful, None);
    w.settle();
    assert_eq!(w.phase(), ("Healthy".into(), String::new()));
    assert_eq!(w.step(), Some(3));
}

#[test]
fn abort_terminates_the_running_experiment() {
    let mut w = with_experiment();
    w.settle();
    w.set_image("ghcr.io/ssup2/mock-go-server:2.0.0");
    w.settle();
    w.set_experiment_phase(EXPERIMENT, Running, None);
    w.abort();
    w.settle();
    assert_eq!(
        w.experiment_states(),
        BTreeMap::from([(EXPERIMENT.to_string(), (Running, true))])
    );
}

#[test]
fn a_missing_template_is_an_invalid_spec() {
    let mut w = World::new(ISTIO_ANALYSIS);
    w.analysis_templates.clear();
    w.settle();
    let (phase, message) = w.phase();
    assert_eq!(phase, "Degraded");
    assert!(
        message.ends_with(r#"spec.strategy.canary.steps[2].analysis.templates: Invalid value: "success-rate": AnalysisTemplate "success-rate" not found"#),
        "{message}"
    );
}

#[test]
fn old_runs_beyond_the_history_limit_are_deleted() {
    let mut w = World::new(ISTIO_ANALYSIS);
    w.rollout.spec.analysis =
        Some(serde_json::from_value(serde_json::json!({"unsuccessfulRunHistoryLimit": 1})).expect("parses"));
    w.settle();
    w.set_image("ghcr.io/ssup2/mock-go-server:2.0.0");
    w.settle();
    let mut last = String::new();
    for _ in 0..3 {
        w.advance(31);
        w.settle();
        last = step_run(&w).expect("a step run").0;
        w.set_run_phase(&last, Failed, None);
        w.settle();
        w.retry();
        w.settle();
    }
    // Only the newest failed run is kept once none is current (its freed name may be reused).
    assert_eq!(w.run_names(), [last]);
}

#[test]
fn runs_of_an_unrelated_rollout_shape_stay_untouched() {
    // A Rollout without any analysis plans no AnalysisRun actions at all.
    let mut w = World::new(CANARY);
    w.settle();
    w.set_image("ghcr.io/ssup2/mock-go-server:2.0.0");
    w.settle();
    assert!(w.analysis_runs.is_empty() && w.experiments.is_empty());
    let status: &Rollout = &w.rollout;
    assert!(status.status.as_ref().and_then(|s| s.canary.as_ref()).is_none());
}

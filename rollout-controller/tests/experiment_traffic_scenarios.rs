//! Experiment template weights routed through Istio (the seed's 2.2.6 and 2.2.9 cases) through
//! the rollout controller's seam: the tests play the experiment controller by setting the
//! Experiment's phase and template statuses (Service name and pod-template hash per template),
//! and check the VirtualService, the DestinationRule and `status.canary.weights`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: failing loudly is the point

mod common;

use common::*;
use serde_json::json;
use shared_types::{
    analysis::AnalysisPhase::{self, Running, Successful},
    experiment::TemplateStatus,
};

const HOST_SPLIT: &str = include_str!(
    "../../examples/seed/manifest15-canary-with-istio-virtual-service-analysistemplate-and-experiment-test-case.yaml"
);
const SUBSET_SPLIT: &str = include_str!(
    "../../examples/seed/manifest18-canary-with-istio-destination-rule-analysistemplate-and-experiment-test-case.yaml"
);

const EXP_STABLE: &str = "mock-server-experiment-stable";
const EXP_CANARY: &str = "mock-server-experiment-canary";

/// A world past the image change: the experiment step (step 0) has created its Experiment.
fn at_experiment(manifest: &str) -> (World, String) {
    let mut w = World::new(manifest);
    w.settle();
    w.set_image("ghcr.io/ssup2/mock-go-server:2.0.0");
    w.settle();
    assert_eq!(w.step(), Some(0));
    assert_eq!(w.experiments.len(), 1);
    let name = w.experiments[0].metadata.name.clone().unwrap();
    (w, name)
}

/// Plays the experiment controller: the Experiment reaches `phase`, its templates' Services and
/// ReplicaSets in the status (templates in spec order, as the experiment controller writes them).
fn experiment_status(w: &mut World, name: &str, phase: AnalysisPhase) {
    w.set_experiment_phase(name, phase, None);
    let experiment = w
        .experiments
        .iter_mut()
        .find(|e| e.metadata.name.as_deref() == Some(name))
        .unwrap();
    let status = experiment.status.get_or_insert_with(Default::default);
    status.template_statuses = Some(
        [
            ("stable", EXP_STABLE, "68879bfdd8"),
            ("canary", EXP_CANARY, "65c7c65dd7"),
        ]
        .into_iter()
        .map(|(template, service, hash)| TemplateStatus {
            name: template.into(),
            replicas: 1,
            service_name: Some(service.into()),
            pod_template_hash: Some(hash.into()),
            ..Default::default()
        })
        .collect(),
    );
}

/// `(host, subset, weight)` of each destination of the VirtualService's `primary` route.
fn route(w: &World) -> Vec<(String, Option<String>, i64)> {
    w.virtual_services["mock-server"]["spec"]["http"][0]["route"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|d| {
            (
                d["destination"]["host"].as_str().unwrap_or_default().to_string(),
                d["destination"]["subset"].as_str().map(str::to_string),
                d["weight"].as_i64().unwrap_or(-1),
            )
        })
        .collect()
}

fn host(h: &str, weight: i64) -> (String, Option<String>, i64) {
    (h.into(), None, weight)
}

fn subset(s: &str, weight: i64) -> (String, Option<String>, i64) {
    ("mock-server".into(), Some(s.into()), weight)
}

/// `(canary, stable, [(service, hash, weight)])` of `status.canary.weights`.
fn status_weights(w: &World) -> (i32, i32, Vec<(String, String, i32)>) {
    let weights = w
        .rollout
        .status
        .as_ref()
        .and_then(|s| s.canary.as_ref())
        .and_then(|c| c.weights.clone())
        .expect("weights recorded");
    (
        weights.canary.weight,
        weights.stable.weight,
        weights
            .additional
            .unwrap_or_default()
            .into_iter()
            .map(|a| {
                (
                    a.service_name.unwrap_or_default(),
                    a.pod_template_hash.unwrap_or_default(),
                    a.weight,
                )
            })
            .collect(),
    )
}

/// `(name, hash label)` of each DestinationRule subset.
fn subsets(w: &World) -> Vec<(String, Option<String>)> {
    let dr = w.destination_rule.clone().unwrap();
    dr["spec"]["subsets"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap_or_default().to_string(),
                s["labels"]["rollouts-pod-template-hash"]
                    .as_str()
                    .map(str::to_string),
            )
        })
        .collect()
}

#[test]
fn seed_2_2_6_experiment_weights_on_host_split() {
    let (mut w, name) = at_experiment(HOST_SPLIT);
    assert_eq!(name, format!("mock-server-{V2}-2-0"));
    // Pending: no experiment traffic yet.
    assert_eq!(
        route(&w),
        [host("mock-server-stable", 100), host("mock-server-canary", 0)]
    );

    experiment_status(&mut w, &name, Running);
    w.settle();
    // The seed's `describe virtualservice` during the experiment.
    assert_eq!(
        route(&w),
        [
            host("mock-server-stable", 60),
            host("mock-server-canary", 0),
            host(EXP_STABLE, 20),
            host(EXP_CANARY, 20),
        ]
    );
    assert_eq!(
        w.virtual_services["mock-server"]["spec"]["http"][0]["route"][2],
        json!({ "destination": { "host": EXP_STABLE }, "weight": 20 })
    );
    assert_eq!(
        status_weights(&w),
        (
            0,
            60,
            vec![
                (EXP_STABLE.into(), "68879bfdd8".into(), 20),
                (EXP_CANARY.into(), "65c7c65dd7".into(), 20)
            ]
        )
    );
    assert_eq!(w.step(), Some(0));

    // The experiment succeeds: its routes go, the next step sets weight 20.
    w.set_experiment_phase(&name, Successful, None);
    w.settle();
    assert_eq!(w.step(), Some(2));
    assert_eq!(
        route(&w),
        [host("mock-server-stable", 80), host("mock-server-canary", 20)]
    );
    assert_eq!(status_weights(&w), (20, 80, vec![]));
}

#[test]
fn experiment_routes_are_removed_when_the_rollout_aborts() {
    let (mut w, name) = at_experiment(HOST_SPLIT);
    experiment_status(&mut w, &name, Running);
    w.settle();
    assert_eq!(route(&w).len(), 4);
    w.abort();
    w.settle();
    assert_eq!(
        route(&w),
        [host("mock-server-stable", 100), host("mock-server-canary", 0)]
    );
    assert_eq!(status_weights(&w), (0, 100, vec![]));
    assert_eq!(w.experiment_states()[&name], (Running, true), "terminated");
}

#[test]
fn a_failed_experiment_aborts_and_its_routes_go() {
    let (mut w, name) = at_experiment(HOST_SPLIT);
    experiment_status(&mut w, &name, Running);
    w.settle();
    experiment_status(&mut w, &name, AnalysisPhase::Failed);
    w.settle();
    assert_eq!(w.phase().0, "Degraded");
    assert_eq!(
        route(&w),
        [host("mock-server-stable", 100), host("mock-server-canary", 0)]
    );
}

#[test]
fn skipping_the_experiment_step_removes_its_routes() {
    let (mut w, name) = at_experiment(HOST_SPLIT);
    experiment_status(&mut w, &name, Running);
    w.settle();
    assert_eq!(route(&w).len(), 4);
    // `promote` past the step (what `kubectl argo rollouts promote` does on a step that is not
    // a pause): the Experiment is no longer the step's and is terminated.
    w.rollout.status.as_mut().unwrap().current_step_index = Some(1);
    w.settle();
    assert_eq!(
        route(&w),
        [host("mock-server-stable", 80), host("mock-server-canary", 20)]
    );
    assert_eq!(w.experiment_states()[&name], (Running, true), "terminated");
}

#[test]
fn templates_without_weight_get_no_route() {
    let mut w = World::new(HOST_SPLIT);
    w.edit_spec(|r| {
        let steps = r.spec.strategy.canary.as_mut().unwrap().steps.as_mut().unwrap();
        steps[0].experiment.as_mut().unwrap().templates[1].weight = None;
    });
    w.settle();
    w.set_image("ghcr.io/ssup2/mock-go-server:2.0.0");
    w.settle();
    let name = w.experiments[0].metadata.name.clone().unwrap();
    experiment_status(&mut w, &name, Running);
    w.settle();
    assert_eq!(
        route(&w),
        [
            host("mock-server-stable", 80),
            host("mock-server-canary", 0),
            host(EXP_STABLE, 20),
        ]
    );
}

#[test]
fn seed_2_2_9_experiment_subsets_on_subset_split() {
    let (mut w, name) = at_experiment(SUBSET_SPLIT);
    let stable_hash = w.rollout.status.as_ref().unwrap().stable_rs.clone().unwrap();
    let canary_hash = w
        .rollout
        .status
        .as_ref()
        .unwrap()
        .current_pod_hash
        .clone()
        .unwrap();
    experiment_status(&mut w, &name, Running);
    w.settle();
    // The seed's `describe virtualservice` and `describe destinationrule` during the experiment:
    // the experiment Services are routed by host, their subsets named after the Services.
    assert_eq!(
        route(&w),
        [
            subset("stable", 60),
            subset("canary", 0),
            host(EXP_STABLE, 20),
            host(EXP_CANARY, 20),
        ]
    );
    assert_eq!(
        subsets(&w),
        [
            ("stable".to_string(), Some(stable_hash.clone())),
            ("canary".to_string(), Some(canary_hash.clone())),
            (EXP_STABLE.to_string(), Some("68879bfdd8".to_string())),
            (EXP_CANARY.to_string(), Some("65c7c65dd7".to_string())),
        ]
    );
    let dr = w.destination_rule.clone().unwrap();
    assert_eq!(
        dr["spec"]["subsets"][2],
        json!({ "name": EXP_STABLE, "labels": { "rollouts-pod-template-hash": "68879bfdd8" } })
    );

    w.set_experiment_phase(&name, Successful, None);
    w.settle();
    assert_eq!(w.step(), Some(2));
    assert_eq!(route(&w), [subset("stable", 80), subset("canary", 20)]);
    assert_eq!(
        subsets(&w),
        [
            ("stable".to_string(), Some(stable_hash)),
            ("canary".to_string(), Some(canary_hash)),
        ],
        "experiment subsets removed"
    );
}

#[test]
fn foreign_subsets_are_kept() {
    let (mut w, name) = at_experiment(SUBSET_SPLIT);
    let dr = w.destination_rule.as_mut().unwrap();
    dr["spec"]["subsets"]
        .as_array_mut()
        .unwrap()
        .push(json!({ "name": "other", "labels": { "version": "x" } }));
    experiment_status(&mut w, &name, Running);
    w.settle();
    w.set_experiment_phase(&name, Successful, None);
    w.settle();
    let names: Vec<String> = subsets(&w).into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["stable", "canary", "other"]);
}

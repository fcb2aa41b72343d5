//! The seed's test cases 2.2.1-2.2.3 run against the pure planner with a small simulated
//! cluster: ReplicaSets get exactly the pods they ask for and those pods are ready at once, so
//! what is left is the controller's own decisions (names, revisions, replica counts, steps,
//! phases, Service selectors). The e2e tests repeat the cases on a real API server.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: failing loudly is the point

mod common;

use std::collections::BTreeMap;

use common::*;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use shared_types::{constants::keys, replicaset as rsutil};

/// The seed's 2.2.1 manifest (it says 3 replicas while its transcript shows 5; we follow the
/// transcript).
fn blue_green() -> String {
    include_str!("../../examples/seed/manifest10-blue-green-test-case.yaml")
        .replace("replicas: 3", "replicas: 5")
}

/// The seed's 2.2.2 manifest (timed pause of 30 s).
const CANARY_SUCCESS: &str = include_str!("../../examples/seed/manifest11-canary-success-test-case.yaml");
/// The seed's 2.2.3 manifest (two indefinite pauses).
const CANARY_UNDO_ABORT: &str =
    include_str!("../../examples/seed/manifest12-canary-with-undo-and-abort-test-case.yaml");

#[test]
fn seed_2_2_1_blue_green() {
    let mut w = World::new(&blue_green());
    w.settle();
    assert_eq!(w.phase(), ("Healthy".into(), String::new()));
    assert_eq!(w.replica_sets(), BTreeMap::from([(rs(V1), (5, 1))]));
    assert_eq!(
        (
            w.selector("mock-server-active"),
            w.selector("mock-server-preview")
        ),
        (V1.into(), V1.into())
    );
    assert_eq!(w.counts(), (5, 5, 5, 5));

    w.set_image("ghcr.io/ssup2/mock-go-server:2.0.0");
    w.settle();
    assert_eq!(w.phase(), ("Paused".into(), "BlueGreenPause".into()));
    assert_eq!(
        w.replica_sets(),
        BTreeMap::from([(rs(V1), (5, 1)), (rs(V2), (5, 2))])
    );
    assert_eq!(
        (
            w.selector("mock-server-active"),
            w.selector("mock-server-preview")
        ),
        (V1.into(), V2.into())
    );
    // Desired 5, Current 10, Updated 5, Ready 5 and Available 5 (from the active ReplicaSet).
    assert_eq!(w.counts(), (10, 5, 5, 5));

    w.set_image("ghcr.io/ssup2/mock-go-server:3.0.0");
    w.settle();
    assert_eq!(w.phase(), ("Paused".into(), "BlueGreenPause".into()));
    assert_eq!(
        (
            w.selector("mock-server-active"),
            w.selector("mock-server-preview")
        ),
        (V1.into(), V3.into())
    );
    // Revision 2 waits out its 30 s scale-down delay, then goes.
    assert_eq!(w.replica_sets()[&rs(V2)], (5, 2));
    w.advance(31);
    w.settle();
    assert_eq!(
        w.replica_sets(),
        BTreeMap::from([(rs(V1), (5, 1)), (rs(V2), (0, 2)), (rs(V3), (5, 3))])
    );
    assert_eq!(w.phase(), ("Paused".into(), "BlueGreenPause".into()));

    w.promote();
    w.settle();
    assert_eq!(w.phase(), ("Healthy".into(), String::new()));
    assert_eq!(
        (
            w.selector("mock-server-active"),
            w.selector("mock-server-preview")
        ),
        (V3.into(), V3.into())
    );
    assert_eq!(
        w.rollout
            .status
            .as_ref()
            .and_then(|s| s.stable_rs.clone())
            .as_deref(),
        Some(V3)
    );
    w.advance(31);
    w.settle();
    assert_eq!(
        w.replica_sets(),
        BTreeMap::from([(rs(V1), (0, 1)), (rs(V2), (0, 2)), (rs(V3), (5, 3))])
    );
    assert_eq!(w.counts(), (5, 5, 5, 5));
    assert!(
        w.events
            .iter()
            .any(|e| e.starts_with("RolloutCompleted: Rollout completed update to revision 3")),
        "{:?}",
        w.events
    );
}

#[test]
fn seed_2_2_2_canary_success() {
    let mut w = World::new(CANARY_SUCCESS);
    w.settle();
    assert_eq!(w.phase(), ("Healthy".into(), String::new()));
    assert_eq!(w.step(), Some(5));
    assert_eq!(w.replica_sets(), BTreeMap::from([(rs(V1), (5, 1))]));
    assert_eq!(
        (w.selector("mock-server-stable"), w.selector("mock-server-canary")),
        (V1.into(), V1.into())
    );
    assert_eq!(w.selector("mock-server"), "", "the plain Service is left alone");

    w.set_image("ghcr.io/ssup2/mock-go-server:2.0.0");
    w.settle();
    assert_eq!(w.phase(), ("Paused".into(), "CanaryPauseStep".into()));
    assert_eq!(w.step(), Some(1));
    assert_eq!(
        w.replica_sets(),
        BTreeMap::from([(rs(V1), (4, 1)), (rs(V2), (1, 2))])
    );
    assert_eq!(w.counts(), (5, 1, 5, 5));
    assert_eq!(
        (w.selector("mock-server-stable"), w.selector("mock-server-canary")),
        (V1.into(), V2.into())
    );

    w.set_image("ghcr.io/ssup2/mock-go-server:3.0.0");
    w.settle();
    assert_eq!(w.phase(), ("Paused".into(), "CanaryPauseStep".into()));
    assert_eq!(w.step(), Some(1));
    assert_eq!(
        w.replica_sets(),
        BTreeMap::from([(rs(V1), (4, 1)), (rs(V2), (0, 2)), (rs(V3), (1, 3))])
    );
    assert_eq!(
        (w.selector("mock-server-stable"), w.selector("mock-server-canary")),
        (V1.into(), V3.into())
    );

    w.promote();
    w.settle();
    assert_eq!(w.phase(), ("Paused".into(), "CanaryPauseStep".into()));
    assert_eq!(w.step(), Some(3));
    assert_eq!(
        w.replica_sets(),
        BTreeMap::from([(rs(V1), (3, 1)), (rs(V2), (0, 2)), (rs(V3), (2, 3))])
    );

    // The timed pause ends by itself after 30 s.
    w.advance(31);
    w.settle();
    assert_eq!(w.phase(), ("Healthy".into(), String::new()));
    assert_eq!(w.step(), Some(5));
    assert_eq!(
        w.replica_sets(),
        BTreeMap::from([(rs(V1), (0, 1)), (rs(V2), (0, 2)), (rs(V3), (5, 3))])
    );
    assert_eq!(
        (w.selector("mock-server-stable"), w.selector("mock-server-canary")),
        (V3.into(), V3.into())
    );
    assert!(
        w.events
            .iter()
            .any(|e| e == "RolloutStepCompleted: Rollout step 1/5 completed (setWeight: 20)"),
        "{:?}",
        w.events
    );
}

#[test]
fn seed_2_2_3_canary_undo_and_abort() {
    let mut w = World::new(CANARY_UNDO_ABORT);
    w.settle();
    w.set_image("ghcr.io/ssup2/mock-go-server:2.0.0");
    w.settle();
    w.set_image("ghcr.io/ssup2/mock-go-server:3.0.0");
    w.settle();
    assert_eq!(
        w.replica_sets(),
        BTreeMap::from([(rs(V1), (4, 1)), (rs(V2), (0, 2)), (rs(V3), (1, 3))])
    );

    // Undo: revision 2's template comes back as revision 4, reusing its ReplicaSet.
    w.undo();
    w.settle();
    assert_eq!(w.phase(), ("Paused".into(), "CanaryPauseStep".into()));
    assert_eq!(w.step(), Some(1));
    assert_eq!(
        w.replica_sets(),
        BTreeMap::from([(rs(V1), (4, 1)), (rs(V2), (1, 4)), (rs(V3), (0, 3))])
    );
    assert_eq!(w.selector("mock-server-canary"), V2);

    // Undo again: revision 3's template comes back as revision 5.
    w.undo();
    w.settle();
    assert_eq!(
        w.replica_sets(),
        BTreeMap::from([(rs(V1), (4, 1)), (rs(V2), (0, 4)), (rs(V3), (1, 5))])
    );
    assert_eq!(w.selector("mock-server-canary"), V3);
    let history = w
        .replica_sets
        .iter()
        .find(|r| r.metadata.name.as_deref() == Some(rs(V3).as_str()))
        .and_then(|r| rsutil::annotation(r, keys::REVISION_HISTORY).map(str::to_string));
    assert_eq!(history.as_deref(), Some("3"));

    w.abort();
    w.settle();
    assert_eq!(
        w.phase(),
        (
            "Degraded".into(),
            "RolloutAborted: Rollout aborted update to revision 5".into()
        )
    );
    assert_eq!(w.step(), Some(0));
    assert_eq!(
        w.replica_sets(),
        BTreeMap::from([(rs(V1), (5, 1)), (rs(V2), (0, 4)), (rs(V3), (0, 5))])
    );
    assert_eq!(w.counts(), (5, 0, 5, 5));
    assert_eq!(
        (w.selector("mock-server-stable"), w.selector("mock-server-canary")),
        (V1.into(), V1.into())
    );
}

#[test]
fn abort_then_retry_restarts_the_steps() {
    let mut w = World::new(CANARY_UNDO_ABORT);
    w.settle();
    w.set_image("ghcr.io/ssup2/mock-go-server:2.0.0");
    w.settle();
    w.abort();
    w.settle();
    assert_eq!(w.phase().0, "Degraded");
    // retry: the plugin sets abort to false.
    if let Some(s) = w.rollout.status.as_mut() {
        s.abort = Some(false);
    }
    w.settle();
    assert_eq!(w.phase(), ("Paused".into(), "CanaryPauseStep".into()));
    assert_eq!(w.step(), Some(1));
    assert_eq!(w.replica_sets()[&rs(V2)].0, 1);
    let progressing = w
        .rollout
        .status
        .as_ref()
        .and_then(|s| s.condition("Progressing").cloned())
        .expect("Progressing condition");
    assert_ne!(progressing.reason, "RolloutAborted");
}

#[test]
fn promote_full_skips_remaining_steps() {
    let mut w = World::new(CANARY_UNDO_ABORT);
    w.settle();
    w.set_image("ghcr.io/ssup2/mock-go-server:2.0.0");
    w.settle();
    if let Some(s) = w.rollout.status.as_mut() {
        s.promote_full = Some(true);
    }
    w.settle();
    assert_eq!(w.phase(), ("Healthy".into(), String::new()));
    assert_eq!(w.step(), Some(5));
    assert_eq!(
        w.replica_sets(),
        BTreeMap::from([(rs(V1), (0, 1)), (rs(V2), (5, 2))])
    );
    assert_eq!(w.rollout.status.as_ref().and_then(|s| s.promote_full), None);
}

#[test]
fn manual_pause_halts_steps_and_resume_continues() {
    let mut w = World::new(CANARY_UNDO_ABORT);
    w.settle();
    w.edit_spec(|r| r.spec.paused = Some(true));
    w.set_image("ghcr.io/ssup2/mock-go-server:2.0.0");
    w.settle();
    assert_eq!(w.phase(), ("Paused".into(), "manually paused".into()));
    w.edit_spec(|r| r.spec.paused = Some(false));
    w.settle();
    assert_eq!(w.phase(), ("Paused".into(), "CanaryPauseStep".into()));
    assert_eq!(w.step(), Some(1));
}

#[test]
fn scaling_the_rollout_rescales_replica_sets() {
    let mut w = World::new(CANARY_UNDO_ABORT);
    w.settle();
    w.edit_spec(|r| r.spec.replicas = Some(8));
    w.settle();
    assert_eq!(w.replica_sets(), BTreeMap::from([(rs(V1), (8, 1))]));
    assert_eq!(w.rollout.status.as_ref().and_then(|s| s.hpa_replicas), Some(8));
    assert_eq!(
        w.rollout
            .status
            .as_ref()
            .and_then(|s| s.selector.clone())
            .as_deref(),
        Some("app=mock-server")
    );
}

#[test]
fn invalid_spec_is_reported_and_recovers() {
    let mut w = World::new(CANARY_UNDO_ABORT);
    w.edit_spec(|r| {
        if let Some(c) = r.spec.strategy.canary.as_mut() {
            c.steps.get_or_insert_with(Vec::new)[0].set_weight = Some(150);
        }
    });
    w.settle();
    let (phase, message) = w.phase();
    assert_eq!(phase, "Degraded");
    assert_eq!(
        message,
        "InvalidSpec: The Rollout \"mock-server\" is invalid: spec.strategy.canary.steps[0].setWeight: Invalid value: 150: SetWeight needs to be between 0 and 100"
    );
    assert!(
        w.replica_sets.is_empty(),
        "nothing is created for an invalid spec"
    );
    w.edit_spec(|r| {
        if let Some(c) = r.spec.strategy.canary.as_mut() {
            c.steps.get_or_insert_with(Vec::new)[0].set_weight = Some(20);
        }
    });
    w.settle();
    assert_eq!(w.phase(), ("Healthy".into(), String::new()));
}

#[test]
fn missing_service_is_reported() {
    let mut w = World::new(CANARY_UNDO_ABORT);
    w.services.remove("mock-server-canary");
    w.settle();
    assert_eq!(
        w.phase().1,
        "InvalidSpec: The Rollout \"mock-server\" is invalid: spec.strategy.canary.canaryService: Invalid value: \"mock-server-canary\": services \"mock-server-canary\" not found"
    );
}

#[test]
fn restart_replaces_every_pod_within_the_unavailability_budget() {
    let mut w = World::new(CANARY_UNDO_ABORT);
    w.settle();
    let before: Vec<String> = w.pods.iter().filter_map(|p| p.metadata.name.clone()).collect();
    w.advance(10);
    let restart_at = Time(w.now);
    w.edit_spec(|r| r.spec.restart_at = Some(restart_at.clone()));
    w.advance(1);
    // One reconcile evicts at most maxUnavailable (1 of 5) pods.
    w.reconcile();
    let evicted = before
        .iter()
        .filter(|p| !w.pods.iter().any(|q| q.metadata.name.as_ref() == Some(p)))
        .count();
    assert_eq!(evicted, 1);
    assert_eq!(w.phase(), ("Progressing".into(), "rollout is restarting".into()));
    for _ in 0..20 {
        w.advance(1);
        w.settle();
    }
    assert!(w.pods.iter().all(|p| {
        p.metadata
            .creation_timestamp
            .as_ref()
            .is_some_and(|c| c.0 > restart_at.0)
    }));
    assert_eq!(
        w.rollout.status.as_ref().and_then(|s| s.restarted_at.clone()),
        Some(restart_at)
    );
    assert_eq!(w.phase(), ("Healthy".into(), String::new()));
}

#[test]
fn blue_green_abort_scales_preview_down_after_the_delay() {
    let mut w = World::new(&blue_green());
    w.settle();
    w.set_image("ghcr.io/ssup2/mock-go-server:2.0.0");
    w.settle();
    w.abort();
    w.settle();
    assert_eq!(w.phase().0, "Degraded");
    assert_eq!(w.selector("mock-server-active"), V1);
    assert_eq!(
        w.replica_sets()[&rs(V2)].0,
        5,
        "preview kept for abortScaleDownDelaySeconds"
    );
    w.advance(31);
    w.settle();
    assert_eq!(w.replica_sets()[&rs(V2)].0, 0);
    assert_eq!(w.replica_sets()[&rs(V1)].0, 5);
}

#[test]
fn progress_deadline_exceeded_degrades_and_can_abort() {
    let manifest = CANARY_UNDO_ABORT.replace(
        "  replicas: 5\n",
        "  replicas: 5\n  progressDeadlineSeconds: 60\n  progressDeadlineAbort: true\n",
    );
    let mut w = World::new(&manifest);
    w.settle();
    w.broken.push(V2.into());
    w.set_image("ghcr.io/ssup2/mock-go-server:2.0.0");
    w.settle();
    assert_eq!(
        w.phase(),
        ("Progressing".into(), "more replicas need to be updated".into()),
        "{:#?} {:?}",
        w.events,
        w.replica_sets
            .iter()
            .map(|r| (r.metadata.name.clone(), r.status.clone()))
            .collect::<Vec<_>>()
    );
    w.advance(61);
    w.settle();
    let (phase, message) = w.phase();
    assert_eq!(phase, "Degraded");
    assert!(
        message
            == "RolloutAborted: Rollout aborted update to revision 2: ReplicaSet \"mock-server-7c6fcfb847\" has timed out progressing.",
        "{message}"
    );
    assert_eq!(
        w.replica_sets()[&rs(V1)].0,
        5,
        "aborted: stable back to full size"
    );
}

/// `(stable weight, canary weight)` of the VirtualService's `primary` route, by destination.
fn vs_weights(w: &World, stable_key: &str, canary_key: &str) -> (i64, i64) {
    let vs = &w.virtual_services["mock-server"];
    let route = vs["spec"]["http"][0]["route"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let weight = |key: &str| {
        route
            .iter()
            .find(|d| d["destination"]["host"] == key || d["destination"]["subset"] == key)
            .and_then(|d| d["weight"].as_i64())
            .unwrap_or(-1)
    };
    (weight(stable_key), weight(canary_key))
}

#[test]
fn seed_2_2_4_istio_virtual_service_host_split() {
    let mut w = World::new(include_str!(
        "../../examples/seed/manifest13-canary-with-istio-virtual-service-test-case.yaml"
    ));
    w.settle();
    assert_eq!(w.phase(), ("Healthy".into(), String::new()));
    assert_eq!(
        vs_weights(&w, "mock-server-stable", "mock-server-canary"),
        (100, 0)
    );

    w.set_image("ghcr.io/ssup2/mock-go-server:2.0.0");
    w.settle();
    assert_eq!(w.phase(), ("Paused".into(), "CanaryPauseStep".into()));
    // Table 2: stable stays at 5, canary gets ceil(5 x 20 / 100) = 1; the weight is exact.
    assert_eq!(
        w.replica_sets(),
        BTreeMap::from([(rs(V1), (5, 1)), (rs(V2), (1, 2))])
    );
    assert_eq!(
        vs_weights(&w, "mock-server-stable", "mock-server-canary"),
        (80, 20)
    );
    assert_eq!(w.counts(), (6, 1, 6, 6));
    let weights = w
        .rollout
        .status
        .as_ref()
        .and_then(|s| s.canary.clone())
        .and_then(|c| c.weights)
        .expect("weights recorded");
    assert_eq!((weights.canary.weight, weights.stable.weight), (20, 80));
    assert_eq!(weights.canary.pod_template_hash.as_deref(), Some(V2));

    w.promote();
    w.settle();
    assert_eq!(
        w.replica_sets(),
        BTreeMap::from([(rs(V1), (5, 1)), (rs(V2), (2, 2))])
    );
    assert_eq!(
        vs_weights(&w, "mock-server-stable", "mock-server-canary"),
        (60, 40)
    );

    w.promote();
    w.settle();
    assert_eq!(w.phase(), ("Healthy".into(), String::new()));
    // Promoted: weights back to 100/0 with both Services on the new hash; old stable waits 30 s.
    assert_eq!(
        vs_weights(&w, "mock-server-stable", "mock-server-canary"),
        (100, 0)
    );
    assert_eq!(
        (w.selector("mock-server-stable"), w.selector("mock-server-canary")),
        (V2.into(), V2.into())
    );
    assert_eq!(w.replica_sets()[&rs(V1)].0, 5);
    w.advance(31);
    w.settle();
    assert_eq!(
        w.replica_sets(),
        BTreeMap::from([(rs(V1), (0, 1)), (rs(V2), (5, 2))])
    );
}

#[test]
fn seed_2_2_7_istio_destination_rule_subset_split() {
    let mut w = World::new(include_str!(
        "../../examples/seed/manifest16-canary-with-istio-destination-rule-test-case.yaml"
    ));
    w.settle();
    let subset_hash = |w: &World, name: &str| {
        let dr = w.destination_rule.clone().expect("destination rule");
        dr["spec"]["subsets"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|s| s["name"] == name)
            .and_then(|s| s["labels"][keys::POD_TEMPLATE_HASH].as_str().map(str::to_string))
            .unwrap_or_default()
    };
    assert_eq!(
        (subset_hash(&w, "stable"), subset_hash(&w, "canary")),
        (V1.into(), V1.into())
    );
    w.set_image("ghcr.io/ssup2/mock-go-server:2.0.0");
    w.settle();
    assert_eq!(w.phase(), ("Paused".into(), "CanaryPauseStep".into()));
    assert_eq!(
        (subset_hash(&w, "stable"), subset_hash(&w, "canary")),
        (V1.into(), V2.into())
    );
    assert_eq!(vs_weights(&w, "stable", "canary"), (80, 20));
    assert_eq!(
        w.replica_sets(),
        BTreeMap::from([(rs(V1), (5, 1)), (rs(V2), (1, 2))])
    );
    w.promote();
    w.settle();
    assert_eq!(vs_weights(&w, "stable", "canary"), (60, 40));
    w.promote();
    w.settle();
    assert_eq!(w.phase(), ("Healthy".into(), String::new()));
    assert_eq!(vs_weights(&w, "stable", "canary"), (100, 0));
    assert_eq!(
        (subset_hash(&w, "stable"), subset_hash(&w, "canary")),
        (V2.into(), V2.into())
    );
    let dr = w.destination_rule.clone().expect("destination rule");
    assert_eq!(
        dr["metadata"]["annotations"][keys::MANAGED_BY_ROLLOUTS],
        "mock-server"
    );
}

#[test]
fn istio_abort_sets_weight_zero_in_the_same_reconcile() {
    let mut w = World::new(include_str!(
        "../../examples/seed/manifest13-canary-with-istio-virtual-service-test-case.yaml"
    ));
    w.settle();
    w.set_image("ghcr.io/ssup2/mock-go-server:2.0.0");
    w.settle();
    assert_eq!(
        vs_weights(&w, "mock-server-stable", "mock-server-canary"),
        (80, 20)
    );
    w.abort();
    w.reconcile();
    // The reconcile that records the abort also routes everything back to stable.
    assert_eq!(w.rollout.status.as_ref().and_then(|s| s.abort), Some(true));
    assert_eq!(
        vs_weights(&w, "mock-server-stable", "mock-server-canary"),
        (100, 0)
    );
    w.settle();
    assert_eq!(w.phase().0, "Degraded");
    // The canary pods stay for abortScaleDownDelaySeconds (30 s), then go.
    assert_eq!(w.replica_sets()[&rs(V2)].0, 1);
    w.advance(31);
    w.settle();
    assert_eq!(w.replica_sets()[&rs(V2)].0, 0);
}

#[test]
fn missing_virtual_service_is_invalid_spec() {
    let mut w = World::new(include_str!(
        "../../examples/seed/manifest13-canary-with-istio-virtual-service-test-case.yaml"
    ));
    w.virtual_services.clear();
    w.settle();
    assert_eq!(
        w.phase().1,
        "InvalidSpec: The Rollout \"mock-server\" is invalid: spec.strategy.canary.trafficRouting.istio.virtualService.name: Invalid value: \"mock-server\": virtualservices.networking.istio.io \"mock-server\" not found"
    );
}

#[test]
fn anti_affinity_keeps_new_pods_off_stable_nodes() {
    let manifest = CANARY_UNDO_ABORT.replace(
        "      canaryService: mock-server-canary\n",
        "      canaryService: mock-server-canary\n      antiAffinity:\n        preferredDuringSchedulingIgnoredDuringExecution:\n          weight: 50\n",
    );
    let mut w = World::new(&manifest);
    w.settle();
    let affinity = |w: &World, hash: &str| {
        let rs = w
            .replica_sets
            .iter()
            .find(|r| rsutil::hash(r) == Some(hash))
            .expect("replica set");
        serde_json::to_value(
            rs.spec
                .template
                .as_ref()
                .and_then(|t| t.spec.as_ref())
                .and_then(|s| s.affinity.clone()),
        )
        .expect("affinity serializes")
    };
    assert_eq!(
        affinity(&w, V1),
        serde_json::Value::Null,
        "no stable yet: nothing to avoid"
    );
    w.set_image("ghcr.io/ssup2/mock-go-server:2.0.0");
    w.settle();
    assert_eq!(
        affinity(&w, V2),
        serde_json::json!({"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{
            "weight": 50,
            "podAffinityTerm": {
                "labelSelector": {"matchExpressions": [{"key": "rollouts-pod-template-hash", "operator": "In", "values": [V1]}]},
                "namespaces": ["default"],
                "topologyKey": "kubernetes.io/hostname"
            }
        }]}})
    );
}

#[test]
fn rollback_within_window_skips_the_steps() {
    let manifest = CANARY_UNDO_ABORT.replace(
        "  replicas: 5\n",
        "  replicas: 5\n  rollbackWindow:\n    revisions: 3\n",
    );
    let mut w = World::new(&manifest);
    w.settle();
    w.advance(10);
    w.set_image("ghcr.io/ssup2/mock-go-server:2.0.0");
    w.settle();
    w.promote_full_now();
    w.settle();
    assert_eq!(
        w.rollout
            .status
            .as_ref()
            .and_then(|s| s.stable_rs.clone())
            .as_deref(),
        Some(V2)
    );
    w.advance(10);
    w.undo();
    w.settle();
    // Back to revision 1's template within the window: promoted at once, no pause step.
    assert_eq!(w.phase(), ("Healthy".into(), String::new()));
    assert_eq!(
        w.rollout
            .status
            .as_ref()
            .and_then(|s| s.stable_rs.clone())
            .as_deref(),
        Some(V1)
    );
    assert!(
        w.events
            .iter()
            .any(|e| e == "SkipSteps: Rollback to active ReplicaSets within RollbackWindow"),
        "{:?}",
        w.events
    );
}

#[test]
fn a_pod_dying_after_completion_is_progress_not_a_timeout() {
    let mut w = World::new(CANARY_UNDO_ABORT);
    w.settle();
    // Long after the update completed, the stable pods stop being available (node drain).
    w.advance(3600);
    w.broken.push(V1.into());
    w.settle();
    let (phase, message) = w.phase();
    assert_eq!(phase, "Progressing", "{message}");
    let progressing = w
        .rollout
        .status
        .as_ref()
        .and_then(|s| s.condition("Progressing").cloned())
        .expect("condition");
    assert_eq!(progressing.reason, "ReplicaSetNotAvailable");
    assert_eq!(
        progressing.last_update_time,
        Time(w.now),
        "progress refreshed, so no immediate deadline"
    );
}

#[test]
fn abort_of_a_completed_rollout_is_dropped() {
    let mut w = World::new(CANARY_UNDO_ABORT);
    w.settle();
    w.abort();
    w.settle();
    assert_eq!(w.phase(), ("Healthy".into(), String::new()));
    assert_eq!(w.rollout.status.as_ref().and_then(|s| s.abort), None);
}

#[test]
fn blue_green_preview_replica_count_pauses_once() {
    let manifest = blue_green().replace(
        "      autoPromotionEnabled: false\n",
        "      autoPromotionEnabled: false\n      previewReplicaCount: 1\n",
    );
    let mut w = World::new(&manifest);
    w.settle();
    w.set_image("ghcr.io/ssup2/mock-go-server:2.0.0");
    w.settle();
    assert_eq!(w.phase(), ("Paused".into(), "BlueGreenPause".into()));
    assert_eq!(
        w.replica_sets()[&rs(V2)].0,
        1,
        "preview runs previewReplicaCount pods"
    );
    w.promote();
    w.settle();
    assert_eq!(w.phase(), ("Healthy".into(), String::new()));
    assert_eq!(w.selector("mock-server-active"), V2);
    assert_eq!(w.replica_sets()[&rs(V2)].0, 5);
    let pauses = w.events.iter().filter(|e| e.starts_with("RolloutPaused")).count();
    assert_eq!(pauses, 1, "one pause per update: {:?}", w.events);
}

#[test]
fn scaling_while_an_old_replica_set_waits_out_its_delay() {
    let mut w = World::new(include_str!(
        "../../examples/seed/manifest13-canary-with-istio-virtual-service-test-case.yaml"
    ));
    w.settle();
    w.set_image("ghcr.io/ssup2/mock-go-server:2.0.0");
    w.settle();
    w.promote_full_now();
    w.settle();
    // The old stable waits 30 s; an HPA scales the Rollout meanwhile.
    assert_eq!(w.replica_sets()[&rs(V1)].0, 5);
    w.edit_spec(|r| r.spec.replicas = Some(7));
    w.settle();
    assert_eq!(w.replica_sets()[&rs(V2)].0, 7);
    w.set_image("ghcr.io/ssup2/mock-go-server:3.0.0");
    w.settle();
    assert_eq!(
        w.phase(),
        ("Paused".into(), "CanaryPauseStep".into()),
        "a new update still proceeds normally"
    );
}

#[test]
fn ephemeral_metadata_follows_the_role() {
    let manifest = CANARY_UNDO_ABORT.replace(
        "      canaryService: mock-server-canary\n",
        "      canaryService: mock-server-canary\n      canaryMetadata: {labels: {role: canary}}\n      stableMetadata: {labels: {role: stable}}\n",
    );
    let mut w = World::new(&manifest);
    w.settle();
    let roles = |w: &World, hash: &str| -> Vec<String> {
        w.pods
            .iter()
            .filter(|p| {
                p.metadata
                    .labels
                    .as_ref()
                    .and_then(|l| l.get(keys::POD_TEMPLATE_HASH))
                    .map(String::as_str)
                    == Some(hash)
            })
            .map(|p| {
                p.metadata
                    .labels
                    .as_ref()
                    .and_then(|l| l.get("role").cloned())
                    .unwrap_or_default()
            })
            .collect()
    };
    assert_eq!(roles(&w, V1), vec!["stable"; 5]);
    w.set_image("ghcr.io/ssup2/mock-go-server:2.0.0");
    w.settle();
    assert_eq!(roles(&w, V2), vec!["canary"]);
    assert_eq!(roles(&w, V1), vec!["stable"; 4]);
    w.promote_full_now();
    w.settle();
    assert_eq!(
        roles(&w, V2),
        vec!["stable"; 5],
        "promoted pods are relabelled in place"
    );
}

#[test]
fn replica_set_failures_are_copied_to_the_rollout() {
    let mut w = World::new(CANARY_UNDO_ABORT);
    w.settle();
    let failure: k8s_openapi::api::apps::v1::ReplicaSetCondition =
        serde_json::from_value(serde_json::json!({
            "type": "ReplicaFailure", "status": "True", "reason": "FailedCreate",
            "message": "pods \"x\" is forbidden: exceeded quota"
        }))
        .expect("condition");
    if let Some(st) = w.replica_sets[0].status.as_mut() {
        st.conditions = Some(vec![failure]);
    }
    w.reconcile();
    let cond = w
        .rollout
        .status
        .as_ref()
        .and_then(|s| s.condition("ReplicaFailure").cloned())
        .expect("copied");
    assert_eq!(
        (cond.reason.as_str(), cond.message.as_str()),
        ("FailedCreate", "pods \"x\" is forbidden: exceeded quota")
    );
}

// ---- status.duration --------------------------------------------------------------------------

/// `status.duration` in seconds since the World's start: `(rolloutStartedAt, finishedAt,
/// completionStatus, totalManualPauseDurationSeconds, manualPauseStartedAt)`.
type DurationSummary = (Option<i64>, Option<i64>, Option<String>, Option<i64>, Option<i64>);

impl World {
    fn duration(&self) -> shared_types::rollout::RolloutDuration {
        self.rollout
            .status
            .as_ref()
            .and_then(|s| s.duration.clone())
            .expect("status.duration is recorded")
    }

    /// `(seconds since the World's start of rolloutStartedAt, finishedAt), completionStatus,
    /// totalManualPauseDurationSeconds, manualPauseStartedAt` of the record.
    fn duration_summary(&self) -> DurationSummary {
        let d = self.duration();
        let base = 1_700_000_000;
        let secs = |t: &Option<Time>| t.as_ref().map(|t| t.0.as_second() - base);
        (
            secs(&d.rollout_started_at),
            secs(&d.finished_at),
            d.completion_status.clone(),
            d.total_manual_pause_duration_seconds,
            secs(&d.manual_pause_started_at),
        )
    }
}

fn promoted(start: i64, end: i64, status: &str, paused: Option<i64>) -> DurationSummary {
    (Some(start), Some(end), Some(status.into()), paused, None)
}

#[test]
fn duration_canary_initial_rollout_and_timed_pause() {
    let mut w = World::new(CANARY_SUCCESS);
    w.settle();
    assert_eq!(w.duration_summary(), promoted(0, 0, "Promoted", None));
    w.advance(100);
    w.set_image("ghcr.io/ssup2/mock-go-server:2.0.0");
    w.settle();
    // The seed's 2.2.2 first waits at `pause: {}` (manual)...
    assert_eq!(w.duration_summary(), (Some(100), None, None, None, Some(100)));
    w.advance(10);
    w.promote();
    w.settle();
    // ...then at `pause: {duration: 30s}`, which is not a manual pause.
    assert_eq!(w.phase(), ("Paused".into(), "CanaryPauseStep".into()));
    assert_eq!(w.duration_summary(), (Some(100), None, None, Some(10), None));
    w.advance(31);
    w.settle();
    assert_eq!(w.phase().0, "Healthy");
    assert_eq!(w.duration_summary(), promoted(100, 141, "Promoted", Some(10)));
}

#[test]
fn duration_indefinite_pauses_are_summed() {
    let mut w = World::new(CANARY_UNDO_ABORT);
    w.settle();
    w.advance(10);
    w.set_image("ghcr.io/ssup2/mock-go-server:2.0.0");
    w.settle();
    assert_eq!(w.phase(), ("Paused".into(), "CanaryPauseStep".into()));
    assert_eq!(w.duration_summary(), (Some(10), None, None, None, Some(10)));
    w.advance(25);
    w.promote();
    w.settle();
    assert_eq!(w.duration_summary(), (Some(10), None, None, Some(25), Some(35)));
    w.advance(5);
    w.promote();
    w.settle();
    assert_eq!(w.phase().0, "Healthy");
    assert_eq!(w.duration_summary(), promoted(10, 40, "Promoted", Some(30)));
    // Scaling afterwards keeps the record.
    w.advance(5);
    w.edit_spec(|r| r.spec.replicas = Some(3));
    w.settle();
    assert_eq!(w.duration_summary(), promoted(10, 40, "Promoted", Some(30)));
}

#[test]
fn duration_spec_paused_counts_as_manual() {
    let mut w = World::new(CANARY_SUCCESS);
    w.settle();
    w.advance(10);
    w.edit_spec(|r| r.spec.paused = Some(true));
    w.set_image("ghcr.io/ssup2/mock-go-server:2.0.0");
    w.settle();
    assert_eq!(w.duration_summary(), (Some(10), None, None, None, Some(10)));
    w.advance(7);
    w.edit_spec(|r| r.spec.paused = Some(false));
    w.settle();
    // Resumed, and at once paused again at the indefinite first step.
    assert_eq!(w.duration_summary(), (Some(10), None, None, Some(7), Some(17)));
}

#[test]
fn duration_promote_full_is_fast_promoted() {
    let mut w = World::new(CANARY_UNDO_ABORT);
    w.settle();
    w.advance(10);
    w.set_image("ghcr.io/ssup2/mock-go-server:2.0.0");
    w.settle();
    w.advance(4);
    w.promote_full_now();
    w.settle();
    assert_eq!(w.duration_summary(), promoted(10, 14, "FastPromoted", Some(4)));
}

#[test]
fn duration_abort_then_retry_starts_a_new_record() {
    let mut w = World::new(CANARY_UNDO_ABORT);
    w.settle();
    w.advance(10);
    w.set_image("ghcr.io/ssup2/mock-go-server:2.0.0");
    w.settle();
    w.advance(6);
    w.abort();
    w.settle();
    assert_eq!(w.phase().0, "Degraded");
    assert_eq!(w.duration_summary(), promoted(10, 16, "Aborted", Some(6)));
    w.advance(20);
    if let Some(s) = w.rollout.status.as_mut() {
        s.abort = Some(false);
    }
    w.settle();
    assert_eq!(w.phase(), ("Paused".into(), "CanaryPauseStep".into()));
    assert_eq!(w.duration_summary(), (Some(36), None, None, None, Some(36)));
}

#[test]
fn duration_superseded_update_starts_a_new_record() {
    let mut w = World::new(CANARY_UNDO_ABORT);
    w.settle();
    w.advance(10);
    w.set_image("ghcr.io/ssup2/mock-go-server:2.0.0");
    w.settle();
    w.advance(8);
    w.set_image("ghcr.io/ssup2/mock-go-server:3.0.0");
    w.settle();
    assert_eq!(w.duration_summary(), (Some(18), None, None, None, Some(18)));
    w.advance(2);
    w.promote_full_now();
    w.settle();
    assert_eq!(w.duration_summary(), promoted(18, 20, "FastPromoted", Some(2)));
}

#[test]
fn duration_rollback_to_stable_keeps_the_record_and_is_fast() {
    let mut w = World::new(CANARY_UNDO_ABORT);
    w.settle();
    w.advance(10);
    w.set_image("ghcr.io/ssup2/mock-go-server:2.0.0");
    w.settle();
    w.advance(5);
    w.undo();
    w.settle();
    assert_eq!(w.phase().0, "Healthy");
    assert_eq!(w.duration_summary(), promoted(10, 15, "FastRolledBack", Some(5)));
}

fn three_revisions(window: i32) -> World {
    let manifest = CANARY_UNDO_ABORT.replace(
        "  replicas: 5\n",
        &format!("  replicas: 5\n  rollbackWindow:\n    revisions: {window}\n"),
    );
    let mut w = World::new(&manifest);
    w.settle();
    for (i, image) in ["2.0.0", "3.0.0"].into_iter().enumerate() {
        w.advance(10);
        w.set_image(&format!("ghcr.io/ssup2/mock-go-server:{image}"));
        w.settle();
        if i == 1 {
            break;
        }
        w.promote_full_now();
        w.settle();
    }
    w
}

#[test]
fn duration_rollback_inside_the_window_is_fast() {
    // v1, v2 promoted (stable), v3 paused; back to v1: nothing between v1 and v2 → inside a
    // window of 1.
    let mut w = three_revisions(1);
    w.advance(3);
    w.edit_spec(|r| {
        if let Some(s) = r.spec.template.as_mut().and_then(|t| t.spec.as_mut()) {
            s.containers[0].image = Some("ghcr.io/ssup2/mock-go-server:1.0.0".into());
        }
    });
    w.settle();
    assert_eq!(w.phase().0, "Healthy");
    assert_eq!(w.duration_summary(), promoted(20, 23, "FastRolledBack", Some(3)));
}

#[test]
fn duration_rollback_outside_the_window_runs_the_steps() {
    let mut w = three_revisions(1);
    w.promote_full_now();
    w.settle();
    // v1, v2, v3 promoted; v4 paused; back to v1: v2 lies between v1 and v3 → outside.
    w.advance(10);
    w.set_image("ghcr.io/ssup2/mock-go-server:4.0.0");
    w.settle();
    w.advance(2);
    w.edit_spec(|r| {
        if let Some(s) = r.spec.template.as_mut().and_then(|t| t.spec.as_mut()) {
            s.containers[0].image = Some("ghcr.io/ssup2/mock-go-server:1.0.0".into());
        }
    });
    w.settle();
    assert_eq!(w.phase(), ("Paused".into(), "CanaryPauseStep".into()));
    assert_eq!(
        w.duration_summary(),
        (Some(30), None, Some("RolledBack".into()), Some(2), Some(32))
    );
    w.advance(4);
    w.promote_full_now();
    w.settle();
    assert_eq!(w.duration_summary(), promoted(30, 36, "RolledBack", Some(6)));
}

#[test]
fn duration_blue_green_manual_and_auto_promotion() {
    let mut w = World::new(&blue_green());
    w.settle();
    assert_eq!(w.duration_summary(), promoted(0, 0, "Promoted", None));
    w.advance(10);
    w.set_image("ghcr.io/ssup2/mock-go-server:2.0.0");
    w.settle();
    // autoPromotionEnabled: false waits for a person.
    assert_eq!(w.duration_summary(), (Some(10), None, None, None, Some(10)));
    w.advance(12);
    w.promote();
    w.settle();
    assert_eq!(w.duration_summary(), promoted(10, 22, "Promoted", Some(12)));

    let auto = blue_green().replace("autoPromotionEnabled: false", "autoPromotionSeconds: 20");
    let mut w = World::new(&auto);
    w.settle();
    w.advance(10);
    w.set_image("ghcr.io/ssup2/mock-go-server:2.0.0");
    w.settle();
    assert_eq!(w.phase(), ("Paused".into(), "BlueGreenPause".into()));
    assert_eq!(w.duration_summary(), (Some(10), None, None, None, None));
    w.advance(21);
    w.settle();
    assert_eq!(w.phase().0, "Healthy");
    assert_eq!(w.duration_summary(), promoted(10, 31, "Promoted", None));
}

// ---- requeue timing ------------------------------------------------------------------------

#[test]
fn nothing_pending_means_no_requeue() {
    for manifest in [CANARY_SUCCESS.to_string(), blue_green()] {
        let mut w = World::new(&manifest);
        w.settle();
        assert_eq!(w.phase().0, "Healthy");
        assert_eq!(
            w.requeue_after(),
            None,
            "a Healthy Rollout is only looked at on a change"
        );
    }
    // Waiting for a person (indefinite pause) is not something due either.
    let mut w = World::new(CANARY_UNDO_ABORT);
    w.settle();
    w.set_image("ghcr.io/ssup2/mock-go-server:2.0.0");
    w.settle();
    assert_eq!(w.phase(), ("Paused".into(), "CanaryPauseStep".into()));
    assert_eq!(w.requeue_after(), None);
}

#[test]
fn a_timed_pause_requeues_when_it_ends() {
    let mut w = World::new(CANARY_SUCCESS);
    w.settle();
    w.set_image("ghcr.io/ssup2/mock-go-server:2.0.0");
    w.settle();
    w.promote();
    w.settle();
    // At `pause: {duration: 30s}`, 10 s in: look again just after the remaining 20 s.
    w.advance(10);
    let after = w.requeue_after().expect("a timed pause is due");
    assert!(
        (std::time::Duration::from_secs(20)..=std::time::Duration::from_secs(22)).contains(&after),
        "{after:?}"
    );
}

#[test]
fn a_scale_down_delay_requeues_when_it_ends() {
    let mut w = World::new(&blue_green());
    w.settle();
    w.set_image("ghcr.io/ssup2/mock-go-server:2.0.0");
    w.settle();
    w.promote();
    w.settle();
    // The old active ReplicaSet waits out scaleDownDelaySeconds (30 s).
    w.advance(5);
    let after = w.requeue_after().expect("a scale-down is due");
    assert!(
        (std::time::Duration::from_secs(25)..=std::time::Duration::from_secs(27)).contains(&after),
        "{after:?}"
    );
}

#[test]
fn new_pods_not_yet_available_requeue_at_the_progress_deadline() {
    let manifest = CANARY_SUCCESS.replace(
        "  replicas: 5\n",
        "  replicas: 5\n  progressDeadlineSeconds: 120\n",
    );
    let mut w = World::new(&manifest);
    w.settle();
    w.broken.push(V2.into());
    w.set_image("ghcr.io/ssup2/mock-go-server:2.0.0");
    w.settle();
    assert_eq!(
        w.phase(),
        ("Progressing".into(), "more replicas need to be updated".into())
    );
    // 30 s into waiting for the canary's pods: look again when the remaining 90 s are up, not
    // only on a change (a pod that never becomes available sends none).
    w.advance(30);
    let after = w.requeue_after().expect("the progress deadline is due");
    assert!(
        (std::time::Duration::from_secs(90)..=std::time::Duration::from_secs(92)).contains(&after),
        "{after:?}"
    );
    // Then the deadline has passed.
    w.advance(91);
    w.settle();
    let progressing = w
        .rollout
        .status
        .as_ref()
        .and_then(|s| s.condition("Progressing").cloned())
        .expect("condition");
    assert_eq!(progressing.reason, "ProgressDeadlineExceeded");
}

#[test]
fn a_future_restart_requeues_when_it_is_due() {
    let mut w = World::new(CANARY_SUCCESS);
    w.settle();
    let before: Vec<String> = w.pods.iter().filter_map(|p| p.metadata.name.clone()).collect();
    let restart_at = Time(w.now + k8s_openapi::jiff::SignedDuration::from_secs(60));
    w.edit_spec(|r| r.spec.restart_at = Some(restart_at.clone()));
    w.settle();
    assert_eq!(
        w.pods
            .iter()
            .filter_map(|p| p.metadata.name.clone())
            .collect::<Vec<_>>(),
        before,
        "no pod is restarted before spec.restartAt"
    );
    w.advance(20);
    let after = w.requeue_after().expect("the restart is due");
    assert!(
        (std::time::Duration::from_secs(40)..=std::time::Duration::from_secs(42)).contains(&after),
        "{after:?}"
    );
    // At the time, the pods are replaced.
    w.advance(41);
    for _ in 0..20 {
        w.advance(1);
        w.settle();
    }
    assert!(
        w.pods
            .iter()
            .all(|p| !before.contains(p.metadata.name.as_ref().unwrap()))
    );
    assert_eq!(
        w.rollout.status.as_ref().and_then(|s| s.restarted_at.clone()),
        Some(restart_at)
    );
}

//! The controller runtime under faults and at rest, on the real control plane: a standby takes
//! over when the leader is killed mid-rollout, a Rollout deleted while the controller was down
//! still gets its traffic restored, and idle Rollouts cost no reconciles.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, ensure};
use e2e::{
    TestNamespace, http_get,
    rollout_ops::{self, promote, set_image, status, wait_phase},
    start_rollout_controller, wait_until, with_namespace,
};
use k8s_openapi::api::{apps::v1::ReplicaSet, core::v1::Event, core::v1::Service};
use kube::{
    Api, ResourceExt,
    api::{DeleteParams, ListParams},
};
use serde_json::json;
use shared_types::rollout::Rollout;

const V2_IMAGE: &str = "ghcr.io/ssup2/mock-go-server:2.0.0";

/// The value of an unlabelled series in the controller's `/metrics`.
async fn metric(port: u16, name: &str) -> Result<f64> {
    let (_, body) = http_get(port, "/metrics").await?;
    body.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
        .with_context(|| format!("{name} not in /metrics"))
}

/// `/readyz` body (`ok: leader` / `ok: standby`).
async fn role(port: u16) -> Result<String> {
    Ok(http_get(port, "/readyz").await?.1)
}

/// A canary with manual pauses between weight steps, no traffic routing.
fn canary(name: &str, replicas: i32) -> serde_json::Value {
    json!({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "strategy": {"canary": {"steps": [
                {"setWeight": 25}, {"pause": {}}, {"setWeight": 50}, {"pause": {}}
            ]}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "app", "image": "ghcr.io/ssup2/mock-go-server:1.0.0"}]}
            }
        }
    })
}

/// Waits until the Rollout is Paused at `step`.
async fn paused_at(ns: &TestNamespace, name: &str, step: i32) -> Result<()> {
    wait_until(
        &format!("{name} paused at step {step}"),
        rollout_ops::TIMEOUT,
        || async {
            let (phase, message) = rollout_ops::phase(ns, name).await?;
            let at = status(ns, name).await?.current_step_index;
            Ok(if phase == "Paused" && at == Some(step) {
                Ok(())
            } else {
                Err(format!("{phase} ({message}) at step {at:?}"))
            })
        },
    )
    .await
}

#[tokio::test]
#[ignore = "needs the local cluster: run scripts/test.sh"]
async fn standby_continues_the_rollout_when_the_leader_is_killed() -> Result<()> {
    with_namespace("leader", async |ns| {
        const LEASE: Duration = Duration::from_secs(4);
        let flags = [
            "--leader-election-lease-duration",
            "4s",
            "--leader-election-renew-deadline",
            "3s",
            "--leader-election-retry-period",
            "500ms",
        ];
        let (first, first_port) = start_rollout_controller(ns, &flags).await?;
        wait_until(
            "the first controller to lead",
            Duration::from_secs(30),
            || async {
                let r = role(first_port).await?;
                Ok(if r == "ok: leader" { Ok(()) } else { Err(r) })
            },
        )
        .await?;
        let (second, second_port) = start_rollout_controller(ns, &flags).await?;
        ensure!(
            role(second_port).await? == "ok: standby",
            "the second process stands by"
        );
        ensure!(metric(first_port, "controller_leader").await? == 1.0);
        ensure!(metric(second_port, "controller_leader").await? == 0.0);

        ns.apply_value(canary("web", 4)).await?;
        wait_phase(ns, "web", "Healthy").await?;
        set_image(ns, "web", V2_IMAGE).await?;
        paused_at(ns, "web", 1).await?;
        let replica_sets: Api<ReplicaSet> = ns.api();
        let before: Vec<(String, Option<String>)> = replica_sets
            .list(&ListParams::default())
            .await?
            .items
            .iter()
            .map(|rs| (rs.name_any(), rs.uid()))
            .collect();
        ensure!(before.len() == 2, "old and new ReplicaSet: {before:?}");

        // The leader dies without releasing the lease; the rollout is promoted meanwhile.
        let (mut leader, standby_port) = (first, second_port);
        leader.kill().await?;
        let killed = Instant::now();
        promote(ns, "web").await?;
        paused_at(ns, "web", 3).await?;
        let took = killed.elapsed();
        println!("the standby continued the rollout {took:?} after the leader was killed");
        ensure!(
            took <= LEASE + Duration::from_secs(5),
            "the standby continued {took:?} after the kill (lease 4 s)"
        );
        ensure!(role(standby_port).await? == "ok: leader");
        ensure!(metric(standby_port, "controller_leader").await? == 1.0);

        // Nothing done twice: the same two ReplicaSets, each step completed once.
        let after: Vec<(String, Option<String>)> = replica_sets
            .list(&ListParams::default())
            .await?
            .items
            .iter()
            .map(|rs| (rs.name_any(), rs.uid()))
            .collect();
        ensure!(before == after, "ReplicaSets before {before:?}, after {after:?}");
        let events: Api<Event> = ns.api();
        let steps: Vec<String> = events
            .list(&ListParams::default())
            .await?
            .items
            .into_iter()
            .filter(|e| e.reason.as_deref() == Some("RolloutStepCompleted"))
            .map(|e| {
                let n = e.count.unwrap_or(1);
                format!("{} x{n}", e.message.unwrap_or_default())
            })
            .collect();
        let mut sorted = steps.clone();
        sorted.sort();
        ensure!(
            sorted
                == [
                    "Rollout step 1/4 completed (setWeight: 25) x1",
                    "Rollout step 2/4 completed (pause) x1",
                    "Rollout step 3/4 completed (setWeight: 50) x1",
                ],
            "step events {steps:?}"
        );
        drop(second);
        Ok(())
    })
    .await
}

#[tokio::test]
#[ignore = "needs the local cluster: run scripts/test.sh"]
async fn a_rollout_deleted_while_the_controller_is_down_gets_its_traffic_restored() -> Result<()> {
    with_namespace("delete-down", async |ns| {
        let (mut controller, _) = start_rollout_controller(ns, &[]).await?;
        ns.apply(include_str!(
            "../../examples/seed/manifest13-canary-with-istio-virtual-service-test-case.yaml"
        ))
        .await?;
        wait_phase(ns, "mock-server", "Healthy").await?;
        set_image(ns, "mock-server", V2_IMAGE).await?;
        paused_at(ns, "mock-server", 1).await?;
        let weights = |ns: &TestNamespace| {
            let vs = ns.istio("VirtualService");
            async move {
                let vs = vs.get("mock-server").await?;
                let route = vs.data["spec"]["http"][0]["route"].clone();
                let weight = |host: &str| {
                    route
                        .as_array()
                        .into_iter()
                        .flatten()
                        .find(|d| d["destination"]["host"] == host)
                        .and_then(|d| d["weight"].as_i64())
                        .unwrap_or(0)
                };
                Ok::<_, anyhow::Error>((weight("mock-server-stable"), weight("mock-server-canary")))
            }
        };
        ensure!(weights(ns).await? == (80, 20), "canary at 20%");

        controller.kill().await?;
        let rollouts: Api<Rollout> = ns.api();
        rollouts
            .delete("mock-server", &DeleteParams::background())
            .await?;
        // Held by the finalizer until a controller restores the traffic.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let held = rollouts.get_opt("mock-server").await?;
        ensure!(
            held.as_ref()
                .is_some_and(|r| r.metadata.deletion_timestamp.is_some()),
            "the Rollout waits for its controller"
        );
        ensure!(
            weights(ns).await? == (80, 20),
            "nothing changed while the controller was down"
        );

        let (_restarted, _) = start_rollout_controller(ns, &[]).await?;
        let services: Api<Service> = ns.api();
        wait_until(
            "traffic restored and Services released",
            rollout_ops::TIMEOUT,
            || async {
                let w = weights(ns).await?;
                let gone = rollouts.get_opt("mock-server").await?.is_none();
                let mut selectors = Vec::new();
                for name in ["mock-server-stable", "mock-server-canary"] {
                    let svc = services.get(name).await?;
                    let managed = svc
                        .annotations()
                        .contains_key("argo-rollouts.argoproj.io/managed-by-rollouts");
                    let hash = svc
                        .spec
                        .and_then(|s| s.selector)
                        .unwrap_or_default()
                        .contains_key("rollouts-pod-template-hash");
                    selectors.push((name, managed, hash));
                }
                let released = selectors.iter().all(|(_, managed, hash)| !managed && !hash);
                Ok(if w == (100, 0) && gone && released {
                    Ok(())
                } else {
                    Err(format!(
                        "weights {w:?}, Rollout gone {gone}, Services {selectors:?}"
                    ))
                })
            },
        )
        .await
    })
    .await
}

#[tokio::test]
#[ignore = "needs the local cluster: run scripts/test.sh"]
async fn idle_rollouts_are_not_reconciled_again() -> Result<()> {
    with_namespace("idle", async |ns| {
        let (_controller, port) = start_rollout_controller(ns, &[]).await?;
        let names: Vec<String> = (0..20).map(|i| format!("idle-{i}")).collect();
        for name in &names {
            ns.apply_value(canary(name, 1)).await?;
        }
        for name in &names {
            wait_phase(ns, name, "Healthy").await?;
        }
        // Let the last status writes and their watch events settle.
        tokio::time::sleep(Duration::from_secs(3)).await;
        const RECONCILES: &str = "rollout_controller_reconcile_duration_seconds_count";
        let before = metric(port, RECONCILES).await?;
        tokio::time::sleep(Duration::from_secs(60)).await;
        let during = metric(port, RECONCILES).await? - before;
        println!("{during} reconciles of 20 idle Rollouts in 60 s ({before} before)");
        // Nothing is due for a Healthy Rollout: no periodic requeue before the 15 min resync.
        ensure!(
            during <= 5.0,
            "{during} reconciles of 20 idle Rollouts in 60 s (before: {before})"
        );
        Ok(())
    })
    .await
}

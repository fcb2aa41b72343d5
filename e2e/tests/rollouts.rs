//! The seed's test cases 2.2.1-2.2.3 and the rollout lifecycle on the real control plane, with
//! the rollout controller running as a process. Operations are done with the same API patches
//! the `kubectl argo rollouts` plugin sends (argo-semantics.md 3.9).

use std::{collections::BTreeMap, time::Duration};

use anyhow::{Context, Result, ensure};
use e2e::{
    TestNamespace, argo, expect_get_rollout, http_get, start_rollout_controller, wait_until, with_namespace,
};
use k8s_openapi::api::{apps::v1::ReplicaSet, core::v1::Service};
use kube::{
    Api, ResourceExt,
    api::{DeleteParams, ListParams, Patch, PatchParams},
};
use serde_json::json;
use shared_types::rollout::Rollout;

const TIMEOUT: Duration = Duration::from_secs(90);
const V1: &str = "6579c6cc98";
const V2: &str = "7c6fcfb847";
const V3: &str = "6fcb56df9b";

/// The seed's 2.2.2 manifest (Rollout and its three Services), with the timed pause shortened
/// to `pause_secs` seconds (the seed waits 30 s).
fn canary_success(pause_secs: u32) -> String {
    include_str!("../../examples/seed/manifest11-canary-success-test-case.yaml").replace(
        "pause: {duration: 30s}",
        &format!("pause: {{duration: {pause_secs}s}}"),
    )
}

/// The seed's 2.2.3 manifest: the same canary with two indefinite pauses.
fn canary_undo_abort() -> String {
    include_str!("../../examples/seed/manifest12-canary-with-undo-and-abort-test-case.yaml").to_string()
}

/// The seed's 2.2.1 manifest. It says `replicas: 3` while its transcript shows 5 desired pods;
/// the test follows the transcript.
fn blue_green() -> String {
    include_str!("../../examples/seed/manifest10-blue-green-test-case.yaml")
        .replace("replicas: 3", "replicas: 5")
}

/// What the transcript shows after an operation.
#[derive(Debug, Default)]
struct Expect<'a> {
    phase: &'a str,
    message: &'a str,
    step: Option<i32>,
    /// hash -> (spec replicas == available replicas, revision); empty: not checked
    replica_sets: &'a [(&'a str, i32, i64)],
    /// service -> selected hash
    selectors: &'a [(&'a str, &'a str)],
    /// (current, updated, ready, available)
    counts: Option<(i32, i32, i32, i32)>,
}

async fn observe(ns: &TestNamespace) -> Result<String> {
    let rollouts: Api<Rollout> = ns.api();
    let ro = rollouts.get("mock-server").await?;
    let st = ro.status.clone().unwrap_or_default();
    let rs_api: Api<ReplicaSet> = ns.api();
    let mut rss = BTreeMap::new();
    for rs in rs_api.list(&ListParams::default()).await?.items {
        let spec = rs.spec.replicas.unwrap_or(0);
        let available = rs.status.as_ref().and_then(|s| s.available_replicas).unwrap_or(0);
        let rev = rs
            .annotations()
            .get("rollout.argoproj.io/revision")
            .cloned()
            .unwrap_or_default();
        rss.insert(rs.name_any(), (spec, available, rev));
    }
    let svc_api: Api<Service> = ns.api();
    let mut sels = BTreeMap::new();
    for svc in svc_api.list(&ListParams::default()).await?.items {
        let sel = svc
            .spec
            .and_then(|s| s.selector)
            .unwrap_or_default()
            .get("rollouts-pod-template-hash")
            .cloned()
            .unwrap_or_default();
        sels.insert(svc.metadata.name.unwrap_or_default(), sel);
    }
    Ok(format!(
        "phase={:?} message={:?} step={:?} counts=({:?},{:?},{:?},{:?}) observedGen={:?}/{:?} rs={rss:?} selectors={sels:?}",
        st.phase,
        st.message,
        st.current_step_index,
        st.replicas,
        st.updated_replicas,
        st.ready_replicas,
        st.available_replicas,
        st.observed_generation,
        ro.metadata.generation
    ))
}

async fn matches(ns: &TestNamespace, want: &Expect<'_>) -> Result<std::result::Result<(), String>> {
    let rollouts: Api<Rollout> = ns.api();
    let ro = rollouts.get("mock-server").await?;
    let st = ro.status.clone().unwrap_or_default();
    let seen = || observe(ns);
    if st.observed_generation != ro.metadata.generation.map(|g| g.to_string())
        || st.phase.as_deref() != Some(want.phase)
        || st.message.as_deref().unwrap_or_default() != want.message
        || (want.step.is_some() && st.current_step_index != want.step)
    {
        return Ok(Err(seen().await?));
    }
    if let Some((c, u, r, a)) = want.counts
        && (
            st.replicas,
            st.updated_replicas,
            st.ready_replicas,
            st.available_replicas,
        ) != (Some(c), Some(u), Some(r), Some(a))
    {
        return Ok(Err(seen().await?));
    }
    let rs_api: Api<ReplicaSet> = ns.api();
    let rss = rs_api.list(&ListParams::default()).await?.items;
    if !want.replica_sets.is_empty() && rss.len() != want.replica_sets.len() {
        return Ok(Err(seen().await?));
    }
    for (hash, replicas, revision) in want.replica_sets {
        let name = format!("mock-server-{hash}");
        let Some(rs) = rss
            .iter()
            .find(|rs| rs.metadata.name.as_deref() == Some(name.as_str()))
        else {
            return Ok(Err(seen().await?));
        };
        let spec = rs.spec.replicas.unwrap_or(0);
        let available = rs.status.as_ref().and_then(|s| s.available_replicas).unwrap_or(0);
        let rev = rs
            .annotations()
            .get("rollout.argoproj.io/revision")
            .cloned()
            .unwrap_or_default();
        if spec != *replicas || available != *replicas || rev != revision.to_string() {
            return Ok(Err(seen().await?));
        }
    }
    let svc_api: Api<Service> = ns.api();
    for (svc, hash) in want.selectors {
        let s = svc_api.get(svc).await?;
        let sel = s.spec.and_then(|s| s.selector).unwrap_or_default();
        let managed = s
            .metadata
            .annotations
            .unwrap_or_default()
            .get("argo-rollouts.argoproj.io/managed-by-rollouts")
            .cloned();
        if sel.get("rollouts-pod-template-hash").map(String::as_str) != Some(*hash)
            || sel.get("app").map(String::as_str) != Some("mock-server")
            || managed.as_deref() != Some("mock-server")
        {
            return Ok(Err(seen().await?));
        }
    }
    Ok(Ok(()))
}

async fn expect(ns: &TestNamespace, what: &str, want: Expect<'_>) -> Result<()> {
    wait_until(what, TIMEOUT, || matches(ns, &want)).await
}

/// `kubectl argo rollouts set image mock-server mock-server=IMAGE`
async fn set_image(ns: &TestNamespace, image: &str) -> Result<()> {
    argo(
        ns,
        &["set", "image", "mock-server", &format!("mock-server={image}")],
    )
    .await
    .map(drop)
}

/// `kubectl argo rollouts promote mock-server [--full]`
async fn promote(ns: &TestNamespace) -> Result<()> {
    argo(ns, &["promote", "mock-server"]).await.map(drop)
}

async fn promote_full(ns: &TestNamespace) -> Result<()> {
    argo(ns, &["promote", "mock-server", "--full"]).await.map(drop)
}

/// `kubectl argo rollouts undo mock-server`: back to the previous revision's template.
async fn undo(ns: &TestNamespace) -> Result<()> {
    argo(ns, &["undo", "mock-server"]).await.map(drop)
}

/// `kubectl argo rollouts abort mock-server`
async fn abort(ns: &TestNamespace) -> Result<()> {
    argo(ns, &["abort", "mock-server"]).await.map(drop)
}

/// `kubectl argo rollouts retry rollout mock-server`
async fn retry(ns: &TestNamespace) -> Result<()> {
    argo(ns, &["retry", "rollout", "mock-server"]).await.map(drop)
}

#[tokio::test]
#[ignore = "needs the local cluster: run scripts/test.sh"]
async fn seed_2_2_1_blue_green() -> Result<()> {
    with_namespace("bluegreen", async |ns| {
        let (_controller, _) = start_rollout_controller(ns, &[]).await?;
        ns.apply(&blue_green()).await?;
        expect(
            ns,
            "initial deploy Healthy",
            Expect {
                phase: "Healthy",
                replica_sets: &[(V1, 5, 1)],
                selectors: &[("mock-server-active", V1), ("mock-server-preview", V1)],
                counts: Some((5, 5, 5, 5)),
                ..Default::default()
            },
        )
        .await?;
        expect_get_rollout(ns, "mock-server", "bluegreen_1").await?;
        set_image(ns, "ghcr.io/ssup2/mock-go-server:2.0.0").await?;
        expect(
            ns,
            "2.0.0 previewed and paused",
            Expect {
                phase: "Paused",
                message: "BlueGreenPause",
                replica_sets: &[(V1, 5, 1), (V2, 5, 2)],
                selectors: &[("mock-server-active", V1), ("mock-server-preview", V2)],
                counts: Some((10, 5, 5, 5)),
                ..Default::default()
            },
        )
        .await?;
        expect_get_rollout(ns, "mock-server", "bluegreen_2").await?;
        set_image(ns, "ghcr.io/ssup2/mock-go-server:3.0.0").await?;
        // Revision 2 is scaled down after its 30 s scale-down delay.
        expect(
            ns,
            "3.0.0 previewed, revision 2 scaled down",
            Expect {
                phase: "Paused",
                message: "BlueGreenPause",
                replica_sets: &[(V1, 5, 1), (V2, 0, 2), (V3, 5, 3)],
                selectors: &[("mock-server-active", V1), ("mock-server-preview", V3)],
                counts: Some((10, 5, 5, 5)),
                ..Default::default()
            },
        )
        .await?;
        expect_get_rollout(ns, "mock-server", "bluegreen_3").await?;
        promote(ns).await?;
        expect(
            ns,
            "promoted to 3.0.0",
            Expect {
                phase: "Healthy",
                replica_sets: &[(V1, 0, 1), (V2, 0, 2), (V3, 5, 3)],
                selectors: &[("mock-server-active", V3), ("mock-server-preview", V3)],
                counts: Some((5, 5, 5, 5)),
                ..Default::default()
            },
        )
        .await?;
        expect_get_rollout(ns, "mock-server", "bluegreen_4").await
    })
    .await
}

#[tokio::test]
#[ignore = "needs the local cluster: run scripts/test.sh"]
async fn seed_2_2_2_canary_success() -> Result<()> {
    with_namespace("canary", async |ns| {
        let (_controller, port) = start_rollout_controller(ns, &[]).await?;
        // The seed pauses 30 s; 10 s keeps a real timed pause while saving time.
        ns.apply(&canary_success(10)).await?;
        let both_v1 = [("mock-server-stable", V1), ("mock-server-canary", V1)];
        expect(
            ns,
            "initial deploy Healthy",
            Expect {
                phase: "Healthy",
                step: Some(5),
                replica_sets: &[(V1, 5, 1)],
                selectors: &both_v1,
                counts: Some((5, 5, 5, 5)),
                ..Default::default()
            },
        )
        .await?;
        expect_get_rollout(ns, "mock-server", "canary_success_1").await?;
        set_image(ns, "ghcr.io/ssup2/mock-go-server:2.0.0").await?;
        expect(
            ns,
            "2.0.0 at 20%",
            Expect {
                phase: "Paused",
                message: "CanaryPauseStep",
                step: Some(1),
                replica_sets: &[(V1, 4, 1), (V2, 1, 2)],
                selectors: &[("mock-server-stable", V1), ("mock-server-canary", V2)],
                counts: Some((5, 1, 5, 5)),
            },
        )
        .await?;
        expect_get_rollout(ns, "mock-server", "canary_success_2").await?;
        set_image(ns, "ghcr.io/ssup2/mock-go-server:3.0.0").await?;
        expect(
            ns,
            "3.0.0 at 20%, revision 2 scaled down",
            Expect {
                phase: "Paused",
                message: "CanaryPauseStep",
                step: Some(1),
                replica_sets: &[(V1, 4, 1), (V2, 0, 2), (V3, 1, 3)],
                selectors: &[("mock-server-stable", V1), ("mock-server-canary", V3)],
                counts: Some((5, 1, 5, 5)),
            },
        )
        .await?;
        expect_get_rollout(ns, "mock-server", "canary_success_3").await?;
        promote(ns).await?;
        expect(
            ns,
            "3.0.0 at 40%",
            Expect {
                phase: "Paused",
                message: "CanaryPauseStep",
                step: Some(3),
                replica_sets: &[(V1, 3, 1), (V2, 0, 2), (V3, 2, 3)],
                selectors: &[("mock-server-stable", V1), ("mock-server-canary", V3)],
                counts: Some((5, 2, 5, 5)),
            },
        )
        .await?;
        expect_get_rollout(ns, "mock-server", "canary_success_4").await?;
        expect(
            ns,
            "timed pause over, 3.0.0 promoted",
            Expect {
                phase: "Healthy",
                step: Some(5),
                replica_sets: &[(V1, 0, 1), (V2, 0, 2), (V3, 5, 3)],
                selectors: &[("mock-server-stable", V3), ("mock-server-canary", V3)],
                counts: Some((5, 5, 5, 5)),
                ..Default::default()
            },
        )
        .await?;
        expect_get_rollout(ns, "mock-server", "canary_success_5").await?;
        let plain: Api<Service> = ns.api();
        let sel = plain
            .get("mock-server")
            .await?
            .spec
            .and_then(|s| s.selector)
            .unwrap_or_default();
        ensure!(
            !sel.contains_key("rollouts-pod-template-hash"),
            "the main Service must be left alone: {sel:?}"
        );
        let (status, body) = http_get(port, "/metrics").await?;
        ensure!(status == 200, "/metrics answered {status}");
        for needle in [
            "rollout_info{",
            "phase=\"Completed\"",
            "rollout_info_replicas_available{",
            "rollout_reconcile_bucket{",
        ] {
            ensure!(body.contains(needle), "/metrics lacks {needle}:\n{body}");
        }
        Ok(())
    })
    .await
}

#[tokio::test]
#[ignore = "needs the local cluster: run scripts/test.sh"]
async fn seed_2_2_3_canary_undo_and_abort() -> Result<()> {
    with_namespace("undo-abort", async |ns| {
        let (_controller, _) = start_rollout_controller(ns, &[]).await?;
        ns.apply(&canary_undo_abort()).await?;
        expect(
            ns,
            "initial deploy",
            Expect {
                phase: "Healthy",
                step: Some(5),
                replica_sets: &[(V1, 5, 1)],
                ..Default::default()
            },
        )
        .await?;
        expect_get_rollout(ns, "mock-server", "undo_abort_1").await?;
        set_image(ns, "ghcr.io/ssup2/mock-go-server:2.0.0").await?;
        expect(
            ns,
            "2.0.0 at 20%",
            Expect {
                phase: "Paused",
                message: "CanaryPauseStep",
                step: Some(1),
                replica_sets: &[(V1, 4, 1), (V2, 1, 2)],
                ..Default::default()
            },
        )
        .await?;
        expect_get_rollout(ns, "mock-server", "undo_abort_2").await?;
        set_image(ns, "ghcr.io/ssup2/mock-go-server:3.0.0").await?;
        expect(
            ns,
            "3.0.0 at 20%",
            Expect {
                phase: "Paused",
                message: "CanaryPauseStep",
                step: Some(1),
                replica_sets: &[(V1, 4, 1), (V2, 0, 2), (V3, 1, 3)],
                ..Default::default()
            },
        )
        .await?;
        expect_get_rollout(ns, "mock-server", "undo_abort_3").await?;
        undo(ns).await?;
        expect(
            ns,
            "undo: 2.0.0 back as revision 4",
            Expect {
                phase: "Paused",
                message: "CanaryPauseStep",
                step: Some(1),
                replica_sets: &[(V1, 4, 1), (V2, 1, 4), (V3, 0, 3)],
                selectors: &[("mock-server-stable", V1), ("mock-server-canary", V2)],
                counts: Some((5, 1, 5, 5)),
            },
        )
        .await?;
        expect_get_rollout(ns, "mock-server", "undo_abort_4").await?;
        undo(ns).await?;
        expect(
            ns,
            "undo again: 3.0.0 back as revision 5",
            Expect {
                phase: "Paused",
                message: "CanaryPauseStep",
                step: Some(1),
                replica_sets: &[(V1, 4, 1), (V2, 0, 4), (V3, 1, 5)],
                selectors: &[("mock-server-stable", V1), ("mock-server-canary", V3)],
                counts: Some((5, 1, 5, 5)),
            },
        )
        .await?;
        expect_get_rollout(ns, "mock-server", "undo_abort_5").await?;
        abort(ns).await?;
        expect(
            ns,
            "aborted",
            Expect {
                phase: "Degraded",
                message: "RolloutAborted: Rollout aborted update to revision 5",
                step: Some(0),
                replica_sets: &[(V1, 5, 1), (V2, 0, 4), (V3, 0, 5)],
                selectors: &[("mock-server-stable", V1), ("mock-server-canary", V1)],
                counts: Some((5, 0, 5, 5)),
            },
        )
        .await?;
        expect_get_rollout(ns, "mock-server", "undo_abort_6").await?;
        // retry: back to step 0 of revision 5.
        retry(ns).await?;
        expect(
            ns,
            "retried",
            Expect {
                phase: "Paused",
                message: "CanaryPauseStep",
                step: Some(1),
                replica_sets: &[(V1, 4, 1), (V2, 0, 4), (V3, 1, 5)],
                ..Default::default()
            },
        )
        .await?;
        // promote --full
        promote_full(ns).await?;
        expect(
            ns,
            "fully promoted",
            Expect {
                phase: "Healthy",
                step: Some(5),
                replica_sets: &[(V1, 0, 1), (V2, 0, 4), (V3, 5, 5)],
                selectors: &[("mock-server-stable", V3), ("mock-server-canary", V3)],
                ..Default::default()
            },
        )
        .await
    })
    .await
}

#[tokio::test]
#[ignore = "needs the local cluster: run scripts/test.sh"]
async fn pause_scale_and_delete() -> Result<()> {
    with_namespace("lifecycle", async |ns| {
        let (_controller, _) = start_rollout_controller(ns, &[]).await?;
        ns.apply(&canary_undo_abort()).await?;
        expect(
            ns,
            "initial deploy",
            Expect {
                phase: "Healthy",
                replica_sets: &[(V1, 5, 1)],
                ..Default::default()
            },
        )
        .await?;

        // kubectl argo rollouts pause: spec.paused halts the update.
        let rollouts: Api<Rollout> = ns.api();
        argo(ns, &["pause", "mock-server"]).await?;
        set_image(ns, "ghcr.io/ssup2/mock-go-server:2.0.0").await?;
        expect(
            ns,
            "manually paused",
            Expect {
                phase: "Paused",
                message: "manually paused",
                replica_sets: &[(V1, 5, 1)],
                ..Default::default()
            },
        )
        .await?;
        // kubectl argo rollouts promote also lifts a manual pause.
        promote(ns).await?;
        expect(
            ns,
            "resumed to the first pause step",
            Expect {
                phase: "Paused",
                message: "CanaryPauseStep",
                step: Some(1),
                replica_sets: &[(V1, 4, 1), (V2, 1, 2)],
                ..Default::default()
            },
        )
        .await?;
        promote_full(ns).await?;
        expect(
            ns,
            "promoted",
            Expect {
                phase: "Healthy",
                replica_sets: &[(V1, 0, 1), (V2, 5, 2)],
                ..Default::default()
            },
        )
        .await?;

        // kubectl scale rollout (the scale subresource, as an HPA would use it).
        let kubectl = std::env::var("ARGO_RS_KUBECTL").unwrap_or_else(|_| "kubectl".into());
        let out = std::process::Command::new(&kubectl)
            .arg("--kubeconfig")
            .arg(e2e::kubeconfig_path()?)
            .args(["-n", &ns.name, "scale", "rollout", "mock-server", "--replicas=7"])
            .output()?;
        ensure!(
            out.status.success(),
            "kubectl scale failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        expect(
            ns,
            "scaled to 7",
            Expect {
                phase: "Healthy",
                replica_sets: &[(V1, 0, 1), (V2, 7, 2)],
                counts: Some((7, 7, 7, 7)),
                ..Default::default()
            },
        )
        .await?;
        let ro = rollouts.get("mock-server").await?;
        let st = ro.status.unwrap_or_default();
        ensure!(
            st.hpa_replicas == Some(7) && st.selector.as_deref() == Some("app=mock-server"),
            "scale subresource fields: {:?} {:?}",
            st.hpa_replicas,
            st.selector
        );

        // Deleting the Rollout garbage-collects its ReplicaSets and releases the Services.
        rollouts
            .delete("mock-server", &DeleteParams::background())
            .await?;
        let rs_api: Api<ReplicaSet> = ns.api();
        let svc_api: Api<Service> = ns.api();
        wait_until("ReplicaSets gone and Services released", TIMEOUT, || async {
            let rss = rs_api.list(&ListParams::default()).await?.items.len();
            let mut injected = Vec::new();
            for svc in svc_api.list(&ListParams::default()).await?.items {
                let sel = svc.spec.clone().and_then(|s| s.selector).unwrap_or_default();
                let managed = svc
                    .metadata
                    .annotations
                    .clone()
                    .unwrap_or_default()
                    .contains_key("argo-rollouts.argoproj.io/managed-by-rollouts");
                if sel.contains_key("rollouts-pod-template-hash") || managed {
                    injected.push(svc.name_any());
                }
            }
            Ok(if rss == 0 && injected.is_empty() {
                Ok(())
            } else {
                Err(format!("{rss} ReplicaSets, still managed: {injected:?}"))
            })
        })
        .await
    })
    .await
}

#[tokio::test]
#[ignore = "needs the local cluster: run scripts/test.sh"]
async fn controller_restart_during_timed_pause_resumes() -> Result<()> {
    with_namespace("restart", async |ns| {
        let (mut controller, _) = start_rollout_controller(ns, &[]).await?;
        ns.apply(&canary_success(20)).await?;
        expect(
            ns,
            "initial deploy",
            Expect {
                phase: "Healthy",
                replica_sets: &[(V1, 5, 1)],
                ..Default::default()
            },
        )
        .await?;
        set_image(ns, "ghcr.io/ssup2/mock-go-server:2.0.0").await?;
        expect(
            ns,
            "first pause",
            Expect {
                phase: "Paused",
                step: Some(1),
                message: "CanaryPauseStep",
                ..Default::default()
            },
        )
        .await?;
        promote(ns).await?;
        expect(
            ns,
            "timed pause",
            Expect {
                phase: "Paused",
                step: Some(3),
                message: "CanaryPauseStep",
                replica_sets: &[(V1, 3, 1), (V2, 2, 2)],
                ..Default::default()
            },
        )
        .await?;
        let rollouts: Api<Rollout> = ns.api();
        let started = rollouts
            .get("mock-server")
            .await?
            .status
            .unwrap_or_default()
            .pause_conditions
            .unwrap_or_default()
            .first()
            .map(|c| c.start_time.clone())
            .context("pause condition")?;
        controller.kill().await?; // SIGKILL
        let (_again, _) = start_rollout_controller(ns, &[]).await?;
        // The pause keeps its start time; the update finishes without an extra ReplicaSet.
        let still = rollouts
            .get("mock-server")
            .await?
            .status
            .unwrap_or_default()
            .pause_conditions
            .unwrap_or_default()
            .first()
            .map(|c| c.start_time.clone());
        if let Some(still) = still {
            ensure!(
                still == started,
                "pause start time changed across the restart: {started:?} -> {still:?}"
            );
        }
        expect(
            ns,
            "promoted after the pause",
            Expect {
                phase: "Healthy",
                step: Some(5),
                replica_sets: &[(V1, 0, 1), (V2, 5, 2)],
                ..Default::default()
            },
        )
        .await
    })
    .await
}

#[tokio::test]
#[ignore = "needs the local cluster: run scripts/test.sh"]
async fn invalid_rollout_does_not_block_a_valid_one() -> Result<()> {
    with_namespace("invalid", async |ns| {
        let (_controller, _) = start_rollout_controller(ns, &[]).await?;
        let bad = canary_undo_abort().replace("mock-server", "broken").replacen("setWeight: 20", "setWeight: 150", 1);
        ns.apply(&bad).await?;
        ns.apply(&canary_undo_abort()).await?;
        expect(ns, "valid rollout healthy", Expect { phase: "Healthy", replica_sets: &[(V1, 5, 1)], ..Default::default() }).await?;
        let rollouts: Api<Rollout> = ns.api();
        wait_until("broken rollout reports InvalidSpec", TIMEOUT, || async {
            let st = rollouts.get("broken").await?.status.unwrap_or_default();
            let msg = st.message.unwrap_or_default();
            Ok(if st.phase.as_deref() == Some("Degraded")
                && msg == "InvalidSpec: The Rollout \"broken\" is invalid: spec.strategy.canary.steps[0].setWeight: Invalid value: 150: SetWeight needs to be between 0 and 100"
            {
                Ok(())
            } else {
                Err(format!("{:?} {msg}", st.phase))
            })
        })
        .await?;
        // Fixing the spec recovers.
        let fix = json!([{"op": "replace", "path": "/spec/strategy/canary/steps/0/setWeight", "value": 20}]);
        rollouts.patch("broken", &PatchParams::default(), &Patch::<()>::Json(serde_json::from_value(fix)?)).await?;
        wait_until("broken rollout recovers", TIMEOUT, || async {
            let st = rollouts.get("broken").await?.status.unwrap_or_default();
            Ok(if st.phase.as_deref() == Some("Healthy") { Ok(()) } else { Err(format!("{:?} {:?}", st.phase, st.message)) })
        })
        .await
    })
    .await
}

#[tokio::test]
#[ignore = "needs the local cluster: run scripts/test.sh"]
async fn instance_id_selects_which_controller_processes_a_rollout() -> Result<()> {
    with_namespace("instance", async |ns| {
        // A controller with an instance id only processes Rollouts labelled with it...
        let (_blue, _) = start_rollout_controller(ns, &["--instance-id", "blue"]).await?;
        let labelled = canary_undo_abort().replacen(
            "  name: mock-server\n",
            "  name: mock-server\n  labels:\n    argo-rollouts.argoproj.io/controller-instance-id: blue\n",
            1,
        );
        ns.apply(&labelled).await?;
        expect(
            ns,
            "labelled rollout processed by the blue controller",
            Expect {
                phase: "Healthy",
                replica_sets: &[(V1, 5, 1)],
                ..Default::default()
            },
        )
        .await?;
        // ...and never the unlabelled ones.
        let other = canary_undo_abort().replace("mock-server", "other");
        ns.apply(&other).await?;
        tokio::time::sleep(Duration::from_secs(5)).await;
        let rollouts: Api<Rollout> = ns.api();
        let status = rollouts.get("other").await?.status;
        ensure!(
            status.is_none(),
            "an unlabelled Rollout was processed by the blue controller: {status:?}"
        );
        Ok(())
    })
    .await
}

#[tokio::test]
#[ignore = "needs the local cluster: run scripts/test.sh"]
async fn restart_replaces_all_pods() -> Result<()> {
    with_namespace("restartat", async |ns| {
        let (_controller, _) = start_rollout_controller(ns, &[]).await?;
        ns.apply(&canary_undo_abort()).await?;
        expect(
            ns,
            "initial deploy",
            Expect {
                phase: "Healthy",
                replica_sets: &[(V1, 5, 1)],
                ..Default::default()
            },
        )
        .await?;
        let pods: Api<k8s_openapi::api::core::v1::Pod> = ns.api();
        let before = e2e::names(&pods).await?;
        tokio::time::sleep(Duration::from_secs(1)).await;
        let rollouts: Api<Rollout> = ns.api();
        argo(ns, &["restart", "mock-server"]).await?;
        wait_until("every pod replaced and restartedAt recorded", TIMEOUT, || async {
            let st = rollouts.get("mock-server").await?.status.unwrap_or_default();
            let names = e2e::names(&pods).await?;
            let old: Vec<_> = names.iter().filter(|n| before.contains(n)).collect();
            let done = st.restarted_at.is_some() && old.is_empty() && st.phase.as_deref() == Some("Healthy");
            Ok(if done {
                Ok(())
            } else {
                Err(format!(
                    "old pods {old:?}, restartedAt {:?}, phase {:?}",
                    st.restarted_at, st.phase
                ))
            })
        })
        .await
    })
    .await
}

#[tokio::test]
#[ignore = "needs the local cluster: run scripts/test.sh"]
async fn workload_ref_takes_over_a_deployment() -> Result<()> {
    with_namespace("workloadref", async |ns| {
        let (_controller, _) = start_rollout_controller(ns, &[]).await?;
        ns.apply(
            r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: mock-server}
spec:
  replicas: 5
  selector: {matchLabels: {app: mock-server}}
  template:
    metadata: {labels: {app: mock-server}}
    spec:
      containers: [{name: mock-server, image: "ghcr.io/ssup2/mock-go-server:1.0.0", ports: [{containerPort: 8080}]}]
---
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata: {name: mock-server}
spec:
  replicas: 5
  workloadRef: {apiVersion: apps/v1, kind: Deployment, name: mock-server, scaleDown: onsuccess}
  strategy:
    canary:
      steps: [{setWeight: 20}, {pause: {}}]
"#,
        )
        .await?;
        let deployments: Api<k8s_openapi::api::apps::v1::Deployment> = ns.api();
        let rollouts: Api<Rollout> = ns.api();
        wait_until("the Rollout runs the Deployment's pods and the Deployment is scaled to 0", TIMEOUT, || async {
            let ro = rollouts.get("mock-server").await?;
            let st = ro.status.clone().unwrap_or_default();
            let deploy = deployments.get("mock-server").await?.spec.replicas;
            let generation = ro.annotations().get("rollout.argoproj.io/workload-generation").cloned();
            // The hash is of the Deployment's stored (server-defaulted) template.
            let promoted = st.stable_rs.is_some() && st.stable_rs == st.current_pod_hash;
            Ok(if st.phase.as_deref() == Some("Healthy") && promoted && deploy == Some(0) && generation.is_some() {
                Ok(())
            } else {
                Err(format!("{:?} {:?} stable {:?} deployment replicas {deploy:?} generation {generation:?}", st.phase, st.message, st.stable_rs))
            })
        })
        .await?;
        // A missing Deployment is reported on the Rollout.
        deployments.delete("mock-server", &DeleteParams::background()).await?;
        wait_until("InvalidSpec for the missing Deployment", TIMEOUT, || async {
            let st = rollouts.get("mock-server").await?.status.unwrap_or_default();
            let msg = st.message.unwrap_or_default();
            Ok(if msg.contains("spec.workloadRef.name: Invalid value: \"mock-server\": deployments.apps \"mock-server\" not found") { Ok(()) } else { Err(msg) })
        })
        .await
    })
    .await
}

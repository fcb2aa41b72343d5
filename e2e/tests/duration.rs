//! `status.duration` on the real control plane (Argo v1.10's rollout duration tracking): when
//! each update starts and ends, how it ends, and the time spent in manual pauses.

use std::time::Duration;

use anyhow::{Result, ensure};
use e2e::{
    TestNamespace,
    rollout_ops::{abort, promote, promote_full, retry, set_image, status, wait_phase},
    start_rollout_controller, with_namespace,
};
use k8s_openapi::jiff::Timestamp;
use shared_types::rollout::RolloutDuration;

fn canary(extra_spec: &str) -> String {
    format!(
        r#"
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata: {{name: demo}}
spec:
  replicas: 2
  revisionHistoryLimit: 5
{extra_spec}  selector: {{matchLabels: {{app: demo}}}}
  strategy:
    canary:
      steps: [{{setWeight: 50}}, {{pause: {{}}}}]
  template:
    metadata: {{labels: {{app: demo}}}}
    spec:
      containers: [{{name: app, image: "example.com/app:1"}}]
"#
    )
}

fn blue_green(promotion: &str) -> String {
    format!(
        r#"
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata: {{name: demo}}
spec:
  replicas: 2
  selector: {{matchLabels: {{app: demo}}}}
  strategy:
    blueGreen: {{activeService: demo-active, {promotion}, scaleDownDelaySeconds: 0}}
  template:
    metadata: {{labels: {{app: demo}}}}
    spec:
      containers: [{{name: app, image: "example.com/app:1"}}]
---
apiVersion: v1
kind: Service
metadata: {{name: demo-active}}
spec: {{selector: {{app: demo}}, ports: [{{port: 80}}]}}
"#
    )
}

async fn duration(ns: &TestNamespace) -> Result<RolloutDuration> {
    let d = status(ns, "demo").await?.duration;
    let d = d.ok_or_else(|| anyhow::anyhow!("status.duration is missing"))?;
    // Argo's consistency rules: a finished record has a status and no running manual pause,
    // and does not end before it starts.
    ensure!(d.rollout_started_at.is_some(), "no rolloutStartedAt: {d:?}");
    if let Some(finished) = &d.finished_at {
        ensure!(
            d.completion_status.is_some(),
            "finished without completionStatus: {d:?}"
        );
        ensure!(
            d.manual_pause_started_at.is_none(),
            "finished while paused: {d:?}"
        );
        ensure!(
            d.rollout_started_at.as_ref().is_some_and(|s| s.0 <= finished.0),
            "finished before it started: {d:?}"
        );
    }
    Ok(d)
}

fn started(d: &RolloutDuration) -> Timestamp {
    d.rollout_started_at.as_ref().map(|t| t.0).unwrap_or_default()
}

fn ended_as(d: &RolloutDuration, want: &str) -> Result<()> {
    ensure!(
        d.finished_at.is_some() && d.completion_status.as_deref() == Some(want),
        "want a record finished as {want}, got {d:?}"
    );
    Ok(())
}

fn in_progress(d: &RolloutDuration) -> Result<()> {
    ensure!(
        d.finished_at.is_none() && d.completion_status.is_none(),
        "want an update in progress, got {d:?}"
    );
    Ok(())
}

/// Status times have whole seconds: wait so the next record surely starts later.
async fn next_second() {
    tokio::time::sleep(Duration::from_millis(1100)).await;
}

#[tokio::test]
#[ignore = "needs the local cluster: run scripts/test.sh"]
async fn canary_initial_rollout_pause_step_then_promote() -> Result<()> {
    with_namespace("dur-canary", async |ns| {
        let (_controller, _) = start_rollout_controller(ns, &[]).await?;
        ns.apply(&canary("")).await?;
        wait_phase(ns, "demo", "Healthy").await?;
        let first = duration(ns).await?;
        ended_as(&first, "Promoted")?;
        ensure!(first.total_manual_pause_duration_seconds.is_none(), "{first:?}");

        next_second().await;
        set_image(ns, "demo", "example.com/app:2").await?;
        wait_phase(ns, "demo", "Paused").await?;
        let paused = duration(ns).await?;
        in_progress(&paused)?;
        ensure!(started(&paused) > started(&first), "no new record: {paused:?}");
        ensure!(
            paused.manual_pause_started_at.is_some(),
            "indefinite pause not manual: {paused:?}"
        );

        tokio::time::sleep(Duration::from_secs(2)).await;
        promote(ns, "demo").await?;
        wait_phase(ns, "demo", "Healthy").await?;
        let done = duration(ns).await?;
        ended_as(&done, "Promoted")?;
        ensure!(started(&done) == started(&paused), "{done:?}");
        ensure!(
            done.total_manual_pause_duration_seconds.is_some_and(|s| s >= 1),
            "pause not counted: {done:?}"
        );
        Ok(())
    })
    .await
}

#[tokio::test]
#[ignore = "needs the local cluster: run scripts/test.sh"]
async fn canary_abort_then_retry() -> Result<()> {
    with_namespace("dur-abort", async |ns| {
        let (_controller, _) = start_rollout_controller(ns, &[]).await?;
        ns.apply(&canary("")).await?;
        wait_phase(ns, "demo", "Healthy").await?;
        set_image(ns, "demo", "example.com/app:2").await?;
        wait_phase(ns, "demo", "Paused").await?;
        let paused = duration(ns).await?;
        abort(ns, "demo").await?;
        wait_phase(ns, "demo", "Degraded").await?;
        let aborted = duration(ns).await?;
        ended_as(&aborted, "Aborted")?;
        ensure!(started(&aborted) == started(&paused), "{aborted:?}");

        next_second().await;
        retry(ns, "demo").await?;
        wait_phase(ns, "demo", "Paused").await?;
        let retried = duration(ns).await?;
        in_progress(&retried)?;
        ensure!(
            started(&retried) > started(&aborted),
            "retry kept the old record: {retried:?}"
        );
        ensure!(retried.manual_pause_started_at.is_some(), "{retried:?}");
        Ok(())
    })
    .await
}

#[tokio::test]
#[ignore = "needs the local cluster: run scripts/test.sh"]
async fn canary_superseded_update_and_fast_promotion() -> Result<()> {
    with_namespace("dur-supersede", async |ns| {
        let (_controller, _) = start_rollout_controller(ns, &[]).await?;
        ns.apply(&canary("")).await?;
        wait_phase(ns, "demo", "Healthy").await?;
        set_image(ns, "demo", "example.com/app:2").await?;
        wait_phase(ns, "demo", "Paused").await?;
        let second = duration(ns).await?;
        next_second().await;
        set_image(ns, "demo", "example.com/app:3").await?;
        wait_phase(ns, "demo", "Paused").await?;
        let third = duration(ns).await?;
        in_progress(&third)?;
        ensure!(
            started(&third) > started(&second),
            "superseded update kept its record: {third:?}"
        );
        promote_full(ns, "demo").await?;
        wait_phase(ns, "demo", "Healthy").await?;
        let done = duration(ns).await?;
        ended_as(&done, "FastPromoted")?;
        ensure!(started(&done) == started(&third), "{done:?}");
        Ok(())
    })
    .await
}

#[tokio::test]
#[ignore = "needs the local cluster: run scripts/test.sh"]
async fn canary_rollback_inside_the_window_is_fast() -> Result<()> {
    with_namespace("dur-rollback", async |ns| {
        let (_controller, _) = start_rollout_controller(ns, &[]).await?;
        ns.apply(&canary("  rollbackWindow: {revisions: 1}\n")).await?;
        wait_phase(ns, "demo", "Healthy").await?;
        // Creation times order the revisions; keep them a second apart.
        next_second().await;
        set_image(ns, "demo", "example.com/app:2").await?;
        wait_phase(ns, "demo", "Paused").await?;
        promote_full(ns, "demo").await?;
        wait_phase(ns, "demo", "Healthy").await?;
        next_second().await;
        set_image(ns, "demo", "example.com/app:3").await?;
        wait_phase(ns, "demo", "Paused").await?;
        let third = duration(ns).await?;
        // Back to revision 1: nothing lies between it and the stable revision 2.
        set_image(ns, "demo", "example.com/app:1").await?;
        wait_phase(ns, "demo", "Healthy").await?;
        let done = duration(ns).await?;
        ended_as(&done, "FastRolledBack")?;
        ensure!(
            started(&done) == started(&third),
            "a rollback keeps the record: {done:?}"
        );
        Ok(())
    })
    .await
}

#[tokio::test]
#[ignore = "needs the local cluster: run scripts/test.sh"]
async fn blue_green_manual_promotion() -> Result<()> {
    with_namespace("dur-bg-manual", async |ns| {
        let (_controller, _) = start_rollout_controller(ns, &[]).await?;
        ns.apply(&blue_green("autoPromotionEnabled: false")).await?;
        wait_phase(ns, "demo", "Healthy").await?;
        ended_as(&duration(ns).await?, "Promoted")?;
        next_second().await;
        set_image(ns, "demo", "example.com/app:2").await?;
        wait_phase(ns, "demo", "Paused").await?;
        let paused = duration(ns).await?;
        in_progress(&paused)?;
        ensure!(paused.manual_pause_started_at.is_some(), "{paused:?}");
        tokio::time::sleep(Duration::from_secs(1)).await;
        promote(ns, "demo").await?;
        wait_phase(ns, "demo", "Healthy").await?;
        let done = duration(ns).await?;
        ended_as(&done, "Promoted")?;
        ensure!(started(&done) == started(&paused), "{done:?}");
        ensure!(done.total_manual_pause_duration_seconds.is_some(), "{done:?}");
        Ok(())
    })
    .await
}

#[tokio::test]
#[ignore = "needs the local cluster: run scripts/test.sh"]
async fn blue_green_auto_promotion() -> Result<()> {
    with_namespace("dur-bg-auto", async |ns| {
        let (_controller, _) = start_rollout_controller(ns, &[]).await?;
        ns.apply(&blue_green("autoPromotionSeconds: 2")).await?;
        wait_phase(ns, "demo", "Healthy").await?;
        let first = duration(ns).await?;
        next_second().await;
        set_image(ns, "demo", "example.com/app:2").await?;
        wait_phase(ns, "demo", "Paused").await?;
        let paused = duration(ns).await?;
        in_progress(&paused)?;
        ensure!(started(&paused) > started(&first), "{paused:?}");
        ensure!(
            paused.manual_pause_started_at.is_none(),
            "a timed pause is not manual: {paused:?}"
        );
        wait_phase(ns, "demo", "Healthy").await?;
        let done = duration(ns).await?;
        ended_as(&done, "Promoted")?;
        ensure!(done.total_manual_pause_duration_seconds.is_none(), "{done:?}");
        Ok(())
    })
    .await
}

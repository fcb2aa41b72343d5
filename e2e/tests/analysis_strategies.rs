//! Analysis in the other places a Rollout runs it, with both controllers on the real control
//! plane and web metrics against a local endpoint the test controls: background analysis that
//! aborts a canary, blue-green pre- and post-promotion analysis, and a Job metric (kwok
//! completes the Job's pod).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::atomic::Ordering;

use anyhow::{Result, ensure};
use e2e::{
    TestNamespace, http_server,
    rollout_ops::{self, set_image, status, wait_phase},
    start_analysis_controller, start_rollout_controller, wait_until, with_namespace,
};
use k8s_openapi::api::batch::v1::Job;
use kube::{Api, ResourceExt, api::ListParams};
use serde_json::{Value, json};
use shared_types::analysis::{AnalysisPhase, AnalysisRun};

const V2_IMAGE: &str = "ghcr.io/ssup2/mock-go-server:2.0.0";

/// An AnalysisTemplate measuring the endpoint every second.
fn template(name: &str, url: &str, count: Option<i32>, failure_limit: i32) -> Value {
    let mut metric = json!({
        "name": name, "interval": "1s", "failureLimit": failure_limit,
        "successCondition": "result == 1",
        "provider": {"web": {"url": url, "jsonPath": "{$.ok}"}}
    });
    if let Some(count) = count {
        metric["count"] = json!(count);
    }
    json!({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "AnalysisTemplate",
        "metadata": {"name": name},
        "spec": {"metrics": [metric]}
    })
}

fn pod_template(app: &str) -> Value {
    json!({
        "metadata": {"labels": {"app": app}},
        "spec": {"containers": [{"name": "app", "image": "ghcr.io/ssup2/mock-go-server:1.0.0"}]}
    })
}

/// The AnalysisRuns of the namespace: `(rollout-type label, phase, message)`.
async fn runs(ns: &TestNamespace) -> Result<Vec<(String, AnalysisPhase, String)>> {
    let api: Api<AnalysisRun> = ns.api();
    let mut out: Vec<_> = api
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .map(|r| {
            let kind = r.labels().get("rollout-type").cloned().unwrap_or_default();
            let st = r.status.unwrap_or_default();
            (kind, st.phase_or_pending(), st.message.unwrap_or_default())
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

#[tokio::test]
#[ignore = "needs the local cluster: run scripts/test.sh"]
async fn background_analysis_aborts_the_canary() -> Result<()> {
    with_namespace("bg-analysis", async |ns| {
        let (url, health) = http_server::health_endpoint().await;
        let (_rc, _) = start_rollout_controller(ns, &[]).await?;
        let (_ac, _) = start_analysis_controller(ns, &[], &[]).await?;
        ns.apply_value(template("health", &url, None, 1)).await?;
        ns.apply_value(json!({
            "apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
            "metadata": {"name": "web"},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": {"app": "web"}},
                "template": pod_template("web"),
                "strategy": {"canary": {
                    "analysis": {"templates": [{"templateName": "health"}], "startingStep": 1},
                    "steps": [{"setWeight": 50}, {"pause": {}}]
                }}
            }
        }))
        .await?;
        wait_phase(ns, "web", "Healthy").await?;
        set_image(ns, "web", V2_IMAGE).await?;
        wait_until("a running background analysis", rollout_ops::TIMEOUT, || async {
            let r = runs(ns).await?;
            Ok(if r.iter().any(|(k, p, _)| k == "Background" && *p == AnalysisPhase::Running) {
                Ok(())
            } else {
                Err(format!("{r:?}"))
            })
        })
        .await?;
        // The service degrades: two failed measurements exceed failureLimit 1.
        health.store(0, Ordering::SeqCst);
        wait_phase(ns, "web", "Degraded").await?;
        let (_, message) = rollout_ops::phase(ns, "web").await?;
        ensure!(
            message.starts_with("RolloutAborted: Rollout aborted update to revision 2: Metric \"health\" assessed Failed due to failed (2) > failureLimit (1)"),
            "{message}"
        );
        ensure!(message.contains("result 0 did not satisfy result == 1"), "the cause is given: {message}");
        let r = runs(ns).await?;
        ensure!(
            r.iter().any(|(k, p, _)| k == "Background" && *p == AnalysisPhase::Failed),
            "{r:?}"
        );
        Ok(())
    })
    .await
}

#[tokio::test]
#[ignore = "needs the local cluster: run scripts/test.sh"]
async fn blue_green_pre_and_post_promotion_analysis() -> Result<()> {
    with_namespace("bg-prepost", async |ns| {
        let (url, _health) = http_server::health_endpoint().await;
        let (_rc, _) = start_rollout_controller(ns, &[]).await?;
        let (_ac, _) = start_analysis_controller(ns, &[], &[]).await?;
        ns.apply_value(template("pre", &url, Some(2), 0)).await?;
        ns.apply_value(template("post", &url, Some(2), 0)).await?;
        for svc in ["web-active", "web-preview"] {
            ns.apply_value(json!({
                "apiVersion": "v1", "kind": "Service", "metadata": {"name": svc},
                "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}
            }))
            .await?;
        }
        ns.apply_value(json!({
            "apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
            "metadata": {"name": "web"},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": {"app": "web"}},
                "template": pod_template("web"),
                "strategy": {"blueGreen": {
                    "activeService": "web-active", "previewService": "web-preview",
                    "autoPromotionEnabled": true,
                    "prePromotionAnalysis": {"templates": [{"templateName": "pre"}]},
                    "postPromotionAnalysis": {"templates": [{"templateName": "post"}]}
                }}
            }
        }))
        .await?;
        wait_phase(ns, "web", "Healthy").await?;
        let first = status(ns, "web").await?.stable_rs;
        set_image(ns, "web", V2_IMAGE).await?;
        wait_until("promoted after both analyses", rollout_ops::TIMEOUT, || async {
            let st = status(ns, "web").await?;
            let (phase, message) = rollout_ops::phase(ns, "web").await?;
            let r = runs(ns).await?;
            let both = r
                .iter()
                .any(|(k, p, _)| k == "PrePromotion" && *p == AnalysisPhase::Successful)
                && r.iter()
                    .any(|(k, p, _)| k == "PostPromotion" && *p == AnalysisPhase::Successful);
            Ok(if phase == "Healthy" && st.stable_rs != first && both {
                Ok(())
            } else {
                Err(format!(
                    "{phase} ({message}), stable {:?}, runs {r:?}",
                    st.stable_rs
                ))
            })
        })
        .await?;
        Ok(())
    })
    .await
}

#[tokio::test]
#[ignore = "needs the local cluster: run scripts/test.sh"]
async fn a_job_metric_succeeds_when_its_job_completes() -> Result<()> {
    with_namespace("job-metric", async |ns| {
        let (_ac, _) = start_analysis_controller(ns, &[], &[]).await?;
        ns.apply_value(json!({
            "apiVersion": "argoproj.io/v1alpha1", "kind": "AnalysisRun",
            "metadata": {"name": "smoke"},
            "spec": {"metrics": [{
                "name": "smoke-test",
                "provider": {"job": {"spec": {
                    "backoffLimit": 0,
                    "template": {"spec": {
                        "restartPolicy": "Never",
                        "containers": [{"name": "check", "image": "busybox", "command": ["true"]}]
                    }}
                }}}
            }]}
        }))
        .await?;
        let api: Api<AnalysisRun> = ns.api();
        wait_until("the Job metric to succeed", rollout_ops::TIMEOUT, || async {
            let st = api.get("smoke").await?.status.unwrap_or_default();
            Ok(if st.phase_or_pending() == AnalysisPhase::Successful {
                Ok(())
            } else {
                Err(format!("{:?}: {:?}", st.phase, st.message))
            })
        })
        .await?;
        let run = api.get("smoke").await?;
        let jobs: Api<Job> = ns.api();
        let owned: Vec<String> = jobs
            .list(&ListParams::default().labels(&format!(
                "analysisrun.argoproj.io/uid={}",
                run.uid().unwrap_or_default()
            )))
            .await?
            .items
            .iter()
            .map(|j| j.name_any())
            .collect();
        ensure!(owned.len() == 1, "one Job labelled with the run's uid: {owned:?}");
        Ok(())
    })
    .await
}

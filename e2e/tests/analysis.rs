//! Analysis on the real control plane, with the analysis controller measuring against a real
//! Prometheus server (the `prometheus` binary scraping a test exporter whose Istio request
//! counters the test controls) and local HTTP servers: the seed's cases 2.2.5 (VirtualService)
//! and 2.2.8 (DestinationRule) — a failed first analysis aborts the update, `retry` starts a run
//! that succeeds and the Rollout completes —, a web metric with `jsonPath`, Prometheus stopped in
//! the middle of a run, and a `secretKeyRef` argument that must never leak.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, ensure};
use axum::{Json, http::HeaderMap, http::StatusCode, routing::get};
use e2e::{
    TestNamespace, analysis_run_rows, argo, http_get, http_server, kubectl,
    prometheus::{Exporter, Prometheus},
    rollout_ops::{self, set_image, status, wait_phase},
    start_analysis_controller, start_rollout_controller, transcript, wait_until, with_namespace,
};
use serde_json::{Value, json};
use shared_types::analysis::{AnalysisPhase, AnalysisRun, MetricResult};

const TIMEOUT: Duration = Duration::from_secs(90);
const V2_IMAGE: &str = "ghcr.io/ssup2/mock-go-server:2.0.0";

/// The seed's measurement interval (30 s) and canary pause (30 s), shortened. The interval
/// leaves the retry's test time to change the success ratio between the first and the second
/// measurement of a run (it waits until Prometheus reports the new ratio).
const INTERVAL: &str = "5s";
const PAUSE: &str = "5s";

/// What the seed's transcripts show once the first analysis failed (2.2.5 and 2.2.8).
const SEED_ABORTED: &str = "RolloutAborted: Rollout aborted update to revision 2: \
                            Metric \"success-rate\" assessed Failed due to failed (3) > failureLimit (2)";
const SEED_RUN_FAILED: &str = "Metric \"success-rate\" assessed Failed due to failed (3) > failureLimit (2)";

/// Request rates of the exporter: a canary answering 10% of its requests (run fails), and one
/// answering all (the ratio over the seed's `[1m]` window is above 0.95 one scrape later).
const LOW: (f64, f64) = (0.1, 0.9);
const HIGH: (f64, f64) = (10_000.0, 0.0);

// ------------------------------------------------------------------------------------------------
// Helpers
// ------------------------------------------------------------------------------------------------

async fn run(ns: &TestNamespace, name: &str) -> Result<Option<AnalysisRun>> {
    Ok(ns.api::<AnalysisRun>().get_opt(name).await?)
}

fn metric<'a>(run: &'a AnalysisRun, name: &str) -> Option<&'a MetricResult> {
    run.status.as_ref()?.metric_result(name)
}

fn run_phase(run: &AnalysisRun) -> Option<AnalysisPhase> {
    run.status.as_ref().and_then(|s| s.phase)
}

fn run_message(run: &AnalysisRun) -> String {
    run.status
        .as_ref()
        .and_then(|s| s.message.clone())
        .unwrap_or_default()
}

/// `(phases of the measurements, successful, failed, error, count)` of one metric.
fn counts(result: &MetricResult) -> (Vec<AnalysisPhase>, i32, i32, i32, i32) {
    (
        result.measurements.iter().flatten().map(|m| m.phase).collect(),
        result.successful.unwrap_or(0),
        result.failed.unwrap_or(0),
        result.error.unwrap_or(0),
        result.count.unwrap_or(0),
    )
}

/// One line per run and metric, for failure messages.
fn describe(run: &AnalysisRun) -> String {
    let mut out = format!(
        "{} {:?} {:?}",
        run.metadata.name.as_deref().unwrap_or_default(),
        run_phase(run),
        run_message(run)
    );
    for m in run
        .status
        .as_ref()
        .and_then(|s| s.metric_results.as_deref())
        .unwrap_or_default()
    {
        let measurements: Vec<String> = m
            .measurements
            .iter()
            .flatten()
            .map(|x| {
                format!(
                    "{}={}{}",
                    x.phase,
                    x.value.as_deref().unwrap_or("-"),
                    x.message
                        .as_deref()
                        .map(|m| format!(" ({m})"))
                        .unwrap_or_default()
                )
            })
            .collect();
        out.push_str(&format!(
            "\n  metric {} {} {:?}: [{}]",
            m.name,
            m.phase,
            m.message,
            measurements.join(", ")
        ));
    }
    out
}

/// Waits until the run `name` exists and `check` accepts it; returns it.
async fn wait_run(
    ns: &TestNamespace,
    name: &str,
    what: &str,
    check: impl Fn(&AnalysisRun) -> bool,
) -> Result<AnalysisRun> {
    wait_until(&format!("AnalysisRun {name}: {what}"), TIMEOUT, || async {
        Ok(match run(ns, name).await? {
            Some(r) if check(&r) => Ok(()),
            Some(r) => Err(describe(&r)),
            None => Err("not created".into()),
        })
    })
    .await?;
    run(ns, name).await?.context("the run disappeared")
}

/// Waits until the Rollout is Degraded with a message starting with `prefix`; returns the
/// message.
async fn wait_degraded(ns: &TestNamespace, name: &str, prefix: &str) -> Result<String> {
    wait_until(
        &format!("{name} Degraded with a message starting with {prefix:?}"),
        TIMEOUT,
        || async {
            let (phase, message) = rollout_ops::phase(ns, name).await?;
            Ok(if phase == "Degraded" && message.starts_with(prefix) {
                Ok(())
            } else {
                Err(format!("{phase}: {message}"))
            })
        },
    )
    .await?;
    Ok(rollout_ops::phase(ns, name).await?.1)
}

/// The new pod-template hash once the update to `V2_IMAGE` created its ReplicaSet.
async fn updated_hash(ns: &TestNamespace, name: &str, old: &str) -> Result<String> {
    wait_until("the new ReplicaSet's hash", TIMEOUT, || async {
        let h = status(ns, name).await?.current_pod_hash.unwrap_or_default();
        Ok(if !h.is_empty() && h != old {
            Ok(())
        } else {
            Err(format!("currentPodHash {h:?}"))
        })
    })
    .await?;
    Ok(status(ns, name).await?.current_pod_hash.unwrap_or_default())
}

/// Weights of the `primary` route of VirtualService `mock-server` by destination host or
/// subset.
async fn weights(ns: &TestNamespace, keys: (&str, &str)) -> Result<(i64, i64)> {
    let vs = ns.istio("VirtualService").get("mock-server").await?;
    let route = vs.data["spec"]["http"][0]["route"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let weight = |key: &str| {
        route
            .iter()
            .find(|d| d["destination"]["host"] == key || d["destination"]["subset"] == key)
            .and_then(|d| d["weight"].as_i64())
            .unwrap_or(0)
    };
    Ok((weight(keys.0), weight(keys.1)))
}

async fn wait_weights(ns: &TestNamespace, keys: (&str, &str), want: (i64, i64), what: &str) -> Result<()> {
    wait_until(what, TIMEOUT, || async {
        let w = weights(ns, keys).await?;
        Ok(if w == want { Ok(()) } else { Err(format!("{w:?}")) })
    })
    .await
}

/// The seed's success-rate query for a destination service (as in manifests 14 and 17).
fn success_rate_query(service: &str) -> String {
    format!(
        "scalar(sum(rate(istio_requests_total{{destination_service_name=\"{service}\",response_code=~\"2..\"}}[1m])) \
         / sum(rate(istio_requests_total{{destination_service_name=\"{service}\"}}[1m])))"
    )
}

/// A seed manifest with the template's Prometheus address pointed at the local server and the
/// measurement interval and canary pause shortened.
fn seed_manifest(text: &str, prometheus: &str) -> Result<String> {
    let edits = [
        (
            "http://prometheus.istio-system.svc.cluster.local:9090",
            prometheus.to_string(),
        ),
        ("interval: 30s", format!("interval: {INTERVAL}")),
        ("pause: {duration: 30s}", format!("pause: {{duration: {PAUSE}}}")),
    ];
    let mut out = text.to_string();
    for (from, to) in edits {
        ensure!(
            out.contains(from),
            "the seed manifest no longer contains {from:?}"
        );
        out = out.replace(from, &to);
    }
    Ok(out)
}

/// A Prometheus server scraping an exporter whose `service` answers 10% of its requests.
async fn prometheus_for(service: &str) -> Result<(Exporter, Prometheus)> {
    let exporter = Exporter::start().await;
    exporter.set_istio_request_rates(service, "mock-server", LOW.0, LOW.1);
    let prometheus = Prometheus::start(&[exporter.addr()]).await?;
    prometheus.wait_until_scraped(Duration::from_secs(30)).await?;
    Ok((exporter, prometheus))
}

// ------------------------------------------------------------------------------------------------
// Seed 2.2.5 and 2.2.8
// ------------------------------------------------------------------------------------------------

/// One seed analysis case: what differs between 2.2.5 and 2.2.8.
struct SeedCase {
    manifest: &'static str,
    /// The `destination_service_name` the template queries.
    service: &'static str,
    /// The route destinations (hosts or subsets) of stable and canary.
    keys: (&'static str, &'static str),
    /// The new hash when the seed's transcript shows it for our manifest.
    new_hash: Option<&'static str>,
}

/// The seed's steps: the first analysis fails (3 failed measurements, failureLimit 2), the
/// Rollout aborts with the seed's message plus the cause and routes everything to stable;
/// `retry` starts `<run>.1`, whose first measurement still fails, then the exporter reports a
/// high success ratio, the next two succeed (`✔ 2,✖ 1` as in the transcript) and the Rollout
/// completes.
async fn seed_analysis_case(ns: &mut TestNamespace, case: SeedCase) -> Result<()> {
    let (exporter, prometheus) = prometheus_for(case.service).await?;
    let url = prometheus.url();
    let (_rollouts, _) = start_rollout_controller(ns, &[]).await?;
    let (_analysis, _) =
        start_analysis_controller(ns, &[], &[("ARGO_ROLLOUTS_PROMETHEUS_ADDRESS", url.as_str())]).await?;
    ns.apply(&seed_manifest(case.manifest, &url)?).await?;
    wait_phase(ns, "mock-server", "Healthy").await?;
    let old = status(ns, "mock-server").await?.stable_rs.unwrap_or_default();

    argo(
        ns,
        &["set", "image", "mock-server", &format!("mock-server={V2_IMAGE}")],
    )
    .await?;
    let hash = updated_hash(ns, "mock-server", &old).await?;
    if let Some(want) = case.new_hash {
        ensure!(hash == want, "new hash {hash}, the seed shows {want}");
    }

    // The first analysis: three failed measurements.
    let first = format!("mock-server-{hash}-2-2");
    let failed = wait_run(ns, &first, "Failed", |r| {
        run_phase(r) == Some(AnalysisPhase::Failed)
    })
    .await?;
    let labels = failed.metadata.labels.clone().unwrap_or_default();
    ensure!(
        labels.get("rollout-type").map(String::as_str) == Some("Step")
            && labels.get("step-index").map(String::as_str) == Some("2")
            && labels.get("rollouts-pod-template-hash") == Some(&hash),
        "labels of {first}: {labels:?}"
    );
    let result = metric(&failed, "success-rate").context("no success-rate result")?;
    let (phases, successful, failures, errors, count) = counts(result);
    ensure!(
        phases == vec![AnalysisPhase::Failed; 3] && (successful, failures, errors, count) == (0, 3, 0, 3),
        "{}",
        describe(&failed)
    );
    ensure!(
        run_message(&failed).starts_with(SEED_RUN_FAILED),
        "{}",
        describe(&failed)
    );

    // The Rollout aborts with the seed's message, followed by why the metric failed.
    let message = wait_degraded(ns, "mock-server", SEED_ABORTED).await?;
    ensure!(
        message.len() > SEED_ABORTED.len() && message.contains("result >= 0.95"),
        "the Degraded message should add the cause (the condition `result >= 0.95` and the value) \
         after the seed's text: {message:?}"
    );
    wait_weights(
        ns,
        case.keys,
        (100, 0),
        "all traffic back to stable after the abort",
    )
    .await?;
    let out = argo(ns, &["get", "rollout", "mock-server"]).await?;
    ensure!(out.contains("Status:          ✖ Degraded"), "{out}");
    ensure!(
        out.lines()
            .any(|l| l.starts_with(&format!("Message:         {SEED_ABORTED}"))),
        "{out}"
    );
    // The seed's transcript: `└──α mock-server-7c6fcfb847-2-2  AnalysisRun  ✖ Failed  66s  ✖ 3`.
    ensure!(
        analysis_run_rows(&out) == vec![format!("α {first} AnalysisRun ✖ Failed ✖ 3")],
        "{out}"
    );

    // Retry: a new run whose first measurement still sees the low ratio.
    argo(ns, &["retry", "rollout", "mock-server"]).await?;
    let second = format!("{first}.1");
    wait_run(ns, &second, "a first failed measurement", |r| {
        metric(r, "success-rate").is_some_and(|m| m.failed.unwrap_or(0) >= 1)
    })
    .await?;
    exporter.set_istio_request_rates(case.service, "mock-server", HIGH.0, HIGH.1);
    prometheus
        .wait_until(&success_rate_query(case.service), Duration::from_secs(20), |v| {
            v.len() == 1 && v[0] >= 0.95
        })
        .await?;
    let now = run(ns, &second).await?.context("the retry's run disappeared")?;
    let measured = metric(&now, "success-rate").map(counts).unwrap_or_default().0;
    ensure!(
        measured == vec![AnalysisPhase::Failed],
        "Prometheus reported the new ratio only after the second measurement (interval {INTERVAL} \
         too short for this machine?): {}",
        describe(&now)
    );
    let succeeded = wait_run(ns, &second, "Successful", |r| {
        run_phase(r) == Some(AnalysisPhase::Successful)
    })
    .await?;
    let result = metric(&succeeded, "success-rate").context("no success-rate result")?;
    let (phases, successful, failures, errors, count) = counts(result);
    ensure!(
        phases
            == vec![
                AnalysisPhase::Failed,
                AnalysisPhase::Successful,
                AnalysisPhase::Successful
            ]
            && (successful, failures, errors, count) == (2, 1, 0, 3),
        "{}",
        describe(&succeeded)
    );

    // The update completes.
    wait_until("the update completes", TIMEOUT, || async {
        let (phase, message) = rollout_ops::phase(ns, "mock-server").await?;
        let st = status(ns, "mock-server").await?;
        Ok(
            if phase == "Healthy" && st.stable_rs.as_deref() == Some(hash.as_str()) {
                Ok(())
            } else {
                Err(format!("{phase} ({message}) stable {:?}", st.stable_rs))
            },
        )
    })
    .await?;
    wait_weights(ns, case.keys, (100, 0), "promoted: stable 100, canary 0").await?;
    let out = argo(ns, &["get", "rollout", "mock-server"]).await?;
    ensure!(out.contains("Status:          ✔ Healthy"), "{out}");
    ensure!(out.contains("  Step:          4/4"), "{out}");
    // The seed's last transcript: both runs, `✖ 3` and `✔ 2,✖ 1`.
    let want: Vec<String> = analysis_run_rows(&transcript("analysis_promoted")?)
        .into_iter()
        .map(|row| row.replace("7c6fcfb847", &hash))
        .collect();
    ensure!(want.len() == 2, "golden rows {want:?}");
    ensure!(
        analysis_run_rows(&out) == want,
        "{out}\nwant AnalysisRun rows (ages ignored):\n{}",
        want.join("\n")
    );
    Ok(())
}

#[tokio::test]
#[ignore = "needs the local cluster: run scripts/test.sh"]
async fn seed_2_2_5_virtual_service_analysis_fails_then_retry_succeeds() -> Result<()> {
    with_namespace("analysis-vs", async |ns| {
        seed_analysis_case(
            ns,
            SeedCase {
                manifest: include_str!(
                    "../../examples/seed/manifest14-canary-with-istio-virtual-service-and-analysistemplate-test-case.yaml"
                ),
                service: "mock-server-canary",
                keys: ("mock-server-stable", "mock-server-canary"),
                new_hash: Some("7c6fcfb847"),
            },
        )
        .await
    })
    .await
}

#[tokio::test]
#[ignore = "needs the local cluster: run scripts/test.sh"]
async fn seed_2_2_8_destination_rule_analysis_fails_then_retry_succeeds() -> Result<()> {
    with_namespace("analysis-dr", async |ns| {
        seed_analysis_case(
            ns,
            SeedCase {
                manifest: include_str!(
                    "../../examples/seed/manifest17-canary-with-istio-destination-rule-and-analysistemplate-test-case.yaml"
                ),
                // The template queries the one Service both subsets sit behind.
                service: "mock-server",
                keys: ("stable", "canary"),
                // The seed's transcript shows 7c6fcfb847, the hash of manifest 14's template;
                // manifest 17's template carries Prometheus annotations, so its hash differs.
                new_hash: None,
            },
        )
        .await?;
        // The DestinationRule's subsets both select the new revision.
        let dr = ns.istio("DestinationRule").get("mock-server").await?;
        let hash = status(ns, "mock-server").await?.stable_rs.unwrap_or_default();
        for subset in dr.data["spec"]["subsets"].as_array().into_iter().flatten() {
            ensure!(
                subset["labels"]["rollouts-pod-template-hash"] == hash.as_str(),
                "subset {subset}"
            );
        }
        Ok(())
    })
    .await
}

// ------------------------------------------------------------------------------------------------
// Other providers and failure modes
// ------------------------------------------------------------------------------------------------

/// A canary Rollout (no traffic routing) whose second step runs `template` with `args`.
fn canary_with_analysis(name: &str, template: &str, args: Value) -> Value {
    json!({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
        "metadata": {"name": name},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": name}},
            "strategy": {"canary": {"steps": [
                {"setWeight": 50},
                {"analysis": {"templates": [{"templateName": template}], "args": args}}
            ]}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "app", "image": "ghcr.io/ssup2/mock-go-server:1.0.0"}]}
            }
        }
    })
}

#[tokio::test]
#[ignore = "needs the local cluster: run scripts/test.sh"]
async fn web_metric_with_json_path_lets_the_rollout_complete() -> Result<()> {
    with_namespace("analysis-web", async |ns| {
        let hits = Arc::new(AtomicUsize::new(0));
        let counter = hits.clone();
        let router = axum::Router::new().route(
            "/api/health",
            get(move || {
                let counter = counter.clone();
                async move {
                    counter.fetch_add(1, Ordering::SeqCst);
                    Json(json!({"data": {"ratio": 0.99, "status": "ok", "pods": [1, 2]}}))
                }
            }),
        );
        let addr = http_server::serve(router).await;
        let (_rollouts, _) = start_rollout_controller(ns, &[]).await?;
        let (_analysis, _) = start_analysis_controller(ns, &[], &[]).await?;
        ns.apply_value(json!({
            "apiVersion": "argoproj.io/v1alpha1", "kind": "AnalysisTemplate",
            "metadata": {"name": "web-health"},
            "spec": {
                "args": [{"name": "base-url"}],
                "metrics": [
                    {
                        "name": "ratio", "interval": "1s", "count": 2,
                        "successCondition": "result >= 0.95",
                        "provider": {"web": {
                            "url": "{{args.base-url}}/api/health",
                            "jsonPath": "{$.data.ratio}",
                            "timeoutSeconds": 5
                        }}
                    },
                    {
                        "name": "status", "count": 1,
                        "successCondition": "result == 'ok'",
                        "provider": {"web": {
                            "url": "{{args.base-url}}/api/health",
                            "jsonPath": "{$.data.status}"
                        }}
                    }
                ]
            }
        }))
        .await?;
        ns.apply_value(canary_with_analysis(
            "web",
            "web-health",
            json!([{"name": "base-url", "value": format!("http://{addr}")}]),
        ))
        .await?;
        wait_phase(ns, "web", "Healthy").await?;
        let old = status(ns, "web").await?.stable_rs.unwrap_or_default();
        set_image(ns, "web", V2_IMAGE).await?;
        let hash = updated_hash(ns, "web", &old).await?;
        let name = format!("web-{hash}-2-1");
        let done = wait_run(ns, &name, "Successful", |r| {
            run_phase(r) == Some(AnalysisPhase::Successful)
        })
        .await?;
        let ratio = metric(&done, "ratio").context("no ratio result")?;
        let values: Vec<&str> = ratio
            .measurements
            .iter()
            .flatten()
            .filter_map(|m| m.value.as_deref())
            .collect();
        ensure!(
            counts(ratio) == (vec![AnalysisPhase::Successful; 2], 2, 0, 0, 2) && values == ["0.99", "0.99"],
            "{}",
            describe(&done)
        );
        let status_metric = metric(&done, "status").context("no status result")?;
        ensure!(
            status_metric.phase == AnalysisPhase::Successful && status_metric.successful == Some(1),
            "{}",
            describe(&done)
        );
        ensure!(
            hits.load(Ordering::SeqCst) >= 3,
            "the server saw {hits:?} requests"
        );
        wait_until("the update completes", TIMEOUT, || async {
            let (phase, message) = rollout_ops::phase(ns, "web").await?;
            let stable = status(ns, "web").await?.stable_rs;
            Ok(
                if phase == "Healthy" && stable.as_deref() == Some(hash.as_str()) {
                    Ok(())
                } else {
                    Err(format!("{phase} ({message}) stable {stable:?}"))
                },
            )
        })
        .await?;
        let out = argo(ns, &["get", "rollout", "web"]).await?;
        ensure!(
            analysis_run_rows(&out) == vec![format!("α {name} AnalysisRun ✔ Successful ✔ 3")],
            "{out}"
        );
        Ok(())
    })
    .await
}

#[tokio::test]
#[ignore = "needs the local cluster: run scripts/test.sh"]
async fn prometheus_stopped_mid_run_errors_the_run_and_aborts_the_rollout() -> Result<()> {
    with_namespace("analysis-prom-down", async |ns| {
        let exporter = Exporter::start().await;
        exporter.set_istio_request_rates("checkout-canary", "checkout", HIGH.0, HIGH.1);
        let mut prometheus = Prometheus::start(&[exporter.addr()]).await?;
        prometheus.wait_until_scraped(Duration::from_secs(30)).await?;
        let url = prometheus.url();
        let address = url.trim_start_matches("http://").to_string();
        let (_rollouts, _) = start_rollout_controller(ns, &[]).await?;
        // The template names no address: the controller's fallback is used.
        let (mut analysis, analysis_port) =
            start_analysis_controller(ns, &[], &[("ARGO_ROLLOUTS_PROMETHEUS_ADDRESS", url.as_str())]).await?;
        ns.apply_value(json!({
            "apiVersion": "argoproj.io/v1alpha1", "kind": "AnalysisTemplate",
            "metadata": {"name": "success-rate"},
            "spec": {"metrics": [{
                "name": "success-rate", "interval": "2s", "count": 100,
                "successCondition": "result >= 0.95", "failureLimit": 2,
                "consecutiveErrorLimit": 2,
                "provider": {"prometheus": {
                    "query": success_rate_query("checkout-canary"),
                    "timeout": 5
                }}
            }]}
        }))
        .await?;
        ns.apply_value(canary_with_analysis("checkout", "success-rate", json!([])))
            .await?;
        wait_phase(ns, "checkout", "Healthy").await?;
        let old = status(ns, "checkout").await?.stable_rs.unwrap_or_default();
        set_image(ns, "checkout", V2_IMAGE).await?;
        let hash = updated_hash(ns, "checkout", &old).await?;
        let name = format!("checkout-{hash}-2-1");
        wait_run(ns, &name, "a successful measurement", |r| {
            run_phase(r) == Some(AnalysisPhase::Running)
                && metric(r, "success-rate").is_some_and(|m| m.successful.unwrap_or(0) >= 1)
        })
        .await?;

        prometheus.stop().await;
        let stopped = Instant::now();
        let errored = wait_run(ns, &name, "Error", |r| run_phase(r) == Some(AnalysisPhase::Error)).await?;
        let result = metric(&errored, "success-rate").context("no success-rate result")?;
        let (phases, successful, failures, errors, _) = counts(result);
        ensure!(
            successful >= 1
                && failures <= 2
                && errors == 3
                && result.consecutive_error == Some(3)
                && phases.ends_with(&[AnalysisPhase::Error; 3]),
            "{}",
            describe(&errored)
        );
        let last = result
            .measurements
            .iter()
            .flatten()
            .next_back()
            .and_then(|m| m.message.clone())
            .unwrap_or_default();
        ensure!(
            last.contains(&address),
            "an Error measurement names the Prometheus address {address}: {last:?}"
        );
        let message = run_message(&errored);
        ensure!(
            message.starts_with(
                "Metric \"success-rate\" assessed Error due to consecutiveErrors (3) > consecutiveErrorLimit (2)"
            ) && message.contains(&address),
            "the run's message says which metric, which limit and why: {message:?}"
        );
        let message = wait_degraded(
            ns,
            "checkout",
            "RolloutAborted: Rollout aborted update to revision 2: Metric \"success-rate\" assessed Error \
             due to consecutiveErrors (3) > consecutiveErrorLimit (2)",
        )
        .await?;
        ensure!(
            message.contains(&address),
            "the Degraded message carries the cause: {message:?}"
        );
        // The first error within an interval (2 s), two retries 10 s apart (Argo's
        // DefaultErrorRetryInterval) and the reactions to them: well under a minute.
        ensure!(
            stopped.elapsed() < Duration::from_secs(45),
            "aborting took {:?}",
            stopped.elapsed()
        );
        // Nothing hangs: the controller stays up and ready.
        ensure!(analysis.exited().is_none(), "the analysis controller exited");
        let (code, body) = http_get(analysis_port, "/readyz").await?;
        ensure!(code == 200, "/readyz {code} {body}");
        let out = argo(ns, &["get", "rollout", "checkout"]).await?;
        let rows = analysis_run_rows(&out);
        ensure!(
            rows.len() == 1 && rows[0].starts_with(&format!("α {name} AnalysisRun ⚠ Error")),
            "{out}"
        );
        Ok(())
    })
    .await
}

#[tokio::test]
#[ignore = "needs the local cluster: run scripts/test.sh"]
async fn secret_key_ref_arg_never_leaks() -> Result<()> {
    with_namespace("analysis-secret", async |ns| {
        let token = format!(
            "e2e-secret-{:016x}",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)?
                .as_nanos()
                ^ 0x5eed_5eed_5eed
        );
        let authorized = Arc::new(AtomicUsize::new(0));
        let rejected = Arc::new(AtomicUsize::new(0));
        let (ok, bad, want) = (authorized.clone(), rejected.clone(), format!("Bearer {token}"));
        let router = axum::Router::new().route(
            "/check",
            get(move |headers: HeaderMap| {
                let (ok, bad, want) = (ok.clone(), bad.clone(), want.clone());
                async move {
                    if headers.get("authorization").and_then(|v| v.to_str().ok()) == Some(want.as_str()) {
                        ok.fetch_add(1, Ordering::SeqCst);
                        (StatusCode::OK, Json(json!({"authorized": true})))
                    } else {
                        bad.fetch_add(1, Ordering::SeqCst);
                        (StatusCode::UNAUTHORIZED, Json(json!({"authorized": false})))
                    }
                }
            }),
        );
        let addr = http_server::serve(router).await;
        let closed = http_server::unused_port();
        let (analysis, analysis_port) = start_analysis_controller(ns, &[], &[]).await?;
        ns.apply_value(json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "web-credentials"},
            "stringData": {"token": token}
        }))
        .await?;
        let header = json!([{"key": "Authorization", "value": "Bearer {{args.token}}"}]);
        ns.apply_value(json!({
            "apiVersion": "argoproj.io/v1alpha1", "kind": "AnalysisRun",
            "metadata": {"name": "secret-args"},
            "spec": {
                "args": [{"name": "token", "valueFrom": {"secretKeyRef": {"name": "web-credentials", "key": "token"}}}],
                "metrics": [
                    {
                        // Proves the secret reached the header.
                        "name": "authorized", "count": 1,
                        "successCondition": "result == true",
                        "provider": {"web": {
                            "url": format!("http://{addr}/check"),
                            "headers": header,
                            "jsonPath": "{$.authorized}"
                        }}
                    },
                    {
                        // Errors whose messages name the URL, which carries the secret.
                        "name": "unreachable", "interval": "1s", "count": 3,
                        "consecutiveErrorLimit": 1,
                        "provider": {"web": {
                            "url": format!("http://127.0.0.1:{closed}/check?token={{{{args.token}}}}"),
                            "headers": header,
                            "timeoutSeconds": 2
                        }}
                    }
                ]
            }
        }))
        .await?;
        let done = wait_run(ns, "secret-args", "Error", |r| run_phase(r) == Some(AnalysisPhase::Error)).await?;
        let ok = metric(&done, "authorized").context("no authorized result")?;
        ensure!(
            ok.phase == AnalysisPhase::Successful && ok.successful == Some(1),
            "{}",
            describe(&done)
        );
        ensure!(
            authorized.load(Ordering::SeqCst) >= 1 && rejected.load(Ordering::SeqCst) == 0,
            "the server saw {authorized:?} authorized and {rejected:?} rejected requests"
        );
        let unreachable = metric(&done, "unreachable").context("no unreachable result")?;
        ensure!(
            unreachable.phase == AnalysisPhase::Error && unreachable.consecutive_error == Some(2),
            "{}",
            describe(&done)
        );
        ensure!(
            run_message(&done).contains("consecutiveErrors (2) > consecutiveErrorLimit (1)"),
            "{}",
            describe(&done)
        );
        // Let the controller write its completion events and log lines.
        tokio::time::sleep(Duration::from_secs(2)).await;

        let encoded = serde_json::to_value(k8s_openapi::ByteString(token.clone().into_bytes()))?;
        let encoded = encoded.as_str().unwrap_or_default().to_string();
        let places = [
            ("the AnalysisRun", kubectl(ns, &["get", "analysisrun", "-o", "yaml"]).await?),
            ("the Events", kubectl(ns, &["get", "events", "-o", "yaml"]).await?),
            (
                "the analysis controller's log",
                std::fs::read_to_string(&analysis.log)?,
            ),
            (
                "the analysis controller's /metrics",
                http_get(analysis_port, "/metrics").await?.1,
            ),
        ];
        for (place, text) in &places {
            ensure!(!text.is_empty(), "{place} is empty");
            ensure!(
                !text.contains(&token) && !text.contains(&encoded),
                "the secret's value appears in {place}:\n{text}"
            );
        }
        // The run itself says what went wrong, without the value.
        ensure!(places[0].1.contains("unreachable"), "{}", places[0].1);
        Ok(())
    })
    .await
}

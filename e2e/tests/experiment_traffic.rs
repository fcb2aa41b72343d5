//! Experiment template weights routed through Istio on the real control plane, with the
//! rollout, experiment and analysis controllers and a real Prometheus scraping a test exporter
//! whose Istio request counters the test controls: the seed's cases 2.2.6 (VirtualService host
//! split) and 2.2.9 (DestinationRule subsets). The experiment step routes 20% to each of the
//! baseline and canary experiment Services (stable 60, canary 0) while it runs, its comparison
//! analysis succeeds, the experiment routes (and subsets) go away, and the canary steps complete.
//! In the seed's 2.2.6 transcript the first comparison fails: the Rollout aborts with the seed's
//! message, `retry` runs a second Experiment that succeeds and the update completes; the same
//! runs for 2.2.9, where the abort and the completion also remove the experiment subsets.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use anyhow::{Context as _, Result, ensure};
use e2e::{
    TestNamespace, analysis_run_rows, argo, comparable_get_rollout,
    prometheus::{Exporter, Prometheus},
    rollout_ops::{self, status, wait_phase},
    start_analysis_controller, start_experiment_controller, start_rollout_controller, transcript, wait_until,
    with_namespace,
};
use k8s_openapi::api::core::v1::Service;
use shared_types::{analysis::AnalysisPhase, experiment::Experiment};

const TIMEOUT: Duration = Duration::from_secs(120);
const V2_IMAGE: &str = "ghcr.io/ssup2/mock-go-server:2.0.0";
const EXP_STABLE: &str = "mock-server-experiment-stable";
const EXP_CANARY: &str = "mock-server-experiment-canary";

/// Requests a second answered 200 and 500: a success ratio of 1.
const HIGH: (f64, f64) = (10_000.0, 0.0);
/// A success ratio of 0.1: every measurement of the comparison fails.
const LOW: (f64, f64) = (0.1, 0.9);

/// What the seed's 2.2.6 transcript shows once the first comparison failed (both of its metrics
/// failed, `✖ 6`; the first in the template's order names the cause).
const SEED_ABORTED: &str = "RolloutAborted: Rollout aborted update to revision 2: \
                            Metric \"stable-success-rate\" assessed Failed due to failed (3) > failureLimit (2)";

/// A seed manifest with the Prometheus address pointed at the local server and the experiment
/// duration, measurement interval and canary pause shortened.
fn seed_manifest(text: &str, prometheus: &str) -> Result<String> {
    let edits = [
        (
            "http://prometheus.istio-system.svc.cluster.local:9090",
            prometheus.to_string(),
        ),
        ("duration: 2m", "duration: 25s".to_string()),
        ("interval: 30s", "interval: 5s".to_string()),
        ("pause: {duration: 30s}", "pause: {duration: 5s}".to_string()),
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

/// `(host, subset, weight)` of each destination of the `primary` route.
async fn route(ns: &TestNamespace) -> Result<Vec<(String, String, i64)>> {
    let vs = ns.istio("VirtualService").get("mock-server").await?;
    Ok(vs.data["spec"]["http"][0]["route"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|d| {
            (
                d["destination"]["host"].as_str().unwrap_or_default().to_string(),
                d["destination"]["subset"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                d["weight"].as_i64().unwrap_or(-1),
            )
        })
        .collect())
}

async fn wait_route(ns: &TestNamespace, want: &[(String, String, i64)], what: &str) -> Result<()> {
    wait_until(what, TIMEOUT, || async {
        let got = route(ns).await?;
        Ok(if got == want {
            Ok(())
        } else {
            Err(format!("{got:?}"))
        })
    })
    .await
}

fn dest(host: &str, subset: &str, weight: i64) -> (String, String, i64) {
    (host.into(), subset.into(), weight)
}

/// `(name, rollouts-pod-template-hash)` of each DestinationRule subset.
async fn subsets(ns: &TestNamespace) -> Result<Vec<(String, String)>> {
    let dr = ns.istio("DestinationRule").get("mock-server").await?;
    Ok(dr.data["spec"]["subsets"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap_or_default().to_string(),
                s["labels"]["rollouts-pod-template-hash"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            )
        })
        .collect())
}

fn experiment_phase(ex: &Experiment) -> AnalysisPhase {
    ex.status
        .as_ref()
        .map(|s| s.phase_or_pending())
        .unwrap_or_default()
}

/// What differs between 2.2.6 and 2.2.9.
struct Case {
    manifest: &'static str,
    /// Route destinations of stable and canary: `(host, subset)`.
    stable: (&'static str, &'static str),
    canary: (&'static str, &'static str),
    /// The `destination_service_name` the canary step's `success-rate` template queries.
    success_rate_service: &'static str,
    /// The seed's `get rollout` transcript while the experiment runs, if it applies.
    seed_transcript: Option<SeedTranscript>,
    /// Whether the first Experiment's comparison fails (both templates at a low success ratio)
    /// and `retry` runs a second one, as in the seed's 2.2.6 transcript.
    first_fails: bool,
}

/// A seed `get rollout` transcript (in the plugin's golden directory) and the pod template
/// hashes it shows, replaced by this run's: the seed's 2.2.9 manifest was edited after its
/// transcript was taken, so its hashes are not those of the manifest.
struct SeedTranscript {
    name: &'static str,
    stable_hash: &'static str,
    canary_hash: &'static str,
}

/// The first Experiment `first` fails: the Rollout aborts with the seed's message, its
/// experiment routes (and, with `subsets`, its DestinationRule subsets) go away and all traffic
/// is back to stable (`stable_only`); then `retry`,
/// once the failed Experiment's ReplicaSets are scaled down and its Services deleted (after
/// `scaleDownDelaySeconds`, `delay:passed` in the seed's transcript): as in Argo, a new
/// Experiment cannot take over Services of the same name still owned by the old one.
async fn fail_then_retry(
    ns: &TestNamespace,
    first: &str,
    stable_only: &[(String, String, i64)],
    subsets_too: bool,
) -> Result<()> {
    wait_until(&format!("experiment {first} Failed"), TIMEOUT, || async {
        let Some(ex) = ns.api::<Experiment>().get_opt(first).await? else {
            return Ok(Err("not created".into()));
        };
        let phase = experiment_phase(&ex);
        ensure!(
            phase != AnalysisPhase::Successful,
            "experiment {first} Successful although its comparison sees a 0.1 success ratio"
        );
        Ok(if phase == AnalysisPhase::Failed {
            Ok(())
        } else {
            Err(format!("{phase:?}: {:?}", ex.status))
        })
    })
    .await?;
    wait_until(
        &format!("Degraded with a message starting with {SEED_ABORTED:?}"),
        TIMEOUT,
        || async {
            let (phase, message) = rollout_ops::phase(ns, "mock-server").await?;
            Ok(if phase == "Degraded" && message.starts_with(SEED_ABORTED) {
                Ok(())
            } else {
                Err(format!("{phase}: {message}"))
            })
        },
    )
    .await?;
    wait_route(ns, stable_only, "all traffic back to stable after the abort").await?;
    if subsets_too {
        wait_until(
            "only the stable and canary subsets after the abort",
            TIMEOUT,
            || async {
                let names: Vec<String> = subsets(ns).await?.into_iter().map(|(n, _)| n).collect();
                Ok(if names == ["stable", "canary"] {
                    Ok(())
                } else {
                    Err(format!("{names:?}"))
                })
            },
        )
        .await?;
    }
    // The seed's `get rollout` once aborted: the Experiment and its comparison failed (`✖ 6`).
    let out = argo(ns, &["get", "rollout", "mock-server"]).await?;
    ensure!(out.contains("Status:          ✖ Degraded"), "{out}");
    ensure!(
        out.lines()
            .any(|l| l.starts_with(&format!("Message:         {SEED_ABORTED}"))),
        "{out}"
    );
    ensure!(
        out.lines().any(|l| l.contains(&format!("Σ {first} "))
            && l.contains(" Experiment ")
            && l.contains("✖ Failed")),
        "{out}"
    );
    ensure!(
        analysis_run_rows(&out)
            == vec![format!(
                "α {first}-stable-canary-comparison AnalysisRun ✖ Failed ✖ 6"
            )],
        "{out}"
    );
    wait_until("the failed Experiment's Services deleted", TIMEOUT, || async {
        let mut left = Vec::new();
        for service in [EXP_STABLE, EXP_CANARY] {
            if ns.api::<Service>().get_opt(service).await?.is_some() {
                left.push(service);
            }
        }
        Ok(if left.is_empty() {
            Ok(())
        } else {
            Err(format!("{left:?}"))
        })
    })
    .await?;
    let out = argo(ns, &["get", "rollout", "mock-server"]).await?;
    for template in ["stable", "canary"] {
        ensure!(
            out.lines().any(|l| l.contains(&format!("⧉ {first}-{template} "))
                && l.contains("• ScaledDown")
                && l.contains("delay:passed")),
            "{out}"
        );
    }
    argo(ns, &["retry", "rollout", "mock-server"]).await?;
    Ok(())
}

async fn seed_experiment_case(ns: &mut TestNamespace, case: Case) -> Result<()> {
    let exporter = Exporter::start().await;
    exporter.set_istio_request_rates(case.success_rate_service, "mock-server", HIGH.0, HIGH.1);
    let prometheus = Prometheus::start(&[exporter.addr()]).await?;
    prometheus.wait_until_scraped(Duration::from_secs(30)).await?;
    let url = prometheus.url();
    let (_rollouts, _) = start_rollout_controller(ns, &[]).await?;
    let (_analysis, _) =
        start_analysis_controller(ns, &[], &[("ARGO_ROLLOUTS_PROMETHEUS_ADDRESS", url.as_str())]).await?;
    let (_experiments, _) = start_experiment_controller(ns, &[]).await?;
    ns.apply(&seed_manifest(case.manifest, &url)?).await?;
    wait_phase(ns, "mock-server", "Healthy").await?;
    let old = status(ns, "mock-server").await?.stable_rs.unwrap_or_default();

    argo(
        ns,
        &["set", "image", "mock-server", &format!("mock-server={V2_IMAGE}")],
    )
    .await?;
    let hash = e2e::wait_for("the new ReplicaSet's hash", TIMEOUT, || async {
        let h = status(ns, "mock-server")
            .await?
            .current_pod_hash
            .unwrap_or_default();
        Ok((!h.is_empty() && h != old).then_some(h))
    })
    .await?;
    // The experiment of step 0 (after a retry `<first>-1`, as in the seed) and the workloads its
    // comparison queries (its ReplicaSets).
    let first = format!("mock-server-{hash}-2-0");
    let name = if case.first_fails {
        format!("{first}-1")
    } else {
        first.clone()
    };
    for (service, template) in [(EXP_STABLE, "stable"), (EXP_CANARY, "canary")] {
        if case.first_fails {
            exporter.set_istio_request_rates(service, &format!("{first}-{template}"), LOW.0, LOW.1);
        }
        exporter.set_istio_request_rates(service, &format!("{name}-{template}"), HIGH.0, HIGH.1);
    }
    let stable = |w| dest(case.stable.0, case.stable.1, w);
    let canary = |w| dest(case.canary.0, case.canary.1, w);
    if case.first_fails {
        fail_then_retry(ns, &first, &[stable(100), canary(0)], case.stable.1 == "stable").await?;
    }

    // While the experiment runs: the seed's 60/0/20/20 split.
    let during = vec![
        stable(60),
        canary(0),
        dest(EXP_STABLE, "", 20),
        dest(EXP_CANARY, "", 20),
    ];
    wait_route(ns, &during, "the experiment's 60/0/20/20 split").await?;
    let ex = ns.api::<Experiment>().get(&name).await?;
    ensure!(
        experiment_phase(&ex) == AnalysisPhase::Running,
        "experiment {:?}",
        ex.status
    );
    let templates = ex
        .status
        .clone()
        .unwrap_or_default()
        .template_statuses
        .unwrap_or_default();
    let template_hash = |t: &str| {
        templates
            .iter()
            .find(|s| s.name == t)
            .and_then(|s| s.pod_template_hash.clone())
            .unwrap_or_default()
    };
    let weights = status(ns, "mock-server")
        .await?
        .canary
        .and_then(|c| c.weights)
        .context("no status.canary.weights")?;
    let additional: Vec<(String, String, i32)> = weights
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
        .collect();
    ensure!(
        (weights.canary.weight, weights.stable.weight) == (0, 60)
            && additional
                == vec![
                    (EXP_STABLE.to_string(), template_hash("stable"), 20),
                    (EXP_CANARY.to_string(), template_hash("canary"), 20),
                ],
        "status.canary.weights: canary {} stable {} additional {additional:?}",
        weights.canary.weight,
        weights.stable.weight
    );
    if case.stable.1 == "stable" {
        // 2.2.9: the experiment subsets, named after the Services, select the experiment pods.
        let got = subsets(ns).await?;
        ensure!(
            got == vec![
                ("stable".to_string(), old.clone()),
                ("canary".to_string(), hash.clone()),
                (EXP_STABLE.to_string(), template_hash("stable")),
                (EXP_CANARY.to_string(), template_hash("canary")),
            ],
            "DestinationRule subsets {got:?}"
        );
    }
    if let Some(seed) = &case.seed_transcript {
        // The seed's `get rollout` while the experiment runs (ages, pods and the AnalysisRun's
        // measurement counts aside: the seed's comparison was failing at that moment).
        let without_run = |lines: Vec<String>| -> Vec<String> {
            lines
                .into_iter()
                .filter(|l| !l.contains(" AnalysisRun "))
                .collect()
        };
        let want = without_run(comparable_get_rollout(
            &transcript(seed.name)?
                .replace("Namespace:       default", "Namespace:       X")
                .replace(seed.stable_hash, &old)
                .replace(seed.canary_hash, &hash),
            &ns.name,
        ));
        let last = std::sync::Mutex::new(String::new());
        wait_until(
            "`get rollout` as the seed's experiment transcript",
            TIMEOUT,
            || async {
                let out = argo(ns, &["get", "rollout", "mock-server"]).await?;
                let got = without_run(comparable_get_rollout(&out, &ns.name));
                if got == want {
                    return Ok(Ok(()));
                }
                let ex = ns.api::<Experiment>().get(&name).await?;
                let mut last = last.lock().unwrap();
                ensure!(
                    experiment_phase(&ex) == AnalysisPhase::Running,
                    "the experiment ended before `get rollout` matched; last seen while it ran:\n{last}\nwant:\n{}",
                    want.join("\n")
                );
                *last = out.clone();
                Ok(Err(format!("\n{out}\nwant:\n{}", want.join("\n"))))
            },
        )
        .await?;
        let out = argo(ns, &["get", "rollout", "mock-server"]).await?;
        ensure!(
            out.lines()
                .any(|l| l.contains(&format!("α {name}-stable-canary-comparison"))
                    && l.contains(" AnalysisRun ")),
            "{out}"
        );
    }

    // The comparison succeeds, then the experiment after its duration.
    wait_until("the experiment Successful", TIMEOUT, || async {
        // Routes first: if the experiment still runs afterwards, it ran when they were read.
        let got = route(ns).await?;
        let ex = ns.api::<Experiment>().get(&name).await?;
        let phase = experiment_phase(&ex);
        ensure!(
            phase == AnalysisPhase::Running
                || phase == AnalysisPhase::Successful
                || phase == AnalysisPhase::Pending,
            "experiment ended {phase:?}: {:?}",
            ex.status.as_ref().and_then(|s| s.message.clone())
        );
        // Its routes stay as long as it runs.
        if phase == AnalysisPhase::Running {
            ensure!(got == during, "experiment routes changed while it runs: {got:?}");
        }
        Ok(if phase == AnalysisPhase::Successful {
            Ok(())
        } else {
            Err(format!("{phase:?}"))
        })
    })
    .await?;

    // Only stable and canary routes from then on, and the rollout completes.
    wait_until("the experiment routes removed", TIMEOUT, || async {
        let got = route(ns).await?;
        Ok(if got.len() == 2 {
            Ok(())
        } else {
            Err(format!("{got:?}"))
        })
    })
    .await?;
    wait_until("the update completes", TIMEOUT, || async {
        let got = route(ns).await?;
        ensure!(
            got.len() == 2,
            "experiment routes left after the experiment: {got:?}"
        );
        let (phase, message) = rollout_ops::phase(ns, "mock-server").await?;
        let st = status(ns, "mock-server").await?;
        Ok(
            if phase == "Healthy" && st.stable_rs.as_deref() == Some(hash.as_str()) {
                Ok(())
            } else {
                Err(format!(
                    "{phase} ({message}) stable {:?} route {got:?}",
                    st.stable_rs
                ))
            },
        )
    })
    .await?;
    wait_route(ns, &[stable(100), canary(0)], "promoted: stable 100, canary 0").await?;
    if case.stable.1 == "stable" {
        let got = subsets(ns).await?;
        ensure!(
            got == vec![
                ("stable".to_string(), hash.clone()),
                ("canary".to_string(), hash.clone())
            ],
            "DestinationRule subsets after the update {got:?}"
        );
    }
    let out = argo(ns, &["get", "rollout", "mock-server"]).await?;
    ensure!(out.contains("Status:          ✔ Healthy"), "{out}");
    ensure!(out.contains("  Step:          5/5"), "{out}");
    // The Experiment row as in the seed's later transcripts.
    ensure!(
        out.lines().any(|l| l.contains(&format!("Σ {name} "))
            && l.contains("Experiment")
            && l.contains("✔ Successful")),
        "{out}"
    );
    if case.first_fails {
        ensure!(
            out.lines().any(|l| l.contains(&format!("Σ {first} "))
                && l.contains("Experiment")
                && l.contains("✖ Failed")),
            "{out}"
        );
    }
    Ok(())
}

#[tokio::test]
#[ignore = "needs the local cluster: run scripts/test.sh"]
async fn seed_2_2_6_virtual_service_experiment_routes_then_completes() -> Result<()> {
    with_namespace("exp-traffic-vs", async |ns| {
        seed_experiment_case(
            ns,
            Case {
                manifest: include_str!(
                    "../../examples/seed/manifest15-canary-with-istio-virtual-service-analysistemplate-and-experiment-test-case.yaml"
                ),
                stable: ("mock-server-stable", ""),
                canary: ("mock-server-canary", ""),
                success_rate_service: "mock-server-canary",
                seed_transcript: Some(SeedTranscript {
                    name: "experiment_running",
                    stable_hash: "6579c6cc98",
                    canary_hash: "7c6fcfb847",
                }),
                first_fails: false,
            },
        )
        .await
    })
    .await
}

#[tokio::test]
#[ignore = "needs the local cluster: run scripts/test.sh"]
async fn seed_2_2_9_destination_rule_experiment_subsets_then_completes() -> Result<()> {
    with_namespace("exp-traffic-dr", async |ns| {
        seed_experiment_case(
            ns,
            Case {
                manifest: include_str!(
                    "../../examples/seed/manifest18-canary-with-istio-destination-rule-analysistemplate-and-experiment-test-case.yaml"
                ),
                stable: ("mock-server", "stable"),
                canary: ("mock-server", "canary"),
                success_rate_service: "mock-server",
                seed_transcript: Some(SeedTranscript {
                    name: "experiment_running_destination_rule",
                    stable_hash: "5f59cc96",
                    canary_hash: "789cf554d9",
                }),
                first_fails: false,
            },
        )
        .await
    })
    .await
}

#[tokio::test]
#[ignore = "needs the local cluster: run scripts/test.sh"]
async fn seed_2_2_6_failing_experiment_aborts_then_retry_succeeds() -> Result<()> {
    with_namespace("exp-traffic-retry", async |ns| {
        seed_experiment_case(
            ns,
            Case {
                manifest: include_str!(
                    "../../examples/seed/manifest15-canary-with-istio-virtual-service-analysistemplate-and-experiment-test-case.yaml"
                ),
                stable: ("mock-server-stable", ""),
                canary: ("mock-server-canary", ""),
                success_rate_service: "mock-server-canary",
                // The seed's running transcript shows the first Experiment only.
                seed_transcript: None,
                first_fails: true,
            },
        )
        .await
    })
    .await
}

#[tokio::test]
#[ignore = "needs the local cluster: run scripts/test.sh"]
async fn seed_2_2_9_failing_experiment_aborts_then_retry_succeeds() -> Result<()> {
    with_namespace("exp-traffic-dr-retry", async |ns| {
        seed_experiment_case(
            ns,
            Case {
                manifest: include_str!(
                    "../../examples/seed/manifest18-canary-with-istio-destination-rule-analysistemplate-and-experiment-test-case.yaml"
                ),
                stable: ("mock-server", "stable"),
                canary: ("mock-server", "canary"),
                success_rate_service: "mock-server",
                seed_transcript: None,
                first_fails: true,
            },
        )
        .await
    })
    .await
}

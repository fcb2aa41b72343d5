//! Experiments on the real control plane with the experiment controller (and the analysis
//! controller where an analysis runs): the seed's Manifest 6 (three versions side by side,
//! duration shortened), an analysis that fails the experiment, a missing AnalysisTemplate and
//! duplicate template names, a Rollout's canary `experiment` step (seed 2.2.6 without Istio)
//! with all three controllers (failing, and Inconclusive: paused until `promote`), and the
//! plugin's `create -f`, `get experiment` and `terminate experiment`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::{
    sync::atomic::Ordering,
    time::{Duration, Instant},
};

use anyhow::{Result, ensure};
use e2e::{
    TestNamespace, argo, http_get, http_server,
    rollout_ops::{self, set_image},
    start_analysis_controller, start_experiment_controller, start_rollout_controller, wait_until,
    with_namespace,
};
use k8s_openapi::api::{apps::v1::ReplicaSet, core::v1::Service};
use kube::ResourceExt;
use serde_json::{Value, json};
use shared_types::{
    analysis::{AnalysisPhase, AnalysisRun},
    experiment::{Experiment, TemplateStatusCode},
};

const TIMEOUT: Duration = Duration::from_secs(90);

/// The seed's Manifest 6 (examples/seed/manifest06-experiment-example.yaml) with the duration
/// shortened and the selectors Argo requires (the seed omits them; the CRD rejects that).
fn manifest_6(duration: &str) -> Value {
    let template = |name: &str, version: &str| {
        json!({
            "name": name,
            "replicas": 1,
            "selector": {"matchLabels": {"app": "mock-server", "experiment": name}},
            "template": {
                "metadata": {"labels": {"app": "mock-server", "experiment": name}},
                "spec": {"containers": [{
                    "name": "mock-server",
                    "image": format!("ghcr.io/ssup2/mock-go-server:{version}"),
                    "ports": [{"containerPort": 8080}]
                }]}
            }
        })
    };
    json!({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Experiment",
        "metadata": {"name": "mock-server-experiment"},
        "spec": {
            "duration": duration,
            "templates": [
                template("baseline", "1.0.0"),
                template("canary", "2.0.0"),
                template("experimental", "3.0.0"),
            ]
        }
    })
}

async fn experiment(ns: &TestNamespace, name: &str) -> Result<Experiment> {
    Ok(ns.api::<Experiment>().get(name).await?)
}

/// Waits for the experiment's phase; fails at once if it completes in another phase.
async fn wait_phase(ns: &TestNamespace, name: &str, want: AnalysisPhase) -> Result<Experiment> {
    wait_until(&format!("experiment {name} {want:?}"), TIMEOUT, || async {
        let ex = experiment(ns, name).await?;
        let st = ex.status.clone().unwrap_or_default();
        let phase = st.phase_or_pending();
        if phase == want {
            return Ok(Ok(()));
        }
        ensure!(
            !phase.is_completed(),
            "experiment ended {phase:?}: {:?}",
            st.message
        );
        Ok(Err(format!("{phase:?} {:?}", st.message)))
    })
    .await?;
    experiment(ns, name).await
}

/// `(name, spec.replicas, available)` of the namespace's ReplicaSets, by name.
async fn replica_sets(ns: &TestNamespace) -> Result<Vec<(String, i32, i32)>> {
    let mut out: Vec<_> = ns
        .api::<ReplicaSet>()
        .list(&Default::default())
        .await?
        .items
        .into_iter()
        .map(|rs| {
            let available = rs.status.as_ref().and_then(|s| s.available_replicas).unwrap_or(0);
            (rs.name_any(), rs.spec.replicas.unwrap_or(1), available)
        })
        .collect();
    out.sort();
    Ok(out)
}

#[tokio::test]
#[ignore = "needs the local cluster: run scripts/test.sh"]
async fn seed_manifest_6_runs_three_versions_for_its_duration_then_scales_down() -> Result<()> {
    with_namespace("exp-seed6", async |ns| {
        let (_controller, port) = start_experiment_controller(ns, &[]).await?;
        ns.apply_value(manifest_6("20s")).await?;
        let name = "mock-server-experiment";
        let names = [
            "mock-server-experiment-baseline",
            "mock-server-experiment-canary",
            "mock-server-experiment-experimental",
        ];
        // Three ReplicaSets, one available pod each, and the experiment Running.
        wait_until("three available ReplicaSets", TIMEOUT, || async {
            let rss = replica_sets(ns).await?;
            let want: Vec<_> = names.iter().map(|n| (n.to_string(), 1, 1)).collect();
            Ok(if rss == want {
                Ok(())
            } else {
                Err(format!("{rss:?}"))
            })
        })
        .await?;
        let ex = wait_phase(ns, name, AnalysisPhase::Running).await?;
        let running_seen = Instant::now();
        let st = ex.status.clone().unwrap();
        let available_at = st.available_at.clone().expect("availableAt once Running").0;
        for t in ["baseline", "canary", "experimental"] {
            let ts = st.template_status(t).unwrap();
            assert_eq!(ts.status, Some(TemplateStatusCode::Running), "{t}");
            assert_eq!((ts.replicas, ts.ready_replicas, ts.available_replicas), (1, 1, 1));
        }
        // Labels, hash, annotations and owner of a ReplicaSet.
        let rs = ns.api::<ReplicaSet>().get(names[1]).await?;
        let hash = rs.labels().get("rollouts-pod-template-hash").cloned().unwrap();
        let pod_labels = rs
            .spec
            .template
            .as_ref()
            .unwrap()
            .metadata
            .as_ref()
            .unwrap()
            .labels
            .clone()
            .unwrap();
        assert_eq!(pod_labels.get("experiment").map(String::as_str), Some("canary"));
        assert_eq!(pod_labels.get("rollouts-pod-template-hash"), Some(&hash));
        assert_eq!(
            rs.annotations()
                .get("experiment.argoproj.io/name")
                .map(String::as_str),
            Some(name)
        );
        assert_eq!(
            rs.annotations()
                .get("experiment.argoproj.io/template-name")
                .map(String::as_str),
            Some("canary")
        );
        let owner = &rs.owner_references()[0];
        assert_eq!((owner.kind.as_str(), owner.name.as_str()), ("Experiment", name));
        assert_eq!(
            rs.spec
                .selector
                .match_labels
                .as_ref()
                .unwrap()
                .get("rollouts-pod-template-hash"),
            Some(&hash)
        );
        // Successful once the 20 s have passed since availableAt.
        let ex = wait_phase(ns, name, AnalysisPhase::Successful).await?;
        let st = ex.status.clone().unwrap();
        let ended = k8s_openapi::jiff::Timestamp::now();
        ensure!(
            ended.duration_since(available_at).as_secs() >= 20,
            "Successful {}s after availableAt",
            ended.duration_since(available_at).as_secs()
        );
        ensure!(
            running_seen.elapsed() >= Duration::from_secs(10),
            "ended too early"
        );
        for t in ["baseline", "canary", "experimental"] {
            assert_eq!(
                st.template_status(t).unwrap().status,
                Some(TemplateStatusCode::Successful),
                "{t}"
            );
        }
        let progressing = st.condition("Progressing").unwrap();
        assert_eq!(
            (progressing.status.as_str(), progressing.reason.as_str()),
            ("False", "ExperimentCompleted")
        );
        // Scaled down after the default 30 s delay, marked by the scale-down deadline.
        wait_until("scale-down-deadline annotations", TIMEOUT, || async {
            let rss = ns.api::<ReplicaSet>().list(&Default::default()).await?.items;
            let marked = rss
                .iter()
                .filter(|rs| rs.annotations().contains_key("scale-down-deadline"))
                .count();
            Ok(if marked == 3 {
                Ok(())
            } else {
                Err(format!("{marked} marked"))
            })
        })
        .await?;
        ensure!(
            replica_sets(ns).await?.iter().all(|(_, r, _)| *r == 1),
            "scaled down before the delay"
        );
        wait_until("ReplicaSets scaled to 0", TIMEOUT, || async {
            let rss = replica_sets(ns).await?;
            Ok(if rss.iter().all(|(_, r, a)| (*r, *a) == (0, 0)) {
                Ok(())
            } else {
                Err(format!("{rss:?}"))
            })
        })
        .await?;
        ensure!(
            experiment(ns, name).await?.status.unwrap().phase_or_pending() == AnalysisPhase::Successful,
            "phase changed after scale-down"
        );
        // Metrics.
        let (code, body) = http_get(port, "/metrics").await?;
        ensure!(code == 200, "metrics answered {code}");
        let line = format!(
            "experiment_info{{namespace=\"{}\",name=\"{name}\",phase=\"Successful\"}} 1",
            ns.name
        );
        ensure!(body.contains(&line), "no {line} in\n{body}");
        // The deprecated one-series-per-phase gauge, and the shared reconcile metrics (the
        // error counters have series, as in Argo, only once a reconcile failed).
        for phase in ["Successful", "Running", "Failed"] {
            let line = format!(
                "experiment_phase{{namespace=\"{}\",name=\"{name}\",phase=\"{phase}\"}} {}",
                ns.name,
                u8::from(phase == "Successful")
            );
            ensure!(body.contains(&line), "no {line} in\n{body}");
        }
        for metric in [
            "experiment_reconcile_count{",
            "experiment_reconcile_bucket{",
            "experiment_controller_reconcile_duration_seconds_count ",
        ] {
            ensure!(body.contains(metric), "no {metric} in\n{body}");
        }
        Ok(())
    })
    .await
}

#[tokio::test]
#[ignore = "needs the local cluster: run scripts/test.sh"]
async fn failing_analysis_fails_the_experiment_with_its_message() -> Result<()> {
    with_namespace("exp-analysis", async |ns| {
        let (url, value) = http_server::health_endpoint().await;
        let (_analysis, _) = start_analysis_controller(ns, &[], &[]).await?;
        let (_controller, _) = start_experiment_controller(ns, &[]).await?;
        ns.apply_value(json!({
            "apiVersion": "argoproj.io/v1alpha1", "kind": "AnalysisTemplate",
            "metadata": {"name": "health"},
            "spec": {
                "args": [{"name": "hash"}],
                "metrics": [{
                    "name": "health", "interval": "1s", "count": 60,
                    "successCondition": "result == 1",
                    "provider": {"web": {"url": format!("{url}?hash={{{{args.hash}}}}"), "jsonPath": "{$.ok}"}}
                }]
            }
        }))
        .await?;
        let mut ex = manifest_6("5m");
        ex["metadata"]["name"] = json!("judged");
        ex["spec"]["templates"].as_array_mut().unwrap().truncate(2);
        ex["spec"]["templates"][1]["service"] = json!({});
        ex["spec"]["scaleDownDelaySeconds"] = json!(0);
        ex["spec"]["analyses"] = json!([{
            "name": "health", "templateName": "health",
            "args": [{"name": "hash", "value": "{{templates.canary.podTemplateHash}}"}]
        }]);
        ns.apply_value(ex).await?;
        // The canary's Service while it runs.
        let svc = e2e::wait_for("the canary Service", TIMEOUT, || async {
            Ok(ns.api::<Service>().get_opt("judged-canary").await?)
        })
        .await?;
        let ports = svc.spec.as_ref().unwrap().ports.clone().unwrap();
        assert_eq!(ports[0].port, 8080);
        // Running with a running analysis; then the endpoint turns unhealthy.
        wait_until("a running analysis", TIMEOUT, || async {
            let ex = experiment(ns, "judged").await?;
            let st = ex.status.unwrap_or_default();
            let run = st.analysis_run("health").map(|r| r.phase);
            Ok(
                if st.phase_or_pending() == AnalysisPhase::Running && run == Some(AnalysisPhase::Running) {
                    Ok(())
                } else {
                    Err(format!("{:?} {run:?}", st.phase))
                },
            )
        })
        .await?;
        let st = experiment(ns, "judged").await?.status.unwrap();
        let canary = st.template_status("canary").unwrap();
        assert_eq!(canary.service_name.as_deref(), Some("judged-canary"));
        ensure!(canary.pod_template_hash.is_some(), "no podTemplateHash with the Service");
        value.store(0, Ordering::SeqCst);
        let ex = wait_phase(ns, "judged", AnalysisPhase::Failed).await?;
        let st = ex.status.clone().unwrap();
        let run_status = st.analysis_run("health").unwrap().clone();
        assert_eq!(run_status.analysis_run, "judged-health");
        assert_eq!(run_status.phase, AnalysisPhase::Failed);
        let run = ns.api::<AnalysisRun>().get("judged-health").await?;
        let run_message = run.status.clone().unwrap().message.unwrap_or_default();
        ensure!(!run_message.is_empty(), "the run has no message");
        assert_eq!(st.message.as_deref(), Some(run_message.as_str()));
        assert_eq!(run.owner_references()[0].name, "judged");
        // The hash argument was the canary ReplicaSet's.
        let rs = ns.api::<ReplicaSet>().get("judged-canary").await?;
        let hash = rs.labels().get("rollouts-pod-template-hash").cloned().unwrap();
        assert_eq!(run.spec.args()[0].value.as_deref(), Some(hash.as_str()));
        // The Service selected the canary pods by their hash (Argo selects the hash label only).
        assert_eq!(
            svc.spec.as_ref().unwrap().selector.clone().unwrap(),
            std::collections::BTreeMap::from([("rollouts-pod-template-hash".to_string(), hash.clone())])
        );
        // Everything winds down: ReplicaSets to 0, the Service deleted.
        wait_until("ReplicaSets at 0 and no Service", TIMEOUT, || async {
            let rss = replica_sets(ns).await?;
            let svc = ns.api::<Service>().get_opt("judged-canary").await?;
            Ok(if rss.iter().all(|(_, r, a)| (*r, *a) == (0, 0)) && svc.is_none() {
                Ok(())
            } else {
                Err(format!("{rss:?} service {}", svc.is_some()))
            })
        })
        .await?;
        Ok(())
    })
    .await
}

#[tokio::test]
#[ignore = "needs the local cluster: run scripts/test.sh"]
async fn missing_template_and_duplicate_names_end_in_error() -> Result<()> {
    with_namespace("exp-errors", async |ns| {
        let (_controller, _) = start_experiment_controller(ns, &[]).await?;
        let mut missing = manifest_6("1m");
        missing["metadata"]["name"] = json!("missing");
        missing["spec"]["templates"].as_array_mut().unwrap().truncate(1);
        missing["spec"]["scaleDownDelaySeconds"] = json!(0);
        missing["spec"]["analyses"] = json!([{"name": "a", "templateName": "nowhere"}]);
        ns.apply_value(missing).await?;
        let mut duplicate = manifest_6("1m");
        duplicate["metadata"]["name"] = json!("duplicate");
        duplicate["spec"]["templates"][1]["name"] = json!("baseline");
        duplicate["spec"]["templates"].as_array_mut().unwrap().truncate(2);
        ns.apply_value(duplicate).await?;
        let ex = wait_phase(ns, "missing", AnalysisPhase::Error).await?;
        assert_eq!(
            ex.status.unwrap().message.as_deref(),
            Some("AnalysisTemplate verification failed for analysis 'a': AnalysisTemplate \"nowhere\" not found")
        );
        let ex = wait_phase(ns, "duplicate", AnalysisPhase::Error).await?;
        let st = ex.status.unwrap();
        assert_eq!(
            st.message.as_deref(),
            Some("Experiment duplicate has repeated template name 'baseline' in templates")
        );
        assert_eq!(st.condition("InvalidSpec").unwrap().status, "True");
        wait_until("no running ReplicaSets", TIMEOUT, || async {
            let rss = replica_sets(ns).await?;
            Ok(
                if rss
                    .iter()
                    .all(|(n, r, a)| n.starts_with("missing-") && (*r, *a) == (0, 0))
                {
                    Ok(())
                } else {
                    Err(format!("{rss:?}"))
                },
            )
        })
        .await?;
        Ok(())
    })
    .await
}

/// An AnalysisTemplate measuring the health endpoint with the canary hash as argument.
fn health_template(url: &str, count: i32) -> Value {
    json!({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "AnalysisTemplate",
        "metadata": {"name": "health"},
        "spec": {
            "args": [{"name": "hash"}],
            "metrics": [{
                "name": "health", "interval": "1s", "count": count,
                "successCondition": "result == 1",
                "provider": {"web": {"url": format!("{url}?hash={{{{args.hash}}}}"), "jsonPath": "{$.ok}"}}
            }]
        }
    })
}

/// A canary Rollout whose second step is an experiment of the stable and canary versions.
fn rollout_with_experiment_step(duration: &str) -> Value {
    json!({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
        "metadata": {"name": "mock-server"},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "mock-server"}},
            "template": {
                "metadata": {"labels": {"app": "mock-server"}},
                "spec": {"containers": [{"name": "mock-server", "image": "ghcr.io/ssup2/mock-go-server:1.0.0",
                    "ports": [{"containerPort": 8080}]}]}
            },
            "strategy": {"canary": {"steps": [
                {"setWeight": 50},
                {"experiment": {
                    "duration": duration,
                    "templates": [
                        {"name": "stable", "specRef": "stable", "replicas": 1},
                        {"name": "canary", "specRef": "canary", "replicas": 1}
                    ],
                    "analyses": [{
                        "name": "health", "templateName": "health",
                        "args": [{"name": "hash", "value": "{{templates.canary.podTemplateHash}}"}]
                    }]
                }},
                {"setWeight": 100}
            ]}}
        }
    })
}

/// The namespace's single Experiment once it exists.
async fn the_experiment(ns: &TestNamespace) -> Result<Experiment> {
    e2e::wait_for("the rollout's Experiment", TIMEOUT, || async {
        let list = ns.api::<Experiment>().list(&Default::default()).await?.items;
        Ok(list.into_iter().next())
    })
    .await
}

#[tokio::test]
#[ignore = "needs the local cluster: run scripts/test.sh"]
async fn rollout_experiment_step_runs_stable_and_canary_then_continues() -> Result<()> {
    with_namespace("exp-step", async |ns| {
        let (url, _health) = http_server::health_endpoint().await;
        let (_rc, _) = start_rollout_controller(ns, &[]).await?;
        let (_ac, _) = start_analysis_controller(ns, &[], &[]).await?;
        let (_ec, _) = start_experiment_controller(ns, &[]).await?;
        ns.apply_value(health_template(&url, 2)).await?;
        ns.apply_value(rollout_with_experiment_step("10s")).await?;
        rollout_ops::wait_phase(ns, "mock-server", "Healthy").await?;
        set_image(ns, "mock-server", "ghcr.io/ssup2/mock-go-server:2.0.0").await?;
        let ex = the_experiment(ns).await?;
        let name = ex.name_any();
        ensure!(
            name.starts_with("mock-server-") && name.ends_with("-2-1"),
            "{name}"
        );
        wait_phase(ns, &name, AnalysisPhase::Running).await?;
        // While it runs the Rollout names it.
        let current = rollout_ops::status(ns, "mock-server")
            .await?
            .canary
            .and_then(|c| c.current_experiment);
        ensure!(current.as_deref() == Some(name.as_str()), "current {current:?}");
        // Its ReplicaSets run the stable and the canary pod templates.
        let rss = ns.api::<ReplicaSet>();
        let canary = rss.get(&format!("{name}-canary")).await?;
        let stable = rss.get(&format!("{name}-stable")).await?;
        let image = |rs: &ReplicaSet| {
            rs.spec
                .template
                .as_ref()
                .unwrap()
                .spec
                .as_ref()
                .unwrap()
                .containers[0]
                .image
                .clone()
                .unwrap_or_default()
        };
        assert_eq!(image(&canary), "ghcr.io/ssup2/mock-go-server:2.0.0");
        assert_eq!(image(&stable), "ghcr.io/ssup2/mock-go-server:1.0.0");
        // The analysis got the canary ReplicaSet's hash.
        let run = e2e::wait_for("the experiment's AnalysisRun", TIMEOUT, || async {
            Ok(ns.api::<AnalysisRun>().get_opt(&format!("{name}-health")).await?)
        })
        .await?;
        let hash = canary
            .labels()
            .get("rollouts-pod-template-hash")
            .cloned()
            .unwrap();
        assert_eq!(run.spec.args()[0].value.as_deref(), Some(hash.as_str()));
        // After the duration the step completes and the rollout finishes.
        wait_phase(ns, &name, AnalysisPhase::Successful).await?;
        rollout_ops::wait_phase(ns, "mock-server", "Healthy").await?;
        let st = rollout_ops::status(ns, "mock-server").await?;
        ensure!(
            st.canary.and_then(|c| c.current_experiment).is_none(),
            "currentExperiment kept after the step"
        );
        Ok(())
    })
    .await
}

#[tokio::test]
#[ignore = "needs the local cluster: run scripts/test.sh"]
async fn rollout_experiment_step_with_a_failing_analysis_aborts_the_rollout() -> Result<()> {
    with_namespace("exp-step-fail", async |ns| {
        let (url, health) = http_server::health_endpoint().await;
        health.store(0, Ordering::SeqCst);
        let (_rc, _) = start_rollout_controller(ns, &[]).await?;
        let (_ac, _) = start_analysis_controller(ns, &[], &[]).await?;
        let (_ec, _) = start_experiment_controller(ns, &[]).await?;
        ns.apply_value(health_template(&url, 3)).await?;
        ns.apply_value(rollout_with_experiment_step("5m")).await?;
        rollout_ops::wait_phase(ns, "mock-server", "Healthy").await?;
        set_image(ns, "mock-server", "ghcr.io/ssup2/mock-go-server:2.0.0").await?;
        let ex = the_experiment(ns).await?;
        let name = ex.name_any();
        let ex = wait_phase(ns, &name, AnalysisPhase::Failed).await?;
        let ex_message = ex.status.unwrap().message.unwrap_or_default();
        ensure!(ex_message.contains("assessed Failed"), "{ex_message}");
        rollout_ops::wait_phase(ns, "mock-server", "Degraded").await?;
        let (_, message) = rollout_ops::phase(ns, "mock-server").await?;
        ensure!(
            message.contains(&ex_message),
            "rollout message {message:?} lacks {ex_message:?}"
        );
        // The experiment's ReplicaSets wind down (30 s default delay).
        wait_until("experiment ReplicaSets at 0", TIMEOUT, || async {
            let rss = replica_sets(ns).await?;
            let exp: Vec<_> = rss.iter().filter(|(n, _, _)| n.starts_with(&name)).collect();
            Ok(if exp.len() == 2 && exp.iter().all(|(_, r, _)| *r == 0) {
                Ok(())
            } else {
                Err(format!("{rss:?}"))
            })
        })
        .await?;
        Ok(())
    })
    .await
}

#[tokio::test]
#[ignore = "needs the local cluster: run scripts/test.sh"]
async fn killing_the_controller_keeps_the_duration_and_the_replica_sets() -> Result<()> {
    with_namespace("exp-kill", async |ns| {
        let (mut controller, _) = start_experiment_controller(ns, &[]).await?;
        let mut ex = manifest_6("30s");
        ex["spec"]["templates"].as_array_mut().unwrap().truncate(2);
        ex["spec"]["scaleDownDelaySeconds"] = json!(0);
        ns.apply_value(ex).await?;
        let name = "mock-server-experiment";
        let before = wait_phase(ns, name, AnalysisPhase::Running).await?;
        let available_at = before.status.unwrap().available_at.unwrap();
        let uids = |list: Vec<ReplicaSet>| {
            let mut v: Vec<_> = list.into_iter().map(|rs| (rs.name_any(), rs.uid())).collect();
            v.sort();
            v
        };
        let rs_before = uids(ns.api::<ReplicaSet>().list(&Default::default()).await?.items);
        ensure!(rs_before.len() == 2, "{rs_before:?}");
        controller.kill().await?;
        // A new process (it takes the Lease over once the old one expires).
        let (_controller, _) = start_experiment_controller(ns, &[]).await?;
        let after = wait_phase(ns, name, AnalysisPhase::Successful).await?;
        assert_eq!(after.status.unwrap().available_at, Some(available_at));
        let rs_after = uids(ns.api::<ReplicaSet>().list(&Default::default()).await?.items);
        assert_eq!(rs_after, rs_before);
        Ok(())
    })
    .await
}

#[tokio::test]
#[ignore = "needs the local cluster: run scripts/test.sh"]
async fn rollout_experiment_step_inconclusive_pauses_until_promoted() -> Result<()> {
    with_namespace("exp-step-inconclusive", async |ns| {
        // Neither `result == 1` nor `result == 0`: every measurement is Inconclusive.
        let (url, health) = http_server::health_endpoint().await;
        health.store(2, Ordering::SeqCst);
        let (_rc, _) = start_rollout_controller(ns, &[]).await?;
        let (_ac, _) = start_analysis_controller(ns, &[], &[]).await?;
        let (_ec, _) = start_experiment_controller(ns, &[]).await?;
        let mut template = health_template(&url, 2);
        template["spec"]["metrics"][0]["failureCondition"] = json!("result == 0");
        ns.apply_value(template).await?;
        ns.apply_value(rollout_with_experiment_step("10s")).await?;
        rollout_ops::wait_phase(ns, "mock-server", "Healthy").await?;
        set_image(ns, "mock-server", "ghcr.io/ssup2/mock-go-server:2.0.0").await?;
        let name = the_experiment(ns).await?.name_any();
        let ex = wait_phase(ns, &name, AnalysisPhase::Inconclusive).await?;
        let run = ex.status.unwrap().analysis_run("health").cloned().unwrap();
        assert_eq!(run.phase, AnalysisPhase::Inconclusive);
        // The Rollout pauses with Argo's reason, and stays at the experiment step.
        rollout_ops::wait_phase(ns, "mock-server", "Paused").await?;
        let (_, message) = rollout_ops::phase(ns, "mock-server").await?;
        assert_eq!(message, "InconclusiveExperiment");
        let reasons = |st: &shared_types::rollout::RolloutStatus| -> Vec<String> {
            st.pause_conditions
                .iter()
                .flatten()
                .map(|c| c.reason.clone())
                .collect()
        };
        let st = rollout_ops::status(ns, "mock-server").await?;
        assert_eq!(reasons(&st), ["InconclusiveExperiment"]);
        assert_eq!(st.current_step_index, Some(1));
        let out = argo(ns, &["get", "rollout", "mock-server"]).await?;
        ensure!(
            out.lines()
                .any(|l| l.starts_with("Status:") && l.contains("Paused")),
            "{out}"
        );
        // It stays paused: no step progress and no other Experiment.
        tokio::time::sleep(Duration::from_secs(5)).await;
        let st = rollout_ops::status(ns, "mock-server").await?;
        assert_eq!(reasons(&st), ["InconclusiveExperiment"]);
        assert_eq!(st.current_step_index, Some(1));
        assert_eq!(
            e2e::names(&ns.api::<Experiment>()).await?,
            std::slice::from_ref(&name)
        );

        // The endpoint recovers; `promote` runs the step again with a new Experiment.
        health.store(1, Ordering::SeqCst);
        let out = argo(ns, &["promote", "mock-server"]).await?;
        ensure!(out.contains("rollout 'mock-server' promoted"), "{out}");
        let next = format!("{name}-1");
        e2e::wait_for("the second Experiment", TIMEOUT, || async {
            Ok(ns.api::<Experiment>().get_opt(&next).await?)
        })
        .await?;
        wait_phase(ns, &next, AnalysisPhase::Successful).await?;
        rollout_ops::wait_phase(ns, "mock-server", "Healthy").await?;
        let st = rollout_ops::status(ns, "mock-server").await?;
        ensure!(
            reasons(&st).is_empty(),
            "pause conditions {:?}",
            st.pause_conditions
        );
        assert_eq!(st.current_step_index, Some(3));
        assert_eq!(
            experiment(ns, &name).await?.status.unwrap().phase_or_pending(),
            AnalysisPhase::Inconclusive
        );
        Ok(())
    })
    .await
}

#[tokio::test]
#[ignore = "needs the local cluster: run scripts/test.sh"]
async fn plugin_creates_gets_and_terminates_an_experiment() -> Result<()> {
    with_namespace("exp-plugin", async |ns| {
        let (url, _health) = http_server::health_endpoint().await;
        let (_analysis, _) = start_analysis_controller(ns, &[], &[]).await?;
        let (_controller, _) = start_experiment_controller(ns, &[]).await?;
        // A long required analysis and no duration: only `terminate` ends it.
        ns.apply_value(health_template(&url, 600)).await?;
        let mut ex = manifest_6("");
        ex["metadata"]["name"] = json!("by-plugin");
        ex["spec"].as_object_mut().unwrap().remove("duration");
        ex["spec"]["templates"].as_array_mut().unwrap().truncate(2);
        ex["spec"]["scaleDownDelaySeconds"] = json!(0);
        ex["spec"]["analyses"] = json!([{
            "name": "health", "templateName": "health", "requiredForCompletion": true,
            "args": [{"name": "hash", "value": "{{templates.canary.podTemplateHash}}"}]
        }]);
        let file = std::env::temp_dir().join(format!("{}-experiment.yaml", ns.name));
        std::fs::write(&file, serde_json::to_string_pretty(&ex)?)?;
        let out = argo(ns, &["create", "-f", file.to_str().unwrap()]).await;
        let _ = std::fs::remove_file(&file);
        let out = out?;
        ensure!(out.trim() == "experiment.argoproj.io/by-plugin created", "{out}");
        wait_until("Running with a running analysis", TIMEOUT, || async {
            let st = experiment(ns, "by-plugin").await?.status.unwrap_or_default();
            let run = st.analysis_run("health").map(|r| r.phase);
            Ok(
                if st.phase_or_pending() == AnalysisPhase::Running && run == Some(AnalysisPhase::Running) {
                    Ok(())
                } else {
                    Err(format!("{:?} {run:?}", st.phase))
                },
            )
        })
        .await?;
        // `get experiment`: the header and the tree of its ReplicaSets and AnalysisRun.
        let out = argo(ns, &["get", "experiment", "by-plugin"]).await?;
        let line = |prefix: &str, has: &str| out.lines().any(|l| l.starts_with(prefix) && l.contains(has));
        ensure!(line("Name:", "by-plugin"), "{out}");
        ensure!(line("Namespace:", &ns.name), "{out}");
        ensure!(line("Status:", "Running"), "{out}");
        ensure!(
            out.lines()
                .any(|l| l.contains("Σ by-plugin ") && l.contains("Experiment") && l.contains("Running")),
            "{out}"
        );
        for t in ["baseline", "canary"] {
            ensure!(
                out.lines()
                    .any(|l| l.contains(&format!("⧉ by-plugin-{t} ")) && l.contains("ReplicaSet")),
                "{out}"
            );
        }
        ensure!(
            out.lines()
                .any(|l| l.contains("α by-plugin-health ") && l.contains("AnalysisRun")),
            "{out}"
        );
        let (code, _, stderr) = e2e::argo_rollouts(ns, &["get", "experiment", "nowhere"]).await?;
        ensure!(code != 0 && stderr.contains("nowhere"), "{code}: {stderr}");

        // `terminate experiment` (Argo's plugin prints `retried` here): the running required
        // analysis is terminated and the experiment ends Successful, its pods scaled down.
        let out = argo(ns, &["terminate", "experiment", "by-plugin"]).await?;
        ensure!(out.trim() == "experiment 'by-plugin' retried", "{out}");
        let ex = wait_phase(ns, "by-plugin", AnalysisPhase::Successful).await?;
        ensure!(ex.spec.is_terminating(), "spec.terminate not set");
        let run = ns.api::<AnalysisRun>().get("by-plugin-health").await?;
        ensure!(run.spec.is_terminating(), "the AnalysisRun was not terminated");
        assert_eq!(
            run.status.unwrap_or_default().phase_or_pending(),
            AnalysisPhase::Successful
        );
        wait_until("ReplicaSets at 0", TIMEOUT, || async {
            let rss = replica_sets(ns).await?;
            Ok(
                if rss.len() == 2 && rss.iter().all(|(_, r, a)| (*r, *a) == (0, 0)) {
                    Ok(())
                } else {
                    Err(format!("{rss:?}"))
                },
            )
        })
        .await?;
        let out = argo(ns, &["get", "experiment", "by-plugin"]).await?;
        ensure!(
            out.lines()
                .any(|l| l.starts_with("Status:") && l.contains("Successful")),
            "{out}"
        );
        Ok(())
    })
    .await
}

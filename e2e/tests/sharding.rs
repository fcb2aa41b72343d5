//! The analysis controller sharded over three replicas (`--sharding`, membership in Leases) on
//! the real control plane: 30 concurrent AnalysisRuns against a local web metric are split over
//! the replicas, every measurement is taken once, and when a replica is killed (-9) the others
//! take its runs over within seconds and the runs complete with every measurement.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, ensure};
use axum::{Json, Router, extract::Query, routing::get};
use e2e::{
    Process, TestNamespace, http_get, http_server, start_analysis_controller, wait_until, with_namespace,
};
use kube::{ResourceExt, api::ListParams};
use serde_json::json;
use shared_types::analysis::{AnalysisPhase, AnalysisRun};

const RUNS: usize = 30;
const COUNT: i32 = 12;
const INTERVAL: Duration = Duration::from_secs(2);
const TIMEOUT: Duration = Duration::from_secs(120);

/// A gauge of a replica's `/metrics` (unlabelled series).
async fn gauge(port: u16, name: &str) -> Result<i64> {
    let (_, body) = http_get(port, "/metrics").await?;
    body.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
        .with_context(|| format!("{name} not in /metrics"))
}

/// Every replica's `(members seen, runs owned)`.
async fn shares(replicas: &[(Process, u16)]) -> Result<Vec<(i64, i64)>> {
    let mut out = Vec::new();
    for (_, port) in replicas {
        out.push((
            gauge(*port, "analysis_controller_shard_members").await?,
            gauge(*port, "analysis_controller_shard_owned_runs").await?,
        ));
    }
    Ok(out)
}

async fn runs(ns: &TestNamespace) -> Result<Vec<AnalysisRun>> {
    Ok(ns.api::<AnalysisRun>().list(&ListParams::default()).await?.items)
}

#[tokio::test]
#[ignore = "needs the local cluster: run scripts/test.sh"]
async fn three_replicas_split_runs_measure_each_once_and_take_over_a_killed_one() -> Result<()> {
    with_namespace("shard", async |ns| {
        // The metric counts the calls per run.
        let calls: Arc<Mutex<BTreeMap<String, usize>>> = Arc::default();
        let counter = calls.clone();
        let router = Router::new().route(
            "/metric",
            get(move |Query(q): Query<BTreeMap<String, String>>| {
                *counter.lock().unwrap().entry(q.get("run").cloned().unwrap_or_default()).or_insert(0) += 1;
                async { Json(json!({"value": 1})) }
            }),
        );
        let addr = http_server::serve(router).await;
        let flags = [
            "--sharding",
            "--shard-lease-duration",
            "6s",
            "--shard-renew-period",
            "1s",
            "--shard-handoff",
            "2s",
        ];
        let mut replicas = Vec::new();
        for _ in 0..3 {
            replicas.push(start_analysis_controller(ns, &flags, &[]).await?);
        }
        wait_until("three members seen by every replica", TIMEOUT, || async {
            let s = shares(&replicas).await?;
            Ok(if s.iter().all(|(members, _)| *members == 3) { Ok(()) } else { Err(format!("{s:?}")) })
        })
        .await?;
        for i in 0..RUNS {
            let name = format!("run-{i:02}");
            ns.apply_value(json!({
                "apiVersion": "argoproj.io/v1alpha1", "kind": "AnalysisRun",
                "metadata": {"name": name},
                "spec": {
                    "metrics": [{
                        "name": "up", "interval": "2s", "count": COUNT,
                        "successCondition": "result == 1",
                        "provider": {"web": {"url": format!("http://{addr}/metric?run={name}"), "jsonPath": "{$.value}"}}
                    }],
                    "measurementRetention": [{"metricName": "up", "limit": 50}]
                }
            }))
            .await?;
        }
        // Every run has exactly one owner, and each replica owns some.
        let spread = e2e::wait_for("the runs spread over the replicas", TIMEOUT, || async {
            let s = shares(&replicas).await?;
            let owned: Vec<i64> = s.iter().map(|(_, o)| *o).collect();
            Ok((owned.iter().sum::<i64>() == RUNS as i64 && owned.iter().all(|&o| o > 0)).then_some(owned))
        })
        .await?;
        eprintln!("spread over 3 replicas: {spread:?}");

        // Mid-way, kill the replica owning the most runs.
        tokio::time::sleep(INTERVAL * 3).await;
        let victim = (0..3).max_by_key(|&i| spread[i]).unwrap();
        let (mut killed, _) = replicas.remove(victim);
        killed.kill().await?;
        let killed_at = Instant::now();
        let takeover = e2e::wait_for("the survivors to own every run", TIMEOUT, || async {
            let s = shares(&replicas).await?;
            let owned: i64 = s.iter().map(|(_, o)| *o).sum();
            Ok((s.iter().all(|(members, _)| *members == 2) && owned == RUNS as i64).then(|| killed_at.elapsed()))
        })
        .await?;
        let after: Vec<i64> = shares(&replicas).await?.iter().map(|(_, o)| *o).collect();
        eprintln!("replica {victim} (owning {}) killed; the other two own {after:?} after {takeover:?}", spread[victim]);
        ensure!(takeover < Duration::from_secs(15), "takeover took {takeover:?}");

        // Every run completes with every measurement, each taken once.
        wait_until("every run Successful", TIMEOUT, || async {
            let all = runs(ns).await?;
            let done = all
                .iter()
                .filter(|r| r.status.as_ref().is_some_and(|s| s.phase_or_pending() == AnalysisPhase::Successful))
                .count();
            Ok(if done == RUNS { Ok(()) } else { Err(format!("{done}/{RUNS} Successful")) })
        })
        .await?;
        let calls = calls.lock().unwrap().clone();
        let mut widest_gap = Duration::ZERO;
        for run in runs(ns).await? {
            let name = run.name_any();
            let status = run.status.clone().unwrap();
            let result = &status.metric_results.as_ref().unwrap()[0];
            let taken: Vec<_> = result.measurements.iter().flatten().collect();
            assert_eq!(result.count, Some(COUNT), "{name}: {result:?}");
            assert_eq!(taken.len(), COUNT as usize, "{name}: measurements in status");
            assert_eq!(calls.get(&name).copied(), Some(COUNT as usize), "{name}: calls to the metric");
            // No two measurements of a run at once: starts at least half an interval apart.
            let starts: Vec<_> = taken.iter().filter_map(|m| m.started_at.clone()).collect();
            for pair in starts.windows(2) {
                let gap = Duration::try_from(pair[1].0.duration_since(pair[0].0)).unwrap_or_default();
                ensure!(gap >= INTERVAL / 2, "{name}: measurements {gap:?} apart: {starts:?}");
                widest_gap = widest_gap.max(gap);
            }
        }
        eprintln!("widest gap between two measurements of a run: {widest_gap:?} (interval {INTERVAL:?})");
        Ok(())
    })
    .await
}

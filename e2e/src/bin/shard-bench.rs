//! `shard-bench`: throughput of the analysis controller sharded over 1, 2, 3, ... replicas
//! (`--sharding`). For each replica count it starts that many controllers in a fresh namespace
//! of an existing cluster (the e2e tests' `ARGO_RS_E2E_KUBECONFIG`, `ARGO_RS_BIN_DIR`), creates
//! `--runs` AnalysisRuns that each take `--count` measurements of a local web metric every
//! `--interval`, and reports how long they took, the measurements recorded per second, and the
//! lag of each measurement behind its schedule (start minus previous start minus interval).
//! `--analysis-threads` bounds each replica's reconcile workers, so that one replica saturates
//! at a load the machine as a whole still carries.
//!
//! ```sh
//! ARGO_RS_E2E_KUBECONFIG=... ARGO_RS_BIN_DIR=target/release cargo run -p e2e --release --bin shard-bench -- --replicas 1,2,3
//! ```

use std::{
    process::ExitCode,
    time::{Duration, Instant},
};

use anyhow::{Result, ensure};
use axum::{Json, Router, routing::get};
use clap::Parser;
use e2e::{http_server, start_analysis_controller, wait_until, with_namespace};
use kube::api::ListParams;
use serde_json::json;
use shared_types::analysis::{AnalysisPhase, AnalysisRun};

#[derive(Parser, Debug, Clone)]
#[command(
    name = "shard-bench",
    about = "Throughput of the sharded analysis controller by replica count"
)]
struct Args {
    /// Replica counts to measure, in order.
    #[arg(
        long,
        env = "SHARD_BENCH_REPLICAS",
        value_delimiter = ',',
        default_value = "1,2,3"
    )]
    replicas: Vec<usize>,
    /// AnalysisRuns per measurement.
    #[arg(long, env = "SHARD_BENCH_RUNS", default_value_t = 150)]
    runs: usize,
    /// Measurements per run.
    #[arg(long, env = "SHARD_BENCH_COUNT", default_value_t = 20)]
    count: usize,
    /// Interval between a run's measurements (Go duration).
    #[arg(long, env = "SHARD_BENCH_INTERVAL", default_value = "1s")]
    interval: String,
    /// Reconcile workers per replica (`--analysis-threads`).
    #[arg(long, env = "SHARD_BENCH_ANALYSIS_THREADS", default_value_t = 2)]
    analysis_threads: u16,
}

/// One replica count's outcome.
struct Outcome {
    replicas: usize,
    wall: Duration,
    measurements: usize,
    lag_p50: Duration,
    lag_p99: Duration,
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

async fn measure(args: &Args, replicas: usize, metric_url: &str) -> Result<Outcome> {
    let interval = shared_types::duration::parse_duration(&args.interval)?;
    let mut outcome = None;
    with_namespace("shard-bench", async |ns| {
        let threads = args.analysis_threads.to_string();
        let flags = [
            "--sharding",
            "--shard-lease-duration",
            "6s",
            "--shard-renew-period",
            "1s",
            "--shard-handoff",
            "2s",
            "--analysis-threads",
            threads.as_str(),
        ];
        let mut processes = Vec::new();
        for _ in 0..replicas {
            processes.push(start_analysis_controller(ns, &flags, &[]).await?);
        }
        // Let every replica see the whole group before the runs arrive.
        tokio::time::sleep(Duration::from_secs(3)).await;
        let started = Instant::now();
        for i in 0..args.runs {
            ns.apply_value(json!({
                "apiVersion": "argoproj.io/v1alpha1", "kind": "AnalysisRun",
                "metadata": {"name": format!("run-{i:04}")},
                "spec": {
                    "metrics": [{
                        "name": "up", "interval": args.interval, "count": args.count,
                        "successCondition": "result == 1",
                        "provider": {"web": {"url": metric_url, "jsonPath": "{$.value}"}}
                    }],
                    "measurementRetention": [{"metricName": "up", "limit": args.count}]
                }
            }))
            .await?;
        }
        let api = ns.api::<AnalysisRun>();
        wait_until("every run Successful", Duration::from_secs(1800), || async {
            let runs = api.list(&ListParams::default()).await?.items;
            let done = runs
                .iter()
                .filter(|r| {
                    r.status
                        .as_ref()
                        .is_some_and(|s| s.phase_or_pending() == AnalysisPhase::Successful)
                })
                .count();
            eprint!(
                "\r{replicas} replica(s): {done}/{} runs done after {:?}   ",
                args.runs,
                started.elapsed()
            );
            Ok(if done == args.runs {
                Ok(())
            } else {
                Err(format!("{done} done"))
            })
        })
        .await?;
        let wall = started.elapsed();
        eprintln!();
        let mut lags = Vec::new();
        let mut measurements = 0;
        for run in api.list(&ListParams::default()).await?.items {
            let status = run.status.unwrap_or_default();
            for result in status.metric_results.iter().flatten() {
                let starts: Vec<_> = result
                    .measurements
                    .iter()
                    .flatten()
                    .filter_map(|m| m.started_at.clone())
                    .collect();
                measurements += starts.len();
                for pair in starts.windows(2) {
                    let gap = Duration::try_from(pair[1].0.duration_since(pair[0].0)).unwrap_or_default();
                    lags.push(gap.saturating_sub(interval));
                }
            }
        }
        ensure!(
            measurements == args.runs * args.count,
            "{measurements} measurements recorded"
        );
        lags.sort();
        outcome = Some(Outcome {
            replicas,
            wall,
            measurements,
            lag_p50: percentile(&lags, 50.0),
            lag_p99: percentile(&lags, 99.0),
        });
        drop(processes);
        Ok(())
    })
    .await?;
    outcome.ok_or_else(|| anyhow::anyhow!("no outcome"))
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let addr =
        http_server::serve(Router::new().route("/metric", get(|| async { Json(json!({"value": 1})) }))).await;
    let url = format!("http://{addr}/metric");
    let mut outcomes = Vec::new();
    for &replicas in &args.replicas {
        match measure(&args, replicas, &url).await {
            Ok(o) => outcomes.push(o),
            Err(e) => {
                eprintln!("shard-bench: {replicas} replica(s): {e:#}");
                return ExitCode::from(2);
            }
        }
    }
    let base = outcomes
        .first()
        .map(|o| o.measurements as f64 / o.wall.as_secs_f64());
    println!(
        "{} runs x {} measurements every {}, --analysis-threads {} per replica\n",
        args.runs, args.count, args.interval, args.analysis_threads
    );
    println!("| replicas | wall | measurements/s | vs 1 replica | lag p50 | lag p99 |");
    println!("|---|---|---|---|---|---|");
    for o in &outcomes {
        let rate = o.measurements as f64 / o.wall.as_secs_f64();
        println!(
            "| {} | {:.1} s | {:.1} | {:.2}x | {:.2} s | {:.2} s |",
            o.replicas,
            o.wall.as_secs_f64(),
            rate,
            base.map_or(1.0, |b| rate / b),
            o.lag_p50.as_secs_f64(),
            o.lag_p99.as_secs_f64()
        );
    }
    ExitCode::SUCCESS
}

//! The benchmark run: flags, the cluster, the controller, the three phases, the audit log and
//! the results.

use std::{
    path::PathBuf,
    sync::{Arc, Mutex, atomic::Ordering},
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, anyhow, bail};
use futures::FutureExt;
use jiff::Timestamp;
use regex::Regex;

use super::{
    audit::{self, Window},
    cluster::{Cluster, Controller, size_nodes},
    common::{
        self, Launch, bench_client, create_namespace, progress_done, progress_interval, repo_root, round3,
        shutdown_signal, unique_dir,
    },
    monitor::{Done, Monitor},
    plot::{self, PlotData},
    report::{
        AuditSummary, ClusterInfo, ControllerInfo, IdleResult, Latency, Machine, Params, PhaseRequests,
        PhaseResources, PhaseResult, Report, Source, load_average,
    },
    stats::summarize,
    workload::{self, Entry, Marks, SharedTracker, Tracker, Watches, lock},
};

/// The default `--controller-cmd`: our release-built controller, cluster-wide, with its admin
/// endpoints on a free port.
pub const DEFAULT_CONTROLLER_CMD: &str = "{rust_bin}/rollout-controller --kubeconfig {kubeconfig} \
     --metrics-addr 127.0.0.1:{port} --healthz-addr 127.0.0.1:{port}";
/// The User-Agent of our controller's requests: `rollout-controller/<version>` once it sets one
/// (shared-runtime's client), none before that (kube-rs 5 sends no User-Agent header), while
/// every other client of the local cluster sends one.
pub const DEFAULT_CONTROLLER_USER_AGENT: &str = "^(rollout-controller/|$)";
/// The User-Agent of the benchmark's own requests.
pub const BENCH_USER_AGENT: &str = "argo-rs-scale-bench";
/// Image of the Rollouts before the change.
pub const IMAGE: &str = "example.com/app:1";
/// Image after the change.
pub const NEW_IMAGE: &str = "example.com/app:2";

/// Measures how fast a Rollout controller carries N canary Rollouts through an image change
/// and a promotion on a local control plane, and how many API requests it sends doing so.
#[derive(clap::Parser, Clone, Debug)]
#[command(name = "scale-bench", version)]
pub struct Args {
    /// Number of Rollouts.
    #[arg(long, env = "SCALE_BENCH_ROLLOUTS", default_value_t = 100)]
    pub rollouts: usize,
    /// Replicas per Rollout.
    #[arg(long, env = "SCALE_BENCH_REPLICAS", default_value_t = 2)]
    pub replicas: u32,
    /// The controller to measure, as a command line (split like a shell does, without
    /// expansions). Placeholders: {kubeconfig} (the cluster's kubeconfig; KUBECONFIG is set to it
    /// as well), {port} (a free loopback port), {namespace} (the benchmark namespace),
    /// {workdir} (the cluster's WORKDIR) and {rust_bin} (`<cargo target dir>/release`).
    #[arg(long, env = "SCALE_BENCH_CONTROLLER_CMD", default_value = DEFAULT_CONTROLLER_CMD)]
    pub controller_cmd: String,
    /// HTTP path answering 200 once the controller is ready, on 127.0.0.1:{port}; only used when
    /// the command has {port}. Empty: just check the process stays up for a second.
    #[arg(long, env = "SCALE_BENCH_CONTROLLER_READYZ", default_value = "/readyz")]
    pub controller_readyz: String,
    /// Regex on the User-Agent header selecting the controller's requests in the audit log (an
    /// absent header is the empty string). The default fits our controller, which sends
    /// `rollout-controller/<version>`, or no User-Agent at all in older builds.
    #[arg(long, env = "SCALE_BENCH_CONTROLLER_USER_AGENT", default_value = DEFAULT_CONTROLLER_USER_AGENT)]
    pub controller_user_agent: String,
    /// Directory for results.json and results.md [default: e2e/bench/results/<UTC timestamp>].
    #[arg(long, env = "SCALE_BENCH_OUTPUT")]
    pub output: Option<PathBuf>,
    /// Leave the cluster (and its WORKDIR) running at the end.
    #[arg(long, env = "SCALE_BENCH_KEEP_CLUSTER")]
    pub keep_cluster: bool,
    /// Free text describing the run (e.g. which controller build), shown in the results.
    #[arg(long, env = "SCALE_BENCH_LABEL", default_value = "")]
    pub label: String,
    /// Namespace of the Rollouts.
    #[arg(long, env = "SCALE_BENCH_NAMESPACE", default_value = "scale-bench")]
    pub namespace: String,
    /// Requests the benchmark keeps in flight when creating, updating and promoting.
    #[arg(long, env = "SCALE_BENCH_CONCURRENCY", default_value_t = 10)]
    pub concurrency: usize,
    /// Seconds a phase may take before it is reported as not converged.
    #[arg(long, env = "SCALE_BENCH_PHASE_TIMEOUT", default_value_t = 600)]
    pub phase_timeout: u64,
    /// Seconds to wait after a phase converged before the next starts, so that the controller's
    /// trailing requests count towards the phase that caused them.
    #[arg(long, env = "SCALE_BENCH_SETTLE", default_value_t = 5)]
    pub settle: u64,
    /// up.sh's WORKDIR (new or empty) [default: a fresh /tmp/argo-rs-bench.*].
    #[arg(long, env = "SCALE_BENCH_WORKDIR")]
    pub workdir: Option<PathBuf>,
    /// Directory of the Kubernetes binaries [default: what e2e/cluster/build-deps.sh prints].
    #[arg(long, env = "ARGO_RS_BIN")]
    pub k8s_bin: Option<PathBuf>,
    /// Client-side rate limit (QPS; burst twice that) of kube-controller-manager and the
    /// scheduler (up.sh's KUBE_CLIENT_QPS). At a few hundred Rollouts KCM's ReplicaSet
    /// controller, which creates and deletes the pods, runs at this limit.
    #[arg(long, env = "SCALE_BENCH_KUBE_QPS", default_value_t = 100)]
    pub kube_qps: u32,
    /// Seconds allowed for starting the cluster.
    #[arg(long, env = "SCALE_BENCH_UP_TIMEOUT", default_value_t = 900)]
    pub up_timeout: u64,
    /// Seconds of the `idle` window after the promotion (N Healthy Rollouts, nothing changes):
    /// the controller's CPU and API requests while idle. 0 leaves it out.
    #[arg(long, env = "SCALE_BENCH_IDLE", default_value_t = 60)]
    pub idle: u64,
    /// Start the API server and etcd with their default limits instead of up.sh's
    /// `SCALE_FLAGS=1` (more requests in flight, a larger etcd quota).
    #[arg(long, env = "SCALE_BENCH_NO_SCALE_FLAGS")]
    pub no_scale_flags: bool,
}

/// How often the controller's CPU and RSS are sampled.
const SAMPLE_PERIOD: Duration = Duration::from_secs(1);

/// Runs the benchmark; `Ok(true)` when every phase converged. Results are written even when a
/// phase fails or the run is interrupted, and the cluster is stopped unless `--keep-cluster`.
pub async fn run(args: Args) -> Result<bool> {
    if args.rollouts == 0 || args.replicas == 0 {
        bail!("--rollouts and --replicas must be at least 1");
    }
    let user_agent = Regex::new(&args.controller_user_agent)
        .with_context(|| format!("--controller-user-agent {:?}", args.controller_user_agent))?;
    let repo = repo_root();
    let started = Timestamp::now();
    let output = args.output.clone().unwrap_or_else(|| {
        repo.join("e2e/bench/results")
            .join(started.strftime("%Y%m%d-%H%M%SZ").to_string())
    });
    std::fs::create_dir_all(&output).with_context(|| format!("creating {}", output.display()))?;

    let mut report = Report {
        benchmark: "scale-bench".into(),
        format: super::report::FORMAT,
        started_at: started.to_string(),
        source: Source::probe(&repo),
        params: Params {
            label: args.label.clone(),
            rollouts: args.rollouts,
            replicas: args.replicas,
            concurrency: args.concurrency,
            namespace: args.namespace.clone(),
            phase_timeout_seconds: args.phase_timeout,
            settle_seconds: args.settle,
            image: IMAGE.into(),
            new_image: NEW_IMAGE.into(),
            idle_seconds: args.idle,
        },
        controller: ControllerInfo {
            command_template: args.controller_cmd.clone(),
            user_agent_regex: args.controller_user_agent.clone(),
            ..Default::default()
        },
        machine: Machine::probe(),
        ..Default::default()
    };

    let sizing = size_nodes(args.rollouts as u64, u64::from(args.replicas))?;
    let workdir = match &args.workdir {
        Some(w) => w.clone(),
        None => unique_dir("argo-rs-bench")?,
    };
    report.cluster = ClusterInfo {
        workdir: workdir.display().to_string(),
        nodes: Some(sizing),
        kube_client_qps: args.kube_qps,
        scale_flags: !args.no_scale_flags,
        kept: args.keep_cluster,
        ..Default::default()
    };
    progress_line(&format!(
        "starting the cluster in {} ({} kwok nodes x {} pods, KCM/scheduler QPS {}, audit log on{})",
        workdir.display(),
        sizing.nodes,
        sizing.pods_per_node,
        args.kube_qps,
        if args.no_scale_flags {
            ""
        } else {
            ", SCALE_FLAGS=1"
        }
    ));
    let up_started = Instant::now();
    let up = Cluster::up(
        &repo,
        &workdir,
        sizing,
        args.kube_qps,
        !args.no_scale_flags,
        args.k8s_bin.as_deref(),
        Duration::from_secs(args.up_timeout),
    );
    let mut cluster = tokio::select! {
        c = up => c,
        () = shutdown_signal() => Err(anyhow!("interrupted while starting the cluster")),
    }?;
    cluster.keep = args.keep_cluster;
    report.cluster.up_seconds = Some(round3(up_started.elapsed().as_secs_f64()));

    let mut session = Session::default();
    let outcome = tokio::select! {
        r = std::panic::AssertUnwindSafe(bench(&args, &cluster, &mut report, &mut session)).catch_unwind() => {
            r.unwrap_or_else(|_| Err(anyhow!("the benchmark panicked")))
        }
        () = shutdown_signal() => Err(anyhow!("interrupted")),
    };
    progress_done();
    if let Err(e) = &outcome {
        eprintln!("scale-bench: {e:#}");
        report.error = Some(format!("{e:#}"));
    }
    let end = Timestamp::now();
    if let Some(monitor) = &session.monitor {
        monitor.finish();
    }
    if let Some(controller) = session.controller.as_mut() {
        controller.stop().await;
    }
    drop(session.watches.take());

    // The audit log, split into the windows the phases opened.
    let windows: Vec<Window> = session
        .windows
        .iter()
        .enumerate()
        .map(|(i, (name, start))| Window {
            name: name.clone(),
            start: *start,
            end: session.windows.get(i + 1).map_or(end, |w| w.1),
        })
        .collect();
    let mut first_writes = None;
    if !windows.is_empty() {
        let logs = cluster.logs();
        let counted =
            tokio::task::spawn_blocking(move || audit::count_dir(&logs, &windows, &user_agent)).await?;
        match counted {
            Ok(counts) => {
                report.requests = PhaseRequests::from_counts(&counts, args.rollouts);
                report.audit = Some(AuditSummary::from(&counts));
                if let Some(tracker) = &session.tracker {
                    first_writes = Some(FirstWrites::find(&lock(tracker), &counts.controller_writes));
                }
            }
            Err(e) => {
                eprintln!("scale-bench: {e:#}");
                report.error.get_or_insert_with(|| format!("{e:#}"));
            }
        }
    }
    if let Some(tracker) = &session.tracker {
        report.latencies = latencies(&lock(tracker).entries, first_writes.as_ref());
    }
    if let Some(monitor) = &session.monitor {
        report.resources = monitor
            .windows()
            .into_iter()
            .map(|(window, usage)| PhaseResources { window, usage })
            .collect();
        report.timeline = monitor.timeline();
        report.sampling_error = monitor.error();
        let data = plot_data(&report, monitor);
        match std::fs::write(output.join("plot.png"), plot::render(&data)) {
            Ok(()) => report.plot = Some("plot.png".into()),
            Err(e) => eprintln!("scale-bench: writing the plot: {e}"),
        }
    }
    report.derive();
    report.machine.load_at_end = load_average();
    report.finished_at = Timestamp::now().to_string();
    report.write(&output)?;
    println!("{}", report.markdown());
    eprintln!("scale-bench: results in {}", output.display());

    if args.keep_cluster {
        eprintln!(
            "scale-bench: cluster kept: source {}/env; stop it with e2e/cluster/down.sh {}",
            workdir.display(),
            workdir.display()
        );
    } else {
        cluster.down()?;
    }
    outcome.map(|()| report.all_converged())
}

/// What outlives an interrupted benchmark: the controller (stopped gracefully), the tracker
/// (for the latencies so far) and the audit windows.
#[derive(Default)]
struct Session {
    controller: Option<Controller>,
    monitor: Option<Monitor>,
    tracker: Option<SharedTracker>,
    watches: Option<Watches>,
    windows: Vec<(String, Timestamp)>,
}

/// A phase: what it waits for.
struct Phase {
    name: &'static str,
    description: String,
    done: fn(&Marks) -> bool,
    last_done: fn(&Marks) -> Option<Instant>,
    progress: fn(&Tracker) -> String,
}

async fn bench(args: &Args, cluster: &Cluster, report: &mut Report, session: &mut Session) -> Result<()> {
    let client = bench_client(&cluster.kubeconfig, BENCH_USER_AGENT).await?;
    let ns = &args.namespace;
    create_namespace(&client, ns).await?;

    // Watches first: the ReplicaSet watch must be running before the image changes.
    let names: Vec<String> = (0..args.rollouts).map(workload::rollout_name).collect();
    let tracker: SharedTracker = Arc::new(Mutex::new(Tracker::new(names, NEW_IMAGE)));
    session.tracker = Some(tracker.clone());
    let watches = Watches::start(&client, ns, tracker.clone());
    crate::wait_for(
        "the Rollout and ReplicaSet watches",
        Duration::from_secs(60),
        || async { Ok(watches.synced().then_some(())) },
    )
    .await?;
    let watch_errors = watches.errors.clone();
    session.watches = Some(watches);

    // The controller.
    let launch = Launch::prepare(
        &args.controller_cmd,
        &args.controller_readyz,
        cluster,
        ns,
        &mut report.controller,
    )?;
    progress_line(&format!("starting the controller: {}", report.controller.command));
    session
        .windows
        .push(("controller start".into(), Timestamp::now()));
    let started = Instant::now();
    let controller = session.controller.insert(launch.start(cluster)?);
    let pid = controller
        .id()
        .ok_or_else(|| anyhow!("the controller exited at once"))?;
    session.monitor = Some(Monitor::start(
        pid,
        started,
        "controller start",
        tracker.clone(),
        SAMPLE_PERIOD,
    ));
    launch
        .wait_ready(controller, started, &mut report.controller)
        .await?;

    let api = workload::rollouts(&client, ns);
    let n = args.rollouts;
    let phases = [
        Phase {
            name: "create",
            description: format!("create {n} Rollouts; until all are Healthy"),
            done: |m| m.healthy.is_some(),
            last_done: |m| m.healthy,
            progress: |t| {
                let n = t.entries.len();
                format!(
                    "created {}/{n}, Healthy {}/{n}",
                    t.count(|e| e.marks.created.is_some()),
                    t.count(|e| e.marks.healthy.is_some())
                )
            },
        },
        Phase {
            name: "image",
            description:
                "change the image; until every new ReplicaSet exists and every Rollout is paused at step 1"
                    .into(),
            done: |m| m.new_rs.is_some() && m.paused.is_some(),
            last_done: |m| m.new_rs.max(m.paused),
            progress: |t| {
                let n = t.entries.len();
                format!(
                    "patched {}/{n}, new RS {}/{n}, paused {}/{n}",
                    t.count(|e| e.marks.image_patched.is_some()),
                    t.count(|e| e.marks.new_rs.is_some()),
                    t.count(|e| e.marks.paused.is_some())
                )
            },
        },
        Phase {
            name: "promote",
            description: "promote; until all are Healthy on the new ReplicaSet".into(),
            done: |m| m.promoted_healthy.is_some(),
            last_done: |m| m.promoted_healthy,
            progress: |t| {
                let n = t.entries.len();
                format!(
                    "promoted {}/{n}, Healthy {}/{n}",
                    t.count(|e| e.marks.promoted.is_some()),
                    t.count(|e| e.marks.promoted_healthy.is_some())
                )
            },
        },
    ];
    let mut failed: Option<String> = None;
    for phase in &phases {
        if let Some(reason) = &failed {
            report.phases.push(PhaseResult {
                name: phase.name.into(),
                description: phase.description.clone(),
                skipped: true,
                expected: n,
                last_progress: format!("skipped: {reason}"),
                ..Default::default()
            });
            continue;
        }
        session.windows.push((phase.name.into(), Timestamp::now()));
        if let Some(m) = &session.monitor {
            m.begin(phase.name, Some(phase.done));
        }
        let requests = async {
            let (api, tracker) = (&api, &tracker);
            match phase.name {
                "create" => {
                    workload::for_each_bounded(n, args.concurrency, |i| {
                        workload::create(api, tracker, i, args.replicas, IMAGE)
                    })
                    .await
                }
                "image" => {
                    workload::for_each_bounded(n, args.concurrency, |i| {
                        workload::change_image(api, tracker, i, NEW_IMAGE)
                    })
                    .await
                }
                _ => {
                    workload::for_each_bounded(n, args.concurrency, |i| workload::promote(api, tracker, i))
                        .await
                }
            }
        };
        let controller = session
            .controller
            .as_mut()
            .ok_or_else(|| anyhow!("the controller is not running"))?;
        let result = run_phase(args, phase, &tracker, &watch_errors, controller, requests).await;
        let converged = result.converged;
        if !converged {
            failed = Some(format!("phase `{}` did not converge", phase.name));
        }
        report.phases.push(result);
        if converged && args.settle > 0 {
            tokio::time::sleep(Duration::from_secs(args.settle)).await;
        }
        if let Some(controller) = session.controller.as_mut() {
            controller.check_alive()?;
        }
    }
    if args.idle > 0 {
        idle(args, report, session, failed.as_deref()).await?;
    }
    Ok(())
}

/// The `idle` window: N Healthy Rollouts, nothing changes, for `--idle` seconds.
async fn idle(args: &Args, report: &mut Report, session: &mut Session, failed: Option<&str>) -> Result<()> {
    let n = args.rollouts;
    let description = format!("{n} Healthy Rollouts, nothing changes, for {} s", args.idle);
    if let Some(reason) = failed {
        report.phases.push(PhaseResult {
            name: "idle".into(),
            description,
            skipped: true,
            expected: n,
            last_progress: format!("skipped: {reason}"),
            ..Default::default()
        });
        return Ok(());
    }
    let started_at = Timestamp::now();
    session.windows.push(("idle".into(), started_at));
    let healthy: Done = |m| m.promoted_healthy.is_some();
    if let Some(monitor) = &session.monitor {
        monitor.begin("idle", Some(healthy));
    }
    progress_line(&format!("idle: {n} Healthy Rollouts for {} s", args.idle));
    let start = Instant::now();
    let length = Duration::from_secs(args.idle);
    let controller = session
        .controller
        .as_mut()
        .ok_or_else(|| anyhow!("the controller is not running"))?;
    let mut ended_by = None;
    while start.elapsed() < length {
        tokio::time::sleep(Duration::from_millis(500).min(length.saturating_sub(start.elapsed()))).await;
        if let Err(e) = controller.check_alive() {
            ended_by = Some(format!("{e:#}"));
            break;
        }
    }
    let seconds = round3(start.elapsed().as_secs_f64());
    progress_line(&format!("idle: done after {seconds} s"));
    report.phases.push(PhaseResult {
        name: "idle".into(),
        description,
        skipped: false,
        converged: ended_by.is_none(),
        reached: n,
        expected: n,
        failed_requests: 0,
        wall_seconds: Some(seconds),
        started_at: Some(started_at.to_string()),
        last_progress: ended_by.map_or_else(|| "idle".into(), |e| format!("controller exited: {e}")),
        stragglers: Vec::new(),
    });
    report.idle = Some(IdleResult {
        seconds,
        ..Default::default()
    });
    Ok(())
}

/// The plot's series from the monitor's samples.
fn plot_data(report: &Report, monitor: &Monitor) -> PlotData {
    let timeline = &report.timeline;
    let label = if report.params.label.is_empty() {
        String::new()
    } else {
        format!(", {}", report.params.label)
    };
    PlotData {
        title: format!(
            "scale-bench: {} rollouts x {} replicas, {}{label}",
            report.params.rollouts, report.params.replicas, report.source.commit
        ),
        rss_mib: timeline.iter().map(|p| (p.t, p.rss_mib)).collect(),
        converged: timeline.iter().map(|p| (p.t, p.converged as f64)).collect(),
        rollouts: report.params.rollouts,
        phases: monitor
            .window_starts()
            .into_iter()
            .filter(|(name, _)| name != "controller start")
            .collect(),
        end: timeline.last().map_or(0.0, |p| p.t),
    }
}

/// Sends the phase's requests and waits until every Rollout is done, a request failed for every
/// Rollout not done, the controller exited, or the phase timed out.
async fn run_phase(
    args: &Args,
    phase: &Phase,
    tracker: &SharedTracker,
    watch_errors: &std::sync::atomic::AtomicU64,
    controller: &mut Controller,
    requests: impl std::future::Future<Output = Vec<(usize, anyhow::Error)>>,
) -> PhaseResult {
    let start = Instant::now();
    let started_at = Timestamp::now();
    let timeout = Duration::from_secs(args.phase_timeout);
    let n = args.rollouts;
    let mut requests = std::pin::pin!(requests.fuse());
    let mut failures: Option<Vec<(usize, anyhow::Error)>> = None;
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    let mut last_print = Instant::now() - Duration::from_secs(60);
    let mut ended_by: Option<String> = None;
    loop {
        tokio::select! {
            f = &mut requests, if failures.is_none() => {
                for (i, e) in &f {
                    eprintln!("\nscale-bench: {} request for {} failed: {e:#}", phase.name, workload::rollout_name(*i));
                }
                failures = Some(f);
            }
            _ = tick.tick() => {}
        }
        let (done, line) = {
            let t = lock(tracker);
            let done = t.count(|e| (phase.done)(&e.marks));
            let failed = failures.as_ref().map_or(0, |f| {
                f.iter()
                    .filter(|(i, _)| !(phase.done)(&t.entries[*i].marks))
                    .count()
            });
            let errors = watch_errors.load(Ordering::Relaxed);
            let mut line = format!(
                "{:<8}{:>7.1}s  {}",
                phase.name,
                start.elapsed().as_secs_f64(),
                (phase.progress)(&t)
            );
            if failed > 0 {
                line.push_str(&format!(", {failed} failed requests"));
            }
            if errors > 0 {
                line.push_str(&format!(", {errors} watch errors"));
            }
            (done + failed, line)
        };
        if last_print.elapsed() >= progress_interval() {
            progress_line(&line);
            last_print = Instant::now();
        }
        if failures.is_some() && done >= n {
            progress_line(&line);
            break;
        }
        if let Err(e) = controller.check_alive() {
            ended_by = Some(format!("{e:#}"));
            break;
        }
        if start.elapsed() > timeout {
            ended_by = Some(format!("timed out after {}s", args.phase_timeout));
            break;
        }
    }
    progress_done();

    let t = lock(tracker);
    let reached = t.count(|e| (phase.done)(&e.marks));
    let converged = reached == n && ended_by.is_none();
    let wall = if converged {
        t.entries
            .iter()
            .filter_map(|e| (phase.last_done)(&e.marks))
            .max()
            .map(|last| last.saturating_duration_since(start))
    } else {
        Some(start.elapsed())
    };
    let stragglers: Vec<String> = t
        .entries
        .iter()
        .filter(|e| !(phase.done)(&e.marks))
        .take(10)
        .map(|e| {
            let state = e
                .snapshot
                .as_ref()
                .map_or_else(|| "not seen".into(), |s| s.describe());
            match &e.marks.error {
                Some(err) => format!("{}: {state}; request failed: {err}", e.name),
                None => format!("{}: {state}", e.name),
            }
        })
        .collect();
    let last_progress = format!(
        "{}{}",
        (phase.progress)(&t),
        ended_by.map(|e| format!(" ({e})")).unwrap_or_default()
    );
    if !converged {
        eprintln!(
            "scale-bench: phase `{}` did not converge: {last_progress}",
            phase.name
        );
    }
    PhaseResult {
        name: phase.name.into(),
        description: phase.description.clone(),
        skipped: false,
        converged,
        reached,
        expected: n,
        failed_requests: failures.map_or(0, |f| f.len()),
        wall_seconds: wall.map(|d| round3(d.as_secs_f64())),
        started_at: Some(started_at.to_string()),
        last_progress,
        stragglers,
    }
}

/// Per Rollout, when the controller first wrote (anything but an Event) to the Rollout or its
/// ReplicaSets after the image patch and after the promotion was sent, from the audit log.
#[derive(Clone, Debug, Default)]
pub struct FirstWrites {
    /// After the image patch was sent.
    pub image: Vec<Option<Timestamp>>,
    /// After the first promote patch was sent.
    pub promote: Vec<Option<Timestamp>>,
}

impl FirstWrites {
    /// Finds the first writes in `writes` (time received, object name).
    pub fn find(tracker: &Tracker, writes: &[(Timestamp, String)]) -> Self {
        let n = tracker.entries.len();
        let mut first = Self {
            image: vec![None; n],
            promote: vec![None; n],
        };
        for (at, name) in writes {
            let Some(i) = tracker.rollout_of(name) else {
                continue;
            };
            let marks = &tracker.entries[i].marks;
            for (sent, slot) in [
                (marks.image_wall.map(|w| w.0), &mut first.image[i]),
                (marks.promote_wall.map(|w| w.0), &mut first.promote[i]),
            ] {
                if sent.is_some_and(|sent| *at >= sent) && slot.is_none_or(|t| *at < t) {
                    *slot = Some(*at);
                }
            }
        }
        first
    }
}

/// The latency distributions over the Rollouts' marks (and the audit log's first writes).
pub fn latencies(entries: &[Entry], first_writes: Option<&FirstWrites>) -> Vec<Latency> {
    let local = |a: Option<Instant>, b: Option<Instant>| Some(b?.saturating_duration_since(a?).as_secs_f64());
    let wall = |returned: Option<(Timestamp, Timestamp)>, at: Option<Timestamp>| {
        Some(at?.duration_since(returned?.1).as_secs_f64().max(0.0))
    };
    let image_write = |i: usize, m: &Marks| wall(m.image_wall, *first_writes?.image.get(i)?);
    let promote_write = |i: usize, m: &Marks| wall(m.promote_wall, *first_writes?.promote.get(i)?);
    type Sample<'a> = Box<dyn Fn(usize, &Marks) -> Option<f64> + 'a>;
    let mut defs: Vec<(&str, &str, &str, &str, Sample)> = vec![
        (
            "create -> Healthy",
            "create",
            "create request returned",
            "Rollout seen Healthy",
            Box::new(|_, m| local(m.created, m.healthy)),
        ),
        (
            "image patch request",
            "image",
            "image patch sent",
            "image patch returned",
            Box::new(|_, m| local(m.image_sent, m.image_patched)),
        ),
    ];
    if first_writes.is_some() {
        defs.push((
            "image -> controller's first write",
            "image",
            "image patch returned",
            "first write (not an Event) on the Rollout or its ReplicaSets received (audit log)",
            Box::new(image_write),
        ));
    }
    defs.extend([
        (
            "image -> new ReplicaSet",
            "image",
            "image patch returned",
            "new ReplicaSet seen (watch)",
            Box::new(|_, m: &Marks| local(m.image_patched, m.new_rs)) as Sample,
        ),
        (
            "image -> paused at step 1",
            "image",
            "image patch returned",
            "Rollout seen Paused (CanaryPauseStep, step 1)",
            Box::new(|_, m: &Marks| local(m.image_patched, m.paused)),
        ),
    ]);
    if first_writes.is_some() {
        defs.push((
            "promote -> controller's first write",
            "promote",
            "promote patch returned",
            "first write (not an Event) on the Rollout or its ReplicaSets received (audit log)",
            Box::new(promote_write),
        ));
    }
    defs.push((
        "promote -> Healthy",
        "promote",
        "promote patch returned",
        "Rollout seen Healthy on the new ReplicaSet",
        Box::new(|_, m| local(m.promoted, m.promoted_healthy)),
    ));
    defs.iter()
        .map(|(name, phase, from, to, sample)| {
            let samples: Vec<f64> = entries
                .iter()
                .enumerate()
                .filter_map(|(i, e)| sample(i, &e.marks).map(round3))
                .collect();
            Latency {
                name: (*name).into(),
                phase: (*phase).into(),
                from: (*from).into(),
                to: (*to).into(),
                summary: summarize(&samples),
                missing: entries.len() - samples.len(),
                samples,
            }
        })
        .collect()
}

/// Shows one progress line on stderr.
fn progress_line(line: &str) {
    common::progress_line("scale-bench", line);
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory, Parser};

    #[test]
    fn clap_definition_is_consistent() {
        Args::command().debug_assert();
        let args = Args::try_parse_from(["scale-bench"]).unwrap();
        assert_eq!((args.rollouts, args.replicas), (100, 2));
        assert!(args.controller_cmd.contains("{kubeconfig}"));
    }

    #[test]
    fn first_writes_follow_the_requests() {
        let mut tracker = Tracker::new(vec!["bench-0000".into(), "bench-0001".into()], NEW_IMAGE);
        let t = |s: &str| s.parse::<Timestamp>().unwrap();
        tracker.entries[0].marks.image_wall = Some((t("2026-01-01T00:00:10Z"), t("2026-01-01T00:00:11Z")));
        tracker.entries[0].marks.promote_wall = Some((t("2026-01-01T00:01:00Z"), t("2026-01-01T00:01:01Z")));
        let writes = vec![
            (t("2026-01-01T00:00:05Z"), "bench-0000".to_string()),
            (t("2026-01-01T00:00:13Z"), "bench-0000-abc".to_string()),
            (t("2026-01-01T00:00:12Z"), "bench-0000".to_string()),
            (t("2026-01-01T00:01:04Z"), "bench-0000-def".to_string()),
            (t("2026-01-01T00:00:12Z"), "bench-0001".to_string()),
        ];
        let first = FirstWrites::find(&tracker, &writes);
        assert_eq!(first.image, vec![Some(t("2026-01-01T00:00:12Z")), None]);
        assert_eq!(first.promote, vec![Some(t("2026-01-01T00:01:04Z")), None]);
        let l = latencies(&tracker.entries, Some(&first));
        let image = l
            .iter()
            .find(|l| l.name == "image -> controller's first write")
            .unwrap();
        assert_eq!((image.samples.clone(), image.missing), (vec![1.0], 1));
        let promote = l
            .iter()
            .find(|l| l.name == "promote -> controller's first write")
            .unwrap();
        assert_eq!(promote.samples, vec![3.0]);
    }

    #[test]
    fn latencies_use_the_marks() {
        let t0 = Instant::now();
        let at = |ms: u64| Some(t0 + Duration::from_millis(ms));
        let entries = vec![
            Entry {
                name: "a".into(),
                marks: Marks {
                    image_patched: at(100),
                    new_rs: at(1100),
                    ..Default::default()
                },
                ..Default::default()
            },
            Entry {
                name: "b".into(),
                ..Default::default()
            },
        ];
        let l = latencies(&entries, None);
        let rs = l.iter().find(|l| l.name == "image -> new ReplicaSet").unwrap();
        assert_eq!((rs.samples.clone(), rs.missing), (vec![1.0], 1));
        assert_eq!(rs.summary.as_ref().unwrap().p50, 1.0);
    }
}

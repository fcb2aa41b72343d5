//! `analysis-bench`: CPU and memory of one analysis controller process, first with M
//! AnalysisRuns measuring a local web endpoint every 10 s, then with K finished runs left in
//! the cluster. Usage and output: `e2e/bench/README.md`; the binary is
//! `src/bin/analysis-bench.rs`.
//!
//! The cluster, the controller process, the audit log and the report's context come from the
//! shared benchmark modules; what is measured is the controller's CPU time and RSS from `/proc`
//! ([`super::procstat`]) over a fixed window once each phase has reached its steady state.

use std::{
    collections::{BTreeMap, HashMap},
    fmt::Write as _,
    net::SocketAddr,
    path::PathBuf,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, anyhow, bail};
use futures::{FutureExt, StreamExt};
use jiff::Timestamp;
use kube::{
    Api,
    api::{DeleteParams, DynamicObject, ListParams, PostParams},
    core::{ApiResource, GroupVersionKind},
    runtime::{WatchStreamExt, watcher},
};
use regex::Regex;
use serde::Serialize;
use serde_json::{Value, json};

use super::{
    audit::{self, VERBS, Window, WindowCounts},
    cluster::{Cluster, Controller, NodeSizing},
    common::{
        Launch, bench_client, create_namespace, progress_done, progress_interval, repo_root, round3,
        shutdown_signal, unique_dir,
    },
    procstat::{Sample, Sampler, Usage},
    report::{
        AuditSummary, ClusterInfo, ControllerInfo, Machine, Source, codes, load_average, write_results,
    },
    workload::{for_each_bounded, with_retries},
};

/// The benchmark's name (progress lines, results).
pub const NAME: &str = "analysis-bench";
/// The default `--controller-cmd`: our release-built analysis controller, cluster-wide, with
/// its admin endpoints on a free port.
pub const DEFAULT_CONTROLLER_CMD: &str = "{rust_bin}/analysis-controller --kubeconfig {kubeconfig} \
     --metrics-addr 127.0.0.1:{port} --healthz-addr 127.0.0.1:{port}";
/// The User-Agent our analysis controller sends (shared-runtime's client).
pub const DEFAULT_CONTROLLER_USER_AGENT: &str = "^analysis-controller/";
/// The User-Agent of the benchmark's own requests.
pub const BENCH_USER_AGENT: &str = "argo-rs-analysis-bench";
/// Label on every AnalysisRun of the benchmark.
pub const PART_OF: (&str, &str) = ("app.kubernetes.io/part-of", "argo-rs-analysis-bench");
/// Label telling which phase created a run (`running`, `finished`).
pub const PHASE_LABEL: &str = "analysis-bench.argo-rs.io/phase";
/// `count` of the running runs' metric: large enough that they never finish during a run.
pub const RUNNING_COUNT: u64 = 1_000_000;
/// Target: CPU of the idle controller with the finished runs, percent of one core (issue 13).
pub const TARGET_IDLE_CPU_PERCENT: f64 = 1.0;
/// Target: RSS with the running runs, MiB (issue 13).
pub const TARGET_RUNNING_RSS_MIB: f64 = 100.0;
/// How often the controller process is sampled.
const SAMPLE_PERIOD: Duration = Duration::from_secs(1);

/// Measures CPU and memory of one analysis controller process: M AnalysisRuns measuring a
/// local web endpoint, then K finished AnalysisRuns left in the cluster.
#[derive(clap::Parser, Clone, Debug)]
#[command(name = "analysis-bench", version)]
pub struct Args {
    /// AnalysisRuns kept running in the first phase (one web metric each, `--interval` apart).
    #[arg(long, env = "ANALYSIS_BENCH_RUNNING", default_value_t = 1000)]
    pub running: usize,
    /// Finished (Successful) AnalysisRuns left in the cluster in the second phase.
    #[arg(long, env = "ANALYSIS_BENCH_FINISHED", default_value_t = 5000)]
    pub finished: usize,
    /// Seconds each phase's controller CPU and RSS are sampled for, once the phase is steady.
    #[arg(long, env = "ANALYSIS_BENCH_WINDOW", default_value_t = 60)]
    pub window: u64,
    /// Measurement interval of the running runs' metric.
    #[arg(long, env = "ANALYSIS_BENCH_INTERVAL", default_value = "10s")]
    pub interval: String,
    /// The controller to measure, as a command line (split like a shell does, without
    /// expansions). Placeholders: {kubeconfig}, {port} (a free loopback port), {namespace} (the
    /// benchmark namespace), {workdir} (the cluster's WORKDIR), {rust_bin} (`<cargo target
    /// dir>/release`).
    #[arg(long, env = "ANALYSIS_BENCH_CONTROLLER_CMD", default_value = DEFAULT_CONTROLLER_CMD)]
    pub controller_cmd: String,
    /// HTTP path answering 200 once the controller is ready, on 127.0.0.1:{port}; only used when
    /// the command has {port}. Empty: just check the process stays up for a second.
    #[arg(long, env = "ANALYSIS_BENCH_CONTROLLER_READYZ", default_value = "/readyz")]
    pub controller_readyz: String,
    /// Regex on the User-Agent header selecting the controller's requests in the audit log.
    #[arg(long, env = "ANALYSIS_BENCH_CONTROLLER_USER_AGENT", default_value = DEFAULT_CONTROLLER_USER_AGENT)]
    pub controller_user_agent: String,
    /// Directory for results.json and results.md [default: a new $TMPDIR/analysis-bench-results.*].
    #[arg(long, env = "ANALYSIS_BENCH_OUTPUT")]
    pub output: Option<PathBuf>,
    /// Leave the cluster (and its WORKDIR) running at the end.
    #[arg(long, env = "ANALYSIS_BENCH_KEEP_CLUSTER")]
    pub keep_cluster: bool,
    /// Free text describing the run (e.g. which controller build), shown in the results.
    #[arg(long, env = "ANALYSIS_BENCH_LABEL", default_value = "")]
    pub label: String,
    /// Namespace of the AnalysisRuns.
    #[arg(long, env = "ANALYSIS_BENCH_NAMESPACE", default_value = "analysis-bench")]
    pub namespace: String,
    /// Requests the benchmark keeps in flight when creating runs.
    #[arg(long, env = "ANALYSIS_BENCH_CONCURRENCY", default_value_t = 10)]
    pub concurrency: usize,
    /// Seconds a phase may take to reach its steady state (all runs created and Running with a
    /// measurement, or Successful) before it is reported as not converged.
    #[arg(long, env = "ANALYSIS_BENCH_PHASE_TIMEOUT", default_value_t = 600)]
    pub phase_timeout: u64,
    /// Seconds to wait after a phase converged before its window starts.
    #[arg(long, env = "ANALYSIS_BENCH_SETTLE", default_value_t = 10)]
    pub settle: u64,
    /// up.sh's WORKDIR (new or empty) [default: a fresh /tmp/argo-rs-analysis-bench.*].
    #[arg(long, env = "ANALYSIS_BENCH_WORKDIR")]
    pub workdir: Option<PathBuf>,
    /// Directory of the Kubernetes binaries [default: what e2e/cluster/build-deps.sh prints].
    #[arg(long, env = "ARGO_RS_BIN")]
    pub k8s_bin: Option<PathBuf>,
    /// Seconds allowed for starting the cluster.
    #[arg(long, env = "ANALYSIS_BENCH_UP_TIMEOUT", default_value_t = 900)]
    pub up_timeout: u64,
}

// ---------------------------------------------------------------------------------------------
// Results

/// Format version of `results.json`.
pub const FORMAT: u32 = 1;

/// Everything the benchmark reports.
#[derive(Clone, Debug, Default, Serialize)]
pub struct AnalysisReport {
    /// Always `analysis-bench`.
    pub benchmark: String,
    /// [`FORMAT`].
    pub format: u32,
    /// Start (RFC 3339, UTC).
    pub started_at: String,
    /// End (RFC 3339, UTC).
    pub finished_at: String,
    /// Source of the benchmark and of the default controller.
    pub source: Source,
    /// Parameters.
    pub params: Params,
    /// The controller under test.
    pub controller: ControllerInfo,
    /// The machine.
    pub machine: Machine,
    /// The local cluster.
    pub cluster: ClusterInfo,
    /// The web endpoint the runs measure.
    pub endpoint: EndpointInfo,
    /// The two phases, in order.
    pub phases: Vec<PhaseOutcome>,
    /// The targets and whether they were met.
    pub targets: Vec<Target>,
    /// The controller's API requests per window (audit log).
    pub requests: Vec<WindowRequests>,
    /// What was read of the audit log.
    pub audit: Option<AuditSummary>,
    /// Every sample of the controller (and the benchmark) process, one a second.
    pub samples: Vec<Sample>,
    /// Why the run stopped early, if it did.
    pub error: Option<String>,
}

/// The benchmark's parameters.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Params {
    /// `--label`.
    pub label: String,
    /// Running AnalysisRuns.
    pub running: usize,
    /// Finished AnalysisRuns.
    pub finished: usize,
    /// Seconds sampled per phase.
    pub window_seconds: u64,
    /// Measurement interval of the running runs.
    pub interval: String,
    /// Requests in flight when creating.
    pub concurrency: usize,
    /// Namespace.
    pub namespace: String,
    /// Seconds allowed per phase.
    pub phase_timeout_seconds: u64,
    /// Seconds between convergence and the window.
    pub settle_seconds: u64,
}

/// The web endpoint.
#[derive(Clone, Debug, Default, Serialize)]
pub struct EndpointInfo {
    /// URL the metrics GET.
    pub url: String,
    /// Requests it answered in the whole run.
    pub requests: u64,
}

/// One phase.
#[derive(Clone, Debug, Default, Serialize)]
pub struct PhaseOutcome {
    /// `running` or `finished`.
    pub name: String,
    /// What it does and when it is steady.
    pub description: String,
    /// Runs created.
    pub runs: usize,
    /// Not run because an earlier phase failed.
    pub skipped: bool,
    /// Every run reached the goal in time.
    pub converged: bool,
    /// Runs that reached the goal.
    pub reached: usize,
    /// Create requests that failed (after retries).
    pub failed_requests: usize,
    /// Seconds to delete the previous phase's runs (until the watch showed none).
    pub cleanup_seconds: Option<f64>,
    /// Seconds from the first create request to the last one returned.
    pub create_seconds: Option<f64>,
    /// Seconds from the first create request until every run reached the goal.
    pub converge_seconds: Option<f64>,
    /// The progress line when it ended.
    pub last_progress: String,
    /// Up to 10 runs that did not reach the goal, with their last state.
    pub stragglers: Vec<String>,
    /// The measurement window, when the phase converged.
    pub window: Option<WindowOutcome>,
}

/// The measurement window of a phase.
#[derive(Clone, Debug, Default, Serialize)]
pub struct WindowOutcome {
    /// Start (RFC 3339).
    pub started_at: String,
    /// The controller's CPU and RSS in the window.
    pub usage: Usage,
    /// Highest RSS sampled from the phase's first request to the end of its window, MiB.
    pub phase_rss_peak_mib: f64,
    /// Requests the endpoint answered in the window.
    pub endpoint_requests: u64,
    /// The same per second.
    pub endpoint_per_second: f64,
    /// Measurements the runs' statuses gained in the window (`count + error` of the metric
    /// results, as the benchmark's watch saw them).
    pub status_measurements: u64,
    /// The same per second.
    pub status_per_second: f64,
    /// `/proc/loadavg` when the window started.
    pub load_at_start: String,
    /// `/proc/loadavg` when it ended.
    pub load_at_end: String,
}

/// A target from the issue.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Target {
    /// What is limited.
    pub name: String,
    /// The limit.
    pub limit: f64,
    /// Unit of the limit and the measurement.
    pub unit: String,
    /// What was measured, if the phase got that far.
    pub measured: Option<f64>,
    /// Whether the measurement is under the limit.
    pub met: Option<bool>,
}

/// The controller's requests in one window.
#[derive(Clone, Debug, Default, Serialize)]
pub struct WindowRequests {
    /// Window counts from the audit log.
    #[serde(flatten)]
    pub counts: WindowCounts,
    /// Length of the window, seconds.
    pub seconds: f64,
    /// The controller's requests per second.
    pub per_second: f64,
}

// ---------------------------------------------------------------------------------------------
// The AnalysisRuns

/// The AnalysisRun API resource.
pub fn analysis_run_resource() -> ApiResource {
    let gvk = GroupVersionKind::gvk("argoproj.io", "v1alpha1", "AnalysisRun");
    ApiResource::from_gvk_with_plural(&gvk, "analysisruns")
}

/// `run-00000` (running phase), `done-00000` (finished phase).
pub fn run_name(group: Group, i: usize) -> String {
    format!("{}-{i:05}", group.prefix())
}

/// Which phase a run belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Group {
    /// Kept running, measured every interval.
    Running,
    /// One measurement, then Successful.
    Finished,
}

impl Group {
    /// The phase's name and the value of [`PHASE_LABEL`].
    pub fn name(self) -> &'static str {
        match self {
            Group::Running => "running",
            Group::Finished => "finished",
        }
    }

    fn prefix(self) -> &'static str {
        match self {
            Group::Running => "run",
            Group::Finished => "done",
        }
    }

    fn of(label: &str) -> Option<Self> {
        match label {
            "running" => Some(Group::Running),
            "finished" => Some(Group::Finished),
            _ => None,
        }
    }

    /// Whether a run of this group reached the phase's steady state: Running with at least one
    /// measurement, or Successful.
    pub fn done(self, run: &RunState) -> bool {
        match self {
            Group::Running => run.phase == "Running" && run.measurements >= 1,
            Group::Finished => run.phase == "Successful",
        }
    }
}

/// An AnalysisRun with one web metric `web` GETting `url` and judging `{$.ok}`: measured every
/// `interval` `count` times (`None`: once).
pub fn run_manifest(name: &str, group: Group, url: &str, interval: Option<&str>, count: u64) -> Value {
    let (part_of_key, part_of) = PART_OF;
    let mut metric = json!({
        "name": "web",
        "count": count,
        "successCondition": "result == 1",
        "provider": {"web": {"url": url, "jsonPath": "{$.ok}"}},
    });
    if let Some(interval) = interval {
        metric["interval"] = json!(interval);
    }
    json!({
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "AnalysisRun",
        "metadata": {"name": name, "labels": {part_of_key: part_of, PHASE_LABEL: group.name()}},
        "spec": {"metrics": [metric]},
    })
}

/// What the benchmark reads of a run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RunState {
    /// Its phase ([`PHASE_LABEL`]).
    pub group: Option<Group>,
    /// `status.phase` (empty until the controller writes one).
    pub phase: String,
    /// Measurements taken: `count + error` summed over `status.metricResults`.
    pub measurements: u64,
    /// `status.message`.
    pub message: String,
}

impl RunState {
    /// Reads a run.
    pub fn of(obj: &DynamicObject) -> Self {
        let status = &obj.data["status"];
        let measurements = status["metricResults"]
            .as_array()
            .map(|results| {
                results
                    .iter()
                    .map(|r| r["count"].as_u64().unwrap_or(0) + r["error"].as_u64().unwrap_or(0))
                    .sum()
            })
            .unwrap_or(0);
        Self {
            group: obj
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(PHASE_LABEL))
                .and_then(|g| Group::of(g)),
            phase: status["phase"].as_str().unwrap_or_default().to_string(),
            measurements,
            message: status["message"].as_str().unwrap_or_default().to_string(),
        }
    }

    /// One line for reports of runs that did not converge.
    pub fn describe(&self) -> String {
        let phase = if self.phase.is_empty() { "-" } else { &self.phase };
        let mut line = format!("phase={phase} measurements={}", self.measurements);
        if !self.message.is_empty() {
            let _ = write!(line, " message={:?}", self.message);
        }
        line
    }
}

/// The runs as the benchmark's watch last saw them, by name.
#[derive(Debug, Default)]
pub struct Runs {
    runs: HashMap<String, RunState>,
    /// A relist in progress: replaces `runs` when it is done (runs deleted while the watch
    /// was down disappear).
    relist: Option<HashMap<String, RunState>>,
}

impl Runs {
    /// Applies a watch event.
    pub fn on_event(&mut self, event: watcher::Event<DynamicObject>) {
        let name = |o: &DynamicObject| o.metadata.name.clone().unwrap_or_default();
        match event {
            watcher::Event::Apply(obj) => {
                self.runs.insert(name(&obj), RunState::of(&obj));
            }
            watcher::Event::Delete(obj) => {
                self.runs.remove(&name(&obj));
            }
            watcher::Event::Init => self.relist = Some(HashMap::new()),
            watcher::Event::InitApply(obj) => {
                self.relist
                    .get_or_insert_with(HashMap::new)
                    .insert(name(&obj), RunState::of(&obj));
            }
            watcher::Event::InitDone => {
                if let Some(runs) = self.relist.take() {
                    self.runs = runs;
                }
            }
        }
    }

    fn of(&self, group: Group) -> impl Iterator<Item = (&String, &RunState)> {
        self.runs.iter().filter(move |(_, r)| r.group == Some(group))
    }

    /// Runs of `group` in the cluster.
    pub fn count(&self, group: Group) -> usize {
        self.of(group).count()
    }

    /// Runs of `group` that reached its steady state.
    pub fn done(&self, group: Group) -> usize {
        self.of(group).filter(|(_, r)| group.done(r)).count()
    }

    /// Measurements of `group`'s runs so far.
    pub fn measurements(&self, group: Group) -> u64 {
        self.of(group).map(|(_, r)| r.measurements).sum()
    }

    /// Runs of `group` by `status.phase` (`-` for none yet).
    pub fn phases(&self, group: Group) -> BTreeMap<String, usize> {
        let mut phases = BTreeMap::new();
        for (_, r) in self.of(group) {
            let phase = if r.phase.is_empty() { "-" } else { &r.phase };
            *phases.entry(phase.to_string()).or_default() += 1;
        }
        phases
    }

    /// Up to `n` of `names` that did not reach the goal, with their state.
    pub fn stragglers(&self, group: Group, names: &[String], n: usize) -> Vec<String> {
        names
            .iter()
            .filter(|name| !self.runs.get(*name).is_some_and(|r| group.done(r)))
            .take(n)
            .map(|name| match self.runs.get(name) {
                Some(r) => format!("{name}: {}", r.describe()),
                None => format!("{name}: not seen"),
            })
            .collect()
    }
}

type SharedRuns = Arc<Mutex<Runs>>;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The AnalysisRun watch feeding [`Runs`]; stopped when dropped.
struct RunWatch {
    runs: SharedRuns,
    synced: Arc<AtomicBool>,
    errors: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl RunWatch {
    fn start(api: Api<DynamicObject>) -> Self {
        let runs: SharedRuns = Arc::default();
        let synced = Arc::new(AtomicBool::new(false));
        let errors = Arc::new(AtomicU64::new(0));
        let (r, s, e) = (runs.clone(), synced.clone(), errors.clone());
        let config = watcher::Config::default().labels(&format!("{}={}", PART_OF.0, PART_OF.1));
        let task = tokio::spawn(async move {
            let mut events = std::pin::pin!(watcher(api, config).default_backoff());
            while let Some(event) = events.next().await {
                match event {
                    Ok(event) => {
                        let init_done = matches!(event, watcher::Event::InitDone);
                        lock(&r).on_event(event);
                        if init_done {
                            s.store(true, Ordering::SeqCst);
                        }
                    }
                    Err(_) => {
                        e.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        });
        Self {
            runs,
            synced,
            errors,
            task,
        }
    }
}

impl Drop for RunWatch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

// ---------------------------------------------------------------------------------------------
// The web endpoint

/// `GET /ok` answering `{"ok": 1}` on a loopback port, counting requests; stopped when dropped.
pub struct Endpoint {
    /// Where it listens.
    pub addr: SocketAddr,
    hits: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Endpoint {
    /// Serves on a free loopback port.
    pub async fn start() -> Result<Self> {
        let hits = Arc::new(AtomicU64::new(0));
        let counter = hits.clone();
        let router = axum::Router::new().route(
            "/ok",
            axum::routing::get(move || {
                counter.fetch_add(1, Ordering::Relaxed);
                std::future::ready(axum::Json(json!({"ok": 1})))
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .context("binding the web endpoint")?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, router).await {
                eprintln!("{NAME}: the web endpoint stopped: {e}");
            }
        });
        Ok(Self { addr, hits, task })
    }

    /// The URL the metrics GET.
    pub fn url(&self) -> String {
        format!("http://{}/ok", self.addr)
    }

    /// Requests answered so far.
    pub fn hits(&self) -> u64 {
        self.hits.load(Ordering::Relaxed)
    }
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        self.task.abort();
    }
}

// ---------------------------------------------------------------------------------------------
// The run

fn progress_line(line: &str) {
    super::common::progress_line(NAME, line);
}

/// What outlives an interrupted benchmark: the controller (stopped gracefully), the sampler,
/// the endpoint, the watch and the audit windows.
#[derive(Default)]
struct Session {
    controller: Option<Controller>,
    sampler: Option<Sampler>,
    endpoint: Option<Endpoint>,
    watch: Option<RunWatch>,
    windows: Vec<(String, Timestamp)>,
}

/// Runs the benchmark; `Ok(true)` when both phases converged. Results are written even when a
/// phase fails or the run is interrupted, and the cluster is stopped unless `--keep-cluster`.
pub async fn run(args: Args) -> Result<bool> {
    if args.running == 0 || args.finished == 0 || args.window == 0 {
        bail!("--running, --finished and --window must be at least 1");
    }
    let user_agent = Regex::new(&args.controller_user_agent)
        .with_context(|| format!("--controller-user-agent {:?}", args.controller_user_agent))?;
    let repo = repo_root();
    let started = Timestamp::now();
    let output = match &args.output {
        Some(dir) => dir.clone(),
        None => unique_dir("analysis-bench-results")?,
    };
    std::fs::create_dir_all(&output).with_context(|| format!("creating {}", output.display()))?;

    let mut report = AnalysisReport {
        benchmark: NAME.into(),
        format: FORMAT,
        started_at: started.to_string(),
        source: Source::probe(&repo),
        params: Params {
            label: args.label.clone(),
            running: args.running,
            finished: args.finished,
            window_seconds: args.window,
            interval: args.interval.clone(),
            concurrency: args.concurrency,
            namespace: args.namespace.clone(),
            phase_timeout_seconds: args.phase_timeout,
            settle_seconds: args.settle,
        },
        controller: ControllerInfo {
            command_template: args.controller_cmd.clone(),
            user_agent_regex: args.controller_user_agent.clone(),
            ..Default::default()
        },
        machine: Machine::probe(),
        ..Default::default()
    };

    // No pods run: one small kwok Node.
    let sizing = NodeSizing {
        nodes: 1,
        pods_per_node: 110,
    };
    let workdir = match &args.workdir {
        Some(w) => w.clone(),
        None => unique_dir("argo-rs-analysis-bench")?,
    };
    report.cluster = ClusterInfo {
        workdir: workdir.display().to_string(),
        nodes: Some(sizing),
        kube_client_qps: 100,
        kept: args.keep_cluster,
        ..Default::default()
    };
    progress_line(&format!(
        "starting the cluster in {} (audit log on)",
        workdir.display()
    ));
    let up_started = Instant::now();
    let up = Cluster::up(
        &repo,
        &workdir,
        sizing,
        100,
        false,
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
        eprintln!("{NAME}: {e:#}");
        report.error = Some(format!("{e:#}"));
    }
    let end = Timestamp::now();
    if let Some(controller) = session.controller.as_mut() {
        controller.stop().await;
    }
    if let Some(sampler) = session.sampler.take() {
        report.samples = sampler.all();
    }
    if let Some(endpoint) = session.endpoint.take() {
        report.endpoint.requests = endpoint.hits();
    }
    drop(session.watch.take());
    report.targets = targets(&report.phases);

    // The controller's requests per window, from the audit log.
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
    if !windows.is_empty() {
        let logs = cluster.logs();
        let w = windows.clone();
        let counted = tokio::task::spawn_blocking(move || audit::count_dir(&logs, &w, &user_agent)).await?;
        match counted {
            Ok(counts) => {
                report.audit = Some(AuditSummary::from(&counts));
                report.requests = counts
                    .windows
                    .iter()
                    .zip(&windows)
                    .map(|(c, w)| {
                        let seconds = round3(w.end.duration_since(w.start).as_secs_f64().max(0.0));
                        WindowRequests {
                            counts: c.clone(),
                            seconds,
                            per_second: if seconds > 0.0 {
                                round3(c.controller.total as f64 / seconds)
                            } else {
                                0.0
                            },
                        }
                    })
                    .collect();
            }
            Err(e) => {
                eprintln!("{NAME}: {e:#}");
                report.error.get_or_insert_with(|| format!("{e:#}"));
            }
        }
    }
    report.machine.load_at_end = load_average();
    report.finished_at = Timestamp::now().to_string();
    let markdown = report.markdown();
    write_results(&output, &report, &markdown)?;
    println!("{markdown}");
    eprintln!("{NAME}: results in {}", output.display());

    if args.keep_cluster {
        eprintln!(
            "{NAME}: cluster kept: source {}/env; stop it with e2e/cluster/down.sh {}",
            workdir.display(),
            workdir.display()
        );
    } else {
        cluster.down()?;
    }
    outcome.map(|()| {
        report.error.is_none() && report.phases.len() == 2 && report.phases.iter().all(|p| p.converged)
    })
}

async fn bench(
    args: &Args,
    cluster: &Cluster,
    report: &mut AnalysisReport,
    session: &mut Session,
) -> Result<()> {
    let client = bench_client(&cluster.kubeconfig, BENCH_USER_AGENT).await?;
    let ns = &args.namespace;
    create_namespace(&client, ns).await?;
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &analysis_run_resource());

    let endpoint = session.endpoint.insert(Endpoint::start().await?);
    let url = endpoint.url();
    report.endpoint.url = url.clone();

    let watch = session.watch.insert(RunWatch::start(api.clone()));
    crate::wait_for("the AnalysisRun watch", Duration::from_secs(60), || async {
        Ok(watch.synced.load(Ordering::SeqCst).then_some(()))
    })
    .await?;
    let runs = watch.runs.clone();
    let watch_errors = watch.errors.clone();

    // The controller, sampled from its start.
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
    session.sampler = Some(Sampler::start(pid, SAMPLE_PERIOD));
    launch
        .wait_ready(controller, started, &mut report.controller)
        .await?;

    let ctx = PhaseContext {
        args,
        api: &api,
        runs: &runs,
        watch_errors: &watch_errors,
        url: &url,
        pid,
    };
    for group in [Group::Running, Group::Finished] {
        if report.phases.last().is_some_and(|p| !p.converged) {
            report.phases.push(PhaseOutcome {
                name: group.name().into(),
                description: description(args, group),
                runs: group_size(args, group),
                skipped: true,
                last_progress: "skipped: the previous phase did not converge".into(),
                ..Default::default()
            });
            continue;
        }
        let outcome = ctx.phase(group, session).await?;
        report.phases.push(outcome);
    }
    Ok(())
}

fn group_size(args: &Args, group: Group) -> usize {
    match group {
        Group::Running => args.running,
        Group::Finished => args.finished,
    }
}

fn description(args: &Args, group: Group) -> String {
    match group {
        Group::Running => format!(
            "create {} AnalysisRuns (web metric, interval {}, count {RUNNING_COUNT}); steady when all are Running \
             with a measurement",
            args.running, args.interval
        ),
        Group::Finished => format!(
            "delete the running runs, create {} AnalysisRuns (web metric, count 1); steady when all are Successful",
            args.finished
        ),
    }
}

/// What every phase uses.
struct PhaseContext<'a> {
    args: &'a Args,
    api: &'a Api<DynamicObject>,
    runs: &'a SharedRuns,
    watch_errors: &'a AtomicU64,
    url: &'a str,
    pid: u32,
}

impl PhaseContext<'_> {
    /// Runs one phase: (for `finished`, deletes the running runs first,) creates the group's
    /// runs, waits for all of them to reach the goal, settles, samples the window.
    async fn phase(&self, group: Group, session: &mut Session) -> Result<PhaseOutcome> {
        let args = self.args;
        let n = group_size(args, group);
        let mut outcome = PhaseOutcome {
            name: group.name().into(),
            description: description(args, group),
            runs: n,
            ..Default::default()
        };
        session
            .windows
            .push((format!("{}: setup", group.name()), Timestamp::now()));
        let phase_start = Instant::now();
        let timeout = Duration::from_secs(args.phase_timeout);
        let controller = session
            .controller
            .as_mut()
            .ok_or_else(|| anyhow!("the controller is not running"))?;

        if group == Group::Finished {
            progress_line("deleting the running AnalysisRuns");
            let selector = format!("{PHASE_LABEL}={}", Group::Running.name());
            let (params, list) = (DeleteParams::default(), ListParams::default().labels(&selector));
            with_retries(|| self.api.delete_collection(&params, &list))
                .await
                .context("deleting the running AnalysisRuns")?;
            loop {
                let left = lock(self.runs).count(Group::Running);
                if left == 0 {
                    break;
                }
                controller.check_alive()?;
                if phase_start.elapsed() > timeout {
                    bail!("{left} running AnalysisRuns still there after {timeout:?}");
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            outcome.cleanup_seconds = Some(round3(phase_start.elapsed().as_secs_f64()));
        }

        // Create and wait.
        let names: Vec<String> = (0..n).map(|i| run_name(group, i)).collect();
        let (interval, count) = match group {
            Group::Running => (Some(args.interval.as_str()), RUNNING_COUNT),
            Group::Finished => (None, 1),
        };
        let created = AtomicUsize::new(0);
        let create_start = Instant::now();
        let creates_done: Mutex<Option<Instant>> = Mutex::new(None);
        let requests = async {
            let failures = for_each_bounded(n, args.concurrency, |i| {
                let (names, created) = (&names, &created);
                async move {
                    let obj: DynamicObject =
                        serde_json::from_value(run_manifest(&names[i], group, self.url, interval, count))?;
                    with_retries(|| async {
                        match self.api.create(&PostParams::default(), &obj).await {
                            // An earlier attempt got through after all.
                            Err(kube::Error::Api(s)) if s.code == 409 && s.reason == "AlreadyExists" => {
                                Ok(())
                            }
                            other => other.map(|_| ()),
                        }
                    })
                    .await?;
                    created.fetch_add(1, Ordering::Relaxed);
                    Ok(())
                }
            })
            .await;
            *lock(&creates_done) = Some(Instant::now());
            failures
        };
        let mut requests = std::pin::pin!(requests.fuse());
        let mut failures: Option<Vec<(usize, anyhow::Error)>> = None;
        let mut tick = tokio::time::interval(Duration::from_millis(200));
        let mut last_print = Instant::now() - Duration::from_secs(60);
        let mut ended_by: Option<String> = None;
        let mut converged_at = None;
        loop {
            tokio::select! {
                f = &mut requests, if failures.is_none() => {
                    for (i, e) in &f {
                        eprintln!("\n{NAME}: creating {} failed: {e:#}", names[*i]);
                    }
                    failures = Some(f);
                }
                _ = tick.tick() => {}
            }
            let (done, line) = {
                let r = lock(self.runs);
                let done = r.done(group);
                let mut line = format!(
                    "{:<9}{:>7.1}s  created {}/{n}, {} {done}/{n}; phases {:?}",
                    group.name(),
                    create_start.elapsed().as_secs_f64(),
                    created.load(Ordering::Relaxed),
                    match group {
                        Group::Running => "Running with a measurement",
                        Group::Finished => "Successful",
                    },
                    r.phases(group),
                );
                let errors = self.watch_errors.load(Ordering::Relaxed);
                if errors > 0 {
                    let _ = write!(line, ", {errors} watch errors");
                }
                (done, line)
            };
            if last_print.elapsed() >= progress_interval() {
                progress_line(&line);
                last_print = Instant::now();
            }
            let failed = failures.as_ref().map_or(0, Vec::len);
            if failures.is_some() && done + failed >= n {
                progress_line(&line);
                if failed == 0 {
                    converged_at = Some(Instant::now());
                }
                break;
            }
            if let Err(e) = controller.check_alive() {
                ended_by = Some(format!("{e:#}"));
                break;
            }
            if create_start.elapsed() > timeout {
                ended_by = Some(format!("timed out after {}s", args.phase_timeout));
                break;
            }
        }
        progress_done();
        outcome.failed_requests = failures.as_ref().map_or(0, Vec::len);
        outcome.create_seconds =
            lock(&creates_done).map(|t| round3(t.saturating_duration_since(create_start).as_secs_f64()));
        {
            let r = lock(self.runs);
            outcome.reached = r.done(group);
            outcome.stragglers = r.stragglers(group, &names, 10);
            outcome.last_progress = format!(
                "created {}/{n}, reached {}/{n}, phases {:?}{}",
                created.load(Ordering::Relaxed),
                outcome.reached,
                r.phases(group),
                ended_by.as_ref().map(|e| format!(" ({e})")).unwrap_or_default()
            );
        }
        outcome.converged = converged_at.is_some() && outcome.reached == n;
        if !outcome.converged {
            eprintln!(
                "{NAME}: phase `{}` did not converge: {}",
                group.name(),
                outcome.last_progress
            );
            return Ok(outcome);
        }
        outcome.converge_seconds =
            converged_at.map(|t| round3(t.saturating_duration_since(create_start).as_secs_f64()));

        // Settle, then the window.
        if args.settle > 0 {
            progress_line(&format!("{}: settling for {} s", group.name(), args.settle));
            tokio::time::sleep(Duration::from_secs(args.settle)).await;
        }
        controller.check_alive()?;
        let endpoint = session
            .endpoint
            .as_ref()
            .ok_or_else(|| anyhow!("the web endpoint is not running"))?;
        let sampler = session
            .sampler
            .as_ref()
            .ok_or_else(|| anyhow!("the controller is not sampled"))?;
        session
            .windows
            .push((format!("{}: window", group.name()), Timestamp::now()));
        let window_started_at = Timestamp::now();
        let load_at_start = load_average();
        let first = sampler.sample_now(self.pid)?;
        let (hits0, measurements0) = (endpoint.hits(), lock(self.runs).measurements(group));
        let window = Duration::from_secs(args.window);
        while first.at.elapsed() < window {
            controller.check_alive()?;
            if last_print.elapsed() >= progress_interval() {
                let cpu = sampler.last().map_or(0.0, |s| s.target.cpu_seconds) - first.target.cpu_seconds;
                let secs = first.at.elapsed().as_secs_f64().max(0.001);
                progress_line(&format!(
                    "{}: window {:.0}/{} s, controller CPU {:.2}% of a core, RSS {:.1} MiB",
                    group.name(),
                    secs,
                    args.window,
                    cpu / secs * 100.0,
                    sampler.last().map_or(0, |s| s.target.rss_bytes) as f64 / 1024.0 / 1024.0,
                ));
                last_print = Instant::now();
            }
            let left = window.saturating_sub(first.at.elapsed());
            tokio::time::sleep(left.min(Duration::from_millis(500))).await;
        }
        let last = sampler.sample_now(self.pid)?;
        let (hits1, measurements1) = (endpoint.hits(), lock(self.runs).measurements(group));
        progress_done();
        let usage = Usage::of(&sampler.between(first.at, last.at))
            .ok_or_else(|| anyhow!("too few samples in the {} window", group.name()))?;
        let phase_rss_peak = sampler
            .between(phase_start, last.at)
            .iter()
            .map(|s| s.target.rss_bytes)
            .max()
            .unwrap_or(0);
        let per_second = |n: u64| round3(n as f64 / usage.seconds.max(0.001));
        outcome.window = Some(WindowOutcome {
            started_at: window_started_at.to_string(),
            phase_rss_peak_mib: round3(phase_rss_peak as f64 / 1024.0 / 1024.0),
            endpoint_requests: hits1 - hits0,
            endpoint_per_second: per_second(hits1 - hits0),
            status_measurements: measurements1.saturating_sub(measurements0),
            status_per_second: per_second(measurements1.saturating_sub(measurements0)),
            load_at_start,
            load_at_end: load_average(),
            usage,
        });
        Ok(outcome)
    }
}

/// The targets, judged on the phases' windows: idle CPU with the finished runs (the
/// window's average), RSS with the running runs (the highest sample from the first create to
/// the end of the window).
pub fn targets(phases: &[PhaseOutcome]) -> Vec<Target> {
    let window = |name: &str| {
        phases
            .iter()
            .find(|p| p.name == name)
            .and_then(|p| p.window.as_ref())
    };
    let finished = phases.iter().find(|p| p.name == "finished").map_or(0, |p| p.runs);
    let running = phases.iter().find(|p| p.name == "running").map_or(0, |p| p.runs);
    let idle_cpu = window("finished").map(|w| w.usage.cpu_percent);
    let running_rss = window("running").map(|w| w.phase_rss_peak_mib);
    vec![
        Target {
            name: format!("CPU with {finished} finished AnalysisRuns (window average)"),
            limit: TARGET_IDLE_CPU_PERCENT,
            unit: "% of a core".into(),
            measured: idle_cpu,
            met: idle_cpu.map(|v| v < TARGET_IDLE_CPU_PERCENT),
        },
        Target {
            name: format!("RSS with {running} running AnalysisRuns (highest sample of the phase)"),
            limit: TARGET_RUNNING_RSS_MIB,
            unit: "MiB".into(),
            measured: running_rss,
            met: running_rss.map(|v| v < TARGET_RUNNING_RSS_MIB),
        },
    ]
}

// ---------------------------------------------------------------------------------------------
// Markdown

fn opt(v: Option<f64>, digits: usize) -> String {
    v.map_or_else(|| "-".into(), |v| format!("{v:.digits$}"))
}

impl AnalysisReport {
    /// The main table: one row per phase.
    pub fn results_table(&self) -> String {
        let mut md = String::new();
        let _ = writeln!(
            md,
            "| phase | AnalysisRuns | CPU, % of a core (window avg) | CPU p90 / max of 1 s intervals | RSS steady (p50), MiB | \
             RSS max in phase, MiB | VmHWM, MiB | measurements/s (endpoint / status) | controller API requests/s | \
             machine busy, % of a core | load at window start / end |"
        );
        let _ = writeln!(md, "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|");
        for p in &self.phases {
            let runs = match p.name.as_str() {
                "running" => format!("{} Running", p.runs),
                _ => format!("{} Successful", p.runs),
            };
            let Some(w) = &p.window else {
                let state = if p.skipped {
                    "skipped"
                } else {
                    "**did not converge**"
                };
                let _ = writeln!(md, "| {} | {runs} | {state} | | | | | | | | |", p.name);
                continue;
            };
            let u = &w.usage;
            let intervals = u
                .cpu_percent_intervals
                .as_ref()
                .map_or_else(|| "-".into(), |s| format!("{:.1} / {:.1}", s.p90, s.max));
            let requests = self
                .requests
                .iter()
                .find(|r| r.counts.name == format!("{}: window", p.name))
                .map(|r| r.per_second);
            let _ = writeln!(
                md,
                "| {} | {runs} | {:.2} | {intervals} | {} | {:.1} | {:.1} | {:.1} / {:.1} | {} | {} | {} / {} |",
                p.name,
                u.cpu_percent,
                opt(u.rss_mib.as_ref().map(|s| s.p50), 1),
                w.phase_rss_peak_mib,
                u.rss_high_water_mib,
                w.endpoint_per_second,
                w.status_per_second,
                opt(requests, 2),
                opt(u.machine_busy_percent, 0),
                w.load_at_start,
                w.load_at_end,
            );
        }
        md
    }

    /// The Markdown report.
    pub fn markdown(&self) -> String {
        let mut md = String::new();
        let p = &self.params;
        let label = if p.label.is_empty() {
            String::new()
        } else {
            format!(" ({})", p.label)
        };
        let _ = writeln!(
            md,
            "# {NAME}: {} running, then {} finished AnalysisRuns{label}\n",
            p.running, p.finished
        );
        let rows = [
            ("started", self.started_at.clone()),
            ("commit", self.source.describe()),
            ("controller", format!("`{}`", self.controller.command)),
            (
                "controller binary modified",
                self.controller
                    .binary_modified
                    .clone()
                    .unwrap_or_else(|| "-".into()),
            ),
            (
                "controller ready after",
                format!("{} s", opt(self.controller.ready_seconds, 1)),
            ),
            ("machine", self.machine.describe()),
            (
                "cluster",
                format!(
                    "e2e/cluster/up.sh, audit log on, up in {} s, workdir `{}`",
                    opt(self.cluster.up_seconds, 1),
                    self.cluster.workdir
                ),
            ),
            (
                "parameters",
                format!(
                    "window {} s after {} s settling, running runs' interval {}, concurrency {}, namespace `{}`",
                    p.window_seconds, p.settle_seconds, p.interval, p.concurrency, p.namespace
                ),
            ),
            (
                "web endpoint",
                format!(
                    "`{}`, {} requests in all",
                    self.endpoint.url, self.endpoint.requests
                ),
            ),
        ];
        let _ = writeln!(md, "| | |\n|---|---|");
        for (k, v) in rows {
            let _ = writeln!(md, "| {k} | {v} |");
        }
        if let Some(e) = &self.error {
            let _ = writeln!(md, "\n**Stopped early:** {}", e.replace('\n', " "));
        }

        let _ = writeln!(md, "\n## Controller CPU and memory\n");
        md.push_str(&self.results_table());
        let _ = writeln!(
            md,
            "\nCPU is the controller's user + system time over the window (`/proc/PID/stat`); RSS is `VmRSS`, sampled \
             every second, \"max in phase\" from the phase's first request to the end of its window; VmHWM is the \
             highest RSS since the process started. Measurements/s: requests the endpoint answered, and measurements \
             the runs' statuses gained, over the window. \"machine busy\" is all processes (`/proc/stat`)."
        );

        let _ = writeln!(md, "\n## Targets (issue 13)\n");
        let _ = writeln!(md, "| target | limit | measured | met |");
        let _ = writeln!(md, "|---|---:|---:|---|");
        for t in &self.targets {
            let met = match t.met {
                Some(true) => "yes",
                Some(false) => "**no**",
                None => "-",
            };
            let _ = writeln!(
                md,
                "| {} | < {} {} | {} | {met} |",
                t.name,
                t.limit,
                t.unit,
                opt(t.measured, 2)
            );
        }

        let _ = writeln!(md, "\n## Phases\n");
        let _ = writeln!(
            md,
            "| phase | goal | cleanup (s) | creates (s) | steady after (s) | reached | converged | failed requests |"
        );
        let _ = writeln!(md, "|---|---|---:|---:|---:|---:|---|---:|");
        for ph in &self.phases {
            let state = if ph.skipped {
                "skipped"
            } else if ph.converged {
                "yes"
            } else {
                "**no**"
            };
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} | {}/{} | {state} | {} |",
                ph.name,
                ph.description,
                opt(ph.cleanup_seconds, 1),
                opt(ph.create_seconds, 1),
                opt(ph.converge_seconds, 1),
                ph.reached,
                ph.runs,
                ph.failed_requests
            );
        }
        for ph in self.phases.iter().filter(|p| !p.stragglers.is_empty()) {
            let _ = writeln!(md, "\nNot converged in `{}` ({}):\n", ph.name, ph.last_progress);
            for s in &ph.stragglers {
                let _ = writeln!(md, "- {s}");
            }
        }

        if !self.requests.is_empty() {
            let _ = writeln!(
                md,
                "\n## Controller API requests\n\nFrom the API server's audit log; requests whose User-Agent matches `{}`, \
                 by the window they were received in (a watch counts once, when it started).\n",
                self.controller.user_agent_regex
            );
            let _ = write!(md, "| window | seconds | total | per second |");
            for v in VERBS {
                let _ = write!(md, " {v} |");
            }
            let _ = writeln!(md, " non-2xx | by resource |");
            let _ = writeln!(md, "|---|---:|---:|---:|{}---|---|", "---:|".repeat(VERBS.len()));
            for r in &self.requests {
                let c = &r.counts.controller;
                let _ = write!(
                    md,
                    "| {} | {:.1} | {} | {:.2} |",
                    r.counts.name, r.seconds, c.total, r.per_second
                );
                for v in VERBS {
                    let _ = write!(md, " {} |", c.verb(v));
                }
                let resources: Vec<String> = c
                    .by_resource
                    .iter()
                    .map(|(res, verbs)| format!("{res} {}", verbs.values().sum::<u64>()))
                    .collect();
                let _ = writeln!(
                    md,
                    " {} | {} |",
                    codes(Some(&c.failed_by_code)),
                    resources.join(", ")
                );
            }
        }
        md
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory, Parser};

    #[test]
    fn clap_definition_is_consistent() {
        Args::command().debug_assert();
        let args = Args::try_parse_from([NAME]).unwrap();
        assert_eq!((args.running, args.finished, args.window), (1000, 5000, 60));
        assert_eq!(args.interval, "10s");
        assert!(args.controller_cmd.contains("{rust_bin}/analysis-controller"));
    }

    fn run(name: &str, group: Group, status: Value) -> DynamicObject {
        let mut obj: DynamicObject =
            serde_json::from_value(run_manifest(name, group, "http://127.0.0.1:1/ok", Some("10s"), 5))
                .unwrap();
        obj.data["status"] = status;
        obj
    }

    #[test]
    fn manifests_carry_the_metric() {
        let m = run_manifest(
            "run-00001",
            Group::Running,
            "http://x/ok",
            Some("10s"),
            RUNNING_COUNT,
        );
        let metric = &m["spec"]["metrics"][0];
        assert_eq!(metric["interval"], "10s");
        assert_eq!(metric["count"], RUNNING_COUNT);
        assert_eq!(metric["successCondition"], "result == 1");
        assert_eq!(metric["provider"]["web"]["jsonPath"], "{$.ok}");
        assert_eq!(m["metadata"]["labels"][PHASE_LABEL], "running");
        let m = run_manifest("done-00001", Group::Finished, "http://x/ok", None, 1);
        assert!(m["spec"]["metrics"][0].get("interval").is_none());
        assert_eq!(run_name(Group::Finished, 7), "done-00007");
        // The manifest is a valid AnalysisRun for our types.
        let typed: shared_types::analysis::AnalysisRun = serde_json::from_value(m).unwrap();
        assert_eq!(typed.spec.metrics[0].count_value(), Ok(Some(1)));
    }

    #[test]
    fn runs_are_read_and_counted() {
        let mut runs = Runs::default();
        runs.on_event(watcher::Event::Apply(run(
            "run-00000",
            Group::Running,
            json!({"phase": "Running", "metricResults": [{"name": "web", "phase": "Running", "count": 3, "error": 1}]}),
        )));
        runs.on_event(watcher::Event::Apply(run("run-00001", Group::Running, json!({}))));
        runs.on_event(watcher::Event::Apply(run(
            "done-00000",
            Group::Finished,
            json!({"phase": "Successful", "metricResults": [{"name": "web", "phase": "Successful", "count": 1}]}),
        )));
        assert_eq!((runs.count(Group::Running), runs.done(Group::Running)), (2, 1));
        assert_eq!(runs.measurements(Group::Running), 4);
        assert_eq!(runs.done(Group::Finished), 1);
        assert_eq!(
            runs.phases(Group::Running),
            BTreeMap::from([("-".to_string(), 1), ("Running".to_string(), 1)])
        );
        let names = vec!["run-00000".to_string(), "run-00001".into(), "run-00002".into()];
        assert_eq!(
            runs.stragglers(Group::Running, &names, 10),
            vec!["run-00001: phase=- measurements=0", "run-00002: not seen"]
        );
        runs.on_event(watcher::Event::Delete(run(
            "run-00000",
            Group::Running,
            json!({}),
        )));
        assert_eq!(runs.count(Group::Running), 1);
        // A relist drops what is gone.
        runs.on_event(watcher::Event::Init);
        runs.on_event(watcher::Event::InitApply(run(
            "done-00000",
            Group::Finished,
            json!({}),
        )));
        assert_eq!(
            runs.count(Group::Running),
            1,
            "replaced only when the relist is done"
        );
        runs.on_event(watcher::Event::InitDone);
        assert_eq!((runs.count(Group::Running), runs.count(Group::Finished)), (0, 1));
    }

    #[test]
    fn targets_use_the_windows() {
        let window = |cpu: f64, peak: f64| WindowOutcome {
            usage: Usage {
                cpu_percent: cpu,
                ..Default::default()
            },
            phase_rss_peak_mib: peak,
            ..Default::default()
        };
        let phases = vec![
            PhaseOutcome {
                name: "running".into(),
                runs: 1000,
                window: Some(window(5.0, 120.0)),
                ..Default::default()
            },
            PhaseOutcome {
                name: "finished".into(),
                runs: 5000,
                window: Some(window(0.2, 60.0)),
                ..Default::default()
            },
        ];
        let t = targets(&phases);
        assert_eq!((t[0].measured, t[0].met), (Some(0.2), Some(true)));
        assert_eq!((t[1].measured, t[1].met), (Some(120.0), Some(false)));
        assert!(t[0].name.contains("5000") && t[1].name.contains("1000"));
        let t = targets(&phases[..1]);
        assert_eq!((t[0].measured, t[0].met), (None, None));
        let report = AnalysisReport {
            phases,
            targets: t,
            ..Default::default()
        };
        let md = report.markdown();
        assert!(md.contains("| running | 1000 Running | 5.00 |"), "{md}");
    }
}

//! The benchmark's results: what was run where, phases, latencies and API requests; written as
//! `results.json` and `results.md`.

use std::{collections::BTreeMap, fmt::Write as _, path::Path};

use anyhow::{Context as _, Result};
use serde::Serialize;

use super::{
    audit::{AuditCounts, RequestCounts, VERBS},
    cluster::NodeSizing,
    monitor::TimelinePoint,
    procstat::Usage,
    stats::Summary,
};

/// Format version of `results.json` (2: `resources`, `idle`, `targets`, `timeline`, `plot`).
pub const FORMAT: u32 = 2;

/// RSS limit of the rollout controller with N = 1,000 (issue 17), MiB.
pub const TARGET_RSS_MIB: f64 = 64.0;
/// CPU seconds limit for create -> image -> paused -> promote -> Healthy at N = 1,000.
pub const TARGET_CYCLE_CPU_SECONDS: f64 = 60.0;
/// API writes per Rollout per step transition, on average.
pub const TARGET_WRITES_PER_TRANSITION: f64 = 4.0;
/// Seconds from the image change to all Rollouts paused at N = 1,000.
pub const TARGET_IMAGE_WALL_SECONDS: f64 = 60.0;
/// Idle CPU of the rollout controller with N Healthy Rollouts, percent of a core.
pub const TARGET_IDLE_CPU_PERCENT: f64 = 1.0;
/// Step transitions per Rollout in the image and promote phases: the image change starts the
/// steps at `setWeight: 20` and advances to `pause` (2), the promotion leaves the pause and
/// completes the steps (1).
pub const STEP_TRANSITIONS: f64 = 3.0;

/// Everything the benchmark reports.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Report {
    /// Always `scale-bench`.
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
    /// The phases, in order.
    pub phases: Vec<PhaseResult>,
    /// Latency distributions.
    pub latencies: Vec<Latency>,
    /// API requests per phase (from the audit log).
    pub requests: Vec<PhaseRequests>,
    /// What was read of the audit log.
    pub audit: Option<AuditSummary>,
    /// The controller's CPU and memory per window (`/proc`, sampled every second).
    pub resources: Vec<PhaseResources>,
    /// CPU seconds of the controller over the create, image and promote windows.
    pub cycle_cpu_seconds: Option<f64>,
    /// The idle window after the promotion.
    pub idle: Option<IdleResult>,
    /// The issue's targets, measured.
    pub targets: Vec<Target>,
    /// The PNG plot, relative to the results directory.
    pub plot: Option<String>,
    /// Why the sampling of the controller stopped early, if it did.
    pub sampling_error: Option<String>,
    /// Every sample: RSS, CPU time and converged Rollouts over time.
    pub timeline: Vec<TimelinePoint>,
    /// Why the run stopped early, if it did.
    pub error: Option<String>,
}

/// The controller's CPU and memory in one window (same windows as the API requests).
#[derive(Clone, Debug, Default, Serialize)]
pub struct PhaseResources {
    /// Window name.
    pub window: String,
    /// CPU and RSS; `None` with fewer than two samples.
    pub usage: Option<Usage>,
}

/// The idle window: N Healthy Rollouts and nothing changing.
#[derive(Clone, Debug, Default, Serialize)]
pub struct IdleResult {
    /// Length of the window, seconds (`--idle`).
    pub seconds: f64,
    /// The controller's CPU over the window, percent of one core.
    pub cpu_percent: Option<f64>,
    /// The controller's median RSS in the window, MiB.
    pub rss_mib: Option<f64>,
    /// The controller's API requests in the window (audit log).
    pub controller_requests: Option<u64>,
    /// The same per second.
    pub requests_per_second: Option<f64>,
}

/// One target of the issue.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Target {
    /// What is measured.
    pub name: String,
    /// The limit.
    pub limit: String,
    /// The measurement (`-` when not measured).
    pub measured: String,
    /// Whether it was met (`None`: not measured by this run).
    pub met: Option<bool>,
    /// How it was measured.
    pub note: String,
}

/// The repository state.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Source {
    /// `git rev-parse --short HEAD`.
    pub commit: String,
    /// Tracked files with uncommitted changes (`git status --porcelain`).
    pub modified_files: Vec<String>,
}

/// The benchmark's parameters.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Params {
    /// `--label`.
    pub label: String,
    /// Rollouts.
    pub rollouts: usize,
    /// Replicas per Rollout.
    pub replicas: u32,
    /// Requests in flight at once.
    pub concurrency: usize,
    /// Namespace.
    pub namespace: String,
    /// Seconds allowed per phase.
    pub phase_timeout_seconds: u64,
    /// Seconds waited after a phase converged before the next one starts.
    pub settle_seconds: u64,
    /// Image before the change.
    pub image: String,
    /// Image after the change.
    pub new_image: String,
    /// Seconds of the idle window (0: none).
    pub idle_seconds: u64,
}

/// The controller under test.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ControllerInfo {
    /// `--controller-cmd` as given.
    pub command_template: String,
    /// The command line run (placeholders substituted).
    pub command: String,
    /// Modification time of the executable, when it is a file.
    pub binary_modified: Option<String>,
    /// Regex selecting the controller's requests by User-Agent.
    pub user_agent_regex: String,
    /// Seconds from start to ready.
    pub ready_seconds: Option<f64>,
    /// Its log file.
    pub log: String,
}

/// The machine.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Machine {
    /// Host name.
    pub hostname: String,
    /// CPUs available to the process (`nproc`).
    pub nproc: usize,
    /// CPU model.
    pub cpu_model: String,
    /// Total memory, GiB.
    pub memory_gib: f64,
    /// Kernel release.
    pub kernel: String,
    /// `/proc/loadavg` when the benchmark started.
    pub load_at_start: String,
    /// `/proc/loadavg` when it ended.
    pub load_at_end: String,
}

/// The local cluster.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ClusterInfo {
    /// up.sh's WORKDIR (logs, audit log, kubeconfig).
    pub workdir: String,
    /// kwok Nodes and their pod capacity.
    pub nodes: Option<NodeSizing>,
    /// Client-side QPS limit of KCM and the scheduler.
    pub kube_client_qps: u32,
    /// up.sh's `SCALE_FLAGS=1`: API server and etcd limits for thousands of objects.
    pub scale_flags: bool,
    /// Seconds up.sh took.
    pub up_seconds: Option<f64>,
    /// Left running (`--keep-cluster`).
    pub kept: bool,
}

/// One phase.
#[derive(Clone, Debug, Default, Serialize)]
pub struct PhaseResult {
    /// Short name (`create`, `image`, `promote`).
    pub name: String,
    /// What it does and when it is done.
    pub description: String,
    /// Not run because an earlier phase failed.
    pub skipped: bool,
    /// Every Rollout reached the goal in time.
    pub converged: bool,
    /// Rollouts that reached the goal.
    pub reached: usize,
    /// Rollouts in the benchmark.
    pub expected: usize,
    /// Requests of the phase that failed (after retries).
    pub failed_requests: usize,
    /// Seconds from the first request until the last Rollout reached the goal (or until the
    /// timeout).
    pub wall_seconds: Option<f64>,
    /// Start of its window in the audit log (RFC 3339).
    pub started_at: Option<String>,
    /// The progress line when it ended.
    pub last_progress: String,
    /// Up to 10 Rollouts that did not reach the goal, with their last state.
    pub stragglers: Vec<String>,
}

/// A latency distribution over Rollouts.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Latency {
    /// Short name.
    pub name: String,
    /// Phase it belongs to.
    pub phase: String,
    /// Where it is measured from.
    pub from: String,
    /// Where it is measured to.
    pub to: String,
    /// Percentiles in seconds; `None` without samples.
    pub summary: Option<Summary>,
    /// Rollouts without a sample.
    pub missing: usize,
    /// Samples in seconds, in Rollout order (absent ones left out).
    pub samples: Vec<f64>,
}

/// API requests of one phase.
#[derive(Clone, Debug, Default, Serialize)]
pub struct PhaseRequests {
    /// Window name (`controller start` or a phase name).
    pub window: String,
    /// Window start (RFC 3339).
    pub start: String,
    /// Window end (RFC 3339).
    pub end: String,
    /// The controller's requests.
    pub controller: RequestCounts,
    /// The controller's write requests.
    pub writes: u64,
    /// Writes per Rollout.
    pub writes_per_rollout: f64,
    /// Writes other than on Events, per Rollout.
    pub writes_per_rollout_without_events: f64,
    /// Events created (core and events.k8s.io).
    pub events_created: u64,
    /// Events patched or updated (core and events.k8s.io).
    pub events_patched: u64,
    /// Requests of every client, by User-Agent.
    pub by_user_agent: BTreeMap<String, u64>,
}

impl PhaseRequests {
    /// Derives the per-phase figures from the audit counts.
    pub fn from_counts(counts: &AuditCounts, rollouts: usize) -> Vec<Self> {
        counts
            .windows
            .iter()
            .map(|w| {
                let c = &w.controller;
                let per = |n: u64| (n as f64 / rollouts.max(1) as f64 * 100.0).round() / 100.0;
                Self {
                    window: w.name.clone(),
                    start: w.start.clone(),
                    end: w.end.clone(),
                    controller: c.clone(),
                    writes: c.writes(),
                    writes_per_rollout: per(c.writes()),
                    writes_per_rollout_without_events: per(c.writes_without_events()),
                    events_created: c.events("create"),
                    events_patched: c.events("patch") + c.events("update"),
                    by_user_agent: w.by_user_agent.clone(),
                }
            })
            .collect()
    }
}

/// What was read of the audit log.
#[derive(Clone, Debug, Default, Serialize)]
pub struct AuditSummary {
    /// Files.
    pub files: Vec<String>,
    /// Lines.
    pub lines: u64,
    /// Lines that were not audit events.
    pub unparsable: u64,
    /// Distinct requests.
    pub requests: u64,
    /// Requests outside every window (before the controller started, after the end).
    pub outside_windows: u64,
}

impl From<&AuditCounts> for AuditSummary {
    fn from(c: &AuditCounts) -> Self {
        Self {
            files: c.files.iter().map(|f| f.display().to_string()).collect(),
            lines: c.lines,
            unparsable: c.unparsable,
            requests: c.requests,
            outside_windows: c.outside_windows,
        }
    }
}

impl Machine {
    /// Reads `/proc`.
    pub fn probe() -> Self {
        let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
        let meminfo = read("/proc/meminfo");
        let mem_kib: f64 = meminfo
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0.0);
        Self {
            hostname: read("/proc/sys/kernel/hostname").trim().to_string(),
            nproc: std::thread::available_parallelism().map_or(0, |n| n.get()),
            cpu_model: read("/proc/cpuinfo")
                .lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|v| v.trim_start_matches([' ', '\t', ':']).trim().to_string())
                .unwrap_or_default(),
            memory_gib: (mem_kib / 1024.0 / 1024.0 * 10.0).round() / 10.0,
            kernel: read("/proc/sys/kernel/osrelease").trim().to_string(),
            load_at_start: load_average(),
            load_at_end: String::new(),
        }
    }
}

impl Machine {
    /// One line for the report.
    pub fn describe(&self) -> String {
        format!(
            "{} CPUs ({}), {} GiB, kernel {}; load {} at start, {} at end",
            self.nproc, self.cpu_model, self.memory_gib, self.kernel, self.load_at_start, self.load_at_end
        )
    }
}

/// Writes `report` as `results.json` and `markdown` as `results.md` into `dir`.
pub fn write_results(dir: &Path, report: &impl Serialize, markdown: &str) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let json = serde_json::to_string_pretty(report)?;
    std::fs::write(dir.join("results.json"), json + "\n")
        .with_context(|| format!("writing {}", dir.join("results.json").display()))?;
    std::fs::write(dir.join("results.md"), markdown)
        .with_context(|| format!("writing {}", dir.join("results.md").display()))?;
    Ok(())
}

/// The first three fields of `/proc/loadavg`.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

impl Source {
    /// Asks git about `repo` (read-only commands).
    pub fn probe(repo: &Path) -> Self {
        let git = |args: &[&str]| {
            std::process::Command::new("git")
                .arg("-C")
                .arg(repo)
                .args(args)
                .output()
                .ok()
                .filter(|o| o.status.success())
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                .unwrap_or_default()
        };
        Self {
            commit: git(&["rev-parse", "--short", "HEAD"]).trim().to_string(),
            modified_files: git(&["status", "--porcelain", "--untracked-files=no"])
                .lines()
                .map(|l| l.trim().to_string())
                .filter(|l| !l.is_empty())
                .collect(),
        }
    }
}

impl Source {
    /// `` `abc1234` `` plus how many tracked files were modified.
    pub fn describe(&self) -> String {
        if self.modified_files.is_empty() {
            format!("`{}`", self.commit)
        } else {
            format!("`{}` + {} modified files", self.commit, self.modified_files.len())
        }
    }
}

impl Report {
    /// Whether every phase ran and converged.
    pub fn all_converged(&self) -> bool {
        self.error.is_none() && !self.phases.is_empty() && self.phases.iter().all(|p| p.converged)
    }

    /// Writes `results.json` and `results.md` into `dir`.
    pub fn write(&self, dir: &Path) -> Result<()> {
        write_results(dir, self, &self.markdown())
    }

    /// The Markdown report.
    pub fn markdown(&self) -> String {
        let mut md = String::new();
        let p = &self.params;
        let m = &self.machine;
        let label = if p.label.is_empty() {
            String::new()
        } else {
            format!(" ({})", p.label)
        };
        let _ = writeln!(
            md,
            "# scale-bench: {} Rollouts x {} replicas{label}\n",
            p.rollouts, p.replicas
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
                "controller requests",
                format!("User-Agent matching `{}`", self.controller.user_agent_regex),
            ),
            ("machine", m.describe()),
            (
                "cluster",
                match self.cluster.nodes {
                    Some(n) => format!(
                        "{} kwok nodes x {} pods, KCM and scheduler at {} QPS, {}, up in {} s, workdir `{}`",
                        n.nodes,
                        n.pods_per_node,
                        self.cluster.kube_client_qps,
                        if self.cluster.scale_flags {
                            "API server and etcd with up.sh's SCALE_FLAGS=1"
                        } else {
                            "API server and etcd defaults"
                        },
                        secs(self.cluster.up_seconds),
                        self.cluster.workdir
                    ),
                    None => "-".into(),
                },
            ),
            (
                "parameters",
                format!(
                    "concurrency {}, phase timeout {} s, settle {} s, idle {} s, namespace `{}`, image `{}` -> `{}`",
                    p.concurrency,
                    p.phase_timeout_seconds,
                    p.settle_seconds,
                    p.idle_seconds,
                    p.namespace,
                    p.image,
                    p.new_image
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

        let _ = writeln!(md, "\n## Latency (seconds)\n");
        let _ = writeln!(
            md,
            "| measurement | from | to | n | p50 | p90 | p99 | max | missing |"
        );
        let _ = writeln!(md, "|---|---|---|---:|---:|---:|---:|---:|---:|");
        for l in &self.latencies {
            let (n, p50, p90, p99, max) = match &l.summary {
                Some(s) => (s.count.to_string(), f3(s.p50), f3(s.p90), f3(s.p99), f3(s.max)),
                None => ("0".into(), "-".into(), "-".into(), "-".into(), "-".into()),
            };
            let _ = writeln!(
                md,
                "| {} | {} | {} | {n} | {p50} | {p90} | {p99} | {max} | {} |",
                l.name, l.from, l.to, l.missing
            );
        }

        let _ = writeln!(md, "\n## Phases\n");
        let _ = writeln!(
            md,
            "| phase | goal | wall (s) | reached | converged | failed requests |"
        );
        let _ = writeln!(md, "|---|---|---:|---:|---|---:|");
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
                "| {} | {} | {} | {}/{} | {state} | {} |",
                ph.name,
                ph.description,
                secs(ph.wall_seconds),
                ph.reached,
                ph.expected,
                ph.failed_requests
            );
        }
        for ph in self.phases.iter().filter(|p| !p.stragglers.is_empty()) {
            let _ = writeln!(md, "\nNot converged in `{}`:\n", ph.name);
            for s in &ph.stragglers {
                let _ = writeln!(md, "- {s}");
            }
        }

        self.resources_markdown(&mut md);
        if !self.requests.is_empty() {
            self.requests_markdown(&mut md);
        }
        md
    }

    /// Resource usage per window; the cycle's CPU time; the idle window.
    pub fn derive(&mut self) {
        let usage = |w: &str| {
            self.resources
                .iter()
                .find(|r| r.window == w)
                .and_then(|r| r.usage.as_ref())
        };
        let cycle: Vec<f64> = ["create", "image", "promote"]
            .iter()
            .filter_map(|w| usage(w).map(|u| u.cpu_seconds))
            .collect();
        self.cycle_cpu_seconds =
            (cycle.len() == 3).then(|| (cycle.iter().sum::<f64>() * 100.0).round() / 100.0);
        if let Some(idle) = self.idle.as_mut() {
            let u = self
                .resources
                .iter()
                .find(|r| r.window == "idle")
                .and_then(|r| r.usage.as_ref());
            idle.cpu_percent = u.map(|u| u.cpu_percent);
            idle.rss_mib = u.and_then(|u| u.rss_mib.as_ref()).map(|r| r.p50);
            if let Some(r) = self.requests.iter().find(|r| r.window == "idle") {
                idle.controller_requests = Some(r.controller.total);
                idle.requests_per_second = (idle.seconds > 0.0)
                    .then(|| (r.controller.total as f64 / idle.seconds * 100.0).round() / 100.0);
            }
        }
        self.targets = self.evaluate_targets();
    }

    /// The issue's targets (stated for N = 1,000), measured on this run.
    fn evaluate_targets(&self) -> Vec<Target> {
        let usage = |w: &str| {
            self.resources
                .iter()
                .find(|r| r.window == w)
                .and_then(|r| r.usage.as_ref())
        };
        let phase = |w: &str| self.phases.iter().find(|p| p.name == w && p.converged);
        let requests = |w: &str| self.requests.iter().find(|r| r.window == w);
        let mut targets = Vec::new();

        let steady = usage("idle")
            .map(|u| ("idle", u))
            .or_else(|| usage("promote").map(|u| ("promote", u)));
        let peak = self
            .resources
            .iter()
            .filter_map(|r| r.usage.as_ref()?.rss_mib.as_ref().map(|s| s.max))
            .fold(None, |m: Option<f64>, v| Some(m.map_or(v, |m| m.max(v))));
        targets.push(
            match steady.and_then(|(w, u)| Some((w, u.rss_mib.as_ref()?.p50))) {
                Some((w, rss)) => Target {
                    name: "rollout controller steady RSS".into(),
                    limit: format!("< {TARGET_RSS_MIB} MiB"),
                    measured: format!("{rss:.1} MiB"),
                    met: Some(rss < TARGET_RSS_MIB),
                    note: format!(
                        "median of the `{w}` window's samples; highest sample of the run {} MiB",
                        peak.map_or_else(|| "-".into(), |p| format!("{p:.1}"))
                    ),
                },
                None => not_measured("rollout controller steady RSS", format!("< {TARGET_RSS_MIB} MiB")),
            },
        );
        targets.push(match self.cycle_cpu_seconds {
            Some(cpu) => Target {
                name: "controller CPU, create -> image -> paused -> promote -> Healthy".into(),
                limit: format!("< {TARGET_CYCLE_CPU_SECONDS} s"),
                measured: format!("{cpu:.2} s"),
                met: Some(cpu < TARGET_CYCLE_CPU_SECONDS),
                note:
                    "user + system CPU of the create, image and promote windows (each with its settle time)"
                        .into(),
            },
            None => not_measured(
                "controller CPU, create -> image -> paused -> promote -> Healthy",
                format!("< {TARGET_CYCLE_CPU_SECONDS} s"),
            ),
        });
        match (requests("image"), requests("promote")) {
            (Some(i), Some(p)) if self.params.rollouts > 0 => {
                let n = self.params.rollouts as f64 * STEP_TRANSITIONS;
                let all = (i.writes + p.writes) as f64 / n;
                let without =
                    (i.controller.writes_without_events() + p.controller.writes_without_events()) as f64 / n;
                targets.push(Target {
                    name: "API writes per Rollout per step transition".into(),
                    limit: format!("<= {TARGET_WRITES_PER_TRANSITION}"),
                    measured: format!("{all:.2} ({without:.2} without Events)"),
                    met: Some(all <= TARGET_WRITES_PER_TRANSITION),
                    note: format!(
                        "writes of the image and promote windows / (N x {STEP_TRANSITIONS}): the image change starts \
                         the steps and advances to the pause, the promotion completes them; Events count as writes"
                    ),
                });
            }
            _ => targets.push(not_measured(
                "API writes per Rollout per step transition",
                format!("<= {TARGET_WRITES_PER_TRANSITION}"),
            )),
        }
        targets.push(match phase("image").and_then(|p| p.wall_seconds) {
            Some(wall) => Target {
                name: "image change -> all paused, wall time".into(),
                limit: format!("< {TARGET_IMAGE_WALL_SECONDS} s"),
                measured: format!("{wall:.1} s"),
                met: Some(wall < TARGET_IMAGE_WALL_SECONDS),
                note: "first image patch sent until the last Rollout was seen paused at step 1".into(),
            },
            None => not_measured(
                "image change -> all paused, wall time",
                format!("< {TARGET_IMAGE_WALL_SECONDS} s"),
            ),
        });
        targets.push(match self.idle.as_ref().and_then(|i| i.cpu_percent) {
            Some(cpu) => Target {
                name: format!(
                    "rollout controller idle CPU, {} Healthy Rollouts",
                    self.params.rollouts
                ),
                limit: format!("< {TARGET_IDLE_CPU_PERCENT}% of a core"),
                measured: format!("{cpu:.2}%"),
                met: Some(cpu < TARGET_IDLE_CPU_PERCENT),
                note: format!(
                    "CPU over the idle window ({} s)",
                    self.idle.as_ref().map_or(0.0, |i| i.seconds)
                ),
            },
            None => not_measured(
                "rollout controller idle CPU",
                format!("< {TARGET_IDLE_CPU_PERCENT}% of a core"),
            ),
        });
        targets.push(Target {
            note: "measured by analysis-bench, not scale-bench".into(),
            ..not_measured(
                "analysis controller idle CPU, 5,000 finished AnalysisRuns",
                "< 1% of a core".into(),
            )
        });
        targets
    }

    fn resources_markdown(&self, md: &mut String) {
        if self.resources.is_empty() {
            return;
        }
        let _ = writeln!(
            md,
            "\n## Controller CPU and memory\n\nFrom `/proc/PID/stat` and `/proc/PID/status` of the controller process, \
             sampled every second and at each window's start and end; same windows as the API requests below.\n"
        );
        let _ = writeln!(
            md,
            "| window | seconds | CPU s | CPU, % of a core | CPU p90 / max of 1 s intervals, % | RSS steady (p50), MiB | RSS peak (max sample), MiB | VmHWM, MiB | threads | machine busy, % of a core |"
        );
        let _ = writeln!(md, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        for r in &self.resources {
            match &r.usage {
                Some(u) => {
                    let _ = writeln!(
                        md,
                        "| {} | {:.1} | {:.2} | {:.2} | {} | {} | {} | {:.1} | {} | {} |",
                        r.window,
                        u.seconds,
                        u.cpu_seconds,
                        u.cpu_percent,
                        u.cpu_percent_intervals
                            .as_ref()
                            .map_or_else(|| "-".into(), |s| format!("{:.0} / {:.0}", s.p90, s.max)),
                        u.rss_mib
                            .as_ref()
                            .map_or_else(|| "-".into(), |s| format!("{:.1}", s.p50)),
                        u.rss_mib
                            .as_ref()
                            .map_or_else(|| "-".into(), |s| format!("{:.1}", s.max)),
                        u.rss_high_water_mib,
                        u.threads,
                        u.machine_busy_percent
                            .map_or_else(|| "-".into(), |b| format!("{b:.0}")),
                    );
                }
                None => {
                    let _ = writeln!(md, "| {} | - | - | - | - | - | - | - | - | - |", r.window);
                }
            }
        }
        if let Some(cpu) = self.cycle_cpu_seconds {
            let _ = writeln!(md, "\nCPU of create + image + promote: **{cpu:.2} s**.");
        }
        if let Some(i) = &self.idle {
            let _ = writeln!(
                md,
                "\nIdle ({} s, {} Healthy Rollouts): CPU {} of a core, RSS {} MiB, {} controller API requests ({} per second).",
                i.seconds,
                self.params.rollouts,
                i.cpu_percent.map_or_else(|| "-".into(), |c| format!("{c:.2}%")),
                i.rss_mib.map_or_else(|| "-".into(), |r| format!("{r:.1}")),
                i.controller_requests
                    .map_or_else(|| "-".into(), |n| n.to_string()),
                i.requests_per_second
                    .map_or_else(|| "-".into(), |n| format!("{n:.2}")),
            );
        }
        if let Some(e) = &self.sampling_error {
            let _ = writeln!(md, "\nSampling stopped early: {e}");
        }
        if let Some(plot) = &self.plot {
            let _ = writeln!(md, "\n![RSS and converged Rollouts over time]({plot})");
        }
        if !self.targets.is_empty() {
            let _ = writeln!(
                md,
                "\n## Targets (issue 17, stated for N = 1,000; this run: N = {})\n",
                self.params.rollouts
            );
            let _ = writeln!(md, "| target | limit | measured | met | how |");
            let _ = writeln!(md, "|---|---|---|---|---|");
            for t in &self.targets {
                let met = match t.met {
                    Some(true) => "yes",
                    Some(false) => "**no**",
                    None => "-",
                };
                let _ = writeln!(
                    md,
                    "| {} | {} | {} | {met} | {} |",
                    t.name, t.limit, t.measured, t.note
                );
            }
        }
    }

    fn requests_markdown(&self, md: &mut String) {
        let _ = writeln!(
            md,
            "\n## Controller API requests\n\nFrom the API server's audit log; requests whose User-Agent matches `{}`, \
             by the phase window they were received in (a window runs until the next phase starts, so it includes \
             the settle time).\n",
            self.controller.user_agent_regex
        );
        let _ = write!(
            md,
            "| window | total | writes | writes/Rollout | writes/Rollout w/o Events |"
        );
        for v in VERBS {
            let _ = write!(md, " {v} |");
        }
        let _ = writeln!(md, " Events created | Events patched | non-2xx |");
        let _ = writeln!(md, "|---{}", "|---:".repeat(VERBS.len() + 7) + "|");
        for r in &self.requests {
            let c = &r.controller;
            let _ = write!(
                md,
                "| {} | {} | {} | {:.2} | {:.2} |",
                r.window, c.total, r.writes, r.writes_per_rollout, r.writes_per_rollout_without_events
            );
            for v in VERBS {
                let _ = write!(md, " {} |", c.verb(v));
            }
            let _ = writeln!(
                md,
                " {} | {} | {} |",
                r.events_created,
                r.events_patched,
                codes(Some(&c.failed_by_code))
            );
        }
        for r in &self.requests {
            let c = &r.controller;
            if c.total == 0 {
                continue;
            }
            let _ = writeln!(md, "\n### `{}`: controller requests by resource\n", r.window);
            let _ = write!(md, "| resource |");
            for v in VERBS {
                let _ = write!(md, " {v} |");
            }
            let _ = writeln!(md, " total | non-2xx |");
            let _ = writeln!(md, "|---{}", "|---:".repeat(VERBS.len() + 2) + "|");
            for (resource, verbs) in &c.by_resource {
                let _ = write!(md, "| {resource} |");
                for v in VERBS {
                    let _ = write!(md, " {} |", verbs.get(v).copied().unwrap_or(0));
                }
                let _ = writeln!(
                    md,
                    " {} | {} |",
                    verbs.values().sum::<u64>(),
                    codes(c.failed_by_resource.get(resource))
                );
            }
        }

        // Every client, to check the attribution.
        let mut totals: BTreeMap<&str, u64> = BTreeMap::new();
        for r in &self.requests {
            for (ua, n) in &r.by_user_agent {
                *totals.entry(ua).or_default() += n;
            }
        }
        let mut agents: Vec<(&str, u64)> = totals.into_iter().collect();
        agents.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        let _ = writeln!(md, "\n## All clients by User-Agent (top 15)\n");
        let _ = write!(md, "| User-Agent |");
        for r in &self.requests {
            let _ = write!(md, " {} |", r.window);
        }
        let _ = writeln!(md);
        let _ = writeln!(md, "|---{}", "|---:".repeat(self.requests.len()) + "|");
        for (ua, _) in agents.iter().take(15) {
            let _ = write!(md, "| `{ua}` |");
            for r in &self.requests {
                let _ = write!(md, " {} |", r.by_user_agent.get(*ua).copied().unwrap_or(0));
            }
            let _ = writeln!(md);
        }
        if let Some(a) = &self.audit {
            let _ = writeln!(
                md,
                "\nAudit log: {} lines, {} requests ({} outside the windows, {} unparsable lines).",
                a.lines, a.requests, a.outside_windows, a.unparsable
            );
        }
    }
}

fn not_measured(name: &str, limit: String) -> Target {
    Target {
        name: name.into(),
        limit,
        measured: "-".into(),
        met: None,
        note: "not measured in this run".into(),
    }
}

/// `409: 3, 500: 1`, or `-`.
pub fn codes(by_code: Option<&BTreeMap<u16, u64>>) -> String {
    let parts: Vec<String> = by_code
        .into_iter()
        .flatten()
        .map(|(code, n)| format!("{code}: {n}"))
        .collect();
    if parts.is_empty() {
        "-".into()
    } else {
        parts.join(", ")
    }
}

fn f3(v: f64) -> String {
    format!("{v:.3}")
}

fn secs(v: Option<f64>) -> String {
    v.map_or_else(|| "-".into(), |v| format!("{v:.1}"))
}

/// Quotes a word for display in a shell command line when needed.
pub fn shell_quote(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=,@%+".contains(c));
    if plain {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_quoting() {
        assert_eq!(shell_quote("--kubeconfig=/a/b"), "--kubeconfig=/a/b");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote(""), "''");
    }

    #[test]
    fn markdown_renders_an_empty_report() {
        let md = Report::default().markdown();
        assert!(md.contains("## Latency"));
        assert!(md.contains("## Phases"));
    }
}

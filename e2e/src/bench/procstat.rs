//! CPU time and memory of a process, and the busy time of the whole machine, read from `/proc`;
//! a sampler that records them every second; window statistics over the samples.

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, anyhow};
use serde::Serialize;

use super::stats::{Summary, summarize};

/// Bytes in a MiB.
const MIB: f64 = 1024.0 * 1024.0;

/// What `/proc/<pid>/stat` and `/proc/<pid>/status` say about a process at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct ProcStat {
    /// User plus system CPU time, seconds.
    pub cpu_seconds: f64,
    /// Resident set size (`VmRSS`), bytes.
    pub rss_bytes: u64,
    /// Highest resident set size so far (`VmHWM`), bytes.
    pub rss_peak_bytes: u64,
    /// Threads.
    pub threads: u64,
}

/// Clock ticks per second of `/proc/<pid>/stat` (`getconf CLK_TCK`; 100 on Linux everywhere
/// in practice).
pub fn clock_ticks() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse::<f64>().ok())
        .filter(|t| *t > 0.0)
        .unwrap_or(100.0)
}

/// Parses `/proc/<pid>/stat` and `/proc/<pid>/status`.
pub fn parse(stat: &str, status: &str, ticks: f64) -> Result<ProcStat> {
    // The command name (field 2) is in parentheses and may hold anything: split after the last ')'.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .ok_or_else(|| anyhow!("no ')' in /proc/<pid>/stat"))?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state): utime is field 14, stime 15, num_threads 20.
    let field = |n: usize| -> Result<u64> {
        fields
            .get(n - 3)
            .ok_or_else(|| anyhow!("/proc/<pid>/stat has no field {n}"))?
            .parse::<u64>()
            .with_context(|| format!("field {n} of /proc/<pid>/stat"))
    };
    let kib = |key: &str| -> u64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
            .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
            .unwrap_or(0)
            * 1024
    };
    Ok(ProcStat {
        cpu_seconds: (field(14)? + field(15)?) as f64 / ticks,
        rss_bytes: kib("VmRSS"),
        rss_peak_bytes: kib("VmHWM"),
        threads: field(20)?,
    })
}

/// Reads process `pid` (`None`: this process).
pub fn read(pid: Option<u32>, ticks: f64) -> Result<ProcStat> {
    let dir = pid.map_or_else(|| "/proc/self".to_string(), |p| format!("/proc/{p}"));
    let stat =
        std::fs::read_to_string(format!("{dir}/stat")).with_context(|| format!("reading {dir}/stat"))?;
    let status =
        std::fs::read_to_string(format!("{dir}/status")).with_context(|| format!("reading {dir}/status"))?;
    parse(&stat, &status, ticks)
}

/// Busy and total CPU time of the whole machine (all CPUs), from the first line of `/proc/stat`,
/// in ticks. Busy is everything but `idle` and `iowait`.
pub fn parse_machine(proc_stat: &str) -> Option<(u64, u64)> {
    let line = proc_stat.lines().find(|l| l.starts_with("cpu "))?;
    let values: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal (guest time is already in user and nice).
    let total: u64 = values.iter().take(8).sum();
    let idle = values.get(3).copied().unwrap_or(0) + values.get(4).copied().unwrap_or(0);
    Some((total.saturating_sub(idle), total))
}

/// Busy and total CPU ticks of the whole machine now (see [`parse_machine`]).
pub fn read_machine() -> Option<(u64, u64)> {
    parse_machine(&std::fs::read_to_string("/proc/stat").ok()?)
}

/// One sample.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Sample {
    /// Seconds since the sampler started.
    pub t: f64,
    /// The process measured (the controller).
    pub target: ProcStat,
    /// The benchmark process itself (web endpoint, watch, sampler).
    pub bench: ProcStat,
    /// Whole machine: busy and total CPU ticks since boot.
    #[serde(skip)]
    pub machine: Option<(u64, u64)>,
    /// When it was taken.
    #[serde(skip)]
    pub at: Instant,
}

/// Samples a process (and the benchmark itself) every `period` until dropped.
pub struct Sampler {
    samples: Arc<Mutex<Vec<Sample>>>,
    task: tokio::task::JoinHandle<()>,
    /// When sampling started.
    pub start: Instant,
    /// Why sampling stopped early (the process went away), if it did.
    pub error: Arc<Mutex<Option<String>>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Sampler {
    /// Starts sampling `pid` now and then every `period`.
    pub fn start(pid: u32, period: Duration) -> Self {
        let samples: Arc<Mutex<Vec<Sample>>> = Arc::default();
        let error: Arc<Mutex<Option<String>>> = Arc::default();
        let start = Instant::now();
        let ticks = clock_ticks();
        let (s, e) = (samples.clone(), error.clone());
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                let at = tick.tick().await.into_std();
                let target = match read(Some(pid), ticks) {
                    Ok(t) => t,
                    Err(err) => {
                        *lock(&e) = Some(format!("{err:#}"));
                        return;
                    }
                };
                let sample = Sample {
                    t: at.saturating_duration_since(start).as_secs_f64(),
                    target,
                    bench: read(None, ticks).unwrap_or_default(),
                    machine: read_machine(),
                    at,
                };
                lock(&s).push(sample);
            }
        });
        Self {
            samples,
            task,
            start,
            error,
        }
    }

    /// The latest sample.
    pub fn last(&self) -> Option<Sample> {
        lock(&self.samples).last().copied()
    }

    /// Takes a sample right now (so a window starts or ends on an exact instant).
    pub fn sample_now(&self, pid: u32) -> Result<Sample> {
        let ticks = clock_ticks();
        let at = Instant::now();
        let sample = Sample {
            t: at.saturating_duration_since(self.start).as_secs_f64(),
            target: read(Some(pid), ticks)?,
            bench: read(None, ticks).unwrap_or_default(),
            machine: read_machine(),
            at,
        };
        let mut samples = lock(&self.samples);
        samples.push(sample);
        samples.sort_by_key(|s| s.at);
        Ok(sample)
    }

    /// Samples taken from `from` to `to` (inclusive).
    pub fn between(&self, from: Instant, to: Instant) -> Vec<Sample> {
        lock(&self.samples)
            .iter()
            .filter(|s| s.at >= from && s.at <= to)
            .copied()
            .collect()
    }

    /// Every sample so far.
    pub fn all(&self) -> Vec<Sample> {
        lock(&self.samples).clone()
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// CPU and memory over a window of samples.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Usage {
    /// Seconds from the first to the last sample.
    pub seconds: f64,
    /// Samples in the window.
    pub samples: usize,
    /// The process's CPU time over the window divided by its length, in percent of one core.
    pub cpu_percent: f64,
    /// CPU seconds the process used in the window.
    pub cpu_seconds: f64,
    /// Percent of one core between consecutive samples (p50, p90, max of the intervals).
    pub cpu_percent_intervals: Option<Summary>,
    /// Resident set size over the samples, MiB (p50 is the steady value).
    pub rss_mib: Option<Summary>,
    /// `VmHWM` at the end of the window: the highest RSS since the process started, MiB.
    pub rss_high_water_mib: f64,
    /// Threads at the end.
    pub threads: u64,
    /// The benchmark process's own CPU in the window, percent of one core.
    pub bench_cpu_percent: f64,
    /// The whole machine's busy time in the window, percent of one core (200 = both cores of
    /// a 2-CPU machine busy).
    pub machine_busy_percent: Option<f64>,
}

impl Usage {
    /// Statistics over `samples` (in time order); `None` with fewer than two.
    pub fn of(samples: &[Sample]) -> Option<Self> {
        let (first, last) = (samples.first()?, samples.last()?);
        let seconds = last.t - first.t;
        if samples.len() < 2 || seconds <= 0.0 {
            return None;
        }
        let percent = |cpu: f64, secs: f64| round2(cpu / secs * 100.0);
        let intervals: Vec<f64> = samples
            .windows(2)
            .filter(|w| w[1].t > w[0].t)
            .map(|w| percent(w[1].target.cpu_seconds - w[0].target.cpu_seconds, w[1].t - w[0].t))
            .collect();
        let rss: Vec<f64> = samples
            .iter()
            .map(|s| round2(s.target.rss_bytes as f64 / MIB))
            .collect();
        let cpu_seconds = last.target.cpu_seconds - first.target.cpu_seconds;
        let machine_busy_percent = match (first.machine, last.machine) {
            (Some((b0, t0)), Some((b1, t1))) if t1 > t0 => {
                // Ticks of all CPUs: busy share times the CPU count is percent of one core.
                let cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
                Some(round2((b1 - b0) as f64 / (t1 - t0) as f64 * cpus * 100.0))
            }
            _ => None,
        };
        Some(Self {
            seconds: round2(seconds),
            samples: samples.len(),
            cpu_percent: percent(cpu_seconds, seconds),
            cpu_seconds: round2(cpu_seconds),
            cpu_percent_intervals: summarize(&intervals),
            rss_mib: summarize(&rss),
            rss_high_water_mib: round2(last.target.rss_peak_bytes as f64 / MIB),
            threads: last.target.threads,
            bench_cpu_percent: percent(last.bench.cpu_seconds - first.bench.cpu_seconds, seconds),
            machine_busy_percent,
        })
    }
}

fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

#[cfg(test)]
mod tests {
    use super::*;

    const STAT: &str = "1234 (tokio (rt) x) S 1 1234 1234 0 -1 4194560 2915 0 0 0 \
        250 50 0 0 20 0 7 0 1000 123456789 5000 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0";
    const STATUS: &str =
        "Name:\tanalysis-contro\nVmPeak:\t  999 kB\nVmHWM:\t   40960 kB\nVmRSS:\t   20480 kB\nThreads:\t7\n";

    #[test]
    fn reads_cpu_memory_and_threads() {
        let s = parse(STAT, STATUS, 100.0).unwrap();
        assert_eq!(
            s,
            ProcStat {
                cpu_seconds: 3.0,
                rss_bytes: 20 * 1024 * 1024,
                rss_peak_bytes: 40 * 1024 * 1024,
                threads: 7
            }
        );
        assert!(parse("garbage", STATUS, 100.0).is_err());
        // This process can be read.
        let me = read(None, clock_ticks()).unwrap();
        assert!(me.rss_bytes > 0 && me.threads >= 1);
    }

    #[test]
    fn machine_busy_leaves_out_idle_and_iowait() {
        let stat = "cpu  100 10 50 800 40 0 0 0 0 0\ncpu0 1 2 3 4 5 6 7 8\n";
        assert_eq!(parse_machine(stat), Some((160, 1000)));
        assert_eq!(parse_machine("intr 1 2"), None);
    }

    fn sample(t: f64, cpu: f64, rss_mib: u64) -> Sample {
        let at = Instant::now();
        Sample {
            t,
            target: ProcStat {
                cpu_seconds: cpu,
                rss_bytes: rss_mib * 1024 * 1024,
                rss_peak_bytes: 64 * 1024 * 1024,
                threads: 5,
            },
            bench: ProcStat::default(),
            machine: None,
            at,
        }
    }

    #[test]
    fn usage_over_a_window() {
        let samples = vec![
            sample(10.0, 1.0, 30),
            sample(11.0, 1.1, 32),
            sample(12.0, 1.1, 31),
            sample(14.0, 1.3, 33),
        ];
        let u = Usage::of(&samples).unwrap();
        assert_eq!(
            (u.seconds, u.samples, u.cpu_percent, u.cpu_seconds),
            (4.0, 4, 7.5, 0.3)
        );
        let intervals = u.cpu_percent_intervals.unwrap();
        assert_eq!((intervals.p50, intervals.max), (10.0, 10.0));
        assert_eq!(intervals.min, 0.0);
        let rss = u.rss_mib.unwrap();
        assert_eq!((rss.p50, rss.max), (31.0, 33.0));
        assert_eq!((u.rss_high_water_mib, u.threads), (64.0, 5));
        assert!(Usage::of(&samples[..1]).is_none());
    }
}

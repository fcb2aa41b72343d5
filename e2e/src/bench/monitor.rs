//! scale-bench's sampler: every second the controller's CPU time and RSS (from `/proc`) and how
//! many Rollouts have reached the current phase's goal, split into the phases' windows.

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use anyhow::Result;
use serde::Serialize;

use super::{
    procstat::{self, Sample, Usage},
    workload::{Marks, SharedTracker, lock},
};

/// Bytes in a MiB.
const MIB: f64 = 1024.0 * 1024.0;

/// Whether a Rollout has reached a phase's goal.
pub type Done = fn(&Marks) -> bool;

/// One sample.
#[derive(Clone, Copy, Debug)]
pub struct Point {
    /// The controller (and the benchmark and the machine) at that moment.
    pub sample: Sample,
    /// Index of the window it was taken in.
    pub window: usize,
    /// Rollouts that had reached the window's goal (0 for a window without one).
    pub converged: usize,
}

/// One sample as written to `results.json`.
#[derive(Clone, Debug, Default, Serialize)]
pub struct TimelinePoint {
    /// Seconds since the controller started.
    pub t: f64,
    /// The window (phase) it was taken in.
    pub window: String,
    /// Rollouts that had reached the window's goal.
    pub converged: usize,
    /// The controller's RSS, MiB.
    pub rss_mib: f64,
    /// The controller's CPU time so far (user + system), seconds.
    pub cpu_seconds: f64,
    /// The controller's threads.
    pub threads: u64,
}

#[derive(Default)]
struct State {
    points: Vec<Point>,
    windows: Vec<(String, Instant, Option<Done>)>,
    error: Option<String>,
    finished: bool,
}

/// Samples the controller `pid` every `period` from its start until [`Monitor::finish`].
pub struct Monitor {
    pid: u32,
    ticks: f64,
    /// When the controller started (t = 0).
    pub start: Instant,
    tracker: SharedTracker,
    state: Arc<Mutex<State>>,
    task: tokio::task::JoinHandle<()>,
}

fn guard<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn take(pid: u32, ticks: f64, start: Instant, tracker: &SharedTracker, state: &mut State) -> Result<Point> {
    let at = Instant::now();
    let target = procstat::read(Some(pid), ticks)?;
    let window = state.windows.len().saturating_sub(1);
    let converged = state
        .windows
        .last()
        .and_then(|w| w.2)
        .map_or(0, |done| lock(tracker).count(|e| done(&e.marks)));
    let point = Point {
        sample: Sample {
            t: at.saturating_duration_since(start).as_secs_f64(),
            target,
            bench: procstat::read(None, ticks).unwrap_or_default(),
            machine: procstat::read_machine(),
            at,
        },
        window,
        converged,
    };
    state.points.push(point);
    Ok(point)
}

impl Monitor {
    /// Starts sampling `pid` (started at `start`) with a first window `name`.
    pub fn start(pid: u32, start: Instant, name: &str, tracker: SharedTracker, period: Duration) -> Self {
        let ticks = procstat::clock_ticks();
        let state = Arc::new(Mutex::new(State {
            windows: vec![(name.to_string(), Instant::now(), None)],
            ..Default::default()
        }));
        let (s, t) = (state.clone(), tracker.clone());
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let mut st = guard(&s);
                if st.finished {
                    return;
                }
                if let Err(e) = take(pid, ticks, start, &t, &mut st) {
                    st.error = Some(format!("{e:#}"));
                    return;
                }
            }
        });
        Self {
            pid,
            ticks,
            start,
            tracker,
            state,
            task,
        }
    }

    /// Ends the current window and starts `name`, whose converged count is the Rollouts for
    /// which `done` holds, with a sample now (in both).
    pub fn begin(&self, name: &str, done: Option<Done>) {
        let mut st = guard(&self.state);
        if st.finished {
            return;
        }
        let _ = take(self.pid, self.ticks, self.start, &self.tracker, &mut st);
        st.windows.push((name.to_string(), Instant::now(), done));
        // The same sample, counted in the new window.
        if let Some(mut p) = st.points.last().copied() {
            p.window = st.windows.len() - 1;
            p.converged = done.map_or(0, |d| lock(&self.tracker).count(|e| d(&e.marks)));
            st.points.push(p);
        }
    }

    /// Takes a last sample (while the controller still runs) and stops sampling.
    pub fn finish(&self) {
        let mut st = guard(&self.state);
        if !st.finished {
            let _ = take(self.pid, self.ticks, self.start, &self.tracker, &mut st);
            st.finished = true;
        }
        self.task.abort();
    }

    /// Why sampling stopped early, if it did (the process went away).
    pub fn error(&self) -> Option<String> {
        guard(&self.state).error.clone()
    }

    /// CPU and memory per window, in order.
    pub fn windows(&self) -> Vec<(String, Option<Usage>)> {
        let st = guard(&self.state);
        st.windows
            .iter()
            .enumerate()
            .map(|(i, (name, _, _))| {
                let samples: Vec<Sample> = st
                    .points
                    .iter()
                    .filter(|p| p.window == i)
                    .map(|p| p.sample)
                    .collect();
                (name.clone(), Usage::of(&samples))
            })
            .collect()
    }

    /// Window names and their start, seconds since the controller started.
    pub fn window_starts(&self) -> Vec<(String, f64)> {
        guard(&self.state)
            .windows
            .iter()
            .map(|(name, at, _)| {
                (
                    name.clone(),
                    at.saturating_duration_since(self.start).as_secs_f64(),
                )
            })
            .collect()
    }

    /// Every sample, for `results.json` and the plot.
    pub fn timeline(&self) -> Vec<TimelinePoint> {
        let st = guard(&self.state);
        st.points
            .iter()
            .map(|p| TimelinePoint {
                t: round3(p.sample.t),
                window: st.windows.get(p.window).map(|w| w.0.clone()).unwrap_or_default(),
                converged: p.converged,
                rss_mib: round3(p.sample.target.rss_bytes as f64 / MIB),
                cpu_seconds: round3(p.sample.target.cpu_seconds),
                threads: p.sample.target.threads,
            })
            .collect()
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

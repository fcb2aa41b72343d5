//! The benchmarks (not tests; each is its own command, see `e2e/bench/README.md`):
//!
//! - `scale-bench` (`src/bin/scale-bench.rs`, [`run`]): how fast a Rollout controller carries N
//!   canary Rollouts through an image change and a promotion, and how many API requests it sends
//!   doing so.
//! - `analysis-bench` (`src/bin/analysis-bench.rs`, [`analysis`]): CPU and memory of one
//!   analysis controller with M AnalysisRuns measuring a local web endpoint, then with K
//!   finished runs left in the cluster.
//!
//! Shared parts:
//!
//! - [`cluster`]: the local control plane (with the API server's audit log) and the controller
//!   under test, started from a command-line template.
//! - [`common`]: paths, the benchmark's client and namespace, Ctrl-C, starting the controller,
//!   the progress line.
//! - [`procstat`]: CPU time and memory of a process, sampled from `/proc`.
//! - [`audit`]: requests counted from the audit log, by window, verb, resource and User-Agent.
//! - [`stats`], [`report`]: percentiles and the results (`results.json`, `results.md`).
//!
//! scale-bench only: [`workload`] (the Rollouts, the requests that change them and the watches
//! that time them), [`monitor`] (the controller's CPU and RSS and the converged Rollouts, every
//! second, per phase), [`plot`] (the PNG plot) and [`run`] (its flags and the run itself).

pub mod analysis;
pub mod audit;
pub mod cluster;
pub mod common;
pub mod monitor;
pub mod plot;
pub mod procstat;
pub mod report;
pub mod run;
pub mod stats;
pub mod workload;

pub use run::{Args, run};

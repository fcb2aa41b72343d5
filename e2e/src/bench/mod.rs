//! `scale-bench`: how fast a Rollout controller carries N canary Rollouts through an image
//! change and a promotion, and how many API requests it sends doing so. See
//! `e2e/bench/README.md`; the binary is `src/bin/scale-bench.rs`.
//!
//! - [`cluster`]: the local control plane (with the API server's audit log) and the controller
//!   under test, started from a command-line template.
//! - [`workload`]: the Rollouts, the requests that change them and the watches that time them.
//! - [`audit`]: requests counted from the audit log, by window, verb, resource and User-Agent.
//! - [`stats`], [`report`]: percentiles and the results (`results.json`, `results.md`).
//! - [`run`]: the flags and the run itself.

pub mod audit;
pub mod cluster;
pub mod report;
pub mod run;
pub mod stats;
pub mod workload;

pub use run::{Args, run};

//! The analysis controller: owns AnalysisRuns. It takes measurements from metric providers
//! (Prometheus, web, Job), judges them with the metric's conditions, and writes the run's status,
//! which the rollout and experiment controllers read. It never writes Rollouts.
//!
//! The logic is pure and unit-tested ([`evaluate`], [`assess`], [`schedule`], [`args`],
//! [`decide`]); [`controller`] is the I/O around it and [`provider`] the metric sources.

pub mod args;
pub mod assess;
pub mod controller;
pub mod decide;
pub mod evaluate;
pub mod metrics;
pub mod provider;
pub mod schedule;

pub use controller::{Args, run};

/// Errors of the analysis controller.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A call to the API server failed.
    #[error("kubernetes API: {0}")]
    Api(#[source] kube::Error),
    /// An object could not be converted.
    #[error("cannot convert object: {0}")]
    Serialize(#[source] serde_json::Error),
    /// Start-up or the runtime failed.
    #[error(transparent)]
    Runtime(#[from] shared_runtime::Error),
}

impl Error {
    /// A short category for metrics and Event deduplication.
    pub fn category(&self) -> &'static str {
        match self {
            Error::Api(_) => "api",
            Error::Serialize(_) => "serialize",
            Error::Runtime(_) => "runtime",
        }
    }
}

//! The experiment controller: owns Experiments. It runs one ReplicaSet (and optionally a
//! Service) per template, starts the experiment's analyses as AnalysisRuns once every template
//! is available, reads them back through their status, and writes the Experiment's status,
//! which the rollout controller reads for `experiment` canary steps.
//!
//! The logic is pure and unit-tested ([`decide`], [`args`]); [`controller`] is the I/O around it.
//!
//! Differences from Argo: an invalid spec (e.g. repeated template names) also sets the phase to
//! `Error` with the validation message (Argo only adds the `InvalidSpec` condition and leaves the
//! phase empty); a ReplicaSet or Service name taken by another owner is a template `Error`
//! (Argo bumps `collisionCount`, which cannot help since the names carry no hash); an
//! AnalysisRun missing from the cache is created again (adopted when it exists) rather than
//! turned into an analysis `Error`. Leader election uses its own Lease,
//! `argo-rollouts-experiment-controller-lock[-<instance-id>]`.

pub mod args;
pub mod controller;
pub mod decide;
pub mod metrics;

pub use controller::{Args, run};

/// Errors of the experiment controller.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A call to the API server failed.
    #[error("kubernetes API: {0}")]
    Api(#[source] kube::Error),
    /// An object could not be converted.
    #[error("cannot convert object: {0}")]
    Serialize(#[source] serde_json::Error),
    /// An object the experiment needs is taken by someone else.
    #[error("{0}")]
    Conflict(String),
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
            Error::Conflict(_) => "conflict",
            Error::Runtime(_) => "runtime",
        }
    }
}

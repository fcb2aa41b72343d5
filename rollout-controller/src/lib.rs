//! The rollout controller: owns Rollouts and their ReplicaSets, switches Service selectors and
//! writes `Rollout.status`. Reconcile logic is split into pure planning ([`plan`], [`canary`],
//! [`bluegreen`], [`replicas`], [`conditions`]) and a thin apply step ([`reconcile`]).

pub mod analysis;
pub mod bluegreen;
pub mod canary;
pub mod conditions;
pub mod controller;
pub mod deletion;
pub mod destination_rules;
pub mod duration;
pub mod ephemeral;
pub mod expectations;
pub mod experiment;
pub mod metrics;
pub mod plan;
pub mod reconcile;
pub mod replicas;
pub mod replicaset;
pub mod services;
pub mod traffic;
pub mod watches;
pub mod workload;

pub use controller::{Args, Config, Context, run};

/// Errors of the rollout controller.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A call to the API server failed.
    #[error("kubernetes API: {}", api_message(.0))]
    Api(#[source] kube::Error),
    /// The Rollout spec is invalid (reported in its status; retried with back-off).
    #[error("invalid spec")]
    InvalidSpec,
    /// The new ReplicaSet's name is taken by a different ReplicaSet.
    #[error("hash collision on ReplicaSet {0}")]
    HashCollision(String),
    /// Start-up failed.
    #[error(transparent)]
    Runtime(#[from] shared_runtime::Error),
    /// An object could not be converted (a bug or a malformed routing object).
    #[error("cannot convert object: {0}")]
    Serialize(#[source] serde_json::Error),
    /// A traffic-routing object could not be rewritten.
    #[error("traffic routing: {0}")]
    Traffic(String),
    /// A start-up step failed.
    #[error("start-up failed: {0}")]
    Startup(&'static str),
    /// The Rollout CRD is not installed.
    #[error("the Rollout CRD (rollouts.argoproj.io) is not installed or not served: {0}")]
    CrdMissing(#[source] kube::Error),
}

/// The API server's own message rather than the whole debug structure.
fn api_message(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(status) => format!("{} ({})", status.message, status.code),
        other => other.to_string(),
    }
}

impl Error {
    /// Low-cardinality category for metrics.
    pub fn category(&self) -> &'static str {
        match self {
            Error::Api(kube::Error::Api(e)) if e.code == 409 => "conflict",
            Error::Api(_) => "api",
            Error::InvalidSpec => "invalid_spec",
            Error::HashCollision(_) => "hash_collision",
            Error::Runtime(_) => "runtime",
            Error::CrdMissing(_) => "crd_missing",
            Error::Startup(_) => "startup",
            Error::Serialize(_) => "serialize",
            Error::Traffic(_) => "traffic",
        }
    }
}

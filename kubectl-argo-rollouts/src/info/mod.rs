//! Summaries of a Rollout and the objects around it, as the Go plugin's `info` package computes
//! them: the rollout's phase and weights, and for each ReplicaSet, Pod, AnalysisRun and Experiment
//! its status, icon, revision and role. All pure: the caller supplies the objects; ages are
//! computed later by the renderer against a clock.

pub mod age;
pub mod analysis;
pub mod experiment;
pub mod phase;
pub mod pod;
pub mod replicaset;
pub mod rollout;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

pub use analysis::{AnalysisRunInfo, JobInfo};
pub use experiment::ExperimentInfo;
pub use pod::PodInfo;
pub use replicaset::ReplicaSetInfo;
pub use rollout::{ImageInfo, RolloutInfo};

/// Status icons (Argo's `info.Icon*`).
pub mod icon {
    /// Pending.
    pub const WAITING: &str = "◷";
    /// Progressing, Running, Init:..., Terminating.
    pub const PROGRESSING: &str = "◌";
    /// Error, InvalidSpec, ImagePullBackOff, ...Error.
    pub const WARNING: &str = "⚠";
    /// Unknown, Inconclusive.
    pub const UNKNOWN: &str = "?";
    /// Healthy, Running pod, Successful.
    pub const OK: &str = "✔";
    /// Degraded, Failed, CrashLoopBackOff.
    pub const BAD: &str = "✖";
    /// Paused.
    pub const PAUSED: &str = "॥";
    /// ScaledDown.
    pub const NEUTRAL: &str = "•";
}

/// Kind icons of the tree.
pub mod kind_icon {
    /// Rollout.
    pub const ROLLOUT: &str = "⟳";
    /// Revision.
    pub const REVISION: &str = "#";
    /// ReplicaSet.
    pub const REPLICA_SET: &str = "⧉";
    /// Pod.
    pub const POD: &str = "□";
    /// Job (analysis job).
    pub const JOB: &str = "⊞";
    /// Experiment.
    pub const EXPERIMENT: &str = "Σ";
    /// AnalysisRun.
    pub const ANALYSIS_RUN: &str = "α";
}

/// Role tags shown in the INFO column and after images.
pub mod tag {
    /// The canary ReplicaSet.
    pub const CANARY: &str = "canary";
    /// The stable ReplicaSet.
    pub const STABLE: &str = "stable";
    /// Blue-green: selected by the active Service.
    pub const ACTIVE: &str = "active";
    /// Blue-green: selected by the preview Service.
    pub const PREVIEW: &str = "preview";
    /// Ping-pong: the ping service's ReplicaSet.
    pub const PING: &str = "ping";
    /// Ping-pong: the pong service's ReplicaSet.
    pub const PONG: &str = "pong";
}

/// Name, namespace and creation time of a summarised object.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Metadata {
    /// Object name.
    pub name: String,
    /// Object namespace.
    pub namespace: String,
    /// Object UID.
    pub uid: String,
    /// `metadata.creationTimestamp`.
    pub created: Option<Timestamp>,
}

impl Metadata {
    /// Copies the identifying fields of `meta`.
    pub fn from_meta(meta: &ObjectMeta) -> Self {
        Metadata {
            name: meta.name.clone().unwrap_or_default(),
            namespace: meta.namespace.clone().unwrap_or_default(),
            uid: meta.uid.clone().unwrap_or_default(),
            created: meta.creation_timestamp.as_ref().map(|t| t.0),
        }
    }
}

/// Whether one of `refs` points at the object with `uid` (Argo matches owners by UID only).
pub(crate) fn owned_by(refs: Option<&Vec<OwnerReference>>, uid: &str) -> bool {
    !uid.is_empty() && refs.is_some_and(|refs| refs.iter().any(|r| r.uid == uid))
}

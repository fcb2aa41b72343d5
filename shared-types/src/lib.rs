//! Types shared by the Argo Rollouts compatible controllers: the `argoproj.io/v1alpha1` CRDs,
//! the label/annotation/condition constants, spec validation and the pod-template hash, plus
//! the pure Kubernetes helpers more than one controller needs (object metadata and owner
//! references, ReplicaSet facts and construction, pod-template normalisation, merge-patch diffs).
//! Nothing in this crate talks to a cluster.

pub mod analysis;
pub mod analysis_run;
pub mod common;
pub mod constants;
pub mod crds;
pub mod duration;
pub mod experiment;
pub mod field_error;
pub mod hash;
pub mod merge_patch;
pub mod object_meta;
pub mod pod_template;
pub mod replicaset;
pub mod rollout;
pub mod rollout_phase;
pub mod validation;

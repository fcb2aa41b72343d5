//! Types shared by the Argo Rollouts compatible controllers: the `argoproj.io/v1alpha1` CRDs,
//! the label/annotation/condition constants, spec validation and the pod-template hash.
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
pub mod rollout;
pub mod rollout_phase;
pub mod validation;

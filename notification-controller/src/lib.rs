//! The notification controller: tells Slack channels, webhooks and mailboxes when Rollouts
//! complete, pause, abort or scale, and when AnalysisRuns run, fail or error, configured as
//! Argo Rollouts' notifications are (`argo-rollouts-notification-configmap`, subscription
//! annotations, the built-in trigger and template catalog).
//!
//! Unlike Argo, triggers fire from observed **status** rather than from Kubernetes Events, and
//! every send is recorded on the object (Argo's `notified.notifications.argoproj.io`
//! annotation), so a dropped Event, a restart or a second replica neither loses nor repeats a
//! notification, and a transition that happened while the controller was down is sent when it
//! starts. The logic is pure and unit-tested ([`config`], [`subscription`], [`trigger`],
//! [`record`], [`template`]); [`controller`] and [`service`] are the I/O around it.

pub mod catalog;
pub mod config;
pub mod controller;
pub mod metrics;
pub mod record;
pub mod retry;
pub mod service;
pub mod subscription;
pub mod template;
pub mod trigger;

pub use controller::{Args, run};

/// Errors of the notification controller.
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

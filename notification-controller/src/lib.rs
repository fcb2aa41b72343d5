//! The notification controller: not written yet. It will own notifications about Rollouts, AnalysisRuns and Experiments and meet the other controllers
//! only through the status subresources of the Kubernetes API. Until then it starts on the
//! shared runtime (flags, logging, client, the check that the kinds it needs are served) and
//! stops with a clear message, so no deployment mistakes it for a working controller.

use shared_runtime::{Error, flags::CommonArgs, runtime::Runtime};
use shared_types::rollout::Rollout;

/// Flags of the notification controller.
#[derive(clap::Parser, Clone, Debug)]
#[command(
    name = "notification-controller",
    version,
    about = "Argo Rollouts notification controller (not implemented yet)"
)]
pub struct Args {
    /// Flags shared by all controllers.
    #[command(flatten)]
    pub common: CommonArgs,
}

/// Starts on the runtime, checks that Rollouts are served, then reports that this build has
/// no notification controller.
pub async fn run(args: Args) -> Result<(), Error> {
    let runtime = Runtime::start(&args.common, "notification-controller", "notification-controller").await?;
    runtime.require_served::<Rollout>().await?;
    Err(Error::NotImplemented("notification-controller"))
}

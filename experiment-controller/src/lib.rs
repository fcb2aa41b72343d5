//! The experiment controller: not written yet. It will own Experiments and meet the other controllers
//! only through the status subresources of the Kubernetes API. Until then it starts on the
//! shared runtime (flags, logging, client, the check that the kinds it needs are served) and
//! stops with a clear message, so no deployment mistakes it for a working controller.

use shared_runtime::{Error, flags::CommonArgs, runtime::Runtime};
use shared_types::experiment::Experiment;

/// Flags of the experiment controller.
#[derive(clap::Parser, Clone, Debug)]
#[command(
    name = "experiment-controller",
    version,
    about = "Argo Rollouts experiment controller (not implemented yet)"
)]
pub struct Args {
    /// Flags shared by all controllers.
    #[command(flatten)]
    pub common: CommonArgs,
}

/// Starts on the runtime, checks that Experiments are served, then reports that this build has
/// no experiment controller.
pub async fn run(args: Args) -> Result<(), Error> {
    let runtime = Runtime::start(&args.common, "experiment-controller", "experiment-controller").await?;
    runtime.require_served::<Experiment>().await?;
    Err(Error::NotImplemented("experiment-controller"))
}

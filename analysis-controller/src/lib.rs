//! The analysis controller: not written yet. It will own AnalysisRuns and meet the other controllers
//! only through the status subresources of the Kubernetes API. Until then it starts on the
//! shared runtime (flags, logging, client, the check that the kinds it needs are served) and
//! stops with a clear message, so no deployment mistakes it for a working controller.

use shared_runtime::{Error, flags::CommonArgs, runtime::Runtime};
use shared_types::analysis::AnalysisRun;

/// Flags of the analysis controller.
#[derive(clap::Parser, Clone, Debug)]
#[command(
    name = "analysis-controller",
    version,
    about = "Argo Rollouts analysis controller (not implemented yet)"
)]
pub struct Args {
    /// Flags shared by all controllers.
    #[command(flatten)]
    pub common: CommonArgs,
}

/// Starts on the runtime, checks that AnalysisRuns are served, then reports that this build has
/// no analysis controller.
pub async fn run(args: Args) -> Result<(), Error> {
    let runtime = Runtime::start(&args.common, "analysis-controller", "analysis-controller").await?;
    runtime.require_served::<AnalysisRun>().await?;
    Err(Error::NotImplemented("analysis-controller"))
}

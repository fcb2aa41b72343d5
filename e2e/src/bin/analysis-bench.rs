//! `analysis-bench`: CPU and memory of one analysis controller with M running AnalysisRuns
//! measuring a local web endpoint, then with K finished runs. Usage and output:
//! `e2e/bench/README.md`.

use std::process::ExitCode;

use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    let args = e2e::bench::analysis::Args::parse();
    match e2e::bench::analysis::run(args).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("analysis-bench: not every phase converged");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("analysis-bench: {e:#}");
            ExitCode::from(2)
        }
    }
}

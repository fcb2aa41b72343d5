//! `scale-bench`: update latency and API writes of a Rollout controller at N Rollouts on a
//! local control plane. Usage and output: `e2e/bench/README.md`.

use std::process::ExitCode;

use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    let args = e2e::bench::Args::parse();
    match e2e::bench::run(args).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("scale-bench: not every phase converged");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("scale-bench: {e:#}");
            ExitCode::from(2)
        }
    }
}

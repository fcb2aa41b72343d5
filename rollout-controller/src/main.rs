//! `rollout-controller` binary: parse flags and run.

use std::process::ExitCode;

use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    let args = rollout_controller::Args::parse();
    match rollout_controller::run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rollout-controller: {e}");
            ExitCode::FAILURE
        }
    }
}

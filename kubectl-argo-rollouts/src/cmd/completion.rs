//! `completion bash|zsh|fish|powershell|elvish`: prints a shell completion script.

use std::io::Write;

use clap::CommandFactory;
use clap_complete::Shell;

use crate::{cli::Cli, error::Error};

/// Writes the completion script for `shell`.
pub fn run(shell: Shell, out: &mut dyn Write) -> Result<(), Error> {
    let mut command = Cli::command();
    clap_complete::generate(shell, &mut command, "kubectl-argo-rollouts", out);
    Ok(())
}

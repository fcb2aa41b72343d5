//! The `kubectl-argo-rollouts` plugin (`kubectl argo rollouts ...`) as a library.
//!
//! The binary in `main.rs` only hands its arguments and standard streams to [`run`]. Everything
//! else lives here so that it can be tested without a terminal or a cluster:
//!
//! * [`cli`] — the command line (clap), with Argo's command names, aliases and flags;
//! * [`info`] — pure summaries of a Rollout and its children (phase, weights, per-object status),
//!   following the Go plugin's `info` package;
//! * [`render`] — pure text renderers (`get rollout` tree, `get experiment`, `list rollouts`) and
//!   a Go-compatible tab writer;
//! * [`cmd`] — one module per command, each taking an injected [`kube::Client`];
//! * [`kube`](crate::kube) — client set-up from kubeconfig, context and namespace flags;
//! * [`manifest`] — reading and checking manifest files (`lint`, `create`);
//! * [`error`] — the error type and how errors are shown (`Error: ...`, exit codes).

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]
#![deny(missing_docs)]

pub mod cli;
pub mod cmd;
pub mod error;
pub mod info;
pub mod kube;
pub mod manifest;
pub mod render;

use std::{ffi::OsString, io::Write};

use clap::Parser;

pub use error::{Error, ExitStatus};

/// Where a command writes, and what it knows about the terminal.
pub struct Io<'a> {
    /// Standard output.
    pub out: &'a mut dyn Write,
    /// Standard error.
    pub err: &'a mut dyn Write,
    /// Whether standard output is a terminal (colours are only used on a terminal).
    pub stdout_is_terminal: bool,
}

/// Parses `args` (including the program name), runs the command and returns the process exit
/// status. Errors are printed to `io.err` as a single `Error: ...` line.
pub async fn run<I, T>(args: I, io: &mut Io<'_>) -> ExitStatus
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let cli = match cli::Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(err) => return error::report_clap_error(&err, io),
    };
    match cmd::dispatch(cli, io).await {
        Ok(()) => ExitStatus::Success,
        Err(err) => error::report(&err, io),
    }
}

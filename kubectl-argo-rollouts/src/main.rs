//! `kubectl-argo-rollouts`: the binary behind `kubectl argo rollouts ...` (kubectl runs it when
//! it is on the PATH). All the work is done by the library.

use std::io::IsTerminal;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let stdout = std::io::stdout();
    let stdout_is_terminal = stdout.is_terminal();
    let mut out = stdout.lock();
    let mut err = std::io::stderr().lock();
    let mut io = kubectl_argo_rollouts::Io {
        out: &mut out,
        err: &mut err,
        stdout_is_terminal,
    };
    kubectl_argo_rollouts::run(std::env::args_os(), &mut io)
        .await
        .into()
}

//! `version [--short]`.

use std::io::Write;

use crate::{cli::VersionArgs, error::Error};

/// The plugin version, `v<crate version>`.
pub fn version() -> String {
    format!("v{}", env!("CARGO_PKG_VERSION"))
}

/// Go-style platform name (`linux/amd64`), as Argo prints it.
fn platform() -> String {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        other => other,
    };
    format!("{}/{arch}", std::env::consts::OS)
}

/// Prints the version (and, unless `--short`, the build information).
pub fn run(args: &VersionArgs, out: &mut dyn Write) -> Result<(), Error> {
    writeln!(out, "kubectl-argo-rollouts: {}", version())?;
    if !args.short {
        // Build metadata can be injected at build time through these environment variables.
        let or_unknown = |v: Option<&'static str>| v.unwrap_or("unknown");
        writeln!(
            out,
            "  BuildDate: {}",
            or_unknown(option_env!("KUBECTL_ARGO_ROLLOUTS_BUILD_DATE"))
        )?;
        writeln!(
            out,
            "  GitCommit: {}",
            or_unknown(option_env!("KUBECTL_ARGO_ROLLOUTS_GIT_COMMIT"))
        )?;
        writeln!(
            out,
            "  GitTreeState: {}",
            or_unknown(option_env!("KUBECTL_ARGO_ROLLOUTS_GIT_TREE_STATE"))
        )?;
        writeln!(out, "  Compiler: rustc")?;
        writeln!(out, "  Platform: {}", platform())?;
    }
    Ok(())
}

//! Errors of the plugin and how they reach the user.
//!
//! Every failure is shown as one line on standard error, `Error: <message>`, the way Argo's
//! cobra-based plugin (and kubectl) print them, followed by a non-zero exit status. API errors
//! carry the API server's own message (`rollouts.argoproj.io "x" not found`, `... is forbidden:
//! ...`), so they read exactly like Argo's.

use std::process::ExitCode;

use crate::Io;

/// Process exit status of the plugin.
///
/// Argo's plugin exits 1 on every error. We keep 1 for ordinary failures and use distinct codes
/// where a script benefits from telling outcomes apart (`status` and `wait`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitStatus {
    /// The command succeeded (or the awaited condition was reached).
    Success,
    /// Any other failure: API error, unreachable cluster, invalid file, lint errors...
    Failure,
    /// The command line was invalid.
    Usage,
    /// `status`/`wait`: the rollout is Degraded.
    Degraded,
    /// `status`/`wait`: the timeout expired first.
    Timeout,
    /// Interrupted by Ctrl-C while waiting.
    Interrupted,
}

impl ExitStatus {
    /// The numeric exit code.
    pub fn code(self) -> u8 {
        match self {
            ExitStatus::Success => 0,
            ExitStatus::Failure => 1,
            ExitStatus::Usage => 2,
            ExitStatus::Degraded => 3,
            ExitStatus::Timeout => 4,
            ExitStatus::Interrupted => 130,
        }
    }
}

impl From<ExitStatus> for ExitCode {
    fn from(status: ExitStatus) -> Self {
        ExitCode::from(status.code())
    }
}

/// A failure of a plugin command. `Display` is the text shown after `Error: `.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The command line is invalid (beyond what clap checks).
    #[error("{0}")]
    Usage(String),
    /// A failure described by a message.
    #[error("{0}")]
    Message(String),
    /// The API server rejected the request; the message is the server's.
    #[error("{0}")]
    Api(String),
    /// The API server could not be reached.
    #[error("unable to connect to the server{}: {cause}", server.as_deref().map(|s| format!(" {s}")).unwrap_or_default())]
    Unreachable {
        /// URL of the server, when known.
        server: Option<String>,
        /// The underlying cause, e.g. `Connection refused (os error 111)`.
        cause: String,
    },
    /// The rollout is Degraded (`status`, `wait`).
    #[error("{0}")]
    Degraded(String),
    /// A timeout expired (`status`, `wait`).
    #[error("{0}")]
    Timeout(String),
    /// The user pressed Ctrl-C while the command was waiting; nothing more to say.
    #[error("interrupted")]
    Interrupted,
    /// Writing the output failed (e.g. a closed pipe).
    #[error("write error: {0}")]
    Io(#[from] std::io::Error),
}

impl Error {
    /// Builds a [`Error::Message`].
    pub fn msg(message: impl Into<String>) -> Self {
        Error::Message(message.into())
    }

    /// The exit status this error ends the process with.
    pub fn exit_status(&self) -> ExitStatus {
        match self {
            Error::Usage(_) => ExitStatus::Usage,
            Error::Degraded(_) => ExitStatus::Degraded,
            Error::Timeout(_) => ExitStatus::Timeout,
            Error::Interrupted => ExitStatus::Interrupted,
            _ => ExitStatus::Failure,
        }
    }

    /// Whether this is an API `404 Not Found` (used for the status-subresource fallback).
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::Api(m) if m.ends_with(" not found") || m.contains("could not find the requested resource"))
    }

    /// Fills in the server URL of an [`Error::Unreachable`] that does not have it yet.
    pub fn with_server(self, url: &str) -> Self {
        match self {
            Error::Unreachable { server: None, cause } => Error::Unreachable {
                server: Some(url.to_string()),
                cause,
            },
            other => other,
        }
    }
}

/// HTTP status of a kube API error, when the error is one.
pub fn api_code(err: &kube::Error) -> Option<u16> {
    match err {
        kube::Error::Api(status) => Some(status.code),
        _ => None,
    }
}

impl From<kube::Error> for Error {
    fn from(err: kube::Error) -> Self {
        match &err {
            kube::Error::Api(status) => {
                // A plain-text 404 (no `Status` body) means the resource type itself is unknown to
                // the server, typically because the CRDs are not installed.
                if status.code == 404 && !status.message.contains('"') {
                    return Error::Api(
                        "the server could not find the requested resource (are the argoproj.io CRDs installed?)".into(),
                    );
                }
                if status.code == 401 {
                    return Error::Api(format!(
                        "You must be logged in to the server ({})",
                        non_empty(&status.message, "Unauthorized")
                    ));
                }
                let fallback = format!("the server responded with status {}", status.code);
                Error::Api(non_empty(&status.message, &fallback).to_string())
            }
            kube::Error::HyperError(_) | kube::Error::Service(_) => Error::Unreachable {
                server: None,
                cause: root_cause(&err),
            },
            kube::Error::SerdeError(e) => Error::msg(format!("unable to decode the server's response: {e}")),
            _ => Error::msg(root_cause(&err)),
        }
    }
}

fn non_empty<'a>(s: &'a str, fallback: &'a str) -> &'a str {
    if s.trim().is_empty() { fallback } else { s }
}

/// The innermost message of an error chain: for connection failures it is the OS error
/// (`Connection refused (os error 111)`), which is what a user needs to see; the outer layers
/// only say "client error".
fn root_cause(err: &(dyn std::error::Error + 'static)) -> String {
    let mut current = err;
    while let Some(next) = current.source() {
        current = next;
    }
    current.to_string()
}

/// Prints `err` as `Error: <message>` and returns its exit status.
pub fn report(err: &Error, io: &mut Io<'_>) -> ExitStatus {
    if !matches!(err, Error::Interrupted) {
        // Nothing useful can be done if standard error itself is gone.
        let _ = writeln!(io.err, "Error: {err}");
    }
    err.exit_status()
}

/// Handles a clap parse failure: help goes to standard output with success, anything else is
/// condensed to a single `Error: ...` line (clap's own rendering spans several lines with usage
/// and tips).
pub fn report_clap_error(err: &clap::Error, io: &mut Io<'_>) -> ExitStatus {
    use clap::error::ErrorKind;
    let rendered = err.render().to_string();
    match err.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
            let _ = write!(io.out, "{rendered}");
            ExitStatus::Success
        }
        ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let usage = rendered
                .lines()
                .find_map(|l| l.trim().strip_prefix("Usage: "))
                .unwrap_or("kubectl-argo-rollouts --help");
            let _ = writeln!(io.err, "Error: a subcommand is required; usage: {usage}");
            ExitStatus::Usage
        }
        _ => {
            let _ = writeln!(io.err, "Error: {}", condense_clap_message(&rendered));
            ExitStatus::Usage
        }
    }
}

/// First paragraph of a clap error, on one line, without the `error: ` prefix.
fn condense_clap_message(rendered: &str) -> String {
    let first: Vec<&str> = rendered
        .lines()
        .take_while(|l| !l.trim().is_empty())
        .map(str::trim)
        .collect();
    let joined = first.join(" ");
    joined.strip_prefix("error: ").unwrap_or(&joined).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn condenses_multi_line_clap_errors() {
        let rendered =
            "error: the following required arguments were not provided:\n  <NAME>\n\nUsage: x <NAME>\n";
        assert_eq!(
            condense_clap_message(rendered),
            "the following required arguments were not provided: <NAME>"
        );
    }

    #[test]
    fn api_errors_keep_the_server_message() {
        let status =
            kube::core::Status::failure("rollouts.argoproj.io \"x\" not found", "NotFound").with_code(404);
        let err = Error::from(kube::Error::Api(status.boxed()));
        assert_eq!(err.to_string(), "rollouts.argoproj.io \"x\" not found");
        assert!(err.is_not_found());
    }

    #[test]
    fn plain_text_404_means_missing_crd() {
        let status =
            kube::core::Status::failure("404 page not found", "Failed to parse error data").with_code(404);
        let err = Error::from(kube::Error::Api(status.boxed()));
        assert!(
            err.to_string()
                .starts_with("the server could not find the requested resource")
        );
    }

    #[test]
    fn unreachable_names_the_server() {
        let err = Error::Unreachable {
            server: None,
            cause: "Connection refused (os error 111)".into(),
        }
        .with_server("https://127.0.0.1:6443/");
        assert_eq!(
            err.to_string(),
            "unable to connect to the server https://127.0.0.1:6443/: Connection refused (os error 111)"
        );
    }
}

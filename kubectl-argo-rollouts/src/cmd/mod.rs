//! The commands. Offline ones (`version`, `completion`, `lint`) run without a cluster; the others
//! get a [`Session`] (client + namespace) so that tests can inject a mocked client.

pub mod abort;
pub mod completion;
pub mod create;
pub mod create_analysis_run;
pub mod get;
pub mod lint;
pub mod list;
pub mod patch;
pub mod pause;
pub mod promote;
pub mod restart;
pub mod retry;
pub mod set_image;
pub mod status;
pub mod terminate;
pub mod undo;
pub mod version;
pub mod wait;
pub mod watch;

use std::io::Write;

use serde::Serialize;

use crate::{
    Io,
    cli::{
        Cli, Command, CreateArgs, CreateCommand, GetCommand, ListCommand, OutputFormat, RetryCommand,
        SetCommand, TerminateCommand,
    },
    error::Error,
    kube::{Session, connect},
};

/// Runs a parsed command line.
pub async fn dispatch(cli: Cli, io: &mut Io<'_>) -> Result<(), Error> {
    match cli.command {
        Command::Version(args) => version::run(&args, io.out),
        Command::Completion(args) => completion::run(args.shell, io.out),
        Command::Lint(args) => lint::run(&args.file, io.out),
        command => {
            let session = connect(&cli.global).await?;
            let server = session.server.clone();
            run_with_session(command, &session, io)
                .await
                .map_err(|e| e.with_server(&server))
        }
    }
}

/// Runs a command that needs the cluster, with the given session.
pub async fn run_with_session(command: Command, session: &Session, io: &mut Io<'_>) -> Result<(), Error> {
    match command {
        Command::Get(GetCommand::Rollout(args)) => get::rollout(session, &args, io).await,
        Command::Get(GetCommand::Experiment(args)) => get::experiment(session, &args, io).await,
        Command::List(ListCommand::Rollouts(args)) => list::rollouts(session, &args, io).await,
        Command::List(ListCommand::Experiments(args)) => list::experiments(session, &args, io).await,
        Command::Status(args) => status::run(session, &args, io).await,
        Command::Wait(args) => wait::run(session, &args, io).await,
        Command::Set(SetCommand::Image(args)) => set_image::run(session, &args, io.out).await,
        Command::Promote(args) => promote::run(session, &args, io.out).await,
        Command::Abort(args) => abort::run(session, &args.names, io.out).await,
        Command::Retry(RetryCommand::Rollout(args)) => retry::rollouts(session, &args.names, io.out).await,
        Command::Retry(RetryCommand::Experiment(args)) => {
            retry::experiments(session, &args.names, io.out).await
        }
        Command::Undo(args) => undo::run(session, &args, io.out).await,
        Command::Pause(args) => pause::run(session, &args.names, io.out).await,
        Command::Restart(args) => restart::run(session, &args, io.out).await,
        Command::Terminate(TerminateCommand::AnalysisRun(args)) => {
            terminate::analysis_runs(session, &args.names, io.out).await
        }
        Command::Terminate(TerminateCommand::Experiment(args)) => {
            terminate::experiments(session, &args.names, io.out).await
        }
        Command::Create(CreateArgs {
            command: Some(CreateCommand::AnalysisRun(args)),
            ..
        }) => create_analysis_run::run(session, &args, io.out).await,
        Command::Create(args) => create::run(session, &args, io).await,
        Command::Version(_) | Command::Completion(_) | Command::Lint(_) => Err(Error::msg(
            "internal error: offline command dispatched with a session",
        )),
    }
}

/// Prints an object (or list) as JSON or YAML, for `-o json|yaml`.
pub(crate) fn print_object<T: Serialize>(
    value: &T,
    format: OutputFormat,
    out: &mut dyn Write,
) -> Result<(), Error> {
    let text = match format {
        OutputFormat::Json => {
            let mut s = serde_json::to_string_pretty(value).map_err(|e| Error::msg(e.to_string()))?;
            s.push('\n');
            s
        }
        OutputFormat::Yaml => serde_saphyr::to_string(value).map_err(|e| Error::msg(e.to_string()))?,
    };
    out.write_all(text.as_bytes())?;
    Ok(())
}

/// Whether to colour output: a terminal, no `--no-color`, and not `TERM=dumb` (as Argo).
pub(crate) fn use_color(no_color: bool, io: &Io<'_>) -> bool {
    !no_color && io.stdout_is_terminal && std::env::var("TERM").map(|t| t != "dumb").unwrap_or(true)
}

/// A label selector in the query syntax (`a=b,env in (a,b),!x`), for list and watch requests;
/// an operator Kubernetes does not define is an error naming the selector.
pub(crate) fn label_selector(
    selector: &k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector,
) -> Result<String, crate::error::Error> {
    kube::core::Selector::try_from(selector.clone())
        .map(|s| s.to_string())
        .map_err(|e| crate::error::Error::msg(format!("invalid spec.selector: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_selectors() {
        let sel: k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector =
            serde_json::from_value(serde_json::json!({
                "matchLabels": {"app": "demo", "tier": "web"},
                "matchExpressions": [
                    {"key": "env", "operator": "In", "values": ["a", "b"]},
                    {"key": "x", "operator": "DoesNotExist"}
                ]
            }))
            .unwrap();
        assert_eq!(
            label_selector(&sel).expect("valid"),
            "app=demo,tier=web,env in (a,b),!x"
        );
        let bad: k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector =
            serde_json::from_value(serde_json::json!({
                "matchExpressions": [{"key": "env", "operator": "Near", "values": ["a"]}]
            }))
            .expect("selector parses");
        let err = label_selector(&bad).expect_err("unknown operator");
        assert!(err.to_string().contains("invalid spec.selector"), "{err}");
    }
}

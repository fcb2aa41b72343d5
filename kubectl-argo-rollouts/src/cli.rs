//! The command line, with Argo's command names, aliases and flags (`kubectl argo rollouts ...`).

use std::{path::PathBuf, str::FromStr, time::Duration};

use clap::{ArgAction, ArgGroup, Args, Parser, Subcommand, ValueEnum, builder::NonEmptyStringValueParser};
use shared_types::duration::parse_seconds_or_duration;

use crate::cmd::wait::Condition;

/// Manage Argo Rollouts.
#[derive(Debug, Parser)]
#[command(
    name = "kubectl-argo-rollouts",
    bin_name = "kubectl-argo-rollouts",
    about = "Manage argo rollouts",
    long_about = "This command consists of multiple subcommands which can be used to manage Argo Rollouts.",
    color = clap::ColorChoice::Never
)]
pub struct Cli {
    /// Flags shared by all commands (kubeconfig, context, namespace...).
    #[command(flatten)]
    pub global: GlobalArgs,
    /// The command to run.
    #[command(subcommand)]
    pub command: Command,
}

/// kubectl-style connection flags.
#[derive(Debug, Default, Clone, Args)]
pub struct GlobalArgs {
    /// If present, the namespace scope for this CLI request
    #[arg(short = 'n', long, global = true)]
    pub namespace: Option<String>,
    /// The name of the kubeconfig context to use
    #[arg(long, global = true)]
    pub context: Option<String>,
    /// Path to the kubeconfig file to use for CLI requests (default: $KUBECONFIG, then ~/.kube/config)
    #[arg(long, global = true)]
    pub kubeconfig: Option<PathBuf>,
    /// The name of the kubeconfig cluster to use
    #[arg(long, global = true)]
    pub cluster: Option<String>,
    /// The name of the kubeconfig user to use
    #[arg(long, global = true)]
    pub user: Option<String>,
    /// The address and port of the Kubernetes API server
    #[arg(short = 's', long, global = true)]
    pub server: Option<String>,
    /// Bearer token for authentication to the API server
    #[arg(long, global = true)]
    pub token: Option<String>,
    /// If true, the server's certificate will not be checked for validity
    #[arg(long, global = true)]
    pub insecure_skip_tls_verify: bool,
    /// The length of time to wait before giving up on a single server request (e.g. 1s, 2m; 0 = no timeout)
    #[arg(long, global = true, default_value = "0")]
    pub request_timeout: Timeout,
}

/// The plugin's commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Get details about rollouts, experiments
    #[command(subcommand)]
    Get(GetCommand),
    /// List rollouts or experiments
    #[command(subcommand)]
    List(ListCommand),
    /// Show the status of a rollout
    Status(StatusArgs),
    /// Wait until a rollout is healthy, paused, degraded or at a step
    Wait(WaitArgs),
    /// Update various values on resources
    #[command(subcommand)]
    Set(SetCommand),
    /// Promote a rollout
    Promote(PromoteArgs),
    /// Abort a rollout
    Abort(NamesArgs),
    /// Retry a rollout or experiment
    #[command(subcommand)]
    Retry(RetryCommand),
    /// Undo a rollout
    Undo(UndoArgs),
    /// Pause a rollout
    Pause(NamesArgs),
    /// Restart the pods of a rollout
    Restart(RestartArgs),
    /// Terminate an AnalysisRun or Experiment
    #[command(subcommand)]
    Terminate(TerminateCommand),
    /// Create a Rollout, Experiment, AnalysisTemplate, ClusterAnalysisTemplate, or AnalysisRun resource
    Create(CreateArgs),
    /// Lint and validate a Rollout
    Lint(LintArgs),
    /// Print version
    Version(VersionArgs),
    /// Generate completion script
    Completion(CompletionArgs),
}

/// Output format of the objects themselves (instead of the human view).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// JSON.
    Json,
    /// YAML.
    Yaml,
}

/// `get` subcommands.
#[derive(Debug, Subcommand)]
pub enum GetCommand {
    /// Get details about a rollout
    #[command(visible_aliases = ["ro", "rollouts"])]
    Rollout(GetRolloutArgs),
    /// Get details about an Experiment
    #[command(visible_aliases = ["exp", "experiments"])]
    Experiment(GetExperimentArgs),
}

/// `get rollout` flags.
#[derive(Debug, Args)]
pub struct GetRolloutArgs {
    /// Name of the rollout
    #[arg(value_name = "ROLLOUT_NAME")]
    pub name: String,
    /// Watch live updates to the rollout
    #[arg(short = 'w', long)]
    pub watch: bool,
    /// Do not colorize output
    #[arg(long)]
    pub no_color: bool,
    /// Timeout after specified seconds (with --watch; 0 = never)
    #[arg(long, default_value_t = 0)]
    pub timeout_seconds: u64,
    /// Print the Rollout object instead of the tree view
    #[arg(short = 'o', long, value_enum)]
    pub output: Option<OutputFormat>,
}

/// `get experiment` flags.
#[derive(Debug, Args)]
pub struct GetExperimentArgs {
    /// Name of the experiment
    #[arg(value_name = "EXPERIMENT_NAME")]
    pub name: String,
    /// Watch live updates to the experiment
    #[arg(short = 'w', long)]
    pub watch: bool,
    /// Do not colorize output
    #[arg(long)]
    pub no_color: bool,
    /// Print the Experiment object instead of the tree view
    #[arg(short = 'o', long, value_enum)]
    pub output: Option<OutputFormat>,
}

/// `list` subcommands.
#[derive(Debug, Subcommand)]
pub enum ListCommand {
    /// List rollouts
    #[command(visible_aliases = ["ro", "rollout"])]
    Rollouts(ListRolloutsArgs),
    /// List experiments
    #[command(visible_aliases = ["exp", "experiment"])]
    Experiments(ListExperimentsArgs),
}

/// `list rollouts` flags.
#[derive(Debug, Args)]
pub struct ListRolloutsArgs {
    /// Include all namespaces
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,
    /// Only show rollout with specified name
    #[arg(long)]
    pub name: Option<String>,
    /// Watch for changes
    #[arg(short = 'w', long)]
    pub watch: bool,
    /// Print timestamps on updates
    #[arg(long)]
    pub timestamps: bool,
    /// Print the Rollout objects instead of the table
    #[arg(short = 'o', long, value_enum)]
    pub output: Option<OutputFormat>,
}

/// `list experiments` flags.
#[derive(Debug, Args)]
pub struct ListExperimentsArgs {
    /// Include all namespaces
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,
}

/// `status` flags.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Name of the rollout
    #[arg(value_name = "ROLLOUT_NAME")]
    pub name: String,
    /// Watch the status of the rollout until it's done (use --watch=false to print it once)
    #[arg(short = 'w', long, default_value_t = true, num_args = 0..=1, require_equals = true, default_missing_value = "true", action = ArgAction::Set)]
    pub watch: bool,
    /// The length of time to watch before giving up (e.g. 1s, 2m, 3h; 0 means wait forever)
    #[arg(short = 't', long, default_value = "0")]
    pub timeout: Timeout,
}

/// `wait` flags.
#[derive(Debug, Args)]
pub struct WaitArgs {
    /// Name of the rollout
    #[arg(value_name = "ROLLOUT_NAME")]
    pub name: String,
    /// Condition to wait for: healthy, paused, degraded or step=N
    #[arg(long = "for", value_name = "CONDITION")]
    pub condition: Condition,
    /// The length of time to wait before giving up (e.g. 30s, 5m; 0 means wait forever)
    #[arg(short = 't', long, default_value = "0")]
    pub timeout: Timeout,
}

/// `set` subcommands.
#[derive(Debug, Subcommand)]
pub enum SetCommand {
    /// Update the image of a rollout
    Image(SetImageArgs),
}

/// `set image` arguments.
#[derive(Debug, Args)]
pub struct SetImageArgs {
    /// Name of the rollout
    #[arg(value_name = "ROLLOUT_NAME")]
    pub name: String,
    /// CONTAINER=IMAGE (`*` updates every container, init and ephemeral ones included)
    #[arg(value_name = "CONTAINER=IMAGE")]
    pub container_image: ContainerImage,
}

/// `promote` flags.
#[derive(Debug, Args)]
pub struct PromoteArgs {
    /// Name of the rollout
    #[arg(value_name = "ROLLOUT_NAME")]
    pub name: String,
    /// Perform a full promotion, skipping analysis, pauses, and steps
    #[arg(long)]
    pub full: bool,
    /// Skip currently running canary step (deprecated: promote without flags)
    #[arg(short = 'c', long, hide = true)]
    pub skip_current_step: bool,
    /// Skip remaining steps (deprecated: use --full)
    #[arg(short = 'a', long, hide = true)]
    pub skip_all_steps: bool,
}

/// Commands taking one or more rollout names.
#[derive(Debug, Args)]
pub struct NamesArgs {
    /// Names of the rollouts
    #[arg(value_name = "ROLLOUT_NAME", required = true)]
    pub names: Vec<String>,
}

/// `retry` subcommands.
#[derive(Debug, Subcommand)]
pub enum RetryCommand {
    /// Retry an aborted rollout
    #[command(visible_aliases = ["ro", "rollouts"])]
    Rollout(NamesArgs),
    /// Retry an experiment
    #[command(visible_aliases = ["exp", "experiments"])]
    Experiment(ExperimentNamesArgs),
}

/// Commands taking one or more experiment names.
#[derive(Debug, Args)]
pub struct ExperimentNamesArgs {
    /// Names of the experiments
    #[arg(value_name = "EXPERIMENT_NAME", required = true)]
    pub names: Vec<String>,
}

/// `terminate` subcommands.
#[derive(Debug, Subcommand)]
pub enum TerminateCommand {
    /// Terminate an AnalysisRun
    #[command(name = "analysisrun", visible_aliases = ["ar", "analysisruns"])]
    AnalysisRun(AnalysisRunNamesArgs),
    /// Terminate an experiment
    #[command(visible_aliases = ["exp", "experiments"])]
    Experiment(ExperimentNamesArgs),
}

/// Commands taking one or more AnalysisRun names.
#[derive(Debug, Args)]
pub struct AnalysisRunNamesArgs {
    /// Names of the AnalysisRuns
    #[arg(value_name = "ANALYSISRUN_NAME", required = true)]
    pub names: Vec<String>,
}

/// `undo` flags.
#[derive(Debug, Args)]
pub struct UndoArgs {
    /// Name of the rollout
    #[arg(value_name = "ROLLOUT_NAME")]
    pub name: String,
    /// The revision to rollback to. Default to 0 (last revision).
    #[arg(long, default_value_t = 0)]
    pub to_revision: i64,
}

/// `restart` flags.
#[derive(Debug, Args)]
pub struct RestartArgs {
    /// Name of the rollout
    #[arg(value_name = "ROLLOUT")]
    pub name: String,
    /// Amount of time before a restart. (e.g. 30s, 5m, 1h)
    #[arg(short = 'i', long = "in", value_parser = parse_delay)]
    pub in_: Option<String>,
}

/// `create` flags: `create -f FILE...`, or `create analysisrun ...`.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct CreateArgs {
    /// `create analysisrun`, when given (the flags below are then not allowed).
    #[command(subcommand)]
    pub command: Option<CreateCommand>,
    /// Files to use to create the resource
    #[arg(short = 'f', long = "filename", required = true)]
    pub files: Vec<PathBuf>,
    /// Watch live updates to the resource after creating
    #[arg(short = 'w', long)]
    pub watch: bool,
    /// Do not colorize output
    #[arg(long)]
    pub no_color: bool,
}

/// `create` subcommands.
#[derive(Debug, Subcommand)]
pub enum CreateCommand {
    /// Create an AnalysisRun from an AnalysisTemplate or a ClusterAnalysisTemplate
    #[command(name = "analysisrun", visible_aliases = ["ar"])]
    AnalysisRun(CreateAnalysisRunArgs),
}

/// `create analysisrun` flags. Exactly one template source; `--name` and `--generate-name`
/// exclude each other (the default is generateName `<template>-`).
#[derive(Debug, Args)]
#[command(group(
    ArgGroup::new("source")
        .required(true)
        .args(["from", "from_cluster_template", "from_file"])
))]
pub struct CreateAnalysisRunArgs {
    /// Create an AnalysisRun from an AnalysisTemplate (with --global, a ClusterAnalysisTemplate) in the cluster
    #[arg(long, value_name = "TEMPLATE", value_parser = NonEmptyStringValueParser::new())]
    pub from: Option<String>,
    /// Create an AnalysisRun from a ClusterAnalysisTemplate in the cluster (same as --global --from)
    #[arg(long, value_name = "TEMPLATE", value_parser = NonEmptyStringValueParser::new())]
    pub from_cluster_template: Option<String>,
    /// Create an AnalysisRun from an AnalysisTemplate or ClusterAnalysisTemplate in a local file
    #[arg(long, value_name = "FILE")]
    pub from_file: Option<PathBuf>,
    /// Use a ClusterAnalysisTemplate instead of a AnalysisTemplate
    #[arg(long)]
    pub global: bool,
    /// Use the specified name for the run
    #[arg(long, value_parser = NonEmptyStringValueParser::new(), conflicts_with = "generate_name")]
    pub name: Option<String>,
    /// Use the specified generateName for the run (default: "<template>-")
    #[arg(long, value_parser = NonEmptyStringValueParser::new())]
    pub generate_name: Option<String>,
    /// Instance-ID for the AnalysisRun
    #[arg(long)]
    pub instance_id: Option<String>,
    /// Arguments to the parameter template (NAME=VALUE, repeatable)
    #[arg(short = 'a', long = "argument", value_name = "NAME=VALUE")]
    pub arguments: Vec<TemplateArgument>,
}

/// `lint` flags.
#[derive(Debug, Args)]
pub struct LintArgs {
    /// File to lint
    #[arg(short = 'f', long = "filename", required = true)]
    pub file: PathBuf,
}

/// `version` flags.
#[derive(Debug, Args)]
pub struct VersionArgs {
    /// print just the version number
    #[arg(long)]
    pub short: bool,
}

/// `completion` arguments.
#[derive(Debug, Args)]
pub struct CompletionArgs {
    /// Shell to generate the completion script for
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// A duration flag: `0` for none, a bare number of seconds, or a Go duration (`30s`, `5m`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Timeout(pub Option<Duration>);

impl FromStr for Timeout {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let d = parse_seconds_or_duration(s.trim()).map_err(|e| e.to_string())?;
        Ok(Timeout((!d.is_zero()).then_some(d)))
    }
}

/// The `CONTAINER=IMAGE` argument of `set image`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerImage {
    /// Container name, or `*` for all.
    pub container: String,
    /// New image.
    pub image: String,
}

impl FromStr for ContainerImage {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.split('=').collect::<Vec<_>>().as_slice() {
            [container, image] if !container.is_empty() && !image.is_empty() => Ok(ContainerImage {
                container: container.to_string(),
                image: image.to_string(),
            }),
            _ => Err("expected CONTAINER=IMAGE".into()),
        }
    }
}

/// A `-a NAME=VALUE` argument of `create analysisrun`: split at the first `=`, so the value may
/// contain `=` and may be empty.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TemplateArgument {
    /// Argument name.
    pub name: String,
    /// Its value.
    pub value: String,
}

impl FromStr for TemplateArgument {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.split_once('=') {
            Some((name, value)) if !name.is_empty() => Ok(TemplateArgument {
                name: name.to_string(),
                value: value.to_string(),
            }),
            _ => Err("arguments must be in the form NAME=VALUE".into()),
        }
    }
}

/// Checks a `--in` delay and keeps it as written (it is echoed back).
fn parse_delay(s: &str) -> Result<String, String> {
    parse_seconds_or_duration(s)
        .map(|_| s.to_string())
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn command_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn aliases_and_flags() {
        let cli = Cli::try_parse_from(["k", "-n", "ns", "get", "ro", "demo", "-w", "--no-color"]).unwrap();
        assert_eq!(cli.global.namespace.as_deref(), Some("ns"));
        match cli.command {
            Command::Get(GetCommand::Rollout(a)) => assert!(a.watch && a.no_color && a.name == "demo"),
            other => panic!("unexpected {other:?}"),
        }
        let cli = Cli::try_parse_from(["k", "status", "-w", "demo"]).unwrap();
        assert!(
            matches!(cli.command, Command::Status(StatusArgs { watch: true, ref name, .. }) if name == "demo")
        );
        let cli = Cli::try_parse_from(["k", "status", "demo", "--watch=false", "--context", "c"]).unwrap();
        assert_eq!(cli.global.context.as_deref(), Some("c"));
        match cli.command {
            Command::Status(a) => assert!(!a.watch),
            other => panic!("unexpected {other:?}"),
        }
        let cli = Cli::try_parse_from(["k", "terminate", "ar", "run-1"]).unwrap();
        assert!(matches!(
            cli.command,
            Command::Terminate(TerminateCommand::AnalysisRun(_))
        ));
        let cli = Cli::try_parse_from([
            "k", "create", "ar", "--from", "t", "-a", "x=a=b", "-a", "y=", "--name", "r",
        ])
        .unwrap();
        match cli.command {
            Command::Create(CreateArgs {
                command: Some(CreateCommand::AnalysisRun(a)),
                ..
            }) => {
                assert_eq!(a.from.as_deref(), Some("t"));
                assert_eq!(a.name.as_deref(), Some("r"));
                let args: Vec<(&str, &str)> = a
                    .arguments
                    .iter()
                    .map(|t| (t.name.as_str(), t.value.as_str()))
                    .collect();
                assert_eq!(args, [("x", "a=b"), ("y", "")]);
            }
            other => panic!("unexpected {other:?}"),
        }
        let cli = Cli::try_parse_from(["k", "create", "-f", "a.yaml", "-w"]).unwrap();
        assert!(matches!(
            cli.command,
            Command::Create(CreateArgs {
                command: None,
                watch: true,
                ..
            })
        ));
        for bad in [
            &["k", "create"][..],
            &["k", "create", "analysisrun"],
            &["k", "create", "ar", "--from", "a", "--from-file", "f.yaml"],
            &["k", "create", "ar", "--from", "a", "--from-cluster-template", "b"],
            &[
                "k",
                "create",
                "ar",
                "--from",
                "a",
                "--name",
                "n",
                "--generate-name",
                "g-",
            ],
            &["k", "create", "ar", "--from", "a", "-a", "novalue"],
            &["k", "create", "ar", "--from", "a", "-a", "=v"],
            &["k", "create", "ar", "--from", ""],
        ] {
            assert!(Cli::try_parse_from(bad).is_err(), "{bad:?}");
        }
        let cli = Cli::try_parse_from(["k", "list", "rollout", "-A"]).unwrap();
        assert!(matches!(
            cli.command,
            Command::List(ListCommand::Rollouts(ListRolloutsArgs {
                all_namespaces: true,
                ..
            }))
        ));
    }
}

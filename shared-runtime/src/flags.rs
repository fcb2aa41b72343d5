//! Flags every controller accepts. Each binary flattens [`CommonArgs`] into its own clap struct;
//! every flag can also be set through the environment variable named next to it.

use std::{net::SocketAddr, path::PathBuf};

/// Log output format.
#[derive(clap::ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// Flags shared by all controllers (names follow Argo Rollouts' controller where it has one).
#[derive(clap::Args, Clone, Debug)]
pub struct CommonArgs {
    /// Path to a kubeconfig file; when omitted, KUBECONFIG, ~/.kube/config or the in-cluster
    /// service account is used.
    #[arg(long, env = "ARGO_ROLLOUTS_KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,
    /// Watch only this namespace (single-namespace mode). Empty watches all namespaces.
    #[arg(long, env = "ARGO_ROLLOUTS_NAMESPACE")]
    pub namespace: Option<String>,
    /// Process only objects labelled `argo-rollouts.argoproj.io/controller-instance-id=<id>`;
    /// when unset, only objects without that label.
    #[arg(long, env = "ARGO_ROLLOUTS_INSTANCE_ID")]
    pub instance_id: Option<String>,
    /// Log level: a level (`debug`, `info`, `warn`, `error`) or a tracing filter directive.
    #[arg(long, env = "ARGO_ROLLOUTS_LOGLEVEL", default_value = "info")]
    pub loglevel: String,
    /// Log format.
    #[arg(long, env = "ARGO_ROLLOUTS_LOGFORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub logformat: LogFormat,
    /// Address serving `/metrics` (Prometheus text format).
    #[arg(long, env = "ARGO_ROLLOUTS_METRICS_ADDR", default_value = "0.0.0.0:8090")]
    pub metrics_addr: SocketAddr,
    /// Address serving `/healthz` (liveness) and `/readyz` (ready once caches are synced).
    #[arg(long, env = "ARGO_ROLLOUTS_HEALTHZ_ADDR", default_value = "0.0.0.0:8080")]
    pub healthz_addr: SocketAddr,
}

impl CommonArgs {
    /// The instance-id label selector the controller's watches must use.
    pub fn instance_selector(&self) -> String {
        instance_selector(self.instance_id.as_deref())
    }
}

/// `key=<id>` when an instance id is set, `!key` (label absent) otherwise.
pub fn instance_selector(instance_id: Option<&str>) -> String {
    const KEY: &str = "argo-rollouts.argoproj.io/controller-instance-id";
    match instance_id.filter(|id| !id.is_empty()) {
        Some(id) => format!("{KEY}={id}"),
        None => format!("!{KEY}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory, Parser};

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        common: CommonArgs,
    }

    #[test]
    fn clap_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn instance_selector_selects_labelled_or_unlabelled_objects() {
        assert_eq!(
            instance_selector(Some("blue")),
            "argo-rollouts.argoproj.io/controller-instance-id=blue"
        );
        assert_eq!(
            instance_selector(None),
            "!argo-rollouts.argoproj.io/controller-instance-id"
        );
        assert_eq!(
            instance_selector(Some("")),
            "!argo-rollouts.argoproj.io/controller-instance-id"
        );
    }

    #[test]
    fn defaults_match_argo_ports() {
        let cli = Cli::try_parse_from(["x"]).expect("parses with defaults");
        assert_eq!(cli.common.metrics_addr.port(), 8090);
        assert_eq!(cli.common.healthz_addr.port(), 8080);
        assert_eq!(cli.common.logformat, LogFormat::Text);
        assert!(Cli::try_parse_from(["x", "--logformat", "xml"]).is_err());
    }
}

//! Runtime pieces every controller binary needs, kept in one place so the four controllers
//! behave alike: common flags, logging, Kubernetes client construction, the admin HTTP server
//! (`/metrics`, `/healthz`, `/readyz`) and shutdown signals.

pub mod admin;
pub mod backoff;
pub mod events;
pub mod flags;
pub mod http;
pub mod leader;
pub mod logging;
pub mod metrics;
pub mod runtime;
pub mod shard;
pub mod synced;

use std::path::Path;

/// Errors of the shared runtime.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The kubeconfig could not be read or has no usable context.
    #[error("cannot load kubeconfig {path}: {source}")]
    Kubeconfig {
        /// The file given with `--kubeconfig`.
        path: String,
        /// What went wrong.
        #[source]
        source: kube::config::KubeconfigError,
    },
    /// Neither a kubeconfig nor in-cluster configuration was found.
    #[error(
        "cannot find cluster configuration (no --kubeconfig, KUBECONFIG, ~/.kube/config or in-cluster service account): {0}"
    )]
    Infer(#[source] kube::config::InferConfigError),
    /// The client could not be built from the configuration.
    #[error("cannot create Kubernetes client: {0}")]
    Client(#[source] kube::Error),
    /// The logging filter is invalid.
    #[error("invalid log level {level:?}: {message}")]
    LogLevel {
        /// The level given.
        level: String,
        /// Why it was rejected.
        message: String,
    },
    /// A kind the controller needs is not served by the API server, or cannot be listed.
    #[error(
        "cannot list {resource}: {source} (is its CustomResourceDefinition installed, and may this controller list it?)"
    )]
    NotServed {
        /// `<plural>.<group>`.
        resource: String,
        /// The API error.
        #[source]
        source: kube::Error,
    },
    /// Another process took over the leader lease (or it could not be renewed in time).
    #[error("lost the leader lease; exiting so that only the new leader acts")]
    LeadershipLost,
    /// The controller stopped on an error of its own.
    #[error("{0}")]
    Failed(String),
    /// The binary's controller is not written yet.
    #[error("{0} is not implemented yet; this build contains no such controller")]
    NotImplemented(&'static str),
    /// The leader election timing flags contradict each other.
    #[error("invalid leader election flags: {0}")]
    LeaderElectionFlags(String),
    /// The sharding timing flags contradict each other.
    #[error("invalid sharding flags: {0}")]
    ShardFlags(String),
    /// An admin server port could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

/// Builds a client from `--kubeconfig` when given, else from `KUBECONFIG`, `~/.kube/config` or
/// the in-cluster service account, in that order (kube's inference).
///
/// Requests carry `User-Agent: <component>/<version>` so audit logs and API server metrics
/// attribute them to the controller.
pub async fn client(kubeconfig: Option<&Path>, component: &str) -> Result<kube::Client, Error> {
    let mut config = match kubeconfig {
        Some(path) => {
            let kubeconfig =
                kube::config::Kubeconfig::read_from(path).map_err(|source| Error::Kubeconfig {
                    path: path.display().to_string(),
                    source,
                })?;
            kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
                .await
                .map_err(|source| Error::Kubeconfig {
                    path: path.display().to_string(),
                    source,
                })?
        }
        None => kube::Config::infer().await.map_err(Error::Infer)?,
    };
    if let Ok(agent) = ::http::HeaderValue::from_str(&user_agent(component)) {
        config.headers.push((::http::header::USER_AGENT, agent));
    }
    kube::Client::try_from(config).map_err(Error::Client)
}

/// `<component>/<version of this build>`.
pub fn user_agent(component: &str) -> String {
    format!("{component}/{}", env!("CARGO_PKG_VERSION"))
}

/// Resolves when the process receives SIGTERM or SIGINT, so controllers can drain and exit.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        // If the handler cannot be installed we simply never see Ctrl-C; SIGTERM still works.
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutdown signal received");
}

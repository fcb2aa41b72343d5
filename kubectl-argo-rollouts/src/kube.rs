//! Client set-up like kubectl's: kubeconfig from `--kubeconfig`, else `KUBECONFIG` (a list of
//! files, merged), else `~/.kube/config`, else the in-cluster service account; `--context`,
//! `--cluster` and `--user` select entries; the namespace is `-n`, else the context's, else
//! `default`.

use kube::{
    Client, Config,
    config::{KubeConfigOptions, Kubeconfig, KubeconfigError},
};

use crate::{cli::GlobalArgs, error::Error};

/// A connected client and the namespace commands act in.
#[derive(Clone)]
pub struct Session {
    /// The API client.
    pub client: Client,
    /// Namespace from `-n`, the kubeconfig context, or `default`.
    pub namespace: String,
    /// Whether the namespace was given explicitly with `-n`.
    pub namespace_explicit: bool,
    /// URL of the API server (for error messages).
    pub server: String,
}

impl Session {
    /// A session around an existing client (tests, or callers with their own set-up).
    pub fn new(client: Client, namespace: impl Into<String>) -> Self {
        Session {
            client,
            namespace: namespace.into(),
            namespace_explicit: false,
            server: String::new(),
        }
    }
}

/// Builds the client configuration from the global flags.
pub async fn config(args: &GlobalArgs) -> Result<Config, Error> {
    let options = KubeConfigOptions {
        context: args.context.clone(),
        cluster: args.cluster.clone(),
        user: args.user.clone(),
    };
    let kubeconfig = match &args.kubeconfig {
        Some(path) => Some(Kubeconfig::read_from(path).map_err(|e| kubeconfig_error(&e))?),
        None => match Kubeconfig::read() {
            Ok(k) => Some(k),
            // No kubeconfig anywhere: fall back to the in-cluster account, unless the user asked
            // for kubeconfig entries.
            Err(KubeconfigError::FindPath | KubeconfigError::ReadConfig(..))
                if args.context.is_none() && args.cluster.is_none() && args.user.is_none() =>
            {
                None
            }
            Err(e) => return Err(kubeconfig_error(&e)),
        },
    };
    let mut config = match kubeconfig {
        Some(kubeconfig) => {
            if let Some(ctx) = &args.context
                && !kubeconfig.contexts.iter().any(|c| &c.name == ctx)
            {
                return Err(Error::msg(format!("context \"{ctx}\" does not exist")));
            }
            Config::from_custom_kubeconfig(kubeconfig, &options)
                .await
                .map_err(|e| kubeconfig_error(&e))?
        }
        None => match (&args.server, Config::incluster()) {
            (_, Ok(config)) => config,
            (Some(server), Err(_)) => Config::new(parse_server(server)?),
            (None, Err(_)) => {
                return Err(Error::msg(
                    "invalid configuration: no configuration has been provided, try setting KUBECONFIG environment variable",
                ));
            }
        },
    };
    if let Some(server) = &args.server {
        config.cluster_url = parse_server(server)?;
    }
    if let Some(token) = &args.token {
        config.auth_info.token = Some(token.clone().into());
    }
    if args.insecure_skip_tls_verify {
        config.accept_invalid_certs = true;
    }
    if let Some(timeout) = args.request_timeout.0 {
        config.read_timeout = Some(timeout);
        config.connect_timeout = Some(timeout);
    }
    if let Some(ns) = &args.namespace {
        config.default_namespace = ns.clone();
    }
    Ok(config)
}

/// Connects with the global flags.
pub async fn connect(args: &GlobalArgs) -> Result<Session, Error> {
    let config = config(args).await?;
    let server = config.cluster_url.to_string();
    let namespace = config.default_namespace.clone();
    let client = Client::try_from(config).map_err(|e| Error::from(e).with_server(&server))?;
    Ok(Session {
        client,
        namespace,
        namespace_explicit: args.namespace.is_some(),
        server,
    })
}

fn parse_server(server: &str) -> Result<http::Uri, Error> {
    server
        .parse()
        .map_err(|e| Error::Usage(format!("invalid --server {server:?}: {e}")))
}

fn kubeconfig_error(err: &KubeconfigError) -> Error {
    Error::msg(format!("error loading kubeconfig: {err}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn kubeconfig_context_namespace_and_overrides() {
        let dir = std::env::temp_dir().join(format!("kar-kubeconfig-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("config");
        std::fs::write(
            &path,
            r#"apiVersion: v1
kind: Config
current-context: a
clusters:
- name: c1
  cluster: {server: "https://127.0.0.1:6443"}
- name: c2
  cluster: {server: "https://127.0.0.2:6443"}
users:
- name: u
  user: {token: abc}
contexts:
- name: a
  context: {cluster: c1, user: u, namespace: team-a}
- name: b
  context: {cluster: c2, user: u}
"#,
        )
        .unwrap();
        let args = GlobalArgs {
            kubeconfig: Some(path.clone()),
            ..Default::default()
        };
        let c = config(&args).await.unwrap();
        assert_eq!(c.default_namespace, "team-a");
        assert_eq!(c.cluster_url.to_string(), "https://127.0.0.1:6443/");

        let args = GlobalArgs {
            context: Some("b".into()),
            ..args
        };
        let c = config(&args).await.unwrap();
        assert_eq!(c.default_namespace, "default");
        assert_eq!(c.cluster_url.to_string(), "https://127.0.0.2:6443/");

        let args = GlobalArgs {
            namespace: Some("x".into()),
            ..args
        };
        assert_eq!(config(&args).await.unwrap().default_namespace, "x");

        let args = GlobalArgs {
            context: Some("nope".into()),
            ..args
        };
        let err = config(&args).await.err().unwrap();
        assert_eq!(err.to_string(), "context \"nope\" does not exist");
        std::fs::remove_dir_all(&dir).ok();
    }
}

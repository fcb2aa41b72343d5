//! What the benchmarks share besides the cluster and the report: where things are, a fresh
//! WORKDIR, the benchmark's own client and namespace, Ctrl-C, the controller under test started
//! from its command template, and the progress line.

use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};
use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use kube::{Api, Client, Config, api::PostParams};

use super::{
    cluster::{Cluster, Controller, Placeholders, expand_command},
    report::{ControllerInfo, shell_quote},
};

/// The repository root (this crate is `<repo>/e2e`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// `<cargo target dir>/release`, from where this executable lives (`<target>/<profile>/`).
pub fn rust_release_dir() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.parent()?.join("release")))
        .unwrap_or_else(|| PathBuf::from("target/release"))
}

/// A new, empty directory `$TMPDIR/<prefix>.<unique>` (default `/tmp`).
pub fn unique_dir(prefix: &str) -> Result<PathBuf> {
    let base = std::env::var_os("TMPDIR").map_or_else(|| PathBuf::from("/tmp"), PathBuf::from);
    for attempt in 0..100u32 {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let dir = base.join(format!(
            "{prefix}.{:x}{:x}",
            std::process::id(),
            nanos.wrapping_add(attempt)
        ));
        match std::fs::create_dir(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e).with_context(|| format!("creating {}", dir.display())),
        }
    }
    bail!("no unique directory {prefix}.* under {}", base.display())
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = term => {}
    }
}

/// A client for the cluster sending `user_agent`, so the audit log tells the benchmark's
/// requests from the controller's.
pub async fn bench_client(kubeconfig: &Path, user_agent: &'static str) -> Result<Client> {
    let kc = kube::config::Kubeconfig::read_from(kubeconfig)
        .with_context(|| format!("reading {}", kubeconfig.display()))?;
    let mut config = Config::from_custom_kubeconfig(kc, &Default::default()).await?;
    config.headers.push((
        http::header::USER_AGENT,
        http::HeaderValue::from_static(user_agent),
    ));
    Ok(Client::try_from(config)?)
}

/// Creates namespace `ns` (fine if it exists) and waits for its default ServiceAccount.
pub async fn create_namespace(client: &Client, ns: &str) -> Result<()> {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let namespace: Namespace = serde_json::from_value(serde_json::json!({"metadata": {"name": ns}}))?;
    match namespaces.create(&PostParams::default(), &namespace).await {
        Err(kube::Error::Api(s)) if s.code == 409 => {}
        other => {
            other.with_context(|| format!("creating namespace {ns}"))?;
        }
    }
    let sa: Api<ServiceAccount> = Api::namespaced(client.clone(), ns);
    crate::wait_for("the default ServiceAccount", Duration::from_secs(60), || async {
        Ok(sa.get_opt("default").await?.map(|_| ()))
    })
    .await
}

/// The controller under test as a command line: `template` with its placeholders substituted
/// (a free port for `{port}`), recorded in `info` together with the binary's modification time
/// and the log file (`WORKDIR/logs/controller.log`).
pub struct Launch {
    /// The command line.
    pub argv: Vec<String>,
    /// Where readiness is probed: `127.0.0.1:{port}` and the path, when the template has
    /// `{port}` and the path is not empty.
    pub probe: Option<(u16, String)>,
    /// Its stdout and stderr.
    pub log: PathBuf,
}

impl Launch {
    /// Prepares `template` for `cluster` and the benchmark namespace `namespace`.
    pub fn prepare(
        template: &str,
        readyz: &str,
        cluster: &Cluster,
        namespace: &str,
        info: &mut ControllerInfo,
    ) -> Result<Self> {
        let port = crate::free_port()?;
        let placeholders = Placeholders {
            kubeconfig: cluster.kubeconfig.clone(),
            namespace: namespace.to_string(),
            port,
            workdir: cluster.workdir.clone(),
            rust_bin: rust_release_dir(),
        };
        let argv = expand_command(template, &placeholders)?;
        info.command_template = template.to_string();
        info.command = argv.iter().map(|w| shell_quote(w)).collect::<Vec<_>>().join(" ");
        info.binary_modified = std::fs::metadata(&argv[0])
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| Timestamp::try_from(t).ok())
            .map(|t| t.to_string());
        let log = cluster.logs().join("controller.log");
        info.log = log.display().to_string();
        let probe = (template.contains("{port}") && !readyz.is_empty()).then(|| (port, readyz.to_string()));
        Ok(Self { argv, probe, log })
    }

    /// Starts the controller (with `KUBECONFIG` set to the cluster's kubeconfig).
    pub fn start(&self, cluster: &Cluster) -> Result<Controller> {
        Controller::start(self.argv.clone(), &cluster.kubeconfig, self.log.clone())
    }

    /// Waits until `controller` is ready (see [`Controller::wait_ready`]) and records how long
    /// that took from `started` in `info`.
    pub async fn wait_ready(
        &self,
        controller: &mut Controller,
        started: Instant,
        info: &mut ControllerInfo,
    ) -> Result<()> {
        let probe = self.probe.as_ref().map(|(port, path)| (*port, path.as_str()));
        controller.wait_ready(probe, Duration::from_secs(120)).await?;
        info.ready_seconds = Some(round3(started.elapsed().as_secs_f64()));
        Ok(())
    }
}

/// Rounds to milliseconds (or thousandths).
pub fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

fn is_tty() -> bool {
    use std::io::IsTerminal;
    std::io::stderr().is_terminal()
}

/// On a terminal the progress line is redrawn every tick; otherwise a line every 5 s.
pub fn progress_interval() -> Duration {
    if is_tty() {
        Duration::from_millis(100)
    } else {
        Duration::from_secs(5)
    }
}

/// Shows one progress line on stderr, `[name] line` (redrawn in place on a terminal).
pub fn progress_line(name: &str, line: &str) {
    if is_tty() {
        eprint!("\r\x1b[2K[{name}] {line}");
    } else {
        eprintln!("[{name}] {line}");
    }
}

/// Ends a redrawn progress line.
pub fn progress_done() {
    if is_tty() {
        eprintln!();
    }
}

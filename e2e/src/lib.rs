//! Test support for the end-to-end tests: a client for the local cluster started by
//! `e2e/cluster/up.sh`, a fresh namespace per test (dumped on failure, deleted afterwards),
//! applying YAML, waiting for conditions with clear messages, and running our binaries as local
//! processes against the cluster.
//!
//! [`bench`] is the `scale-bench` benchmark (binary `src/bin/scale-bench.rs`).
//!
//! The tests find the cluster through `ARGO_RS_E2E_KUBECONFIG` (set by `scripts/test.sh`), so a
//! developer's own `KUBECONFIG` is never touched by accident.

use std::{
    future::Future,
    path::{Path, PathBuf},
    process::Stdio,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, anyhow, bail};
use futures::FutureExt;
use k8s_openapi::api::core::v1::Namespace;
use kube::{
    Api, Client, Config, ResourceExt,
    api::{DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams},
    core::GroupVersionKind,
    discovery,
};
use serde_json::Value;

pub mod bench;
pub mod http_server;
pub mod prometheus;
pub mod rollout_ops;

/// Environment variable naming the kubeconfig of the test cluster.
pub const KUBECONFIG_ENV: &str = "ARGO_RS_E2E_KUBECONFIG";

/// The kubeconfig path of the test cluster.
pub fn kubeconfig_path() -> Result<PathBuf> {
    std::env::var_os(KUBECONFIG_ENV)
        .map(PathBuf::from)
        .ok_or_else(|| anyhow!("{KUBECONFIG_ENV} is not set: run the e2e tests with scripts/test.sh"))
}

/// A client for the test cluster.
pub async fn client() -> Result<Client> {
    let path = kubeconfig_path()?;
    let kubeconfig =
        kube::config::Kubeconfig::read_from(&path).with_context(|| format!("reading {}", path.display()))?;
    let config = Config::from_custom_kubeconfig(kubeconfig, &Default::default()).await?;
    Ok(Client::try_from(config)?)
}

/// Directory of our built binaries (the test executable lives in `<target>/<profile>/deps`).
pub fn bin_dir() -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os("ARGO_RS_BIN_DIR") {
        return Ok(PathBuf::from(dir));
    }
    let exe = std::env::current_exe()?;
    exe.parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .ok_or_else(|| anyhow!("cannot locate the target directory from {}", exe.display()))
}

/// A namespace of its own for one test.
pub struct TestNamespace {
    /// The client.
    pub client: Client,
    /// The namespace name.
    pub name: String,
    logs: Vec<PathBuf>,
    /// Kubeconfigs of the controllers' chart ServiceAccounts in this namespace, by binary.
    identities: std::collections::BTreeMap<String, PathBuf>,
}

impl TestNamespace {
    /// An API for a namespaced kind in this namespace.
    pub fn api<K>(&self) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        <K as kube::Resource>::DynamicType: Default,
    {
        Api::namespaced(self.client.clone(), &self.name)
    }

    /// An API for an Istio networking kind (`VirtualService`, `DestinationRule`) in this
    /// namespace.
    pub fn istio(&self, kind: &str) -> Api<DynamicObject> {
        let gvk = GroupVersionKind::gvk("networking.istio.io", "v1alpha3", kind);
        Api::namespaced_with(
            self.client.clone(),
            &self.name,
            &kube::core::ApiResource::from_gvk_with_plural(&gvk, &format!("{}s", kind.to_lowercase())),
        )
    }

    /// Applies every document of a YAML stream into this namespace (server-side apply).
    pub async fn apply(&self, yaml: &str) -> Result<()> {
        for doc in serde_saphyr::from_multiple::<Value>(yaml).context("parsing YAML")? {
            if doc.is_null() {
                continue;
            }
            self.apply_value(doc).await?;
        }
        Ok(())
    }

    /// Applies one object given as JSON.
    pub async fn apply_value(&self, mut doc: Value) -> Result<DynamicObject> {
        let api_version = doc["apiVersion"].as_str().unwrap_or_default().to_string();
        let kind = doc["kind"].as_str().unwrap_or_default().to_string();
        let (group, version) = match api_version.split_once('/') {
            Some((g, v)) => (g.to_string(), v.to_string()),
            None => (String::new(), api_version.clone()),
        };
        let gvk = GroupVersionKind::gvk(&group, &version, &kind);
        let (resource, caps) = discovery::pinned_kind(&self.client, &gvk)
            .await
            .with_context(|| format!("discovering {api_version}/{kind}"))?;
        let name = doc["metadata"]["name"].as_str().unwrap_or_default().to_string();
        let api: Api<DynamicObject> = if caps.scope == discovery::Scope::Namespaced {
            doc["metadata"]["namespace"] = Value::String(self.name.clone());
            Api::namespaced_with(self.client.clone(), &self.name, &resource)
        } else {
            Api::all_with(self.client.clone(), &resource)
        };
        let params = PatchParams::apply("e2e").force();
        api.patch(&name, &params, &Patch::Apply(&doc))
            .await
            .with_context(|| format!("applying {kind} {name}"))
    }

    /// Remembers a log file to print if the test fails.
    pub fn attach_log(&mut self, path: PathBuf) {
        self.logs.push(path);
    }

    /// Prints what a failing test leaves behind: objects, events and controller logs.
    async fn dump(&self) {
        eprintln!("===== e2e failure dump for namespace {} =====", self.name);
        let kubectl = std::env::var("ARGO_RS_KUBECTL").unwrap_or_else(|_| "kubectl".into());
        if let Ok(path) = kubeconfig_path() {
            for args in [
                vec![
                    "get",
                    "rollouts,replicasets,pods,services,analysisruns,experiments",
                    "-o",
                    "wide",
                ],
                vec!["get", "rollouts", "-o", "yaml"],
                vec!["get", "events", "--sort-by=.lastTimestamp"],
            ] {
                let out = tokio::process::Command::new(&kubectl)
                    .arg("--kubeconfig")
                    .arg(&path)
                    .arg("-n")
                    .arg(&self.name)
                    .args(&args)
                    .output()
                    .await;
                match out {
                    Ok(o) => eprintln!(
                        "$ kubectl {}\n{}{}",
                        args.join(" "),
                        String::from_utf8_lossy(&o.stdout),
                        String::from_utf8_lossy(&o.stderr)
                    ),
                    Err(e) => eprintln!("kubectl {}: {e}", args.join(" ")),
                }
            }
        }
        for log in &self.logs {
            let text = std::fs::read_to_string(log).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(200).collect();
            eprintln!("----- last lines of {} -----", log.display());
            for line in tail.into_iter().rev() {
                eprintln!("{line}");
            }
        }
    }
}

/// Runs `body` in a fresh namespace; dumps state if it fails or panics, then deletes the namespace.
pub async fn with_namespace<F>(prefix: &str, body: F) -> Result<()>
where
    F: AsyncFnOnce(&mut TestNamespace) -> Result<()>,
{
    let client = client().await?;
    let name = format!("e2e-{prefix}-{:08x}", rand_suffix());
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let ns: Namespace = serde_json::from_value(serde_json::json!({"metadata": {"name": name}}))?;
    namespaces
        .create(&PostParams::default(), &ns)
        .await
        .context("creating test namespace")?;
    // The ServiceAccount admission plugin rejects pods until the default ServiceAccount exists.
    let sa: Api<k8s_openapi::api::core::v1::ServiceAccount> = Api::namespaced(client.clone(), &name);
    wait_for("default ServiceAccount", Duration::from_secs(30), || async {
        Ok(sa.get_opt("default").await?.map(|_| ()))
    })
    .await?;
    let mut test_ns = TestNamespace {
        client: client.clone(),
        name: name.clone(),
        logs: Vec::new(),
        identities: Default::default(),
    };
    let outcome = std::panic::AssertUnwindSafe(body(&mut test_ns))
        .catch_unwind()
        .await;
    let result = match outcome {
        Ok(result) => result,
        Err(panic) => {
            let msg = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "panic".into());
            Err(anyhow!("test panicked: {msg}"))
        }
    };
    if result.is_err() {
        test_ns.dump().await;
    }
    // The charts' cluster-scoped RBAC goes with its releases; the rest with the namespace.
    for binary in test_ns.identities.keys() {
        let _ = helm(&[
            "uninstall",
            &chart_release(&test_ns, binary),
            "-n",
            &name,
            "--no-hooks",
        ])
        .await;
    }
    let _ = namespaces.delete(&name, &DeleteParams::background()).await;
    result
}

fn rand_suffix() -> u32 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    nanos ^ std::process::id().rotate_left(16)
}

/// Polls `check` until it returns `Some`, failing after `timeout` with a message naming `what`
/// and the last error seen.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<T>>>,
{
    let start = Instant::now();
    let mut last_error = None;
    loop {
        match check().await {
            Ok(Some(v)) => return Ok(v),
            Ok(None) => {}
            Err(e) => last_error = Some(e),
        }
        if start.elapsed() > timeout {
            match last_error {
                Some(e) => bail!("timed out after {timeout:?} waiting for {what}; last error: {e:#}"),
                None => bail!("timed out after {timeout:?} waiting for {what}"),
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Like [`wait_for`], for a predicate that explains what it last saw.
pub async fn wait_until<F, Fut>(what: &str, timeout: Duration, mut check: F) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<std::result::Result<(), String>>>,
{
    let start = Instant::now();
    loop {
        let last = match check().await {
            Ok(Ok(())) => return Ok(()),
            Ok(Err(seen)) => seen,
            Err(e) => format!("error: {e:#}"),
        };
        if start.elapsed() > timeout {
            bail!("timed out after {timeout:?} waiting for {what}; last seen: {last}");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// A free TCP port on the loopback interface.
pub fn free_port() -> Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

/// One of our binaries running against the test cluster; killed when dropped.
pub struct Process {
    child: tokio::process::Child,
    binary: String,
    /// Where its stdout and stderr go.
    pub log: PathBuf,
}

impl Process {
    /// Starts `binary` (a name in [`bin_dir`]) with `args`, logging to a file in the temp dir.
    pub fn start(binary: &str, args: &[String]) -> Result<Self> {
        Self::start_with_env(binary, args, &[])
    }

    /// Like [`Process::start`], with extra environment variables.
    pub fn start_with_env(binary: &str, args: &[String], env: &[(&str, &str)]) -> Result<Self> {
        let path = bin_dir()?.join(binary);
        if !path.exists() {
            bail!(
                "{} not found: build the workspace binaries first (cargo build --workspace --bins)",
                path.display()
            );
        }
        let log = std::env::temp_dir().join(format!("argo-rs-e2e-{binary}-{}.log", rand_suffix()));
        let file = std::fs::File::create(&log)?;
        let child = tokio::process::Command::new(&path)
            .args(args)
            .env("ARGO_ROLLOUTS_KUBECONFIG", kubeconfig_path()?)
            .envs(env.iter().copied())
            .stdout(Stdio::from(file.try_clone()?))
            .stderr(Stdio::from(file))
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", path.display()))?;
        Ok(Self {
            child,
            binary: binary.to_string(),
            log,
        })
    }

    /// The process id.
    pub fn id(&self) -> Option<u32> {
        self.child.id()
    }

    /// Kills the process at once (SIGKILL) and waits for it.
    pub async fn kill(&mut self) -> Result<()> {
        self.child.kill().await?;
        Ok(())
    }

    /// The exit status if the process has exited.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// The last `lines` lines of its log.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// Waits until `/readyz` on the admin `port` answers 200, failing at once (with the end of
    /// its log) if the process exits first.
    pub async fn wait_ready(&mut self, port: u16, timeout: Duration) -> Result<()> {
        let start = Instant::now();
        loop {
            if let Some(status) = self.exited() {
                bail!(
                    "{} exited ({status}) before /readyz answered 200; {} ends with:\n{}",
                    self.binary,
                    self.log.display(),
                    self.log_tail(30)
                );
            }
            if matches!(http_get(port, "/readyz").await, Ok((200, _))) {
                return Ok(());
            }
            if start.elapsed() > timeout {
                bail!(
                    "{}: /readyz not 200 after {timeout:?}; {} ends with:\n{}",
                    self.binary,
                    self.log.display(),
                    self.log_tail(30)
                );
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

/// Set to run the controllers with the cluster-admin kubeconfig instead of as their charts'
/// ServiceAccounts (to tell an RBAC problem from another one).
pub const AS_ADMIN_ENV: &str = "ARGO_RS_E2E_AS_ADMIN";

/// The helm binary: `ARGO_RS_HELM`, else next to `ARGO_RS_KUBECTL` (where build-deps.sh puts
/// both), else `helm` on PATH.
pub fn helm_bin() -> PathBuf {
    if let Some(helm) = std::env::var_os("ARGO_RS_HELM") {
        return PathBuf::from(helm);
    }
    if let Some(kubectl) = std::env::var_os("ARGO_RS_KUBECTL") {
        let next_to = PathBuf::from(kubectl).with_file_name("helm");
        if next_to.exists() {
            return next_to;
        }
    }
    PathBuf::from("helm")
}

/// `helm ARGS` against the test cluster, failing unless it exits 0; its stdout.
pub async fn helm(args: &[&str]) -> Result<String> {
    let kubeconfig = kubeconfig_path()?.display().to_string();
    let out = tokio::process::Command::new(helm_bin())
        .args(args)
        .args(["--kubeconfig", &kubeconfig])
        .output()
        .await
        .with_context(|| format!("running {}", helm_bin().display()))?;
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    if !out.status.success() {
        bail!("helm {} failed: {stderr}{stdout}", args.join(" "));
    }
    Ok(stdout)
}

/// The release of `binary`'s chart in a test namespace (unique per namespace, because the chart's
/// ClusterRoles are named after it).
fn chart_release(ns: &TestNamespace, binary: &str) -> String {
    format!("{binary}-{}", ns.name.rsplit('-').next().unwrap_or_default())
}

/// A kubeconfig for `binary`'s chart ServiceAccount in the test namespace: the chart is installed
/// there once (`deploy=false`: only the ServiceAccount and RBAC; namespaced mode: Roles in the
/// namespace; leader election on, or sharding when the controller runs with `--sharding`) and a
/// token is requested for its ServiceAccount. Every e2e test thus runs the controllers with
/// exactly their charts' permissions.
async fn chart_identity(
    ns: &mut TestNamespace,
    binary: &str,
    instance: Option<&str>,
    sharding: bool,
) -> Result<PathBuf> {
    // One release per controller and instance id, as one would install them.
    let name = match instance {
        Some(id) => format!("{binary}-{id}"),
        None => binary.to_string(),
    };
    if let Some(path) = ns.identities.get(&name) {
        return Ok(path.clone());
    }
    let release = chart_release(ns, &name);
    let chart = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../charts")
        .join(binary);
    let chart = chart.display().to_string();
    let watch = format!("watchNamespace={}", ns.name);
    let account = format!("serviceAccount.name={name}");
    let instance_id = format!("instanceID={}", instance.unwrap_or_default());
    let mut args = vec![
        "upgrade",
        "--install",
        &release,
        &chart,
        "-n",
        &ns.name,
        "--set",
        "deploy=false",
        "--set",
        &watch,
        "--set",
        "leaderElection.enabled=true",
        "--set",
        &account,
    ];
    if sharding {
        args.extend(["--set", "sharding.enabled=true"]);
    }
    if instance.is_some() {
        args.extend(["--set", &instance_id]);
    }
    helm(&args).await?;
    let path = service_account_kubeconfig(&ns.name, &name).await?;
    ns.identities.insert(name, path.clone());
    Ok(path)
}

/// Starts one of our controllers for one namespace: admin endpoints on a free port, debug logs
/// of its own crate, its Lease (and `POD_NAMESPACE`) in the test's namespace, since tests run in
/// parallel, each with its own controllers; then `extra` flags and `env`. Its log is part of the
/// namespace's failure dump. Returns the process and the admin port once `/readyz` answers 200.
pub async fn start_controller(
    ns: &mut TestNamespace,
    binary: &str,
    extra: &[&str],
    env: &[(&str, &str)],
) -> Result<(Process, u16)> {
    let port = free_port()?;
    let mut args = vec![
        "--namespace".to_string(),
        ns.name.clone(),
        "--metrics-addr".into(),
        format!("127.0.0.1:{port}"),
        "--healthz-addr".into(),
        format!("127.0.0.1:{port}"),
        "--loglevel".into(),
        format!("info,{}=debug", binary.replace('-', "_")),
        "--leader-election-namespace".into(),
        ns.name.clone(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    if std::env::var_os(AS_ADMIN_ENV).is_none() {
        let instance = extra
            .iter()
            .position(|a| *a == "--instance-id")
            .and_then(|i| extra.get(i + 1))
            .copied();
        let kubeconfig = chart_identity(ns, binary, instance, extra.contains(&"--sharding")).await?;
        args.push("--kubeconfig".into());
        args.push(kubeconfig.display().to_string());
    }
    let mut all_env = vec![("POD_NAMESPACE", ns.name.as_str())];
    all_env.extend(env.iter().copied());
    let mut process = Process::start_with_env(binary, &args, &all_env)?;
    ns.attach_log(process.log.clone());
    process.wait_ready(port, Duration::from_secs(60)).await?;
    Ok((process, port))
}

/// Starts the rollout controller for one namespace (see [`start_controller`]).
pub async fn start_rollout_controller(ns: &mut TestNamespace, extra: &[&str]) -> Result<(Process, u16)> {
    start_controller(ns, "rollout-controller", extra, &[]).await
}

/// Starts the analysis controller for one namespace with `env` added to its environment (e.g.
/// `ARGO_ROLLOUTS_PROMETHEUS_ADDRESS`, the Prometheus address of metrics that name none); see
/// [`start_controller`].
pub async fn start_analysis_controller(
    ns: &mut TestNamespace,
    extra: &[&str],
    env: &[(&str, &str)],
) -> Result<(Process, u16)> {
    start_controller(ns, "analysis-controller", extra, env).await
}

/// A plain HTTP GET on loopback (enough for the admin endpoints): `(status, body)`.
pub async fn http_get(port: u16, path: &str) -> Result<(u16, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    stream
        .write_all(format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").as_bytes())
        .await?;
    let mut buf = Vec::new();
    stream.read_to_end(&mut buf).await?;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((status, body))
}

/// Lists objects of a kind in the namespace, by name.
pub async fn names<K>(api: &Api<K>) -> Result<Vec<String>>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    Ok(api
        .list(&ListParams::default())
        .await?
        .items
        .iter()
        .map(|o| o.name_any())
        .collect())
}

/// Runs `kubectl argo rollouts ARGS` against the test cluster in the namespace, with our plugin
/// binary first on PATH, exactly as a user would. Returns `(exit code, stdout, stderr)`.
pub async fn argo_rollouts(ns: &TestNamespace, args: &[&str]) -> Result<(i32, String, String)> {
    let kubectl = std::env::var("ARGO_RS_KUBECTL").unwrap_or_else(|_| "kubectl".into());
    let path = format!(
        "{}:{}",
        bin_dir()?.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = tokio::process::Command::new(&kubectl)
        .args(["argo", "rollouts"])
        .args(args)
        .args(["-n", &ns.name, "--kubeconfig"])
        .arg(kubeconfig_path()?)
        .env("PATH", path)
        .output()
        .await
        .with_context(|| format!("running {kubectl} argo rollouts"))?;
    Ok((
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

/// Runs `kubectl ARGS` against the test cluster in the namespace; fails unless it exits 0.
/// Returns its stdout.
pub async fn kubectl(ns: &TestNamespace, args: &[&str]) -> Result<String> {
    let kubectl = std::env::var("ARGO_RS_KUBECTL").unwrap_or_else(|_| "kubectl".into());
    let out = tokio::process::Command::new(&kubectl)
        .args(args)
        .args(["-n", &ns.name, "--kubeconfig"])
        .arg(kubeconfig_path()?)
        .output()
        .await
        .with_context(|| format!("running {kubectl}"))?;
    if !out.status.success() {
        bail!(
            "kubectl {} exited {}: {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Like [`argo_rollouts`], failing unless the command exits 0.
pub async fn argo(ns: &TestNamespace, args: &[&str]) -> Result<String> {
    let (code, stdout, stderr) = argo_rollouts(ns, args).await?;
    if code != 0 {
        bail!(
            "kubectl argo rollouts {} exited {code}: {stderr}{stdout}",
            args.join(" ")
        );
    }
    Ok(stdout)
}

/// The seed transcript of `get rollout` saved as a golden file of the plugin's tests.
pub fn transcript(name: &str) -> Result<String> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../kubectl-argo-rollouts/tests/golden")
        .join(format!("{name}.txt"));
    std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))
}

/// What of a `get rollout` output must match the seed transcript on a live cluster: the
/// header block verbatim (with the namespace substituted) and, for the Rollout, revision and
/// ReplicaSet rows, every column but AGE. Pod rows are left out (their names are random).
pub fn comparable_get_rollout(text: &str, namespace: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut lines = text.lines();
    for line in lines.by_ref() {
        if line.trim().is_empty() {
            break;
        }
        if line.starts_with("Namespace:") {
            out.push(format!("Namespace:       {namespace}"));
        } else {
            out.push(line.trim_end().to_string());
        }
    }
    for line in lines {
        if line.contains(" Pod ") || line.starts_with("NAME") || line.trim().is_empty() {
            continue;
        }
        let age = |t: &str| {
            !t.is_empty()
                && t.chars().all(|c| c.is_ascii_digit() || "smhd".contains(c))
                && t.chars().any(|c| c.is_ascii_digit())
        };
        let tokens: Vec<&str> = line
            .split_whitespace()
            .filter(|t| !t.chars().all(|c| "├└│─".contains(c)))
            .map(|t| t.trim_start_matches(|c| "├└│─".contains(c)))
            .filter(|t| !age(t))
            .collect();
        out.push(tokens.join(" "));
    }
    out
}

/// Waits until `kubectl argo rollouts get rollout NAME` matches the seed transcript `golden`.
pub async fn expect_get_rollout(ns: &TestNamespace, name: &str, golden: &str) -> Result<()> {
    let want = comparable_get_rollout(
        &transcript(golden)?.replace("Namespace:       default", "Namespace:       X"),
        &ns.name,
    );
    wait_until(
        &format!("`get rollout {name}` to match the seed transcript {golden}"),
        Duration::from_secs(60),
        || async {
            let got = argo(ns, &["get", "rollout", name]).await?;
            let comparable = comparable_get_rollout(&got, &ns.name);
            Ok(if comparable == want {
                Ok(())
            } else {
                Err(format!(
                    "\n{got}\nwant (ages and pods ignored):\n{}",
                    want.join("\n")
                ))
            })
        },
    )
    .await
}

/// The AnalysisRun rows of a `get rollout` tree, each as its columns without the tree drawing
/// and without AGE: `α NAME AnalysisRun ICON STATUS INFO...`, e.g.
/// `α mock-server-7c6fcfb847-2-2 AnalysisRun ✖ Failed ✖ 3`.
pub fn analysis_run_rows(get_rollout: &str) -> Vec<String> {
    get_rollout
        .lines()
        .filter(|line| line.contains(" AnalysisRun "))
        .map(|line| {
            let mut tokens: Vec<&str> = line
                .split_whitespace()
                .map(|t| t.trim_start_matches(|c| "├└│─".contains(c)))
                .filter(|t| !t.is_empty())
                .collect();
            // α NAME AnalysisRun ICON STATUS AGE INFO...
            if tokens.len() > 5 {
                tokens.remove(5);
            }
            tokens.join(" ")
        })
        .collect()
}

/// Starts the experiment controller for one namespace (see [`start_controller`]).
pub async fn start_experiment_controller(ns: &mut TestNamespace, extra: &[&str]) -> Result<(Process, u16)> {
    start_controller(ns, "experiment-controller", extra, &[]).await
}

/// Starts the notification controller for one namespace: its ConfigMap and Secret
/// (`argo-rollouts-notification-configmap`/`-secret`) in the test's namespace, short waits between
/// delivery attempts (see [`start_controller`]).
pub async fn start_notification_controller(ns: &mut TestNamespace, extra: &[&str]) -> Result<(Process, u16)> {
    let namespace = ns.name.clone();
    let mut flags = vec![
        "--notifications-namespace",
        &namespace,
        "--notification-retry-wait",
        "200ms",
    ];
    flags.extend_from_slice(extra);
    start_controller(ns, "notification-controller", &flags, &[]).await
}

/// A kubeconfig authenticating as `system:serviceaccount:<namespace>:<service_account>`: a
/// token from the TokenRequest API (valid for an hour) with the test cluster's server and CA,
/// written to a file in the temp dir. Returns its path. Lets a test run a controller with
/// exactly the permissions its Helm chart grants that ServiceAccount.
pub async fn service_account_kubeconfig(namespace: &str, service_account: &str) -> Result<PathBuf> {
    use k8s_openapi::api::{
        authentication::v1::{TokenRequest, TokenRequestSpec},
        core::v1::ServiceAccount,
    };
    let accounts: Api<ServiceAccount> = Api::namespaced(client().await?, namespace);
    let request = TokenRequest {
        spec: Some(TokenRequestSpec {
            expiration_seconds: Some(4 * 3600),
            ..Default::default()
        }),
        ..Default::default()
    };
    let token = accounts
        .create_token_request(service_account, &PostParams::default(), &request)
        .await
        .with_context(|| format!("requesting a token for {namespace}/{service_account}"))?
        .status
        .map(|s| s.token)
        .ok_or_else(|| anyhow!("the TokenRequest for {namespace}/{service_account} has no status"))?;
    let admin_path = kubeconfig_path()?;
    let admin = kube::config::Kubeconfig::read_from(&admin_path)
        .with_context(|| format!("reading {}", admin_path.display()))?;
    let cluster = admin
        .contexts
        .iter()
        .find(|c| Some(&c.name) == admin.current_context.as_ref())
        .and_then(|c| c.context.as_ref())
        .map(|c| c.cluster.clone())
        .ok_or_else(|| anyhow!("{} has no current context", admin_path.display()))?;
    let user = format!("system:serviceaccount:{namespace}:{service_account}");
    let config = serde_json::json!({
        "apiVersion": "v1", "kind": "Config",
        "clusters": serde_json::to_value(&admin.clusters)?,
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [{"name": user, "context": {"cluster": cluster, "user": user, "namespace": namespace}}],
        "current-context": user,
    });
    let path = std::env::temp_dir().join(format!(
        "argo-rs-e2e-{namespace}-{service_account}-{:08x}.kubeconfig",
        rand_suffix()
    ));
    std::fs::write(&path, serde_json::to_string_pretty(&config)?)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

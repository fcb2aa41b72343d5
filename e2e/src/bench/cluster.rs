//! The local control plane the benchmark starts (`e2e/cluster/up.sh` with `AUDIT_LOG=1`) and
//! the controller under test, run as a plain process from a command-line template.

use std::{
    path::{Path, PathBuf},
    process::{ExitStatus, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, anyhow, bail};
use serde::Serialize;

/// Pods a kwok Node can hold at most: up.sh gives each Node a /20 pod CIDR.
const MAX_PODS_PER_NODE: u64 = 4000;
/// Nodes up.sh can create (pod CIDRs 10.244.(16*i).0/20).
const MAX_NODES: u64 = 16;

/// How many kwok Nodes, of what capacity.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct NodeSizing {
    /// `KWOK_NODES`.
    pub nodes: u64,
    /// `KWOK_NODE_PODS`.
    pub pods_per_node: u64,
}

/// Nodes for `rollouts` Rollouts of `replicas` pods each, with room for the canary pods, the
/// surge and pods still terminating: `rollouts * (replicas + ceil(replicas / 2) + 1) + 100`
/// pods, on at least 3 Nodes of 1000.
pub fn size_nodes(rollouts: u64, replicas: u64) -> Result<NodeSizing> {
    let pods = rollouts * (replicas + replicas.div_ceil(2) + 1) + 100;
    let nodes = pods.div_ceil(1000).clamp(3, MAX_NODES);
    let pods_per_node = pods.div_ceil(nodes).max(1000);
    if pods_per_node > MAX_PODS_PER_NODE {
        bail!(
            "{pods} pods do not fit on {MAX_NODES} kwok nodes of {MAX_PODS_PER_NODE} pods (up.sh's pod CIDRs)"
        );
    }
    Ok(NodeSizing { nodes, pods_per_node })
}

/// A cluster started by up.sh; stopped by down.sh when dropped unless kept.
pub struct Cluster {
    /// up.sh's WORKDIR.
    pub workdir: PathBuf,
    /// `WORKDIR/kubeconfig`.
    pub kubeconfig: PathBuf,
    /// Leave it running at the end.
    pub keep: bool,
    scripts: PathBuf,
    stopped: bool,
}

impl Cluster {
    /// Runs `up.sh WORKDIR` with the audit log on, `sizing` kwok Nodes and KCM and the scheduler
    /// limited to `kube_qps` (with `scale_flags`, up.sh's `SCALE_FLAGS=1`: API server and etcd
    /// limits for thousands of objects), and waits for it (at most `timeout`).
    /// up.sh stops what it started when it fails or is interrupted.
    pub async fn up(
        repo: &Path,
        workdir: &Path,
        sizing: NodeSizing,
        kube_qps: u32,
        scale_flags: bool,
        k8s_bin: Option<&Path>,
        timeout: Duration,
    ) -> Result<Self> {
        let scripts = repo.join("e2e/cluster");
        let mut cmd = tokio::process::Command::new(scripts.join("up.sh"));
        cmd.arg(workdir)
            .env("AUDIT_LOG", "1")
            .env("KWOK_NODES", sizing.nodes.to_string())
            .env("KWOK_NODE_PODS", sizing.pods_per_node.to_string())
            .env("KUBE_CLIENT_QPS", kube_qps.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        if let Some(bin) = k8s_bin {
            cmd.env("ARGO_RS_BIN", bin);
        }
        if scale_flags {
            cmd.env("SCALE_FLAGS", "1");
        }
        let mut child = cmd.spawn().context("starting e2e/cluster/up.sh")?;
        let status = match tokio::time::timeout(timeout, child.wait()).await {
            Ok(status) => status?,
            Err(_) => {
                terminate(&mut child, Duration::from_secs(30)).await;
                bail!("e2e/cluster/up.sh did not finish in {timeout:?}");
            }
        };
        if !status.success() {
            bail!("e2e/cluster/up.sh failed ({status}); see the messages above");
        }
        Ok(Self {
            workdir: workdir.to_path_buf(),
            kubeconfig: workdir.join("kubeconfig"),
            keep: false,
            scripts,
            stopped: false,
        })
    }

    /// `WORKDIR/logs`.
    pub fn logs(&self) -> PathBuf {
        self.workdir.join("logs")
    }

    /// Runs down.sh (once).
    pub fn down(&mut self) -> Result<()> {
        if self.stopped {
            return Ok(());
        }
        self.stopped = true;
        let status = std::process::Command::new(self.scripts.join("down.sh"))
            .arg(&self.workdir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .status()
            .context("running e2e/cluster/down.sh")?;
        if !status.success() {
            bail!("e2e/cluster/down.sh {} failed ({status})", self.workdir.display());
        }
        Ok(())
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if !self.keep
            && let Err(e) = self.down()
        {
            eprintln!("scale-bench: {e:#}");
        }
    }
}

/// Sends SIGTERM (through `kill`, the workspace forbids unsafe code), waits up to `grace`, then
/// SIGKILL.
async fn terminate(child: &mut tokio::process::Child, grace: Duration) -> Option<ExitStatus> {
    if let Some(pid) = child.id() {
        let _ = tokio::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .await;
        if let Ok(Ok(status)) = tokio::time::timeout(grace, child.wait()).await {
            return Some(status);
        }
    }
    let _ = child.kill().await;
    child.try_wait().ok().flatten()
}

/// Values of the `{placeholders}` of a controller command line.
#[derive(Clone, Debug)]
pub struct Placeholders {
    /// `{kubeconfig}`: the cluster's kubeconfig.
    pub kubeconfig: PathBuf,
    /// `{namespace}`: the benchmark namespace.
    pub namespace: String,
    /// `{port}`: a free loopback port.
    pub port: u16,
    /// `{workdir}`: the cluster's WORKDIR.
    pub workdir: PathBuf,
    /// `{rust_bin}`: `<cargo target dir>/release`.
    pub rust_bin: PathBuf,
}

/// Splits a command line into words (whitespace separates; single quotes, double quotes and
/// backslashes work as in a POSIX shell, without expansions), then substitutes placeholders in
/// each word, so substituted paths never split.
pub fn expand_command(template: &str, values: &Placeholders) -> Result<Vec<String>> {
    let words = split_words(template)?;
    if words.is_empty() {
        bail!("the controller command is empty");
    }
    Ok(words
        .into_iter()
        .map(|w| {
            w.replace("{kubeconfig}", &values.kubeconfig.to_string_lossy())
                .replace("{namespace}", &values.namespace)
                .replace("{port}", &values.port.to_string())
                .replace("{workdir}", &values.workdir.to_string_lossy())
                .replace("{rust_bin}", &values.rust_bin.to_string_lossy())
        })
        .collect())
}

/// POSIX-like word splitting without expansions.
pub fn split_words(line: &str) -> Result<Vec<String>> {
    let mut words = Vec::new();
    let mut word: Option<String> = None;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {
                if let Some(w) = word.take() {
                    words.push(w);
                }
            }
            '\'' => {
                let w = word.get_or_insert_with(String::new);
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => w.push(c),
                        None => bail!("unterminated single quote in {line:?}"),
                    }
                }
            }
            '"' => {
                let w = word.get_or_insert_with(String::new);
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c @ ('"' | '\\' | '$' | '`')) => w.push(c),
                            Some(c) => {
                                w.push('\\');
                                w.push(c);
                            }
                            None => bail!("unterminated double quote in {line:?}"),
                        },
                        Some(c) => w.push(c),
                        None => bail!("unterminated double quote in {line:?}"),
                    }
                }
            }
            '\\' => {
                let w = word.get_or_insert_with(String::new);
                match chars.next() {
                    Some(c) => w.push(c),
                    None => bail!("trailing backslash in {line:?}"),
                }
            }
            c => word.get_or_insert_with(String::new).push(c),
        }
    }
    words.extend(word);
    Ok(words)
}

/// The controller under test, killed when dropped.
pub struct Controller {
    child: tokio::process::Child,
    /// The command line it runs.
    pub argv: Vec<String>,
    /// Its stdout and stderr.
    pub log: PathBuf,
    exit: Option<ExitStatus>,
}

impl Controller {
    /// Starts `argv` with `KUBECONFIG` set to the cluster's kubeconfig, output to `log`.
    pub fn start(argv: Vec<String>, kubeconfig: &Path, log: PathBuf) -> Result<Self> {
        let program = &argv[0];
        if program.contains('/') && !Path::new(program).exists() {
            let package = Path::new(program)
                .file_name()
                .map_or_else(|| "<controller>".into(), |f| f.to_string_lossy());
            bail!("{program} does not exist (for our controllers: cargo build -p {package} --release)");
        }
        let file = std::fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let child = tokio::process::Command::new(program)
            .args(&argv[1..])
            .env("KUBECONFIG", kubeconfig)
            .stdin(Stdio::null())
            .stdout(Stdio::from(file.try_clone()?))
            .stderr(Stdio::from(file))
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {program}"))?;
        Ok(Self {
            child,
            argv,
            log,
            exit: None,
        })
    }

    /// Its process id, while it runs.
    pub fn id(&self) -> Option<u32> {
        if self.exit.is_some() {
            None
        } else {
            self.child.id()
        }
    }

    /// Fails if the process has exited, with the tail of its log.
    pub fn check_alive(&mut self) -> Result<()> {
        if self.exit.is_none() {
            self.exit = self.child.try_wait()?;
        }
        match self.exit {
            None => Ok(()),
            Some(status) => {
                let text = std::fs::read_to_string(&self.log).unwrap_or_default();
                let tail: Vec<&str> = text.lines().rev().take(20).collect();
                let tail: Vec<&str> = tail.into_iter().rev().collect();
                Err(anyhow!(
                    "the controller exited ({status}); last lines of {}:\n{}",
                    self.log.display(),
                    tail.join("\n")
                ))
            }
        }
    }

    /// Waits until `GET http://127.0.0.1:PORT/PATH` answers 200, or only checks that the process
    /// stays up for a second when there is no port or path.
    pub async fn wait_ready(&mut self, probe: Option<(u16, &str)>, timeout: Duration) -> Result<()> {
        let start = Instant::now();
        let Some((port, path)) = probe else {
            tokio::time::sleep(Duration::from_secs(1)).await;
            return self.check_alive();
        };
        loop {
            self.check_alive()?;
            if let Ok((200, _)) = crate::http_get(port, path).await {
                return Ok(());
            }
            if start.elapsed() > timeout {
                bail!("the controller did not answer 200 on http://127.0.0.1:{port}{path} in {timeout:?}");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// SIGTERM, then SIGKILL after 10 s.
    pub async fn stop(&mut self) {
        if self.exit.is_none() {
            self.exit = terminate(&mut self.child, Duration::from_secs(10)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_split_like_a_shell() {
        assert_eq!(
            split_words(r#"  a 'b c' "d \"e\" \x" f\ g h''i "" "#).unwrap(),
            vec!["a", "b c", r#"d "e" \x"#, "f g", "hi", ""]
        );
        assert!(split_words("a 'b").is_err());
        assert!(split_words("a \"b").is_err());
    }

    #[test]
    fn placeholders_are_substituted_per_word() {
        let values = Placeholders {
            kubeconfig: "/tmp/w x/kubeconfig".into(),
            namespace: "ns".into(),
            port: 1234,
            workdir: "/tmp/w x".into(),
            rust_bin: "/t/release".into(),
        };
        let argv = expand_command(
            "{rust_bin}/rollout-controller --kubeconfig {kubeconfig} --metrics-addr 127.0.0.1:{port} -n={namespace}",
            &values,
        )
        .unwrap();
        assert_eq!(
            argv,
            vec![
                "/t/release/rollout-controller",
                "--kubeconfig",
                "/tmp/w x/kubeconfig",
                "--metrics-addr",
                "127.0.0.1:1234",
                "-n=ns"
            ]
        );
    }

    #[test]
    fn node_sizing_fits_the_pods() {
        assert_eq!(
            size_nodes(100, 2).unwrap(),
            NodeSizing {
                nodes: 3,
                pods_per_node: 1000
            }
        );
        let s = size_nodes(500, 2).unwrap();
        assert!(s.nodes * s.pods_per_node >= 500 * 4);
        let s = size_nodes(10_000, 3).unwrap();
        assert_eq!(s.nodes, 16);
        assert!(s.nodes * s.pods_per_node >= 10_000 * 6 && s.pods_per_node <= 4000);
        assert!(size_nodes(20_000, 3).is_err());
    }
}

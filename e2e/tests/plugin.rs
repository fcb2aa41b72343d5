//! The `kubectl argo rollouts` plugin against the real cluster: the live view redrawn in a real
//! terminal (tmux), `status`/`wait` exit codes, and its error paths (unknown rollout, wrong
//! container, unreachable cluster, RBAC denial).

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use e2e::{
    TestNamespace, argo, argo_rollouts, bin_dir, kubeconfig_path, start_rollout_controller, wait_until,
    with_namespace,
};
use serde_json::json;

const TIMEOUT: Duration = Duration::from_secs(60);
const MANIFEST: &str =
    include_str!("../../examples/seed/manifest12-canary-with-undo-and-abort-test-case.yaml");

async fn healthy(ns: &TestNamespace) -> Result<()> {
    wait_until("rollout Healthy", TIMEOUT, || async {
        let (code, out, _) = argo_rollouts(ns, &["status", "mock-server", "--timeout", "1s"]).await?;
        Ok(if code == 0 && out.contains("Healthy") {
            Ok(())
        } else {
            Err(out)
        })
    })
    .await
}

fn tmux(args: &[&str]) -> Result<String> {
    let out = std::process::Command::new("tmux")
        .args(args)
        .output()
        .context("running tmux (install it: apt-get install tmux)")?;
    ensure!(
        out.status.success(),
        "tmux {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Kills the tmux session when the test ends, however it ends.
struct Session(String);

impl Drop for Session {
    fn drop(&mut self) {
        let _ = std::process::Command::new("tmux")
            .args(["kill-session", "-t", &self.0])
            .output();
    }
}

#[tokio::test]
#[ignore = "needs the local cluster: run scripts/test.sh"]
async fn get_rollout_watch_redraws_in_place_in_a_terminal() -> Result<()> {
    with_namespace("watch", async |ns| {
        let (_c, _) = start_rollout_controller(ns, &[]).await?;
        ns.apply(MANIFEST).await?;
        healthy(ns).await?;
        let kubectl = std::env::var("ARGO_RS_KUBECTL").unwrap_or_else(|_| "kubectl".into());
        let command = format!(
            "PATH={}:$PATH {kubectl} argo rollouts get rollout mock-server --watch -n {} --kubeconfig {}",
            bin_dir()?.display(),
            ns.name,
            kubeconfig_path()?.display()
        );
        let session = Session(ns.name.clone());
        tmux(&[
            "new-session",
            "-d",
            "-s",
            &session.0,
            "-x",
            "160",
            "-y",
            "60",
            &command,
        ])?;
        let screen = || tmux(&["capture-pane", "-p", "-t", &session.0]);
        wait_until("the watch shows the healthy rollout", TIMEOUT, || async {
            let s = screen()?;
            Ok(if s.contains("Status:          ✔ Healthy") {
                Ok(())
            } else {
                Err(s)
            })
        })
        .await?;
        argo(
            ns,
            &[
                "set",
                "image",
                "mock-server",
                "mock-server=ghcr.io/ssup2/mock-go-server:2.0.0",
            ],
        )
        .await?;
        wait_until("the same screen shows the paused canary", TIMEOUT, || async {
            let s = screen()?;
            let redrawn = s.matches("Name:").count() == 1
                && s.contains("Status:          ॥ Paused")
                && s.contains("mock-server-7c6fcfb847");
            Ok(if redrawn { Ok(()) } else { Err(s) })
        })
        .await?;
        let s = screen()?;
        ensure!(
            !s.contains("Rollout     ✔ Healthy"),
            "the old state must be gone from the screen after the redraw:\n{s}"
        );
        Ok(())
    })
    .await
}

#[tokio::test]
#[ignore = "needs the local cluster: run scripts/test.sh"]
async fn status_and_wait_exit_codes() -> Result<()> {
    with_namespace("status", async |ns| {
        let (_c, _) = start_rollout_controller(ns, &[]).await?;
        ns.apply(MANIFEST).await?;
        healthy(ns).await?;
        argo(
            ns,
            &[
                "set",
                "image",
                "mock-server",
                "mock-server=ghcr.io/ssup2/mock-go-server:2.0.0",
            ],
        )
        .await?;
        let (code, out, _) =
            argo_rollouts(ns, &["wait", "mock-server", "--for=paused", "--timeout", "60s"]).await?;
        ensure!(code == 0, "wait --for=paused exited {code}: {out}");
        let (code, _, _) =
            argo_rollouts(ns, &["wait", "mock-server", "--for=step=1", "--timeout", "30s"]).await?;
        ensure!(code == 0, "wait --for=step=1 exited {code}");
        // Paused: status --timeout ends without success.
        let (code, out, _) = argo_rollouts(ns, &["status", "mock-server", "--timeout", "2s"]).await?;
        ensure!(code != 0, "status of a paused rollout must not succeed: {out}");
        let (code, _, _) =
            argo_rollouts(ns, &["wait", "mock-server", "--for=healthy", "--timeout", "2s"]).await?;
        ensure!(code == 4, "wait timing out exits 4, got {code}");
        argo(ns, &["abort", "mock-server"]).await?;
        let (code, out, _) = argo_rollouts(ns, &["status", "mock-server", "--timeout", "30s"]).await?;
        ensure!(
            code != 0 && out.contains("Degraded"),
            "status of an aborted rollout: {code} {out}"
        );
        let (code, _, _) =
            argo_rollouts(ns, &["wait", "mock-server", "--for=degraded", "--timeout", "30s"]).await?;
        ensure!(code == 0, "wait --for=degraded exited {code}");
        let (code, _, _) =
            argo_rollouts(ns, &["wait", "mock-server", "--for=healthy", "--timeout", "30s"]).await?;
        ensure!(
            code == 3,
            "wait --for=healthy on a degraded rollout exits 3, got {code}"
        );
        Ok(())
    })
    .await
}

#[tokio::test]
#[ignore = "needs the local cluster: run scripts/test.sh"]
async fn errors_are_one_clear_line_with_non_zero_exit() -> Result<()> {
    with_namespace("errors", async |ns| {
        ns.apply(MANIFEST).await?;
        let (code, out, err) = argo_rollouts(ns, &["get", "rollout", "nope"]).await?;
        ensure!(code != 0 && err.trim() == "Error: rollouts.argoproj.io \"nope\" not found", "unknown rollout: {code} {out}{err}");
        let (code, _, err) = argo_rollouts(ns, &["set", "image", "mock-server", "wrong=img:1"]).await?;
        ensure!(code != 0 && err.trim() == "Error: unable to find container named \"wrong\"", "wrong container: {code} {err}");
        let (code, _, err) = argo_rollouts(ns, &["promote"]).await?;
        ensure!(code != 0 && err.contains("NAME") || err.contains("required"), "missing argument: {code} {err}");

        // RBAC: a ServiceAccount with no permissions.
        ns.apply("apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: nobody}\n").await?;
        let kubectl = std::env::var("ARGO_RS_KUBECTL").unwrap_or_else(|_| "kubectl".into());
        let token = std::process::Command::new(&kubectl)
            .arg("--kubeconfig")
            .arg(kubeconfig_path()?)
            .args(["-n", &ns.name, "create", "token", "nobody"])
            .output()?;
        ensure!(token.status.success(), "kubectl create token: {}", String::from_utf8_lossy(&token.stderr));
        let token = String::from_utf8_lossy(&token.stdout).trim().to_string();
        let admin: serde_json::Value = serde_saphyr::from_str(&std::fs::read_to_string(kubeconfig_path()?)?)?;
        let cluster = admin["clusters"][0]["cluster"].clone();
        let restricted = json!({
            "apiVersion": "v1", "kind": "Config", "current-context": "nobody",
            "clusters": [{"name": "c", "cluster": cluster}],
            "users": [{"name": "nobody", "user": {"token": token}}],
            "contexts": [{"name": "nobody", "context": {"cluster": "c", "user": "nobody", "namespace": ns.name}}],
        });
        let path = std::env::temp_dir().join(format!("{}-nobody.kubeconfig", ns.name));
        std::fs::write(&path, serde_json::to_string(&restricted)?)?;
        let plugin = bin_dir()?.join("kubectl-argo-rollouts");
        let out = std::process::Command::new(&plugin).args(["get", "rollout", "mock-server", "--kubeconfig"]).arg(&path).output()?;
        let err = String::from_utf8_lossy(&out.stderr);
        ensure!(!out.status.success() && err.lines().count() == 1 && err.starts_with("Error: ") && err.contains("forbidden"), "forbidden: {err}");

        // No cluster reachable: a kubeconfig pointing at a closed port.
        let port = e2e::free_port()?;
        let mut dead = restricted.clone();
        dead["clusters"][0]["cluster"]["server"] = json!(format!("https://127.0.0.1:{port}"));
        std::fs::write(&path, serde_json::to_string(&dead)?)?;
        let out = std::process::Command::new(&plugin).args(["get", "rollout", "mock-server", "--kubeconfig"]).arg(&path).output()?;
        let err = String::from_utf8_lossy(&out.stderr);
        ensure!(!out.status.success() && err.lines().count() == 1 && err.starts_with("Error: "), "unreachable: {err}");
        let _ = std::fs::remove_file(&path);
        Ok(())
    })
    .await
}

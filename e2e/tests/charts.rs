//! The Helm charts under `charts/`: `helm lint` and `helm template` of every chart with its
//! default values and with `ci/all-values.yaml` (every option set), the schema's messages for bad
//! values, and on the local control plane: `helm install` of every chart, then each controller
//! run as a local process authenticated as its chart's ServiceAccount (a TokenRequest token in a
//! kubeconfig of its own) through a canary with an analysis step (web metric with a
//! `secretKeyRef` argument), an experiment step and a webhook notification configured through
//! the notification chart, and `kubectl auth can-i` showing what each ServiceAccount may not do.
//!
//! helm is `ARGO_RS_HELM`, else the `helm` next to `ARGO_RS_KUBECTL` (both built by
//! `e2e/cluster/build-deps.sh`), else `helm` on `PATH`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::{
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::Duration,
};

use anyhow::{Context as _, Result, bail, ensure};
use axum::{
    Json, Router,
    extract::State,
    http::{HeaderMap, StatusCode},
    routing::{any, get},
};
use e2e::{
    Process, TestNamespace, free_port, helm_bin, http_server, kubeconfig_path,
    rollout_ops::{set_image, status, wait_phase},
    service_account_kubeconfig, wait_for, wait_until, with_namespace,
};
use k8s_openapi::api::coordination::v1::Lease;
use kube::{Api, ResourceExt, api::ListParams};
use serde_json::{Value, json};
use shared_types::{
    analysis::{AnalysisPhase, AnalysisRun},
    experiment::Experiment,
};

const CONTROLLERS: [&str; 4] = [
    "rollout-controller",
    "analysis-controller",
    "experiment-controller",
    "notification-controller",
];
const TIMEOUT: Duration = Duration::from_secs(120);

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace root")
        .to_path_buf()
}

fn chart(name: &str) -> String {
    repo().join("charts").join(name).display().to_string()
}

fn all_values(name: &str) -> String {
    repo()
        .join("charts")
        .join(name)
        .join("ci/all-values.yaml")
        .display()
        .to_string()
}

/// Runs a command: `(success, stdout, stderr)`.
async fn run(program: &Path, args: &[&str]) -> Result<(bool, String, String)> {
    let out = tokio::process::Command::new(program)
        .args(args)
        .output()
        .await
        .with_context(|| format!("running {}", program.display()))?;
    Ok((
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

/// `helm ARGS`, failing unless it exits 0; its stdout.
async fn helm(args: &[&str]) -> Result<String> {
    let (ok, stdout, stderr) = run(&helm_bin(), args).await?;
    if !ok {
        bail!("helm {} failed: {stderr}{stdout}", args.join(" "));
    }
    Ok(stdout)
}

/// `helm ARGS` that must fail; its stderr and stdout (`helm lint` prints its findings there).
async fn helm_fails(args: &[&str]) -> Result<String> {
    let (ok, stdout, stderr) = run(&helm_bin(), args).await?;
    ensure!(!ok, "helm {} succeeded: {stdout}", args.join(" "));
    Ok(format!("{stderr}{stdout}"))
}

/// The documents `helm template` renders.
async fn template(args: &[&str]) -> Result<Vec<Value>> {
    let mut all = vec!["template", "t", "--namespace", "argo-rollouts"];
    all.extend_from_slice(args);
    let text = helm(&all).await?;
    Ok(serde_saphyr::from_multiple::<Value>(&text)
        .context("parsing helm template output")?
        .into_iter()
        .filter(|d| !d.is_null())
        .collect())
}

fn of_kind<'a>(docs: &'a [Value], kind: &str) -> Vec<&'a Value> {
    docs.iter().filter(|d| d["kind"] == kind).collect()
}

fn one<'a>(docs: &'a [Value], kind: &str) -> &'a Value {
    let found = of_kind(docs, kind);
    assert_eq!(found.len(), 1, "expected one {kind}, got {}", found.len());
    found[0]
}

fn container(docs: &[Value]) -> Value {
    one(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0].clone()
}

fn args(docs: &[Value]) -> Vec<String> {
    container(docs)["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_string())
        .collect()
}

/// Every `(apiGroup, resource, verb)` a set of rules grants (resourceNames ignored).
fn grants(roles: &[&Value]) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for role in roles {
        for rule in role["rules"].as_array().unwrap() {
            for group in rule["apiGroups"].as_array().unwrap() {
                for resource in rule["resources"].as_array().unwrap() {
                    for verb in rule["verbs"].as_array().unwrap() {
                        out.push((
                            group.as_str().unwrap().to_string(),
                            resource.as_str().unwrap().to_string(),
                            verb.as_str().unwrap().to_string(),
                        ));
                    }
                }
            }
        }
    }
    out
}

fn app_version(name: &str) -> String {
    let text = std::fs::read_to_string(repo().join("charts").join(name).join("Chart.yaml")).unwrap();
    let chart: Value = serde_saphyr::from_str(&text).unwrap();
    chart["appVersion"].as_str().unwrap().to_string()
}

#[tokio::test]
#[ignore = "needs helm (e2e/cluster/build-deps.sh): run scripts/test.sh"]
async fn every_chart_lints_renders_and_rejects_bad_values() -> Result<()> {
    // The CRD chart: the generated files under crds/ are its only content.
    let crd_chart = chart("argo-rollouts-crds");
    helm(&["lint", "--strict", &crd_chart]).await?;
    let crds = template(&[&crd_chart, "--include-crds"]).await?;
    let mut names: Vec<String> = crds
        .iter()
        .map(|d| d["metadata"]["name"].as_str().unwrap().to_string())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "analysisruns.argoproj.io",
            "analysistemplates.argoproj.io",
            "clusteranalysistemplates.argoproj.io",
            "experiments.argoproj.io",
            "rollouts.argoproj.io"
        ]
    );
    assert!(crds.iter().all(|d| d["kind"] == "CustomResourceDefinition"));

    for name in CONTROLLERS {
        let path = chart(name);
        let every = all_values(name);
        let lint = helm(&["lint", "--strict", &path]).await?;
        ensure!(lint.contains("0 chart(s) failed"), "{name}: {lint}");
        let lint = helm(&["lint", "--strict", &path, "-f", &every]).await?;
        ensure!(lint.contains("0 chart(s) failed"), "{name} all values: {lint}");

        // Defaults: the image of scripts/images.sh, one replica without leader election
        // (Recreate), cluster-wide RBAC, hardened Pod, probes on the admin port.
        let docs = template(&[&path]).await?;
        let c = container(&docs);
        assert_eq!(
            c["image"],
            format!("ghcr.io/argo-rollouts-rs/{name}:{}", app_version(name)),
            "{name}"
        );
        let sc = &c["securityContext"];
        assert_eq!(sc["runAsNonRoot"], true, "{name}");
        assert_eq!(sc["readOnlyRootFilesystem"], true, "{name}");
        assert_eq!(sc["allowPrivilegeEscalation"], false, "{name}");
        assert_eq!(sc["capabilities"]["drop"], json!(["ALL"]), "{name}");
        assert_eq!(sc["seccompProfile"]["type"], "RuntimeDefault", "{name}");
        let pod = &one(&docs, "Deployment")["spec"]["template"]["spec"];
        assert_eq!(pod["securityContext"]["runAsNonRoot"], true, "{name}");
        assert_eq!(pod["securityContext"]["seccompProfile"]["type"], "RuntimeDefault");
        assert_eq!(
            c["livenessProbe"]["httpGet"],
            json!({"path": "/healthz", "port": "healthz"})
        );
        assert_eq!(
            c["readinessProbe"]["httpGet"],
            json!({"path": "/readyz", "port": "healthz"})
        );
        assert!(
            c["resources"]["requests"]["memory"].is_string(),
            "{name}: no resources"
        );
        let a = args(&docs);
        for flag in [
            "--healthz-addr=0.0.0.0:8080",
            "--metrics-addr=0.0.0.0:8090",
            "--loglevel=info",
            "--logformat=text",
            "--leader-elect=false",
        ] {
            ensure!(a.iter().any(|x| x == flag), "{name}: {flag} missing from {a:?}");
        }
        ensure!(!a.iter().any(|x| x.starts_with("--namespace")), "{name}: {a:?}");
        assert_eq!(one(&docs, "Deployment")["spec"]["strategy"]["type"], "Recreate");
        assert_eq!(one(&docs, "Service")["spec"]["ports"][0]["port"], 8090);
        assert_eq!(one(&docs, "PodDisruptionBudget")["spec"]["maxUnavailable"], 1);
        assert!(of_kind(&docs, "ServiceMonitor").is_empty());
        one(&docs, "ServiceAccount");
        one(&docs, "ClusterRoleBinding");
        let cluster_grants = grants(&of_kind(&docs, "ClusterRole"));
        // Only the analysis controller (secretKeyRef) reads Secrets cluster-wide; the
        // notification controller only its own, by name, in its namespace (a Role).
        let reads_secrets = cluster_grants.iter().any(|(_, r, _)| r == "secrets");
        assert_eq!(
            reads_secrets,
            name == "analysis-controller",
            "{name}: {cluster_grants:?}"
        );
        // No wildcards anywhere.
        let all_grants = grants(&[of_kind(&docs, "ClusterRole"), of_kind(&docs, "Role")].concat());
        ensure!(
            !all_grants
                .iter()
                .any(|(g, r, v)| g == "*" || r == "*" || v == "*"),
            "{name}: wildcard in {all_grants:?}"
        );
        match name {
            "analysis-controller" => ensure!(
                !all_grants.iter().any(|(_, r, _)| r.starts_with("rollouts")),
                "the analysis controller touches Rollouts: {all_grants:?}"
            ),
            "notification-controller" => {
                let role = one(&docs, "Role");
                let secrets: Vec<&Value> = role["rules"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter(|r| r["resources"] == json!(["secrets"]))
                    .collect();
                assert_eq!(secrets.len(), 1);
                assert_eq!(
                    secrets[0]["resourceNames"],
                    json!(["argo-rollouts-notification-secret"])
                );
            }
            _ => {}
        }
        // Two replicas: leader election on, with its Lease in the release namespace.
        let docs = template(&[&path, "--set", "replicas=2"]).await?;
        let a = args(&docs);
        ensure!(a.iter().any(|x| x == "--leader-elect=true"), "{name}: {a:?}");
        ensure!(a.iter().any(|x| x == "--leader-election-namespace=argo-rollouts"));
        assert!(one(&docs, "Deployment")["spec"]["strategy"].is_null(), "{name}");
        let leases = grants(&of_kind(&docs, "Role"));
        ensure!(
            leases.contains(&("coordination.k8s.io".into(), "leases".into(), "update".into())),
            "{name}: {leases:?}"
        );

        // Every option set.
        let docs = template(&[&path, "-f", &every]).await?;
        let a = args(&docs);
        for flag in [
            "--healthz-addr=0.0.0.0:9080",
            "--metrics-addr=0.0.0.0:9090",
            "--loglevel=debug",
            "--logformat=json",
            "--instance-id=team-a",
            "--namespace=apps",
        ] {
            ensure!(a.iter().any(|x| x == flag), "{name}: {flag} missing from {a:?}");
        }
        ensure!(
            a.iter().any(|x| x.ends_with("-threads=20")),
            "{name}: extra arg missing: {a:?}"
        );
        if name == "analysis-controller" {
            for flag in [
                "--sharding",
                "--shard-lease-duration=12s",
                "--shard-renew-period=3s",
                "--shard-handoff=4s",
                "--provider-timeout-seconds=30",
            ] {
                ensure!(a.iter().any(|x| x == flag), "{flag} missing from {a:?}");
            }
            ensure!(!a.iter().any(|x| x.starts_with("--leader-elect=")), "{a:?}");
        } else {
            ensure!(a.iter().any(|x| x == "--leader-elect=true"), "{name}: {a:?}");
            ensure!(a.iter().any(|x| x == "--leader-election-lease-duration=20s"));
        }
        assert_eq!(
            container(&docs)["image"],
            format!("registry.example.com/argo-rollouts-rs/{name}:0.1.0-test")
        );
        assert_eq!(
            one(&docs, "ServiceMonitor")["metadata"]["namespace"],
            "monitoring"
        );
        assert_eq!(one(&docs, "PodDisruptionBudget")["spec"]["minAvailable"], 2);
        assert_eq!(
            one(&docs, "ServiceAccount")["metadata"]["name"],
            format!("{name}-sa")
        );
        // Namespaced mode: a Role in the watched namespace instead of the ClusterRole; only
        // ClusterAnalysisTemplates (cluster-scoped) stay in a ClusterRole.
        let roles = of_kind(&docs, "Role");
        ensure!(
            roles.iter().any(|r| r["metadata"]["namespace"] == "apps"),
            "{name}: no Role in the watched namespace"
        );
        let cluster = grants(&of_kind(&docs, "ClusterRole"));
        ensure!(
            cluster.iter().all(|(_, r, _)| r == "clusteranalysistemplates"),
            "{name}: cluster-wide grants in namespaced mode: {cluster:?}"
        );
        if name == "notification-controller" {
            let cm = of_kind(&docs, "ConfigMap");
            assert_eq!(cm[0]["metadata"]["name"], "argo-rollouts-notification-configmap");
            assert_eq!(
                one(&docs, "Secret")["metadata"]["name"],
                "argo-rollouts-notification-secret"
            );
        }

        // Bad values fail with the schema's message.
        let err = helm_fails(&["template", "t", &path, "--set", "replicas=-1"]).await?;
        ensure!(
            err.contains("values don't meet the specifications of the schema")
                && err.contains(&format!("{name}:"))
                && err.contains("at '/replicas': minimum: got -1, want 0"),
            "{name}: {err}"
        );
        let err = helm_fails(&["template", "t", &path, "--set", "logLevel=verbose"]).await?;
        ensure!(
            err.contains("at '/logLevel': value must be one of 'trace', 'debug', 'info', 'warn', 'error'"),
            "{name}: {err}"
        );
        let err = helm_fails(&["template", "t", &path, "--set", "logFormat=xml"]).await?;
        ensure!(err.contains("at '/logFormat'"), "{name}: {err}");
        let err = helm_fails(&["lint", &path, "--set", "watchNamespace=Not_A_Namespace"]).await?;
        ensure!(err.contains("/watchNamespace"), "{name}: {err}");
    }
    Ok(())
}

/// What the local receivers got: webhook requests `(path, Authorization)`.
#[derive(Clone, Default)]
struct Receivers {
    hooks: Arc<Mutex<Vec<(String, String)>>>,
}

fn authorization(headers: &HeaderMap) -> String {
    headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

/// A web metric answering `{"ok": 1}` only to the bearer token kept in the app's Secret (so an
/// unresolved `secretKeyRef` fails the analysis), and a webhook receiver.
async fn receivers() -> (Receivers, String) {
    let r = Receivers::default();
    let router = Router::new()
        .route(
            "/health",
            get(|headers: HeaderMap| async move {
                let ok = i64::from(authorization(&headers) == "Bearer web-e2e-secret");
                Json(json!({ "ok": ok }))
            }),
        )
        .route(
            "/hooks/plain",
            any(|State(r): State<Receivers>, headers: HeaderMap| async move {
                r.hooks
                    .lock()
                    .unwrap()
                    .push(("/hooks/plain".into(), authorization(&headers)));
                StatusCode::OK
            }),
        )
        .with_state(r.clone());
    let addr = http_server::serve(router).await;
    (r, format!("http://{addr}"))
}

/// A controller process using only the kubeconfig of its chart's ServiceAccount.
async fn start_as(
    app: &mut TestNamespace,
    binary: &str,
    kubeconfig: &Path,
    extra: &[String],
) -> Result<Process> {
    let port = free_port()?;
    let mut args = vec![
        "--kubeconfig".to_string(),
        kubeconfig.display().to_string(),
        "--namespace".into(),
        app.name.clone(),
        "--metrics-addr".into(),
        format!("127.0.0.1:{port}"),
        "--healthz-addr".into(),
        format!("127.0.0.1:{port}"),
        "--loglevel".into(),
        format!("info,{}=debug", binary.replace('-', "_")),
    ];
    args.extend_from_slice(extra);
    let mut process = Process::start(binary, &args)?;
    app.attach_log(process.log.clone());
    process.wait_ready(port, Duration::from_secs(60)).await?;
    Ok(process)
}

/// `kubectl auth can-i VERB RESOURCE[/NAME] -n NS --as=system:serviceaccount:SA_NS:SA`;
/// `RESOURCE:SUB` asks about a subresource (`--subresource=SUB`). Empty `ns`: all namespaces.
async fn can_i(sa_ns: &str, sa: &str, verb: &str, resource: &str, ns: &str) -> Result<bool> {
    let kubectl = PathBuf::from(std::env::var("ARGO_RS_KUBECTL").unwrap_or_else(|_| "kubectl".into()));
    let kubeconfig = kubeconfig_path()?.display().to_string();
    let who = format!("--as=system:serviceaccount:{sa_ns}:{sa}");
    let (resource, sub) = match resource.split_once(':') {
        Some((r, sub)) => (r, format!("--subresource={sub}")),
        None => (resource, String::new()),
    };
    let mut args = vec!["--kubeconfig", &kubeconfig, "auth", "can-i", verb, resource, &who];
    if !sub.is_empty() {
        args.push(&sub);
    }
    if ns.is_empty() {
        args.push("--all-namespaces");
    } else {
        args.extend(["-n", ns]);
    }
    let (ok, stdout, stderr) = run(&kubectl, &args).await?;
    match stdout.trim() {
        "yes" if ok => Ok(true),
        "no" if !ok => Ok(false),
        other => bail!("kubectl {}: {other} {stderr}", args.join(" ")),
    }
}

fn analysis_template() -> Value {
    json!({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "AnalysisTemplate",
        "metadata": {"name": "authorized"},
        "spec": {
            "args": [{"name": "token", "valueFrom": {"secretKeyRef": {"name": "web-credentials", "key": "token"}}}],
            "metrics": [{
                "name": "authorized", "interval": "1s", "count": 2,
                "successCondition": "result == 1",
                "provider": {"web": {
                    "url": "URL/health",
                    "headers": [{"key": "Authorization", "value": "Bearer {{args.token}}"}],
                    "jsonPath": "{$.ok}"
                }}
            }]
        }
    })
}

/// A canary with an analysis step and an experiment step (with the same analysis), subscribed
/// to `on-rollout-completed` through the webhook `hooks`.
fn rollout() -> Value {
    json!({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
        "metadata": {"name": "web", "annotations": {
            "notifications.argoproj.io/subscribe.on-rollout-completed.hooks": ""
        }},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": "ghcr.io/ssup2/mock-go-server:1.0.0"}]}
            },
            "strategy": {"canary": {"steps": [
                {"setWeight": 50},
                {"analysis": {"templates": [{"templateName": "authorized"}]}},
                {"experiment": {
                    "duration": "5s",
                    "templates": [
                        {"name": "stable", "specRef": "stable", "replicas": 1},
                        {"name": "canary", "specRef": "canary", "replicas": 1}
                    ],
                    "analyses": [{"name": "authorized", "templateName": "authorized"}]
                }},
                {"setWeight": 100}
            ]}}
        }
    })
}

#[tokio::test]
#[ignore = "needs the local cluster: run scripts/test.sh"]
async fn charts_install_and_each_controller_runs_with_exactly_its_charts_rbac() -> Result<()> {
    with_namespace("charts", async |sys| {
        let sys_ns = sys.name.clone();
        let suffix = sys_ns.rsplit('-').next().unwrap().to_string();
        let kubeconfig = kubeconfig_path()?.display().to_string();
        let release = |name: &str| format!("{name}-{suffix}");
        let (receivers, base) = receivers().await;
        let result = with_namespace("charts-app", async |app| {
            // b) helm install of every chart, cluster-wide mode, into the system namespace.
            let values = std::env::temp_dir().join(format!("argo-rs-e2e-notification-values-{suffix}.json"));
            std::fs::write(
                &values,
                serde_json::to_string(&json!({
                    "notifications": {
                        "configMap": {"create": true, "data": {
                            "service.webhook.hooks": format!(
                                "url: {base}/hooks/plain\nheaders:\n- name: Authorization\n  value: Bearer $hook-token\n"
                            )
                        }},
                        "secret": {"create": true, "stringData": {"hook-token": "hook-e2e-secret"}}
                    }
                }))?,
            )?;
            let values = values.display().to_string();
            for name in CONTROLLERS {
                let rel = release(name);
                let path = chart(name);
                let mut args = vec![
                    "install", &rel, &path, "-n", &sys_ns, "--kubeconfig", &kubeconfig,
                    "--wait", "--timeout", "120s",
                ];
                match name {
                    "analysis-controller" => args.extend(["--set", "sharding.enabled=true"]),
                    "notification-controller" => {
                        args.extend(["--set", "leaderElection.enabled=true", "-f", &values]);
                    }
                    _ => args.extend(["--set", "leaderElection.enabled=true"]),
                }
                let out = helm(&args).await?;
                ensure!(out.contains("STATUS: deployed"), "{name}: {out}");
            }
            // Namespaced mode: a second rollout controller release watching only the app namespace.
            let namespaced = format!("ns-{}", release("rollout-controller"));
            let watch = format!("watchNamespace={}", app.name);
            helm(&[
                "install", &namespaced, &chart("rollout-controller"), "-n", &sys_ns, "--kubeconfig", &kubeconfig,
                "--set", &watch,
            ])
            .await?;
            let listed = helm(&["list", "-n", &sys_ns, "--kubeconfig", &kubeconfig, "-q"]).await?;
            for name in CONTROLLERS {
                ensure!(listed.lines().any(|l| l == release(name)), "{listed}");
            }

            // c) Every controller as a local process with its ServiceAccount's token.
            let mut processes = Vec::new();
            for name in CONTROLLERS {
                let sa_kubeconfig = service_account_kubeconfig(&sys_ns, &release(name)).await?;
                let mut extra = vec![format!("--leader-election-namespace={sys_ns}")];
                match name {
                    "analysis-controller" => extra.push("--sharding".into()),
                    "notification-controller" => {
                        extra.push("--leader-elect=true".into());
                        extra.push(format!("--notifications-namespace={sys_ns}"));
                        extra.push("--notification-retry-wait=200ms".into());
                    }
                    _ => extra.push("--leader-elect=true".into()),
                }
                processes.push(start_as(app, name, &sa_kubeconfig, &extra).await?);
            }

            app.apply_value(json!({
                "apiVersion": "v1", "kind": "Secret",
                "metadata": {"name": "web-credentials"},
                "stringData": {"token": "web-e2e-secret"}
            }))
            .await?;
            let template = analysis_template().to_string().replace("URL", &base);
            app.apply_value(serde_json::from_str(&template)?).await?;
            app.apply_value(rollout()).await?;
            wait_phase(app, "web", "Healthy").await?;
            set_image(app, "web", "ghcr.io/ssup2/mock-go-server:2.0.0").await?;

            // The analysis step's run (secretKeyRef resolved: the metric answers ok only to
            // the token) and the experiment (its ReplicaSets and its own run) succeed.
            let runs: Api<AnalysisRun> = app.api();
            wait_until("the analysis step's AnalysisRun Successful", TIMEOUT, || async {
                let all = runs.list(&ListParams::default()).await?.items;
                // Named <rollout>-<hash>-<revision>-<step index>.
                let step: Vec<_> = all
                    .iter()
                    .map(|r| (r.name_any(), r.status.as_ref().and_then(|s| s.phase)))
                    .collect();
                Ok(match step.iter().find(|(n, _)| n.ends_with("-2-1")) {
                    Some((_, Some(AnalysisPhase::Successful))) => Ok(()),
                    Some((_, Some(p))) if p.is_completed() => {
                        return Err(anyhow::anyhow!("analysis step ended {p:?}: {all:#?}"));
                    }
                    _ => Err(format!("{step:?}")),
                })
            })
            .await?;
            let experiments: Api<Experiment> = app.api();
            let experiment = wait_for("the experiment step's Experiment", TIMEOUT, || async {
                Ok(experiments.list(&ListParams::default()).await?.items.into_iter().next())
            })
            .await?;
            let ex_name = experiment.name_any();
            wait_until(&format!("experiment {ex_name} Successful"), TIMEOUT, || async {
                let ex = experiments.get(&ex_name).await?;
                let st = ex.status.unwrap_or_default();
                let phase = st.phase_or_pending();
                ensure!(
                    phase == AnalysisPhase::Successful || !phase.is_completed(),
                    "experiment ended {phase:?}: {:?}",
                    st.message
                );
                Ok(if phase == AnalysisPhase::Successful {
                    Ok(())
                } else {
                    Err(format!("{phase:?}"))
                })
            })
            .await?;
            ensure!(
                runs.get_opt(&format!("{ex_name}-authorized")).await?.is_some(),
                "the experiment's AnalysisRun is missing"
            );
            wait_phase(app, "web", "Healthy").await?;
            wait_until("web promoted", TIMEOUT, || async {
                let st = status(app, "web").await?;
                Ok(if st.stable_rs.is_some() && st.stable_rs == st.current_pod_hash {
                    Ok(())
                } else {
                    Err(format!("stable {:?}, current {:?}", st.stable_rs, st.current_pod_hash))
                })
            })
            .await?;

            // The notification went out, with the token from the chart-created Secret.
            wait_until("the on-rollout-completed webhook", TIMEOUT, || async {
                let got = receivers.hooks.lock().unwrap().clone();
                Ok(if got.is_empty() { Err("none yet".to_string()) } else { Ok(()) })
            })
            .await?;
            let hooks = receivers.hooks.lock().unwrap().clone();
            ensure!(
                hooks.iter().all(|(_, auth)| auth == "Bearer hook-e2e-secret"),
                "{hooks:?}"
            );

            // The Leases of the election and of the analysis shard are in the system namespace.
            let leases: Api<Lease> = Api::namespaced(sys.client.clone(), &sys_ns);
            let names: Vec<String> = leases
                .list(&ListParams::default())
                .await?
                .items
                .iter()
                .map(ResourceExt::name_any)
                .collect();
            for lock in [
                "argo-rollouts-controller-lock",
                "argo-rollouts-experiment-controller-lock",
                "argo-rollouts-notification-controller-lock",
            ] {
                ensure!(names.iter().any(|n| n == lock), "{lock} missing from {names:?}");
            }
            ensure!(
                names.iter().any(|n| n.starts_with("argo-rollouts-analysis-controller-member-")),
                "no shard member Lease in {names:?}"
            );

            // Nothing the controllers did was refused.
            for p in &mut processes {
                ensure!(p.exited().is_none(), "{} exited:\n{}", p.log.display(), p.log_tail(30));
                let log = std::fs::read_to_string(&p.log)?;
                let refused: Vec<&str> = log
                    .lines()
                    .filter(|l| l.to_lowercase().contains("forbidden"))
                    .collect();
                ensure!(refused.is_empty(), "{}: {refused:#?}", p.log.display());
            }
            drop(processes);

            // d) What each ServiceAccount may and may not do.
            let app_ns = app.name.clone();
            let (sa, a) = (&sys_ns, &app_ns);
            let checks: Vec<(&str, &str, &str, &str, bool)> = vec![
                ("rollout-controller", "patch", "rollouts", "", true),
                ("rollout-controller", "create", "replicasets", a, true),
                ("rollout-controller", "create", "pods:eviction", a, true),
                ("rollout-controller", "get", "secrets", a, false),
                ("rollout-controller", "list", "secrets", "", false),
                ("rollout-controller", "create", "jobs.batch", a, false),
                ("rollout-controller", "delete", "pods", a, false),
                ("rollout-controller", "update", "leases/other-lock", sa, false),
                ("rollout-controller", "update", "leases/argo-rollouts-controller-lock", sa, true),
                ("analysis-controller", "patch", "analysisruns.argoproj.io:status", a, true),
                ("analysis-controller", "get", "secrets", a, true),
                ("analysis-controller", "create", "jobs.batch", a, true),
                ("analysis-controller", "patch", "rollouts.argoproj.io", a, false),
                ("analysis-controller", "get", "rollouts.argoproj.io", a, false),
                ("analysis-controller", "list", "rollouts.argoproj.io", "", false),
                ("analysis-controller", "create", "replicasets", a, false),
                ("analysis-controller", "list", "secrets", a, false),
                ("analysis-controller", "patch", "analysisruns.argoproj.io", a, false),
                ("analysis-controller", "patch", "rollouts.argoproj.io:status", a, false),
                ("experiment-controller", "create", "replicasets", a, true),
                ("experiment-controller", "patch", "experiments.argoproj.io:status", a, true),
                ("experiment-controller", "delete", "rollouts.argoproj.io", a, false),
                ("experiment-controller", "patch", "rollouts.argoproj.io", a, false),
                ("experiment-controller", "patch", "experiments.argoproj.io", a, false),
                ("experiment-controller", "delete", "experiments.argoproj.io", a, false),
                ("experiment-controller", "delete", "replicasets", a, false),
                ("experiment-controller", "get", "secrets", a, false),
                ("notification-controller", "patch", "rollouts.argoproj.io", a, true),
                ("notification-controller", "watch", "secrets/argo-rollouts-notification-secret", sa, true),
                ("notification-controller", "get", "secrets/other-secret", sa, false),
                ("notification-controller", "list", "secrets", sa, false),
                ("notification-controller", "get", "secrets/argo-rollouts-notification-secret", a, false),
                ("notification-controller", "list", "configmaps", sa, false),
                ("notification-controller", "delete", "rollouts.argoproj.io", a, false),
                ("notification-controller", "create", "replicasets", a, false),
            ];
            let mut wrong = Vec::new();
            for (name, verb, resource, ns, want) in checks {
                let got = can_i(&sys_ns, &release(name), verb, resource, ns).await?;
                if got != want {
                    wrong.push(format!("{name} {verb} {resource} -n {ns:?}: got {got}, want {want}"));
                }
            }
            let scoped: Vec<(&str, &str, &str, bool)> = vec![
                ("patch", "rollouts.argoproj.io", a, true),
                ("create", "replicasets", a, true),
                ("patch", "rollouts.argoproj.io", sa, false),
                ("list", "rollouts.argoproj.io", "", false),
                ("create", "replicasets", "default", false),
                ("list", "clusteranalysistemplates.argoproj.io", "", true),
                ("get", "secrets", a, false),
            ];
            for (verb, resource, ns, want) in scoped {
                let got = can_i(&sys_ns, &namespaced, verb, resource, ns).await?;
                if got != want {
                    wrong.push(format!("namespaced {verb} {resource} -n {ns:?}: got {got}, want {want}"));
                }
            }
            ensure!(wrong.is_empty(), "kubectl auth can-i disagrees: {wrong:#?}");
            Ok(())
        })
        .await;
        // Cluster-scoped objects (ClusterRoles, bindings) go with the releases.
        let namespaced = format!("ns-{}", release("rollout-controller"));
        for rel in CONTROLLERS.iter().map(|c| release(c)).chain([namespaced]) {
            let _ = helm(&["uninstall", &rel, "-n", &sys_ns, "--kubeconfig", &kubeconfig]).await;
        }
        result
    })
    .await
}

#[tokio::test]
#[ignore = "needs the local cluster: run scripts/test.sh"]
async fn the_crd_chart_installs() -> Result<()> {
    with_namespace("crd-chart", async |ns| {
        let kubeconfig = kubeconfig_path()?.display().to_string();
        let release = format!("argo-rollouts-crds-{}", ns.name.rsplit('-').next().unwrap());
        let path = chart("argo-rollouts-crds");
        let (ok, stdout, stderr) = run(
            &helm_bin(),
            &[
                "install",
                &release,
                &path,
                "-n",
                &ns.name,
                "--kubeconfig",
                &kubeconfig,
                // The cluster's CRDs were applied by up.sh (another field manager), as an
                // upgrade from an earlier install would find them.
                "--force-conflicts",
            ],
        )
        .await?;
        if !ok && stderr.contains("may not be more than 1048576 bytes") {
            let size: u64 = std::fs::read_dir(repo().join("charts/argo-rollouts-crds/crds"))?
                .map(|e| e.map(|e| e.metadata().map(|m| m.len()).unwrap_or(0)).unwrap_or(0))
                .sum();
            bail!(
                "helm cannot store the release of argo-rollouts-crds: its record (the chart, with the \
                 {size} bytes of generated CRDs under crds/, base64 in gzip in base64) exceeds the 1 MiB \
                 of a Secret. The generated CRDs must shrink (e.g. crdgen dropping the descriptions of \
                 the embedded PodTemplateSpec/JobSpec schemas, as Argo's CRDs do) before the chart can \
                 be helm-installed; until then apply them with kubectl apply --server-side -f \
                 charts/argo-rollouts-crds/crds/. helm said: {stderr}"
            );
        }
        ensure!(ok, "helm install {release} failed: {stderr}{stdout}");
        ensure!(stdout.contains("STATUS: deployed"), "{stdout}");
        let _ = helm(&["uninstall", &release, "-n", &ns.name, "--kubeconfig", &kubeconfig]).await;
        Ok(())
    })
    .await
}

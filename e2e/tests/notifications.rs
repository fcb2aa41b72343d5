//! The notification controller on the real control plane, delivering to real receivers: a local
//! HTTP server standing in for the Slack Web API (through `apiURL`) and for webhooks, and a real
//! SMTP server (Debian's `python3-aiosmtpd`) writing a Maildir. Each transition is delivered
//! once per destination, across a kill -9, and a transition that happened while the controller
//! was down is delivered once after it starts.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::{
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex,
        atomic::{AtomicI64, AtomicUsize, Ordering},
    },
    time::Duration,
};

use anyhow::{Context as _, Result, ensure};
use axum::{
    Json, Router,
    extract::{Path as UrlPath, State},
    http::{HeaderMap, Method, StatusCode},
    routing::{any, get, post},
};
use e2e::{
    Process, TestNamespace, http_get, http_server,
    rollout_ops::{set_image, status, wait_phase},
    start_analysis_controller, start_experiment_controller, start_notification_controller,
    start_rollout_controller, wait_until, with_namespace,
};
use k8s_openapi::api::core::v1::Event;
use kube::api::ListParams;
use serde_json::{Value, json};

const TIMEOUT: Duration = Duration::from_secs(90);
/// How long to watch for a duplicate after a delivery.
const SETTLE: Duration = Duration::from_secs(4);

/// One request a receiver got.
#[derive(Clone, Debug)]
struct Received {
    method: String,
    path: String,
    authorization: String,
    body: String,
}

/// The local receivers: Slack's `chat.postMessage`, webhooks under `/hooks/...` (a path under
/// `/hooks/flaky` answers 500 to its first two requests), and a web metric at `/metric`.
#[derive(Clone, Default)]
struct Receivers {
    requests: Arc<Mutex<Vec<Received>>>,
    flaky_calls: Arc<AtomicUsize>,
    metric: Arc<AtomicI64>,
}

impl Receivers {
    async fn start() -> (Receivers, String) {
        let receivers = Receivers::default();
        receivers.metric.store(1, Ordering::SeqCst);
        let router = Router::new()
            .route("/api/chat.postMessage", post(slack))
            .route("/hooks/{*rest}", any(hook))
            .route(
                "/metric",
                get(|State(r): State<Receivers>| async move {
                    Json(json!({"value": r.metric.load(Ordering::SeqCst)}))
                }),
            )
            .with_state(receivers.clone());
        let addr = http_server::serve(router).await;
        (receivers, format!("http://{addr}"))
    }

    fn at(&self, path: &str) -> Vec<Received> {
        let all = self.requests.lock().unwrap();
        all.iter().filter(|r| r.path == path).cloned().collect()
    }

    /// Waits until `path` got exactly `n` requests, then checks no further one comes.
    async fn expect(&self, path: &str, n: usize) -> Result<Vec<Received>> {
        wait_until(&format!("{n} request(s) at {path}"), TIMEOUT, || async {
            let got = self.at(path).len();
            Ok(if got >= n {
                Ok(())
            } else {
                Err(format!("{got} so far"))
            })
        })
        .await?;
        tokio::time::sleep(SETTLE).await;
        let got = self.at(path);
        ensure!(
            got.len() == n,
            "{path}: expected exactly {n} request(s), got {}: {got:#?}",
            got.len()
        );
        Ok(got)
    }
}

fn record(r: &Receivers, method: &Method, path: String, headers: &HeaderMap, body: String) {
    let authorization = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    r.requests.lock().unwrap().push(Received {
        method: method.to_string(),
        path,
        authorization,
        body,
    });
}

async fn slack(State(r): State<Receivers>, headers: HeaderMap, body: String) -> Json<Value> {
    record(&r, &Method::POST, "/api/chat.postMessage".into(), &headers, body);
    Json(json!({"ok": true, "channel": "C1", "ts": "1.0"}))
}

async fn hook(
    State(r): State<Receivers>,
    UrlPath(rest): UrlPath<String>,
    method: Method,
    headers: HeaderMap,
    body: String,
) -> StatusCode {
    let path = format!("/hooks/{rest}");
    if path.starts_with("/hooks/refuse") {
        record(&r, &method, path, &headers, body);
        return StatusCode::METHOD_NOT_ALLOWED;
    }
    if path.starts_with("/hooks/flaky") && r.flaky_calls.fetch_add(1, Ordering::SeqCst) < 2 {
        record(&r, &method, format!("{path} (refused)"), &headers, body);
        return StatusCode::INTERNAL_SERVER_ERROR;
    }
    record(&r, &method, path, &headers, body);
    StatusCode::OK
}

/// A real SMTP server (aiosmtpd) delivering into a Maildir; stopped when dropped.
struct Smtp {
    _process: tokio::process::Child,
    port: u16,
    maildir: PathBuf,
}

impl Smtp {
    async fn start() -> Result<Smtp> {
        let port = e2e::free_port()?;
        let maildir = std::env::temp_dir().join(format!("argo-rs-e2e-maildir-{port}"));
        let _ = std::fs::remove_dir_all(&maildir);
        // Debian's python3 (the aiosmtpd package installs there, not into other interpreters).
        let python = if Path::new("/usr/bin/python3").exists() {
            "/usr/bin/python3"
        } else {
            "python3"
        };
        let process = tokio::process::Command::new(python)
            .args([
                "-m",
                "aiosmtpd",
                "-n",
                "-l",
                &format!("127.0.0.1:{port}"),
                "-c",
                "aiosmtpd.handlers.Mailbox",
            ])
            .arg(&maildir)
            .kill_on_drop(true)
            .spawn()
            .context("starting aiosmtpd (apt-get install python3-aiosmtpd)")?;
        wait_until("the SMTP server to listen", Duration::from_secs(20), || async {
            Ok(match tokio::net::TcpStream::connect(("127.0.0.1", port)).await {
                Ok(_) => Ok(()),
                Err(e) => Err(e.to_string()),
            })
        })
        .await?;
        Ok(Smtp {
            _process: process,
            port,
            maildir,
        })
    }

    /// The delivered messages, as text.
    fn messages(&self) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(self.maildir.join("new")) else {
            return vec![];
        };
        entries
            .filter_map(|e| std::fs::read_to_string(e.ok()?.path()).ok())
            .collect()
    }

    async fn expect(&self, n: usize) -> Result<Vec<String>> {
        wait_until(&format!("{n} email(s)"), TIMEOUT, || async {
            let got = self.messages().len();
            Ok(if got >= n {
                Ok(())
            } else {
                Err(format!("{got} so far"))
            })
        })
        .await?;
        tokio::time::sleep(SETTLE).await;
        let got = self.messages();
        ensure!(
            got.len() == n,
            "expected exactly {n} email(s), got {}: {got:#?}",
            got.len()
        );
        Ok(got)
    }
}

/// The notification Secret and ConfigMap: Slack through the local stand-in, webhooks `hooks`
/// and `flaky`, email to the local SMTP server, plus `extra` ConfigMap keys.
async fn configure(ns: &TestNamespace, base: &str, smtp_port: u16, extra: &[(&str, &str)]) -> Result<()> {
    ns.apply_value(json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "argo-rollouts-notification-secret"},
        "stringData": {"slack-token": "xoxb-e2e-secret", "hook-token": "hook-e2e-secret"}
    }))
    .await?;
    let mut data = serde_json::Map::new();
    data.insert(
        "service.slack".into(),
        json!(format!("token: $slack-token\napiURL: {base}/api/\n")),
    );
    data.insert(
        "service.webhook.hooks".into(),
        json!(format!(
            "url: {base}/hooks/plain\nheaders:\n- name: Authorization\n  value: Bearer $hook-token\n"
        )),
    );
    for hook in ["flaky", "refuse"] {
        data.insert(
            format!("service.webhook.{hook}"),
            json!(format!("url: {base}/hooks/{hook}\n")),
        );
    }
    data.insert(
        "service.email".into(),
        json!(format!(
            "host: 127.0.0.1\nport: {smtp_port}\nfrom: argo-rollouts@example.com\n"
        )),
    );
    for (k, v) in extra {
        data.insert(k.to_string(), json!(v));
    }
    ns.apply_value(json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "argo-rollouts-notification-configmap"},
        "data": data
    }))
    .await?;
    Ok(())
}

/// A canary Rollout with a short automatic pause, and `annotations`.
fn canary(name: &str, annotations: Value) -> Value {
    json!({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
        "metadata": {"name": name, "annotations": annotations},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": name}},
            "strategy": {"canary": {"steps": [{"setWeight": 50}, {"pause": {"duration": "1s"}}]}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "app", "image": "ghcr.io/ssup2/mock-go-server:1.0.0"}]}
            }
        }
    })
}

/// Waits until the Rollout is Healthy on the current pod template (the update was promoted).
async fn completed(ns: &TestNamespace, name: &str) -> Result<()> {
    wait_phase(ns, name, "Healthy").await?;
    wait_until(&format!("{name} promoted"), TIMEOUT, || async {
        let st = status(ns, name).await?;
        Ok(if st.stable_rs.is_some() && st.stable_rs == st.current_pod_hash {
            Ok(())
        } else {
            Err(format!(
                "stable {:?}, current {:?}",
                st.stable_rs, st.current_pod_hash
            ))
        })
    })
    .await
}

fn form_value(body: &str, key: &str) -> String {
    http_server::form_pairs(body)
        .into_iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v)
        .unwrap_or_default()
}

/// The value of a series in the controller's `/metrics`.
async fn metric(port: u16, series: &str) -> Result<f64> {
    let (_, body) = http_get(port, "/metrics").await?;
    body.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.trim().parse().ok())
        .with_context(|| format!("{series} not in /metrics:\n{body}"))
}

async fn restart(ns: &mut TestNamespace, controller: &mut Process) -> Result<u16> {
    controller.kill().await?;
    let (process, port) = start_notification_controller(ns, &[]).await?;
    *controller = process;
    Ok(port)
}

#[tokio::test]
#[ignore = "needs the local cluster: run scripts/test.sh"]
async fn completions_reach_slack_webhook_and_email_once_across_restarts_and_downtime() -> Result<()> {
    with_namespace("notify", async |ns| {
        let (receivers, base) = Receivers::start().await;
        let smtp = Smtp::start().await?;
        configure(ns, &base, smtp.port, &[]).await?;
        let (_rollouts, _) = start_rollout_controller(ns, &[]).await?;
        let (mut notifications, port) = start_notification_controller(ns, &[]).await?;
        ns.apply_value(canary(
            "mock-server",
            json!({
                // The seed's Manifest 8, plus a webhook and an email subscription.
                "notifications.argoproj.io/subscribe.on-rollout-completed.slack": "deployments",
                "notifications.argoproj.io/subscribe.on-rollout-completed.hooks": "",
                "notifications.argoproj.io/subscribe.on-rollout-completed.email": "ops@example.com",
            }),
        ))
        .await?;

        // The first deployment completes: one message per destination (as Argo's, which sends
        // RolloutCompleted for the initial deploy too).
        completed(ns, "mock-server").await?;
        let slack = receivers.expect("/api/chat.postMessage", 1).await?;
        assert_eq!(form_value(&slack[0].body, "channel"), "deployments");
        assert_eq!(form_value(&slack[0].body, "token"), "xoxb-e2e-secret");
        assert_eq!(
            form_value(&slack[0].body, "text"),
            "Rollout mock-server has been completed."
        );
        let attachments: Value = serde_json::from_str(&form_value(&slack[0].body, "attachments"))?;
        assert_eq!(attachments[0]["title"], "mock-server");
        assert_eq!(
            attachments[0]["fields"][0],
            json!({"title": "Strategy", "value": "Canary", "short": true})
        );
        assert_eq!(
            attachments[0]["fields"][1]["value"],
            "ghcr.io/ssup2/mock-go-server:1.0.0"
        );
        let hooks = receivers.expect("/hooks/plain", 1).await?;
        assert_eq!(
            (hooks[0].method.as_str(), hooks[0].body.as_str()),
            ("GET", "Rollout mock-server has been completed.")
        );
        assert_eq!(hooks[0].authorization, "Bearer hook-e2e-secret");
        let mails = smtp.expect(1).await?;
        assert!(
            mails[0].contains("Subject: Rollout mock-server has been completed."),
            "{}",
            mails[0]
        );
        assert!(mails[0].contains("X-RcptTo: ops@example.com"), "{}", mails[0]);

        // A canary update completes: exactly one more each. The controller is killed (-9) the
        // moment the Slack message arrives and started again: nothing is sent twice.
        set_image(ns, "mock-server", "ghcr.io/ssup2/mock-go-server:2.0.0").await?;
        completed(ns, "mock-server").await?;
        wait_until("the second Slack message", TIMEOUT, || async {
            let got = receivers.at("/api/chat.postMessage").len();
            Ok(if got >= 2 {
                Ok(())
            } else {
                Err(format!("{got} so far"))
            })
        })
        .await?;
        let before_kill = metric(
            port,
            r#"notification_send_success_total{trigger="on-rollout-completed",service="slack"}"#,
        )
        .await?;
        let port = restart(ns, &mut notifications).await?;
        assert_eq!(before_kill, 2.0);
        let slack = receivers.expect("/api/chat.postMessage", 2).await?;
        let attachments: Value = serde_json::from_str(&form_value(&slack[1].body, "attachments"))?;
        assert_eq!(
            attachments[0]["fields"][1]["value"],
            "ghcr.io/ssup2/mock-go-server:2.0.0"
        );
        receivers.expect("/hooks/plain", 2).await?;
        smtp.expect(2).await?;
        ensure!(
            metric(
                port,
                r#"notification_send_success_total{trigger="on-rollout-completed",service="slack"}"#
            )
            .await
            .is_err(),
            "the restarted controller sent something"
        );

        // A completion while the controller is down is delivered once when it is back.
        notifications.kill().await?;
        set_image(ns, "mock-server", "ghcr.io/ssup2/mock-go-server:3.0.0").await?;
        completed(ns, "mock-server").await?;
        tokio::time::sleep(Duration::from_secs(2)).await;
        ensure!(
            receivers.at("/api/chat.postMessage").len() == 2,
            "sent while stopped?"
        );
        let (_back, _) = start_notification_controller(ns, &[]).await?;
        let slack = receivers.expect("/api/chat.postMessage", 3).await?;
        let attachments: Value = serde_json::from_str(&form_value(&slack[2].body, "attachments"))?;
        assert_eq!(
            attachments[0]["fields"][1]["value"],
            "ghcr.io/ssup2/mock-go-server:3.0.0"
        );
        receivers.expect("/hooks/plain", 3).await?;
        smtp.expect(3).await?;
        Ok(())
    })
    .await
}

#[tokio::test]
#[ignore = "needs the local cluster: run scripts/test.sh"]
async fn a_failing_receiver_gets_the_message_once_and_a_bad_template_is_reported() -> Result<()> {
    with_namespace("notify-faults", async |ns| {
        let (receivers, base) = Receivers::start().await;
        configure(
            ns,
            &base,
            e2e::http_server::unused_port(),
            &[
                (
                    "trigger.on-healthy",
                    "- when: rollout.status.phase == 'Healthy'\n  send: [broken]\n",
                ),
                ("template.broken", "message: '{{.rollout.metadata.name'\n"),
            ],
        )
        .await?;
        let (_rollouts, _) = start_rollout_controller(ns, &[]).await?;
        let (_notifications, port) = start_notification_controller(ns, &[]).await?;
        ns.apply_value(canary(
            "web",
            json!({
                "notifications.argoproj.io/subscribe.on-rollout-completed.flaky": "",
                "notifications.argoproj.io/subscribe.on-rollout-completed.refuse": "",
                "notifications.argoproj.io/subscribe.on-healthy.hooks": "",
            }),
        ))
        .await?;
        completed(ns, "web").await?;
        // 500, 500, then 200: delivered once, after two retries.
        let delivered = receivers.expect("/hooks/flaky", 1).await?;
        assert_eq!(delivered[0].body, "Rollout web has been completed.");
        assert_eq!(receivers.at("/hooks/flaky (refused)").len(), 2);
        assert_eq!(
            metric(
                port,
                r#"notification_send_success_total{trigger="on-rollout-completed",service="webhook"}"#
            )
            .await?,
            1.0
        );
        // A receiver that refuses for good (405) is tried again with back-off (5 s, then 10 s),
        // not in a loop, and the failure is an Event.
        tokio::time::sleep(Duration::from_secs(8)).await;
        let refused = receivers.at("/hooks/refuse").len();
        ensure!(
            (1..=3).contains(&refused),
            "{refused} requests to a refusing receiver in ~8 s"
        );
        let events = ns.api::<Event>();
        let failed = e2e::wait_for("a NotificationFailed Event", TIMEOUT, || async {
            Ok(events
                .list(&ListParams::default())
                .await?
                .items
                .into_iter()
                .find(|e| e.reason.as_deref() == Some("NotificationFailed"))
                .and_then(|e| e.message))
        })
        .await?;
        assert!(
            failed.contains("webhook \"refuse\"") && failed.contains("405"),
            "{failed}"
        );
        // The broken template: an Event naming it, nothing sent.
        let message = e2e::wait_for("a NotificationTemplateError Event", TIMEOUT, || async {
            Ok(events
                .list(&ListParams::default())
                .await?
                .items
                .into_iter()
                .find(|e| e.reason.as_deref() == Some("NotificationTemplateError"))
                .and_then(|e| e.message))
        })
        .await?;
        assert!(message.contains(r#"template "broken""#), "{message}");
        assert!(message.contains("trigger \"on-healthy\""), "{message}");
        assert!(
            receivers.at("/hooks/plain").is_empty(),
            "a broken template was sent"
        );
        // Rendered again only with back-off (5 s, then 10 s), not on every change of the Rollout.
        let render_failures = metric(
            port,
            r#"notification_send_error_total{trigger="on-healthy",service="webhook"}"#,
        )
        .await?;
        ensure!(
            (1.0..=3.0).contains(&render_failures),
            "{render_failures} render attempts"
        );
        Ok(())
    })
    .await
}

#[tokio::test]
#[ignore = "needs the local cluster: run scripts/test.sh"]
async fn an_analysis_failure_inside_an_experiment_notifies_its_subscribers_with_the_cause() -> Result<()> {
    with_namespace("notify-experiment", async |ns| {
        let (receivers, base) = Receivers::start().await;
        configure(ns, &base, e2e::http_server::unused_port(), &[]).await?;
        let (_analysis, _) = start_analysis_controller(ns, &[], &[]).await?;
        let (_experiments, _) = start_experiment_controller(ns, &[]).await?;
        let (_notifications, _) = start_notification_controller(ns, &[]).await?;
        ns.apply_value(json!({
            "apiVersion": "argoproj.io/v1alpha1", "kind": "AnalysisTemplate",
            "metadata": {"name": "health"},
            "spec": {"metrics": [{
                "name": "health", "interval": "1s", "count": 30,
                "successCondition": "result == 1",
                "provider": {"web": {"url": format!("{base}/metric"), "jsonPath": "{$.value}"}}
            }]}
        }))
        .await?;
        ns.apply_value(json!({
            "apiVersion": "argoproj.io/v1alpha1", "kind": "Experiment",
            "metadata": {"name": "judged", "annotations": {
                "notifications.argoproj.io/subscribe.on-analysis-run-running.hooks": "",
                "notifications.argoproj.io/subscribe.on-analysis-run-failed.hooks": "",
            }},
            "spec": {
                "duration": "5m",
                "templates": [{
                    "name": "canary", "replicas": 1,
                    "selector": {"matchLabels": {"app": "judged"}},
                    "template": {"metadata": {"labels": {"app": "judged"}},
                                 "spec": {"containers": [{"name": "app", "image": "ghcr.io/ssup2/mock-go-server:2.0.0"}]}}
                }],
                "analyses": [{"name": "health", "templateName": "health"}]
            }
        }))
        .await?;
        let running = receivers.expect("/hooks/plain", 1).await?;
        assert_eq!(running[0].body, "AnalysisRun judged-health is running.");
        receivers.metric.store(0, Ordering::SeqCst);
        let all = receivers.expect("/hooks/plain", 2).await?;
        let failed = &all[1].body;
        assert!(failed.starts_with("AnalysisRun judged-health failed. "), "{failed}");
        assert!(failed.contains(r#"Metric "health" assessed Failed"#), "the cause is missing: {failed}");
        Ok(())
    })
    .await
}

//! Commands against a mocked API server (tower-test): the exact requests they send (paths,
//! patch types, bodies, field manager) and how API failures (404, 403) and an unreachable server
//! are reported. The real-cluster behaviour is covered by the e2e suite.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: failing loudly is the point

use clap::Parser;
use http::{Method, Request, Response, StatusCode};
use kube::client::Body;
use kubectl_argo_rollouts::{ExitStatus, Io, cli::Cli, cmd::run_with_session, error::report, kube::Session};
use serde_json::{Value, json};
use tower_test::mock::{Handle, SendResponse};

type Mock = Handle<Request<Body>, Response<Body>>;

/// One expected request and the answer to give.
struct Exchange {
    method: Method,
    /// Path and query must start with this.
    path: &'static str,
    /// Path and query must contain this too, if set.
    contains: Option<&'static str>,
    /// Expected `Content-Type` (patches), if any.
    content_type: Option<&'static str>,
    /// Expected JSON body, if any.
    body: Option<Value>,
    status: StatusCode,
    response: Value,
}

fn ok(method: Method, path: &'static str, response: Value) -> Exchange {
    Exchange {
        method,
        path,
        contains: None,
        content_type: None,
        body: None,
        status: StatusCode::OK,
        response,
    }
}

fn patch(path: &'static str, content_type: &'static str, body: Value, response: Value) -> Exchange {
    Exchange {
        method: Method::PATCH,
        path,
        contains: None,
        content_type: Some(content_type),
        body: Some(body),
        status: StatusCode::OK,
        response,
    }
}

fn failure(method: Method, path: &'static str, code: u16, reason: &str, message: &str) -> Exchange {
    Exchange {
        method,
        path,
        contains: None,
        content_type: None,
        body: None,
        status: StatusCode::from_u16(code).unwrap(),
        response: json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": message, "reason": reason, "code": code}),
    }
}

/// Answers `exchanges` in order and returns the JSON bodies the client sent (POST and PATCH).
async fn serve(mut handle: Mock, exchanges: Vec<Exchange>) -> Vec<Value> {
    let mut sent = Vec::new();
    for (i, ex) in exchanges.into_iter().enumerate() {
        let (request, send): (Request<Body>, SendResponse<Response<Body>>) = handle
            .next_request()
            .await
            .unwrap_or_else(|| panic!("request {i} never came"));
        let uri = request.uri().to_string();
        assert_eq!(request.method(), ex.method, "request {i}: {uri}");
        assert!(
            uri.starts_with(ex.path),
            "request {i}: {uri} does not start with {}",
            ex.path
        );
        if let Some(part) = ex.contains {
            assert!(uri.contains(part), "request {i}: {uri} does not contain {part}");
        }
        if ex.method == Method::PATCH || ex.method == Method::POST {
            assert!(
                uri.contains("fieldManager=kubectl-argo-rollouts"),
                "request {i}: {uri}"
            );
        }
        if let Some(ct) = ex.content_type {
            let got = request
                .headers()
                .get(http::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok());
            assert_eq!(got, Some(ct), "request {i}: {uri}");
        }
        let body = request.into_body().collect_bytes().await.unwrap();
        if ex.method == Method::PATCH || ex.method == Method::POST {
            sent.push(serde_json::from_slice(&body).unwrap());
        }
        if let Some(expected) = ex.body {
            let got: Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(got, expected, "request {i}: {uri}");
        }
        // A string response is a raw body (a watch stream); anything else is sent as JSON.
        let bytes = match ex.response {
            Value::String(raw) => raw.into_bytes(),
            other => serde_json::to_vec(&other).unwrap(),
        };
        let response = Response::builder()
            .status(ex.status)
            .body(Body::from(bytes))
            .unwrap();
        send.send_response(response);
    }
    sent
}

struct Output {
    status: ExitStatus,
    out: String,
    err: String,
    /// JSON bodies of the POST and PATCH requests, in order.
    sent: Vec<Value>,
}

/// Runs `args` against the mock, which must see exactly `exchanges`.
async fn run(args: &[&str], exchanges: Vec<Exchange>) -> Output {
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let server = tokio::spawn(serve(handle, exchanges));
    let client = kube::Client::new(service, "default");
    let session = Session::new(client, "default");
    let cli =
        Cli::try_parse_from(std::iter::once("kubectl-argo-rollouts").chain(args.iter().copied())).unwrap();
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let mut io = Io {
        out: &mut out,
        err: &mut err,
        stdout_is_terminal: false,
    };
    let status = match run_with_session(cli.command, &session, &mut io).await {
        Ok(()) => ExitStatus::Success,
        Err(e) => report(&e, &mut io),
    };
    let sent = tokio::time::timeout(std::time::Duration::from_secs(5), server)
        .await
        .expect("mock server finished")
        .unwrap();
    Output {
        status,
        out: String::from_utf8(out).unwrap(),
        err: String::from_utf8(err).unwrap(),
        sent,
    }
}

const RO: &str = "/apis/argoproj.io/v1alpha1/namespaces/default/rollouts/mock-server";
const MERGE: &str = "application/merge-patch+json";
const JSON_PATCH: &str = "application/json-patch+json";

fn rollout(status: Value) -> Value {
    json!({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
        "metadata": {"name": "mock-server", "namespace": "default", "uid": "u-1", "generation": 2},
        "spec": {
            "replicas": 5,
            "selector": {"matchLabels": {"app": "mock-server"}},
            "strategy": {"canary": {"steps": [{"setWeight": 20}, {"pause": {}}, {"setWeight": 100}]}},
            "template": {"metadata": {"labels": {"app": "mock-server"}},
                "spec": {"containers": [{"name": "mock-server", "image": "ghcr.io/ssup2/mock-go-server:3.0.0"}]}}
        },
        "status": status
    })
}

fn paused_rollout() -> Value {
    rollout(
        json!({"observedGeneration": "2", "phase": "Paused", "message": "CanaryPauseStep", "currentStepIndex": 1,
        "pauseConditions": [{"reason": "CanaryPauseStep", "startTime": "2025-06-01T10:00:00Z"}], "controllerPause": true,
        "currentPodHash": "6fcb56df9b", "stableRS": "6579c6cc98"}),
    )
}

#[tokio::test]
async fn unknown_rollout() {
    let o = run(
        &["get", "rollout", "mock-server"],
        vec![failure(
            Method::GET,
            RO,
            404,
            "NotFound",
            "rollouts.argoproj.io \"mock-server\" not found",
        )],
    )
    .await;
    assert_eq!(o.status, ExitStatus::Failure);
    assert_eq!(o.err, "Error: rollouts.argoproj.io \"mock-server\" not found\n");
    assert!(o.out.is_empty());
}

#[tokio::test]
async fn forbidden_by_rbac() {
    let message = "rollouts.argoproj.io \"mock-server\" is forbidden: User \"bob\" cannot patch resource \"rollouts/status\" in API group \"argoproj.io\" in the namespace \"default\"";
    let o = run(
        &["abort", "mock-server"],
        vec![failure(
            Method::PATCH,
            "/apis/argoproj.io/v1alpha1/namespaces/default/rollouts/mock-server/status",
            403,
            "Forbidden",
            message,
        )],
    )
    .await;
    assert_eq!(o.status, ExitStatus::Failure);
    assert_eq!(o.err, format!("Error: {message}\n"));
}

#[tokio::test]
async fn promote_clears_pause_conditions_on_the_status_subresource() {
    let o = run(
        &["promote", "mock-server"],
        vec![
            ok(Method::GET, RO, paused_rollout()),
            patch(
                "/apis/argoproj.io/v1alpha1/namespaces/default/rollouts/mock-server/status?",
                MERGE,
                json!({"status": {"pauseConditions": null}}),
                paused_rollout(),
            ),
        ],
    )
    .await;
    assert_eq!(
        (o.status, o.out.as_str(), o.err.as_str()),
        (ExitStatus::Success, "rollout 'mock-server' promoted\n", "")
    );
}

#[tokio::test]
async fn promote_falls_back_to_the_main_resource_without_status_subresource() {
    let o = run(
        &["promote", "mock-server"],
        vec![
            ok(Method::GET, RO, paused_rollout()),
            failure(
                Method::PATCH,
                "/apis/argoproj.io/v1alpha1/namespaces/default/rollouts/mock-server/status?",
                404,
                "NotFound",
                "the server could not find the requested resource",
            ),
            patch(
                "/apis/argoproj.io/v1alpha1/namespaces/default/rollouts/mock-server?",
                MERGE,
                json!({"spec": {"paused": false}, "status": {"pauseConditions": null}}),
                paused_rollout(),
            ),
        ],
    )
    .await;
    assert_eq!(o.out, "rollout 'mock-server' promoted\n", "{}", o.err);
}

#[tokio::test]
async fn promote_full() {
    let o = run(
        &["promote", "mock-server", "--full"],
        vec![
            ok(Method::GET, RO, paused_rollout()),
            patch(
                "/apis/argoproj.io/v1alpha1/namespaces/default/rollouts/mock-server/status?",
                MERGE,
                json!({"status": {"promoteFull": true}}),
                paused_rollout(),
            ),
        ],
    )
    .await;
    assert_eq!(o.out, "rollout 'mock-server' fully promoted\n", "{}", o.err);
}

#[tokio::test]
async fn abort_retry_pause_restart_terminate() {
    let status_path = "/apis/argoproj.io/v1alpha1/namespaces/default/rollouts/mock-server/status?";
    let o = run(
        &["abort", "mock-server"],
        vec![patch(
            status_path,
            MERGE,
            json!({"status": {"abort": true}}),
            paused_rollout(),
        )],
    )
    .await;
    assert_eq!(o.out, "rollout 'mock-server' aborted\n", "{}", o.err);
    let o = run(
        &["retry", "rollout", "mock-server"],
        vec![patch(
            status_path,
            MERGE,
            json!({"status": {"abort": false}}),
            paused_rollout(),
        )],
    )
    .await;
    assert_eq!(o.out, "rollout 'mock-server' retried\n", "{}", o.err);
    let main_path = "/apis/argoproj.io/v1alpha1/namespaces/default/rollouts/mock-server?";
    let o = run(
        &["pause", "mock-server"],
        vec![patch(
            main_path,
            MERGE,
            json!({"spec": {"paused": true}}),
            paused_rollout(),
        )],
    )
    .await;
    assert_eq!(o.out, "rollout 'mock-server' paused\n", "{}", o.err);

    let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let server = tokio::spawn(async move {
        let (request, send) = handle.next_request().await.unwrap();
        assert_eq!(request.method(), Method::PATCH);
        let body: Value =
            serde_json::from_slice(&request.into_body().collect_bytes().await.unwrap()).unwrap();
        let at = body["spec"]["restartAt"].as_str().unwrap().to_string();
        assert!(at.ends_with('Z') && at.len() == 20, "{at}");
        send.send_response(
            Response::builder()
                .body(Body::from(serde_json::to_vec(&paused_rollout()).unwrap()))
                .unwrap(),
        );
    });
    let session = Session::new(kube::Client::new(service, "default"), "default");
    let cli = Cli::try_parse_from(["k", "restart", "mock-server", "--in", "30s"]).unwrap();
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let mut io = Io {
        out: &mut out,
        err: &mut err,
        stdout_is_terminal: false,
    };
    run_with_session(cli.command, &session, &mut io).await.unwrap();
    server.await.unwrap();
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "rollout 'mock-server' restarts in 30s\n"
    );

    let run_path = "/apis/argoproj.io/v1alpha1/namespaces/default/analysisruns/run-1?";
    let run_obj = json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "AnalysisRun", "metadata": {"name": "run-1"}, "spec": {"metrics": []}});
    let o = run(
        &["terminate", "ar", "run-1"],
        vec![patch(
            run_path,
            MERGE,
            json!({"spec": {"terminate": true}}),
            run_obj,
        )],
    )
    .await;
    assert_eq!(o.out, "analysisRun 'run-1' terminated\n", "{}", o.err);
    let exp_path = "/apis/argoproj.io/v1alpha1/namespaces/default/experiments/exp-1?";
    let exp_obj = json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "Experiment", "metadata": {"name": "exp-1"}, "spec": {"templates": []}});
    let o = run(
        &["retry", "experiment", "exp-1"],
        vec![patch(exp_path, MERGE, json!({"status": null}), exp_obj)],
    )
    .await;
    assert_eq!(o.out, "experiment 'exp-1' retried\n", "{}", o.err);
}

#[tokio::test]
async fn set_image() {
    let o = run(
        &["set", "image", "mock-server", "mock-server=ghcr.io/ssup2/mock-go-server:4.0.0"],
        vec![
            ok(Method::GET, RO, paused_rollout()),
            patch(
                "/apis/argoproj.io/v1alpha1/namespaces/default/rollouts/mock-server?",
                JSON_PATCH,
                json!([
                    {"op": "test", "path": "/spec/template/spec/containers/0/name", "value": "mock-server"},
                    {"op": "replace", "path": "/spec/template/spec/containers/0/image", "value": "ghcr.io/ssup2/mock-go-server:4.0.0"}
                ]),
                paused_rollout(),
            ),
        ],
    )
    .await;
    assert_eq!(
        (o.status, o.out.as_str()),
        (ExitStatus::Success, "rollout \"mock-server\" image updated\n"),
        "{}",
        o.err
    );
}

#[tokio::test]
async fn set_image_wrong_container() {
    let o = run(
        &["set", "image", "mock-server", "web=nginx"],
        vec![ok(Method::GET, RO, paused_rollout())],
    )
    .await;
    assert_eq!(o.status, ExitStatus::Failure);
    assert_eq!(o.err, "Error: unable to find container named \"web\"\n");
}

fn replica_set(hash: &str, revision: &str, image: &str) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {"name": format!("mock-server-{hash}"), "namespace": "default", "uid": format!("rs-{hash}"),
            "labels": {"app": "mock-server", "rollouts-pod-template-hash": hash},
            "annotations": {"rollout.argoproj.io/revision": revision},
            "ownerReferences": [{"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout", "name": "mock-server", "uid": "u-1", "controller": true}]},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "mock-server", "rollouts-pod-template-hash": hash}},
            "template": {"metadata": {"labels": {"app": "mock-server", "rollouts-pod-template-hash": hash}},
                "spec": {"containers": [{"name": "mock-server", "image": image, "imagePullPolicy": "IfNotPresent"}]}}}
    })
}

#[tokio::test]
async fn undo_restores_the_previous_template() {
    let list = json!({"apiVersion": "apps/v1", "kind": "ReplicaSetList", "metadata": {}, "items": [
        replica_set("6579c6cc98", "1", "ghcr.io/ssup2/mock-go-server:1.0.0"),
        replica_set("7c6fcfb847", "2", "ghcr.io/ssup2/mock-go-server:2.0.0"),
        replica_set("6fcb56df9b", "3", "ghcr.io/ssup2/mock-go-server:3.0.0"),
    ]});
    let o = run(
        &["undo", "mock-server"],
        vec![
            ok(Method::GET, RO, paused_rollout()),
            Exchange {
                contains: Some("labelSelector=app%3Dmock-server"),
                ..ok(Method::GET, "/apis/apps/v1/namespaces/default/replicasets?", list)
            },
            patch(
                "/apis/argoproj.io/v1alpha1/namespaces/default/rollouts/mock-server?",
                JSON_PATCH,
                json!([{"op": "replace", "path": "/spec/template", "value": {
                    "metadata": {"labels": {"app": "mock-server"}},
                    "spec": {"containers": [{"name": "mock-server", "image": "ghcr.io/ssup2/mock-go-server:2.0.0", "imagePullPolicy": "IfNotPresent"}]}
                }}]),
                paused_rollout(),
            ),
        ],
    )
    .await;
    assert_eq!(o.out, "rollout 'mock-server' undo\n", "{}", o.err);
}

#[tokio::test]
async fn status_once() {
    let o = run(
        &["status", "mock-server", "--watch=false"],
        vec![ok(Method::GET, RO, paused_rollout())],
    )
    .await;
    assert_eq!(
        (o.status, o.out.as_str()),
        (ExitStatus::Success, "Paused - CanaryPauseStep\n")
    );
    let degraded = rollout(
        json!({"observedGeneration": "2", "phase": "Degraded", "message": "RolloutAborted: Rollout aborted update to revision 2"}),
    );
    let o = run(
        &["status", "mock-server", "-w=false"],
        vec![ok(Method::GET, RO, degraded)],
    )
    .await;
    assert_eq!(o.status, ExitStatus::Degraded);
    assert_eq!(o.out, "Degraded\n");
    assert_eq!(
        o.err,
        "Error: The rollout is in a degraded state with message: RolloutAborted: Rollout aborted update to revision 2\n"
    );
}

#[tokio::test]
async fn unreachable_server() {
    // A port on the loopback interface that nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = std::env::temp_dir().join(format!("kar-unreachable-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let kubeconfig = dir.join("config");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: c\nclusters:\n- name: c\n  cluster: {{server: \"http://127.0.0.1:{port}\"}}\nusers:\n- name: u\n  user: {{}}\ncontexts:\n- name: c\n  context: {{cluster: c, user: u}}\n"
        ),
    )
    .unwrap();
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let mut io = Io {
        out: &mut out,
        err: &mut err,
        stdout_is_terminal: false,
    };
    let args = [
        "kubectl-argo-rollouts",
        "--kubeconfig",
        kubeconfig.to_str().unwrap(),
        "get",
        "rollout",
        "x",
    ];
    let status = kubectl_argo_rollouts::run(args, &mut io).await;
    let err = String::from_utf8(err).unwrap();
    assert_eq!(status, ExitStatus::Failure);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with(&format!(
            "Error: unable to connect to the server http://127.0.0.1:{port}/: "
        )),
        "{err}"
    );
    assert!(err.to_lowercase().contains("refused"), "{err}");
}

fn healthy_rollout() -> Value {
    let mut ro = rollout(
        json!({"observedGeneration": "2", "phase": "Healthy", "currentStepIndex": 3,
        "currentPodHash": "6fcb56df9b", "stableRS": "6fcb56df9b", "replicas": 5, "updatedReplicas": 5,
        "readyReplicas": 5, "availableReplicas": 5}),
    );
    ro["metadata"]["resourceVersion"] = json!("12");
    ro
}

/// The watcher's initial list of the one rollout, then a watch delivering `events` (as the API
/// server streams them: one JSON object per line).
fn list_then_watch(first: Value, events: Vec<(&str, Value)>) -> Vec<Exchange> {
    let mut first = first;
    first["metadata"]["resourceVersion"] = json!("10");
    let list = json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "RolloutList", "metadata": {"resourceVersion": "10"}, "items": [first]});
    let stream: String = events
        .into_iter()
        .map(|(kind, object)| format!("{}\n", json!({"type": kind, "object": object})))
        .collect();
    vec![
        Exchange {
            contains: Some("fieldSelector=metadata.name%3Dmock-server"),
            ..ok(
                Method::GET,
                "/apis/argoproj.io/v1alpha1/namespaces/default/rollouts?",
                list,
            )
        },
        Exchange {
            contains: Some("watch=true"),
            ..ok(
                Method::GET,
                "/apis/argoproj.io/v1alpha1/namespaces/default/rollouts?",
                Value::String(stream),
            )
        },
    ]
}

#[tokio::test]
async fn status_watch_until_healthy() {
    let mut exchanges = vec![ok(Method::GET, RO, paused_rollout())];
    exchanges.extend(list_then_watch(
        paused_rollout(),
        vec![("MODIFIED", healthy_rollout())],
    ));
    let o = run(&["status", "mock-server", "--timeout", "10s"], exchanges).await;
    assert_eq!(
        (o.status, o.out.as_str(), o.err.as_str()),
        (ExitStatus::Success, "Paused - CanaryPauseStep\nHealthy\n", "")
    );
}

#[tokio::test]
async fn wait_for_healthy_and_degraded_exit_codes() {
    let mut exchanges = vec![ok(Method::GET, RO, paused_rollout())];
    exchanges.extend(list_then_watch(
        paused_rollout(),
        vec![("MODIFIED", healthy_rollout())],
    ));
    let o = run(
        &["wait", "mock-server", "--for", "healthy", "--timeout", "10s"],
        exchanges,
    )
    .await;
    assert_eq!(
        (o.status, o.out.as_str()),
        (ExitStatus::Success, "rollout 'mock-server' is Healthy\n"),
        "{}",
        o.err
    );

    let mut degraded = rollout(
        json!({"observedGeneration": "2", "phase": "Degraded", "message": "RolloutAborted: Rollout aborted update to revision 2"}),
    );
    // Watch events always carry a resourceVersion (the watcher relies on it).
    degraded["metadata"]["resourceVersion"] = json!("13");
    let mut exchanges = vec![ok(Method::GET, RO, paused_rollout())];
    exchanges.extend(list_then_watch(paused_rollout(), vec![("MODIFIED", degraded)]));
    let o = run(
        &["wait", "mock-server", "--for", "healthy", "--timeout", "10s"],
        exchanges,
    )
    .await;
    assert_eq!(o.status, ExitStatus::Degraded);
    assert_eq!(o.status.code(), 3);
    assert_eq!(
        o.err,
        "Error: rollout 'mock-server' is Degraded: RolloutAborted: Rollout aborted update to revision 2\n"
    );
}

/// Answers requests by path (for commands whose requests come concurrently): lists return the
/// given objects, watches are left open without events.
async fn route(mut handle: Mock, objects: Vec<(&'static str, Value)>) {
    let mut open_watches = Vec::new();
    while let Some((request, send)) = handle.next_request().await {
        let uri = request.uri().to_string();
        if uri.contains("watch=true") {
            // Keep the watch pending, as a quiet API server would.
            open_watches.push(send);
            continue;
        }
        let (path, _) = uri.split_once('?').unwrap_or((&uri, ""));
        let body = match objects.iter().find(|(p, _)| *p == path) {
            Some((_, object)) => object.clone(),
            None => {
                let kind = if path.ends_with("/rollouts") {
                    "RolloutList"
                } else {
                    "List"
                };
                let items: Vec<Value> = objects
                    .iter()
                    .filter(|(p, _)| p.starts_with(path) && p[path.len()..].starts_with('/'))
                    .map(|(_, o)| o.clone())
                    .collect();
                json!({"apiVersion": "v1", "kind": kind, "metadata": {"resourceVersion": "10"}, "items": items})
            }
        };
        send.send_response(
            Response::builder()
                .body(Body::from(serde_json::to_vec(&body).unwrap()))
                .unwrap(),
        );
    }
}

#[tokio::test]
async fn get_rollout_watch_redraws_until_timeout() {
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let mut ro = paused_rollout();
    ro["metadata"]["resourceVersion"] = json!("10");
    ro["metadata"]["creationTimestamp"] = json!("2025-06-01T10:00:00Z");
    let server = tokio::spawn(route(handle, vec![(RO, ro)]));
    let session = Session::new(kube::Client::new(service, "default"), "default");
    let cli = Cli::try_parse_from([
        "k",
        "get",
        "rollout",
        "mock-server",
        "--watch",
        "--timeout-seconds",
        "2",
    ])
    .unwrap();
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let mut io = Io {
        out: &mut out,
        err: &mut err,
        stdout_is_terminal: false,
    };
    tokio::time::timeout(
        std::time::Duration::from_secs(10),
        run_with_session(cli.command, &session, &mut io),
    )
    .await
    .expect("the watch ends at its timeout")
    .unwrap();
    server.abort();
    let out = String::from_utf8(out).unwrap();
    let frames: Vec<&str> = out
        .split(kubectl_argo_rollouts::render::CLEAR_SCREEN)
        .filter(|f| !f.is_empty())
        .collect();
    assert!(
        frames.len() >= 2,
        "expected the first drawing and at least one redraw: {out:?}"
    );
    for frame in frames {
        assert!(frame.starts_with("Name:            mock-server\n"), "{frame}");
        assert!(frame.contains("Status:          ॥ Paused\n"), "{frame}");
    }
}

#[tokio::test]
async fn create_from_file() {
    let dir = std::env::temp_dir().join(format!("kar-create-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("rollout.yaml");
    std::fs::write(
        &file,
        "apiVersion: argoproj.io/v1alpha1\nkind: Rollout\nmetadata:\n  name: mock-server\nspec:\n  replicas: 1\n  strategy:\n    blueGreen:\n      activeService: a\n",
    )
    .unwrap();
    let created = json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout", "metadata": {"name": "mock-server"},
        "spec": {"replicas": 1, "strategy": {"blueGreen": {"activeService": "a"}}}});
    let o = run(
        &["create", "-f", file.to_str().unwrap()],
        vec![Exchange {
            body: Some(created.clone()),
            ..ok(
                Method::POST,
                "/apis/argoproj.io/v1alpha1/namespaces/default/rollouts?",
                created,
            )
        }],
    )
    .await;
    assert_eq!(
        (o.status, o.out.as_str()),
        (ExitStatus::Success, "rollout.argoproj.io/mock-server created\n"),
        "{}",
        o.err
    );

    std::fs::write(&file, "apiVersion: v1\nkind: Service\nmetadata:\n  name: s\n").unwrap();
    let o = run(&["create", "-f", file.to_str().unwrap()], vec![]).await;
    assert_eq!(o.err, "Error: creates of v1/Service unsupported\n");
}

#[tokio::test]
async fn list_rollouts() {
    let list = json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "RolloutList", "metadata": {}, "items": [paused_rollout()]});
    let o = run(
        &["list", "rollouts"],
        vec![ok(
            Method::GET,
            "/apis/argoproj.io/v1alpha1/namespaces/default/rollouts?",
            list,
        )],
    )
    .await;
    assert_eq!(
        o.out,
        "NAME         STRATEGY   STATUS        STEP  SET-WEIGHT  READY  DESIRED  UP-TO-DATE  AVAILABLE\n\
         mock-server  Canary     Paused        1/3   20          0/0    5        0           0        \n"
    );
    let empty =
        json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "RolloutList", "metadata": {}, "items": []});
    let o = run(
        &["list", "ro", "-A"],
        vec![ok(Method::GET, "/apis/argoproj.io/v1alpha1/rollouts?", empty)],
    )
    .await;
    assert_eq!((o.out.as_str(), o.err.as_str()), ("", "No resources found.\n"));
}

const AR: &str = "/apis/argoproj.io/v1alpha1/namespaces/default/analysisruns?";

fn web_metric(name: &str) -> Value {
    json!({"name": name, "successCondition": "result == true", "provider": {"web": {"url": "http://x/{{args.service}}"}}})
}

fn analysis_template(kind: &str, name: &str, spec: Value) -> Value {
    let mut metadata = json!({"name": name, "resourceVersion": "7", "uid": format!("uid-{name}"),
        "labels": {"team": "a"}});
    if kind == "AnalysisTemplate" {
        metadata["namespace"] = json!("default");
    }
    json!({"apiVersion": "argoproj.io/v1alpha1", "kind": kind, "metadata": metadata, "spec": spec})
}

/// The created run as the API server returns it: the request with a generated name.
fn created_run(sent_name: &str) -> Value {
    json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "AnalysisRun",
        "metadata": {"name": sent_name, "namespace": "default"}, "spec": {"metrics": []}})
}

fn metric_names(run: &Value) -> Vec<&str> {
    run["spec"]["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect()
}

fn not_found(path: &'static str, what: &str, name: &str) -> Exchange {
    failure(
        Method::GET,
        path,
        404,
        "NotFound",
        &format!("{what}.argoproj.io \"{name}\" not found"),
    )
}

#[tokio::test]
async fn create_analysisrun_from_a_template_with_nested_ones() {
    // top -> [mid, shared (cluster)], mid -> [leaf, shared (read once)].
    let top = analysis_template(
        "AnalysisTemplate",
        "top",
        json!({
            "args": [{"name": "service"}, {"name": "threshold", "value": "0.95"}, {"name": "window", "value": "5m"}],
            "metrics": [web_metric("a")],
            "dryRun": [{"metricName": "a"}],
            "templates": [{"templateName": "mid"}, {"templateName": "shared", "clusterScope": true}]
        }),
    );
    let mid = analysis_template(
        "AnalysisTemplate",
        "mid",
        json!({"metrics": [web_metric("b")], "templates": [
            {"templateName": "leaf"}, {"templateName": "shared", "clusterScope": true}]}),
    );
    let shared = analysis_template(
        "ClusterAnalysisTemplate",
        "shared",
        json!({"metrics": [web_metric("d")], "args": [{"name": "service"}]}),
    );
    let leaf = analysis_template("AnalysisTemplate", "leaf", json!({"metrics": [web_metric("c")]}));
    let o = run(
        &[
            "create",
            "analysisrun",
            "--from",
            "top",
            "-a",
            "service=canary",
            "-a",
            "threshold=0.99",
            "-a",
            "undeclared=x",
        ],
        vec![
            ok(
                Method::GET,
                "/apis/argoproj.io/v1alpha1/namespaces/default/analysistemplates/top",
                top,
            ),
            ok(
                Method::GET,
                "/apis/argoproj.io/v1alpha1/namespaces/default/analysistemplates/mid",
                mid,
            ),
            ok(
                Method::GET,
                "/apis/argoproj.io/v1alpha1/clusteranalysistemplates/shared",
                shared,
            ),
            ok(
                Method::GET,
                "/apis/argoproj.io/v1alpha1/namespaces/default/analysistemplates/leaf",
                leaf,
            ),
            ok(Method::POST, AR, created_run("top-x7k2p")),
        ],
    )
    .await;
    assert_eq!(
        (o.status, o.out.as_str(), o.err.as_str()),
        (
            ExitStatus::Success,
            "analysisrun.argoproj.io/top-x7k2p created\n",
            ""
        )
    );
    let [run] = o.sent.as_slice() else {
        panic!("one POST expected: {:?}", o.sent)
    };
    assert_eq!(run["apiVersion"], "argoproj.io/v1alpha1");
    assert_eq!(run["kind"], "AnalysisRun");
    assert_eq!(
        run["metadata"],
        json!({"generateName": "top-", "namespace": "default"}),
        "no name, labels, uid or resourceVersion from the template"
    );
    // Namespaced templates depth first (top, mid, leaf), then the cluster one.
    assert_eq!(metric_names(run), ["a", "b", "c", "d"]);
    assert_eq!(run["spec"]["metrics"][0], web_metric("a"));
    assert_eq!(
        run["spec"]["args"],
        json!([{"name": "service", "value": "canary"}, {"name": "threshold", "value": "0.99"},
            {"name": "window", "value": "5m"}])
    );
    assert_eq!(run["spec"]["dryRun"], json!([{"metricName": "a"}]));
    assert!(run["spec"].get("templates").is_none() && run.get("status").is_none());
}

#[tokio::test]
async fn create_analysisrun_from_a_cluster_template_with_name_and_instance_id() {
    let shared = analysis_template(
        "ClusterAnalysisTemplate",
        "shared",
        json!({"metrics": [web_metric("d")], "args": [{"name": "service", "value": "stable"}]}),
    );
    for flags in [
        &["--from-cluster-template", "shared"][..],
        &["--global", "--from", "shared"],
    ] {
        let mut args = vec!["create", "ar"];
        args.extend_from_slice(flags);
        args.extend(["--name", "my-run", "--instance-id", "blue"]);
        let o = run(
            &args,
            vec![
                ok(
                    Method::GET,
                    "/apis/argoproj.io/v1alpha1/clusteranalysistemplates/shared",
                    shared.clone(),
                ),
                ok(Method::POST, AR, created_run("my-run")),
            ],
        )
        .await;
        assert_eq!(
            (o.status, o.out.as_str()),
            (ExitStatus::Success, "analysisrun.argoproj.io/my-run created\n"),
            "{flags:?}: {}",
            o.err
        );
        let run = &o.sent[0];
        assert_eq!(
            run["metadata"],
            json!({"name": "my-run", "namespace": "default",
                "labels": {"argo-rollouts.argoproj.io/controller-instance-id": "blue"}})
        );
        assert_eq!(metric_names(run), ["d"]);
        assert_eq!(
            run["spec"]["args"],
            json!([{"name": "service", "value": "stable"}])
        );
    }

    let o = run(
        &["create", "ar", "--from", "t", "--generate-name", "smoke-"],
        vec![
            ok(
                Method::GET,
                "/apis/argoproj.io/v1alpha1/namespaces/default/analysistemplates/t",
                analysis_template("AnalysisTemplate", "t", json!({"metrics": [web_metric("m")]})),
            ),
            ok(Method::POST, AR, created_run("smoke-abcde")),
        ],
    )
    .await;
    assert_eq!(
        o.out, "analysisrun.argoproj.io/smoke-abcde created\n",
        "{}",
        o.err
    );
    assert_eq!(
        o.sent[0]["metadata"],
        json!({"generateName": "smoke-", "namespace": "default"})
    );
}

#[tokio::test]
async fn create_analysisrun_from_file() {
    let dir = std::env::temp_dir().join(format!("kar-create-ar-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("template.yaml");
    std::fs::write(
        &file,
        "apiVersion: argoproj.io/v1alpha1\nkind: AnalysisTemplate\nmetadata:\n  name: local\nspec:\n  args:\n  - name: service\n  metrics:\n  - name: m\n    provider:\n      web:\n        url: http://x\n  templates:\n  - templateName: shared\n    clusterScope: true\n",
    )
    .unwrap();
    let o = run(
        &[
            "create",
            "ar",
            "--from-file",
            file.to_str().unwrap(),
            "-a",
            "service=s",
        ],
        vec![
            ok(
                Method::GET,
                "/apis/argoproj.io/v1alpha1/clusteranalysistemplates/shared",
                analysis_template(
                    "ClusterAnalysisTemplate",
                    "shared",
                    json!({"metrics": [web_metric("d")]}),
                ),
            ),
            ok(Method::POST, AR, created_run("local-abcde")),
        ],
    )
    .await;
    assert_eq!(
        o.out, "analysisrun.argoproj.io/local-abcde created\n",
        "{}",
        o.err
    );
    assert_eq!(o.sent[0]["metadata"]["generateName"], "local-");
    assert_eq!(metric_names(&o.sent[0]), ["m", "d"]);

    std::fs::write(
        &file,
        "apiVersion: argoproj.io/v1alpha1\nkind: Rollout\nmetadata:\n  name: r\n",
    )
    .unwrap();
    let o = run(&["create", "ar", "--from-file", file.to_str().unwrap()], vec![]).await;
    assert_eq!(o.status, ExitStatus::Failure);
    assert!(
        o.err.ends_with(
            "expected an AnalysisTemplate or ClusterAnalysisTemplate, found argoproj.io/v1alpha1/Rollout\n"
        ),
        "{}",
        o.err
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[tokio::test]
async fn create_analysisrun_errors() {
    // The chosen template is missing: the API server's message, as Argo prints it.
    let o = run(
        &["create", "ar", "--from", "nope"],
        vec![not_found(
            "/apis/argoproj.io/v1alpha1/namespaces/default/analysistemplates/nope",
            "analysistemplates",
            "nope",
        )],
    )
    .await;
    assert_eq!(
        (o.status, o.err.as_str()),
        (
            ExitStatus::Failure,
            "Error: analysistemplates.argoproj.io \"nope\" not found\n"
        )
    );
    let o = run(
        &["create", "ar", "--from-cluster-template", "nope"],
        vec![not_found(
            "/apis/argoproj.io/v1alpha1/clusteranalysistemplates/nope",
            "clusteranalysistemplates",
            "nope",
        )],
    )
    .await;
    assert_eq!(
        o.err,
        "Error: clusteranalysistemplates.argoproj.io \"nope\" not found\n"
    );

    // An argument without value: nothing is created.
    let with_arg = analysis_template(
        "AnalysisTemplate",
        "t",
        json!({"args": [{"name": "service-name"}], "metrics": [web_metric("m")]}),
    );
    let o = run(
        &["create", "ar", "--from", "t", "-a", "other=x"],
        vec![ok(
            Method::GET,
            "/apis/argoproj.io/v1alpha1/namespaces/default/analysistemplates/t",
            with_arg,
        )],
    )
    .await;
    assert_eq!(
        (o.status, o.err.as_str(), o.sent.len()),
        (
            ExitStatus::Failure,
            "Error: args.service-name was not resolved\n",
            0
        )
    );

    // A nested template is missing.
    let nesting = analysis_template(
        "AnalysisTemplate",
        "t",
        json!({"metrics": [web_metric("m")], "templates": [{"templateName": "gone"}]}),
    );
    let o = run(
        &["create", "ar", "--from", "t"],
        vec![
            ok(
                Method::GET,
                "/apis/argoproj.io/v1alpha1/namespaces/default/analysistemplates/t",
                nesting,
            ),
            not_found(
                "/apis/argoproj.io/v1alpha1/namespaces/default/analysistemplates/gone",
                "analysistemplates",
                "gone",
            ),
        ],
    )
    .await;
    assert_eq!(
        (o.status, o.err.as_str()),
        (
            ExitStatus::Failure,
            "Error: AnalysisTemplate \"gone\" not found\n"
        )
    );

    // A template nesting itself is read once and reported as a cycle.
    let looping = analysis_template(
        "AnalysisTemplate",
        "t",
        json!({"metrics": [web_metric("m")], "templates": [{"templateName": "t"}]}),
    );
    let o = run(
        &["create", "ar", "--from", "t"],
        vec![ok(
            Method::GET,
            "/apis/argoproj.io/v1alpha1/namespaces/default/analysistemplates/t",
            looping,
        )],
    )
    .await;
    assert_eq!(
        o.err,
        "Error: analysis templates reference each other in a cycle: t -> t\n"
    );
}

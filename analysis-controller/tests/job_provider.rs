//! The Job provider's API calls against a small fake Kubernetes API server (Jobs and Pods in
//! memory), through the dispatcher.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: failing loudly is the point

mod support;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use analysis_controller::provider::{self, ProviderContext, ProviderEnv, Reading};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::get;
use k8s_openapi::api::batch::v1::JobSpec;
use k8s_openapi::api::core::v1::{PodSpec, PodTemplateSpec};
use serde_json::{Value, json};
use shared_types::analysis::{
    AnalysisPhase, AnalysisRun, AnalysisRunStatus, JobMetric, Metric, MetricProvider, MetricResult,
};
use support::http::serve;

const UID: &str = "6a1f0c3e-1f2d-4c2b-8f7e-2b9d5c4a7e10";

#[derive(Default)]
struct Cluster {
    jobs: BTreeMap<String, Value>,
    pods: Vec<Value>,
    deletes: Vec<(String, Value)>,
    clock: i64,
}

type Shared = Arc<Mutex<Cluster>>;

fn status(code: u16, reason: &str, message: &str) -> (StatusCode, String) {
    (
        StatusCode::from_u16(code).unwrap(),
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "reason": reason, "message": message, "code": code})
        .to_string(),
    )
}

fn selected(object: &Value, selector: Option<&String>) -> bool {
    let Some(selector) = selector else {
        return true;
    };
    selector.split(',').all(|term| {
        let (k, v) = term.split_once('=').unwrap();
        object["metadata"]["labels"][k].as_str() == Some(v)
    })
}

async fn create_job(
    State(cluster): State<Shared>,
    Path(ns): Path<String>,
    body: String,
) -> (StatusCode, String) {
    let mut job: Value = serde_json::from_str(&body).unwrap();
    let name = job["metadata"]["name"].as_str().unwrap().to_string();
    let mut c = cluster.lock().unwrap();
    if c.jobs.contains_key(&name) {
        return status(
            409,
            "AlreadyExists",
            &format!("jobs.batch \"{name}\" already exists"),
        );
    }
    c.clock += 1;
    let ts = jiff::Timestamp::from_second(1_700_000_000 + c.clock).unwrap();
    job["metadata"]["namespace"] = json!(ns);
    job["metadata"]["creationTimestamp"] = json!(ts.to_string());
    job["metadata"]["uid"] = json!(format!("job-uid-{}", c.clock));
    c.jobs.insert(name, job.clone());
    (StatusCode::CREATED, job.to_string())
}

async fn list_jobs(State(cluster): State<Shared>, Query(q): Query<HashMap<String, String>>) -> String {
    let c = cluster.lock().unwrap();
    let items: Vec<&Value> = c
        .jobs
        .values()
        .filter(|j| selected(j, q.get("labelSelector")))
        .collect();
    json!({"apiVersion": "batch/v1", "kind": "JobList", "metadata": {}, "items": items}).to_string()
}

async fn get_job(
    State(cluster): State<Shared>,
    Path((_ns, name)): Path<(String, String)>,
) -> (StatusCode, String) {
    match cluster.lock().unwrap().jobs.get(&name) {
        Some(job) => (StatusCode::OK, job.to_string()),
        None => status(404, "NotFound", &format!("jobs.batch \"{name}\" not found")),
    }
}

async fn delete_job(
    State(cluster): State<Shared>,
    Path((_ns, name)): Path<(String, String)>,
    body: String,
) -> (StatusCode, String) {
    let mut c = cluster.lock().unwrap();
    let options: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    c.deletes.push((name.clone(), options));
    match c.jobs.remove(&name) {
        Some(job) => (StatusCode::OK, job.to_string()),
        None => status(404, "NotFound", &format!("jobs.batch \"{name}\" not found")),
    }
}

async fn list_pods(State(cluster): State<Shared>, Query(q): Query<HashMap<String, String>>) -> String {
    let c = cluster.lock().unwrap();
    let items: Vec<&Value> = c
        .pods
        .iter()
        .filter(|p| selected(p, q.get("labelSelector")))
        .collect();
    json!({"apiVersion": "v1", "kind": "PodList", "metadata": {}, "items": items}).to_string()
}

async fn fake_api() -> (kube::Client, Shared) {
    let cluster: Shared = Arc::default();
    let router = axum::Router::new()
        .route(
            "/apis/batch/v1/namespaces/{ns}/jobs",
            get(list_jobs).post(create_job),
        )
        .route(
            "/apis/batch/v1/namespaces/{ns}/jobs/{name}",
            get(get_job).delete(delete_job),
        )
        .route("/api/v1/namespaces/{ns}/pods", get(list_pods))
        .with_state(cluster.clone());
    let addr = serve(router).await;
    analysis_controller::provider::install_crypto_provider();
    let config = kube::Config::new(format!("http://{addr}").parse().unwrap());
    (kube::Client::try_from(config).unwrap(), cluster)
}

fn run() -> AnalysisRun {
    let mut run = AnalysisRun::new("demo-run", Default::default());
    run.metadata.namespace = Some("demo".into());
    run.metadata.uid = Some(UID.into());
    run
}

fn metric() -> Metric {
    Metric {
        name: "smoke".into(),
        provider: MetricProvider {
            job: Some(JobMetric {
                metadata: None,
                spec: JobSpec {
                    template: PodTemplateSpec {
                        metadata: None,
                        spec: Some(PodSpec {
                            restart_policy: Some("Never".into()),
                            ..Default::default()
                        }),
                    },
                    ..Default::default()
                },
            }),
            ..Default::default()
        },
        ..Default::default()
    }
}

fn job_ref(name: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("job-name".to_string(), name.to_string()),
        ("job-namespace".to_string(), "demo".to_string()),
    ])
}

#[tokio::test]
async fn job_lifecycle_through_the_dispatcher() {
    let (client, cluster) = fake_api().await;
    let mut run = run();
    let env = ProviderEnv::default();
    let m = metric();
    let name = format!("{UID}.smoke.1");

    // Start: the Job is created, owned and labelled; the reading names it.
    let ctx = ProviderContext {
        run: &run,
        kube: Some(&client),
        env: &env,
    };
    let reading = provider::measure(ctx, &m).await.unwrap();
    assert_eq!(
        reading,
        Reading::Running {
            metadata: job_ref(&name)
        }
    );
    {
        let c = cluster.lock().unwrap();
        let job = &c.jobs[&name];
        assert_eq!(
            job["metadata"]["labels"]["analysisrun.argoproj.io/uid"],
            json!(UID)
        );
        assert_eq!(
            job["metadata"]["annotations"]["analysisrun.argoproj.io/metric-name"],
            json!("smoke")
        );
        assert_eq!(
            job["metadata"]["ownerReferences"][0]["kind"],
            json!("AnalysisRun")
        );
        assert_eq!(job["metadata"]["ownerReferences"][0]["uid"], json!(UID));
        assert_eq!(
            job["spec"]["template"]["metadata"]["labels"]["analysisrun.argoproj.io/uid"],
            json!(UID)
        );
    }
    // Starting again (a retried reconcile): the existing Job of this run is reused.
    assert_eq!(
        provider::measure(ctx, &m).await.unwrap(),
        Reading::Running {
            metadata: job_ref(&name)
        }
    );

    // Resume: no condition, no pod trouble → still running.
    assert_eq!(
        provider::resume(ctx, &m, &job_ref(&name)).await.unwrap(),
        Reading::Running {
            metadata: job_ref(&name)
        }
    );
    // A pod that cannot pull its image → Inconclusive.
    cluster.lock().unwrap().pods.push(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "smoke-pod", "namespace": "demo", "labels": {"job-name": name}},
        "status": {"containerStatuses": [{"name": "test", "image": "x", "imageID": "", "ready": false,
            "restartCount": 0, "state": {"waiting": {"reason": "ImagePullBackOff",
            "message": "Back-off pulling image \"x\""}}}]}
    }));
    match provider::resume(ctx, &m, &job_ref(&name)).await.unwrap() {
        Reading::Verdict { phase, message, .. } => {
            assert_eq!(phase, AnalysisPhase::Inconclusive);
            assert!(message.contains("ImagePullBackOff"), "{message}");
        }
        other => panic!("unexpected {other:?}"),
    }
    cluster.lock().unwrap().pods.clear();
    // Complete → Successful.
    cluster.lock().unwrap().jobs.get_mut(&name).unwrap()["status"] =
        json!({"conditions": [{"type": "Complete", "status": "True"}]});
    assert_eq!(
        provider::resume(ctx, &m, &job_ref(&name)).await.unwrap(),
        Reading::Verdict {
            phase: AnalysisPhase::Successful,
            message: String::new(),
            metadata: job_ref(&name)
        }
    );
    // Failed → Failed, with the reason.
    cluster.lock().unwrap().jobs.get_mut(&name).unwrap()["status"] = json!({"conditions": [
        {"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded",
         "message": "Job has reached the specified backoff limit"}]});
    match provider::resume(ctx, &m, &job_ref(&name)).await.unwrap() {
        Reading::Verdict { phase, message, .. } => {
            assert_eq!(phase, AnalysisPhase::Failed);
            assert_eq!(
                message,
                format!(
                    "job {name} failed: BackoffLimitExceeded: Job has reached the specified backoff limit"
                )
            );
        }
        other => panic!("unexpected {other:?}"),
    }

    // Terminate: the Job is deleted in the background; deleting a missing Job is fine.
    assert_eq!(
        provider::terminate(ctx, &m, &job_ref(&name)).await.unwrap(),
        Reading::Verdict {
            phase: AnalysisPhase::Inconclusive,
            message: "Metric Terminated".into(),
            metadata: job_ref(&name)
        }
    );
    {
        let c = cluster.lock().unwrap();
        assert!(c.jobs.is_empty());
        assert_eq!(c.deletes[0].0, name);
        assert_eq!(c.deletes[0].1["propagationPolicy"], json!("Background"));
    }
    provider::terminate(ctx, &m, &job_ref(&name)).await.unwrap();
    // Resuming a Job that is gone is an error naming it.
    let err = provider::resume(ctx, &m, &job_ref(&name)).await.unwrap_err();
    assert_eq!(err.0, format!("job demo/{name} not found"));

    // Three measurements → three Jobs; retention 1 keeps the newest.
    for count in 0..3 {
        run.status = Some(AnalysisRunStatus {
            metric_results: Some(vec![MetricResult {
                name: "smoke".into(),
                count: Some(count),
                ..Default::default()
            }]),
            ..Default::default()
        });
        let ctx = ProviderContext {
            run: &run,
            kube: Some(&client),
            env: &env,
        };
        provider::measure(ctx, &m).await.unwrap();
    }
    let ctx = ProviderContext {
        run: &run,
        kube: Some(&client),
        env: &env,
    };
    provider::garbage_collect(ctx, &m, 1).await.unwrap();
    let left: Vec<String> = cluster.lock().unwrap().jobs.keys().cloned().collect();
    assert_eq!(left, vec![format!("{UID}.smoke.3")]);
}

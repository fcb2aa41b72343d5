//! The Job provider: a measurement is a `batch/v1` Job; it succeeds when the Job completes and
//! fails when the Job fails.
//!
//! As in Argo: the Job is named `<run uid>.<metric>.<n>` (n = measurements taken + errors + 1,
//! the metric name shortened so the name fits the 63 characters of the `job-name` label the
//! Job controller puts on pods), created in the run's namespace or in
//! `ARGO_ROLLOUTS_ANALYSIS_JOB_NAMESPACE`, labelled `analysisrun.argoproj.io/uid` (also its pod
//! template), annotated with the run's name and namespace and the metric's name, and owned by
//! the run (controller reference; not across namespaces). The measurement's metadata names the
//! Job (`job-name`, `job-namespace`). A pod that cannot pull its image
//! (`ErrImagePull`, `ImagePullBackOff`, `InvalidImageName`) makes the measurement
//! Inconclusive; terminating deletes the Job and ends the measurement Inconclusive with
//! `Metric Terminated`. Garbage collection keeps the newest Jobs of a metric.
//!
//! The pure parts ([`build_job`], [`job_verdict`], [`pod_verdict`], [`jobs_to_delete`]) are
//! separate from the calls to the API server.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{Api, DeleteParams, ListParams, PostParams, PropagationPolicy};
use kube::{Resource, ResourceExt};
use shared_types::analysis::{
    ANALYSIS_RUN_METRIC_NAME_ANNOTATION, ANALYSIS_RUN_NAME_ANNOTATION, ANALYSIS_RUN_NAMESPACE_ANNOTATION,
    ANALYSIS_RUN_UID_LABEL, AnalysisPhase, AnalysisRun, JOB_NAME_METADATA_KEY, JOB_NAMESPACE_METADATA_KEY,
    JobMetric, Metric,
};

use super::{ProviderEnv, ProviderError, Reading};

/// Message of a measurement whose Job was deleted because the run is terminating.
pub const TERMINATED_MESSAGE: &str = "Metric Terminated";

/// Label with the AnalysisRun's name, added (besides Argo's annotation) when the name is a
/// valid label value, so Jobs can be selected by run name.
pub const ANALYSIS_RUN_NAME_LABEL: &str = ANALYSIS_RUN_NAME_ANNOTATION;
/// Label with the metric's name, added (besides Argo's annotation) when it is a valid label
/// value.
pub const ANALYSIS_RUN_METRIC_NAME_LABEL: &str = ANALYSIS_RUN_METRIC_NAME_ANNOTATION;

/// Pod waiting reasons that mean the Job will never run: the measurement is Inconclusive.
pub const IMAGE_FAILURE_REASONS: [&str; 3] = ["ErrImagePull", "ImagePullBackOff", "InvalidImageName"];

/// Longest Job name (the Job controller copies it into a pod label).
const MAX_JOB_NAME: usize = 63;

/// Bound on each call to the API server.
const KUBE_TIMEOUT: Duration = Duration::from_secs(30);

/// The namespace Job metrics of `run` run in: `ARGO_ROLLOUTS_ANALYSIS_JOB_NAMESPACE` when set,
/// else the run's.
pub fn job_namespace(run: &AnalysisRun, env: &ProviderEnv) -> String {
    env.job_namespace
        .clone()
        .filter(|ns| !ns.is_empty())
        .unwrap_or_else(|| run.namespace().unwrap_or_default())
}

/// `<run uid>.<metric name>.<n>` with n = the metric's count + error + 1, the metric name cut
/// so the whole fits 63 characters.
pub fn job_name(run: &AnalysisRun, metric_name: &str) -> String {
    let uid = run.metadata.uid.as_deref().unwrap_or_default();
    let n = run
        .status
        .as_ref()
        .and_then(|s| s.metric_result(metric_name))
        .map_or(1, |r| {
            i64::from(r.count.unwrap_or(0)) + i64::from(r.error.unwrap_or(0)) + 1
        });
    let suffix = n.to_string();
    let room = MAX_JOB_NAME.saturating_sub(uid.len() + suffix.len() + 2);
    let mut metric: String = metric_name.chars().take(room).collect();
    // A cut name must still end in an alphanumeric character (DNS label rules).
    if metric.len() < metric_name.len() {
        while metric.ends_with(|c: char| !c.is_ascii_alphanumeric()) {
            metric.pop();
        }
    }
    format!("{uid}.{metric}.{suffix}")
}

/// Whether `value` may be a label value (at most 63 characters, alphanumerics with `-`, `_`,
/// `.` inside).
fn is_label_value(value: &str) -> bool {
    let bytes = value.as_bytes();
    if bytes.is_empty() {
        return true;
    }
    bytes.len() <= 63
        && bytes.first().is_some_and(u8::is_ascii_alphanumeric)
        && bytes.last().is_some_and(u8::is_ascii_alphanumeric)
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// The Job measuring `metric` for `run` in `namespace` (see the module docs).
pub fn build_job(
    run: &AnalysisRun,
    metric: &Metric,
    job_metric: &JobMetric,
    namespace: &str,
) -> Result<Job, ProviderError> {
    let uid = run
        .metadata
        .uid
        .clone()
        .filter(|u| !u.is_empty())
        .ok_or_else(|| ProviderError::new("AnalysisRun has no uid yet"))?;
    let run_name = run.name_any();
    let run_namespace = run.namespace().unwrap_or_default();
    let user = job_metric.metadata.clone().unwrap_or_default();

    let mut labels = user.labels.unwrap_or_default();
    labels.insert(ANALYSIS_RUN_UID_LABEL.to_string(), uid.clone());
    if is_label_value(&run_name) {
        labels.insert(ANALYSIS_RUN_NAME_LABEL.to_string(), run_name.clone());
    }
    if is_label_value(&metric.name) {
        labels.insert(ANALYSIS_RUN_METRIC_NAME_LABEL.to_string(), metric.name.clone());
    }
    let mut annotations = user.annotations.unwrap_or_default();
    annotations.insert(ANALYSIS_RUN_NAME_ANNOTATION.to_string(), run_name.clone());
    annotations.insert(
        ANALYSIS_RUN_NAMESPACE_ANNOTATION.to_string(),
        run_namespace.clone(),
    );
    annotations.insert(
        ANALYSIS_RUN_METRIC_NAME_ANNOTATION.to_string(),
        metric.name.clone(),
    );

    // An owner must live in the same namespace: a Job elsewhere is not owned (Argo does the
    // same) and is cleaned up by garbage collection and termination only.
    let owner_references = (namespace == run_namespace).then(|| {
        vec![OwnerReference {
            api_version: AnalysisRun::api_version(&()).into_owned(),
            kind: AnalysisRun::kind(&()).into_owned(),
            name: run_name.clone(),
            uid: uid.clone(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        }]
    });

    let mut spec = job_metric.spec.clone();
    let template_meta = spec.template.metadata.get_or_insert_with(ObjectMeta::default);
    template_meta
        .labels
        .get_or_insert_with(BTreeMap::new)
        .insert(ANALYSIS_RUN_UID_LABEL.to_string(), uid.clone());

    Ok(Job {
        metadata: ObjectMeta {
            name: Some(job_name(run, &metric.name)),
            namespace: Some(namespace.to_string()),
            labels: Some(labels),
            annotations: Some(annotations),
            owner_references,
            ..Default::default()
        },
        spec: Some(spec),
        status: None,
    })
}

/// The measurement's phase from the Job's conditions: `Complete` → Successful, `Failed` →
/// Failed (with the condition's reason and message), otherwise `None` (still running).
pub fn job_verdict(job: &Job) -> Option<(AnalysisPhase, String)> {
    let conditions = job.status.as_ref()?.conditions.as_deref().unwrap_or_default();
    let mut verdict = None;
    for c in conditions.iter().filter(|c| c.status == "True") {
        match c.type_.as_str() {
            "Complete" => verdict = Some((AnalysisPhase::Successful, String::new())),
            "Failed" => {
                let why = [c.reason.as_deref(), c.message.as_deref()]
                    .into_iter()
                    .flatten()
                    .filter(|s| !s.is_empty())
                    .collect::<Vec<_>>()
                    .join(": ");
                let name = job.name_any();
                let message = if why.is_empty() {
                    format!("job {name} failed")
                } else {
                    format!("job {name} failed: {why}")
                };
                verdict = Some((AnalysisPhase::Failed, message));
            }
            _ => {}
        }
    }
    verdict
}

/// Inconclusive when a pod of the Job cannot start because of its image
/// ([`IMAGE_FAILURE_REASONS`]), otherwise `None`.
pub fn pod_verdict(pods: &[Pod]) -> Option<(AnalysisPhase, String)> {
    for pod in pods {
        let Some(status) = pod.status.as_ref() else {
            continue;
        };
        let containers = status
            .init_container_statuses
            .iter()
            .flatten()
            .chain(status.container_statuses.iter().flatten());
        for c in containers {
            let Some(waiting) = c.state.as_ref().and_then(|s| s.waiting.as_ref()) else {
                continue;
            };
            let reason = waiting.reason.as_deref().unwrap_or_default();
            if IMAGE_FAILURE_REASONS.contains(&reason) {
                let mut message = format!(
                    "pod {} cannot start: container {}: {reason}",
                    pod.name_any(),
                    c.name
                );
                if let Some(detail) = waiting.message.as_deref().filter(|m| !m.is_empty()) {
                    message.push_str(": ");
                    message.push_str(detail);
                }
                return Some((AnalysisPhase::Inconclusive, message));
            }
        }
    }
    None
}

/// Names of the Jobs of `metric_name` to delete so that the newest `limit` remain (oldest
/// first by creation time, then name). Jobs of other metrics are left alone.
pub fn jobs_to_delete(jobs: &[Job], metric_name: &str, limit: usize) -> Vec<String> {
    let mut mine: Vec<&Job> = jobs
        .iter()
        .filter(|j| {
            j.annotations()
                .get(ANALYSIS_RUN_METRIC_NAME_ANNOTATION)
                .map(String::as_str)
                == Some(metric_name)
        })
        .collect();
    mine.sort_by(|a, b| {
        let at = a.metadata.creation_timestamp.as_ref().map(|t| t.0);
        let bt = b.metadata.creation_timestamp.as_ref().map(|t| t.0);
        at.cmp(&bt).then_with(|| a.name_any().cmp(&b.name_any()))
    });
    let excess = mine.len().saturating_sub(limit);
    mine.into_iter().take(excess).map(ResourceExt::name_any).collect()
}

/// Argo's delay before looking at a running Job again: `sqrt(2 * elapsed)` seconds since the
/// measurement started (at least one second). A Job watch makes the first look immediate.
pub fn resume_delay(elapsed: Duration) -> Duration {
    Duration::from_secs_f64((2.0 * elapsed.as_secs_f64()).sqrt().max(1.0))
}

/// The Job named by a measurement's metadata: (`job-name`, `job-namespace`, defaulting to the
/// run's namespace).
pub fn job_ref(
    run: &AnalysisRun,
    metadata: &BTreeMap<String, String>,
) -> Result<(String, String), ProviderError> {
    let name = metadata
        .get(JOB_NAME_METADATA_KEY)
        .filter(|n| !n.is_empty())
        .ok_or_else(|| ProviderError::new("job metadata reference missing"))?;
    let namespace = metadata
        .get(JOB_NAMESPACE_METADATA_KEY)
        .filter(|n| !n.is_empty())
        .cloned()
        .unwrap_or_else(|| run.namespace().unwrap_or_default());
    Ok((name.clone(), namespace))
}

fn reference(name: &str, namespace: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (JOB_NAME_METADATA_KEY.to_string(), name.to_string()),
        (JOB_NAMESPACE_METADATA_KEY.to_string(), namespace.to_string()),
    ])
}

async fn bounded<T>(
    what: &str,
    call: impl Future<Output = Result<T, kube::Error>>,
) -> Result<T, kube::Error> {
    match tokio::time::timeout(KUBE_TIMEOUT, call).await {
        Ok(result) => result,
        Err(_) => Err(kube::Error::Service(
            format!(
                "{what}: no answer from the API server within {}s",
                KUBE_TIMEOUT.as_secs()
            )
            .into(),
        )),
    }
}

fn is_status(err: &kube::Error, code: u16) -> bool {
    matches!(err, kube::Error::Api(status) if status.code == code)
}

fn kube_error(action: &str, err: &kube::Error) -> ProviderError {
    match err {
        kube::Error::Api(status) => ProviderError(format!("{action}: {}", status.message)),
        other => ProviderError(format!("{action}: {other}")),
    }
}

/// Creates the measurement's Job (an existing Job of the same name made for this run is
/// reused) and returns [`Reading::Running`] naming it.
pub async fn start(
    client: &kube::Client,
    run: &AnalysisRun,
    metric: &Metric,
    job_metric: &JobMetric,
    namespace: &str,
) -> Result<Reading, ProviderError> {
    let job = build_job(run, metric, job_metric, namespace)?;
    let name = job.name_any();
    let api: Api<Job> = Api::namespaced(client.clone(), namespace);
    let action = format!("job create {namespace}/{name}");
    match bounded(&action, api.create(&PostParams::default(), &job)).await {
        Ok(created) => {
            tracing::info!(job = %name, namespace, "analysis job created");
            Ok(Reading::Running {
                metadata: reference(&created.name_any(), namespace),
            })
        }
        Err(err) if is_status(&err, 409) => {
            let existing = bounded(&action, api.get(&name))
                .await
                .map_err(|e| kube_error(&action, &e))?;
            let run_uid = run.metadata.uid.as_deref().unwrap_or_default();
            if existing.labels().get(ANALYSIS_RUN_UID_LABEL).map(String::as_str) != Some(run_uid) {
                return Err(kube_error(&action, &err));
            }
            tracing::info!(job = %name, namespace, "analysis job already created");
            Ok(Reading::Running {
                metadata: reference(&name, namespace),
            })
        }
        Err(err) => Err(kube_error(&action, &err)),
    }
}

/// Looks at the measurement's Job: its verdict when it finished, Inconclusive when its pod
/// cannot pull its image, else still [`Reading::Running`].
pub async fn resume(
    client: &kube::Client,
    run: &AnalysisRun,
    metadata: &BTreeMap<String, String>,
) -> Result<Reading, ProviderError> {
    let (name, namespace) = job_ref(run, metadata)?;
    let api: Api<Job> = Api::namespaced(client.clone(), &namespace);
    let action = format!("job {namespace}/{name}");
    let job = bounded(&action, api.get(&name)).await.map_err(|e| {
        if is_status(&e, 404) {
            ProviderError(format!("job {namespace}/{name} not found"))
        } else {
            kube_error(&action, &e)
        }
    })?;
    let metadata = reference(&name, &namespace);
    if let Some((phase, message)) = job_verdict(&job) {
        tracing::info!(job = %name, namespace, phase = phase.as_str(), "analysis job completed");
        return Ok(Reading::Verdict {
            phase,
            message,
            metadata,
        });
    }
    let pods: Api<Pod> = Api::namespaced(client.clone(), &namespace);
    let selector = ListParams::default().labels(&format!("job-name={name}"));
    let listed = bounded(&action, pods.list(&selector))
        .await
        .map_err(|e| kube_error(&format!("pods of job {namespace}/{name}"), &e))?;
    if let Some((phase, message)) = pod_verdict(&listed.items) {
        return Ok(Reading::Verdict {
            phase,
            message,
            metadata,
        });
    }
    Ok(Reading::Running { metadata })
}

/// Deletes the measurement's Job (background propagation; already gone is fine) and ends the
/// measurement Inconclusive with [`TERMINATED_MESSAGE`].
pub async fn terminate(
    client: &kube::Client,
    run: &AnalysisRun,
    metadata: &BTreeMap<String, String>,
) -> Result<Reading, ProviderError> {
    let (name, namespace) = job_ref(run, metadata)?;
    delete_job(client, &namespace, &name).await?;
    tracing::info!(job = %name, namespace, "analysis job terminated");
    Ok(Reading::Verdict {
        phase: AnalysisPhase::Inconclusive,
        message: TERMINATED_MESSAGE.to_string(),
        metadata: reference(&name, &namespace),
    })
}

/// Deletes the oldest Jobs of the metric so that the newest `limit` remain.
pub async fn garbage_collect(
    client: &kube::Client,
    run: &AnalysisRun,
    metric_name: &str,
    namespace: &str,
    limit: usize,
) -> Result<(), ProviderError> {
    let Some(uid) = run.metadata.uid.as_deref().filter(|u| !u.is_empty()) else {
        return Ok(());
    };
    let api: Api<Job> = Api::namespaced(client.clone(), namespace);
    let selector = ListParams::default().labels(&format!("{ANALYSIS_RUN_UID_LABEL}={uid}"));
    let action = format!("list jobs of run {}", run.name_any());
    let jobs = bounded(&action, api.list(&selector))
        .await
        .map_err(|e| kube_error(&action, &e))?;
    for name in jobs_to_delete(&jobs.items, metric_name, limit) {
        delete_job(client, namespace, &name).await?;
        tracing::info!(job = %name, namespace, "analysis job garbage collected");
    }
    Ok(())
}

async fn delete_job(client: &kube::Client, namespace: &str, name: &str) -> Result<(), ProviderError> {
    let api: Api<Job> = Api::namespaced(client.clone(), namespace);
    let params = DeleteParams {
        propagation_policy: Some(PropagationPolicy::Background),
        ..Default::default()
    };
    let action = format!("job delete {namespace}/{name}");
    match bounded(&action, api.delete(name, &params)).await {
        Ok(_) => Ok(()),
        Err(e) if is_status(&e, 404) => Ok(()),
        Err(e) => Err(kube_error(&action, &e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::batch::v1::{JobCondition, JobSpec, JobStatus};
    use k8s_openapi::api::core::v1::{
        ContainerState, ContainerStateWaiting, ContainerStatus, PodSpec, PodStatus, PodTemplateSpec,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use shared_types::analysis::{AnalysisRunStatus, MetricProvider, MetricResult};
    use shared_types::common::PodTemplateMetadata;

    const UID: &str = "0f2d4a4e-6f7e-4f5b-9b47-3c4b6a1f7d20";

    fn run(namespace: &str) -> AnalysisRun {
        let mut run = AnalysisRun::new("mock-server-6f8b-2", Default::default());
        run.metadata.namespace = Some(namespace.into());
        run.metadata.uid = Some(UID.into());
        run
    }

    fn job_metric() -> JobMetric {
        JobMetric {
            metadata: Some(PodTemplateMetadata {
                labels: Some(BTreeMap::from([("team".into(), "a".into())])),
                annotations: Some(BTreeMap::from([("note".into(), "x".into())])),
            }),
            spec: JobSpec {
                backoff_limit: Some(0),
                template: PodTemplateSpec {
                    metadata: None,
                    spec: Some(PodSpec {
                        restart_policy: Some("Never".into()),
                        ..Default::default()
                    }),
                },
                ..Default::default()
            },
        }
    }

    fn metric(name: &str) -> Metric {
        Metric {
            name: name.into(),
            provider: MetricProvider {
                job: Some(job_metric()),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    #[test]
    fn job_is_named_labelled_annotated_and_owned_as_argo() {
        let r = run("demo");
        let job = build_job(&r, &metric("smoke"), &job_metric(), "demo").unwrap();
        let meta = &job.metadata;
        assert_eq!(meta.name.as_deref(), Some(format!("{UID}.smoke.1").as_str()));
        assert_eq!(meta.namespace.as_deref(), Some("demo"));
        let labels = meta.labels.clone().unwrap();
        assert_eq!(labels["analysisrun.argoproj.io/uid"], UID);
        assert_eq!(labels["analysisrun.argoproj.io/name"], "mock-server-6f8b-2");
        assert_eq!(labels["analysisrun.argoproj.io/metric-name"], "smoke");
        assert_eq!(labels["team"], "a");
        let annotations = meta.annotations.clone().unwrap();
        assert_eq!(annotations["analysisrun.argoproj.io/name"], "mock-server-6f8b-2");
        assert_eq!(annotations["analysisrun.argoproj.io/namespace"], "demo");
        assert_eq!(annotations["analysisrun.argoproj.io/metric-name"], "smoke");
        assert_eq!(annotations["note"], "x");
        let owners = meta.owner_references.clone().unwrap();
        assert_eq!(owners.len(), 1);
        assert_eq!(owners[0].api_version, "argoproj.io/v1alpha1");
        assert_eq!(owners[0].kind, "AnalysisRun");
        assert_eq!(owners[0].name, "mock-server-6f8b-2");
        assert_eq!(owners[0].uid, UID);
        assert_eq!(owners[0].controller, Some(true));
        assert_eq!(owners[0].block_owner_deletion, Some(true));
        let spec = job.spec.unwrap();
        assert_eq!(spec.backoff_limit, Some(0));
        let template_labels = spec.template.metadata.unwrap().labels.unwrap();
        assert_eq!(template_labels["analysisrun.argoproj.io/uid"], UID);
    }

    #[test]
    fn job_in_another_namespace_is_not_owned() {
        let job = build_job(&run("demo"), &metric("smoke"), &job_metric(), "jobs").unwrap();
        assert_eq!(job.metadata.namespace.as_deref(), Some("jobs"));
        assert!(job.metadata.owner_references.is_none());
        let env = ProviderEnv {
            job_namespace: Some("jobs".into()),
            ..Default::default()
        };
        assert_eq!(job_namespace(&run("demo"), &env), "jobs");
        assert_eq!(job_namespace(&run("demo"), &ProviderEnv::default()), "demo");
    }

    #[test]
    fn job_name_counts_measurements_and_fits_63() {
        let mut r = run("demo");
        r.status = Some(AnalysisRunStatus {
            metric_results: Some(vec![MetricResult {
                name: "smoke".into(),
                count: Some(3),
                error: Some(2),
                ..Default::default()
            }]),
            ..Default::default()
        });
        assert_eq!(job_name(&r, "smoke"), format!("{UID}.smoke.6"));
        assert_eq!(job_name(&r, "other"), format!("{UID}.other.1"));
        let long = "averylongmetricnamethatdoesnotfitatall";
        let name = job_name(&r, long);
        assert_eq!(name.len(), 63);
        assert_eq!(name, format!("{UID}.averylongmetricnamethatd.1"));
        // A cut ending in '-' is trimmed.
        let name = job_name(&r, "abcdefghijklmnopqrstuvwx-yz");
        assert!(!name.contains("-.1"), "{name}");
    }

    #[test]
    fn long_names_are_annotations_only() {
        let mut r = run("demo");
        r.metadata.name = Some("x".repeat(70));
        let job = build_job(&r, &metric("smoke"), &job_metric(), "demo").unwrap();
        let labels = job.metadata.labels.unwrap();
        assert!(!labels.contains_key("analysisrun.argoproj.io/name"));
        assert_eq!(
            job.metadata.annotations.unwrap()["analysisrun.argoproj.io/name"],
            "x".repeat(70)
        );
    }

    #[test]
    fn run_without_uid_is_an_error() {
        let mut r = run("demo");
        r.metadata.uid = None;
        assert!(build_job(&r, &metric("smoke"), &job_metric(), "demo").is_err());
    }

    fn job_with(conditions: Vec<(&str, &str, Option<&str>)>) -> Job {
        Job {
            metadata: ObjectMeta {
                name: Some("j".into()),
                ..Default::default()
            },
            status: Some(JobStatus {
                conditions: Some(
                    conditions
                        .into_iter()
                        .map(|(t, s, reason)| JobCondition {
                            type_: t.into(),
                            status: s.into(),
                            reason: reason.map(Into::into),
                            ..Default::default()
                        })
                        .collect(),
                ),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn verdict_from_job_conditions() {
        assert_eq!(
            job_verdict(&job_with(vec![
                ("SuccessCriteriaMet", "True", None),
                ("Complete", "True", None)
            ])),
            Some((AnalysisPhase::Successful, String::new()))
        );
        assert_eq!(
            job_verdict(&job_with(vec![
                ("FailureTarget", "True", None),
                ("Failed", "True", Some("BackoffLimitExceeded"))
            ])),
            Some((
                AnalysisPhase::Failed,
                "job j failed: BackoffLimitExceeded".to_string()
            ))
        );
        assert_eq!(job_verdict(&job_with(vec![("Suspended", "True", None)])), None);
        assert_eq!(job_verdict(&job_with(vec![("Complete", "False", None)])), None);
        assert_eq!(job_verdict(&Job::default()), None);
    }

    #[test]
    fn image_pull_failures_are_inconclusive() {
        let pod = |reason: &str| Pod {
            metadata: ObjectMeta {
                name: Some("p".into()),
                ..Default::default()
            },
            status: Some(PodStatus {
                container_statuses: Some(vec![ContainerStatus {
                    name: "c".into(),
                    state: Some(ContainerState {
                        waiting: Some(ContainerStateWaiting {
                            reason: Some(reason.into()),
                            message: None,
                        }),
                        ..Default::default()
                    }),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(
            pod_verdict(&[pod("ImagePullBackOff")]),
            Some((
                AnalysisPhase::Inconclusive,
                "pod p cannot start: container c: ImagePullBackOff".to_string()
            ))
        );
        assert_eq!(pod_verdict(&[pod("ContainerCreating")]), None);
        assert_eq!(pod_verdict(&[]), None);
    }

    fn listed(name: &str, metric: &str, second: i64) -> Job {
        Job {
            metadata: ObjectMeta {
                name: Some(name.into()),
                annotations: Some(BTreeMap::from([(
                    ANALYSIS_RUN_METRIC_NAME_ANNOTATION.to_string(),
                    metric.to_string(),
                )])),
                creation_timestamp: Some(Time(jiff::Timestamp::from_second(second).unwrap())),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    #[test]
    fn garbage_collection_keeps_the_newest_of_the_metric() {
        let jobs = vec![
            listed("m.3", "m", 30),
            listed("m.1", "m", 10),
            listed("other.1", "other", 5),
            listed("m.2", "m", 20),
        ];
        assert_eq!(jobs_to_delete(&jobs, "m", 1), vec!["m.1", "m.2"]);
        assert_eq!(jobs_to_delete(&jobs, "m", 3), Vec::<String>::new());
        assert_eq!(jobs_to_delete(&jobs, "m", 0), vec!["m.1", "m.2", "m.3"]);
        assert_eq!(jobs_to_delete(&jobs, "other", 0), vec!["other.1"]);
    }

    #[test]
    fn job_reference_from_metadata() {
        let r = run("demo");
        let with_ns = reference("j", "jobs");
        assert_eq!(job_ref(&r, &with_ns).unwrap(), ("j".into(), "jobs".into()));
        let only_name = BTreeMap::from([(JOB_NAME_METADATA_KEY.to_string(), "j".to_string())]);
        assert_eq!(job_ref(&r, &only_name).unwrap(), ("j".into(), "demo".into()));
        assert_eq!(
            job_ref(&r, &BTreeMap::new()).unwrap_err().0,
            "job metadata reference missing"
        );
    }

    #[test]
    fn resume_back_off() {
        assert_eq!(resume_delay(Duration::ZERO), Duration::from_secs(1));
        assert_eq!(resume_delay(Duration::from_secs(50)), Duration::from_secs(10));
    }
}

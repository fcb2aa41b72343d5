//! AnalysisRun summaries: phase, measurement counts and the Jobs of job metrics.

use shared_types::{
    analysis::{AnalysisPhase, AnalysisRun},
    object_meta::revision,
};

use super::{Metadata, icon, owned_by};

/// Measurement metadata key under which the Job provider records the Job's name.
const JOB_NAME_KEY: &str = "job-name";

/// One AnalysisRun of a Rollout or Experiment.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AnalysisRunInfo {
    /// Identity and creation time.
    pub meta: Metadata,
    /// Phase as written (empty when the controller has not set one yet).
    pub status: String,
    /// Status icon.
    pub icon: &'static str,
    /// `rollout.argoproj.io/revision`.
    pub revision: i64,
    /// Successful measurements, summed over metrics.
    pub successful: i32,
    /// Failed measurements.
    pub failed: i32,
    /// Inconclusive measurements.
    pub inconclusive: i32,
    /// Errored measurements.
    pub error: i32,
    /// Jobs started by job metrics, in measurement order.
    pub jobs: Vec<JobInfo>,
}

/// A Job run by a job metric, as recorded in the measurement.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct JobInfo {
    /// Job name; `created` is the measurement's start.
    pub meta: Metadata,
    /// Phase of the measurement.
    pub status: String,
    /// Status icon.
    pub icon: &'static str,
}

/// Summaries of the AnalysisRuns owned by `owner_uid`: newest revision first, then oldest run
/// first, then by name descending (Argo's order).
pub fn analysis_run_infos(owner_uid: &str, runs: &[AnalysisRun]) -> Vec<AnalysisRunInfo> {
    let mut infos: Vec<AnalysisRunInfo> = runs
        .iter()
        .filter(|r| owned_by(r.metadata.owner_references.as_ref(), owner_uid))
        .map(analysis_run_info)
        .collect();
    infos.sort_by(|a, b| {
        b.revision
            .cmp(&a.revision)
            .then_with(|| a.meta.created.cmp(&b.meta.created))
            .then_with(|| b.meta.name.cmp(&a.meta.name))
    });
    infos
}

fn analysis_run_info(run: &AnalysisRun) -> AnalysisRunInfo {
    let phase = run.status.as_ref().and_then(|s| s.phase);
    let mut info = AnalysisRunInfo {
        meta: Metadata::from_meta(&run.metadata),
        status: phase.map(|p| p.as_str().to_string()).unwrap_or_default(),
        icon: analysis_icon(phase),
        revision: revision(&run.metadata),
        ..Default::default()
    };
    let results = run
        .status
        .as_ref()
        .and_then(|s| s.metric_results.as_deref())
        .unwrap_or_default();
    for result in results {
        info.successful += result.successful.unwrap_or(0);
        info.failed += result.failed.unwrap_or(0);
        info.inconclusive += result.inconclusive.unwrap_or(0);
        info.error += result.error.unwrap_or(0);
        for measurement in result.measurements.as_deref().unwrap_or_default() {
            let Some(job) = measurement.metadata.as_ref().and_then(|m| m.get(JOB_NAME_KEY)) else {
                continue;
            };
            info.jobs.push(JobInfo {
                meta: Metadata {
                    name: job.clone(),
                    created: measurement.started_at.as_ref().map(|t| t.0),
                    ..Default::default()
                },
                status: measurement.phase.as_str().to_string(),
                icon: analysis_icon(Some(measurement.phase)),
            });
        }
    }
    info
}

/// Icon of an analysis (or experiment) phase.
pub fn analysis_icon(phase: Option<AnalysisPhase>) -> &'static str {
    match phase {
        Some(AnalysisPhase::Successful) => icon::OK,
        Some(AnalysisPhase::Inconclusive) => icon::UNKNOWN,
        Some(AnalysisPhase::Failed) => icon::BAD,
        Some(AnalysisPhase::Error) => icon::WARNING,
        Some(AnalysisPhase::Running) => icon::PROGRESSING,
        Some(AnalysisPhase::Pending) => icon::WAITING,
        None => " ",
    }
}

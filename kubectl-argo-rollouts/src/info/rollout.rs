//! The summary of a Rollout shown by `get rollout`: header values and the object tree.

use std::collections::BTreeSet;

use k8s_openapi::api::{apps::v1::ReplicaSet, core::v1::Pod};
use shared_types::{
    analysis::AnalysisRun,
    experiment::Experiment,
    rollout::{CanaryStep, Rollout},
};

use super::{
    AnalysisRunInfo, ExperimentInfo, Metadata, ReplicaSetInfo, analysis::analysis_run_infos,
    experiment::experiment_infos, icon, phase::rollout_phase, replicaset::replica_set_infos, tag,
};

/// Everything `get rollout` prints about a rollout.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RolloutInfo {
    /// Identity and creation time.
    pub meta: Metadata,
    /// Phase (`Healthy`, `Paused`, ...).
    pub status: String,
    /// Phase message.
    pub message: String,
    /// Status icon.
    pub icon: &'static str,
    /// `Canary`, `BlueGreen`, or empty when neither is set.
    pub strategy: String,
    /// Canary: `<currentStepIndex>/<steps>`, empty without steps or index.
    pub step: String,
    /// Canary: weight of the current (or last passed) setWeight step.
    pub set_weight: String,
    /// Canary: weight actually reached.
    pub actual_weight: String,
    /// `spec.replicas` (default 1).
    pub desired: i32,
    /// `status.replicas`.
    pub current: i32,
    /// `status.updatedReplicas`.
    pub updated: i32,
    /// `status.readyReplicas`.
    pub ready: i32,
    /// `status.availableReplicas`.
    pub available: i32,
    /// Owned ReplicaSets, newest revision first.
    pub replica_sets: Vec<ReplicaSetInfo>,
    /// Owned Experiments.
    pub experiments: Vec<ExperimentInfo>,
    /// Owned AnalysisRuns.
    pub analysis_runs: Vec<AnalysisRunInfo>,
}

/// A running image and the roles of the ReplicaSets running it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ImageInfo {
    /// Image reference.
    pub image: String,
    /// Role tags, e.g. `stable`, `active`, `Σ:baseline`.
    pub tags: Vec<String>,
}

impl RolloutInfo {
    /// Summarises `ro` and the objects it owns among those given (the rest are ignored).
    pub fn new(
        ro: &Rollout,
        replica_sets: &[ReplicaSet],
        pods: &[Pod],
        analysis_runs: &[AnalysisRun],
        experiments: &[Experiment],
    ) -> Self {
        let meta = Metadata::from_meta(&ro.metadata);
        let status = ro.status.clone().unwrap_or_default();
        let mut info = RolloutInfo {
            replica_sets: replica_set_infos(&meta.uid, Some(ro), replica_sets, pods),
            experiments: experiment_infos(&meta.uid, experiments, replica_sets, pods, analysis_runs),
            analysis_runs: analysis_run_infos(&meta.uid, analysis_runs),
            desired: ro.spec.replicas(),
            current: status.replicas.unwrap_or(0),
            updated: status.updated_replicas.unwrap_or(0),
            ready: status.ready_replicas.unwrap_or(0),
            available: status.available_replicas.unwrap_or(0),
            meta,
            ..Default::default()
        };
        if let Some(canary) = &ro.spec.strategy.canary {
            info.strategy = "Canary".into();
            let steps = canary.steps();
            if let Some(index) = status.current_step_index.filter(|_| !steps.is_empty()) {
                info.step = format!("{index}/{}", steps.len());
            }
            // Argo shows the desired weight here, not the weight reached.
            info.set_weight = current_set_weight(ro).to_string();
            info.actual_weight = "0".into();
            if current_step(ro).is_none() {
                info.actual_weight = "100".into();
            } else if info.available > 0 {
                if canary.traffic_routing.is_none() {
                    // Without a traffic router the weight is the canary's share of available pods.
                    for rs in info.replica_sets.iter().filter(|rs| rs.canary) {
                        info.actual_weight = (rs.available * 100 / info.available).to_string();
                    }
                } else {
                    info.actual_weight = match status.canary.as_ref().and_then(|c| c.weights.as_ref()) {
                        Some(w) => w.canary.weight.to_string(),
                        None => info.set_weight.clone(),
                    };
                }
            }
        } else if ro.spec.strategy.blue_green.is_some() {
            info.strategy = "BlueGreen".into();
        }
        let (phase, message) = rollout_phase(ro);
        info.icon = rollout_icon(&phase);
        info.status = phase;
        info.message = message;
        info
    }

    /// Distinct revisions of the owned objects, newest first.
    pub fn revisions(&self) -> Vec<i64> {
        let set: BTreeSet<i64> = self
            .replica_sets
            .iter()
            .map(|r| r.revision)
            .chain(self.experiments.iter().map(|e| e.revision))
            .chain(self.analysis_runs.iter().map(|a| a.revision))
            .collect();
        set.into_iter().rev().collect()
    }

    /// Images of ReplicaSets that have pods, with their roles, sorted by image; images of
    /// experiment templates are added with `Σ:<template>` tags.
    pub fn images(&self) -> Vec<ImageInfo> {
        let mut images = Vec::new();
        for rs in self.replica_sets.iter().filter(|rs| rs.replicas > 0) {
            for image in &rs.images {
                let flags = [
                    (rs.canary, tag::CANARY),
                    (rs.stable, tag::STABLE),
                    (rs.active, tag::ACTIVE),
                    (rs.preview, tag::PREVIEW),
                    (rs.ping, tag::PING),
                    (rs.pong, tag::PONG),
                ];
                let tags = flags
                    .iter()
                    .filter(|(set, _)| *set)
                    .map(|(_, t)| t.to_string())
                    .collect();
                merge_image(
                    &mut images,
                    ImageInfo {
                        image: image.clone(),
                        tags,
                    },
                );
            }
        }
        for exp in &self.experiments {
            for image in exp.images() {
                merge_image(&mut images, image);
            }
        }
        images
    }
}

/// Adds `image` to `images`, or merges its tags into an existing entry for the same image. Only
/// merged tag lists are sorted (so a single ReplicaSet shows `stable, active`, in role order),
/// and the list stays sorted by image — as Argo does.
pub(crate) fn merge_image(images: &mut Vec<ImageInfo>, image: ImageInfo) {
    match images.iter_mut().find(|i| i.image == image.image) {
        Some(existing) => {
            let merged: BTreeSet<String> = existing.tags.drain(..).chain(image.tags).collect();
            existing.tags = merged.into_iter().collect();
        }
        None => images.push(image),
    }
    images.sort_by(|a, b| a.image.cmp(&b.image));
}

/// Icon of a rollout phase.
pub fn rollout_icon(phase: &str) -> &'static str {
    match phase {
        "Progressing" => icon::PROGRESSING,
        "Error" | "InvalidSpec" => icon::WARNING,
        "Paused" => icon::PAUSED,
        "Healthy" => icon::OK,
        "Degraded" => icon::BAD,
        "Unknown" => icon::UNKNOWN,
        "ScaledDown" => icon::NEUTRAL,
        _ => " ",
    }
}

/// The current canary step and its index; `None` when there are no steps or all are done.
pub fn current_step(ro: &Rollout) -> Option<(usize, &CanaryStep)> {
    let steps = ro.spec.strategy.canary.as_ref()?.steps();
    let index = current_step_index(ro)?;
    steps.get(index).map(|s| (index, s))
}

/// `status.currentStepIndex` (0 when unset) for a canary with steps, else `None`.
pub fn current_step_index(ro: &Rollout) -> Option<usize> {
    let steps = ro.spec.strategy.canary.as_ref()?.steps();
    if steps.is_empty() {
        return None;
    }
    let index = ro.status.as_ref().and_then(|s| s.current_step_index).unwrap_or(0);
    Some(usize::try_from(index).unwrap_or(0))
}

/// The weight of the last setWeight step at or before the current step: 0 when aborted or when
/// none was passed yet, the maximum traffic weight once all steps are done.
pub fn current_set_weight(ro: &Rollout) -> i32 {
    if ro.status.as_ref().is_some_and(|s| s.is_aborted()) {
        return 0;
    }
    let Some(canary) = ro.spec.strategy.canary.as_ref() else {
        return 0;
    };
    match current_step(ro) {
        None => canary.max_traffic_weight(),
        Some((index, _)) => canary.steps()[..=index]
            .iter()
            .rev()
            .find_map(|s| s.set_weight)
            .unwrap_or(0),
    }
}

//! Experiment summaries: phase, revision, and the experiment's own ReplicaSets and AnalysisRuns.

use k8s_openapi::api::{apps::v1::ReplicaSet, core::v1::Pod};
use shared_types::{analysis::AnalysisRun, experiment::Experiment, object_meta::revision};

use super::{
    AnalysisRunInfo, ImageInfo, Metadata, ReplicaSetInfo, analysis::analysis_icon,
    analysis::analysis_run_infos, owned_by, replicaset::replica_set_infos, rollout::merge_image,
};

/// One Experiment, standalone or created by a Rollout step.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ExperimentInfo {
    /// Identity and creation time.
    pub meta: Metadata,
    /// Phase as written (empty before the controller sets one).
    pub status: String,
    /// `status.message`.
    pub message: String,
    /// Status icon.
    pub icon: &'static str,
    /// `rollout.argoproj.io/revision` (0 for standalone experiments).
    pub revision: i64,
    /// The experiment's ReplicaSets, one per template.
    pub replica_sets: Vec<ReplicaSetInfo>,
    /// The experiment's AnalysisRuns.
    pub analysis_runs: Vec<AnalysisRunInfo>,
}

impl ExperimentInfo {
    /// Summarises `exp` with the ReplicaSets, pods and runs it owns.
    pub fn new(exp: &Experiment, replica_sets: &[ReplicaSet], pods: &[Pod], runs: &[AnalysisRun]) -> Self {
        let meta = Metadata::from_meta(&exp.metadata);
        let phase = exp.status.as_ref().and_then(|s| s.phase);
        ExperimentInfo {
            status: phase.map(|p| p.as_str().to_string()).unwrap_or_default(),
            message: exp
                .status
                .as_ref()
                .and_then(|s| s.message.clone())
                .unwrap_or_default(),
            icon: analysis_icon(phase),
            revision: revision(&exp.metadata),
            replica_sets: replica_set_infos(&meta.uid, None, replica_sets, pods),
            analysis_runs: analysis_run_infos(&meta.uid, runs),
            meta,
        }
    }

    /// Images of the running templates, tagged `Σ:<template>`, sorted by image.
    pub fn images(&self) -> Vec<ImageInfo> {
        let mut images = Vec::new();
        for rs in self.replica_sets.iter().filter(|rs| rs.replicas > 0) {
            for image in &rs.images {
                let mut tags = Vec::new();
                if !rs.template.is_empty() {
                    tags.push(format!("Σ:{}", rs.template));
                }
                merge_image(
                    &mut images,
                    ImageInfo {
                        image: image.clone(),
                        tags,
                    },
                );
            }
        }
        images
    }
}

/// Summaries of the Experiments owned by the rollout `owner_uid`: newest revision first, then
/// oldest first.
pub fn experiment_infos(
    owner_uid: &str,
    experiments: &[Experiment],
    replica_sets: &[ReplicaSet],
    pods: &[Pod],
    runs: &[AnalysisRun],
) -> Vec<ExperimentInfo> {
    let mut infos: Vec<ExperimentInfo> = experiments
        .iter()
        .filter(|e| owned_by(e.metadata.owner_references.as_ref(), owner_uid))
        .map(|e| ExperimentInfo::new(e, replica_sets, pods, runs))
        .collect();
    infos.sort_by(|a, b| {
        b.revision
            .cmp(&a.revision)
            .then_with(|| a.meta.created.cmp(&b.meta.created))
    });
    infos
}

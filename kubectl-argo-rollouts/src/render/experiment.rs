//! `kubectl argo rollouts get experiment NAME`.

use jiff::Timestamp;
use k8s_openapi::api::{apps::v1::ReplicaSet, core::v1::Pod};
use shared_types::{analysis::AnalysisRun, experiment::Experiment};

use super::{
    color::Colorizer,
    identity_lines,
    rollout::write_images,
    tabwriter::align,
    tree::{TreeWriter, header},
};
use crate::info::ExperimentInfo;

/// The whole `get experiment` output for `exp` and the objects around it, seen at `now`.
pub fn render_experiment_objects(
    exp: &Experiment,
    replica_sets: &[ReplicaSet],
    pods: &[Pod],
    analysis_runs: &[AnalysisRun],
    now: Timestamp,
    color: bool,
) -> String {
    render_experiment(
        &ExperimentInfo::new(exp, replica_sets, pods, analysis_runs),
        now,
        color,
    )
}

/// The `get experiment` output for an already summarised experiment.
pub fn render_experiment(info: &ExperimentInfo, now: Timestamp, color: bool) -> String {
    let c = Colorizer::new(color);
    let mut out = String::new();
    identity_lines(&mut out, &info.meta, info.icon, &info.status, &info.message, c);
    write_images(&mut out, &info.images(), c);
    out.push('\n');
    let mut buf = String::new();
    header(&mut buf);
    TreeWriter {
        buf: &mut buf,
        now,
        color: c,
    }
    .experiment(info, "", "");
    out.push_str(&align(&buf, 0, 2));
    out
}

//! `kubectl argo rollouts get rollout NAME`: the header block and the object tree.

use jiff::Timestamp;
use k8s_openapi::api::{apps::v1::ReplicaSet, core::v1::Pod};
use shared_types::{analysis::AnalysisRun, experiment::Experiment, rollout::Rollout};

use super::{
    color::Colorizer,
    header_line, identity_lines,
    tabwriter::align,
    tree::{TreeWriter, header, prefixes},
};
use crate::info::{ImageInfo, RolloutInfo, age::age, kind_icon};

/// The whole `get rollout` output for `ro` and the objects around it, seen at `now`. Objects not
/// owned by the rollout are ignored, so whole-namespace lists can be passed.
pub fn render_rollout_objects(
    ro: &Rollout,
    replica_sets: &[ReplicaSet],
    pods: &[Pod],
    analysis_runs: &[AnalysisRun],
    experiments: &[Experiment],
    now: Timestamp,
    color: bool,
) -> String {
    let info = RolloutInfo::new(ro, replica_sets, pods, analysis_runs, experiments);
    render_rollout(&info, now, color)
}

/// The `get rollout` output for an already summarised rollout.
pub fn render_rollout(info: &RolloutInfo, now: Timestamp, color: bool) -> String {
    let c = Colorizer::new(color);
    let mut out = String::new();
    identity_lines(&mut out, &info.meta, info.icon, &info.status, &info.message, c);
    header_line(&mut out, "Strategy:", &info.strategy);
    if info.strategy == "Canary" {
        header_line(&mut out, "  Step:", &info.step);
        header_line(&mut out, "  SetWeight:", &info.set_weight);
        header_line(&mut out, "  ActualWeight:", &info.actual_weight);
    }
    write_images(&mut out, &info.images(), c);
    out.push_str("Replicas:\n");
    header_line(&mut out, "  Desired:", &info.desired.to_string());
    header_line(&mut out, "  Current:", &info.current.to_string());
    header_line(&mut out, "  Updated:", &info.updated.to_string());
    header_line(&mut out, "  Ready:", &info.ready.to_string());
    header_line(&mut out, "  Available:", &info.available.to_string());
    out.push('\n');
    out.push_str(&render_rollout_tree(info, now, c));
    out
}

/// `Images:` lines: the first labelled, the others indented under it.
pub(crate) fn write_images(out: &mut String, images: &[ImageInfo], c: Colorizer) {
    for (i, image) in images.iter().enumerate() {
        let label = if i == 0 { "Images:" } else { "" };
        let text = if image.tags.is_empty() {
            image.image.clone()
        } else {
            let tags: Vec<String> = image.tags.iter().map(|t| c.word(t)).collect();
            format!("{} ({})", image.image, tags.join(", "))
        };
        header_line(out, label, &text);
    }
}

fn render_rollout_tree(info: &RolloutInfo, now: Timestamp, color: Colorizer) -> String {
    let mut buf = String::new();
    header(&mut buf);
    buf.push_str(&format!(
        "{} {}\tRollout\t{} {}\t{}\t\n",
        kind_icon::ROLLOUT,
        info.meta.name,
        color.word(info.icon),
        info.status,
        age(info.meta.created, now)
    ));
    let revisions = info.revisions();
    for (i, revision) in revisions.iter().enumerate() {
        let (prefix, sub_prefix) = prefixes(i + 1 == revisions.len(), "");
        // Empty KIND, a lone space for STATUS (icon and status are blank), empty AGE and INFO: the
        // padded empty cells are what makes revision rows end in spaces.
        buf.push_str(&format!(
            "{prefix}{} revision:{revision}\t\t \t\t\n",
            kind_icon::REVISION
        ));
        let replica_sets: Vec<_> = info
            .replica_sets
            .iter()
            .filter(|r| r.revision == *revision)
            .collect();
        let experiments: Vec<_> = info
            .experiments
            .iter()
            .filter(|e| e.revision == *revision)
            .collect();
        let runs: Vec<_> = info
            .analysis_runs
            .iter()
            .filter(|a| a.revision == *revision)
            .collect();
        let total = replica_sets.len() + experiments.len() + runs.len();
        let mut current = 0;
        let mut tree = TreeWriter {
            buf: &mut buf,
            now,
            color,
        };
        for rs in replica_sets {
            let (child, child_sub) = prefixes(current + 1 == total, &sub_prefix);
            tree.replica_set(rs, &child, &child_sub);
            current += 1;
        }
        for exp in experiments {
            let (child, child_sub) = prefixes(current + 1 == total, &sub_prefix);
            tree.experiment(exp, &child, &child_sub);
            current += 1;
        }
        for run in runs {
            let (child, child_sub) = prefixes(current + 1 == total, &sub_prefix);
            tree.analysis_run(run, &child, &child_sub);
            current += 1;
        }
    }
    align(&buf, 0, 2)
}

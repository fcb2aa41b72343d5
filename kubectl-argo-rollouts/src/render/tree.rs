//! Rows of the `NAME KIND STATUS AGE INFO` tree shared by `get rollout` and `get experiment`.
//!
//! Rows are produced as tab-separated cells (`<prefix><icon> <name>\t<kind>\t<status icon>
//! <status>\t<age>\t<info>`) and aligned afterwards by [`super::tabwriter::align`].

use std::fmt::Write as _;

use jiff::Timestamp;

use super::color::Colorizer;
use crate::info::{
    AnalysisRunInfo, ExperimentInfo, JobInfo, ReplicaSetInfo, age::age, icon, kind_icon,
    replicaset::scale_down_delay, tag,
};

/// Writes the table header.
pub fn header(buf: &mut String) {
    buf.push_str("NAME\tKIND\tSTATUS\tAGE\tINFO\n");
}

/// Prefix of a child and of the children's children: `├──`/`│  ` for all but the last child,
/// `└──`/three spaces for the last.
pub fn prefixes(is_last: bool, sub_prefix: &str) -> (String, String) {
    if is_last {
        (format!("{sub_prefix}└──"), format!("{sub_prefix}   "))
    } else {
        (format!("{sub_prefix}├──"), format!("{sub_prefix}│  "))
    }
}

/// The cells of one row.
struct Row<'a> {
    prefix: &'a str,
    kind_icon: &'a str,
    name: &'a str,
    kind: &'a str,
    icon: &'a str,
    status: &'a str,
    created: Option<Timestamp>,
    info: &'a str,
}

/// Renders tree rows against a clock, with or without colour.
pub struct TreeWriter<'a> {
    /// Output buffer (tab-separated rows).
    pub buf: &'a mut String,
    /// Clock for ages and scale-down delays.
    pub now: Timestamp,
    /// Colours.
    pub color: Colorizer,
}

impl TreeWriter<'_> {
    fn row(&mut self, row: Row<'_>) {
        let _ = writeln!(
            self.buf,
            "{}{} {}\t{}\t{} {}\t{}\t{}",
            row.prefix,
            row.kind_icon,
            row.name,
            row.kind,
            self.color.word(row.icon),
            row.status,
            age(row.created, self.now),
            row.info
        );
    }

    /// A ReplicaSet row and its pods.
    pub fn replica_set(&mut self, rs: &ReplicaSetInfo, prefix: &str, sub_prefix: &str) {
        let color = self.color;
        let mut info_cols = Vec::new();
        let mut name = rs.meta.name.clone();
        // Canary, active and preview exclude each other; ping and pong come on top.
        let role = if rs.canary {
            Some(tag::CANARY)
        } else if rs.active {
            Some(tag::ACTIVE)
        } else if rs.preview {
            Some(tag::PREVIEW)
        } else {
            None
        };
        let tags = [
            rs.stable.then_some(tag::STABLE),
            role,
            rs.ping.then_some(tag::PING),
            rs.pong.then_some(tag::PONG),
        ];
        for t in tags.into_iter().flatten() {
            info_cols.push(color.word(t));
            // Each role colours the name again (nested escapes), as Argo does.
            name = color.with_color_of(&name, t);
        }
        if !rs.scale_down_deadline.is_empty() {
            info_cols.push(format!(
                "delay:{}",
                scale_down_delay(&rs.scale_down_deadline, self.now)
            ));
        }
        self.row(Row {
            prefix,
            kind_icon: kind_icon::REPLICA_SET,
            name: &name,
            kind: "ReplicaSet",
            icon: rs.icon,
            status: &rs.status,
            created: rs.meta.created,
            info: &info_cols.join(","),
        });
        for (i, pod) in rs.pods.iter().enumerate() {
            let (pod_prefix, _) = prefixes(i + 1 == rs.pods.len(), sub_prefix);
            let mut info = format!("ready:{}", pod.ready);
            if pod.restarts > 0 {
                let _ = write!(info, ",restarts:{}", pod.restarts);
            }
            self.row(Row {
                prefix: &pod_prefix,
                kind_icon: kind_icon::POD,
                name: &pod.meta.name,
                kind: "Pod",
                icon: pod.icon,
                status: &pod.status,
                created: pod.meta.created,
                info: &info,
            });
        }
    }

    /// An AnalysisRun row and its jobs.
    pub fn analysis_run(&mut self, run: &AnalysisRunInfo, prefix: &str, sub_prefix: &str) {
        let name = self.color.with_color_of(&run.meta.name, &run.status);
        let counts = [
            (run.successful, icon::OK),
            (run.failed, icon::BAD),
            (run.inconclusive, icon::UNKNOWN),
            (run.error, icon::WARNING),
        ];
        let info: Vec<String> = counts
            .iter()
            .filter(|(n, _)| *n > 0)
            .map(|(n, i)| format!("{} {n}", self.color.word(i)))
            .collect();
        self.row(Row {
            prefix,
            kind_icon: kind_icon::ANALYSIS_RUN,
            name: &name,
            kind: "AnalysisRun",
            icon: run.icon,
            status: &run.status,
            created: run.meta.created,
            info: &info.join(","),
        });
        for (i, job) in run.jobs.iter().enumerate() {
            let (job_prefix, _) = prefixes(i + 1 == run.jobs.len(), sub_prefix);
            self.job(job, &job_prefix);
        }
    }

    fn job(&mut self, job: &JobInfo, prefix: &str) {
        let name = self.color.with_color_of(&job.meta.name, &job.status);
        self.row(Row {
            prefix,
            kind_icon: kind_icon::JOB,
            name: &name,
            kind: "Job",
            icon: job.icon,
            status: &job.status,
            created: job.meta.created,
            info: "",
        });
    }

    /// An Experiment row, its ReplicaSets and its AnalysisRuns.
    pub fn experiment(&mut self, exp: &ExperimentInfo, prefix: &str, sub_prefix: &str) {
        let name = self.color.with_color_of(&exp.meta.name, &exp.status);
        self.row(Row {
            prefix,
            kind_icon: kind_icon::EXPERIMENT,
            name: &name,
            kind: "Experiment",
            icon: exp.icon,
            status: &exp.status,
            created: exp.meta.created,
            info: "",
        });
        let total = exp.replica_sets.len() + exp.analysis_runs.len();
        let mut current = 0;
        for rs in &exp.replica_sets {
            let (child, child_sub) = prefixes(current + 1 == total, sub_prefix);
            self.replica_set(rs, &child, &child_sub);
            current += 1;
        }
        for run in &exp.analysis_runs {
            // Argo prints the indentation and the branch separately and gives the run's jobs no
            // indentation at all; kept so that the output matches.
            let (branch, _) = prefixes(current + 1 == total, "");
            self.analysis_run(run, &format!("{sub_prefix}{branch}"), "");
            current += 1;
        }
    }
}

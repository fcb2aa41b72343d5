//! `list rollouts` and `list experiments` tables.
//!
//! Argo formats each row with fixed minimum widths (`%-10s %-9s ...`, so values line up roughly
//! with the headers even across separately printed watch updates) and then runs the table
//! through a tab writer with padding 2.

use jiff::{SignedDuration, Timestamp};
use shared_types::{experiment::Experiment, rollout::Rollout};

use super::tabwriter::align;
use crate::info::{age::human_duration, phase::rollout_phase, rollout::current_set_weight};

const ROLLOUT_HEADER: &str =
    "NAME\tSTRATEGY\tSTATUS\tSTEP\tSET-WEIGHT\tREADY\tDESIRED\tUP-TO-DATE\tAVAILABLE\n";

/// The columns of one rollout in `list rollouts`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RolloutRow {
    /// Namespace (shown with `--all-namespaces`).
    pub namespace: String,
    /// Name.
    pub name: String,
    /// `Canary`, `BlueGreen` or `unknown`.
    pub strategy: String,
    /// Phase.
    pub status: String,
    /// `i/n` or `-`.
    pub step: String,
    /// Current setWeight or `-`.
    pub set_weight: String,
    /// `ready/current`.
    pub ready: String,
    /// `spec.replicas` (default 1).
    pub desired: i32,
    /// `status.updatedReplicas`.
    pub up_to_date: i32,
    /// `status.availableReplicas`.
    pub available: i32,
}

impl RolloutRow {
    /// The row of `ro`.
    pub fn new(ro: &Rollout) -> Self {
        let status = ro.status.clone().unwrap_or_default();
        let mut row = RolloutRow {
            namespace: ro.metadata.namespace.clone().unwrap_or_default(),
            name: ro.metadata.name.clone().unwrap_or_default(),
            strategy: "unknown".into(),
            status: rollout_phase(ro).0,
            step: "-".into(),
            set_weight: "-".into(),
            ready: format!(
                "{}/{}",
                status.ready_replicas.unwrap_or(0),
                status.replicas.unwrap_or(0)
            ),
            desired: ro.spec.replicas(),
            up_to_date: status.updated_replicas.unwrap_or(0),
            available: status.available_replicas.unwrap_or(0),
        };
        if let Some(canary) = &ro.spec.strategy.canary {
            row.strategy = "Canary".into();
            if let Some(index) = status.current_step_index.filter(|_| !canary.steps().is_empty()) {
                row.step = format!("{index}/{}", canary.steps().len());
            }
            row.set_weight = current_set_weight(ro).to_string();
        } else if ro.spec.strategy.blue_green.is_some() {
            row.strategy = "BlueGreen".into();
        }
        row
    }

    /// The tab-separated line of this row (before alignment).
    pub fn line(&self, namespace: bool, timestamp: Option<Timestamp>) -> String {
        let mut line = String::new();
        if let Some(ts) = timestamp {
            line.push_str(&format!("{:<20}\t", ts.strftime("%Y-%m-%dT%H:%M:%SZ")));
        }
        if namespace {
            line.push_str(&format!("{:<9}\t", self.namespace));
        }
        line.push_str(&format!(
            "{:<10}\t{:<9}\t{:<12}\t{:<4}\t{:<10}\t{:<5}\t{:<7}\t{:<10}\t{:<9}\n",
            self.name,
            self.strategy,
            self.status,
            self.step,
            self.set_weight,
            self.ready,
            self.desired,
            self.up_to_date,
            self.available
        ));
        line
    }
}

/// The header line of `list rollouts` (before alignment).
pub fn rollout_header(namespace: bool, timestamp: bool) -> String {
    let mut header = String::new();
    if timestamp {
        header.push_str("TIMESTAMP\t");
    }
    if namespace {
        header.push_str("NAMESPACE\t");
    }
    header.push_str(ROLLOUT_HEADER);
    header
}

/// The aligned `list rollouts` table. `timestamp` adds the TIMESTAMP column with that time.
pub fn render_rollout_table(
    rollouts: &[Rollout],
    all_namespaces: bool,
    timestamp: Option<Timestamp>,
) -> String {
    let mut buf = rollout_header(all_namespaces, timestamp.is_some());
    for ro in rollouts {
        buf.push_str(&RolloutRow::new(ro).line(all_namespaces, timestamp));
    }
    align(&buf, 0, 2)
}

/// The aligned `list experiments` table, ages against `now`.
pub fn render_experiment_table(experiments: &[Experiment], all_namespaces: bool, now: Timestamp) -> String {
    let mut buf = String::new();
    if all_namespaces {
        buf.push_str("NAMESPACE\t");
    }
    buf.push_str("NAME\tSTATUS\tDURATION\tREMAINING\tAGE\n");
    for exp in experiments {
        let created = exp.metadata.creation_timestamp.as_ref().map(|t| t.0);
        let age = crate::info::age::age(created, now);
        let phase = exp.status.as_ref().and_then(|s| s.phase);
        let (mut duration, mut remaining) = ("-".to_string(), "-".to_string());
        if let Ok(Some(d)) = exp.spec.duration() {
            let d = SignedDuration::try_from(d).unwrap_or(SignedDuration::MAX);
            duration = human_duration(d);
            let available_at = exp
                .status
                .as_ref()
                .and_then(|s| s.available_at.as_ref())
                .map(|t| t.0);
            if let (false, Some(at)) = (phase.is_some_and(|p| p.is_completed()), available_at)
                && let Some(left) = d.checked_sub(now.duration_since(at)).filter(|l| l.is_positive())
            {
                remaining = human_duration(left);
            }
        }
        if all_namespaces {
            buf.push_str(&format!(
                "{:<9}\t",
                exp.metadata.namespace.as_deref().unwrap_or_default()
            ));
        }
        buf.push_str(&format!(
            "{:<10}\t{:<6}\t{:<8}\t{:<9}\t{:<3}\n",
            exp.metadata.name.as_deref().unwrap_or_default(),
            phase.map(|p| p.as_str()).unwrap_or_default(),
            duration,
            remaining,
            age
        ));
    }
    align(&buf, 0, 2)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn canary() -> Rollout {
        serde_json::from_value(json!({
            "apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
            "metadata": {"name": "can-guestbook", "namespace": "test"},
            "spec": {"replicas": 5, "strategy": {"canary": {"steps": [{"setWeight": 10}, {"pause": {"duration": 60}}, {"setWeight": 20}]}}},
            "status": {"currentStepIndex": 1, "replicas": 4, "readyReplicas": 1, "updatedReplicas": 3, "availableReplicas": 2}
        }))
        .unwrap()
    }

    fn blue_green() -> Rollout {
        serde_json::from_value(json!({
            "apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
            "metadata": {"name": "bg-guestbook", "namespace": "test"},
            "spec": {"replicas": 5, "strategy": {"blueGreen": {"activeService": "a"}}},
            "status": {"currentStepIndex": 1, "replicas": 4, "readyReplicas": 1, "updatedReplicas": 3, "availableReplicas": 2}
        }))
        .unwrap()
    }

    #[test]
    fn rollout_table_like_argo() {
        assert_eq!(
            render_rollout_table(&[canary(), blue_green()], false, None),
            "NAME           STRATEGY   STATUS        STEP  SET-WEIGHT  READY  DESIRED  UP-TO-DATE  AVAILABLE\n\
             can-guestbook  Canary     Progressing   1/3   10          1/4    5        3           2        \n\
             bg-guestbook   BlueGreen  Progressing   -     -           1/4    5        3           2        \n"
        );
    }

    #[test]
    fn namespaces_and_timestamps() {
        let ts: Timestamp = "2025-06-01T10:00:00Z".parse().unwrap();
        assert_eq!(
            render_rollout_table(&[canary()], true, Some(ts)),
            "TIMESTAMP             NAMESPACE  NAME           STRATEGY   STATUS        STEP  SET-WEIGHT  READY  DESIRED  UP-TO-DATE  AVAILABLE\n\
             2025-06-01T10:00:00Z  test       can-guestbook  Canary     Progressing   1/3   10          1/4    5        3           2        \n"
        );
    }

    #[test]
    fn experiment_table() {
        let now: Timestamp = "2025-06-08T10:00:00Z".parse().unwrap();
        let exp = |name: &str, ns: &str, duration: Option<&str>| -> Experiment {
            serde_json::from_value(json!({
                "apiVersion": "argoproj.io/v1alpha1", "kind": "Experiment",
                "metadata": {"name": name, "namespace": ns, "creationTimestamp": "2025-06-01T10:00:00Z"},
                "spec": {"templates": [], "duration": duration},
                "status": {"phase": "Running", "availableAt": "2025-06-08T08:59:59Z"}
            }))
            .unwrap()
        };
        assert_eq!(
            render_experiment_table(
                &[
                    exp("my-experiment", "test", Some("3h")),
                    exp("my-experiment2", "my-other-namespace", None)
                ],
                true,
                now
            ),
            "NAMESPACE           NAME            STATUS   DURATION  REMAINING  AGE\n\
             test                my-experiment   Running  3h        119m       7d \n\
             my-other-namespace  my-experiment2  Running  -         -          7d \n"
        );
    }
}

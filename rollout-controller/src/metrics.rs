//! Prometheus metrics with Argo Rollouts' names. Per-object info gauges are computed from the
//! Rollout cache at scrape time (as Argo's collectors do), so deleted Rollouts disappear at once.

use kube::runtime::reflector::Store;
use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric},
    metrics::{family::Family, gauge::Gauge, histogram::Histogram},
    registry::Registry,
};
use shared_runtime::metrics::ReconcileMetrics;
use shared_types::{
    constants::{condition_type, reason},
    rollout::Rollout,
};

pub use shared_runtime::metrics::ObjectLabels as RolloutLabels;

/// Label of the duration histograms: how the update ended.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CompletionLabels {
    /// `Promoted`, `FastPromoted`, `Aborted`, `Superseded`, `RolledBack` or `FastRolledBack`.
    pub status: String,
}

/// The controller's own metrics (reconcile timings and errors, update durations).
#[derive(Clone)]
pub struct Metrics {
    /// `rollout_duration_seconds_total`: start to end of each finished update.
    pub duration_total: Family<CompletionLabels, Histogram>,
    /// `rollout_duration_seconds_progression`: the same without manual pauses.
    pub duration_progression: Family<CompletionLabels, Histogram>,
    /// `rollout_duration_seconds_manual_pause`: manual pauses of each finished update.
    pub duration_manual_pause: Family<CompletionLabels, Histogram>,
    /// `rollout_reconcile`, `rollout_reconcile_error` and the aggregate reconcile series.
    pub reconcile: ReconcileMetrics,
}

impl Metrics {
    /// Registers the metrics and the cache-backed info collector.
    pub fn register(registry: &mut Registry, rollouts: Store<kube::core::DeserializeGuard<Rollout>>) -> Self {
        let reconcile = ReconcileMetrics::register(registry, "rollout", "Rollout");
        // Argo's names and buckets (rollout duration tracking).
        let duration_total = Family::<CompletionLabels, Histogram>::new_with_constructor(|| {
            Histogram::new([
                30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0, 7200.0, 14400.0, 28800.0,
            ])
        });
        let duration_progression = Family::<CompletionLabels, Histogram>::new_with_constructor(|| {
            Histogram::new([30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1800.0, 3600.0])
        });
        let duration_manual_pause = Family::<CompletionLabels, Histogram>::new_with_constructor(|| {
            Histogram::new([0.0, 60.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0, 14400.0, 28800.0])
        });
        registry.register(
            "rollout_duration_seconds_total",
            "Total wall-clock time for a rollout from start to completion/abort/supersede",
            duration_total.clone(),
        );
        registry.register(
            "rollout_duration_seconds_progression",
            "Active progression time for a rollout (excluding manual pause time)",
            duration_progression.clone(),
        );
        registry.register(
            "rollout_duration_seconds_manual_pause",
            "Time spent in manual pause waiting for human intervention",
            duration_manual_pause.clone(),
        );
        registry.register_collector(Box::new(RolloutCollector { rollouts }));
        Self {
            duration_total,
            duration_progression,
            duration_manual_pause,
            reconcile,
        }
    }

    /// Records a finished update (`status.duration` with `finishedAt`).
    pub fn observe_duration(&self, d: &shared_types::rollout::RolloutDuration) {
        let (Some(start), Some(end), Some(status)) =
            (&d.rollout_started_at, &d.finished_at, &d.completion_status)
        else {
            return;
        };
        let total = end.0.duration_since(start.0).as_secs_f64().max(0.0);
        // i64 seconds to f64: exact for any realistic pause.
        #[allow(clippy::cast_precision_loss)]
        let paused = d.total_manual_pause_duration_seconds.unwrap_or(0) as f64;
        let labels = CompletionLabels {
            status: status.clone(),
        };
        self.duration_total.get_or_create(&labels).observe(total);
        self.duration_progression
            .get_or_create(&labels)
            .observe((total - paused).max(0.0));
        self.duration_manual_pause.get_or_create(&labels).observe(paused);
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct InfoLabels {
    namespace: String,
    name: String,
    strategy: String,
    traffic_router: String,
    phase: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PhaseLabels {
    namespace: String,
    name: String,
    strategy: String,
    phase: String,
}

/// Computes `rollout_info*` and `rollout_phase` from the cache at scrape time.
#[derive(Debug)]
struct RolloutCollector {
    rollouts: Store<kube::core::DeserializeGuard<Rollout>>,
}

/// The `phase` label of `rollout_info`, from the Progressing condition's reason.
pub fn info_phase(rollout: &Rollout) -> &'static str {
    let status = rollout.status.clone().unwrap_or_default();
    if status.condition(condition_type::INVALID_SPEC).is_some() {
        return "InvalidSpec";
    }
    match status
        .condition(condition_type::PROGRESSING)
        .map(|c| c.reason.as_str())
    {
        Some(reason::NEW_REPLICA_SET_AVAILABLE) => "Completed",
        Some(reason::ROLLOUT_PAUSED) => "Paused",
        Some(reason::REPLICA_SET_CREATE_ERROR) => "Error",
        Some(reason::PROGRESS_DEADLINE_EXCEEDED) => "Timeout",
        Some(reason::ROLLOUT_ABORTED) => "Abort",
        _ => "Progressing",
    }
}

fn strategy_label(rollout: &Rollout) -> &'static str {
    if rollout.spec.strategy.blue_green.is_some() {
        "blueGreen"
    } else if rollout.spec.strategy.canary.is_some() {
        "canary"
    } else {
        "none"
    }
}

fn traffic_router_label(rollout: &Rollout) -> &'static str {
    let Some(tr) = rollout
        .spec
        .strategy
        .canary
        .as_ref()
        .and_then(|c| c.traffic_routing.as_ref())
    else {
        return "";
    };
    if tr.istio.is_some() {
        "Istio"
    } else if tr.nginx.is_some() {
        "Nginx"
    } else if tr.alb.is_some() {
        "ALB"
    } else if tr.smi.is_some() {
        "SMI"
    } else if tr.ambassador.is_some() {
        "Ambassador"
    } else if tr.app_mesh.is_some() {
        "AppMesh"
    } else {
        ""
    }
}

impl Collector for RolloutCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let info = Family::<InfoLabels, Gauge>::default();
        let phases = Family::<PhaseLabels, Gauge>::default();
        let gauges: [(&str, &str, Family<RolloutLabels, Gauge>); 4] = [
            (
                "rollout_info_replicas_available",
                "The number of available replicas per rollout.",
                Family::default(),
            ),
            (
                "rollout_info_replicas_unavailable",
                "The number of unavailable replicas per rollout.",
                Family::default(),
            ),
            (
                "rollout_info_replicas_desired",
                "The number of desired replicas per rollout.",
                Family::default(),
            ),
            (
                "rollout_info_replicas_updated",
                "The number of updated replicas per rollout.",
                Family::default(),
            ),
        ];
        for guard in self.rollouts.state() {
            let Ok(rollout) = &guard.0 else { continue };
            let namespace = rollout.metadata.namespace.clone().unwrap_or_default();
            let name = rollout.metadata.name.clone().unwrap_or_default();
            let strategy = strategy_label(rollout).to_string();
            let phase = info_phase(rollout).to_string();
            info.get_or_create(&InfoLabels {
                namespace: namespace.clone(),
                name: name.clone(),
                strategy: strategy.clone(),
                traffic_router: traffic_router_label(rollout).into(),
                phase: phase.clone(),
            })
            .set(1);
            let status_phase = rollout
                .status
                .as_ref()
                .and_then(|s| s.phase.clone())
                .unwrap_or_default();
            for p in ["Healthy", "Degraded", "Progressing", "Paused"] {
                let labels = PhaseLabels {
                    namespace: namespace.clone(),
                    name: name.clone(),
                    strategy: strategy.clone(),
                    phase: p.into(),
                };
                phases.get_or_create(&labels).set(i64::from(status_phase == p));
            }
            let status = rollout.status.clone().unwrap_or_default();
            let labels = RolloutLabels { namespace, name };
            let available = status.available_replicas.unwrap_or(0);
            let values = [
                available,
                status.replicas.unwrap_or(0) - available,
                rollout.spec.replicas(),
                status.updated_replicas.unwrap_or(0),
            ];
            for ((_, _, family), value) in gauges.iter().zip(values) {
                family.get_or_create(&labels).set(i64::from(value));
            }
        }
        info.encode(encoder.encode_descriptor(
            "rollout_info",
            "Information about rollout.",
            None,
            info.metric_type(),
        )?)?;
        phases.encode(encoder.encode_descriptor(
            "rollout_phase",
            "Information on the state of the rollout (DEPRECATED - use rollout_info)",
            None,
            phases.metric_type(),
        )?)?;
        for (name, help, family) in &gauges {
            family.encode(encoder.encode_descriptor(name, help, None, family.metric_type())?)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::{apimachinery::pkg::apis::meta::v1::Time, jiff::Timestamp};
    use shared_types::rollout::RolloutDuration;

    #[test]
    fn finished_updates_feed_the_duration_histograms() {
        let mut registry = Registry::default();
        let (store, _writer) = kube::runtime::reflector::store();
        let metrics = Metrics::register(&mut registry, store);
        let at = |s: i64| Some(Time(Timestamp::from_second(1_800_000_000 + s).unwrap()));
        metrics.observe_duration(&RolloutDuration {
            rollout_started_at: at(0),
            finished_at: at(300),
            total_manual_pause_duration_seconds: Some(60),
            completion_status: Some("Promoted".into()),
            ..Default::default()
        });
        // Unfinished records are not observed.
        metrics.observe_duration(&RolloutDuration {
            rollout_started_at: at(0),
            ..Default::default()
        });
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        for line in [
            "rollout_duration_seconds_total_sum{status=\"Promoted\"} 300.0",
            "rollout_duration_seconds_total_count{status=\"Promoted\"} 1",
            "rollout_duration_seconds_progression_sum{status=\"Promoted\"} 240.0",
            "rollout_duration_seconds_manual_pause_sum{status=\"Promoted\"} 60.0",
            "rollout_duration_seconds_manual_pause_bucket{le=\"60.0\",status=\"Promoted\"} 1",
        ] {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
    }
}

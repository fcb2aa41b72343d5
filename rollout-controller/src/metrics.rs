//! Prometheus metrics with Argo Rollouts' names. Per-object info gauges are computed from the
//! Rollout cache at scrape time (as Argo's collectors do), so deleted Rollouts disappear at once.

use std::time::Duration;

use kube::runtime::reflector::Store;
use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric},
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::Registry,
};
use shared_types::{
    constants::{condition_type, reason},
    rollout::Rollout,
};

/// Labels of per-Rollout series.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RolloutLabels {
    /// Namespace of the Rollout.
    pub namespace: String,
    /// Name of the Rollout.
    pub name: String,
}

/// Labels of the reconcile error counter (low cardinality: no object names).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    /// Error category.
    pub error: String,
}

/// The controller's own metrics (reconcile timings and errors).
#[derive(Clone)]
pub struct Metrics {
    /// `rollout_reconcile`: reconcile seconds per Rollout.
    pub reconcile: Family<RolloutLabels, Histogram>,
    /// `rollout_reconcile_error`: failed reconciles per Rollout.
    pub reconcile_error: Family<RolloutLabels, Counter>,
    /// `rollout_controller_reconcile_duration_seconds`: all reconciles.
    pub reconcile_duration: Histogram,
    /// `rollout_controller_reconcile_errors`: failed reconciles by error category.
    pub reconcile_errors: Family<ErrorLabels, Counter>,
}

impl Metrics {
    /// Registers the metrics and the cache-backed info collector.
    pub fn register(registry: &mut Registry, rollouts: Store<kube::core::DeserializeGuard<Rollout>>) -> Self {
        let reconcile = Family::<RolloutLabels, Histogram>::new_with_constructor(|| {
            Histogram::new([0.01, 0.15, 0.25, 0.5, 1.0])
        });
        let reconcile_error = Family::<RolloutLabels, Counter>::default();
        let reconcile_duration = Histogram::new([0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0]);
        let reconcile_errors = Family::<ErrorLabels, Counter>::default();
        registry.register(
            "rollout_reconcile",
            "Rollout reconciliation performance.",
            reconcile.clone(),
        );
        registry.register(
            "rollout_reconcile_error",
            "Error occurring during the rollout",
            reconcile_error.clone(),
        );
        registry.register(
            "rollout_controller_reconcile_duration_seconds",
            "Duration of Rollout reconciles.",
            reconcile_duration.clone(),
        );
        registry.register(
            "rollout_controller_reconcile_errors",
            "Failed Rollout reconciles by error category.",
            reconcile_errors.clone(),
        );
        registry.register_collector(Box::new(RolloutCollector { rollouts }));
        Self {
            reconcile,
            reconcile_error,
            reconcile_duration,
            reconcile_errors,
        }
    }

    /// Drops the per-Rollout series of a deleted Rollout, so they do not accumulate.
    pub fn forget(&self, labels: &RolloutLabels) {
        self.reconcile.remove(labels);
        self.reconcile_error.remove(labels);
    }

    /// Records one reconcile.
    pub fn observe(&self, labels: &RolloutLabels, took: Duration, error: Option<&str>) {
        self.reconcile.get_or_create(labels).observe(took.as_secs_f64());
        self.reconcile_duration.observe(took.as_secs_f64());
        if let Some(category) = error {
            self.reconcile_error.get_or_create(labels).inc();
            self.reconcile_errors
                .get_or_create(&ErrorLabels {
                    error: category.into(),
                })
                .inc();
        }
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

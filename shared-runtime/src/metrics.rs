//! The reconcile metrics every controller exports, under one naming scheme so dashboards work
//! the same for all four: Argo's per-object `<object>_reconcile` histogram and
//! `<object>_reconcile_error` counter (object = `rollout`, `analysis_run`, `experiment`, ...), and
//! two aggregate series without object names, `<object>_controller_reconcile_duration_seconds`
//! and `<object>_controller_reconcile_errors{error}`, whose cardinality does not grow with the
//! number of objects.

use std::time::Duration;

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, histogram::Histogram},
    registry::Registry,
};

/// Labels of per-object series.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ObjectLabels {
    /// Namespace of the object.
    pub namespace: String,
    /// Name of the object.
    pub name: String,
}

/// Labels of the aggregate error counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    /// Error category.
    pub error: String,
}

/// Reconcile timings and failures of one controller.
#[derive(Clone)]
pub struct ReconcileMetrics {
    per_object: Family<ObjectLabels, Histogram>,
    per_object_errors: Family<ObjectLabels, Counter>,
    duration: Histogram,
    errors: Family<ErrorLabels, Counter>,
}

impl ReconcileMetrics {
    /// Registers the four series for objects called `object` (snake case, e.g. `rollout`) and
    /// described as `kind` (e.g. `Rollout`) in the help texts.
    pub fn register(registry: &mut Registry, object: &str, kind: &str) -> Self {
        // Argo's buckets for the per-object histogram.
        let per_object = Family::<ObjectLabels, Histogram>::new_with_constructor(|| {
            Histogram::new([0.01, 0.15, 0.25, 0.5, 1.0])
        });
        let per_object_errors = Family::<ObjectLabels, Counter>::default();
        let duration = Histogram::new([0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0]);
        let errors = Family::<ErrorLabels, Counter>::default();
        registry.register(
            format!("{object}_reconcile"),
            format!("{kind} reconciliation performance."),
            per_object.clone(),
        );
        registry.register(
            format!("{object}_reconcile_error"),
            format!("Error occurring during the {kind} reconcile"),
            per_object_errors.clone(),
        );
        registry.register(
            format!("{object}_controller_reconcile_duration_seconds"),
            format!("Duration of {kind} reconciles."),
            duration.clone(),
        );
        registry.register(
            format!("{object}_controller_reconcile_errors"),
            format!("Failed {kind} reconciles by error category."),
            errors.clone(),
        );
        Self {
            per_object,
            per_object_errors,
            duration,
            errors,
        }
    }

    /// Records one reconcile of an object, failed with `error` (a category) or not.
    pub fn observe(&self, labels: &ObjectLabels, took: Duration, error: Option<&str>) {
        self.per_object.get_or_create(labels).observe(took.as_secs_f64());
        self.duration.observe(took.as_secs_f64());
        if let Some(category) = error {
            self.per_object_errors.get_or_create(labels).inc();
            self.errors
                .get_or_create(&ErrorLabels {
                    error: category.to_string(),
                })
                .inc();
        }
    }

    /// Drops the per-object series of a deleted object, so they do not accumulate.
    pub fn forget(&self, labels: &ObjectLabels) {
        self.per_object.remove(labels);
        self.per_object_errors.remove(labels);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::encoding::text::encode;

    #[test]
    fn series_follow_the_object_name_and_forget_drops_per_object_ones() {
        let mut registry = Registry::default();
        let metrics = ReconcileMetrics::register(&mut registry, "experiment", "Experiment");
        let labels = ObjectLabels {
            namespace: "ns".into(),
            name: "e1".into(),
        };
        metrics.observe(&labels, Duration::from_millis(20), None);
        metrics.observe(&labels, Duration::from_millis(20), Some("api"));
        let mut text = String::new();
        encode(&mut text, &registry).expect("encodes");
        assert!(
            text.contains(r#"experiment_reconcile_count{namespace="ns",name="e1"} 2"#),
            "{text}"
        );
        assert!(
            text.contains(r#"experiment_reconcile_error_total{namespace="ns",name="e1"} 1"#),
            "{text}"
        );
        assert!(
            text.contains("experiment_controller_reconcile_duration_seconds_count 2"),
            "{text}"
        );
        assert!(
            text.contains(r#"experiment_controller_reconcile_errors_total{error="api"} 1"#),
            "{text}"
        );
        metrics.forget(&labels);
        let mut text = String::new();
        encode(&mut text, &registry).expect("encodes");
        assert!(!text.contains(r#"name="e1""#), "{text}");
        assert!(
            text.contains("experiment_controller_reconcile_duration_seconds_count 2"),
            "{text}"
        );
    }
}

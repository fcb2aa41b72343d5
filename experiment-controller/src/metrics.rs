//! Argo's experiment metrics: `experiment_info{namespace,name,phase}` and the deprecated
//! `experiment_phase` gauge (one 0/1 series per phase), computed from the Experiment cache at
//! scrape time, and the shared reconcile metrics (`experiment_reconcile`,
//! `experiment_reconcile_error`).

use kube::runtime::reflector::Store;
use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric},
    metrics::{family::Family, gauge::Gauge},
    registry::Registry,
};
use shared_runtime::metrics::ReconcileMetrics;
use shared_types::{analysis::AnalysisPhase, experiment::Experiment};

/// Registers the reconcile metrics and the cache-backed collector.
pub fn register(registry: &mut Registry, experiments: Store<Experiment>) -> ReconcileMetrics {
    registry.register_collector(Box::new(ExperimentCollector { experiments }));
    ReconcileMetrics::register(registry, "experiment", "Experiment")
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PhaseLabels {
    namespace: String,
    name: String,
    phase: String,
}

#[derive(Debug)]
struct ExperimentCollector {
    experiments: Store<Experiment>,
}

/// The two families for a set of experiments.
fn families(
    experiments: &[std::sync::Arc<Experiment>],
) -> (Family<PhaseLabels, Gauge>, Family<PhaseLabels, Gauge>) {
    let info = Family::<PhaseLabels, Gauge>::default();
    let phases = Family::<PhaseLabels, Gauge>::default();
    for ex in experiments {
        let namespace = ex.metadata.namespace.clone().unwrap_or_default();
        let name = ex.metadata.name.clone().unwrap_or_default();
        let phase = ex
            .status
            .as_ref()
            .map(|s| s.phase_or_pending())
            .unwrap_or_default();
        let labels = |p: AnalysisPhase| PhaseLabels {
            namespace: namespace.clone(),
            name: name.clone(),
            phase: p.as_str().to_string(),
        };
        info.get_or_create(&labels(phase)).set(1);
        for p in AnalysisPhase::ALL {
            phases.get_or_create(&labels(p)).set(i64::from(p == phase));
        }
    }
    (info, phases)
}

impl Collector for ExperimentCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let (info, phases) = families(&self.experiments.state());
        info.encode(encoder.encode_descriptor(
            "experiment_info",
            "Information about Experiment.",
            None,
            info.metric_type(),
        )?)?;
        phases.encode(encoder.encode_descriptor(
            "experiment_phase",
            "Information on the state of the experiment (DEPRECATED - use experiment_info)",
            None,
            phases.metric_type(),
        )?)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::runtime::{reflector, watcher};
    use prometheus_client::encoding::text::encode;
    use shared_types::experiment::{ExperimentSpec, ExperimentStatus};

    #[test]
    fn info_and_phase_series_follow_the_cache() {
        let (store, mut writer) = reflector::store::<Experiment>();
        let mut ex = Experiment::new("e1", ExperimentSpec::default());
        ex.metadata.namespace = Some("ns".into());
        ex.status = Some(ExperimentStatus {
            phase: Some(AnalysisPhase::Running),
            ..Default::default()
        });
        writer.apply_watcher_event(&watcher::Event::Apply(ex));
        let mut registry = Registry::default();
        register(&mut registry, store);
        let mut text = String::new();
        encode(&mut text, &registry).unwrap();
        assert!(
            text.contains(r#"experiment_info{namespace="ns",name="e1",phase="Running"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"experiment_phase{namespace="ns",name="e1",phase="Running"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"experiment_phase{namespace="ns",name="e1",phase="Failed"} 0"#),
            "{text}"
        );
        assert!(
            text.contains("experiment_controller_reconcile_duration_seconds"),
            "{text}"
        );
    }
}

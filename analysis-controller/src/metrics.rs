//! Argo's analysis metrics: per-run info gauges computed from the AnalysisRun cache at scrape
//! time (so deleted runs disappear at once and labels stay bounded by the runs that exist), and
//! the shared reconcile metrics (`analysis_run_reconcile`, `analysis_run_reconcile_error`).

use kube::runtime::reflector::Store;
use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric},
    metrics::{family::Family, gauge::Gauge},
    registry::Registry,
};
use shared_runtime::{
    metrics::ReconcileMetrics,
    shard::{Ownership, Shard},
};
use shared_types::analysis::{AnalysisPhase, AnalysisRun, AnalysisTemplate, ClusterAnalysisTemplate, Metric};

/// Registers the reconcile metrics and the cache-backed collectors.
pub fn register(
    registry: &mut Registry,
    runs: Store<AnalysisRun>,
    templates: Store<AnalysisTemplate>,
    cluster_templates: Store<ClusterAnalysisTemplate>,
    shard: Option<Shard>,
) -> ReconcileMetrics {
    if let Some(shard) = shard {
        registry.register_collector(Box::new(ShardCollector {
            runs: runs.clone(),
            shard,
        }));
    }
    registry.register_collector(Box::new(RunCollector { runs }));
    registry.register_collector(Box::new(TemplateCollector {
        templates,
        cluster_templates,
    }));
    ReconcileMetrics::register(registry, "analysis_run", "AnalysisRun")
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RunLabels {
    namespace: String,
    name: String,
    phase: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MetricTypeLabels {
    namespace: String,
    name: String,
    metric: String,
    r#type: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MetricPhaseLabels {
    namespace: String,
    name: String,
    metric: String,
    r#type: String,
    dry_run: String,
    phase: String,
}

/// `analysis_controller_shard_owned_runs`: how many runs (of any phase) this replica owns.
struct ShardCollector {
    runs: Store<AnalysisRun>,
    shard: Shard,
}

impl std::fmt::Debug for ShardCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShardCollector")
            .field("member", &self.shard.me())
            .finish()
    }
}

impl Collector for ShardCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let owned = self
            .runs
            .state()
            .iter()
            .filter(|run| {
                self.shard
                    .ownership(run.metadata.uid.as_deref().unwrap_or_default())
                    != Ownership::NotMine
            })
            .count();
        let gauge = Gauge::<i64>::default();
        gauge.set(i64::try_from(owned).unwrap_or(i64::MAX));
        gauge.encode(encoder.encode_descriptor(
            "analysis_controller_shard_owned_runs",
            "AnalysisRuns this replica owns (measures) under sharding.",
            None,
            gauge.metric_type(),
        )?)
    }
}

#[derive(Debug)]
struct RunCollector {
    runs: Store<AnalysisRun>,
}

impl Collector for RunCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let info = Family::<RunLabels, Gauge>::default();
        let phases = Family::<RunLabels, Gauge>::default();
        let types = Family::<MetricTypeLabels, Gauge>::default();
        let metric_phases = Family::<MetricPhaseLabels, Gauge>::default();
        for run in self.runs.state() {
            let namespace = run.metadata.namespace.clone().unwrap_or_default();
            let name = run.metadata.name.clone().unwrap_or_default();
            let status = run.status.clone().unwrap_or_default();
            let phase = status.phase_or_pending();
            let labels = |phase: AnalysisPhase| RunLabels {
                namespace: namespace.clone(),
                name: name.clone(),
                phase: format!("{phase:?}"),
            };
            info.get_or_create(&labels(phase)).set(1);
            for p in AnalysisPhase::ALL {
                phases.get_or_create(&labels(p)).set(i64::from(p == phase));
            }
            for metric in &run.spec.metrics {
                let kind = crate::provider::metric_type(metric).to_string();
                types
                    .get_or_create(&MetricTypeLabels {
                        namespace: namespace.clone(),
                        name: name.clone(),
                        metric: metric.name.clone(),
                        r#type: kind.clone(),
                    })
                    .set(1);
                let result = status.metric_result(&metric.name);
                let current = result.map(|r| r.phase).unwrap_or_default();
                let dry_run = result.and_then(|r| r.dry_run).unwrap_or(false).to_string();
                for p in AnalysisPhase::ALL {
                    metric_phases
                        .get_or_create(&MetricPhaseLabels {
                            namespace: namespace.clone(),
                            name: name.clone(),
                            metric: metric.name.clone(),
                            r#type: kind.clone(),
                            dry_run: dry_run.clone(),
                            phase: format!("{p:?}"),
                        })
                        .set(i64::from(p == current));
                }
            }
        }
        info.encode(encoder.encode_descriptor(
            "analysis_run_info",
            "Information about analysis run.",
            None,
            info.metric_type(),
        )?)?;
        phases.encode(encoder.encode_descriptor(
            "analysis_run_phase",
            "Information on the state of the Analysis Run (DEPRECATED - use analysis_run_info)",
            None,
            phases.metric_type(),
        )?)?;
        types.encode(encoder.encode_descriptor(
            "analysis_run_metric_type",
            "Information on the type of a specific metric in the Analysis Runs.",
            None,
            types.metric_type(),
        )?)?;
        metric_phases.encode(encoder.encode_descriptor(
            "analysis_run_metric_phase",
            "Information on the duration of a specific metric in the Analysis Run.",
            None,
            metric_phases.metric_type(),
        )?)?;
        Ok(())
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TemplateLabels {
    namespace: String,
    name: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TemplateMetricLabels {
    namespace: String,
    name: String,
    r#type: String,
    metric: String,
}

/// `analysis_template_info` and `analysis_template_metric_info` (cluster templates have an
/// empty namespace, as in Argo).
#[derive(Debug)]
struct TemplateCollector {
    templates: Store<AnalysisTemplate>,
    cluster_templates: Store<ClusterAnalysisTemplate>,
}

impl Collector for TemplateCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let info = Family::<TemplateLabels, Gauge>::default();
        let metrics = Family::<TemplateMetricLabels, Gauge>::default();
        let add = |namespace: String, name: String, template_metrics: &[Metric]| {
            info.get_or_create(&TemplateLabels {
                namespace: namespace.clone(),
                name: name.clone(),
            })
            .set(1);
            for metric in template_metrics {
                metrics
                    .get_or_create(&TemplateMetricLabels {
                        namespace: namespace.clone(),
                        name: name.clone(),
                        r#type: crate::provider::metric_type(metric).to_string(),
                        metric: metric.name.clone(),
                    })
                    .set(1);
            }
        };
        for t in self.templates.state() {
            add(
                t.metadata.namespace.clone().unwrap_or_default(),
                t.metadata.name.clone().unwrap_or_default(),
                t.spec.metrics.as_deref().unwrap_or_default(),
            );
        }
        for t in self.cluster_templates.state() {
            add(
                String::new(),
                t.metadata.name.clone().unwrap_or_default(),
                t.spec.metrics.as_deref().unwrap_or_default(),
            );
        }
        info.encode(encoder.encode_descriptor(
            "analysis_template_info",
            "Information about analysis templates.",
            None,
            info.metric_type(),
        )?)?;
        metrics.encode(encoder.encode_descriptor(
            "analysis_template_metric_info",
            "Information on metrics in analysis templates.",
            None,
            metrics.metric_type(),
        )?)?;
        Ok(())
    }
}

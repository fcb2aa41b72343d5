//! Building an AnalysisRun from AnalysisTemplates and ClusterAnalysisTemplates, as Argo Rollouts
//! does when a Rollout (analysis steps, background and blue-green analysis) or an Experiment
//! (its `analyses`) starts one: template references resolved recursively, metrics flattened,
//! arguments merged and checked, dry-run and retention rules merged. Plus the names, labels and
//! annotations Argo gives the runs a Rollout creates.
//!
//! Everything here is pure: the caller passes the templates it has (from its caches), so the
//! rollout and experiment controllers build identical runs from identical inputs.

use std::collections::{BTreeMap, HashSet};

use crate::analysis::{
    AnalysisRunMetadata, AnalysisRunSpec, AnalysisTemplate, AnalysisTemplateRef, AnalysisTemplateSpec,
    Argument, ClusterAnalysisTemplate, DryRun, MeasurementRetention, Metric,
};
use crate::constants::{keys, rollout_type};
use crate::rollout::Rollout;

/// Why an AnalysisRun cannot be built. The messages are Argo's where Argo has one, so users see
/// the same text in conditions and events.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BuildError {
    /// A referenced AnalysisTemplate does not exist in the namespace.
    #[error("AnalysisTemplate \"{0}\" not found")]
    TemplateNotFound(String),
    /// A referenced ClusterAnalysisTemplate does not exist.
    #[error("ClusterAnalysisTemplate \"{0}\" not found")]
    ClusterTemplateNotFound(String),
    /// Nested template references loop back (the path, e.g. `a -> b -> a`). Argo recurses
    /// without a guard; we report it instead.
    #[error("analysis templates reference each other in a cycle: {0}")]
    Cycle(String),
    /// Two flattened templates declare a metric with the same name.
    #[error("two metrics have the same name '{0}'")]
    DuplicateMetric(String),
    /// Two templates give the same argument different values.
    #[error("Argument `{name}` specified multiple times with different values: '{first}', '{second}'")]
    ConflictingArgument {
        /// The argument.
        name: String,
        /// Value in the first template declaring it.
        first: String,
        /// The other value.
        second: String,
    },
    /// An argument has neither a value nor a `valueFrom` after merging.
    #[error("args.{0} was not resolved")]
    UnresolvedArgument(String),
    /// Two dry-run rules name the same metric pattern.
    #[error("two Dry-Run metric rules have the same name '{0}'")]
    DuplicateDryRun(String),
    /// Two measurement-retention rules name the same metric pattern.
    #[error("two Measurement Retention metric rules have the same name '{0}'")]
    DuplicateMeasurementRetention(String),
}

/// The templates a caller can resolve references against: AnalysisTemplates of the run's
/// namespace and all ClusterAnalysisTemplates, by name.
#[derive(Clone, Copy, Debug)]
pub struct Templates<'a> {
    /// AnalysisTemplates of the namespace, by name.
    pub namespaced: &'a BTreeMap<String, AnalysisTemplate>,
    /// ClusterAnalysisTemplates, by name.
    pub cluster: &'a BTreeMap<String, ClusterAnalysisTemplate>,
}

/// The templates a list of references names, nested ones included, each once (first occurrence
/// wins), namespaced and cluster-scoped apart: Argo flattens the namespaced ones first.
#[derive(Debug, Default)]
struct Resolved<'a> {
    namespaced: Vec<(&'a str, &'a AnalysisTemplateSpec)>,
    cluster: Vec<(&'a str, &'a AnalysisTemplateSpec)>,
}

impl<'a> Templates<'a> {
    /// Resolves `refs` depth first: each template, then the templates it nests.
    fn resolve(&self, refs: &[AnalysisTemplateRef]) -> Result<Resolved<'a>, BuildError> {
        let mut out = Resolved::default();
        let mut path = Vec::new();
        self.resolve_into(refs, &mut path, &mut out)?;
        dedup_by_name(&mut out.namespaced);
        dedup_by_name(&mut out.cluster);
        Ok(out)
    }

    fn resolve_into(
        &self,
        refs: &[AnalysisTemplateRef],
        path: &mut Vec<(bool, String)>,
        out: &mut Resolved<'a>,
    ) -> Result<(), BuildError> {
        for r in refs {
            let key = (r.is_cluster_scope(), r.template_name.clone());
            if path.contains(&key) {
                let names: Vec<&str> = path
                    .iter()
                    .chain(std::iter::once(&key))
                    .map(|(_, n)| n.as_str())
                    .collect();
                return Err(BuildError::Cycle(names.join(" -> ")));
            }
            let (name, spec) = if r.is_cluster_scope() {
                let (name, t) = self
                    .cluster
                    .get_key_value(&r.template_name)
                    .ok_or_else(|| BuildError::ClusterTemplateNotFound(r.template_name.clone()))?;
                out.cluster.push((name.as_str(), &t.spec.0));
                (name, &t.spec.0)
            } else {
                let (name, t) = self
                    .namespaced
                    .get_key_value(&r.template_name)
                    .ok_or_else(|| BuildError::TemplateNotFound(r.template_name.clone()))?;
                out.namespaced.push((name.as_str(), &t.spec));
                (name, &t.spec)
            };
            if !spec.templates().is_empty() {
                path.push((r.is_cluster_scope(), name.clone()));
                self.resolve_into(spec.templates(), path, out)?;
                path.pop();
            }
        }
        Ok(())
    }

    /// The templates `refs` name, merged into one spec (Argo's `FlattenTemplates`): metrics,
    /// arguments, dry-run and retention rules of the namespaced templates, then of the cluster
    /// ones. Nested references are resolved, so the result has no `templates`.
    pub fn flatten(&self, refs: &[AnalysisTemplateRef]) -> Result<AnalysisTemplateSpec, BuildError> {
        let resolved = self.resolve(refs)?;
        let specs: Vec<&AnalysisTemplateSpec> = resolved
            .namespaced
            .iter()
            .chain(&resolved.cluster)
            .map(|(_, s)| *s)
            .collect();
        let metrics: Vec<Metric> = specs.iter().flat_map(|s| s.metrics().iter().cloned()).collect();
        if let Some(dup) = first_duplicate(metrics.iter().map(|m| m.name.as_str())) {
            return Err(BuildError::DuplicateMetric(dup));
        }
        let mut args: Vec<Argument> = Vec::new();
        for arg in specs.iter().flat_map(|s| s.args()) {
            merge_template_arg(&mut args, arg)?;
        }
        let dry_run = checked_dry_run(
            specs
                .iter()
                .flat_map(|s| s.dry_run.iter().flatten().cloned())
                .collect(),
        )?;
        let retention = checked_retention(
            specs
                .iter()
                .flat_map(|s| s.measurement_retention.iter().flatten().cloned())
                .collect(),
        )?;
        Ok(AnalysisTemplateSpec {
            metrics: non_empty(metrics),
            args: non_empty(args),
            dry_run: non_empty(dry_run),
            measurement_retention: non_empty(retention),
            templates: None,
        })
    }

    /// The spec of a run of the templates `refs` names (Argo's `NewAnalysisRunFromTemplates`):
    /// flattened metrics; the templates' arguments with the caller's values applied
    /// ([`merge_args`]); the caller's dry-run and retention rules followed by the templates'.
    pub fn run_spec(
        &self,
        refs: &[AnalysisTemplateRef],
        args: &[Argument],
        dry_run: &[DryRun],
        measurement_retention: &[MeasurementRetention],
    ) -> Result<AnalysisRunSpec, BuildError> {
        let flat = self.flatten(refs)?;
        let args = merge_args(args, flat.args())?;
        let dry_run = checked_dry_run(
            dry_run
                .iter()
                .cloned()
                .chain(flat.dry_run.into_iter().flatten())
                .collect(),
        )?;
        let retention = checked_retention(
            measurement_retention
                .iter()
                .cloned()
                .chain(flat.measurement_retention.into_iter().flatten())
                .collect(),
        )?;
        Ok(AnalysisRunSpec {
            metrics: flat.metrics.unwrap_or_default(),
            args: non_empty(args),
            dry_run: non_empty(dry_run),
            measurement_retention: non_empty(retention),
            ..Default::default()
        })
    }
}

fn non_empty<T>(v: Vec<T>) -> Option<Vec<T>> {
    (!v.is_empty()).then_some(v)
}

fn dedup_by_name(list: &mut Vec<(&str, &AnalysisTemplateSpec)>) {
    let mut seen = HashSet::new();
    list.retain(|(name, _)| seen.insert(*name));
}

fn first_duplicate<'a>(names: impl Iterator<Item = &'a str>) -> Option<String> {
    let mut seen = HashSet::new();
    names.into_iter().find(|n| !seen.insert(*n)).map(str::to_string)
}

/// Adds a template's argument to the flattened list: a second declaration may fill in a value
/// the first lacked, but may not contradict it.
fn merge_template_arg(args: &mut Vec<Argument>, arg: &Argument) -> Result<(), BuildError> {
    let Some(prev) = args.iter_mut().find(|a| a.name == arg.name) else {
        args.push(arg.clone());
        return Ok(());
    };
    match (&prev.value, &arg.value) {
        (Some(first), Some(second)) if first != second => Err(BuildError::ConflictingArgument {
            name: arg.name.clone(),
            first: first.clone(),
            second: second.clone(),
        }),
        (None, _) => {
            *prev = arg.clone();
            Ok(())
        }
        _ => Ok(()),
    }
}

fn checked_dry_run(rules: Vec<DryRun>) -> Result<Vec<DryRun>, BuildError> {
    match first_duplicate(rules.iter().map(|r| r.metric_name.as_str())) {
        Some(dup) => Err(BuildError::DuplicateDryRun(dup)),
        None => Ok(rules),
    }
}

fn checked_retention(rules: Vec<MeasurementRetention>) -> Result<Vec<MeasurementRetention>, BuildError> {
    match first_duplicate(rules.iter().map(|r| r.metric_name.as_str())) {
        Some(dup) => Err(BuildError::DuplicateMeasurementRetention(dup)),
        None => Ok(rules),
    }
}

/// The template arguments with the caller's values applied (Argo's `MergeArgs`): a supplied
/// `value` (else `valueFrom`) replaces the template's; arguments the templates do not declare
/// are ignored; an argument left with neither is an error naming it.
pub fn merge_args(supplied: &[Argument], template_args: &[Argument]) -> Result<Vec<Argument>, BuildError> {
    let mut merged = template_args.to_vec();
    for arg in supplied {
        if let Some(target) = merged.iter_mut().find(|a| a.name == arg.name) {
            if arg.value.is_some() {
                target.value = arg.value.clone();
            } else if arg.value_from.is_some() {
                target.value_from = arg.value_from.clone();
            }
        }
    }
    match merged
        .iter()
        .find(|a| a.value.is_none() && a.value_from.is_none())
    {
        Some(unresolved) => Err(BuildError::UnresolvedArgument(unresolved.name.clone())),
        None => Ok(merged),
    }
}

/// Whether an existing run is the one a caller would create (Argo's `IsSemanticallyEqual`: only
/// metrics, arguments, dry-run and retention rules count). A creator finding its run's name taken
/// reuses such a run while it is still going, instead of starting another under a new name.
pub fn is_semantically_equal(left: &AnalysisRunSpec, right: &AnalysisRunSpec) -> bool {
    left.metrics == right.metrics
        && left.args() == right.args()
        && left.dry_run.as_deref().unwrap_or_default() == right.dry_run.as_deref().unwrap_or_default()
        && left.measurement_retention.as_deref().unwrap_or_default()
            == right.measurement_retention.as_deref().unwrap_or_default()
}

/// `<base>.<n>`: the name Argo tries after `n` collisions of an AnalysisRun name (`n` = 0 is the
/// base name itself).
pub fn collision_name(base: &str, n: u32) -> String {
    if n == 0 {
        base.to_string()
    } else {
        format!("{base}.{n}")
    }
}

// ---------------------------------------------------------------------------------------------
// Runs created by a Rollout
// ---------------------------------------------------------------------------------------------

/// Why a Rollout runs an analysis: decides the run's name suffix and its `rollout-type` label.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RolloutRunKind {
    /// A canary `analysis` step, at this step index.
    Step(i32),
    /// The canary's background analysis.
    Background,
    /// Blue-green pre-promotion analysis.
    PrePromotion,
    /// Blue-green post-promotion analysis.
    PostPromotion,
}

impl RolloutRunKind {
    /// The `rollout-type` label value (also the word Argo's `AnalysisRun<Phase>` events start with).
    pub fn rollout_type(self) -> &'static str {
        match self {
            RolloutRunKind::Step(_) => rollout_type::STEP,
            RolloutRunKind::Background => rollout_type::BACKGROUND,
            RolloutRunKind::PrePromotion => rollout_type::PRE_PROMOTION,
            RolloutRunKind::PostPromotion => rollout_type::POST_PROMOTION,
        }
    }
}

/// Name of a run a Rollout creates: `<rollout>-<hash>-<revision>` followed by `-<step index>`,
/// `-pre` or `-post` (nothing for background analysis). `hash` is the new ReplicaSet's.
pub fn rollout_run_name(rollout: &str, hash: &str, revision: &str, kind: RolloutRunKind) -> String {
    let base = format!("{rollout}-{hash}-{revision}");
    match kind {
        RolloutRunKind::Step(index) => format!("{base}-{index}"),
        RolloutRunKind::Background => base,
        RolloutRunKind::PrePromotion => format!("{base}-pre"),
        RolloutRunKind::PostPromotion => format!("{base}-post"),
    }
}

/// Labels of a run a Rollout creates, in Argo's order of precedence: the pod-template hash,
/// `rollout-type`, `step-index` (steps) and the Rollout's controller instance id; then the
/// analysis' `analysisRunMetadata.labels`; then every `spec.selector.matchLabels` of the Rollout
/// (so the runs are found with the Rollout's own selector).
pub fn rollout_run_labels(
    rollout: &Rollout,
    hash: &str,
    kind: RolloutRunKind,
    metadata: Option<&AnalysisRunMetadata>,
) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::from([
        (keys::POD_TEMPLATE_HASH.to_string(), hash.to_string()),
        (keys::ROLLOUT_TYPE.to_string(), kind.rollout_type().to_string()),
    ]);
    if let RolloutRunKind::Step(index) = kind {
        labels.insert(keys::STEP_INDEX.into(), index.to_string());
    }
    if let Some(id) = rollout
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(keys::CONTROLLER_INSTANCE_ID))
        .filter(|id| !id.is_empty())
    {
        labels.insert(keys::CONTROLLER_INSTANCE_ID.into(), id.clone());
    }
    labels.extend(metadata.and_then(|m| m.labels.clone()).unwrap_or_default());
    labels.extend(
        rollout
            .spec
            .selector
            .as_ref()
            .and_then(|s| s.match_labels.clone())
            .unwrap_or_default(),
    );
    labels
}

/// Annotations of a run a Rollout creates: the Rollout's revision, then (overriding) the
/// analysis' `analysisRunMetadata.annotations`.
pub fn rollout_run_annotations(
    revision: &str,
    metadata: Option<&AnalysisRunMetadata>,
) -> BTreeMap<String, String> {
    let mut annotations = BTreeMap::from([(keys::REVISION.to_string(), revision.to_string())]);
    annotations.extend(metadata.and_then(|m| m.annotations.clone()).unwrap_or_default());
    annotations
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::{AnalysisRunSpec, ValueFrom};
    use serde_json::json;

    fn metric(name: &str) -> serde_json::Value {
        json!({"name": name, "provider": {"web": {"url": "http://x"}}})
    }

    fn template(name: &str, spec: serde_json::Value) -> (String, AnalysisTemplate) {
        let t = serde_json::from_value(json!({
            "apiVersion": "argoproj.io/v1alpha1", "kind": "AnalysisTemplate",
            "metadata": {"name": name, "namespace": "default"}, "spec": spec,
        }))
        .expect("template parses");
        (name.to_string(), t)
    }

    fn cluster_template(name: &str, spec: serde_json::Value) -> (String, ClusterAnalysisTemplate) {
        let t = serde_json::from_value(json!({
            "apiVersion": "argoproj.io/v1alpha1", "kind": "ClusterAnalysisTemplate",
            "metadata": {"name": name}, "spec": spec,
        }))
        .expect("cluster template parses");
        (name.to_string(), t)
    }

    fn refs(value: serde_json::Value) -> Vec<AnalysisTemplateRef> {
        serde_json::from_value(value).expect("refs parse")
    }

    fn arg(name: &str, value: Option<&str>) -> Argument {
        Argument {
            name: name.into(),
            value: value.map(Into::into),
            value_from: None,
        }
    }

    fn metric_names(spec: &AnalysisRunSpec) -> Vec<&str> {
        spec.metrics.iter().map(|m| m.name.as_str()).collect()
    }

    #[test]
    fn nested_templates_are_flattened_depth_first_each_once() {
        let namespaced = BTreeMap::from([
            template(
                "top",
                json!({"metrics": [metric("a")], "templates": [{"templateName": "mid"}, {"templateName": "leaf"}]}),
            ),
            template(
                "mid",
                json!({"metrics": [metric("b")], "templates": [{"templateName": "leaf"}, {"templateName": "shared", "clusterScope": true}]}),
            ),
            template("leaf", json!({"metrics": [metric("c")]})),
        ]);
        let cluster = BTreeMap::from([cluster_template("shared", json!({"metrics": [metric("d")]}))]);
        let templates = Templates {
            namespaced: &namespaced,
            cluster: &cluster,
        };
        let spec = templates
            .run_spec(&refs(json!([{"templateName": "top"}])), &[], &[], &[])
            .expect("builds");
        // Namespaced first (top, mid, leaf once), then cluster.
        assert_eq!(metric_names(&spec), ["a", "b", "c", "d"]);
    }

    #[test]
    fn cluster_templates_come_after_namespaced_ones() {
        let namespaced = BTreeMap::from([template("ns", json!({"metrics": [metric("ns-metric")]}))]);
        let cluster = BTreeMap::from([cluster_template(
            "ns",
            json!({"metrics": [metric("cluster-metric")]}),
        )]);
        let templates = Templates {
            namespaced: &namespaced,
            cluster: &cluster,
        };
        let spec = templates
            .run_spec(
                &refs(json!([{"templateName": "ns", "clusterScope": true}, {"templateName": "ns"}])),
                &[],
                &[],
                &[],
            )
            .expect("builds");
        assert_eq!(metric_names(&spec), ["ns-metric", "cluster-metric"]);
    }

    #[test]
    fn caller_values_override_template_args_and_defaults_are_kept() {
        let namespaced = BTreeMap::from([template(
            "t",
            json!({"metrics": [metric("m")], "args": [
                {"name": "service"}, {"name": "threshold", "value": "0.95"}, {"name": "window", "value": "5m"},
                {"name": "token", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}
            ]}),
        )]);
        let cluster = BTreeMap::new();
        let templates = Templates {
            namespaced: &namespaced,
            cluster: &cluster,
        };
        let supplied = [
            arg("service", Some("canary")),
            arg("threshold", Some("0.99")),
            arg("not-declared", Some("ignored")),
        ];
        let spec = templates
            .run_spec(&refs(json!([{"templateName": "t"}])), &supplied, &[], &[])
            .expect("builds");
        let args: Vec<(&str, Option<&str>)> = spec
            .args()
            .iter()
            .map(|a| (a.name.as_str(), a.value.as_deref()))
            .collect();
        assert_eq!(
            args,
            [
                ("service", Some("canary")),
                ("threshold", Some("0.99")),
                ("window", Some("5m")),
                ("token", None)
            ]
        );
        assert!(spec.args()[3].value_from.is_some(), "valueFrom kept");
    }

    #[test]
    fn supplied_value_from_fills_an_argument() {
        let from = ValueFrom {
            field_ref: Some(crate::analysis::FieldRef {
                field_path: "metadata.name".into(),
            }),
            ..Default::default()
        };
        let supplied = [Argument {
            name: "a".into(),
            value: None,
            value_from: Some(from.clone()),
        }];
        let merged = merge_args(&supplied, &[arg("a", None)]).expect("resolved");
        assert_eq!(merged[0].value_from, Some(from));
    }

    #[test]
    fn missing_argument_is_named_in_the_error() {
        let namespaced = BTreeMap::from([template(
            "t",
            json!({"metrics": [metric("m")], "args": [{"name": "service-name"}]}),
        )]);
        let cluster = BTreeMap::new();
        let templates = Templates {
            namespaced: &namespaced,
            cluster: &cluster,
        };
        let err = templates
            .run_spec(&refs(json!([{"templateName": "t"}])), &[], &[], &[])
            .expect_err("unresolved");
        assert_eq!(err.to_string(), "args.service-name was not resolved");
    }

    #[test]
    fn conflicting_argument_values_across_templates_are_an_error() {
        let namespaced = BTreeMap::from([
            template(
                "a",
                json!({"metrics": [metric("m1")], "args": [{"name": "x"}, {"name": "y", "value": "1"}]}),
            ),
            template(
                "b",
                json!({"metrics": [metric("m2")], "args": [{"name": "x", "value": "filled"}, {"name": "y", "value": "2"}]}),
            ),
        ]);
        let cluster = BTreeMap::new();
        let templates = Templates {
            namespaced: &namespaced,
            cluster: &cluster,
        };
        let err = templates
            .flatten(&refs(json!([{"templateName": "a"}, {"templateName": "b"}])))
            .expect_err("conflict");
        assert_eq!(
            err.to_string(),
            "Argument `y` specified multiple times with different values: '1', '2'"
        );
    }

    #[test]
    fn missing_templates_are_named() {
        let empty = BTreeMap::new();
        let empty_cluster = BTreeMap::new();
        let templates = Templates {
            namespaced: &empty,
            cluster: &empty_cluster,
        };
        assert_eq!(
            templates
                .flatten(&refs(json!([{"templateName": "x"}])))
                .expect_err("missing")
                .to_string(),
            "AnalysisTemplate \"x\" not found"
        );
        assert_eq!(
            templates
                .flatten(&refs(json!([{"templateName": "y", "clusterScope": true}])))
                .expect_err("missing")
                .to_string(),
            "ClusterAnalysisTemplate \"y\" not found"
        );
    }

    #[test]
    fn reference_cycles_are_an_error() {
        let namespaced = BTreeMap::from([
            template(
                "a",
                json!({"metrics": [metric("m")], "templates": [{"templateName": "b"}]}),
            ),
            template("b", json!({"templates": [{"templateName": "a"}]})),
        ]);
        let cluster = BTreeMap::new();
        let templates = Templates {
            namespaced: &namespaced,
            cluster: &cluster,
        };
        assert_eq!(
            templates.flatten(&refs(json!([{"templateName": "a"}]))),
            Err(BuildError::Cycle("a -> b -> a".into()))
        );
    }

    #[test]
    fn duplicate_metric_names_are_an_error_naming_the_metric() {
        let namespaced = BTreeMap::from([
            template("a", json!({"metrics": [metric("success-rate")]})),
            template("b", json!({"metrics": [metric("success-rate")]})),
        ]);
        let cluster = BTreeMap::new();
        let templates = Templates {
            namespaced: &namespaced,
            cluster: &cluster,
        };
        assert_eq!(
            templates
                .flatten(&refs(json!([{"templateName": "a"}, {"templateName": "b"}])))
                .expect_err("duplicate")
                .to_string(),
            "two metrics have the same name 'success-rate'"
        );
    }

    #[test]
    fn dry_run_and_retention_put_the_callers_rules_first() {
        let namespaced = BTreeMap::from([template(
            "t",
            json!({"metrics": [metric("a"), metric("b")],
                   "dryRun": [{"metricName": "b"}],
                   "measurementRetention": [{"metricName": "b", "limit": 3}]}),
        )]);
        let cluster = BTreeMap::new();
        let templates = Templates {
            namespaced: &namespaced,
            cluster: &cluster,
        };
        let t = refs(json!([{"templateName": "t"}]));
        let dry = [DryRun {
            metric_name: "a".into(),
        }];
        let keep = [MeasurementRetention {
            metric_name: "a".into(),
            limit: 20,
        }];
        let spec = templates.run_spec(&t, &[], &dry, &keep).expect("builds");
        let dry_names: Vec<&str> = spec
            .dry_run
            .iter()
            .flatten()
            .map(|d| d.metric_name.as_str())
            .collect();
        assert_eq!(dry_names, ["a", "b"]);
        let limits: Vec<(&str, i32)> = spec
            .measurement_retention
            .iter()
            .flatten()
            .map(|r| (r.metric_name.as_str(), r.limit))
            .collect();
        assert_eq!(limits, [("a", 20), ("b", 3)]);
        // The same rule from caller and template collides, as in Argo.
        let twice = [DryRun {
            metric_name: "b".into(),
        }];
        assert_eq!(
            templates.run_spec(&t, &[], &twice, &[]),
            Err(BuildError::DuplicateDryRun("b".into()))
        );
    }

    #[test]
    fn semantic_equality_ignores_terminate_and_ttl() {
        let a = AnalysisRunSpec {
            metrics: serde_json::from_value(json!([metric("m")])).expect("metrics"),
            ..Default::default()
        };
        let mut b = a.clone();
        b.terminate = Some(true);
        assert!(is_semantically_equal(&a, &b));
        b.args = Some(vec![arg("x", Some("1"))]);
        assert!(!is_semantically_equal(&a, &b));
        assert_eq!(collision_name("r", 0), "r");
        assert_eq!(collision_name("r", 2), "r.2");
    }

    #[test]
    fn names_follow_argo() {
        let name = |kind| rollout_run_name("mock-server", "7c6fcfb847", "2", kind);
        assert_eq!(name(RolloutRunKind::Step(2)), "mock-server-7c6fcfb847-2-2");
        assert_eq!(name(RolloutRunKind::Background), "mock-server-7c6fcfb847-2");
        assert_eq!(name(RolloutRunKind::PrePromotion), "mock-server-7c6fcfb847-2-pre");
        assert_eq!(
            name(RolloutRunKind::PostPromotion),
            "mock-server-7c6fcfb847-2-post"
        );
    }

    #[test]
    fn labels_and_annotations_follow_argo() {
        let rollout: Rollout = serde_json::from_value(json!({
            "apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
            "metadata": {"name": "r", "labels": {keys::CONTROLLER_INSTANCE_ID: "blue", "team": "x"}},
            "spec": {"selector": {"matchLabels": {"app": "mock-server"}}, "strategy": {"canary": {}}},
        }))
        .expect("rollout parses");
        let metadata = AnalysisRunMetadata {
            labels: Some(BTreeMap::from([
                ("extra".to_string(), "1".to_string()),
                ("app".to_string(), "overridden-by-selector".to_string()),
            ])),
            annotations: Some(BTreeMap::from([("note".to_string(), "n".to_string())])),
        };
        let labels = rollout_run_labels(&rollout, "abc", RolloutRunKind::Step(3), Some(&metadata));
        let expected: BTreeMap<String, String> = [
            ("rollouts-pod-template-hash", "abc"),
            ("rollout-type", "Step"),
            ("step-index", "3"),
            (keys::CONTROLLER_INSTANCE_ID, "blue"),
            ("extra", "1"),
            ("app", "mock-server"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(labels, expected);
        let background = rollout_run_labels(&rollout, "abc", RolloutRunKind::Background, None);
        assert_eq!(
            background.get("rollout-type").map(String::as_str),
            Some("Background")
        );
        assert!(!background.contains_key("step-index"));
        assert_eq!(
            rollout_run_labels(&rollout, "abc", RolloutRunKind::PrePromotion, None)["rollout-type"],
            "PrePromotion"
        );
        assert_eq!(
            rollout_run_labels(&rollout, "abc", RolloutRunKind::PostPromotion, None)["rollout-type"],
            "PostPromotion"
        );
        assert_eq!(
            rollout_run_annotations("2", Some(&metadata)),
            BTreeMap::from([
                ("note".to_string(), "n".to_string()),
                ("rollout.argoproj.io/revision".to_string(), "2".to_string()),
            ])
        );
    }
}

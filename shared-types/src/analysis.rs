//! `AnalysisTemplate`, `ClusterAnalysisTemplate` and `AnalysisRun` (`argoproj.io/v1alpha1`), their
//! nested types, defaults, constants and spec validation.
//!
//! Field order follows Argo Rollouts' Go structs (`pkg/apis/rollouts/v1alpha1/analysis_types.go`),
//! every optional field is an `Option` that is left out when unset, so a manifest read and written
//! back gives the same JSON. Defaults are exposed as methods (e.g. [`Metric::consecutive_error_limit`])
//! instead of being written into objects.
//!
//! Difference from Argo: `AnalysisRun` declares the `status` subresource.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::ops::{Deref, DerefMut};
use std::str::FromStr;
use std::time::Duration;

use k8s_openapi::api::batch::v1::JobSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize};

use crate::common::PodTemplateMetadata;
use crate::duration::{DurationError, parse_duration};
use crate::field_error::FieldError;

// ---------------------------------------------------------------------------------------------
// Constants
// ---------------------------------------------------------------------------------------------

/// Default for [`Metric::consecutive_error_limit`]: the 5th consecutive error fails the metric.
pub const DEFAULT_CONSECUTIVE_ERROR_LIMIT: i32 = 4;
/// Default for [`Metric::failure_limit`]: the first failed measurement fails the metric.
pub const DEFAULT_FAILURE_LIMIT: i32 = 0;
/// Default for [`Metric::inconclusive_limit`].
pub const DEFAULT_INCONCLUSIVE_LIMIT: i32 = 0;
/// Default for [`Metric::consecutive_success_limit`] (0 = disabled).
pub const DEFAULT_CONSECUTIVE_SUCCESS_LIMIT: i32 = 0;
/// Measurements kept per metric when no `measurementRetention` rule applies.
pub const DEFAULT_MEASUREMENT_HISTORY_LIMIT: i32 = 10;
/// Delay before retrying a metric whose last measurement ended in `Error`, whatever its interval.
pub const DEFAULT_ERROR_RETRY_INTERVAL: Duration = Duration::from_secs(10);
/// Default Prometheus query timeout in seconds ([`PrometheusMetric::timeout_seconds`]).
pub const DEFAULT_PROMETHEUS_TIMEOUT_SECONDS: i64 = 30;
/// Environment variable giving the Prometheus address when a metric does not set one.
pub const PROMETHEUS_ADDRESS_ENV: &str = "ARGO_ROLLOUTS_PROMETHEUS_ADDRESS";
/// Default web metric HTTP method ([`WebMetric::method`]).
pub const DEFAULT_WEB_METHOD: &str = "GET";
/// Default web metric timeout in seconds ([`WebMetric::timeout_seconds`]).
pub const DEFAULT_WEB_TIMEOUT_SECONDS: i64 = 10;
/// Default web metric JSONPath ([`WebMetric::json_path`]): the whole response body.
pub const DEFAULT_WEB_JSON_PATH: &str = "{$}";
/// Environment variable naming the namespace analysis Jobs are created in (default: the run's).
pub const ANALYSIS_JOB_NAMESPACE_ENV: &str = "ARGO_ROLLOUTS_ANALYSIS_JOB_NAMESPACE";

/// Label on analysis Jobs and their pod templates: uid of the owning AnalysisRun.
pub const ANALYSIS_RUN_UID_LABEL: &str = "analysisrun.argoproj.io/uid";
/// Annotation on analysis Jobs: name of the AnalysisRun.
pub const ANALYSIS_RUN_NAME_ANNOTATION: &str = "analysisrun.argoproj.io/name";
/// Annotation on analysis Jobs: namespace of the AnalysisRun.
pub const ANALYSIS_RUN_NAMESPACE_ANNOTATION: &str = "analysisrun.argoproj.io/namespace";
/// Annotation on analysis Jobs: name of the metric the Job measures.
pub const ANALYSIS_RUN_METRIC_NAME_ANNOTATION: &str = "analysisrun.argoproj.io/metric-name";

/// Measurement metadata key (Job provider): name of the Job.
pub const JOB_NAME_METADATA_KEY: &str = "job-name";
/// Measurement metadata key (Job provider): namespace of the Job.
pub const JOB_NAMESPACE_METADATA_KEY: &str = "job-namespace";
/// Measurement metadata key (Prometheus provider): API warnings.
pub const PROMETHEUS_WARNINGS_METADATA_KEY: &str = "warnings";
/// Metric result metadata key (Prometheus provider): the query after argument substitution.
pub const RESOLVED_PROMETHEUS_QUERY_METADATA_KEY: &str = "ResolvedPrometheusQuery";

// ---------------------------------------------------------------------------------------------
// Int-or-string helpers
// ---------------------------------------------------------------------------------------------

/// An int-or-string field holds a string that is not an integer.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{value:?} is not an integer")]
pub struct NotAnInteger {
    /// The string as written.
    pub value: String,
}

/// Resolves an int-or-string count or limit to an integer: the integer form as is, the string
/// form parsed as a decimal integer (`"3"` → 3, like Go's `strconv.Atoi`).
pub fn int_or_string_to_i32(value: &IntOrString) -> Result<i32, NotAnInteger> {
    match value {
        IntOrString::Int(v) => Ok(*v),
        IntOrString::String(s) => s.parse::<i32>().map_err(|_| NotAnInteger { value: s.clone() }),
    }
}

/// Whether an int-or-string holds an unresolved `{{ ... }}` argument placeholder (templates may
/// write e.g. `count: "{{args.count}}"`; it is only an integer once the run substitutes it).
pub fn is_arg_placeholder(value: &IntOrString) -> bool {
    matches!(value, IntOrString::String(s) if s.contains("{{"))
}

fn resolve_or(value: Option<&IntOrString>, default: i32) -> Result<i32, NotAnInteger> {
    value.map_or(Ok(default), int_or_string_to_i32)
}

// ---------------------------------------------------------------------------------------------
// Phase
// ---------------------------------------------------------------------------------------------

/// Removes the type-level description from an enum's schema. kube hoists an `Option<enum>`'s
/// inner schema over the field's, so a type description would replace every field description
/// (what `kubectl explain` shows); without it the field docs stay.
pub(crate) fn drop_description(schema: &mut schemars::Schema) {
    schema.remove("description");
}

/// Phase of an AnalysisRun, of one of its metrics, or of one measurement (Experiments reuse it).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
#[schemars(transform = drop_description)]
pub enum AnalysisPhase {
    /// Not started yet.
    #[default]
    Pending,
    /// In progress.
    Running,
    /// Finished and passed.
    Successful,
    /// Finished and failed.
    Failed,
    /// Finished because measuring kept failing.
    Error,
    /// Finished without a clear pass or fail (needs a human decision).
    Inconclusive,
}

impl AnalysisPhase {
    /// All phases, in declaration order.
    pub const ALL: [AnalysisPhase; 6] = [
        AnalysisPhase::Pending,
        AnalysisPhase::Running,
        AnalysisPhase::Successful,
        AnalysisPhase::Failed,
        AnalysisPhase::Error,
        AnalysisPhase::Inconclusive,
    ];

    /// Whether the phase is final: `Successful`, `Failed`, `Error` or `Inconclusive`.
    pub fn is_completed(self) -> bool {
        matches!(
            self,
            AnalysisPhase::Successful
                | AnalysisPhase::Failed
                | AnalysisPhase::Error
                | AnalysisPhase::Inconclusive
        )
    }

    /// The phase as written in objects (`"Successful"`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            AnalysisPhase::Pending => "Pending",
            AnalysisPhase::Running => "Running",
            AnalysisPhase::Successful => "Successful",
            AnalysisPhase::Failed => "Failed",
            AnalysisPhase::Error => "Error",
            AnalysisPhase::Inconclusive => "Inconclusive",
        }
    }
}

impl fmt::Display for AnalysisPhase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A string that is not one of the [`AnalysisPhase`] values.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown analysis phase {0:?}")]
pub struct UnknownPhase(pub String);

impl FromStr for AnalysisPhase {
    type Err = UnknownPhase;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        AnalysisPhase::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| UnknownPhase(s.to_string()))
    }
}

/// Reads an optional phase, treating `""` (what Go writes for an unset phase) as unset.
pub(crate) fn deserialize_optional_phase<'de, D>(deserializer: D) -> Result<Option<AnalysisPhase>, D::Error>
where
    D: Deserializer<'de>,
{
    let raw: Option<String> = Option::deserialize(deserializer)?;
    match raw.as_deref() {
        None | Some("") => Ok(None),
        Some(s) => s.parse().map(Some).map_err(serde::de::Error::custom),
    }
}

// ---------------------------------------------------------------------------------------------
// Templates
// ---------------------------------------------------------------------------------------------

/// AnalysisTemplate: a reusable, namespaced description of how to analyse a release (which metrics
/// to measure, how often, and what counts as success or failure).
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "argoproj.io",
    version = "v1alpha1",
    kind = "AnalysisTemplate",
    plural = "analysistemplates",
    namespaced,
    shortname = "at",
    category = "argo-rollouts",
    derive = "PartialEq",
    doc = "AnalysisTemplate holds a template for performing canary analysis.",
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp","description":"Time since resource was created"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct AnalysisTemplateSpec {
    /// Metrics to measure during an analysis run. May be left out when `templates` supplies them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics: Option<Vec<Metric>>,
    /// Arguments the metrics refer to as `{{args.<name>}}`; values may be supplied by the caller.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args: Option<Vec<Argument>>,
    /// Metrics to run in dry-run mode: their results never change the run's outcome.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dry_run: Option<Vec<DryRun>>,
    /// How many measurements to keep per metric, overriding the default of 10.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub measurement_retention: Option<Vec<MeasurementRetention>>,
    /// Other analysis templates whose metrics, args, dry-run and retention rules are merged into
    /// this one (recursively).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub templates: Option<Vec<AnalysisTemplateRef>>,
}

impl AnalysisTemplateSpec {
    /// The metrics declared directly in this template (empty when unset).
    pub fn metrics(&self) -> &[Metric] {
        self.metrics.as_deref().unwrap_or_default()
    }

    /// The declared arguments (empty when unset).
    pub fn args(&self) -> &[Argument] {
        self.args.as_deref().unwrap_or_default()
    }

    /// The nested template references (empty when unset).
    pub fn templates(&self) -> &[AnalysisTemplateRef] {
        self.templates.as_deref().unwrap_or_default()
    }
}

/// Spec of a ClusterAnalysisTemplate: the same fields as an AnalysisTemplate's spec (it derefs to
/// [`AnalysisTemplateSpec`]).
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "argoproj.io",
    version = "v1alpha1",
    kind = "ClusterAnalysisTemplate",
    plural = "clusteranalysistemplates",
    shortname = "cat",
    category = "argo-rollouts",
    derive = "PartialEq",
    doc = "ClusterAnalysisTemplate holds a cluster-wide template for performing canary analysis, usable from any namespace.",
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp","description":"Time since resource was created"}"#
)]
#[serde(transparent)]
pub struct ClusterAnalysisTemplateSpec(pub AnalysisTemplateSpec);

impl Deref for ClusterAnalysisTemplateSpec {
    type Target = AnalysisTemplateSpec;

    fn deref(&self) -> &AnalysisTemplateSpec {
        &self.0
    }
}

impl DerefMut for ClusterAnalysisTemplateSpec {
    fn deref_mut(&mut self) -> &mut AnalysisTemplateSpec {
        &mut self.0
    }
}

impl From<AnalysisTemplateSpec> for ClusterAnalysisTemplateSpec {
    fn from(spec: AnalysisTemplateSpec) -> Self {
        Self(spec)
    }
}

impl From<ClusterAnalysisTemplateSpec> for AnalysisTemplateSpec {
    fn from(spec: ClusterAnalysisTemplateSpec) -> Self {
        spec.0
    }
}

/// Reference to an AnalysisTemplate (or, with `clusterScope`, a ClusterAnalysisTemplate) by name.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AnalysisTemplateRef {
    /// Name of the template.
    pub template_name: String,
    /// When true, the name refers to a ClusterAnalysisTemplate instead of an AnalysisTemplate in
    /// the same namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_scope: Option<bool>,
}

impl AnalysisTemplateRef {
    /// Whether the reference points to a ClusterAnalysisTemplate (unset = false).
    pub fn is_cluster_scope(&self) -> bool {
        self.cluster_scope.unwrap_or(false)
    }
}

/// Selects metrics that run in dry-run mode.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DryRun {
    /// Metric name pattern (an unanchored regular expression; `.*` selects every metric).
    pub metric_name: String,
}

/// How many measurements to keep for matching metrics.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MeasurementRetention {
    /// Metric name pattern (an unanchored regular expression).
    pub metric_name: String,
    /// Number of most recent measurements to keep for the matching metrics.
    pub limit: i32,
}

/// Labels and annotations put on AnalysisRuns created by a Rollout or an Experiment.
pub type AnalysisRunMetadata = PodTemplateMetadata;

// ---------------------------------------------------------------------------------------------
// Arguments
// ---------------------------------------------------------------------------------------------

/// An argument of an analysis template or run, referenced in metrics as `{{args.<name>}}`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Argument {
    /// Name of the argument.
    pub name: String,
    /// Literal value. Unset means the value must be supplied by the caller or by `valueFrom`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// Where to read the value from when it is not given literally.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_from: Option<ValueFrom>,
}

/// Source of an argument value (one of the fields should be set).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ValueFrom {
    /// Read the value from a key of a Secret in the AnalysisRun's namespace, when measuring.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_key_ref: Option<SecretKeyRef>,
    /// Read the value from a field of the owning Rollout (e.g. `metadata.labels['app']`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field_ref: Option<FieldRef>,
}

/// A key in a Secret.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    /// Name of the Secret.
    pub name: String,
    /// Key inside the Secret's data.
    pub key: String,
}

/// A path to a field of the referencing object.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FieldRef {
    /// Field path, e.g. `metadata.name` or `metadata.labels['app']`.
    pub field_path: String,
}

// ---------------------------------------------------------------------------------------------
// Metric
// ---------------------------------------------------------------------------------------------

/// One metric to measure, how often, and how to judge each measurement.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Metric {
    /// Name of the metric, unique within a run.
    pub name: String,
    /// Time between measurements as a duration string (`30s`, `5m`, `1h`). Unset means a single
    /// measurement, unless `count` is greater than 1 (which then requires an interval).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<String>,
    /// How long to wait after the run starts before the first measurement (duration string).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initial_delay: Option<String>,
    /// Number of measurements to take. Unset (or 0) and no interval: 1. Unset with an interval:
    /// measure until the run is terminated. Integer, or a string holding one (e.g. an argument).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<IntOrString>,
    /// Expression deciding that a measurement succeeded; `result` is the measured value
    /// (e.g. `result[0] >= 0.95`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub success_condition: Option<String>,
    /// Expression deciding that a measurement failed. When both conditions are set and neither
    /// holds, the measurement is Inconclusive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_condition: Option<String>,
    /// How many failed measurements are tolerated before the metric fails (default 0; -1 turns
    /// failure counting off, which requires consecutiveSuccessLimit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_limit: Option<IntOrString>,
    /// How many inconclusive measurements are tolerated before the metric is Inconclusive
    /// (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inconclusive_limit: Option<IntOrString>,
    /// How many measurement errors in a row are tolerated before the metric errors (default 4).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consecutive_error_limit: Option<IntOrString>,
    /// The system to measure with; exactly one provider must be set.
    pub provider: MetricProvider,
    /// Number of successful measurements in a row that make the metric Successful (default 0 =
    /// disabled).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consecutive_success_limit: Option<IntOrString>,
}

fn non_empty(s: &Option<String>) -> Option<&str> {
    s.as_deref().filter(|s| !s.is_empty())
}

impl Metric {
    /// `count` as an integer, or `None` when unset.
    pub fn count_value(&self) -> Result<Option<i32>, NotAnInteger> {
        self.count.as_ref().map(int_or_string_to_i32).transpose()
    }

    /// The number of measurements the metric takes: `Some(1)` when neither count nor interval is
    /// set, `None` (unbounded) when only the interval is set, otherwise the count.
    pub fn effective_count(&self) -> Result<Option<i32>, NotAnInteger> {
        match self.count_value()? {
            None | Some(0) if non_empty(&self.interval).is_none() => Ok(Some(1)),
            None | Some(0) => Ok(None),
            Some(n) => Ok(Some(n)),
        }
    }

    /// Failed measurements tolerated (default 0; -1 = failure counting disabled).
    pub fn failure_limit(&self) -> Result<i32, NotAnInteger> {
        resolve_or(self.failure_limit.as_ref(), DEFAULT_FAILURE_LIMIT)
    }

    /// Inconclusive measurements tolerated (default 0).
    pub fn inconclusive_limit(&self) -> Result<i32, NotAnInteger> {
        resolve_or(self.inconclusive_limit.as_ref(), DEFAULT_INCONCLUSIVE_LIMIT)
    }

    /// Consecutive measurement errors tolerated (default 4).
    pub fn consecutive_error_limit(&self) -> Result<i32, NotAnInteger> {
        resolve_or(
            self.consecutive_error_limit.as_ref(),
            DEFAULT_CONSECUTIVE_ERROR_LIMIT,
        )
    }

    /// Consecutive successes that complete the metric (default 0 = disabled).
    pub fn consecutive_success_limit(&self) -> Result<i32, NotAnInteger> {
        resolve_or(
            self.consecutive_success_limit.as_ref(),
            DEFAULT_CONSECUTIVE_SUCCESS_LIMIT,
        )
    }

    /// The parsed `interval`, or `None` when unset or empty.
    pub fn interval_duration(&self) -> Result<Option<Duration>, DurationError> {
        non_empty(&self.interval).map(parse_duration).transpose()
    }

    /// The parsed `initialDelay`, or `None` when unset or empty.
    pub fn initial_delay_duration(&self) -> Result<Option<Duration>, DurationError> {
        non_empty(&self.initial_delay).map(parse_duration).transpose()
    }
}

/// The system a metric is measured with. Exactly one field may be set (a `plugin` map counts one
/// provider per entry).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MetricProvider {
    /// Query a Prometheus server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prometheus: Option<PrometheusMetric>,
    /// Run a Kayenta canary judgement (vendor configuration, kept as written).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::common::preserve_unknown_object")]
    pub kayenta: Option<serde_json::Value>,
    /// Call an HTTP endpoint and read a value from its response.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub web: Option<WebMetric>,
    /// Query Datadog (vendor configuration, kept as written).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::common::preserve_unknown_object")]
    pub datadog: Option<serde_json::Value>,
    /// Query Wavefront (vendor configuration, kept as written).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::common::preserve_unknown_object")]
    pub wavefront: Option<serde_json::Value>,
    /// Query New Relic (vendor configuration, kept as written).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::common::preserve_unknown_object")]
    pub new_relic: Option<serde_json::Value>,
    /// Run a Kubernetes Job: the measurement succeeds when the Job completes and fails when it
    /// fails.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<JobMetric>,
    /// Query AWS CloudWatch (vendor configuration, kept as written).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::common::preserve_unknown_object")]
    pub cloud_watch: Option<serde_json::Value>,
    /// Query Graphite (vendor configuration, kept as written).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::common::preserve_unknown_object")]
    pub graphite: Option<serde_json::Value>,
    /// Query InfluxDB (vendor configuration, kept as written).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::common::preserve_unknown_object")]
    pub influxdb: Option<serde_json::Value>,
    /// Query Apache SkyWalking (vendor configuration, kept as written).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::common::preserve_unknown_object")]
    pub skywalking: Option<serde_json::Value>,
    /// Metric plugins: plugin name → plugin configuration (kept as written).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::common::preserve_unknown_object")]
    pub plugin: Option<BTreeMap<String, serde_json::Value>>,
}

impl MetricProvider {
    /// Names of the configured providers (`prometheus`, `web`, `job`, ... and each plugin name),
    /// in declaration order. A valid metric has exactly one.
    pub fn configured(&self) -> Vec<&str> {
        let mut names = Vec::new();
        let builtin: [(&str, bool); 11] = [
            ("prometheus", self.prometheus.is_some()),
            ("kayenta", self.kayenta.is_some()),
            ("web", self.web.is_some()),
            ("datadog", self.datadog.is_some()),
            ("wavefront", self.wavefront.is_some()),
            ("newRelic", self.new_relic.is_some()),
            ("job", self.job.is_some()),
            ("cloudWatch", self.cloud_watch.is_some()),
            ("graphite", self.graphite.is_some()),
            ("influxdb", self.influxdb.is_some()),
            ("skywalking", self.skywalking.is_some()),
        ];
        names.extend(builtin.iter().filter(|(_, set)| *set).map(|(name, _)| *name));
        if let Some(plugins) = &self.plugin {
            names.extend(plugins.keys().map(String::as_str));
        }
        names
    }
}

// ---------------------------------------------------------------------------------------------
// Prometheus
// ---------------------------------------------------------------------------------------------

/// A Prometheus query.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PrometheusMetric {
    /// Base URL of the Prometheus server; when unset the controller's
    /// `ARGO_ROLLOUTS_PROMETHEUS_ADDRESS` environment variable is used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// PromQL query to run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    /// Credentials for the server (SigV4 for Amazon Managed Prometheus, OAuth2, basic auth).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authentication: Option<Authentication>,
    /// Query timeout in seconds (default 30).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<i64>,
    /// Skip TLS certificate verification.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub insecure: Option<bool>,
    /// Extra HTTP headers sent with the query.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headers: Option<Vec<WebMetricHeader>>,
    /// Run a range query instead of an instant query.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub range_query: Option<PrometheusRangeQueryArgs>,
}

impl PrometheusMetric {
    /// Query timeout in seconds (30 when unset).
    pub fn timeout_seconds(&self) -> i64 {
        self.timeout.unwrap_or(DEFAULT_PROMETHEUS_TIMEOUT_SECONDS)
    }
}

/// Time range of a Prometheus range query.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PrometheusRangeQueryArgs {
    /// Start time, as an expression (e.g. `now() - duration("5m")`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<String>,
    /// End time, as an expression (e.g. `now()`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end: Option<String>,
    /// Resolution step as a duration string (e.g. `1m`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<String>,
}

/// Credentials for a metric provider's HTTP endpoint.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Authentication {
    /// AWS SigV4 request signing (Amazon Managed Prometheus).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sigv4: Option<Sigv4Config>,
    /// OAuth2 client-credentials flow.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oauth2: Option<OAuth2Config>,
    /// HTTP basic authentication.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub basic_auth: Option<BasicAuth>,
}

/// AWS SigV4 signing settings.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Sigv4Config {
    /// AWS region to sign requests for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// AWS credentials profile to sign with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    /// IAM role to assume for signing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_arn: Option<String>,
}

/// OAuth2 client-credentials settings.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OAuth2Config {
    /// Token endpoint URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_url: Option<String>,
    /// OAuth2 client id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// OAuth2 client secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
    /// Scopes to request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scopes: Option<Vec<String>>,
}

/// HTTP basic authentication credentials.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BasicAuth {
    /// User name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// Password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// Web
// ---------------------------------------------------------------------------------------------

/// An HTTP request whose response provides the measured value.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebMetric {
    /// HTTP method: `GET` (default), `POST` or `PUT`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// URL to call.
    pub url: String,
    /// Extra HTTP headers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headers: Option<Vec<WebMetricHeader>>,
    /// Request body as text (POST/PUT only; mutually exclusive with jsonBody).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// Request timeout in seconds (default 10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<i64>,
    /// JSONPath selecting the value from a JSON response (default `{$}`, the whole body).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub json_path: Option<String>,
    /// Skip TLS certificate verification.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub insecure: Option<bool>,
    /// Request body as JSON (POST/PUT only; sent with `Content-Type: application/json`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::common::preserve_unknown_any")]
    pub json_body: Option<serde_json::Value>,
    /// Credentials for the endpoint (only OAuth2 is used).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authentication: Option<Authentication>,
}

impl WebMetric {
    /// HTTP method (`GET` when unset).
    pub fn method(&self) -> &str {
        non_empty(&self.method).unwrap_or(DEFAULT_WEB_METHOD)
    }

    /// Request timeout in seconds (10 when unset or 0).
    pub fn timeout_seconds(&self) -> i64 {
        self.timeout_seconds
            .filter(|t| *t > 0)
            .unwrap_or(DEFAULT_WEB_TIMEOUT_SECONDS)
    }

    /// JSONPath applied to JSON responses (`{$}` when unset or empty).
    pub fn json_path(&self) -> &str {
        non_empty(&self.json_path).unwrap_or(DEFAULT_WEB_JSON_PATH)
    }
}

/// One HTTP header.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebMetricHeader {
    /// Header name.
    pub key: String,
    /// Header value.
    pub value: String,
}

// ---------------------------------------------------------------------------------------------
// Job
// ---------------------------------------------------------------------------------------------

/// A Kubernetes Job run as a measurement.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobMetric {
    /// Labels and annotations for the created Job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<PodTemplateMetadata>,
    /// Spec of the Job to create.
    pub spec: JobSpec,
}

// ---------------------------------------------------------------------------------------------
// AnalysisRun
// ---------------------------------------------------------------------------------------------

/// AnalysisRun: one execution of analysis metrics (usually instantiated from templates by a
/// Rollout or an Experiment). It ends Successful, Failed, Error or Inconclusive.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "argoproj.io",
    version = "v1alpha1",
    kind = "AnalysisRun",
    plural = "analysisruns",
    namespaced,
    shortname = "ar",
    category = "argo-rollouts",
    status = "AnalysisRunStatus",
    derive = "PartialEq",
    doc = "AnalysisRun is an instantiation of an AnalysisTemplate.",
    printcolumn = r#"{"name":"Status","type":"string","jsonPath":".status.phase","description":"AnalysisRun status"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp","description":"Time since resource was created"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct AnalysisRunSpec {
    /// Metrics to measure.
    pub metrics: Vec<Metric>,
    /// Argument values used by the metrics.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args: Option<Vec<Argument>>,
    /// Set to true to stop the run early (e.g. the rollout no longer needs it); a terminated run
    /// normally ends Successful.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub terminate: Option<bool>,
    /// Metrics to run in dry-run mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dry_run: Option<Vec<DryRun>>,
    /// How many measurements to keep per metric.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub measurement_retention: Option<Vec<MeasurementRetention>>,
    /// When to delete the run after it completes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_strategy: Option<TtlStrategy>,
}

impl AnalysisRunSpec {
    /// Whether the run was asked to stop (`terminate: true`).
    pub fn is_terminating(&self) -> bool {
        self.terminate.unwrap_or(false)
    }

    /// The argument values (empty when unset).
    pub fn args(&self) -> &[Argument] {
        self.args.as_deref().unwrap_or_default()
    }
}

/// Deletion delays for completed AnalysisRuns, in seconds after `status.completedAt`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TtlStrategy {
    /// Delay for runs that completed in any phase not covered by the two fields below.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seconds_after_completion: Option<i32>,
    /// Delay for runs that ended Failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seconds_after_failure: Option<i32>,
    /// Delay for runs that ended Successful.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seconds_after_success: Option<i32>,
}

impl TtlStrategy {
    /// The delay applying to a run that completed in `phase`: Successful uses
    /// `secondsAfterSuccess`, Failed uses `secondsAfterFailure`, and otherwise (or when that field
    /// is unset) `secondsAfterCompletion`. `None` means keep the run.
    pub fn seconds_for(&self, phase: AnalysisPhase) -> Option<i32> {
        let specific = match phase {
            AnalysisPhase::Successful => self.seconds_after_success,
            AnalysisPhase::Failed => self.seconds_after_failure,
            _ => None,
        };
        specific.or(self.seconds_after_completion)
    }
}

/// Observed state of an AnalysisRun.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AnalysisRunStatus {
    /// Overall phase of the run (unset until the controller first processes it).
    #[serde(
        default,
        deserialize_with = "deserialize_optional_phase",
        skip_serializing_if = "Option::is_none"
    )]
    pub phase: Option<AnalysisPhase>,
    /// Explanation of the current phase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Per-metric results.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric_results: Option<Vec<MetricResult>>,
    /// When the run was first processed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<Time>,
    /// Metrics counted by their final phase (dry-run metrics excluded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_summary: Option<RunSummary>,
    /// Dry-run metrics counted by their final phase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dry_run_summary: Option<RunSummary>,
    /// When the run reached a final phase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<Time>,
}

impl AnalysisRunStatus {
    /// The phase, with unset meaning `Pending`.
    pub fn phase_or_pending(&self) -> AnalysisPhase {
        self.phase.unwrap_or_default()
    }

    /// The result of the metric called `name`, if any.
    pub fn metric_result(&self, name: &str) -> Option<&MetricResult> {
        self.metric_results.as_deref()?.iter().find(|r| r.name == name)
    }
}

/// Counts of metrics by final phase.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RunSummary {
    /// Number of metrics.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<i32>,
    /// Metrics that ended Successful.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub successful: Option<i32>,
    /// Metrics that ended Failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed: Option<i32>,
    /// Metrics that ended Inconclusive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inconclusive: Option<i32>,
    /// Metrics that ended Error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<i32>,
}

/// Result so far of one metric: recent measurements and counters.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MetricResult {
    /// Name of the metric.
    pub name: String,
    /// Aggregate phase of the metric.
    pub phase: AnalysisPhase,
    /// Most recent measurements (oldest first).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub measurements: Option<Vec<Measurement>>,
    /// Explanation of the phase (e.g. the last error).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Measurements taken without error (successful + failed + inconclusive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<i32>,
    /// Successful measurements.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub successful: Option<i32>,
    /// Failed measurements.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed: Option<i32>,
    /// Inconclusive measurements.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inconclusive: Option<i32>,
    /// Measurements that ended in error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<i32>,
    /// Errors in a row since the last non-error measurement.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consecutive_error: Option<i32>,
    /// Whether the metric ran in dry-run mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dry_run: Option<bool>,
    /// Provider data about the metric (e.g. `ResolvedPrometheusQuery`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<BTreeMap<String, String>>,
    /// Successes in a row since the last non-successful measurement.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consecutive_success: Option<i32>,
}

/// One measurement of a metric.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Measurement {
    /// Outcome of the measurement.
    pub phase: AnalysisPhase,
    /// Explanation (e.g. an error).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// When the measurement started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<Time>,
    /// When the value was obtained.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<Time>,
    /// The measured value, as text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// Provider data about the measurement (e.g. `job-name`, `job-namespace`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<BTreeMap<String, String>>,
    /// When to check an unfinished measurement again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resume_at: Option<Time>,
}

// ---------------------------------------------------------------------------------------------
// Validation
// ---------------------------------------------------------------------------------------------

/// An int-or-string limit as the validator sees it.
enum Limit {
    /// Unset: the default applies.
    Default(i32),
    /// A concrete integer.
    Value(i32),
    /// An unresolved `{{args.*}}` placeholder or a non-integer (already reported): skip checks.
    Unknown,
}

impl Limit {
    fn get(&self) -> Option<i32> {
        match self {
            Limit::Default(v) | Limit::Value(v) => Some(*v),
            Limit::Unknown => None,
        }
    }
}

fn read_limit(
    value: Option<&IntOrString>,
    default: i32,
    path: &str,
    field: &str,
    errors: &mut Vec<FieldError>,
) -> Limit {
    match value {
        None => Limit::Default(default),
        Some(v) if is_arg_placeholder(v) => Limit::Unknown,
        Some(v) => match int_or_string_to_i32(v) {
            Ok(n) => Limit::Value(n),
            Err(e) => {
                errors.push(FieldError::new(
                    format!("{path}.{field}"),
                    format!("{field} must be an integer: {e}"),
                ));
                Limit::Unknown
            }
        },
    }
}

/// Checks one metric the way Argo's `ValidateMetric` does; `path` names the metric (e.g.
/// `spec.metrics[0]`). Limits holding unresolved `{{args.*}}` placeholders are not checked.
pub fn validate_metric(metric: &Metric, path: &str) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let count = read_limit(metric.count.as_ref(), 0, path, "count", &mut errors);
    let failure = read_limit(
        metric.failure_limit.as_ref(),
        DEFAULT_FAILURE_LIMIT,
        path,
        "failureLimit",
        &mut errors,
    );
    let inconclusive = read_limit(
        metric.inconclusive_limit.as_ref(),
        DEFAULT_INCONCLUSIVE_LIMIT,
        path,
        "inconclusiveLimit",
        &mut errors,
    );
    let consecutive_error = read_limit(
        metric.consecutive_error_limit.as_ref(),
        DEFAULT_CONSECUTIVE_ERROR_LIMIT,
        path,
        "consecutiveErrorLimit",
        &mut errors,
    );
    let consecutive_success = read_limit(
        metric.consecutive_success_limit.as_ref(),
        DEFAULT_CONSECUTIVE_SUCCESS_LIMIT,
        path,
        "consecutiveSuccessLimit",
        &mut errors,
    );
    let count_path = format!("{path}.count");

    if let Some(count) = count.get().filter(|c| *c > 0) {
        let success = consecutive_success.get();
        match (failure.get(), success) {
            (Some(f), Some(s)) if f >= 0 && s >= 0 && count < f + s => {
                let msg = if s == 0 {
                    "count must be >= failureLimit"
                } else {
                    "count must be >= failureLimit + consecutiveSuccessLimit"
                };
                errors.push(FieldError::new(&count_path, msg));
            }
            (Some(-1), Some(s)) if count < s => {
                errors.push(FieldError::new(
                    &count_path,
                    "count must be >= consecutiveSuccessLimit",
                ));
            }
            _ => {}
        }
        if inconclusive.get().is_some_and(|i| count < i) {
            errors.push(FieldError::new(&count_path, "count must be >= inconclusiveLimit"));
        }
    }
    let interval = non_empty(&metric.interval);
    if count.get().is_some_and(|c| c > 1) && interval.is_none() {
        errors.push(FieldError::new(
            format!("{path}.interval"),
            "interval must be specified when count > 1",
        ));
    }
    if let Some(interval) = interval
        && let Err(e) = parse_duration(interval)
    {
        errors.push(FieldError::new(
            format!("{path}.interval"),
            format!("invalid interval string: {e}"),
        ));
    }
    if let Some(delay) = non_empty(&metric.initial_delay)
        && let Err(e) = parse_duration(delay)
    {
        errors.push(FieldError::new(
            format!("{path}.initialDelay"),
            format!("invalid startDelay string: {e}"),
        ));
    }
    if failure.get().is_some_and(|f| f < -1) {
        errors.push(FieldError::new(
            format!("{path}.failureLimit"),
            "failureLimit must be >= -1",
        ));
    }
    if inconclusive.get().is_some_and(|i| i < 0) {
        errors.push(FieldError::new(
            format!("{path}.inconclusiveLimit"),
            "inconclusiveLimit must be >= 0",
        ));
    }
    if consecutive_error.get().is_some_and(|c| c < 0) {
        errors.push(FieldError::new(
            format!("{path}.consecutiveErrorLimit"),
            "consecutiveErrorLimit must be >= 0",
        ));
    }
    if consecutive_success.get().is_some_and(|c| c < 0) {
        errors.push(FieldError::new(
            format!("{path}.consecutiveSuccessLimit"),
            "consecutiveSuccessLimit must be >= 0",
        ));
    }
    if failure.get() == Some(-1) && consecutive_success.get() == Some(0) {
        errors.push(FieldError::new(
            format!("{path}.failureLimit"),
            "failureLimit and consecutiveSuccessLimit cannot both be disabled",
        ));
    }
    match metric.provider.configured().len() {
        0 => errors.push(FieldError::new(
            format!("{path}.provider"),
            "no provider specified",
        )),
        1 => {}
        _ => errors.push(FieldError::new(
            format!("{path}.provider"),
            "multiple providers specified",
        )),
    }
    errors
}

/// Checks a list of metrics (`path` names the list, e.g. `spec.metrics`): names must be unique
/// and each metric must pass [`validate_metric`]. An empty list is an error
/// (`no metrics specified`). Use it on the flattened metrics of nested templates too.
pub fn validate_metrics(metrics: &[Metric], path: &str) -> Vec<FieldError> {
    let mut errors = Vec::new();
    if metrics.is_empty() {
        errors.push(FieldError::new(path, "no metrics specified"));
        return errors;
    }
    let mut seen = HashSet::new();
    for (i, metric) in metrics.iter().enumerate() {
        let metric_path = format!("{path}[{i}]");
        if !seen.insert(metric.name.as_str()) {
            errors.push(FieldError::new(
                format!("{metric_path}.name"),
                format!("two metrics have the same name '{}'", metric.name),
            ));
        }
        errors.extend(validate_metric(metric, &metric_path));
    }
    errors
}

/// Validates an AnalysisTemplate or ClusterAnalysisTemplate spec without looking anything up:
/// the metric rules of [`validate_metrics`]. A template without metrics of its own is accepted
/// when it references other templates (checking the flattened result needs those templates).
pub fn validate_analysis_template_spec(spec: &AnalysisTemplateSpec) -> Result<(), Vec<FieldError>> {
    let mut errors = Vec::new();
    // Metrics may all come from nested templates; then there is nothing local to check.
    let only_nested = spec.metrics().is_empty() && !spec.templates().is_empty();
    if !only_nested {
        errors.extend(validate_metrics(spec.metrics(), "spec.metrics"));
    }
    for (i, template) in spec.templates().iter().enumerate() {
        if template.template_name.is_empty() {
            errors.push(FieldError::new(
                format!("spec.templates[{i}].templateName"),
                "templateName must not be empty",
            ));
        }
    }
    if errors.is_empty() { Ok(()) } else { Err(errors) }
}

/// Validates an AnalysisRun spec without looking anything up (the rules of [`validate_metrics`]).
pub fn validate_analysis_run_spec(spec: &AnalysisRunSpec) -> Result<(), Vec<FieldError>> {
    let errors = validate_metrics(&spec.metrics, "spec.metrics");
    if errors.is_empty() { Ok(()) } else { Err(errors) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::{CustomResourceExt, Resource};
    use serde_json::json;

    fn prometheus_metric(name: &str) -> Metric {
        Metric {
            name: name.into(),
            provider: MetricProvider {
                prometheus: Some(PrometheusMetric {
                    query: Some("up".into()),
                    ..Default::default()
                }),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    fn messages(errors: &[FieldError]) -> Vec<String> {
        errors.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn resource_identity() {
        assert_eq!(AnalysisTemplate::kind(&()), "AnalysisTemplate");
        assert_eq!(AnalysisTemplate::plural(&()), "analysistemplates");
        assert_eq!(ClusterAnalysisTemplate::plural(&()), "clusteranalysistemplates");
        assert_eq!(AnalysisRun::plural(&()), "analysisruns");
        assert_eq!(AnalysisRun::api_version(&()), "argoproj.io/v1alpha1");
        let crd = serde_json::to_value(ClusterAnalysisTemplate::crd()).unwrap();
        assert_eq!(crd["spec"]["scope"], "Cluster");
        assert_eq!(crd["spec"]["names"]["shortNames"], json!(["cat"]));
        let crd = serde_json::to_value(AnalysisTemplate::crd()).unwrap();
        assert_eq!(crd["spec"]["scope"], "Namespaced");
        assert_eq!(crd["spec"]["names"]["shortNames"], json!(["at"]));
        assert_eq!(crd["spec"]["names"]["categories"], json!(["argo-rollouts"]));
        assert!(
            crd["spec"]["versions"][0]
                .get("subresources")
                .is_none_or(|s| s.get("status").is_none())
        );
        let crd = serde_json::to_value(AnalysisRun::crd()).unwrap();
        assert_eq!(crd["spec"]["names"]["shortNames"], json!(["ar"]));
        assert_eq!(crd["spec"]["versions"][0]["subresources"]["status"], json!({}));
        let columns = &crd["spec"]["versions"][0]["additionalPrinterColumns"];
        assert_eq!(columns[0]["name"], "Status");
        assert_eq!(columns[0]["jsonPath"], ".status.phase");
        assert_eq!(columns[1]["name"], "Age");
        assert_eq!(columns[1]["type"], "date");
    }

    #[test]
    fn phase_strings_and_completion() {
        for phase in AnalysisPhase::ALL {
            let json = serde_json::to_value(phase).unwrap();
            assert_eq!(json, json!(phase.as_str()));
            assert_eq!(serde_json::from_value::<AnalysisPhase>(json).unwrap(), phase);
            assert_eq!(phase.as_str().parse::<AnalysisPhase>(), Ok(phase));
        }
        assert!(!AnalysisPhase::Pending.is_completed());
        assert!(!AnalysisPhase::Running.is_completed());
        assert!(AnalysisPhase::Successful.is_completed());
        assert!(AnalysisPhase::Failed.is_completed());
        assert!(AnalysisPhase::Error.is_completed());
        assert!(AnalysisPhase::Inconclusive.is_completed());
        assert!("Unknown".parse::<AnalysisPhase>().is_err());
    }

    #[test]
    fn empty_status_deserializes() {
        let status: AnalysisRunStatus = serde_json::from_value(json!({})).unwrap();
        assert_eq!(status, AnalysisRunStatus::default());
        assert_eq!(status.phase_or_pending(), AnalysisPhase::Pending);
        // Go writes an unset phase as "".
        let status: AnalysisRunStatus =
            serde_json::from_value(json!({"phase": "", "runSummary": {}})).unwrap();
        assert_eq!(status.phase, None);
        assert_eq!(status.run_summary, Some(RunSummary::default()));
        let status: AnalysisRunStatus = serde_json::from_value(json!({"phase": "Running"})).unwrap();
        assert_eq!(status.phase, Some(AnalysisPhase::Running));
        assert!(serde_json::from_value::<AnalysisRunStatus>(json!({"phase": "Bogus"})).is_err());
    }

    #[test]
    fn defaults_as_methods() {
        let m = prometheus_metric("m");
        assert_eq!(m.consecutive_error_limit(), Ok(4));
        assert_eq!(m.failure_limit(), Ok(0));
        assert_eq!(m.inconclusive_limit(), Ok(0));
        assert_eq!(m.consecutive_success_limit(), Ok(0));
        assert_eq!(m.effective_count(), Ok(Some(1)));
        assert_eq!(m.interval_duration(), Ok(None));

        let m = Metric {
            interval: Some("30s".into()),
            ..prometheus_metric("m")
        };
        assert_eq!(m.effective_count(), Ok(None), "interval only: unbounded");
        assert_eq!(m.interval_duration(), Ok(Some(Duration::from_secs(30))));
        let m = Metric {
            count: Some(IntOrString::String("3".into())),
            failure_limit: Some(IntOrString::Int(-1)),
            consecutive_error_limit: Some(IntOrString::String("x".into())),
            ..m
        };
        assert_eq!(m.effective_count(), Ok(Some(3)));
        assert_eq!(m.failure_limit(), Ok(-1));
        assert_eq!(
            m.consecutive_error_limit(),
            Err(NotAnInteger { value: "x".into() })
        );

        let web: WebMetric = serde_json::from_value(json!({"url": "http://x"})).unwrap();
        assert_eq!(web.method(), "GET");
        assert_eq!(web.timeout_seconds(), 10);
        assert_eq!(web.json_path(), "{$}");
        assert_eq!(PrometheusMetric::default().timeout_seconds(), 30);

        let ttl = TtlStrategy {
            seconds_after_completion: Some(60),
            seconds_after_success: Some(5),
            ..Default::default()
        };
        assert_eq!(ttl.seconds_for(AnalysisPhase::Successful), Some(5));
        assert_eq!(ttl.seconds_for(AnalysisPhase::Failed), Some(60));
        assert_eq!(ttl.seconds_for(AnalysisPhase::Error), Some(60));
    }

    #[test]
    fn full_metric_round_trips() {
        let metric = json!({
            "name": "everything",
            "interval": "1m",
            "initialDelay": "30s",
            "count": "{{args.count}}",
            "successCondition": "result[0] >= 0.95",
            "failureCondition": "result[0] < 0.5",
            "failureLimit": 2,
            "inconclusiveLimit": "1",
            "consecutiveErrorLimit": 0,
            "provider": {
                "prometheus": {
                    "address": "http://prom:9090",
                    "query": "up",
                    "authentication": {
                        "sigv4": {"region": "eu-west-1", "profile": "p", "roleArn": "arn:aws:iam::1:role/r"},
                        "oauth2": {"tokenUrl": "http://t", "clientId": "c", "clientSecret": "s", "scopes": ["a"]},
                        "basicAuth": {"username": "u", "password": "p"}
                    },
                    "timeout": 15,
                    "insecure": true,
                    "headers": [{"key": "X-Scope", "value": "1"}],
                    "rangeQuery": {"start": "now() - duration(\"5m\")", "end": "now()", "step": "1m"}
                }
            },
            "consecutiveSuccessLimit": 3
        });
        let parsed: Metric = serde_json::from_value(metric.clone()).unwrap();
        assert_eq!(serde_json::to_value(&parsed).unwrap(), metric);

        let providers = json!([
            {"web": {"method": "POST", "url": "http://x", "headers": [], "body": "b", "timeoutSeconds": 5,
                     "jsonPath": "{$.data}", "insecure": false, "jsonBody": {"a": [1, 2]},
                     "authentication": {"oauth2": {"tokenUrl": "http://t"}}}},
            {"job": {"metadata": {"labels": {"a": "b"}, "annotations": {"c": "d"}},
                     "spec": {"backoffLimit": 1, "template": {"spec": {"restartPolicy": "Never",
                        "containers": [{"name": "c", "image": "busybox", "command": ["sh", "-c", "exit 0"]}]}}}}},
            {"datadog": {"interval": "5m", "query": "avg:x{*}", "apiVersion": "v2", "aggregator": "avg",
                         "queries": {"a": "q"}, "formula": "a", "secretRef": {"name": "dd", "namespaced": true}}},
            {"newRelic": {"profile": "p", "query": "SELECT 1", "timeout": 10}},
            {"cloudWatch": {"interval": "1m", "metricDataQueries": [{"id": "q", "metricStat": {"metric":
                {"dimensions": [{"name": "n", "value": "v"}], "metricName": "m", "namespace": "ns"},
                "period": 300, "stat": "Sum", "unit": "Count"}, "returnData": true}]}},
            {"wavefront": {"address": "a", "query": "q"}},
            {"graphite": {"address": "a", "query": "q"}},
            {"influxdb": {"profile": "p", "query": "q"}},
            {"skywalking": {"address": "a", "query": "q", "interval": "1m"}},
            {"kayenta": {"address": "a", "application": "app", "canaryConfigName": "c", "metricsAccountName": "m",
                         "configurationAccountName": "c", "storageAccountName": "s",
                         "threshold": {"pass": 90, "marginal": 75},
                         "scopes": [{"name": "s", "controlScope": {"scope": "a", "region": "r", "step": 60,
                            "start": "x", "end": "y"}, "experimentScope": {"scope": "b", "step": 60}}]}},
            {"plugin": {"argoproj-labs/sample": {"address": "a", "n": [1, {"b": null}]}}}
        ]);
        for provider in providers.as_array().unwrap() {
            let parsed: MetricProvider = serde_json::from_value(provider.clone()).unwrap();
            assert_eq!(serde_json::to_value(&parsed).unwrap(), *provider);
            assert_eq!(parsed.configured().len(), 1, "{provider}");
        }
    }

    #[test]
    fn analysis_run_round_trips() {
        let run = json!({
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "AnalysisRun",
            "metadata": {"name": "r", "namespace": "default"},
            "spec": {
                "metrics": [{"name": "m", "provider": {"job": {"spec": {"template": {"spec": {"containers": []}}}}}}],
                "args": [
                    {"name": "a", "value": "1"},
                    {"name": "s", "valueFrom": {"secretKeyRef": {"name": "sec", "key": "k"}}},
                    {"name": "f", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}
                ],
                "terminate": true,
                "dryRun": [{"metricName": ".*"}],
                "measurementRetention": [{"metricName": "m", "limit": 20}],
                "ttlStrategy": {"secondsAfterCompletion": 1, "secondsAfterFailure": 2, "secondsAfterSuccess": 3}
            },
            "status": {
                "phase": "Failed",
                "message": "Metric \"m\" assessed Failed due to failed (1) > failureLimit (0)",
                "metricResults": [{
                    "name": "m", "phase": "Failed",
                    "measurements": [{
                        "phase": "Failed", "message": "x",
                        "startedAt": "2024-05-01T10:00:00Z", "finishedAt": "2024-05-01T10:00:05Z",
                        "value": "[0.5]", "metadata": {"job-name": "j"}, "resumeAt": "2024-05-01T10:00:10Z"
                    }],
                    "message": "m", "count": 1, "successful": 0, "failed": 1, "inconclusive": 0, "error": 0,
                    "consecutiveError": 0, "dryRun": false, "metadata": {"ResolvedPrometheusQuery": "up"},
                    "consecutiveSuccess": 0
                }],
                "startedAt": "2024-05-01T10:00:00Z",
                "runSummary": {"count": 1, "successful": 0, "failed": 1, "inconclusive": 0, "error": 0},
                "dryRunSummary": {},
                "completedAt": "2024-05-01T10:00:06Z"
            }
        });
        let parsed: AnalysisRun = serde_json::from_value(run.clone()).unwrap();
        assert_eq!(serde_json::to_value(&parsed).unwrap(), run);
        assert!(parsed.spec.is_terminating());
        let status = parsed.status.as_ref().unwrap();
        assert_eq!(status.phase, Some(AnalysisPhase::Failed));
        assert_eq!(status.metric_result("m").unwrap().failed, Some(1));
    }

    #[test]
    fn cluster_template_shares_the_spec() {
        let manifest = json!({
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "ClusterAnalysisTemplate",
            "metadata": {"name": "c"},
            "spec": {
                "args": [{"name": "x"}],
                "templates": [{"templateName": "base", "clusterScope": true}]
            }
        });
        let parsed: ClusterAnalysisTemplate = serde_json::from_value(manifest.clone()).unwrap();
        assert_eq!(serde_json::to_value(&parsed).unwrap(), manifest);
        assert!(parsed.spec.templates()[0].is_cluster_scope());
        assert_eq!(validate_analysis_template_spec(&parsed.spec), Ok(()));
        let spec: AnalysisTemplateSpec = parsed.spec.into();
        assert_eq!(spec.args().len(), 1);
    }

    #[test]
    fn valid_metric_passes() {
        let m = Metric {
            interval: Some("30s".into()),
            count: Some(IntOrString::Int(3)),
            failure_limit: Some(IntOrString::Int(2)),
            ..prometheus_metric("ok")
        };
        assert!(validate_metric(&m, "spec.metrics[0]").is_empty());
        // Placeholders are only known once the run resolves its arguments.
        let m = Metric {
            count: Some(IntOrString::String("{{args.count}}".into())),
            failure_limit: Some(IntOrString::String("{{ args.limit }}".into())),
            ..m
        };
        assert!(validate_metric(&m, "spec.metrics[0]").is_empty());
    }

    #[test]
    fn count_and_limit_errors_name_the_field() {
        let m = Metric {
            count: Some(IntOrString::Int(2)),
            failure_limit: Some(IntOrString::Int(3)),
            inconclusive_limit: Some(IntOrString::String("5".into())),
            ..prometheus_metric("m")
        };
        assert_eq!(
            messages(&validate_metric(&m, "spec.metrics[0]")),
            vec![
                "spec.metrics[0].count: count must be >= failureLimit",
                "spec.metrics[0].count: count must be >= inconclusiveLimit",
                "spec.metrics[0].interval: interval must be specified when count > 1",
            ]
        );

        let m = Metric {
            count: Some(IntOrString::Int(3)),
            interval: Some("1m".into()),
            failure_limit: Some(IntOrString::Int(1)),
            consecutive_success_limit: Some(IntOrString::Int(3)),
            ..prometheus_metric("m")
        };
        assert_eq!(
            messages(&validate_metric(&m, "spec.metrics[1]")),
            vec!["spec.metrics[1].count: count must be >= failureLimit + consecutiveSuccessLimit"]
        );

        let m = Metric {
            count: Some(IntOrString::Int(2)),
            interval: Some("1m".into()),
            failure_limit: Some(IntOrString::Int(-1)),
            consecutive_success_limit: Some(IntOrString::Int(3)),
            ..prometheus_metric("m")
        };
        assert_eq!(
            messages(&validate_metric(&m, "p")),
            vec!["p.count: count must be >= consecutiveSuccessLimit"]
        );
    }

    #[test]
    fn negative_limits_and_disabled_pair() {
        let m = Metric {
            failure_limit: Some(IntOrString::Int(-2)),
            inconclusive_limit: Some(IntOrString::Int(-1)),
            consecutive_error_limit: Some(IntOrString::Int(-1)),
            consecutive_success_limit: Some(IntOrString::Int(-1)),
            ..prometheus_metric("m")
        };
        assert_eq!(
            messages(&validate_metric(&m, "m")),
            vec![
                "m.failureLimit: failureLimit must be >= -1",
                "m.inconclusiveLimit: inconclusiveLimit must be >= 0",
                "m.consecutiveErrorLimit: consecutiveErrorLimit must be >= 0",
                "m.consecutiveSuccessLimit: consecutiveSuccessLimit must be >= 0",
            ]
        );
        let m = Metric {
            failure_limit: Some(IntOrString::Int(-1)),
            ..prometheus_metric("m")
        };
        assert_eq!(
            messages(&validate_metric(&m, "m")),
            vec!["m.failureLimit: failureLimit and consecutiveSuccessLimit cannot both be disabled"]
        );
        let m = Metric {
            failure_limit: Some(IntOrString::Int(-1)),
            consecutive_success_limit: Some(IntOrString::Int(1)),
            ..prometheus_metric("m")
        };
        assert!(validate_metric(&m, "m").is_empty());
    }

    #[test]
    fn durations_and_non_integers() {
        let m = Metric {
            interval: Some("5x".into()),
            initial_delay: Some("10".into()),
            count: Some(IntOrString::String("three".into())),
            ..prometheus_metric("m")
        };
        assert_eq!(
            messages(&validate_metric(&m, "spec.metrics[0]")),
            vec![
                r#"spec.metrics[0].count: count must be an integer: "three" is not an integer"#,
                r#"spec.metrics[0].interval: invalid interval string: time: unknown unit "x" in duration "5x""#,
                r#"spec.metrics[0].initialDelay: invalid startDelay string: time: missing unit in duration "10""#,
            ]
        );
    }

    #[test]
    fn provider_count() {
        let mut m = prometheus_metric("m");
        m.provider = MetricProvider::default();
        assert_eq!(
            messages(&validate_metric(&m, "spec.metrics[0]")),
            vec!["spec.metrics[0].provider: no provider specified"]
        );
        let mut m = prometheus_metric("m");
        m.provider.web = Some(WebMetric {
            url: "http://x".into(),
            ..Default::default()
        });
        assert_eq!(
            messages(&validate_metric(&m, "spec.metrics[0]")),
            vec!["spec.metrics[0].provider: multiple providers specified"]
        );
        // Each plugin entry is a provider of its own.
        let mut m = prometheus_metric("m");
        m.provider.prometheus = None;
        m.provider.plugin = Some(BTreeMap::from([
            ("a".to_string(), json!({})),
            ("b".to_string(), json!({})),
        ]));
        assert_eq!(m.provider.configured(), vec!["a", "b"]);
        assert_eq!(validate_metric(&m, "x").len(), 1);
    }

    #[test]
    fn template_and_run_specs() {
        let spec = AnalysisTemplateSpec {
            metrics: Some(vec![
                prometheus_metric("a"),
                prometheus_metric("b"),
                prometheus_metric("a"),
            ]),
            ..Default::default()
        };
        assert_eq!(
            messages(&validate_analysis_template_spec(&spec).unwrap_err()),
            vec!["spec.metrics[2].name: two metrics have the same name 'a'"]
        );
        assert_eq!(
            messages(&validate_analysis_template_spec(&AnalysisTemplateSpec::default()).unwrap_err()),
            vec!["spec.metrics: no metrics specified"]
        );
        let nested_only = AnalysisTemplateSpec {
            templates: Some(vec![AnalysisTemplateRef {
                template_name: "other".into(),
                cluster_scope: None,
            }]),
            ..Default::default()
        };
        assert_eq!(validate_analysis_template_spec(&nested_only), Ok(()));
        let run = AnalysisRunSpec::default();
        assert_eq!(
            messages(&validate_analysis_run_spec(&run).unwrap_err()),
            vec!["spec.metrics: no metrics specified"]
        );
        let run = AnalysisRunSpec {
            metrics: vec![prometheus_metric("a")],
            ..Default::default()
        };
        assert_eq!(validate_analysis_run_spec(&run), Ok(()));
    }
}

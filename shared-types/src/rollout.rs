//! The `Rollout` custom resource: a Deployment replacement with blue-green and canary strategies.
//!
//! Field names, JSON spelling and declaration order follow Argo Rollouts' `v1alpha1` Go types, so
//! existing manifests keep their meaning and Go-compatible JSON (used for hashes) is easy to produce.
//! Optional fields are `Option` and omitted when unset: defaults are exposed as methods instead of
//! being written into objects, so a manifest round-trips unchanged.

use std::collections::BTreeMap;

use k8s_openapi::{
    api::core::v1::PodTemplateSpec,
    apimachinery::pkg::{
        apis::meta::v1::{LabelSelector, Time},
        util::intstr::IntOrString,
    },
};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::{
    analysis::{AnalysisPhase, DryRun, MeasurementRetention},
    common::{PodTemplateMetadata, preserve_unknown_any, preserve_unknown_object},
};

/// Default for `spec.revisionHistoryLimit`.
pub const DEFAULT_REVISION_HISTORY_LIMIT: i32 = 10;
/// Default for `spec.progressDeadlineSeconds`.
pub const DEFAULT_PROGRESS_DEADLINE_SECONDS: i32 = 600;
/// Default scale-down delay of the previous ReplicaSet (blue-green, canary with traffic routing).
pub const DEFAULT_SCALE_DOWN_DELAY_SECONDS: i32 = 30;
/// Default delay before the canary/preview ReplicaSet is scaled down after an abort.
pub const DEFAULT_ABORT_SCALE_DOWN_DELAY_SECONDS: i32 = 30;
/// Default `maxSurge` and `maxUnavailable` (Argo stores the literal "25", read as a percentage).
pub const DEFAULT_MAX_SURGE_UNAVAILABLE: &str = "25%";
/// Default `maxTrafficWeight`.
pub const DEFAULT_MAX_TRAFFIC_WEIGHT: i32 = 100;
/// Default analysis-run history limits (successful and unsuccessful).
pub const DEFAULT_ANALYSIS_RUN_HISTORY_LIMIT: i32 = 5;

/// Desired state of a Rollout.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "argoproj.io",
    version = "v1alpha1",
    kind = "Rollout",
    plural = "rollouts",
    doc = "Rollout is a Deployment replacement that updates pods with a blue-green or canary strategy.",
    shortname = "ro",
    category = "argo-rollouts",
    namespaced,
    status = "RolloutStatus",
    scale = r#"{"specReplicasPath":".spec.replicas","statusReplicasPath":".status.HPAReplicas","labelSelectorPath":".status.selector"}"#,
    printcolumn = r#"{"name":"Desired","type":"integer","jsonPath":".spec.replicas","description":"Number of desired pods"}"#,
    printcolumn = r#"{"name":"Current","type":"integer","jsonPath":".status.replicas","description":"Total number of non-terminated pods targeted by this rollout"}"#,
    printcolumn = r#"{"name":"Up-to-date","type":"integer","jsonPath":".status.updatedReplicas","description":"Total number of non-terminated pods targeted by this rollout that have the desired template spec"}"#,
    printcolumn = r#"{"name":"Available","type":"integer","jsonPath":".status.availableReplicas","description":"Total number of available pods (ready for at least minReadySeconds) targeted by this rollout"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp","description":"Time since resource was created"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct RolloutSpec {
    /// Number of desired pods. When unset the controller writes 1 here on first sync, so that an
    /// HPA and `kubectl scale` have a value to work with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i32>,
    /// Label selector for the pods. It must match the template's labels and cannot be changed
    /// once set. Required unless `workloadRef` is used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-kubernetes-validations" = [{"rule": "self == oldSelf", "message": ".spec.selector is immutable"}]))]
    pub selector: Option<LabelSelector>,
    /// Template of the pods to run. Must be empty when `workloadRef` is used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<PodTemplateSpec>,
    /// Reference to a workload (Deployment, ReplicaSet or PodTemplate) that provides the pod
    /// template and selector instead of `template`/`selector`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload_ref: Option<ObjectRef>,
    /// Seconds a new pod must be ready without crashing before it counts as available (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_ready_seconds: Option<i32>,
    /// Window in which a rollback to a recent revision is fast-tracked (steps skipped).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback_window: Option<RollbackWindowSpec>,
    /// How old pods are replaced by new ones: exactly one of `canary` or `blueGreen`.
    #[serde(default)]
    pub strategy: RolloutStrategy,
    /// Number of old ReplicaSets to keep for rollback (default 10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision_history_limit: Option<i32>,
    /// Manually pauses the rollout at its current step (no pause condition is recorded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused: Option<bool>,
    /// Seconds the rollout may go without progress before it is reported as failed with reason
    /// `ProgressDeadlineExceeded` (default 600). Time spent paused does not count.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress_deadline_seconds: Option<i32>,
    /// Abort the update when the progress deadline is exceeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress_deadline_abort: Option<bool>,
    /// When set to a time later than the last restart, all pods older than it are restarted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart_at: Option<Time>,
    /// How many finished AnalysisRuns and Experiments to keep.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analysis: Option<AnalysisRunStrategy>,
}

impl RolloutSpec {
    /// `spec.replicas`, or 1 when unset.
    pub fn replicas(&self) -> i32 {
        self.replicas.unwrap_or(1)
    }
    /// `spec.revisionHistoryLimit` with its default.
    pub fn revision_history_limit(&self) -> i32 {
        self.revision_history_limit
            .unwrap_or(DEFAULT_REVISION_HISTORY_LIMIT)
    }
    /// `spec.progressDeadlineSeconds` with its default.
    pub fn progress_deadline_seconds(&self) -> i32 {
        self.progress_deadline_seconds
            .unwrap_or(DEFAULT_PROGRESS_DEADLINE_SECONDS)
    }
    /// `spec.minReadySeconds` with its default.
    pub fn min_ready_seconds(&self) -> i32 {
        self.min_ready_seconds.unwrap_or(0)
    }
    /// Whether the user paused the rollout (`spec.paused`).
    pub fn is_paused(&self) -> bool {
        self.paused.unwrap_or(false)
    }
    /// Whether exceeding the progress deadline aborts the update.
    pub fn progress_deadline_abort(&self) -> bool {
        self.progress_deadline_abort.unwrap_or(false)
    }
}

/// Reference to the workload that provides a Rollout's pod template.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ObjectRef {
    /// API version of the referenced object (`apps/v1` or `v1`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    /// Kind of the referenced object: `Deployment`, `ReplicaSet` or `PodTemplate`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Name of the referenced object, in the Rollout's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// What to do with a referenced Deployment: `never`, `onsuccess` or `progressively` scale it down.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale_down: Option<String>,
}

/// Fast-track window for rollbacks.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RollbackWindowSpec {
    /// Number of most recent revisions a rollback may go back to and still skip the steps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revisions: Option<i32>,
}

/// Retention of finished AnalysisRuns and Experiments.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AnalysisRunStrategy {
    /// Successful runs and experiments to keep (default 5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub successful_run_history_limit: Option<i32>,
    /// Failed, errored and inconclusive runs and experiments to keep (default 5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unsuccessful_run_history_limit: Option<i32>,
}

/// The deployment strategy: exactly one of the two must be set.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RolloutStrategy {
    /// Blue-green: run the new version beside the old one and switch the active Service at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blue_green: Option<BlueGreenStrategy>,
    /// Canary: shift pods or traffic to the new version step by step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary: Option<CanaryStrategy>,
}

/// Parameters of a blue-green deployment.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BlueGreenStrategy {
    /// Service whose selector the controller points at the active (live) ReplicaSet.
    pub active_service: String,
    /// Service whose selector the controller points at the new ReplicaSet before promotion.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preview_service: Option<String>,
    /// Replicas of the new version while it is only previewed; it is scaled to full size when
    /// the rollout is promoted. Unset means full size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preview_replica_count: Option<i32>,
    /// Promote automatically once the new ReplicaSet is ready (default true). When false the
    /// rollout pauses before the switch until it is promoted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_promotion_enabled: Option<bool>,
    /// Seconds to wait, after the new ReplicaSet is ready, before promoting automatically.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_promotion_seconds: Option<i32>,
    /// Pods that may be unavailable during a restart (default 25%).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_unavailable: Option<IntOrString>,
    /// Seconds before the previous active ReplicaSet is scaled down after the switch (default 30),
    /// giving proxies time to notice the new endpoints.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale_down_delay_seconds: Option<i32>,
    /// Maximum number of old ReplicaSets left running while they wait for their scale-down delay.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale_down_delay_revision_limit: Option<i32>,
    /// Analysis that must succeed before the active Service is switched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pre_promotion_analysis: Option<RolloutAnalysis>,
    /// Anti-affinity injected into new pods so they avoid nodes running the previous version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub anti_affinity: Option<AntiAffinity>,
    /// Analysis run after the active Service is switched; failure switches back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub post_promotion_analysis: Option<RolloutAnalysis>,
    /// Labels and annotations put on pods while they are the preview.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preview_metadata: Option<PodTemplateMetadata>,
    /// Labels and annotations put on pods while they are active.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_metadata: Option<PodTemplateMetadata>,
    /// Seconds before the preview ReplicaSet is scaled down after an abort (default 30; 0 keeps it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub abort_scale_down_delay_seconds: Option<i32>,
}

impl BlueGreenStrategy {
    /// `autoPromotionEnabled` with its default (true).
    pub fn auto_promotion_enabled(&self) -> bool {
        self.auto_promotion_enabled.unwrap_or(true)
    }
    /// `scaleDownDelaySeconds` with its default.
    pub fn scale_down_delay_seconds(&self) -> i32 {
        self.scale_down_delay_seconds
            .unwrap_or(DEFAULT_SCALE_DOWN_DELAY_SECONDS)
    }
    /// `abortScaleDownDelaySeconds` with its default.
    pub fn abort_scale_down_delay_seconds(&self) -> i32 {
        self.abort_scale_down_delay_seconds
            .unwrap_or(DEFAULT_ABORT_SCALE_DOWN_DELAY_SECONDS)
    }
}

/// Which anti-affinity rule to inject into new pods.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AntiAffinity {
    /// A soft rule with the given weight.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preferred_during_scheduling_ignored_during_execution:
        Option<PreferredDuringSchedulingIgnoredDuringExecution>,
    /// A hard rule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub required_during_scheduling_ignored_during_execution:
        Option<RequiredDuringSchedulingIgnoredDuringExecution>,
}

/// Weight of the injected soft anti-affinity rule.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PreferredDuringSchedulingIgnoredDuringExecution {
    /// Weight of the rule, 1 to 100.
    pub weight: i32,
}

/// Marker for the injected hard anti-affinity rule (no parameters).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
pub struct RequiredDuringSchedulingIgnoredDuringExecution {}

/// Parameters of a canary deployment.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CanaryStrategy {
    /// Service the controller points at the canary (new) pods only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary_service: Option<String>,
    /// Service the controller points at the stable pods only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stable_service: Option<String>,
    /// The steps of the update, run in order. Without steps the update goes straight to 100%.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub steps: Option<Vec<CanaryStep>>,
    /// A service mesh or ingress that splits traffic by weight instead of by pod count.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traffic_routing: Option<RolloutTrafficRouting>,
    /// Pods that may be unavailable during the update: a number, or a percentage of the desired
    /// replicas rounded down (default 25%). Cannot be 0 when maxSurge is 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_unavailable: Option<IntOrString>,
    /// Pods that may run above the desired replicas during the update: a number, or a percentage
    /// rounded up (default 25%). Cannot be 0 when maxUnavailable is 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_surge: Option<IntOrString>,
    /// Analysis that runs in the background while the steps execute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analysis: Option<RolloutAnalysisBackground>,
    /// Anti-affinity injected into canary pods so they avoid nodes running the stable version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub anti_affinity: Option<AntiAffinity>,
    /// Labels and annotations put on pods while they are the canary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary_metadata: Option<PodTemplateMetadata>,
    /// Labels and annotations put on pods while they are stable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stable_metadata: Option<PodTemplateMetadata>,
    /// Seconds before the previous stable ReplicaSet is scaled down, with traffic routing only
    /// (default 30), so the router can move traffic first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale_down_delay_seconds: Option<i32>,
    /// Maximum number of old ReplicaSets left running while they wait for their scale-down delay.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale_down_delay_revision_limit: Option<i32>,
    /// Seconds before canary pods are scaled down after an abort, with traffic routing only
    /// (default 30; 0 keeps them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub abort_scale_down_delay_seconds: Option<i32>,
    /// Scale the stable ReplicaSet down as traffic moves to the canary (traffic routing only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dynamic_stable_scale: Option<bool>,
    /// Ping and pong services that alternate as stable and canary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ping_pong: Option<PingPongSpec>,
    /// Minimum pods per ReplicaSet when it is not scaled to zero (traffic routing only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_pods_per_replica_set: Option<i32>,
    /// How many canary pods must be available for a step to count as reached (default: all).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replica_progress_threshold: Option<ReplicaProgressThreshold>,
}

impl CanaryStrategy {
    /// The `(stable, canary)` Services traffic is routed to (Argo's `GetStableAndCanaryServices`
    /// for routers that prefer `stableService`/`canaryService`): with `pingPong` and neither of
    /// those set, ping and pong take turns, ping being stable when `status.canary.stablePingPong`
    /// is `ping` and pong otherwise.
    pub fn routed_services(&self, stable_ping_pong: Option<&str>) -> (&str, &str) {
        let stable = self.stable_service.as_deref().unwrap_or_default();
        let canary = self.canary_service.as_deref().unwrap_or_default();
        match &self.ping_pong {
            Some(pp) if stable.is_empty() && canary.is_empty() => {
                if stable_ping_pong == Some(PING) {
                    (&pp.ping_service, &pp.pong_service)
                } else {
                    (&pp.pong_service, &pp.ping_service)
                }
            }
            _ => (stable, canary),
        }
    }

    /// The steps, empty when none are given.
    pub fn steps(&self) -> &[CanaryStep] {
        self.steps.as_deref().unwrap_or_default()
    }
    /// `dynamicStableScale` with its default (false).
    pub fn dynamic_stable_scale(&self) -> bool {
        self.dynamic_stable_scale.unwrap_or(false)
    }
    /// `scaleDownDelaySeconds` with its default.
    pub fn scale_down_delay_seconds(&self) -> i32 {
        self.scale_down_delay_seconds
            .unwrap_or(DEFAULT_SCALE_DOWN_DELAY_SECONDS)
    }
    /// `abortScaleDownDelaySeconds` with its default.
    pub fn abort_scale_down_delay_seconds(&self) -> i32 {
        self.abort_scale_down_delay_seconds
            .unwrap_or(DEFAULT_ABORT_SCALE_DOWN_DELAY_SECONDS)
    }
    /// `trafficRouting.maxTrafficWeight` with its default.
    pub fn max_traffic_weight(&self) -> i32 {
        self.traffic_routing
            .as_ref()
            .and_then(|tr| tr.max_traffic_weight)
            .unwrap_or(DEFAULT_MAX_TRAFFIC_WEIGHT)
    }
}

/// Threshold of available canary pods at which a step counts as reached.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReplicaProgressThreshold {
    /// `Percent` (of the desired canary pods) or `Pods` (an absolute count).
    #[serde(rename = "type")]
    pub type_: String,
    /// The threshold value.
    pub value: i32,
}

/// `status.canary.stablePingPong` when the ping Service is the stable one.
pub const PING: &str = "ping";
/// `status.canary.stablePingPong` when the pong Service is the stable one.
pub const PONG: &str = "pong";

/// The ping and pong services.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PingPongSpec {
    /// Name of the ping service.
    pub ping_service: String,
    /// Name of the pong service.
    pub pong_service: String,
}

/// One step of a canary update. Exactly one field must be set.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CanaryStep {
    /// Percentage of pods (or traffic, with traffic routing) to give the new version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub set_weight: Option<i32>,
    /// Pause the update, for a duration or until promoted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pause: Option<RolloutPause>,
    /// Run an Experiment and wait for it to finish.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub experiment: Option<RolloutExperimentStep>,
    /// Run an AnalysisRun and wait for it to succeed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analysis: Option<RolloutAnalysis>,
    /// Scale the canary without changing its traffic weight (traffic routing only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub set_canary_scale: Option<SetCanaryScale>,
    /// Send requests with matching headers to the canary (managed route).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub set_header_route: Option<SetHeaderRoute>,
    /// Mirror matching requests to the canary (managed route).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub set_mirror_route: Option<SetMirrorRoute>,
    /// Run a step plugin with a free-form configuration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plugin: Option<PluginStep>,
}

/// A pause step.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RolloutPause {
    /// How long to pause: seconds as a number or a unit-less string, or a duration such as
    /// "30s" or "1h". Unset pauses until the rollout is promoted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<IntOrString>,
}

impl RolloutPause {
    /// The pause length in whole seconds, `None` when indefinite, `Err` when the duration is
    /// negative or cannot be parsed.
    pub fn duration_seconds(&self) -> Result<Option<i64>, crate::duration::DurationError> {
        match &self.duration {
            None => Ok(None),
            Some(d) => crate::duration::pause_seconds(d).map(Some),
        }
    }
}

/// A step that runs a step plugin.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PluginStep {
    /// Name of the plugin, as configured for the controller.
    pub name: String,
    /// Configuration passed to the plugin as is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "preserve_unknown_any")]
    pub config: Option<serde_json::Value>,
}

/// Scale the canary independently of its traffic weight.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SetCanaryScale {
    /// Percentage of the desired replicas to run as canary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<i32>,
    /// Absolute number of canary replicas.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i32>,
    /// Go back to sizing the canary by its traffic weight.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub match_traffic_weight: Option<bool>,
}

/// A header-based route to the canary.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SetHeaderRoute {
    /// Name of the route; must be listed in `trafficRouting.managedRoutes`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Header conditions; an empty list removes the route.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub r#match: Option<Vec<HeaderRoutingMatch>>,
}

/// One header condition of a header route.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HeaderRoutingMatch {
    /// Name of the request header.
    pub header_name: String,
    /// How the header value must match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header_value: Option<StringMatch>,
}

/// A string condition: exactly one of exact, prefix or regex.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StringMatch {
    /// The value must equal this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exact: Option<String>,
    /// The value must start with this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// The value must match this regular expression.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regex: Option<String>,
}

/// A route that mirrors matching traffic to the canary.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SetMirrorRoute {
    /// Name of the route; must be listed in `trafficRouting.managedRoutes`.
    pub name: String,
    /// Request conditions; an empty list removes the route.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub r#match: Option<Vec<RouteMatch>>,
    /// Percentage of the matching traffic to mirror.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percentage: Option<i32>,
}

/// Request conditions of a mirror route.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RouteMatch {
    /// HTTP method condition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<StringMatch>,
    /// URL path condition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<StringMatch>,
    /// Header conditions by header name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headers: Option<BTreeMap<String, StringMatch>>,
}

/// An experiment run as a canary step.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RolloutExperimentStep {
    /// ReplicaSets to run in the experiment, each from the canary or stable template.
    pub templates: Vec<RolloutExperimentTemplate>,
    /// How long the experiment runs ("30s", "5m"); unset runs until its analyses finish.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<String>,
    /// Analyses run during the experiment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analyses: Option<Vec<crate::experiment::ExperimentAnalysisTemplateRef>>,
    /// Metrics evaluated in dry-run mode (results do not affect the outcome).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dry_run: Option<Vec<DryRun>>,
    /// Labels and annotations added to the experiment's AnalysisRuns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analysis_run_metadata: Option<PodTemplateMetadata>,
    /// Seconds before the experiment's ReplicaSets are scaled down once it ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale_down_delay_seconds: Option<i32>,
}

/// One ReplicaSet of an experiment step.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RolloutExperimentTemplate {
    /// Name of the template; the ReplicaSet is named `<experiment>-<name>`.
    pub name: String,
    /// Which pod template to use: `canary` (the new one) or `stable`.
    pub spec_ref: String,
    /// Number of replicas (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i32>,
    /// Labels and annotations for the ReplicaSet's pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<PodTemplateMetadata>,
    /// Selector for the ReplicaSet; defaults to the Rollout's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<LabelSelector>,
    /// Percentage of traffic to send to this template (traffic routing only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<i32>,
    /// Create a Service for this template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<TemplateService>,
}

/// Service created for an experiment template.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TemplateService {
    /// Name of the Service (defaults to the ReplicaSet name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// Background analysis of a canary, with the step it starts at.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RolloutAnalysisBackground {
    /// The analysis to run.
    #[serde(flatten)]
    pub analysis: RolloutAnalysis,
    /// Index of the step at which the background analysis starts (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub starting_step: Option<i32>,
}

/// An AnalysisRun to create from one or more templates.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RolloutAnalysis {
    /// Templates whose metrics are combined into one AnalysisRun.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub templates: Option<Vec<RolloutAnalysisTemplate>>,
    /// Argument values passed to the templates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args: Option<Vec<AnalysisRunArgument>>,
    /// Metrics evaluated in dry-run mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dry_run: Option<Vec<DryRun>>,
    /// How many measurements to keep per metric.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub measurement_retention: Option<Vec<MeasurementRetention>>,
    /// Labels and annotations added to the AnalysisRun.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analysis_run_metadata: Option<PodTemplateMetadata>,
}

/// Reference to an AnalysisTemplate or ClusterAnalysisTemplate.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RolloutAnalysisTemplate {
    /// Name of the template.
    #[serde(default)]
    pub template_name: String,
    /// Look the name up among ClusterAnalysisTemplates instead of the namespace's templates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_scope: Option<bool>,
}

/// An argument value a Rollout passes to an AnalysisRun.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AnalysisRunArgument {
    /// Name of the argument.
    pub name: String,
    /// A literal value (one of value and valueFrom).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// Where to read the value from (one of value and valueFrom).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_from: Option<ArgumentValueFrom>,
}

/// Source of an argument value resolved by the rollout controller.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ArgumentValueFrom {
    /// The pod-template hash of the `Stable` or `Latest` ReplicaSet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_template_hash_value: Option<String>,
    /// A field of the Rollout, such as `metadata.labels['app']`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field_ref: Option<FieldRef>,
}

/// Path to a field of the Rollout.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FieldRef {
    /// The field path.
    pub field_path: String,
}

/// Traffic routers used by a canary. Several may be configured at once.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RolloutTrafficRouting {
    /// Istio VirtualService (and optionally DestinationRule) routing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub istio: Option<IstioTrafficRouting>,
    /// NGINX Ingress canary routing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nginx: Option<NginxTrafficRouting>,
    /// AWS Load Balancer Controller routing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "preserve_unknown_object")]
    pub alb: Option<serde_json::Value>,
    /// SMI TrafficSplit routing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smi: Option<SmiTrafficRouting>,
    /// Ambassador Mapping routing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "preserve_unknown_object")]
    pub ambassador: Option<serde_json::Value>,
    /// AWS App Mesh routing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "preserve_unknown_object")]
    pub app_mesh: Option<serde_json::Value>,
    /// Traefik weighted service routing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "preserve_unknown_object")]
    pub traefik: Option<serde_json::Value>,
    /// Routes owned by the controller (header and mirror routes), highest precedence first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub managed_routes: Option<Vec<ManagedRoute>>,
    /// Apache APISIX route routing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "preserve_unknown_object")]
    pub apisix: Option<serde_json::Value>,
    /// Configuration for traffic-router plugins, by plugin name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "preserve_unknown_object")]
    pub plugins: Option<BTreeMap<String, serde_json::Value>>,
    /// Total weight that corresponds to 100% of traffic (default 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_traffic_weight: Option<i32>,
}

/// A route the controller owns.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
pub struct ManagedRoute {
    /// Name of the route.
    pub name: String,
}

/// SMI TrafficSplit settings.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SmiTrafficRouting {
    /// Service that clients call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root_service: Option<String>,
    /// Name of the TrafficSplit (defaults to the Rollout's name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traffic_split_name: Option<String>,
}

/// NGINX Ingress settings.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NginxTrafficRouting {
    /// Annotation prefix the NGINX controller is configured with (default `nginx.ingress.kubernetes.io`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotation_prefix: Option<String>,
    /// The Ingress of the stable Service, cloned into a canary Ingress.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stable_ingress: Option<String>,
    /// Extra annotations for the canary Ingress, such as canary-by-header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub additional_ingress_annotations: Option<BTreeMap<String, String>>,
    /// Annotations copied as is onto the canary Ingress.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary_ingress_annotations: Option<BTreeMap<String, String>>,
    /// Several stable Ingresses (instead of `stableIngress`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stable_ingresses: Option<Vec<String>>,
}

impl NginxTrafficRouting {
    /// The annotation prefix with its default.
    pub fn annotation_prefix(&self) -> &str {
        self.annotation_prefix
            .as_deref()
            .unwrap_or("nginx.ingress.kubernetes.io")
    }
}

/// Istio settings.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IstioTrafficRouting {
    /// The VirtualService whose route weights are set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub virtual_service: Option<IstioVirtualService>,
    /// The DestinationRule whose subsets are pointed at the canary and stable pods; with it the
    /// split is by subset instead of by Service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination_rule: Option<IstioDestinationRule>,
    /// Several VirtualServices (instead of `virtualService`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub virtual_services: Option<Vec<IstioVirtualService>>,
}

/// A VirtualService and the routes in it to edit.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IstioVirtualService {
    /// Name of the VirtualService (`name` or `name.namespace`).
    pub name: String,
    /// Names of the HTTP routes to edit; when omitted the VirtualService must have one HTTP route.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub routes: Option<Vec<String>>,
    /// TLS routes to edit, matched by port and SNI hosts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_routes: Option<Vec<TlsRoute>>,
    /// TCP routes to edit, matched by port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp_routes: Option<Vec<TcpRoute>>,
}

/// Selects a TLS route of a VirtualService.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TlsRoute {
    /// Port the route matches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<i64>,
    /// SNI hosts the route matches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sni_hosts: Option<Vec<String>>,
}

/// Selects a TCP route of a VirtualService.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TcpRoute {
    /// Port the route matches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<i64>,
}

/// A DestinationRule and its canary and stable subsets.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IstioDestinationRule {
    /// Name of the DestinationRule.
    pub name: String,
    /// Subset that gets the canary pod-template hash label.
    pub canary_subset_name: String,
    /// Subset that gets the stable pod-template hash label.
    pub stable_subset_name: String,
    /// Other subsets the controller must leave in the routes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub additional_subset_names: Option<Vec<String>>,
}

/// Observed state of a Rollout, written by the rollout controller (and by users through the
/// plugin for promote, abort and retry).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RolloutStatus {
    /// The update is aborted: traffic and pods go back to the stable version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub abort: Option<bool>,
    /// Why the controller paused the rollout; users clear the list to resume.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pause_conditions: Option<Vec<PauseCondition>>,
    /// The controller paused the rollout; with no pause conditions left it means a user resumed it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub controller_pause: Option<bool>,
    /// When the controller first processed the abort.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aborted_at: Option<Time>,
    /// Pod-template hash of the desired (newest) ReplicaSet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_pod_hash: Option<String>,
    /// Hash of the canary steps, to notice when they change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_step_hash: Option<String>,
    /// Pods targeted by this rollout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i32>,
    /// Pods that run the desired template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_replicas: Option<i32>,
    /// Ready pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_replicas: Option<i32>,
    /// Pods ready for at least minReadySeconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub available_replicas: Option<i32>,
    /// Index of the current canary step; equal to the number of steps when all are done.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_step_index: Option<i32>,
    /// Hash-collision counter, mixed into the pod-template hash.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collision_count: Option<i32>,
    /// The `metadata.generation` last processed, as a decimal string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<String>,
    /// Current conditions of the rollout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conditions: Option<Vec<RolloutCondition>>,
    /// State specific to the canary strategy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary: Option<CanaryStatus>,
    /// State specific to the blue-green strategy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blue_green: Option<BlueGreenStatus>,
    /// Pods receiving active traffic; the scale subresource reports this to an HPA.
    #[serde(rename = "HPAReplicas", default, skip_serializing_if = "Option::is_none")]
    pub hpa_replicas: Option<i32>,
    /// Label selector (as a string) of the pods receiving active traffic, for the scale subresource.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<String>,
    /// Pod-template hash of the stable ReplicaSet.
    #[serde(rename = "stableRS", default, skip_serializing_if = "Option::is_none")]
    pub stable_rs: Option<String>,
    /// When the last restart finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restarted_at: Option<Time>,
    /// A full promotion was requested: skip remaining steps, pauses and analysis.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub promote_full: Option<bool>,
    /// `Healthy`, `Degraded`, `Progressing` or `Paused`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    /// Why the rollout is in its phase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Generation of the referenced workload last processed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload_observed_generation: Option<String>,
    /// AWS load balancer state (ALB traffic routing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "preserve_unknown_object")]
    pub alb: Option<serde_json::Value>,
    /// AWS load balancer states, one per Ingress.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "preserve_unknown_any")]
    pub albs: Option<Vec<serde_json::Value>>,
    /// Timing of the current update.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<RolloutDuration>,
}

impl RolloutStatus {
    /// Whether the update is aborted.
    pub fn is_aborted(&self) -> bool {
        self.abort.unwrap_or(false)
    }
    /// Whether the controller has paused the rollout.
    pub fn is_controller_paused(&self) -> bool {
        self.controller_pause.unwrap_or(false)
    }
    /// The pause conditions, empty when none.
    pub fn pause_conditions(&self) -> &[PauseCondition] {
        self.pause_conditions.as_deref().unwrap_or_default()
    }
    /// The conditions, empty when none.
    pub fn conditions(&self) -> &[RolloutCondition] {
        self.conditions.as_deref().unwrap_or_default()
    }
    /// The condition of the given type, if present.
    pub fn condition(&self, type_: &str) -> Option<&RolloutCondition> {
        self.conditions().iter().find(|c| c.type_ == type_)
    }
}

/// Timing of an update.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RolloutDuration {
    /// When the update started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout_started_at: Option<Time>,
    /// When the current manual pause started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manual_pause_started_at: Option<Time>,
    /// Seconds spent manually paused so far.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_manual_pause_duration_seconds: Option<i64>,
    /// When the update finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<Time>,
    /// How it finished: `Promoted`, `FastPromoted`, `Aborted`, `Superseded`, `RolledBack` or `FastRolledBack`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_status: Option<String>,
}

/// A reason the controller paused the rollout, and since when.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PauseCondition {
    /// `CanaryPauseStep`, `BlueGreenPause`, `InconclusiveAnalysisRun` or `InconclusiveExperiment`.
    pub reason: String,
    /// When the pause started.
    pub start_time: Time,
}

/// State specific to the canary strategy.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CanaryStatus {
    /// The AnalysisRun of the current step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_step_analysis_run_status: Option<RolloutAnalysisRunStatus>,
    /// The background AnalysisRun.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_background_analysis_run_status: Option<RolloutAnalysisRunStatus>,
    /// Name of the running Experiment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_experiment: Option<String>,
    /// Weights last set on the traffic router (traffic routing only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weights: Option<TrafficWeights>,
    /// Which of ping and pong is currently stable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stable_ping_pong: Option<String>,
    /// State of step plugins.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "preserve_unknown_any")]
    pub step_plugin_statuses: Option<Vec<serde_json::Value>>,
}

/// State specific to the blue-green strategy.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BlueGreenStatus {
    /// Pod-template hash the preview Service selects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preview_selector: Option<String>,
    /// Pod-template hash the active Service selects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_selector: Option<String>,
    /// The preview ReplicaSet may be scaled to full size (previewReplicaCount trip-wire).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale_up_preview_check_point: Option<bool>,
    /// The pre-promotion AnalysisRun.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pre_promotion_analysis_run_status: Option<RolloutAnalysisRunStatus>,
    /// The post-promotion AnalysisRun.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub post_promotion_analysis_run_status: Option<RolloutAnalysisRunStatus>,
}

/// Weights set on the traffic router.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TrafficWeights {
    /// Weight sent to the canary.
    pub canary: WeightDestination,
    /// Weight sent to the stable version.
    pub stable: WeightDestination,
    /// Weights sent elsewhere, such as experiment ReplicaSets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub additional: Option<Vec<WeightDestination>>,
    /// Whether the router confirmed the weight (ALB only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verified: Option<bool>,
}

/// One destination of the traffic split.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WeightDestination {
    /// Percentage of traffic.
    #[serde(default)]
    pub weight: i32,
    /// Service receiving it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_name: Option<String>,
    /// Pod-template hash receiving it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_template_hash: Option<String>,
}

/// An AnalysisRun the Rollout waits on, as the Rollout last saw it.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RolloutAnalysisRunStatus {
    /// Name of the AnalysisRun.
    pub name: String,
    /// Its phase.
    pub status: AnalysisPhase,
    /// Its message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// A condition of a Rollout.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RolloutCondition {
    /// `Progressing`, `Available`, `Paused`, `Completed`, `Healthy`, `InvalidSpec` or `ReplicaFailure`.
    #[serde(rename = "type")]
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    /// When the condition was last updated.
    pub last_update_time: Time,
    /// When the status last changed.
    pub last_transition_time: Time,
    /// Machine-readable reason for the last change.
    pub reason: String,
    /// Human-readable detail.
    pub message: String,
}

impl CanaryStrategy {
    /// `status.currentStepHash`: FNV-1a of the Go JSON of `steps` (`null` when unset), encoded
    /// like the pod-template hash.
    ///
    /// Our serde output has Go's field order and omits unset fields as Go's `omitempty` does; the
    /// remaining differences are string escaping (fixed below) and Go's always-present empty
    /// structs (`analysisRunMetadata: {}` in analysis and experiment steps, experiment template
    /// `metadata: {}`), so those two step kinds hash differently from Argo (known gap).
    pub fn steps_hash(&self) -> String {
        let bytes = serde_json::to_vec(&self.steps).unwrap_or_default();
        crate::hash::go_json_hash(&go_escape(&bytes))
    }
}

/// Rewrites serde_json output with Go `encoding/json` string escaping: `<`, `>`, `&`, U+2028 and
/// U+2029 as `\u` escapes (Go 1.22+ writes `\b` and `\f` as serde_json does).
fn go_escape(json: &[u8]) -> Vec<u8> {
    // These characters can only occur inside JSON strings, so a plain substitution is safe.
    let mut out = String::with_capacity(json.len());
    for c in String::from_utf8_lossy(json).chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    out.into_bytes()
}

#[cfg(test)]
mod steps_hash_tests {
    use super::*;

    #[test]
    fn go_escaping_of_serde_output() {
        let s = serde_json::to_vec(&serde_json::json!(["<a&b>", "x\u{8}y\u{2028}", "q\"\\b"]))
            .unwrap_or_default();
        assert_eq!(
            String::from_utf8_lossy(&go_escape(&s)),
            r#"["\u003ca\u0026b\u003e","x\by\u2028","q\"\\b"]"#
        );
    }

    #[test]
    fn steps_hash_hashes_go_json_of_steps() {
        let canary: CanaryStrategy = serde_json::from_value(serde_json::json!({
            "steps": [{"setWeight": 20}, {"pause": {}}, {"setWeight": 40}, {"pause": {"duration": "30s"}}, {"setWeight": 100}]
        }))
        .unwrap_or_default();
        let expected = crate::hash::go_json_hash(
            br#"[{"setWeight":20},{"pause":{}},{"setWeight":40},{"pause":{"duration":"30s"}},{"setWeight":100}]"#,
        );
        assert_eq!(canary.steps_hash(), expected);
        // Unset steps marshal as `null` in Go.
        assert_eq!(
            CanaryStrategy::default().steps_hash(),
            crate::hash::go_json_hash(b"null")
        );
    }
}

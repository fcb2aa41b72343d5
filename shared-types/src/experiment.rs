//! `Experiment` (`argoproj.io/v1alpha1`): a limited run of one or more ReplicaSets, optionally with
//! analyses, plus its nested types, defaults, constants and spec validation.
//!
//! Field order follows Argo Rollouts' Go structs (`pkg/apis/rollouts/v1alpha1/experiment_types.go`);
//! optional fields are `Option`s left out when unset, and defaults are exposed as methods.
//!
//! Difference from Argo: `Experiment` declares the `status` subresource.

use std::collections::HashSet;
use std::fmt;
use std::time::Duration;

use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, Time};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::analysis::{
    AnalysisPhase, AnalysisRunMetadata, Argument, DryRun, MeasurementRetention, deserialize_optional_phase,
};
use crate::duration::{DurationError, parse_duration};
use crate::field_error::FieldError;

// ---------------------------------------------------------------------------------------------
// Constants
// ---------------------------------------------------------------------------------------------

/// Default for [`ExperimentSpec::progress_deadline_seconds`].
pub const DEFAULT_PROGRESS_DEADLINE_SECONDS: i32 = 600;
/// Default for [`ExperimentSpec::scale_down_delay_seconds`].
pub const DEFAULT_SCALE_DOWN_DELAY_SECONDS: i32 = 30;
/// Default for [`TemplateSpec::replicas`].
pub const DEFAULT_TEMPLATE_REPLICAS: i32 = 1;

/// Annotation on experiment ReplicaSets and Services: name of the Experiment
/// (`experiment.argoproj.io/name`, same as [`crate::constants::keys::EXPERIMENT_NAME`]).
pub const EXPERIMENT_NAME_ANNOTATION: &str = crate::constants::keys::EXPERIMENT_NAME;
/// Annotation on experiment ReplicaSets and Services: name of the template
/// (`experiment.argoproj.io/template-name`, same as
/// [`crate::constants::keys::EXPERIMENT_TEMPLATE_NAME`]).
pub const EXPERIMENT_TEMPLATE_NAME_ANNOTATION: &str = crate::constants::keys::EXPERIMENT_TEMPLATE_NAME;

/// Condition type: the spec is invalid.
pub const EXPERIMENT_CONDITION_INVALID_SPEC: &str = "InvalidSpec";
/// Condition type: the experiment has completed.
pub const EXPERIMENT_CONDITION_COMPLETED: &str = "Completed";
/// Condition type: the experiment is progressing (or has completed, with status False).
pub const EXPERIMENT_CONDITION_PROGRESSING: &str = "Progressing";
/// Condition type: every template is running.
pub const EXPERIMENT_CONDITION_RUNNING: &str = "Running";
/// Condition type: a ReplicaSet could not create pods.
pub const EXPERIMENT_CONDITION_REPLICA_FAILURE: &str = "ReplicaFailure";

/// Reason of the `InvalidSpec` condition.
pub const INVALID_SPEC_REASON: &str = "InvalidSpec";
/// Reason of the `Progressing=False` condition once the experiment completed.
pub const EXPERIMENT_COMPLETED_REASON: &str = "ExperimentCompleted";
/// Reason of the `Progressing=True` condition while ReplicaSets are being updated.
pub const REPLICA_SET_UPDATED_REASON: &str = "ReplicaSetUpdated";
/// Reason of the `Progressing=True` condition once every template is available.
pub const NEW_REPLICA_SET_AVAILABLE_REASON: &str = "NewReplicaSetAvailable";

/// [`TemplateStatusCode::Progressing`] as a string.
pub const TEMPLATE_STATUS_PROGRESSING: &str = "Progressing";
/// [`TemplateStatusCode::Running`] as a string.
pub const TEMPLATE_STATUS_RUNNING: &str = "Running";
/// [`TemplateStatusCode::Successful`] as a string.
pub const TEMPLATE_STATUS_SUCCESSFUL: &str = "Successful";
/// [`TemplateStatusCode::Failed`] as a string.
pub const TEMPLATE_STATUS_FAILED: &str = "Failed";
/// [`TemplateStatusCode::Error`] as a string.
pub const TEMPLATE_STATUS_ERROR: &str = "Error";

/// Message of the Argo duration-vs-deadline rule. Argo declares it but does not enforce it (its
/// own documentation shows `duration: 20m` with `progressDeadlineSeconds: 30`), so
/// [`validate_experiment_spec`] does not either.
pub const DURATION_LONGER_THAN_DEADLINE_MESSAGE: &str =
    "Duration cannot be longer than ProgressDeadlineSeconds";

/// Message of the `Progressing=True` / `ReplicaSetUpdated` condition.
pub fn experiment_progressing_message(experiment: &str) -> String {
    format!("Experiment \"{experiment}\" is progressing.")
}

/// Message of the `Progressing=True` / `NewReplicaSetAvailable` condition.
pub fn experiment_running_message(experiment: &str) -> String {
    format!("Experiment \"{experiment}\" is running.")
}

/// Message of the `Progressing=False` / `ExperimentCompleted` condition.
pub fn experiment_completed_message(experiment: &str) -> String {
    format!("Experiment \"{experiment}\" has successfully ran and completed.")
}

/// Message of a template that did not become available in time.
pub fn template_deadline_exceeded_message(template: &str, progress_deadline_seconds: i32) -> String {
    format!("Template '{template}' exceeded its progressDeadlineSeconds ({progress_deadline_seconds})")
}

// ---------------------------------------------------------------------------------------------
// Spec
// ---------------------------------------------------------------------------------------------

/// Experiment: runs one or more ReplicaSets side by side for a while, optionally with analyses,
/// and ends Successful, Failed, Error or Inconclusive.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "argoproj.io",
    version = "v1alpha1",
    kind = "Experiment",
    plural = "experiments",
    namespaced,
    shortname = "exp",
    category = "argo-rollouts",
    status = "ExperimentStatus",
    derive = "PartialEq",
    doc = "Experiment is a specification for an Experiment resource.",
    printcolumn = r#"{"name":"Status","type":"string","jsonPath":".status.phase","description":"Experiment status"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp","description":"Time since resource was created"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct ExperimentSpec {
    /// The ReplicaSets to run, one per template.
    pub templates: Vec<TemplateSpec>,
    /// How long to run once every template is available (duration string, e.g. `5m`). Unset: run
    /// until terminated or until the analyses end the experiment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<String>,
    /// Seconds a template may take to make progress before it is marked Failed (default 600).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress_deadline_seconds: Option<i32>,
    /// Set to true to stop the experiment early.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub terminate: Option<bool>,
    /// Analyses to run against the templates once they are available.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analyses: Option<Vec<ExperimentAnalysisTemplateRef>>,
    /// Seconds to wait before scaling ReplicaSets down once they are no longer needed (default
    /// 30; 0 scales down at once).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale_down_delay_seconds: Option<i32>,
    /// Metrics of the analyses to run in dry-run mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dry_run: Option<Vec<DryRun>>,
    /// How many measurements the analyses keep per metric.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub measurement_retention: Option<Vec<MeasurementRetention>>,
    /// Labels and annotations for the AnalysisRuns the experiment creates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analysis_run_metadata: Option<AnalysisRunMetadata>,
}

impl ExperimentSpec {
    /// Progress deadline in seconds (600 when unset).
    pub fn progress_deadline_seconds(&self) -> i32 {
        self.progress_deadline_seconds
            .unwrap_or(DEFAULT_PROGRESS_DEADLINE_SECONDS)
    }

    /// Scale-down delay in seconds (30 when unset).
    pub fn scale_down_delay_seconds(&self) -> i32 {
        self.scale_down_delay_seconds
            .unwrap_or(DEFAULT_SCALE_DOWN_DELAY_SECONDS)
    }

    /// The parsed `duration`, or `None` when unset or empty (run until stopped).
    pub fn duration(&self) -> Result<Option<Duration>, DurationError> {
        self.duration
            .as_deref()
            .filter(|d| !d.is_empty())
            .map(parse_duration)
            .transpose()
    }

    /// Whether the experiment was asked to stop (`terminate: true`).
    pub fn is_terminating(&self) -> bool {
        self.terminate.unwrap_or(false)
    }

    /// The analyses (empty when unset).
    pub fn analyses(&self) -> &[ExperimentAnalysisTemplateRef] {
        self.analyses.as_deref().unwrap_or_default()
    }

    /// The template called `name`, if any.
    pub fn template(&self, name: &str) -> Option<&TemplateSpec> {
        self.templates.iter().find(|t| t.name == name)
    }
}

/// One ReplicaSet of an experiment.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TemplateSpec {
    /// Name of the template, unique within the experiment; the ReplicaSet is named
    /// `<experiment>-<template>`.
    pub name: String,
    /// Number of pods (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i32>,
    /// Seconds a new pod must be ready, without any container crashing, to count as available
    /// (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_ready_seconds: Option<i32>,
    /// Label selector for the pods; must match the template's labels. Required (a missing
    /// selector is reported by validation rather than rejected when reading).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(required)]
    pub selector: Option<LabelSelector>,
    /// Pod template of the ReplicaSet.
    pub template: PodTemplateSpec,
    /// Create a Service for the ReplicaSet when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<TemplateService>,
}

impl TemplateSpec {
    /// Desired number of pods (1 when unset).
    pub fn replicas(&self) -> i32 {
        self.replicas.unwrap_or(DEFAULT_TEMPLATE_REPLICAS)
    }

    /// Minimum ready seconds (0 when unset).
    pub fn min_ready_seconds(&self) -> i32 {
        self.min_ready_seconds.unwrap_or(0)
    }
}

/// Service created for an experiment template.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TemplateService {
    /// Name of the Service (default: the ReplicaSet's name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// An analysis run as part of an experiment (also used by Rollout experiment steps).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExperimentAnalysisTemplateRef {
    /// Name of the analysis within the experiment; the AnalysisRun is named
    /// `<experiment>-<name>`.
    pub name: String,
    /// Name of the AnalysisTemplate (or ClusterAnalysisTemplate) to instantiate.
    pub template_name: String,
    /// When true, `templateName` refers to a ClusterAnalysisTemplate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_scope: Option<bool>,
    /// Argument values for the template; they may use `{{templates.<t>.podTemplateHash}}`,
    /// `{{templates.<t>.replicaset.name}}`, `{{experiment.availableAt}}` and
    /// `{{experiment.finishedAt}}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args: Option<Vec<Argument>>,
    /// When true, the experiment completes once this analysis (and every other required one)
    /// has succeeded, even without a duration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub required_for_completion: Option<bool>,
}

impl ExperimentAnalysisTemplateRef {
    /// Whether the reference points to a ClusterAnalysisTemplate (unset = false).
    pub fn is_cluster_scope(&self) -> bool {
        self.cluster_scope.unwrap_or(false)
    }

    /// Whether the experiment waits for this analysis to succeed (unset = false).
    pub fn is_required_for_completion(&self) -> bool {
        self.required_for_completion.unwrap_or(false)
    }

    /// The argument values (empty when unset).
    pub fn args(&self) -> &[Argument] {
        self.args.as_deref().unwrap_or_default()
    }
}

// ---------------------------------------------------------------------------------------------
// Status
// ---------------------------------------------------------------------------------------------

/// Observed state of an Experiment.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExperimentStatus {
    /// Overall phase (unset until the controller first processes the experiment).
    #[serde(
        default,
        deserialize_with = "deserialize_optional_phase",
        skip_serializing_if = "Option::is_none"
    )]
    pub phase: Option<AnalysisPhase>,
    /// Explanation of the phase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// State of each template's ReplicaSet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template_statuses: Option<Vec<TemplateStatus>>,
    /// When every template first became available; the duration counts from here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub available_at: Option<Time>,
    /// Latest observations of the experiment's state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conditions: Option<Vec<ExperimentCondition>>,
    /// State of each analysis's AnalysisRun.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analysis_runs: Option<Vec<ExperimentAnalysisRunStatus>>,
}

impl ExperimentStatus {
    /// The phase, with unset meaning `Pending`.
    pub fn phase_or_pending(&self) -> AnalysisPhase {
        self.phase.unwrap_or_default()
    }

    /// The status of the template called `name`, if any.
    pub fn template_status(&self, name: &str) -> Option<&TemplateStatus> {
        self.template_statuses.as_deref()?.iter().find(|t| t.name == name)
    }

    /// The condition of type `condition_type`, if any.
    pub fn condition(&self, condition_type: &str) -> Option<&ExperimentCondition> {
        self.conditions
            .as_deref()?
            .iter()
            .find(|c| c.condition_type == condition_type)
    }

    /// The status of the analysis called `name`, if any.
    pub fn analysis_run(&self, name: &str) -> Option<&ExperimentAnalysisRunStatus> {
        self.analysis_runs.as_deref()?.iter().find(|a| a.name == name)
    }
}

/// State of an experiment template.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
#[schemars(transform = crate::analysis::drop_description)]
pub enum TemplateStatusCode {
    /// Pods are being created or are not yet all available.
    #[default]
    Progressing,
    /// Every pod is available and the experiment is running.
    Running,
    /// The template finished normally.
    Successful,
    /// The template did not become available within the progress deadline.
    Failed,
    /// The template could not be run.
    Error,
}

impl TemplateStatusCode {
    /// Whether the status is final (`Successful`, `Failed` or `Error`).
    pub fn is_completed(self) -> bool {
        matches!(
            self,
            TemplateStatusCode::Successful | TemplateStatusCode::Failed | TemplateStatusCode::Error
        )
    }

    /// The status as written in objects.
    pub fn as_str(self) -> &'static str {
        match self {
            TemplateStatusCode::Progressing => TEMPLATE_STATUS_PROGRESSING,
            TemplateStatusCode::Running => TEMPLATE_STATUS_RUNNING,
            TemplateStatusCode::Successful => TEMPLATE_STATUS_SUCCESSFUL,
            TemplateStatusCode::Failed => TEMPLATE_STATUS_FAILED,
            TemplateStatusCode::Error => TEMPLATE_STATUS_ERROR,
        }
    }
}

impl fmt::Display for TemplateStatusCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Observed state of one template's ReplicaSet.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TemplateStatus {
    /// Name of the template.
    pub name: String,
    /// Pods of the ReplicaSet.
    pub replicas: i32,
    /// Pods running the current template.
    pub updated_replicas: i32,
    /// Ready pods.
    pub ready_replicas: i32,
    /// Available pods (ready for at least minReadySeconds).
    pub available_replicas: i32,
    /// Bumped when the pod-template hash collides with an existing ReplicaSet, to get a new hash.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collision_count: Option<i32>,
    /// State of the template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<TemplateStatusCode>,
    /// Explanation of the state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// When the status or the replica counts last changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<Time>,
    /// Name of the Service created for the template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_name: Option<String>,
    /// Pod-template hash of the template's ReplicaSet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_template_hash: Option<String>,
}

/// An observation of the experiment's state.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExperimentCondition {
    /// Condition type (`InvalidSpec`, `Completed`, `Progressing`, `Running`, `ReplicaFailure`).
    #[serde(rename = "type")]
    pub condition_type: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    /// When the condition was last updated.
    pub last_update_time: Time,
    /// When the condition last changed status.
    pub last_transition_time: Time,
    /// Machine-readable reason for the last transition.
    pub reason: String,
    /// Human-readable details.
    pub message: String,
}

/// State of an analysis run by the experiment.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExperimentAnalysisRunStatus {
    /// Name of the analysis (as in `spec.analyses`).
    pub name: String,
    /// Name of the AnalysisRun.
    pub analysis_run: String,
    /// Phase of the AnalysisRun.
    pub phase: AnalysisPhase,
    /// Message of the AnalysisRun.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// Validation
// ---------------------------------------------------------------------------------------------

fn selects_everything(selector: &LabelSelector) -> bool {
    selector.match_labels.as_ref().is_none_or(|m| m.is_empty())
        && selector.match_expressions.as_ref().is_none_or(|e| e.is_empty())
}

/// Validates an experiment spec without looking anything up, with Argo's messages (the experiment
/// name appears in some of them). Per template, in Argo's order: selector missing, selector
/// empty, minReadySeconds above the progress deadline, empty name, repeated name. Also checks that
/// `duration` parses. The first error is the `InvalidSpec` condition message Argo would set.
pub fn validate_experiment_spec(experiment_name: &str, spec: &ExperimentSpec) -> Result<(), Vec<FieldError>> {
    let mut errors = Vec::new();
    let deadline = spec.progress_deadline_seconds();
    let mut names = HashSet::new();
    for (i, template) in spec.templates.iter().enumerate() {
        let path = format!("spec.templates[{i}]");
        match &template.selector {
            None => errors.push(FieldError::new(
                format!("{path}.selector"),
                format!("Rollout has missing field '.Spec.Templates[{i}].Selector'"),
            )),
            Some(selector) if selects_everything(selector) => errors.push(FieldError::new(
                format!("{path}.selector"),
                format!(
                    "This experiment is selecting all pods at index {i}. A non-empty selector is required."
                ),
            )),
            Some(_) => {}
        }
        if template.min_ready_seconds() > deadline {
            errors.push(FieldError::new(
                format!("{path}.minReadySeconds"),
                format!(
                    "MinReadySeconds cannot be longer than ProgressDeadlineSeconds. Check template index {i}"
                ),
            ));
        }
        if template.name.is_empty() {
            errors.push(FieldError::new(
                format!("{path}.name"),
                format!("Experiment {experiment_name} has empty template name at index {i}"),
            ));
        } else if !names.insert(template.name.as_str()) {
            errors.push(FieldError::new(
                format!("{path}.name"),
                format!(
                    "Experiment {experiment_name} has repeated template name '{}' in templates",
                    template.name
                ),
            ));
        }
    }
    if let Err(e) = spec.duration() {
        errors.push(FieldError::new(
            "spec.duration",
            format!("invalid duration string: {e}"),
        ));
    }
    if errors.is_empty() { Ok(()) } else { Err(errors) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::CustomResourceExt;
    use serde_json::json;
    use std::collections::BTreeMap;

    fn template(name: &str) -> TemplateSpec {
        TemplateSpec {
            name: name.into(),
            selector: Some(LabelSelector {
                match_labels: Some(BTreeMap::from([("app".to_string(), name.to_string())])),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn messages(errors: &[FieldError]) -> Vec<String> {
        errors.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn crd_identity() {
        let crd = serde_json::to_value(Experiment::crd()).unwrap();
        assert_eq!(crd["metadata"]["name"], "experiments.argoproj.io");
        assert_eq!(crd["spec"]["scope"], "Namespaced");
        assert_eq!(crd["spec"]["names"]["shortNames"], json!(["exp"]));
        assert_eq!(crd["spec"]["names"]["categories"], json!(["argo-rollouts"]));
        let version = &crd["spec"]["versions"][0];
        assert_eq!(version["subresources"]["status"], json!({}));
        assert_eq!(
            version["additionalPrinterColumns"][0]["jsonPath"],
            ".status.phase"
        );
        assert_eq!(version["additionalPrinterColumns"][1]["name"], "Age");
        let template =
            &version["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["templates"]["items"];
        assert_eq!(template["required"], json!(["name", "selector", "template"]));
    }

    #[test]
    fn defaults_as_methods() {
        let spec = ExperimentSpec::default();
        assert_eq!(spec.progress_deadline_seconds(), 600);
        assert_eq!(spec.scale_down_delay_seconds(), 30);
        assert_eq!(spec.duration(), Ok(None));
        assert!(!spec.is_terminating());
        assert_eq!(TemplateSpec::default().replicas(), 1);
        let spec = ExperimentSpec {
            duration: Some("1h30m".into()),
            scale_down_delay_seconds: Some(0),
            ..spec
        };
        assert_eq!(spec.duration(), Ok(Some(Duration::from_secs(5400))));
        assert_eq!(spec.scale_down_delay_seconds(), 0);
        assert_eq!(
            experiment_completed_message("e"),
            "Experiment \"e\" has successfully ran and completed."
        );
    }

    #[test]
    fn annotation_keys() {
        assert_eq!(EXPERIMENT_NAME_ANNOTATION, "experiment.argoproj.io/name");
        assert_eq!(
            EXPERIMENT_TEMPLATE_NAME_ANNOTATION,
            "experiment.argoproj.io/template-name"
        );
    }

    #[test]
    fn template_status_codes() {
        for (code, s) in [
            (TemplateStatusCode::Progressing, "Progressing"),
            (TemplateStatusCode::Running, "Running"),
            (TemplateStatusCode::Successful, "Successful"),
            (TemplateStatusCode::Failed, "Failed"),
            (TemplateStatusCode::Error, "Error"),
        ] {
            assert_eq!(serde_json::to_value(code).unwrap(), json!(s));
            assert_eq!(code.as_str(), s);
        }
        assert!(!TemplateStatusCode::Running.is_completed());
        assert!(TemplateStatusCode::Failed.is_completed());
    }

    #[test]
    fn full_experiment_round_trips() {
        let exp = json!({
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "Experiment",
            "metadata": {"name": "e", "namespace": "default"},
            "spec": {
                "templates": [{
                    "name": "canary",
                    "replicas": 2,
                    "minReadySeconds": 5,
                    "selector": {"matchLabels": {"app": "x"}},
                    "template": {"metadata": {"labels": {"app": "x"}},
                                 "spec": {"containers": [{"name": "c", "image": "nginx"}]}},
                    "service": {"name": "svc"}
                }],
                "duration": "5m",
                "progressDeadlineSeconds": 300,
                "terminate": false,
                "analyses": [{"name": "a", "templateName": "t", "clusterScope": true,
                              "args": [{"name": "hash", "value": "{{templates.canary.podTemplateHash}}"}],
                              "requiredForCompletion": true}],
                "scaleDownDelaySeconds": 0,
                "dryRun": [{"metricName": "m"}],
                "measurementRetention": [{"metricName": "m", "limit": 5}],
                "analysisRunMetadata": {"labels": {"l": "1"}, "annotations": {"a": "2"}}
            },
            "status": {
                "phase": "Running",
                "message": "m",
                "templateStatuses": [{
                    "name": "canary", "replicas": 2, "updatedReplicas": 2, "readyReplicas": 2,
                    "availableReplicas": 2, "collisionCount": 1, "status": "Running", "message": "ok",
                    "lastTransitionTime": "2024-05-01T10:00:00Z", "serviceName": "svc",
                    "podTemplateHash": "5d4f8c7b9"
                }],
                "availableAt": "2024-05-01T10:00:30Z",
                "conditions": [{"type": "Progressing", "status": "True",
                                "lastUpdateTime": "2024-05-01T10:00:30Z",
                                "lastTransitionTime": "2024-05-01T10:00:00Z",
                                "reason": "NewReplicaSetAvailable", "message": "Experiment \"e\" is running."}],
                "analysisRuns": [{"name": "a", "analysisRun": "e-a", "phase": "Running", "message": "x"}]
            }
        });
        let parsed: Experiment = serde_json::from_value(exp.clone()).unwrap();
        assert_eq!(serde_json::to_value(&parsed).unwrap(), exp);
        let status = parsed.status.as_ref().unwrap();
        assert_eq!(status.phase_or_pending(), AnalysisPhase::Running);
        assert_eq!(
            status.template_status("canary").unwrap().status,
            Some(TemplateStatusCode::Running)
        );
        assert_eq!(
            status.condition("Progressing").unwrap().reason,
            NEW_REPLICA_SET_AVAILABLE_REASON
        );
        assert_eq!(status.analysis_run("a").unwrap().analysis_run, "e-a");
        assert!(parsed.spec.analyses()[0].is_required_for_completion());
        assert_eq!(validate_experiment_spec("e", &parsed.spec), Ok(()));
    }

    #[test]
    fn empty_status_deserializes() {
        let status: ExperimentStatus = serde_json::from_value(json!({})).unwrap();
        assert_eq!(status, ExperimentStatus::default());
        let status: ExperimentStatus = serde_json::from_value(json!({"phase": ""})).unwrap();
        assert_eq!(status.phase, None);
        assert_eq!(status.phase_or_pending(), AnalysisPhase::Pending);
    }

    #[test]
    fn selector_rules() {
        let mut missing = template("a");
        missing.selector = None;
        let mut everything = template("b");
        everything.selector = Some(LabelSelector {
            match_labels: Some(BTreeMap::new()),
            ..Default::default()
        });
        let spec = ExperimentSpec {
            templates: vec![missing, everything],
            ..Default::default()
        };
        assert_eq!(
            messages(&validate_experiment_spec("exp", &spec).unwrap_err()),
            vec![
                "spec.templates[0].selector: Rollout has missing field '.Spec.Templates[0].Selector'",
                "spec.templates[1].selector: This experiment is selecting all pods at index 1. A non-empty selector is required.",
            ]
        );
    }

    #[test]
    fn name_deadline_and_duration_rules() {
        let mut slow = template("slow");
        slow.min_ready_seconds = Some(120);
        let spec = ExperimentSpec {
            templates: vec![template("a"), template(""), template("a"), slow],
            progress_deadline_seconds: Some(60),
            duration: Some("ten minutes".into()),
            ..Default::default()
        };
        assert_eq!(
            messages(&validate_experiment_spec("exp", &spec).unwrap_err()),
            vec![
                "spec.templates[1].name: Experiment exp has empty template name at index 1",
                "spec.templates[2].name: Experiment exp has repeated template name 'a' in templates",
                "spec.templates[3].minReadySeconds: MinReadySeconds cannot be longer than ProgressDeadlineSeconds. Check template index 3",
                r#"spec.duration: invalid duration string: time: invalid duration "ten minutes""#,
            ]
        );
        // A duration longer than the deadline is accepted, as in Argo.
        let spec = ExperimentSpec {
            templates: vec![template("a")],
            progress_deadline_seconds: Some(30),
            duration: Some("20m".into()),
            ..Default::default()
        };
        assert_eq!(validate_experiment_spec("exp", &spec), Ok(()));
    }
}

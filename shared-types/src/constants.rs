//! Wire-level strings the controllers write: label and annotation keys, condition types,
//! reasons and messages, pause reasons, phases and event reasons. They must match Argo Rollouts
//! exactly so that existing tooling (the plugin, Argo CD health checks, dashboards) keeps working.

/// Label and annotation keys.
pub mod keys {
    /// Label on ReplicaSets, pods, AnalysisRuns and Experiments, and Service selector key.
    pub const POD_TEMPLATE_HASH: &str = "rollouts-pod-template-hash";
    /// Annotation on Rollouts, ReplicaSets, AnalysisRuns and Experiments: the revision number.
    pub const REVISION: &str = "rollout.argoproj.io/revision";
    /// Annotation on ReplicaSets: former revisions of a reused ReplicaSet, comma separated.
    pub const REVISION_HISTORY: &str = "rollout.argoproj.io/revision-history";
    /// Annotation on ReplicaSets: `spec.replicas` of the Rollout at the last scale.
    pub const DESIRED_REPLICAS: &str = "rollout.argoproj.io/desired-replicas";
    /// Annotation on ReplicaSets: ephemeral metadata injected into pods, as JSON.
    pub const EPHEMERAL_METADATA: &str = "rollout.argoproj.io/ephemeral-metadata";
    /// Annotation on Rollouts: generation of the referenced workload.
    pub const WORKLOAD_GENERATION: &str = "rollout.argoproj.io/workload-generation";
    /// Annotation on ReplicaSets: RFC 3339 time after which the ReplicaSet is scaled to zero.
    pub const SCALE_DOWN_DEADLINE: &str = "scale-down-deadline";
    /// Annotation on Services and DestinationRules: the Rollout that manages them.
    pub const MANAGED_BY_ROLLOUTS: &str = "argo-rollouts.argoproj.io/managed-by-rollouts";
    /// Label selecting which controller instance processes an object.
    pub const CONTROLLER_INSTANCE_ID: &str = "argo-rollouts.argoproj.io/controller-instance-id";
    /// Label on AnalysisRuns: why the Rollout created it.
    pub const ROLLOUT_TYPE: &str = "rollout-type";
    /// Label on step AnalysisRuns: the step index.
    pub const STEP_INDEX: &str = "step-index";
    /// Annotation on experiment ReplicaSets and Services: the Experiment name.
    pub const EXPERIMENT_NAME: &str = "experiment.argoproj.io/name";
    /// Annotation on experiment ReplicaSets and Services: the template name.
    pub const EXPERIMENT_TEMPLATE_NAME: &str = "experiment.argoproj.io/template-name";
    /// Annotation on Rollouts: notifications already sent.
    pub const NOTIFIED: &str = "notified.notifications.argoproj.io";
    /// Annotation kubectl uses for client-side apply; never copied to ReplicaSets.
    pub const LAST_APPLIED_CONFIGURATION: &str = "kubectl.kubernetes.io/last-applied-configuration";
    /// Finalizer on Rollouts that route traffic through Istio: their VirtualServices are routed
    /// back to stable before the Rollout (and, after it, its ReplicaSets) goes away, even if the
    /// controller was down when it was deleted. Argo adds none and restores traffic only when it
    /// sees the deletion happen.
    pub const TRAFFIC_FINALIZER: &str = "rollouts.argoproj.io/restore-traffic";
    /// Annotations of a Rollout that are not copied onto its ReplicaSets.
    pub const NOT_COPIED_TO_REPLICA_SETS: [&str; 5] = [
        LAST_APPLIED_CONFIGURATION,
        REVISION,
        REVISION_HISTORY,
        DESIRED_REPLICAS,
        NOTIFIED,
    ];
}

/// Values of the `rollout-type` label.
pub mod rollout_type {
    /// Created by a canary analysis step.
    pub const STEP: &str = "Step";
    /// Background analysis of a canary.
    pub const BACKGROUND: &str = "Background";
    /// Blue-green pre-promotion analysis.
    pub const PRE_PROMOTION: &str = "PrePromotion";
    /// Blue-green post-promotion analysis.
    pub const POST_PROMOTION: &str = "PostPromotion";
}

/// Rollout condition types.
pub mod condition_type {
    /// The spec is invalid; the rollout does not progress until fixed.
    pub const INVALID_SPEC: &str = "InvalidSpec";
    /// Enough pods are available.
    pub const AVAILABLE: &str = "Available";
    /// The update is progressing (or stopped progressing, with status False).
    pub const PROGRESSING: &str = "Progressing";
    /// Copied from a ReplicaSet that failed to create or delete pods.
    pub const REPLICA_FAILURE: &str = "ReplicaFailure";
    /// The rollout is paused.
    pub const PAUSED: &str = "Paused";
    /// The update to the desired revision is complete.
    pub const COMPLETED: &str = "Completed";
    /// The rollout is complete and all pods are healthy.
    pub const HEALTHY: &str = "Healthy";
}

/// Rollout condition reasons.
pub mod reason {
    /// Progressing: a new ReplicaSet was created.
    pub const NEW_REPLICA_SET_CREATED: &str = "NewReplicaSetCreated";
    /// Progressing: an existing ReplicaSet was adopted as the new one.
    pub const FOUND_NEW_REPLICA_SET: &str = "FoundNewReplicaSet";
    /// Progressing: the new ReplicaSet is progressing.
    pub const REPLICA_SET_UPDATED: &str = "ReplicaSetUpdated";
    /// Progressing: the new ReplicaSet is fully available.
    pub const NEW_REPLICA_SET_AVAILABLE: &str = "NewReplicaSetAvailable";
    /// Progressing: a promoted rollout lost availability.
    pub const REPLICA_SET_NOT_AVAILABLE: &str = "ReplicaSetNotAvailable";
    /// Progressing (Unknown) and Paused: the rollout is paused.
    pub const ROLLOUT_PAUSED: &str = "RolloutPaused";
    /// Progressing (Unknown): the rollout resumed.
    pub const ROLLOUT_RESUMED: &str = "RolloutResumed";
    /// Progressing (False): the update was aborted.
    pub const ROLLOUT_ABORTED: &str = "RolloutAborted";
    /// Progressing (Unknown): retrying after an abort.
    pub const ROLLOUT_RETRY: &str = "RolloutRetry";
    /// Progressing (False): no progress within the deadline.
    pub const PROGRESS_DEADLINE_EXCEEDED: &str = "ProgressDeadlineExceeded";
    /// Progressing (False): the new ReplicaSet could not be created.
    pub const REPLICA_SET_CREATE_ERROR: &str = "ReplicaSetCreateError";
    /// Available.
    pub const AVAILABLE: &str = "AvailableReason";
    /// Completed.
    pub const ROLLOUT_COMPLETED: &str = "RolloutCompleted";
    /// Healthy.
    pub const ROLLOUT_HEALTHY: &str = "RolloutHealthy";
    /// InvalidSpec.
    pub const INVALID_SPEC: &str = "InvalidSpec";
}

/// Rollout condition messages (format strings are functions).
pub mod message {
    /// `Created new replica set "<rs>"`.
    pub fn new_replica_set_created(rs: &str) -> String {
        format!("Created new replica set \"{rs}\"")
    }
    /// `Found new replica set "<rs>"`.
    pub fn found_new_replica_set(rs: &str) -> String {
        format!("Found new replica set \"{rs}\"")
    }
    /// `ReplicaSet "<rs>" is progressing.`
    pub fn replica_set_progressing(rs: &str) -> String {
        format!("ReplicaSet \"{rs}\" is progressing.")
    }
    /// `Rollout "<ro>" is progressing.` (no new ReplicaSet yet)
    pub fn rollout_progressing(rollout: &str) -> String {
        format!("Rollout \"{rollout}\" is progressing.")
    }
    /// `ReplicaSet "<rs>" has successfully progressed.`
    pub fn replica_set_completed(rs: &str) -> String {
        format!("ReplicaSet \"{rs}\" has successfully progressed.")
    }
    /// `ReplicaSet "<rs>" has timed out progressing.`
    pub fn replica_set_timed_out(rs: &str) -> String {
        format!("ReplicaSet \"{rs}\" has timed out progressing.")
    }
    /// `Failed to create new replica set "<rs>": <err>`
    pub fn replica_set_create_error(rs: &str, err: &str) -> String {
        format!("Failed to create new replica set \"{rs}\": {err}")
    }
    /// `Rollout aborted update to revision <n>` with an optional `: <detail>`.
    pub fn rollout_aborted(revision: &str, detail: Option<&str>) -> String {
        match detail {
            Some(d) if !d.is_empty() => format!("Rollout aborted update to revision {revision}: {d}"),
            _ => format!("Rollout aborted update to revision {revision}"),
        }
    }
    /// `The Rollout "<name>" is invalid: <field error>`
    pub fn invalid_spec(rollout: &str, err: &str) -> String {
        format!("The Rollout \"{rollout}\" is invalid: {err}")
    }
    /// Progressing message when a promoted rollout loses availability.
    pub const NOT_AVAILABLE: &str = "Rollout does not have minimum availability";
    /// Available True message.
    pub const AVAILABLE: &str = "Rollout has minimum availability";
    /// Paused message.
    pub const PAUSED: &str = "Rollout is paused";
    /// Resumed message.
    pub const RESUMED: &str = "Rollout is resumed";
    /// Retry message.
    pub const RETRY: &str = "Retrying Rollout after abort";
    /// Completed message (Argo writes the reason as the message).
    pub const COMPLETED: &str = "RolloutCompleted";
    /// Healthy True message.
    pub const HEALTHY: &str = "Rollout is healthy";
    /// Healthy False message.
    pub const NOT_HEALTHY: &str = "Rollout is not healthy";
}

/// Reasons in `status.pauseConditions`.
pub mod pause_reason {
    /// A canary pause step.
    pub const CANARY_PAUSE_STEP: &str = "CanaryPauseStep";
    /// Blue-green waiting for promotion.
    pub const BLUE_GREEN_PAUSE: &str = "BlueGreenPause";
    /// An AnalysisRun ended Inconclusive.
    pub const INCONCLUSIVE_ANALYSIS_RUN: &str = "InconclusiveAnalysisRun";
    /// An Experiment ended Inconclusive.
    pub const INCONCLUSIVE_EXPERIMENT: &str = "InconclusiveExperiment";
}

/// Values of `status.phase` of a Rollout, and the phase messages.
pub mod phase {
    /// Healthy.
    pub const HEALTHY: &str = "Healthy";
    /// Degraded.
    pub const DEGRADED: &str = "Degraded";
    /// Progressing.
    pub const PROGRESSING: &str = "Progressing";
    /// Paused.
    pub const PAUSED: &str = "Paused";

    /// `spec.paused` is set.
    pub const MSG_MANUALLY_PAUSED: &str = "manually paused";
    /// A restart is in progress.
    pub const MSG_RESTARTING: &str = "rollout is restarting";
    /// Fewer updated replicas than desired.
    pub const MSG_MORE_REPLICAS_NEED_UPDATE: &str = "more replicas need to be updated";
    /// Updated replicas are not yet available.
    pub const MSG_UPDATED_BECOMING_AVAILABLE: &str = "updated replicas are still becoming available";
    /// Blue-green: the active Service is not yet switched.
    pub const MSG_ACTIVE_CUTOVER_PENDING: &str = "active service cutover pending";
    /// Blue-green: waiting for post-promotion analysis.
    pub const MSG_WAITING_FOR_ANALYSIS: &str = "waiting for analysis to complete";
    /// Blue-green: waiting for post-promotion verification.
    pub const MSG_WAITING_POST_PROMOTION: &str = "waiting for post-promotion verification to complete";
    /// Basic canary: old pods still running.
    pub const MSG_OLD_REPLICAS_PENDING: &str = "old replicas are pending termination";
    /// Canary: steps remain.
    pub const MSG_WAITING_FOR_STEPS: &str = "waiting for all steps to complete";
    /// Client-side: the controller has not seen the latest spec.
    pub const MSG_SPEC_NOT_OBSERVED: &str = "waiting for rollout spec update to be observed";
    /// Client-side: a user resumed but the controller has not reacted yet.
    pub const MSG_WAITING_UNPAUSE: &str = "waiting for rollout to unpause";
}

/// Kubernetes Event reasons recorded on Rollouts.
pub mod event_reason {
    /// A reconcile failed (ours: Argo only logs it); the message names the cause.
    pub const RECONCILE_ERROR: &str = "ReconcileError";
    /// A new ReplicaSet was created.
    pub const NEW_REPLICA_SET_CREATED: &str = "NewReplicaSetCreated";
    /// The Rollout's revision annotation changed.
    pub const ROLLOUT_UPDATED: &str = "RolloutUpdated";
    /// A ReplicaSet was scaled.
    pub const SCALING_REPLICA_SET: &str = "ScalingReplicaSet";
    /// A Service selector was switched.
    pub const SWITCH_SERVICE: &str = "SwitchService";
    /// The update finished and the new ReplicaSet became stable.
    pub const ROLLOUT_COMPLETED: &str = "RolloutCompleted";
    /// A canary step finished.
    pub const ROLLOUT_STEP_COMPLETED: &str = "RolloutStepCompleted";
    /// The rollout paused.
    pub const ROLLOUT_PAUSED: &str = "RolloutPaused";
    /// The rollout resumed.
    pub const ROLLOUT_RESUMED: &str = "RolloutResumed";
    /// The rollout was aborted.
    pub const ROLLOUT_ABORTED: &str = "RolloutAborted";
    /// Steps were skipped on a rollback to the stable ReplicaSet.
    pub const SKIP_STEPS: &str = "SkipSteps";
    /// The traffic weight changed.
    pub const TRAFFIC_WEIGHT_UPDATED: &str = "TrafficWeightUpdated";
    /// The spec is invalid.
    pub const INVALID_SPEC: &str = "InvalidSpec";
    /// An Experiment was created.
    pub const EXPERIMENT_CREATED: &str = "ExperimentCreated";
    /// An AnalysisRun was created.
    pub const ANALYSIS_RUN_CREATED: &str = "AnalysisRunCreated";
}

/// Field managers used for server-side apply, one per controller.
pub mod field_manager {
    /// The rollout controller.
    pub const ROLLOUT_CONTROLLER: &str = "rollout-controller";
    /// The analysis controller.
    pub const ANALYSIS_CONTROLLER: &str = "analysis-controller";
    /// The experiment controller.
    pub const EXPERIMENT_CONTROLLER: &str = "experiment-controller";
    /// The notification controller.
    pub const NOTIFICATION_CONTROLLER: &str = "notification-controller";
    /// The kubectl plugin.
    pub const KUBECTL_PLUGIN: &str = "kubectl-argo-rollouts";
}

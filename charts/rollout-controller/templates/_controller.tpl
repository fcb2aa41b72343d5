{{- define "rollout-controller.leaseBase" -}}argo-rollouts-controller-lock{{- end }}

{{- define "rollout-controller.activeReplicas" -}}
{{- if eq (include "rollout-controller.leaderElect" .) "true" }}many{{ else }}one{{ end }}
{{- end }}

{{- define "rollout-controller.args" -}}
{{ include "rollout-controller.commonArgs" . }}
{{ include "rollout-controller.leaderArgs" . }}
{{- end }}

{{/*
Namespaced rules, derived from rollout-controller/src (watches.rs, workload.rs, reconcile.rs,
services.rs, destination_rules.rs) and shared-runtime (events.rs, runtime.rs require_served).
*/}}
{{- define "rollout-controller.watchedRules" -}}
# Rollouts: watched (watches.rs), read by services.rs/destination_rules.rs, merge-patched
# (replicas default, revision annotation, finalizer, annotations), status patched.
- apiGroups: ["argoproj.io"]
  resources: ["rollouts"]
  verbs: ["get", "list", "watch", "patch"]
- apiGroups: ["argoproj.io"]
  resources: ["rollouts/status"]
  verbs: ["patch"]
# Owner references with blockOwnerDeletion on the ReplicaSets, AnalysisRuns, Experiments and
# Ingresses it creates (needed where OwnerReferencesPermissionEnforcement is enabled).
- apiGroups: ["argoproj.io"]
  resources: ["rollouts/finalizers"]
  verbs: ["update"]
# AnalysisRuns and Experiments of analysis/experiment steps: created (get on a name conflict),
# terminated (patch spec.terminate), deleted beyond the history limits.
- apiGroups: ["argoproj.io"]
  resources: ["analysisruns", "experiments"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: ["argoproj.io"]
  resources: ["analysistemplates"]
  verbs: ["list", "watch"]
- apiGroups: ["apps"]
  resources: ["replicasets"]
  verbs: ["list", "watch", "create", "patch", "delete"]
# workloadRef: Deployments and PodTemplates watched; a referenced Deployment scaled down (patch).
- apiGroups: ["apps"]
  resources: ["deployments"]
  verbs: ["list", "watch", "patch"]
- apiGroups: [""]
  resources: ["podtemplates"]
  verbs: ["list", "watch"]
# Services: the stable/canary/active/preview selectors are switched by merge patch.
- apiGroups: [""]
  resources: ["services"]
  verbs: ["list", "watch", "patch"]
# Pods: listed for restarts and pod metadata, patched (ephemeral metadata), evicted (restartAt).
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["list", "patch"]
- apiGroups: [""]
  resources: ["pods/eviction"]
  verbs: ["create"]
# NGINX traffic routing: the canary Ingress is server-side applied (create or patch) and deleted.
- apiGroups: ["networking.k8s.io"]
  resources: ["ingresses"]
  verbs: ["list", "watch", "create", "patch", "delete"]
# Istio traffic routing: VirtualServices and DestinationRules are watched and replaced.
- apiGroups: ["networking.istio.io"]
  resources: ["virtualservices", "destinationrules"]
  verbs: ["list", "watch", "update"]
# Events (core v1, shared-runtime/src/events.rs) on the Rollouts.
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create"]
{{- end }}

{{- define "rollout-controller.clusterScopedRules" -}}
- apiGroups: ["argoproj.io"]
  resources: ["clusteranalysistemplates"]
  verbs: ["list", "watch"]
{{- end }}

{{- define "rollout-controller.selfRules" -}}
{{ include "rollout-controller.leaseRules" . }}
{{- end }}

{{- define "experiment-controller.leaseBase" -}}argo-rollouts-experiment-controller-lock{{- end }}

{{- define "experiment-controller.activeReplicas" -}}
{{- if eq (include "experiment-controller.leaderElect" .) "true" }}many{{ else }}one{{ end }}
{{- end }}

{{- define "experiment-controller.args" -}}
{{ include "experiment-controller.commonArgs" . }}
{{ include "experiment-controller.leaderArgs" . }}
{{- end }}

{{/* Namespaced rules, derived from experiment-controller/src/controller.rs and shared-runtime. */}}
{{- define "experiment-controller.watchedRules" -}}
# Experiments: watched, status patched; never created, changed or deleted otherwise.
- apiGroups: ["argoproj.io"]
  resources: ["experiments"]
  verbs: ["list", "watch"]
- apiGroups: ["argoproj.io"]
  resources: ["experiments/status"]
  verbs: ["patch"]
# Owner references with blockOwnerDeletion on its ReplicaSets, Services and AnalysisRuns.
- apiGroups: ["argoproj.io"]
  resources: ["experiments/finalizers"]
  verbs: ["update"]
# The experiment's AnalysisRuns: created (get on a name conflict), terminated by patch.
- apiGroups: ["argoproj.io"]
  resources: ["analysisruns"]
  verbs: ["get", "list", "watch", "create", "patch"]
- apiGroups: ["argoproj.io"]
  resources: ["analysistemplates"]
  verbs: ["list", "watch"]
# One ReplicaSet per template: created at 0 replicas (get on a conflict), scaled by patch.
- apiGroups: ["apps"]
  resources: ["replicasets"]
  verbs: ["get", "list", "watch", "create", "patch"]
# Services of templates that ask for one: created (get on a conflict), deleted at the end.
- apiGroups: [""]
  resources: ["services"]
  verbs: ["get", "list", "watch", "create", "delete"]
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create"]
{{- end }}

{{- define "experiment-controller.clusterScopedRules" -}}
- apiGroups: ["argoproj.io"]
  resources: ["clusteranalysistemplates"]
  verbs: ["list", "watch"]
{{- end }}

{{- define "experiment-controller.selfRules" -}}
{{ include "experiment-controller.leaseRules" . }}
{{- end }}

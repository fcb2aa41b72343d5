{{- define "notification-controller.leaseBase" -}}argo-rollouts-notification-controller-lock{{- end }}

{{- define "notification-controller.activeReplicas" -}}
{{- if eq (include "notification-controller.leaderElect" .) "true" }}many{{ else }}one{{ end }}
{{- end }}

{{- define "notification-controller.args" -}}
{{ include "notification-controller.commonArgs" . }}
{{ include "notification-controller.leaderArgs" . }}
- --notifications-namespace={{ .Release.Namespace }}
{{- end }}

{{/* Namespaced rules, derived from notification-controller/src/controller.rs and shared-runtime. */}}
{{- define "notification-controller.watchedRules" -}}
# Rollouts, AnalysisRuns and Experiments: watched, and the sent-record annotation
# (notified.notifications.argoproj.io) written by merge patch.
- apiGroups: ["argoproj.io"]
  resources: ["rollouts", "analysisruns", "experiments"]
  verbs: ["list", "watch", "patch"]
# ReplicaSets (with a pod-template hash): read for the templates' image lists.
- apiGroups: ["apps"]
  resources: ["replicasets"]
  verbs: ["list", "watch"]
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create"]
{{- end }}

{{- define "notification-controller.clusterScopedRules" -}}
{{- end }}

{{/* Its configuration: one ConfigMap and one Secret, watched by name (a metadata.name field selector, which RBAC matches against resourceNames). */}}
{{- define "notification-controller.selfRules" -}}
{{ include "notification-controller.leaseRules" . }}
- apiGroups: [""]
  resources: ["configmaps"]
  resourceNames: ["argo-rollouts-notification-configmap"]
  verbs: ["list", "watch"]
- apiGroups: [""]
  resources: ["secrets"]
  resourceNames: ["argo-rollouts-notification-secret"]
  verbs: ["list", "watch"]
{{- end }}

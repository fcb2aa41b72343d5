{{- define "analysis-controller.leaseBase" -}}argo-rollouts-analysis-controller-lock{{- end }}

{{- define "analysis-controller.activeReplicas" -}}
{{- if or .Values.sharding.enabled (eq (include "analysis-controller.leaderElect" .) "true") }}many{{ else }}one{{ end }}
{{- end }}

{{- define "analysis-controller.args" -}}
{{ include "analysis-controller.commonArgs" . }}
{{- if .Values.sharding.enabled }}
- --sharding
- --shard-lease-duration={{ .Values.sharding.leaseDuration }}
- --shard-renew-period={{ .Values.sharding.renewPeriod }}
- --shard-handoff={{ .Values.sharding.handoff }}
{{- else }}
{{ include "analysis-controller.leaderArgs" . }}
{{- end }}
{{- with .Values.providerTimeoutSeconds }}
- --provider-timeout-seconds={{ . }}
{{- end }}
{{- end }}

{{/*
Namespaced rules, derived from analysis-controller/src (controller.rs, provider/job.rs) and
shared-runtime. No Rollouts, Experiments, ReplicaSets or Services.
*/}}
{{- define "analysis-controller.watchedRules" -}}
# AnalysisRuns: watched, status patched (measurements, phase), deleted (TTL).
- apiGroups: ["argoproj.io"]
  resources: ["analysisruns"]
  verbs: ["list", "watch", "delete"]
- apiGroups: ["argoproj.io"]
  resources: ["analysisruns/status"]
  verbs: ["patch"]
# Owner references with blockOwnerDeletion on the Jobs of Job metrics.
- apiGroups: ["argoproj.io"]
  resources: ["analysisruns/finalizers"]
  verbs: ["update"]
- apiGroups: ["argoproj.io"]
  resources: ["analysistemplates"]
  verbs: ["list", "watch"]
# Job metrics: Jobs created (get on a conflict), watched, read, deleted; their Pods listed.
- apiGroups: ["batch"]
  resources: ["jobs"]
  verbs: ["get", "list", "watch", "create", "delete"]
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["list"]
# secretKeyRef arguments: one Secret read by name in the run's namespace.
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get"]
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create"]
{{- end }}

{{- define "analysis-controller.clusterScopedRules" -}}
- apiGroups: ["argoproj.io"]
  resources: ["clusteranalysistemplates"]
  verbs: ["list", "watch"]
{{- end }}

{{- define "analysis-controller.selfRules" -}}
{{- if .Values.sharding.enabled }}
# Sharding: each replica creates, renews (patch) and deletes its member Lease
# argo-rollouts-analysis-controller[-<instance-id>]-member-<id> (a random id: no resourceNames)
# and watches the group's Leases.
- apiGroups: ["coordination.k8s.io"]
  resources: ["leases"]
  verbs: ["list", "watch", "create", "patch", "delete"]
{{- else }}
{{ include "analysis-controller.leaseRules" . }}
{{- end }}
{{- end }}

{{/* Name of the chart, overridable. */}}
{{- define "analysis-controller.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Fully qualified name: the release name when it already contains the chart name. */}}
{{- define "analysis-controller.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "analysis-controller.selectorLabels" -}}
app.kubernetes.io/name: {{ include "analysis-controller.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "analysis-controller.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "analysis-controller.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: controller
app.kubernetes.io/part-of: argo-rollouts-rs
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "analysis-controller.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "analysis-controller.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "analysis-controller.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* Leader election: on when asked for, and always with more than one replica. */}}
{{- define "analysis-controller.leaderElect" -}}
{{- if or .Values.leaderElection.enabled (gt (int .Values.replicas) 1) }}true{{ else }}false{{ end }}
{{- end }}

{{/* The Lease this controller elects its leader on (with the instance id appended, as the binary does). */}}
{{- define "analysis-controller.leaseName" -}}
{{- if .Values.instanceID }}{{ printf "%s-%s" (include "analysis-controller.leaseBase" .) .Values.instanceID }}{{ else }}{{ include "analysis-controller.leaseBase" . }}{{ end }}
{{- end }}

{{/* Namespaced rules apply where objects are watched: every namespace (ClusterRole) or watchNamespace (Role). */}}
{{- define "analysis-controller.scope" -}}
{{- if .Values.watchNamespace }}namespace{{ else }}cluster{{ end }}
{{- end }}

{{/* Flags every controller takes (see `<binary> --help`). */}}
{{- define "analysis-controller.commonArgs" -}}
- --metrics-addr=0.0.0.0:{{ .Values.metrics.port }}
- --healthz-addr=0.0.0.0:{{ .Values.healthz.port }}
- --loglevel={{ .Values.logLevel }}
- --logformat={{ .Values.logFormat }}
{{- with .Values.watchNamespace }}
- --namespace={{ . }}
{{- end }}
{{- with .Values.instanceID }}
- --instance-id={{ . }}
{{- end }}
- --leader-election-namespace={{ .Release.Namespace }}
{{- end }}

{{- define "analysis-controller.leaderArgs" -}}
- --leader-elect={{ include "analysis-controller.leaderElect" . }}
{{- if eq (include "analysis-controller.leaderElect" .) "true" }}
- --leader-election-lease-duration={{ .Values.leaderElection.leaseDuration }}
- --leader-election-renew-deadline={{ .Values.leaderElection.renewDeadline }}
- --leader-election-retry-period={{ .Values.leaderElection.retryPeriod }}
{{- end }}
{{- end }}

{{/* Leader-election Lease rules in the release namespace: create (cannot be limited by name), then only its own Lease. */}}
{{- define "analysis-controller.leaseRules" -}}
{{- if eq (include "analysis-controller.leaderElect" .) "true" }}
- apiGroups: ["coordination.k8s.io"]
  resources: ["leases"]
  verbs: ["create"]
- apiGroups: ["coordination.k8s.io"]
  resources: ["leases"]
  resourceNames: [{{ include "analysis-controller.leaseName" . | quote }}]
  verbs: ["get", "update"]
{{- end }}
{{- end }}

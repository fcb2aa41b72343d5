{{/* Name of the chart, overridable. */}}
{{- define "experiment-controller.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Fully qualified name: the release name when it already contains the chart name. */}}
{{- define "experiment-controller.fullname" -}}
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

{{- define "experiment-controller.selectorLabels" -}}
app.kubernetes.io/name: {{ include "experiment-controller.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "experiment-controller.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "experiment-controller.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: controller
app.kubernetes.io/part-of: argo-rollouts-rs
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "experiment-controller.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "experiment-controller.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "experiment-controller.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* Leader election: on when asked for, and always with more than one replica. */}}
{{- define "experiment-controller.leaderElect" -}}
{{- if or .Values.leaderElection.enabled (gt (int .Values.replicas) 1) }}true{{ else }}false{{ end }}
{{- end }}

{{/* The Lease this controller elects its leader on (with the instance id appended, as the binary does). */}}
{{- define "experiment-controller.leaseName" -}}
{{- if .Values.instanceID }}{{ printf "%s-%s" (include "experiment-controller.leaseBase" .) .Values.instanceID }}{{ else }}{{ include "experiment-controller.leaseBase" . }}{{ end }}
{{- end }}

{{/* Namespaced rules apply where objects are watched: every namespace (ClusterRole) or watchNamespace (Role). */}}
{{- define "experiment-controller.scope" -}}
{{- if .Values.watchNamespace }}namespace{{ else }}cluster{{ end }}
{{- end }}

{{/* Flags every controller takes (see `<binary> --help`). */}}
{{- define "experiment-controller.commonArgs" -}}
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

{{- define "experiment-controller.leaderArgs" -}}
- --leader-elect={{ include "experiment-controller.leaderElect" . }}
{{- if eq (include "experiment-controller.leaderElect" .) "true" }}
- --leader-election-lease-duration={{ .Values.leaderElection.leaseDuration }}
- --leader-election-renew-deadline={{ .Values.leaderElection.renewDeadline }}
- --leader-election-retry-period={{ .Values.leaderElection.retryPeriod }}
{{- end }}
{{- end }}

{{/* Leader-election Lease rules in the release namespace: create (cannot be limited by name), then only its own Lease. */}}
{{- define "experiment-controller.leaseRules" -}}
{{- if eq (include "experiment-controller.leaderElect" .) "true" }}
- apiGroups: ["coordination.k8s.io"]
  resources: ["leases"]
  verbs: ["create"]
- apiGroups: ["coordination.k8s.io"]
  resources: ["leases"]
  resourceNames: [{{ include "experiment-controller.leaseName" . | quote }}]
  verbs: ["get", "update"]
{{- end }}
{{- end }}

{{/* Chart name. */}}
{{- define "cloudsync-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name of the release's objects (63 characters at most). */}}
{{- define "cloudsync-operator.fullname" -}}
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

{{- define "cloudsync-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels of every object the chart renders (never of anything the operator creates). */}}
{{- define "cloudsync-operator.labels" -}}
helm.sh/chart: {{ include "cloudsync-operator.chart" . }}
{{ include "cloudsync-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: operator
app.kubernetes.io/part-of: cloudsync-operator
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "cloudsync-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "cloudsync-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "cloudsync-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "cloudsync-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* "true" when leader election is on: asked for, or forced by more than one replica. */}}
{{- define "cloudsync-operator.leaderElection" -}}
{{- if or .Values.leaderElection.enabled (gt (int .Values.replicaCount) 1) }}true{{ end }}
{{- end }}

{{- define "cloudsync-operator.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/*
The rules the operator needs where it watches profiles (least privilege, no wildcard):
its profiles, their status and finalizers; Secrets read-only (metadata watch + the referenced
Secret's data); events.k8s.io Events for the profiles. No CRD access: the chart installs the CRD.
*/}}
{{- define "cloudsync-operator.watchRules" -}}
- apiGroups: ["cloudsync.io"]
  resources: ["cloudsyncprofiles"]
  verbs: ["get", "list", "watch", "patch", "update"]
- apiGroups: ["cloudsync.io"]
  resources: ["cloudsyncprofiles/status"]
  verbs: ["get", "patch", "update"]
- apiGroups: ["cloudsync.io"]
  resources: ["cloudsyncprofiles/finalizers"]
  verbs: ["update"]
# ProvisionRequests: run once, record the outcome, delete after ttlSecondsAfterFinished.
- apiGroups: ["cloudsync.io"]
  resources: ["provisionrequests"]
  verbs: ["get", "list", "watch", "delete"]
- apiGroups: ["cloudsync.io"]
  resources: ["provisionrequests/status"]
  verbs: ["get", "patch", "update"]
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get", "list", "watch"]
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
{{- end }}

{{/* The `job` label of the operator's scrape: the metrics Service's name, as the ServiceMonitor gives it. */}}
{{- define "cloudsync-operator.metricsJob" -}}
{{- default (printf "%s-metrics" (include "cloudsync-operator.fullname" .)) .Values.prometheusRule.job }}
{{- end }}

{{/* Seconds of a duration with one unit ("6h" → 21600); values.schema.json admits only those. */}}
{{- define "cloudsync-operator.seconds" -}}
{{- $units := dict "s" 1 "m" 60 "h" 3600 "d" 86400 "w" 604800 -}}
{{- mul (int (regexFind "^[0-9]+" .)) (get $units (regexFind "[smhdw]$" .)) -}}
{{- end }}

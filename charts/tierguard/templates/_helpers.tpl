{{/*
Names and labels shared by every template.
*/}}
{{- define "tierguard.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "tierguard.fullname" -}}
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

{{/* The operator's objects: <fullname>-operator. */}}
{{- define "tierguard.operator.fullname" -}}
{{- printf "%s-operator" (include "tierguard.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "tierguard.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "tierguard.labels" -}}
helm.sh/chart: {{ include "tierguard.chart" . }}
app.kubernetes.io/name: {{ include "tierguard.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: tierguard
{{- end }}

{{- define "tierguard.operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "tierguard.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end }}

{{- define "tierguard.operator.labels" -}}
{{ include "tierguard.labels" . }}
app.kubernetes.io/component: operator
{{- end }}

{{- define "tierguard.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "tierguard.operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create=false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "tierguard.operator.image" -}}
{{- $img := .Values.operator.image }}
{{- if $img.digest }}
{{- printf "%s@%s" $img.repository $img.digest }}
{{- else }}
{{- printf "%s:%s" $img.repository (default .Chart.AppVersion $img.tag) }}
{{- end }}
{{- end }}

{{/* The kopf peering object's name. */}}
{{- define "tierguard.peeringName" -}}
{{- default (include "tierguard.operator.fullname" .) .Values.operator.peering.name }}
{{- end }}

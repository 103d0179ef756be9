{{/* Names and labels shared by every object of the chart. */}}
{{- define "verdict.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "verdict.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else if contains (include "verdict.name" .) .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name (include "verdict.name" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "verdict.selectorLabels" -}}
app.kubernetes.io/name: {{ include "verdict.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "verdict.labels" -}}
{{ include "verdict.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "verdict.serviceAccountName" -}}
{{- default (include "verdict.fullname" .) .Values.serviceAccount.name -}}
{{- end -}}

{{- define "verdict.fastpath" -}}
{{- if and (eq .Values.mode "daemonset") .Values.fastpath.enabled -}}true{{- end -}}
{{- end -}}

{{/*
The verdict config: values.config (the schema's defaults, see values.yaml) with what the mode and the
chart's own settings decide laid over it. Rendered once into the ConfigMap.
*/}}
{{- define "verdict.config" -}}
{{- $c := deepCopy .Values.config -}}
{{- $server := $c.server -}}
{{- $_ := set $server "drainWindowMs" (int .Values.shutdown.drainWindowMs) -}}
{{- $_ := set $server "shutdownGraceMs" (int .Values.shutdown.graceMs) -}}
{{- if eq .Values.mode "daemonset" -}}
{{- $_ := set $server.grpc "unixSocket" (printf "%s/%s" .Values.daemonset.socketDir .Values.daemonset.socketName) -}}
{{- end -}}
{{- if .Values.spire.enabled -}}
{{- $id := $c.identity -}}
{{- $_ := set $id "enabled" true -}}
{{- $_ := set $id.workloadAPI "socket" (printf "unix://%s/%s" .Values.spire.mountPath .Values.spire.socketName) -}}
{{- end -}}
{{- if include "verdict.fastpath" . -}}
{{- $fp := $c.fastpath -}}
{{- $_ := set $fp "enabled" true -}}
{{- $_ := set $fp "cgroupPath" .Values.fastpath.cgroupPath -}}
{{- end -}}
{{- toYaml $c -}}
{{- end -}}

{{/* terminationGracePeriodSeconds: drain window + in-flight grace + margin, in whole seconds. */}}
{{- define "verdict.terminationGracePeriodSeconds" -}}
{{- add (div (add .Values.shutdown.drainWindowMs .Values.shutdown.graceMs) 1000) .Values.shutdown.marginSeconds 1 -}}
{{- end -}}

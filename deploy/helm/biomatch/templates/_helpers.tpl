{{- define "biomatch.fullname" -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "biomatch.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "biomatch.secretName" -}}
{{- if .Values.secret.existingSecret -}}{{ .Values.secret.existingSecret }}{{- else -}}{{ include "biomatch.fullname" . }}{{- end -}}
{{- end -}}

{{/* The environment of every biomatch container. */}}
{{- define "biomatch.env" -}}
{{- range $name := list "DATABASE_URL" "REDIS_URL" "MASTER_KEY" "ADMIN_TOKEN" }}
- name: {{ $name }}
  valueFrom:
    secretKeyRef:
      name: {{ include "biomatch.secretName" $ }}
      key: {{ $name }}
      optional: {{ if or (eq $name "MASTER_KEY") (eq $name "ADMIN_TOKEN") }}true{{ else }}false{{ end }}
{{- end }}
- name: QUEUE_SHARDS
  value: {{ .Values.queueShards | quote }}
{{- range $name, $value := .Values.env }}
- name: {{ $name }}
  value: {{ $value | quote }}
{{- end }}
{{- end -}}

{{/* The enroll queue's names: QUEUE_NAME, or its shards name-00 … (queue.Shards). */}}
{{- define "biomatch.queues" -}}
{{- $base := .Values.env.QUEUE_NAME | default "enroll" -}}
{{- $n := int .Values.queueShards -}}
{{- if le $n 1 -}}{{ $base }}{{- else -}}
{{- range $i := until $n -}}{{ if $i }},{{ end }}{{ printf "%s-%02d" $base $i }}{{- end -}}
{{- end -}}
{{- end -}}

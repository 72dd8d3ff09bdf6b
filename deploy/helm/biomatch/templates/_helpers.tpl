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
{{- range $name, $value := .Values.env }}
- name: {{ $name }}
  value: {{ $value | quote }}
{{- end }}
{{- end -}}

{{- define "warden.name" -}}{{ .Release.Name }}-warden{{- end }}

{{- define "warden.labels" -}}
app.kubernetes.io/name: warden
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "warden.image" -}}
{{- $d := required "image.digest is required: Warden's images are deployed by digest" .Values.image.digest -}}
{{ .Values.image.repository }}:{{ .Values.image.tag }}@{{ $d }}
{{- end }}

{{- define "warden.redisImage" -}}
{{- $d := required "redis.image.digest is required" .Values.redis.image.digest -}}
{{ .Values.redis.image.repository }}:{{ .Values.redis.image.tag }}@{{ $d }}
{{- end }}

{{/* Pod-level security context meeting the restricted Pod Security Standard. */}}
{{- define "warden.podSecurity" -}}
automountServiceAccountToken: false
securityContext:
  runAsNonRoot: true
  runAsUser: 65532
  runAsGroup: 65532
  fsGroup: 65532
  seccompProfile:
    type: RuntimeDefault
{{- end }}

{{- define "warden.containerSecurity" -}}
securityContext:
  allowPrivilegeEscalation: false
  readOnlyRootFilesystem: true
  capabilities:
    drop: [ALL]
{{- end }}

{{- define "llm.labels" -}}
app: {{ .Release.Name }}-server
{{- end }}

{{/* The release's name for TIP's objects, at most 63 characters. */}}
{{- define "tip.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "tip.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/* Selector labels of one component (worker, setup, agent): pass (list . "worker"). */}}
{{- define "tip.selectorLabels" -}}
app.kubernetes.io/name: {{ (index . 0).Chart.Name }}
app.kubernetes.io/instance: {{ (index . 0).Release.Name }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end -}}

{{- define "tip.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{- define "tip.secretName" -}}
{{- .Values.secret.existingSecret | default (printf "%s-secret" (include "tip.fullname" .)) -}}
{{- end -}}

{{/* TIP's settings: the ConfigMap's variables and the Secret's. */}}
{{- define "tip.envFrom" -}}
- configMapRef:
    name: {{ include "tip.fullname" . }}-env
- secretRef:
    name: {{ include "tip.secretName" . }}
{{- end -}}

{{- define "tip.catalogVolume" -}}
- name: catalogs
  configMap:
    name: {{ include "tip.fullname" . }}-catalogs
- name: tmp
  emptyDir: {}
{{- end -}}

{{- define "tip.catalogMounts" -}}
- name: catalogs
  mountPath: /etc/tip/catalog
  readOnly: true
- name: tmp
  mountPath: /tmp
{{- end -}}

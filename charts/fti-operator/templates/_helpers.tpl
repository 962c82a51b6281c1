{{/* Names and labels shared by every template. */}}
{{- define "fti-operator.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "fti-operator.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "fti-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "fti-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "fti-operator.labels" -}}
{{ include "fti-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: fti-operator
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "fti-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "fti-operator.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "fti-operator.clusterWide" -}}
{{- if .Values.watchNamespaces -}}false{{- else -}}true{{- end -}}
{{- end -}}

{{/* Rules on the namespaced objects the operator reads and writes (least privilege). */}}
{{- define "fti-operator.namespacedRules" -}}
# Our three kinds: watched, patched (Kopf's annotations, finalizers) and their status written.
- apiGroups: ["fti.dev"]
  resources: ["featurepipelines", "trainingpipelines", "inferenceservices"]
  verbs: ["get", "list", "watch", "patch"]
- apiGroups: ["fti.dev"]
  resources: ["featurepipelines/status", "trainingpipelines/status", "inferenceservices/status"]
  verbs: ["get", "patch"]
# Children: CronJobs and Jobs of the pipelines.
- apiGroups: ["batch"]
  resources: ["jobs", "cronjobs"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
# Pods only to read the termination message (the pipeline result) and logs; never written.
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["get", "list", "watch"]
- apiGroups: [""]
  resources: ["pods/log"]
  verbs: ["get"]
# Events for every rollout step.
- apiGroups: ["", "events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
# Online serving children.
- apiGroups: ["serving.kserve.io"]
  resources: ["inferenceservices"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
{{- if .Values.peering.enabled }}
# Kopf peering in a watched namespace.
- apiGroups: ["kopf.dev"]
  resources: ["kopfpeerings"]
  verbs: ["get", "list", "watch", "patch"]
{{- end }}
{{- end -}}

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

{{- /* The online store the pods get: the value, or SQLite on the data volume when there is one. */}}
{{- define "fti-operator.onlineStore" -}}
{{- if .Values.stores.onlineStore -}}
{{- .Values.stores.onlineStore -}}
{{- else if and .Values.stores.volumeClaim (not .Values.stores.onlineStoreSecret) -}}
{{- printf "sqlite://%s/online.db" (trimSuffix "/" .Values.stores.dataVolumePath) -}}
{{- end -}}
{{- end -}}

{{- /* Refuse store values that cannot work, naming the value to set (docs/install.md, "Stores"). */}}
{{- define "fti-operator.checkStores" -}}
{{- $s := .Values.stores -}}
{{- if hasPrefix "file://" $s.artifactStore -}}
{{- if not $s.volumeClaim -}}
{{- fail (printf "stores.artifactStore=%s is a file:// store but stores.volumeClaim is empty: each pipeline pod would write to its own disk. Set stores.volumeClaim to a PVC present in every pipeline namespace, or stores.artifactStore=s3://bucket/prefix" $s.artifactStore) -}}
{{- end -}}
{{- if not (hasPrefix (printf "file://%s/" (trimSuffix "/" $s.dataVolumePath)) $s.artifactStore) -}}
{{- fail (printf "stores.artifactStore=%s is not under stores.dataVolumePath=%s, where stores.volumeClaim is mounted: set one to match the other" $s.artifactStore $s.dataVolumePath) -}}
{{- end -}}
{{- end -}}
{{- if and $s.onlineStore $s.onlineStoreSecret -}}
{{- fail "stores.onlineStore and stores.onlineStoreSecret are both set: keep one (a URI with a password belongs in the Secret)" -}}
{{- end -}}
{{- end -}}

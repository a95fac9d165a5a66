{{/*
Names, labels and the image reference, shared by every template.
*/}}

{{/* The chart name, or nameOverride. */}}
{{- define "ctrain.name" -}}
{{- .Values.nameOverride | default .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
The full name of the release's resources: fullnameOverride, else `<release>-<name>`,
else the release name alone when it already contains the name. 63 characters at most
(a DNS-1123 label).
*/}}
{{- define "ctrain.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := include "ctrain.name" . -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* `ctrain-0.1.0`, for the helm.sh/chart label. */}}
{{- define "ctrain.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* What selects the operator pod; never changes across upgrades. */}}
{{- define "ctrain.selectorLabels" -}}
app.kubernetes.io/name: {{ include "ctrain.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end -}}

{{/* Labels of every resource the chart creates, except `app.kubernetes.io/part-of`. */}}
{{- define "ctrain.baseLabels" -}}
helm.sh/chart: {{ include "ctrain.chart" . }}
app.kubernetes.io/name: {{ include "ctrain.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Labels of the operator's own resources (Deployment, RBAC, Services). */}}
{{- define "ctrain.labels" -}}
{{ include "ctrain.baseLabels" . }}
app.kubernetes.io/component: operator
app.kubernetes.io/part-of: ctrain
{{- end -}}

{{/*
Labels the chart adds to the generated CRD templates (templates/crds/), which carry
`app.kubernetes.io/part-of: ctrain` from the API models already.
*/}}
{{- define "ctrain.crdLabels" -}}
{{ include "ctrain.baseLabels" . }}
app.kubernetes.io/component: crd
{{- end -}}

{{/* The operator's ServiceAccount name. */}}
{{- define "ctrain.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- .Values.serviceAccount.name | default (include "ctrain.fullname" .) -}}
{{- else -}}
{{- .Values.serviceAccount.name | default "default" -}}
{{- end -}}
{{- end -}}

{{/* `registry/repository:tag` or `registry/repository@digest`. */}}
{{- define "ctrain.image" -}}
{{- $repository := .Values.image.repository -}}
{{- if .Values.image.registry -}}
{{- $repository = printf "%s/%s" (trimSuffix "/" .Values.image.registry) $repository -}}
{{- end -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" $repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" $repository (.Values.image.tag | default .Chart.AppVersion) -}}
{{- end -}}
{{- end -}}

{{/*
The RBAC rules on namespaced resources: a ClusterRole's when the operator watches the
whole cluster, each watched namespace's Role otherwise. Exactly what the reconcilers
call; no wildcards and no Secrets (credentials reach pods through secretKeyRef).
*/}}
{{- define "ctrain.namespacedRules" -}}
# The ctrain resources: watched by kopf, read by the reconcilers.
- apiGroups: ["ctrain.dev"]
  resources: ["trainingjobs", "modeldeployments", "continuoustrainings"]
  verbs: ["get", "list", "watch", "patch"]
# A ContinuousTraining creates its TrainingJobs and prunes old ones.
- apiGroups: ["ctrain.dev"]
  resources: ["trainingjobs"]
  verbs: ["create", "delete"]
# Everything the operator learns goes to status, never to spec.
- apiGroups: ["ctrain.dev"]
  resources: ["trainingjobs/status", "modeldeployments/status", "continuoustrainings/status"]
  verbs: ["patch"]
# Training runs.
- apiGroups: ["batch"]
  resources: ["jobs"]
  verbs: ["get", "list", "watch", "create", "delete"]
# Model serving.
- apiGroups: ["apps"]
  resources: ["deployments"]
  verbs: ["get", "list", "watch", "create", "patch", "update", "delete"]
# Only pods of a deployment's current ReplicaSet are asked for metrics and drift.
- apiGroups: ["apps"]
  resources: ["replicasets"]
  verbs: ["list"]
- apiGroups: [""]
  resources: ["services"]
  verbs: ["get", "list", "watch", "create", "patch", "update", "delete"]
# Training pods' termination messages and serving pods' readiness.
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["get", "list", "watch"]
# One Event per decision.
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create", "patch"]
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
{{- end -}}

{{/*
The RBAC rules that stay cluster-scoped in every mode: kopf lists and watches the CRDs
to serve resources whose CRDs appear after it started (the CRDs of this very release).
*/}}
{{- define "ctrain.clusterRules" -}}
# kopf's resource discovery.
- apiGroups: ["apiextensions.k8s.io"]
  resources: ["customresourcedefinitions"]
  verbs: ["list", "watch"]
{{- end -}}

{{/*
Labels the operator puts on the pods it creates (ctrain.controller: trainingjob/builders,
modeldeployment/builders); the PodMonitor and the NetworkPolicies select them.
*/}}
{{- define "ctrain.trainerPodLabels" -}}
app.kubernetes.io/name: ctrain-trainer
app.kubernetes.io/managed-by: ctrain
{{- end -}}

{{- define "ctrain.serverPodLabels" -}}
app.kubernetes.io/name: ctrain-server
app.kubernetes.io/managed-by: ctrain
{{- end -}}

{{/* Labels of the chart's monitoring objects (PodMonitor, rules, dashboard). */}}
{{- define "ctrain.monitoringLabels" -}}
{{ include "ctrain.baseLabels" . }}
app.kubernetes.io/component: monitoring
app.kubernetes.io/part-of: ctrain
{{- end -}}

{{/*
The namespaces of the pods the operator creates, for the PodMonitor and the
NetworkPolicies: the given list, else watchNamespaces (a list; empty means all).
*/}}
{{- define "ctrain.workloadNamespaces" -}}
{{- $given := index . 0 -}}
{{- $root := index . 1 -}}
{{- $given | default $root.Values.watchNamespaces | uniq | toJson -}}
{{- end -}}

{{/* The CA bundle mount: volume name, directory and file (empty when none is set). */}}
{{- define "ctrain.caBundleFile" -}}
{{- with .Values.storage.caBundle -}}
{{- if .configMap.name -}}
/etc/ctrain/ca/{{ .configMap.key }}
{{- else if .secret.name -}}
/etc/ctrain/ca/{{ .secret.key }}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Egress of training and serving pods: DNS and the storage endpoint, nothing else. */}}
{{- define "ctrain.egressRules" -}}
- to:
    {{- toYaml .dnsPeers | nindent 4 }}
  ports:
    - port: 53
      protocol: UDP
    - port: 53
      protocol: TCP
- to:
    {{- toYaml .storagePeers | nindent 4 }}
  ports:
    {{- toYaml .storagePorts | nindent 4 }}
{{- end -}}

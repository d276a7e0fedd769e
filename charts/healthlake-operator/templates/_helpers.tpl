{{/* The chart's name, or nameOverride. */}}
{{- define "healthlake-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The release's full name, used for every object the chart creates. */}}
{{- define "healthlake-operator.fullname" -}}
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

{{- define "healthlake-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "healthlake-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "healthlake-operator.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "healthlake-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: operator
{{- end }}

{{- define "healthlake-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "healthlake-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* Leader election is on whenever more than one replica runs: two active replicas would both act. */}}
{{- define "healthlake-operator.leaderElection" -}}
{{- if or .Values.leaderElection.enabled (gt (int .Values.replicaCount) 1) }}true{{ else }}false{{ end }}
{{- end }}

{{- define "healthlake-operator.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/*
The permissions the controllers use in the namespaces they watch, each justified by the code
(tests/packaging/permissions.py holds the same list and the reasons):
- list and watch: kube-runtime's watcher on the three kinds; get: an object is read again when
  a status write meets a newer copy (409); patch on fhirdatastores: the finalizer helper adds
  and removes the cleanup finalizer with a JSON patch.
- delete on the two job kinds: ttlSecondsAfterFinished.
- patch on the /status of the three kinds: every status write is a merge patch of .status.
- update on fhirdatastores/finalizers: the finalizer the operator manages, for clusters that
  check finalizer changes against this subresource (OwnerReferencesPermissionEnforcement).
- create and patch on events.k8s.io events: kube-runtime's Recorder creates an event, then
  patches it as a series when it repeats.
*/}}
{{- define "healthlake-operator.watchRules" -}}
- apiGroups: ["healthlake.fhir-operator.io"]
  resources: ["fhirdatastores"]
  verbs: ["get", "list", "watch", "patch"]
- apiGroups: ["healthlake.fhir-operator.io"]
  resources: ["fhirimportjobs", "fhirexportjobs"]
  verbs: ["get", "list", "watch", "delete"]
- apiGroups: ["healthlake.fhir-operator.io"]
  resources: ["fhirdatastores/status", "fhirimportjobs/status", "fhirexportjobs/status"]
  verbs: ["patch"]
- apiGroups: ["healthlake.fhir-operator.io"]
  resources: ["fhirdatastores/finalizers"]
  verbs: ["update"]
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
{{- end }}

{{/*
Leader election (kube-lease-manager): get, then create the Lease when it is missing, then patch
it to acquire, renew and release it. create cannot be limited to a name; get and patch are.
*/}}
{{- define "healthlake-operator.leaseRules" -}}
- apiGroups: ["coordination.k8s.io"]
  resources: ["leases"]
  verbs: ["create"]
- apiGroups: ["coordination.k8s.io"]
  resources: ["leases"]
  resourceNames: [{{ .Values.leaderElection.leaseName | quote }}]
  verbs: ["get", "patch"]
{{- end }}

{{/* A number as the operator's flags parse it: whole numbers without an exponent (YAML numbers
reach templates as floats, which print 1000000 as 1e+06). */}}
{{- define "healthlake-operator.number" -}}
{{- if eq (float64 .) (float64 (int64 .)) }}{{ int64 . }}{{ else }}{{ . }}{{ end }}
{{- end }}

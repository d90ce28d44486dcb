{{/*
Names, labels, images and the per-tier settings shared by every template.
*/}}

{{- define "tierroute.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* <release>-tierroute unless the release name already contains the chart name. */}}
{{- define "tierroute.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "tierroute.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
Labels on every object: (dict "root" $ "component" "router"), plus "tier" $tier for a model tier.
*/}}
{{- define "tierroute.labels" -}}
helm.sh/chart: {{ include "tierroute.chart" .root }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/part-of: tierroute
{{ include "tierroute.selectorLabels" . }}
{{- with .root.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Selector labels of one component (and tier): same arguments as tierroute.labels. */}}
{{- define "tierroute.selectorLabels" -}}
app.kubernetes.io/name: {{ include "tierroute.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- with .tier }}
tierroute/tier: {{ .name }}
{{- end }}
{{- end -}}

{{- define "tierroute.routerName" -}}
{{- printf "%s-router" (include "tierroute.fullname" .) -}}
{{- end -}}

{{/* A tier's Deployment and headless Service name: (dict "root" $ "tier" $tier). */}}
{{- define "tierroute.tierName" -}}
{{- printf "%s-%s" (include "tierroute.fullname" .root) .tier.name -}}
{{- end -}}

{{- define "tierroute.routerServiceAccountName" -}}
{{- if .Values.router.serviceAccount.create -}}
{{- default (include "tierroute.routerName" .) .Values.router.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.router.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "tierroute.modelServiceAccountName" -}}
{{- if .Values.modelServiceAccount.create -}}
{{- default (printf "%s-model" (include "tierroute.fullname" .)) .Values.modelServiceAccount.name -}}
{{- else -}}
{{- default "default" .Values.modelServiceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* An image reference: (dict "root" $ "image" .Values.router.image); a digest wins over a tag. */}}
{{- define "tierroute.image" -}}
{{- $repository := .image.repository -}}
{{- if .root.Values.imageRegistry -}}
{{- $repository = printf "%s/%s" (trimSuffix "/" .root.Values.imageRegistry) $repository -}}
{{- end -}}
{{- if .image.digest -}}
{{- printf "%s@%s" $repository .image.digest -}}
{{- else -}}
{{- printf "%s:%s" $repository (default .root.Chart.AppVersion .image.tag) -}}
{{- end -}}
{{- end -}}

{{/*
The tiers with modelDefaults applied, as YAML ({"tiers": [...]}); read it back with fromYaml.
Also fails the render early on what the schema cannot express: duplicate names and a tier
list that is not ordered cheapest first (the router refuses both at start-up).
*/}}
{{- define "tierroute.tiers" -}}
{{- $tiers := list -}}
{{- $seen := dict -}}
{{- $previous := -1.0 -}}
{{- range $index, $entry := .Values.tiers -}}
{{- $tier := mergeOverwrite (deepCopy $.Values.modelDefaults) (deepCopy $entry) -}}
{{- if hasKey $seen $tier.name -}}
{{- fail (printf "tiers[%d]: duplicate tier name %q" $index $tier.name) -}}
{{- end -}}
{{- $_ := set $seen $tier.name true -}}
{{- $blended := addf $tier.prices.inputUsdPerMtok $tier.prices.outputUsdPerMtok -}}
{{- if lt $blended $previous -}}
{{- fail (printf "tiers[%d] %q: tiers must be ordered cheapest first (input + output price)" $index $tier.name) -}}
{{- end -}}
{{- $previous = $blended -}}
{{- if not $tier.gpus -}}
{{- $_ := set $tier "gpus" $tier.tensorParallelSize -}}
{{- end -}}
{{- if lt (int $tier.gpus) (int $tier.tensorParallelSize) -}}
{{- fail (printf "tiers[%d] %q: gpus (%v) below tensorParallelSize (%v)" $index $tier.name $tier.gpus $tier.tensorParallelSize) -}}
{{- end -}}
{{- $tiers = append $tiers $tier -}}
{{- end -}}
{{- toYaml (dict "tiers" $tiers) -}}
{{- end -}}

{{/* The gRPC target the router dials for a tier: (dict "root" $ "tier" $tier). */}}
{{- define "tierroute.tierEndpoint" -}}
{{- printf "dns:///%s.%s.svc.%s:%v" (include "tierroute.tierName" .) .root.Release.Namespace .root.Values.clusterDomain (int .tier.port) -}}
{{- end -}}

{{/* Pod-level security context shared by every pod. */}}
{{- define "tierroute.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .Values.podSecurity.runAsUser }}
runAsGroup: {{ .Values.podSecurity.runAsGroup }}
fsGroup: {{ .Values.podSecurity.fsGroup }}
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* Container-level security context shared by every container. */}}
{{- define "tierroute.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
privileged: false
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

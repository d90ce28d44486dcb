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

{{/*
Transport security resolved from .Values.security, as YAML (read back with fromYaml):
  tls         TLS on the gRPC ports (bool)
  mtls        the router presents its certificate and the tiers require one (bool)
  peerAuth    none | sharedSecret | mtls
  allowedPeerSans  the client certificate names the tiers accept (pinRouter + allowedPeerSans)
  healthPort  the plaintext health-only port (0 while TLS is off)
  routerSecret, modelSecret  the TLS Secrets ("" for a tier: its own cert-manager Secret)
  routerCertificate  the router's Secret comes from a cert-manager Certificate
Fails the render on what the schema cannot express: TLS with neither an issuer nor Secrets, a
health port that collides with another port.
*/}}
{{- define "tierroute.security" -}}
{{- $security := .Values.security -}}
{{- $tls := $security.tls -}}
{{- $out := dict "tls" false "mtls" false "peerAuth" $security.peerAuth.mode "healthPort" 0 "routerSecret" "" "modelSecret" "" "routerCertificate" false -}}
{{- if $tls.enabled -}}
{{- $issuer := ne $tls.issuerRef.name "" -}}
{{- $routerSecret := default $tls.existingSecret $tls.router.existingSecret -}}
{{- $modelSecret := default $tls.existingSecret $tls.model.existingSecret -}}
{{- if and (not $issuer) (or (not $routerSecret) (not $modelSecret)) -}}
{{- fail "security.tls.enabled: set security.tls.issuerRef.name (cert-manager) or existingSecret for the router and the tiers" -}}
{{- end -}}
{{- $_ := set $out "routerCertificate" (not $routerSecret) -}}
{{- if not $routerSecret -}}
{{- $routerSecret = printf "%s-tls" (include "tierroute.routerName" .) -}}
{{- end -}}
{{- $taken := list (int .Values.router.ports.grpc) (int .Values.router.ports.metrics) -}}
{{- range $tier := (include "tierroute.tiers" . | fromYaml).tiers -}}
{{- $taken = append $taken (int $tier.port) -}}
{{- $taken = append $taken (int $tier.metricsPort) -}}
{{- end -}}
{{- if has (int $tls.healthPort) $taken -}}
{{- fail (printf "security.tls.healthPort %v is already a gRPC or metrics port" $tls.healthPort) -}}
{{- end -}}
{{- $_ := set $out "tls" true -}}
{{- $_ := set $out "routerSecret" $routerSecret -}}
{{- $_ := set $out "modelSecret" $modelSecret -}}
{{- $_ := set $out "healthPort" (int $tls.healthPort) -}}
{{- $_ := set $out "mtls" (or (eq $security.peerAuth.mode "mtls") $tls.mtlsToTiers) -}}
{{- end -}}
{{- $sans := concat (list) ($security.peerAuth.allowedPeerSans | default list) -}}
{{- if and $sans (not $out.mtls) -}}
{{- fail "security.peerAuth.allowedPeerSans pins the router's client certificate: it needs peerAuth.mode mtls (or tls.mtlsToTiers)" -}}
{{- end -}}
{{- /* pinRouter (on in prod) pins nothing while no client certificate is required. */ -}}
{{- if and $security.peerAuth.pinRouter $out.mtls -}}
{{- $sans = prepend $sans (printf "%s.%s.svc" (include "tierroute.routerName" .) .Release.Namespace) -}}
{{- end -}}
{{- $_ := set $out "allowedPeerSans" (uniq $sans) -}}
{{- toYaml $out -}}
{{- end -}}

{{/* Where the TLS Secret and the peer-auth secret are mounted (beside, not under, the config). */}}
{{- define "tierroute.tlsDir" -}}/etc/tierroute-tls{{- end -}}
{{- define "tierroute.peerDir" -}}/etc/tierroute-peer{{- end -}}
{{- define "tierroute.peerSecretFile" -}}{{ include "tierroute.peerDir" . }}/shared-secret{{- end -}}

{{/* A tier's TLS Secret: (dict "root" $ "tier" $tier "security" $security). */}}
{{- define "tierroute.tierTlsSecret" -}}
{{- default (printf "%s-tls" (include "tierroute.tierName" .)) .security.modelSecret -}}
{{- end -}}

{{/*
The DNS names of a Service, short to fully qualified: (dict "root" $ "name" $serviceName).
The router dials dns:///<name>.<namespace>.svc.<clusterDomain>, which the certificate names.
*/}}
{{- define "tierroute.serviceDnsNames" -}}
{{- $ns := .root.Release.Namespace -}}
- {{ .name }}
- {{ printf "%s.%s" .name $ns }}
- {{ printf "%s.%s.svc" .name $ns }}
- {{ printf "%s.%s.svc.%s" .name $ns .root.Values.clusterDomain }}
{{- end -}}

{{/* The secret volumes of a pod under security: (dict "root" $ "security" $s "tlsSecret" name). */}}
{{- define "tierroute.securityVolumes" -}}
{{- if .security.tls }}
- name: tls
  secret:
    secretName: {{ .tlsSecret }}
    defaultMode: 0440
{{- end }}
{{- if eq .security.peerAuth "sharedSecret" }}
- name: peer-auth
  secret:
    secretName: {{ .root.Values.security.peerAuth.existingSecret }}
    defaultMode: 0440
    items:
      - key: {{ .root.Values.security.peerAuth.secretKey }}
        path: shared-secret
{{- end }}
{{- end -}}

{{/* Their read-only mounts: (dict "root" $ "security" $s). */}}
{{- define "tierroute.securityMounts" -}}
{{- if .security.tls }}
- name: tls
  mountPath: {{ include "tierroute.tlsDir" . }}
  readOnly: true
{{- end }}
{{- if eq .security.peerAuth "sharedSecret" }}
- name: peer-auth
  mountPath: {{ include "tierroute.peerDir" . }}
  readOnly: true
{{- end }}
{{- end -}}

{{/* Router state (state.*): the dev Redis's name, and the URL the router uses. */}}
{{- define "tierroute.redisName" -}}
{{- printf "%s-redis" (include "tierroute.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- define "tierroute.stateDir" -}}/etc/tierroute-state{{- end -}}
{{- define "tierroute.redisUrl" -}}
{{- $redis := .Values.state.redis -}}
{{- if $redis.url -}}
{{- $redis.url -}}
{{- else if .Values.state.dev.enabled -}}
{{- printf "redis://%s.%s.svc.%s:%d/0" (include "tierroute.redisName" .) .Release.Namespace .Values.clusterDomain (int $redis.port) -}}
{{- else -}}
{{- fail "state.backend redis needs state.redis.url (an existing Redis) or state.dev.enabled" -}}
{{- end -}}
{{- end -}}

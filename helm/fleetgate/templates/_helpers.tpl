{{/*
Shared names, labels, the rendered fleetgate config and the environment every
fleetgate pod needs. Templates include these; none of them emits an object.
*/}}

{{- define "fleetgate.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* <release>-fleetgate, kept short enough for the suffixes KubeRay and StatefulSets add. */}}
{{- define "fleetgate.fullname" -}}
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

{{- define "fleetgate.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Selector labels of one component: (dict "root" $ "component" "router"). */}}
{{- define "fleetgate.selectorLabels" -}}
app.kubernetes.io/name: {{ include "fleetgate.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* All labels of one component: (dict "root" $ "component" "router"). */}}
{{- define "fleetgate.labels" -}}
helm.sh/chart: {{ include "fleetgate.chart" .root }}
{{ include "fleetgate.selectorLabels" . }}
app.kubernetes.io/part-of: fleetgate
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
{{- with .root.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "fleetgate.image" -}}
{{- printf "%s:%s" .image.repository (default .root.Chart.AppVersion .image.tag) -}}
{{- end -}}

{{- define "fleetgate.routerName" -}}{{ include "fleetgate.fullname" . }}-router{{- end -}}
{{- define "fleetgate.redisName" -}}{{ include "fleetgate.fullname" . }}-redis{{- end -}}
{{- define "fleetgate.toolboxName" -}}{{ include "fleetgate.fullname" . }}-toolbox{{- end -}}
{{- define "fleetgate.configName" -}}{{ include "fleetgate.fullname" . }}-config{{- end -}}

{{- define "fleetgate.sealingSecretName" -}}
{{- default (printf "%s-sealing" (include "fleetgate.fullname" .)) .Values.sealingSecret.existingSecret -}}
{{- end -}}

{{- define "fleetgate.replicaTokenSecretName" -}}
{{- default (printf "%s-replica-token" (include "fleetgate.fullname" .)) .Values.replicaToken.existingSecret -}}
{{- end -}}

{{/* The replica token (routers send it, replicas require it), for every pod that runs fleetgate code. */}}
{{- define "fleetgate.replicaTokenEnv" -}}
- name: FLEETGATE_REPLICA__AUTH_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ include "fleetgate.replicaTokenSecretName" . }}
      key: {{ .Values.replicaToken.secretKey }}
{{- end -}}

{{- define "fleetgate.bootstrapSecretName" -}}
{{- default (printf "%s-bootstrap-key" (include "fleetgate.fullname" .)) .Values.bootstrapKey.existingSecret -}}
{{- end -}}

{{- define "fleetgate.modelCacheClaim" -}}
{{- default (printf "%s-model-cache" (include "fleetgate.fullname" .)) .Values.modelCache.pvc.existingClaim -}}
{{- end -}}

{{/* "true" when the chart runs its own Redis: no redis.url and no redisUrlSecret. */}}
{{- define "fleetgate.redisServerEnabled" -}}
{{- if and (not .Values.redis.url) (not .Values.redisUrlSecret.name) -}}true{{- end -}}
{{- end -}}

{{/* The Redis URL written into the config file (credentials only ever come from env). */}}
{{- define "fleetgate.redisUrl" -}}
{{- if .Values.redisUrlSecret.name -}}
{{- /* from env FLEETGATE_REDIS__URL */ -}}
{{- else if .Values.redis.url -}}
{{- .Values.redis.url -}}
{{- else -}}
{{- printf "redis://%s:6379/0" (include "fleetgate.redisName" .) -}}
{{- end -}}
{{- end -}}

{{/*
The fleetgate config (fleetgate/config.py FleetgateConfig), as YAML. The values'
config half passes through unchanged except what only the cluster knows: where
Redis is, that the router listens on all interfaces, and that the controller
joins the RayCluster it runs in.
*/}}
{{- define "fleetgate.config" -}}
{{- $redis := deepCopy (default dict .Values.redis) -}}
{{- $url := include "fleetgate.redisUrl" . -}}
{{- if $url -}}
{{- $_ := set $redis "url" $url -}}
{{- else -}}
{{- $_ := unset $redis "url" -}}
{{- end -}}
{{- $router := mergeOverwrite (deepCopy (default dict .Values.router)) (dict "host" "0.0.0.0") -}}
{{- $ray := mergeOverwrite (deepCopy (default dict .Values.ray)) (dict "address" "auto") -}}
{{- $config := dict "redis" $redis "router" $router "replica" (default dict .Values.replica) "ray" $ray "models" (default list .Values.models) "tracing" (default dict .Values.tracing) -}}
{{- with include "fleetgate.toolsConfig" . | fromYaml }}{{ $_ := set $config "tools" . }}{{ end -}}
{{- toYaml $config -}}
{{- end -}}

{{/*
The config's `tools` section (fleetgate ToolsConfig), only with toolbox.enabled (otherwise none: tools are off):
the values' `tools` plus what the chart decides, tools.enabled and the sandboxes' work_root (the toolbox pods'
work volume). The toolbox pods' own address (tools.host) comes from env, as each pod registers its pod IP.
*/}}
{{- define "fleetgate.toolsConfig" -}}
{{- $tools := deepCopy (default dict .Values.tools) -}}
{{- if .Values.toolbox.enabled -}}
{{- $sandbox := mergeOverwrite (default dict $tools.sandbox) (dict "work_root" .Values.toolbox.workRoot.mountPath) -}}
{{- toYaml (mergeOverwrite $tools (dict "enabled" true "sandbox" $sandbox)) -}}
{{- else if $tools.enabled -}}
{{- fail "tools.enabled: the chart turns server-side tools on with toolbox.enabled: true (which also runs the toolbox pods)" -}}
{{- end -}}
{{- end -}}

{{/*
Environment shared by every pod that runs fleetgate code (router, Ray head, Ray
workers): Redis credentials, which override the config's redis.url.
*/}}
{{- define "fleetgate.redisEnv" -}}
{{- if .Values.redisUrlSecret.name }}
- name: FLEETGATE_REDIS__URL
  valueFrom:
    secretKeyRef:
      name: {{ .Values.redisUrlSecret.name }}
      key: {{ .Values.redisUrlSecret.key }}
{{- else if and (include "fleetgate.redisServerEnabled" .) .Values.redisServer.auth.existingSecret }}
- name: REDIS_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ .Values.redisServer.auth.existingSecret }}
      key: {{ .Values.redisServer.auth.secretKey }}
- name: FLEETGATE_REDIS__URL
  value: {{ printf "redis://:$(REDIS_PASSWORD)@%s:6379/0" (include "fleetgate.redisName" .) | quote }}
{{- end }}
{{- end -}}

{{/*
Tracing environment of every pod that runs fleetgate code (router, Ray head, Ray
workers), with tracing.enabled: the node-local collector agent's address (resolved
where the spans are made: each pod's own node) and the collector headers' Secret
(the Ray head's controller hands its config, headers included, to the replica actors).
*/}}
{{- define "fleetgate.tracingEnv" -}}
{{- $collector := .Values.tracingCollector -}}
{{- if .Values.tracing.enabled }}
{{- if $collector.nodeAgent }}
- name: HOST_IP
  valueFrom:
    fieldRef:
      fieldPath: status.hostIP
- name: OTEL_EXPORTER_OTLP_ENDPOINT
  value: {{ printf "http://$(HOST_IP):%v" $collector.port | quote }}
{{- end }}
{{- with $collector.headersSecret.name }}
- name: FLEETGATE_TRACING__HEADERS
  valueFrom:
    secretKeyRef:
      name: {{ . }}
      key: {{ $collector.headersSecret.key }}
{{- end }}
{{- end }}
{{- end -}}

{{/* A string made DNS-label safe: lower case, runs of other characters become "-", at most 40 characters. */}}
{{- define "fleetgate.slug" -}}
{{- regexReplaceAll "[^a-z0-9-]+" (lower .) "-" | trunc 40 | trimAll "-" -}}
{{- end -}}

{{/* A model's worker group name: (dict "name" <model name> "settings" <merged settings>). */}}
{{- define "fleetgate.groupName" -}}
{{- default (include "fleetgate.slug" .name) .settings.groupName -}}
{{- end -}}

{{/* Checksum of the rendered config: pods restart when it changes. */}}
{{- define "fleetgate.configChecksum" -}}
{{- include "fleetgate.config" . | sha256sum -}}
{{- end -}}

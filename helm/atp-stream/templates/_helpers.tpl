{{/* Names: <release>-atp-stream, or the release name when it already contains the chart's. */}}
{{- define "atp-stream.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "atp-stream.fullname" -}}
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

{{/* The FlinkDeployment's name, also the Flink cluster id (kubernetes.cluster-id): at most 45
characters, since Kubernetes names of the operator's derived objects add suffixes. */}}
{{- define "atp-stream.flinkName" -}}
{{- include "atp-stream.fullname" . | trunc 45 | trimSuffix "-" }}
{{- end }}

{{- define "atp-stream.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: atp-stream
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{ include "atp-stream.selectorLabels" . }}
{{- end }}

{{- define "atp-stream.selectorLabels" -}}
app.kubernetes.io/name: {{ include "atp-stream.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* Selector labels of one component: flink, api or channel-sync. Call with (list $ "api"). */}}
{{- define "atp-stream.componentSelector" -}}
{{ include "atp-stream.selectorLabels" (index . 0) }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end }}

{{- define "atp-stream.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{- define "atp-stream.redisUrl" -}}
{{- printf "%s://%s:%d/%d" (ternary "rediss" "redis" .Values.redis.tls) .Values.redis.host (int .Values.redis.port) (int .Values.redis.db) }}
{{- end }}

{{/* The Redis URL of the job: with the writer's user name when it has a password Secret (the
password comes from ATP_REDIS_PASSWORD, never from the chart). */}}
{{- define "atp-stream.jobRedisUrl" -}}
{{- $scheme := ternary "rediss" "redis" .Values.redis.tls }}
{{- if .Values.redis.writer.existingSecret }}
{{- printf "%s://%s@%s:%d/%d" $scheme .Values.redis.writer.user .Values.redis.host (int .Values.redis.port) (int .Values.redis.db) }}
{{- else }}
{{- include "atp-stream.redisUrl" . }}
{{- end }}
{{- end }}

{{- define "atp-stream.policyConfigMap" -}}
{{- default (printf "%s-policy" (include "atp-stream.fullname" .)) .Values.policy.existingConfigMap }}
{{- end }}

{{- define "atp-stream.channelsConfigMap" -}}
{{- default (printf "%s-channels" (include "atp-stream.fullname" .)) .Values.channelSync.existingConfigMap }}
{{- end }}

{{/* The pod security settings of the API and channel sync (the image's flink user). */}}
{{- define "atp-stream.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 9999
runAsGroup: 9999
fsGroup: 9999
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{- define "atp-stream.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop: [ALL]
{{- end }}

{{/* An egress rule: ports, and peers when any are given ([] = any address on those ports). */}}
{{- define "atp-stream.egressRule" -}}
- ports:
  {{- range .ports }}
    - port: {{ .port }}
      protocol: {{ default "TCP" .protocol }}
  {{- end }}
  {{- with .peers }}
  to:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}

{{/* The SASL password variable, for containers that talk to Kafka. */}}
{{- define "atp-stream.kafkaSaslEnv" -}}
{{- with .Values.kafka.sasl.existingSecret }}
- name: ATP_KAFKA_SASL_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ . }}
      key: {{ $.Values.kafka.sasl.passwordKey }}
{{- end }}
{{- end }}

{{/* Environment of the Flink pods: plugins, the Redis writer's and Kafka's passwords (from
Secrets), extra variables. Empty when there is none. */}}
{{- define "atp-stream.flinkEnv" -}}
{{- $f := .Values.flink }}
{{- with $f.storage.plugins }}
- name: ENABLE_BUILT_IN_PLUGINS
  value: {{ . | quote }}
{{- end }}
{{- with .Values.redis.writer.existingSecret }}
- name: ATP_REDIS_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ . }}
      key: {{ $.Values.redis.writer.passwordKey }}
{{- end }}
{{- include "atp-stream.kafkaSaslEnv" . }}
{{- with $f.env }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Environment of channel sync: the webhooks' HMAC keys and Kafka's password, from Secrets. */}}
{{- define "atp-stream.channelSyncEnv" -}}
{{- range .Values.channelSync.webhookSecrets }}
- name: {{ .env }}
  valueFrom:
    secretKeyRef:
      name: {{ .existingSecret }}
      key: {{ .key }}
{{- end }}
{{- include "atp-stream.kafkaSaslEnv" . }}
{{- end }}

{{/* The cluster's Flink settings; flink.flinkConfiguration overrides any of them. */}}
{{- define "atp-stream.flinkConfiguration" -}}
{{- $f := .Values.flink }}
{{- $c := dict
  "taskmanager.numberOfTaskSlots" ($f.taskSlots | toString)
  "pipeline.max-parallelism" ($f.maxParallelism | toString)
  "execution.checkpointing.interval" (printf "%d ms" (int $f.checkpointIntervalMs))
  "execution.checkpointing.mode" "EXACTLY_ONCE"
  "execution.checkpointing.externalized-checkpoint-retention" "RETAIN_ON_CANCELLATION"
  "execution.checkpointing.num-retained" "3"
  "state.backend.type" $f.stateBackend
  "restart-strategy.type" "exponential-delay"
}}
{{- /* Checkpoint and savepoint directories under their Flink 2 names and the older names the
operator still reads. */}}
{{- $_ := set $c "execution.checkpointing.dir" $f.storage.checkpointDir }}
{{- $_ = set $c "state.checkpoints.dir" $f.storage.checkpointDir }}
{{- $_ = set $c "execution.checkpointing.savepoint-dir" $f.storage.savepointDir }}
{{- $_ = set $c "state.savepoints.dir" $f.storage.savepointDir }}
{{- if eq $f.stateBackend "rocksdb" }}
{{- $_ = set $c "execution.checkpointing.incremental" "true" }}
{{- end }}
{{- if $f.highAvailability }}
{{- $_ = set $c "high-availability.type" "kubernetes" }}
{{- $_ = set $c "high-availability.storageDir" $f.storage.haDir }}
{{- end }}
{{- /* The image's Python 3.11 runs the driver and the embedded (thread-mode) workers; pemja
parent-first loads its native library once per TaskManager (see the Dockerfile). */}}
{{- $_ = set $c "python.client.executable" "/opt/python/bin/python3" }}
{{- $_ = set $c "python.executable" "/opt/python/bin/python3" }}
{{- $_ = set $c "python.execution-mode" "thread" }}
{{- $_ = set $c "classloader.parent-first-patterns.additional" "pemja." }}
{{- /* Flink's Prometheus reporter on every JobManager and TaskManager (the PodMonitor's target). */}}
{{- $_ = set $c "metrics.reporter.prom.factory.class" "org.apache.flink.metrics.prometheus.PrometheusReporterFactory" }}
{{- $_ = set $c "metrics.reporter.prom.port" (.Values.monitoring.flinkMetricsPort | toString) }}
{{- /* Label values as Flink names them: job_name="atp-stream", as the alert rules and the
dashboard select (by default the reporter turns "-" into "_"). */}}
{{- $_ = set $c "metrics.reporter.prom.filterLabelValueCharacters" "false" }}
{{- range $key, $value := $f.flinkConfiguration }}
{{- $_ = set $c $key ($value | toString) }}
{{- end }}
{{- toYaml $c }}
{{- end }}

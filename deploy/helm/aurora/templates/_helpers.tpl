{{/* Names and labels shared by every template. */}}

{{- define "aurora.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Release-scoped name; pods are <fullname>-N, so it leaves room for "-witness-N". */}}
{{- define "aurora.fullname" -}}
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

{{- define "aurora.selectorLabels" -}}
app.kubernetes.io/name: {{ include "aurora.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "aurora.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "aurora.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "aurora.peersService" -}}
{{- printf "%s-peers" (include "aurora.fullname" .) -}}
{{- end -}}

{{/* The DNS domain of the pods: <pod>.<this>. Exists for not-ready pods too. */}}
{{- define "aurora.peersDomain" -}}
{{- printf "%s.%s.svc.%s" (include "aurora.peersService" .) .Release.Namespace .Values.clusterDomain -}}
{{- end -}}

{{- define "aurora.secretName" -}}
{{- default (printf "%s-secret" (include "aurora.fullname" .)) .Values.secret.existingSecret -}}
{{- end -}}

{{/*
The founders: the first replicaCount pods and the witness. Each founder finds its
own name in this list (node id = pod name), so the binary sets its bootstrap_expect
to the list's length; a pod added later by a scale-up is not listed and joins.
*/}}
{{- define "aurora.seeds" -}}
{{- $full := include "aurora.fullname" . -}}
{{- $domain := include "aurora.peersDomain" . -}}
{{- $port := int .Values.cluster.port -}}
{{- $seeds := list -}}
{{- range $i := until (int .Values.replicaCount) -}}
{{- $seeds = append $seeds (printf "%s-%d.%s:%d" $full $i $domain $port) -}}
{{- end -}}
{{- if .Values.witness.enabled -}}
{{- $seeds = append $seeds (printf "%s-witness-0.%s:%d" $full $domain $port) -}}
{{- end -}}
{{- join "," $seeds -}}
{{- end -}}

{{/* terminationGracePeriodSeconds must outlast grace + drain + leave. */}}
{{- define "aurora.checkShutdown" -}}
{{- $s := .Values.shutdown -}}
{{- $need := add (int $s.shutdownGraceSecs) (int $s.drainTimeoutSecs) (int $s.leaveTimeoutSecs) -}}
{{- if le (int $s.terminationGracePeriodSeconds) (int $need) -}}
{{- fail (printf "shutdown.terminationGracePeriodSeconds (%d) must be above shutdownGraceSecs + drainTimeoutSecs + leaveTimeoutSecs (%d), or the kubelet kills nodes mid-drain" (int $s.terminationGracePeriodSeconds) (int $need)) -}}
{{- end -}}
{{- end -}}

{{- define "aurora.checkMode" -}}
{{- $mode := .Values.cluster.failoverMode -}}
{{- if not (has $mode (list "active_active" "active_passive")) -}}
{{- fail (printf "cluster.failoverMode: expected active_active or active_passive, got %q" $mode) -}}
{{- end -}}
{{- if and (eq $mode "active_passive") .Values.autoscaling.enabled -}}
{{- fail "autoscaling.enabled: in active_passive only the leader serves, so adding pods adds no capacity; set autoscaling.enabled=false" -}}
{{- end -}}
{{- if lt (int .Values.replicaCount) 1 -}}
{{- fail "replicaCount: at least 1" -}}
{{- end -}}
{{- $founders := add (int .Values.replicaCount) (ternary 1 0 .Values.witness.enabled) -}}
{{- if gt (int $founders) 7 -}}
{{- fail (printf "replicaCount (+ witness) = %d founders: at most 7 (max_voters); scale out later instead" (int $founders)) -}}
{{- end -}}
{{- end -}}

{{/*
The pod spec of a node; "witness" true for the witness. Called with
(dict "root" $ "witness" bool).
*/}}
{{- define "aurora.podSpec" -}}
{{- $ := .root -}}
{{- $witness := .witness -}}
{{- $v := $.Values -}}
serviceAccountName: default
automountServiceAccountToken: false
terminationGracePeriodSeconds: {{ $v.shutdown.terminationGracePeriodSeconds }}
{{- with $v.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
securityContext:
  runAsNonRoot: true
  runAsUser: 65532
  runAsGroup: 65532
  fsGroup: 65532
  fsGroupChangePolicy: OnRootMismatch
  seccompProfile:
    type: RuntimeDefault
containers:
  - name: aurora
    image: "{{ $v.image.repository }}:{{ $v.image.tag | default $.Chart.AppVersion }}"
    imagePullPolicy: {{ $v.image.pullPolicy }}
    args:
      - serve
      - --config
      - /etc/aurora/{{ ternary "witness.yaml" "aurora.yaml" $witness }}
      - --listen
      - 0.0.0.0:{{ $v.service.port }}
      # A subdirectory: the node creates it owner-only (0700); the volume's root
      # belongs to the fsGroup.
      - --data-dir
      - /var/lib/aurora/node
      - --log-format
      - {{ $v.logFormat }}
      - --shutdown-grace-secs
      - {{ $v.shutdown.shutdownGraceSecs | quote }}
      - --drain-timeout-secs
      - {{ $v.shutdown.drainTimeoutSecs | quote }}
      - --leave-timeout-secs
      - {{ $v.shutdown.leaveTimeoutSecs | quote }}
    env:
      - name: POD_NAME
        valueFrom: {fieldRef: {fieldPath: metadata.name}}
      - name: POD_IP
        valueFrom: {fieldRef: {fieldPath: status.podIP}}
      - name: CLUSTER_ENABLED
        value: "true"
      # The pod name is stable in a StatefulSet, and so is the node id.
      - name: CLUSTER_NODE_ID
        value: $(POD_NAME)
      # Gossip binds the pod IP (and announces it): no wildcard to resolve.
      - name: CLUSTER_BIND_ADDR
        value: $(POD_IP)
      - name: CLUSTER_BIND_PORT
        value: {{ $v.cluster.port | quote }}
      - name: CLUSTER_SEED_NODES
        value: {{ include "aurora.seeds" $ | quote }}
      - name: CLUSTER_ADVERTISE_URL
        value: "http://$(POD_NAME).{{ include "aurora.peersDomain" $ }}:{{ $v.service.port }}"
      - name: CLUSTER_FAILOVER_MODE
        value: {{ $v.cluster.failoverMode | quote }}
      {{- if $v.cluster.topologyFromPodLabels }}
      - name: CLUSTER_REGION
        valueFrom: {fieldRef: {fieldPath: "metadata.labels['topology.kubernetes.io/region']"}}
      - name: CLUSTER_ZONE
        valueFrom: {fieldRef: {fieldPath: "metadata.labels['topology.kubernetes.io/zone']"}}
      {{- else }}
      - name: CLUSTER_REGION
        value: {{ $v.cluster.region | quote }}
      - name: CLUSTER_ZONE
        value: {{ $v.cluster.zone | quote }}
      {{- end }}
      - name: CLUSTER_SECRET
        valueFrom:
          secretKeyRef: {name: {{ include "aurora.secretName" $ }}, key: {{ $v.secret.clusterSecretKey }}}
      - name: AURORA_ADMIN_TOKEN
        valueFrom:
          secretKeyRef: {name: {{ include "aurora.secretName" $ }}, key: {{ $v.secret.adminTokenKey }}}
      - name: RUST_LOG
        value: {{ $v.rustLog | quote }}
      {{- with $v.extraEnv }}
      {{- toYaml . | nindent 6 }}
      {{- end }}
    {{- with $v.extraEnvFrom }}
    envFrom:
      {{- toYaml . | nindent 6 }}
    {{- end }}
    ports:
      - {name: http, containerPort: {{ $v.service.port }}, protocol: TCP}
      - {name: gossip, containerPort: {{ $v.cluster.port }}, protocol: UDP}
    # Argon2id (about 1-2 s) and opening node.db come before the listener.
    startupProbe:
      httpGet: {path: /health, port: http}
      periodSeconds: {{ $v.probes.startup.periodSeconds }}
      failureThreshold: {{ $v.probes.startup.failureThreshold }}
    livenessProbe:
      httpGet: {path: /health, port: http}
      periodSeconds: {{ $v.probes.liveness.periodSeconds }}
      timeoutSeconds: {{ $v.probes.liveness.timeoutSeconds }}
      failureThreshold: {{ $v.probes.liveness.failureThreshold }}
    # A serving node: ready once synced with a peer (and, in active_passive, only
    # while it holds the lease). The witness serves no clients: alive is enough.
    readinessProbe:
      httpGet: {path: {{ ternary "/health" "/health/ready" $witness }}, port: http}
      periodSeconds: {{ $v.probes.readiness.periodSeconds }}
      timeoutSeconds: {{ $v.probes.readiness.timeoutSeconds }}
      failureThreshold: {{ $v.probes.readiness.failureThreshold }}
    resources:
      {{- toYaml (ternary $v.witness.resources $v.resources $witness) | nindent 6 }}
    securityContext:
      allowPrivilegeEscalation: false
      readOnlyRootFilesystem: true
      capabilities: {drop: [ALL]}
    volumeMounts:
      - {name: data, mountPath: /var/lib/aurora}
      - {name: config, mountPath: /etc/aurora, readOnly: true}
      # SQLite's temporary files.
      - {name: tmp, mountPath: /tmp}
volumes:
  - name: config
    configMap: {name: {{ include "aurora.fullname" $ }}-config}
  - name: tmp
    emptyDir: {sizeLimit: 256Mi}
{{- end -}}

{{- define "aurora.volumeClaim" -}}
- metadata:
    name: data
  spec:
    accessModes:
      {{- toYaml .Values.persistence.accessModes | nindent 6 }}
    {{- with .Values.persistence.storageClassName }}
    storageClassName: {{ . }}
    {{- end }}
    resources:
      requests:
        storage: {{ .Values.persistence.size }}
{{- end -}}

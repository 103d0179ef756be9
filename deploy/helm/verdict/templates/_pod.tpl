{{/* The pod both modes run: one verdict process, locked down; the fast-path DaemonSet adds what BPF needs. */}}
{{- define "verdict.podTemplate" -}}
metadata:
  labels:
    {{- include "verdict.labels" . | nindent 4 }}
  annotations:
    # A config change rolls the pods (verdict reads its config once, at start).
    checksum/config: {{ include "verdict.config" . | sha256sum }}
    {{- with .Values.podAnnotations }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  serviceAccountName: {{ include "verdict.serviceAccountName" . }}
  automountServiceAccountToken: false
  # Longer than server.drainWindowMs + server.shutdownGraceMs, so the kubelet never SIGKILLs a drain.
  terminationGracePeriodSeconds: {{ include "verdict.terminationGracePeriodSeconds" . }}
  {{- if eq .Values.mode "daemonset" }}
  {{- if .Values.daemonset.hostNetwork }}
  hostNetwork: true
  dnsPolicy: ClusterFirstWithHostNet
  {{- end }}
  {{- end }}
  securityContext:
    {{- if include "verdict.fastpath" . }}
    # The kernel fast path loads BPF programs: verdict checks for uid 0 (see docs/kubernetes.md).
    runAsNonRoot: false
    runAsUser: 0
    {{- else }}
    runAsNonRoot: true
    runAsUser: {{ .Values.securityContext.runAsUser }}
    runAsGroup: {{ .Values.securityContext.runAsGroup }}
    fsGroup: {{ .Values.securityContext.runAsGroup }}
    {{- end }}
    seccompProfile: { type: RuntimeDefault }
  {{- with .Values.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.affinity }}
  affinity:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.topologySpreadConstraints }}
  topologySpreadConstraints:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  containers:
    - name: verdict
      image: "{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}"
      imagePullPolicy: {{ .Values.image.pullPolicy }}
      args: [serve, --config, /etc/verdict/verdict.yaml]
      ports:
        - { name: grpc, containerPort: {{ .Values.config.server.grpc.port }}, protocol: TCP }
        - { name: http-ops, containerPort: {{ .Values.config.server.http.port }}, protocol: TCP }
      env:
        - name: NODE_OPTIONS
          value: {{ .Values.nodeOptions | quote }}
      readinessProbe:
        httpGet: { path: /readyz, port: http-ops }
        periodSeconds: 2
        failureThreshold: 1
      livenessProbe:
        httpGet: { path: /healthz, port: http-ops }
        periodSeconds: 10
        failureThreshold: 3
      startupProbe:
        # The first bundle (and, with SPIRE, the first SVID and trust bundles) may take a while.
        httpGet: { path: /healthz, port: http-ops }
        periodSeconds: 2
        failureThreshold: {{ .Values.startupProbe.failureThreshold }}
      resources:
        {{- toYaml .Values.resources | nindent 8 }}
      securityContext:
        allowPrivilegeEscalation: false
        readOnlyRootFilesystem: true
        {{- if include "verdict.fastpath" . }}
        runAsNonRoot: false
        capabilities:
          drop: [ALL]
          # Only what the kernel fast path needs: load programs and maps (BPF), attach them to the
          # cgroup (NET_ADMIN), read kernel counters for /metrics (PERFMON).
          add: [BPF, NET_ADMIN, PERFMON]
        {{- else }}
        runAsNonRoot: true
        capabilities:
          drop: [ALL]
        {{- end }}
      volumeMounts:
        - { name: config, mountPath: /etc/verdict, readOnly: true }
        - { name: tmp, mountPath: /tmp }
        {{- if .Values.spire.enabled }}
        - { name: spire-agent-socket, mountPath: {{ .Values.spire.mountPath }}, readOnly: true }
        {{- end }}
        {{- if eq .Values.mode "daemonset" }}
        - { name: verdict-socket, mountPath: {{ .Values.daemonset.socketDir }} }
        {{- end }}
        {{- if include "verdict.fastpath" . }}
        - { name: bpffs, mountPath: /sys/fs/bpf }
        - { name: cgroup, mountPath: /sys/fs/cgroup, readOnly: true }
        {{- end }}
  volumes:
    - name: config
      configMap: { name: {{ include "verdict.fullname" . }} }
    - name: tmp
      emptyDir: { medium: Memory, sizeLimit: 64Mi }
    {{- if .Values.spire.enabled }}
    - name: spire-agent-socket
      {{- if eq .Values.spire.socketSource "csi" }}
      # The SPIFFE CSI driver mounts the node's SPIRE agent socket (github.com/spiffe/spiffe-csi).
      csi: { driver: csi.spiffe.io, readOnly: true }
      {{- else }}
      hostPath: { path: {{ .Values.spire.hostPath }}, type: Directory }
      {{- end }}
    {{- end }}
    {{- if eq .Values.mode "daemonset" }}
    - name: verdict-socket
      # Shared with the node's Envoys: they dial verdict over this Unix socket.
      hostPath: { path: {{ .Values.daemonset.hostSocketDir }}, type: DirectoryOrCreate }
    {{- end }}
    {{- if include "verdict.fastpath" . }}
    - name: bpffs
      hostPath: { path: /sys/fs/bpf, type: Directory }
    - name: cgroup
      hostPath: { path: /sys/fs/cgroup, type: Directory }
    {{- end }}
{{- end -}}

#!/usr/bin/env bash
# benches/waypoint-bench/manifests.sh — the waypoint-bench scenario as our config: Service
# `reviews` (VIP $SERVICE_VIP) bound to waypoint default/waypoint, a VirtualService splitting it
# 90/10 over reviews-v1 / reviews-v2 (plaintext pods at $UPSTREAM_V1 / $UPSTREAM_V2), and an
# ALLOW AuthorizationPolicy admitting only $CLIENT_PRINCIPAL — the anchor's RBAC and route.
# Writes the manifests to stdout.
set -euo pipefail
: "${UPSTREAM_V1:?}" "${UPSTREAM_V2:?}" "${CLIENT_PRINCIPAL:?}"
vip=${SERVICE_VIP:-10.96.0.10:9080}
principal=${CLIENT_PRINCIPAL#spiffe://}
pod() { # pod NAME IP:PORT
  cat <<YAML
---
apiVersion: v1
kind: Service
metadata: {name: $1, namespace: default}
spec:
  ports: [{name: http, port: ${vip##*:}, targetPort: ${2##*:}}]
  selector: {app: $1}
---
apiVersion: v1
kind: Pod
metadata: {name: $1-0, namespace: default, labels: {app: $1, istio.io/dataplane-mode: none}}
spec: {serviceAccountName: $1, containers: [{name: app, image: bench}]}
status: {podIP: ${2%:*}}
YAML
}
cat <<YAML
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: waypoint, namespace: default}
spec: {gatewayClassName: istio-waypoint, listeners: [{name: mesh, port: 15008, protocol: HBONE}]}
---
apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: default, labels: {istio.io/use-waypoint: waypoint}}
spec: {clusterIP: ${vip%:*}, ports: [{name: http, port: ${vip##*:}}]}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews]
  http:
  - route:
    - {destination: {host: reviews-v1}, weight: 90}
    - {destination: {host: reviews-v2}, weight: 10}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: reviews-viewer, namespace: default}
spec:
  targetRefs: [{kind: Service, group: "", name: reviews}]
  action: ALLOW
  rules: [{from: [{source: {principals: ["$principal"]}}]}]
YAML
pod reviews-v1 "$UPSTREAM_V1"
pod reviews-v2 "$UPSTREAM_V2"

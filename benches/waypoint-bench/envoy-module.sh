#!/usr/bin/env bash
# benches/waypoint-bench/envoy-module.sh — stock Envoy 1.40 with our module under
# ../shared/bench/waypoint-bench.sh's waypoint contract: renders our config for the bench
# scenario, generates the bootstrap with `waypoint bootstrap` (the product's own generator) and
# execs Envoy with $WAYPOINT_CONCURRENCY workers.
# Needs HOST_BIN (release `waypoint`), MODULE_DIR (holding libwaypoint.so) and ENVOY_BIN;
# WASM_FILE (a waypoint_wasm.wasm) runs the proxy-wasm filter instead of the module.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
: "${CERT_DIR:?}" "${RUN_DIR:?}" "${HOST_BIN:?}" "${MODULE_DIR:?}" "${ENVOY_BIN:?}"
cfg=$RUN_DIR/module-config certs=$RUN_DIR/module-certs
mkdir -p "$cfg" "$certs"
"$here/manifests.sh" >"$cfg/bench.yaml"
# `waypoint bootstrap` reads waypoint.pem / waypoint-key.pem / ca.pem from one directory.
ln -sf "$CERT_DIR/waypoint.crt" "$certs/waypoint.pem"
ln -sf "$CERT_DIR/waypoint.key" "$certs/waypoint-key.pem"
ln -sf "$CERT_DIR/root.pem" "$certs/ca.pem"
# WASM_FILE set: the proxy-wasm filter (filter/wasm) in the module's place (`--filter wasm`).
filter=()
[ -z "${WASM_FILE:-}" ] || filter=(--filter wasm --wasm "$WASM_FILE")
"$HOST_BIN" bootstrap --config "$cfg" --waypoint default/waypoint --certs "$certs" \
  --trust-domain "${TRUST_DOMAIN:-cluster.local}" "${filter[@]}" >"$RUN_DIR/envoy-module.yaml"
export ENVOY_DYNAMIC_MODULES_SEARCH_PATH=$MODULE_DIR
exec "$ENVOY_BIN" -c "$RUN_DIR/envoy-module.yaml" --concurrency "${WAYPOINT_CONCURRENCY:-1}" \
  --disable-hot-restart --log-level "${WAYPOINT_LOG_LEVEL:-warn}"

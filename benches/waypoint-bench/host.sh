#!/usr/bin/env bash
# benches/waypoint-bench/host.sh — the standalone host under ../shared/bench/waypoint-bench.sh's
# waypoint contract (see that README): renders our config for the bench scenario and execs
# `waypoint run` on $WAYPOINT_ADDR:$WAYPOINT_PORT with $WAYPOINT_CONCURRENCY threads.
# Needs HOST_BIN (the release `waypoint` binary); run.sh sets it.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
: "${CERT_DIR:?}" "${RUN_DIR:?}" "${HOST_BIN:?}"
mkdir -p "$RUN_DIR/host-config"
"$here/manifests.sh" >"$RUN_DIR/host-config/bench.yaml"
exec "$HOST_BIN" run --config "$RUN_DIR/host-config" --waypoint default/waypoint \
  --cert "$CERT_DIR/waypoint.crt" --key "$CERT_DIR/waypoint.key" --roots "$CERT_DIR/root.pem" \
  --hbone-addr "${WAYPOINT_ADDR:-127.0.0.1}:${WAYPOINT_PORT:-15008}" \
  --ready-addr 127.0.0.1:15021 --stats-addr 127.0.0.1:15020 --admin-addr 127.0.0.1:15000 \
  --threads "${WAYPOINT_CONCURRENCY:-1}"

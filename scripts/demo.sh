#!/usr/bin/env bash
# `make demo`: a complete local mesh in one process — dev CA, bookinfo backends behind HBONE on
# their pod IPs (127.10.0.x:15008), the waypoint, workload clients — with a per-phase summary.
set -euo pipefail
cd "$(dirname "$0")/.."
CARGO=${CARGO:-cargo}
echo "make demo: building the waypoint (debug)..."
"$CARGO" build -q -p waypoint-cli --bin waypoint
TARGET_DIR=${CARGO_TARGET_DIR:-$("$CARGO" metadata --format-version 1 --no-deps \
  | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')}
exec "$TARGET_DIR/debug/waypoint" demo --config examples/bookinfo "$@"

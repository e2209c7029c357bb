#!/usr/bin/env bash
# `make demo`: a complete local mesh in one process — dev CA, bookinfo backends behind HBONE on
# their pod IPs (127.10.0.x:15008, Linux only), the waypoint, workload clients — with a
# per-phase summary. Arguments go to `waypoint demo` (e.g. --mesh-port 25008).
set -euo pipefail
cd "$(dirname "$0")/.."
CARGO=${CARGO:-cargo}
if ! command -v "$CARGO" >/dev/null; then
  echo "make demo: cargo not found: install Rust with rustup (https://rustup.rs) first" >&2
  exit 1
fi
TARGET_DIR=${CARGO_TARGET_DIR:-$("$CARGO" metadata --format-version 1 --no-deps \
  | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')}
if [ ! -x "$TARGET_DIR/debug/waypoint" ]; then
  echo "make demo: building the waypoint (debug); the first build takes several minutes..."
fi
# cargo's own progress (Compiling ... lines) stays visible on stderr.
"$CARGO" build -p waypoint-cli --bin waypoint
exec "$TARGET_DIR/debug/waypoint" demo --config examples/bookinfo "$@"

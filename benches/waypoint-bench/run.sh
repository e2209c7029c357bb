#!/usr/bin/env bash
# benches/waypoint-bench/run.sh — our waypoints against the anchor (stock Envoy 1.40 set up as
# Istio's waypoint) with the team's shared harness, ../shared/bench/waypoint-bench.sh (its
# README explains every figure). One interleaved run per waypoint, each `--with-anchor`, so the
# ratios come from the same run:
#   host          the standalone host (`waypoint run`, release build)
#   envoy-module  stock Envoy + libwaypoint.so with the bootstrap from `waypoint bootstrap`
# Usage: benches/waypoint-bench/run.sh [--only host|envoy-module] [waypoint-bench.sh options...]
#   e.g. run.sh --modes sat,rate --rounds 5
# Environment: WAYPOINT_BENCH (path of waypoint-bench.sh; default ../shared/bench next to the
# repository), ENVOY_BIN (default: scripts/install-envoy.sh), CARGO_TARGET_DIR.
# Needs root (the harness's private network namespace). Results: the harness's --out dirs,
# printed at the end; copy the tables into benches/waypoint-bench/results-<date>.md.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
bench=${WAYPOINT_BENCH:-$repo/../shared/bench/waypoint-bench.sh}
if [ ! -x "$bench" ]; then
  echo "SKIP: $bench not present (the shared bench harness is not part of the product)" >&2
  exit 0
fi
only=""
if [ "${1:-}" = "--only" ]; then only=$2; shift 2; fi
export ENVOY_BIN=${ENVOY_BIN:-$("$repo/scripts/install-envoy.sh")}
target=${CARGO_TARGET_DIR:-$repo/target}
# Built one at a time: both crates name their library `waypoint`.
(cd "$repo" && cargo build --release -q -p waypoint-cli && cargo build --release -q -p waypoint-envoy)
export HOST_BIN=$target/release/waypoint MODULE_DIR=$target/release
for wp in host envoy-module; do
  [ -z "$only" ] || [ "$only" = "$wp" ] || continue
  out=${TMPDIR:-/tmp}/wpbench/ours-$wp-$(date -u +%Y%m%dT%H%M%S)
  "$bench" --waypoint "exec \"$here/$wp.sh\"" --label "$wp" --with-anchor --out "$out" "$@"
  echo "== $wp: $out/table.md"
  cat "$out/table.md"
  python3 "$here/paired.py" "$out/results.jsonl"
done

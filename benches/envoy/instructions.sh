#!/usr/bin/env bash
# benches/envoy/instructions.sh — Envoy's instructions per request for the plain / native /
# module variants of run.sh, counted by valgrind's callgrind. Unlike wrk's req/s on a shared VM,
# instruction counts repeat to within a fraction of a percent, so small per-request costs of the
# module show up (they drown in the noise of run.sh).
#
#   curl (one keep-alive connection, N requests) -> Envoy under callgrind :18000 -> nginx
#
# Per variant: start Envoy under `valgrind --tool=callgrind --instr-atstart=no`, send WARM
# requests, switch instrumentation on, send N requests, switch it off and dump. The figure is
# the dump's total Ir ÷ N (curl and nginx are not counted). Prints a Markdown table and writes
# the top inclusive costs of the module's functions per variant under the scratch dir.
#
# Options: --requests N [2000]  --warm N [200]  --variants "plain native module" (or wasm:
#                       the module's config with the proxy-wasm filter, filter/wasm, on V8 in
#                       its place and config/ inline, rendered by wasm-config.py)
#          --scratch DIR [${TMPDIR:-/tmp}/waypoint-envoy-instr]  --no-build
# Environment: WAYPOINT_ENVOY, CARGO_TARGET_DIR (as run.sh), WAYPOINT_WASM (a prebuilt .wasm).
set -euo pipefail
# V8 compiles the .wasm (Liftoff, then TurboFan) under valgrind before Envoy listens.
case "$*" in *wasm*) export WAIT_PORT_TRIES=${WAIT_PORT_TRIES:-9000} ;; esac

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
N=2000 WARM=200 VARIANTS="plain native module" BUILD=1
SCRATCH=${TMPDIR:-/tmp}/waypoint-envoy-instr
while [ $# -gt 0 ]; do
  case $1 in
    --requests) N=$2; shift ;;
    --warm) WARM=$2; shift ;;
    --variants) VARIANTS=$2; shift ;;
    --scratch) SCRATCH=$2; shift ;;
    --no-build) BUILD=0 ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "instructions.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
log() { echo "[$(date -u +%T)] $*" >&2; }
. "$(dirname "${BASH_SOURCE[0]}")/../callgrind-lib.sh"

command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || apt-get install -y nginx-light >/dev/null
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
ENVOY=${WAYPOINT_ENVOY:-}
if [ -z "$ENVOY" ]; then ENVOY=$("$REPO/scripts/install-envoy.sh"); fi
TARGET=${CARGO_TARGET_DIR:-$REPO/target}
if [ "$BUILD" = 1 ]; then (cd "$REPO" && cargo build --release -q -p waypoint-envoy); fi
MODULE_DIR=$TARGET/release
WASM=${WAYPOINT_WASM:-$TARGET/envoy-module/wasm32-wasip1/release/waypoint_wasm.wasm}
case " $VARIANTS " in *" wasm "*)
  [ "$BUILD" = 0 ] || (cd "$REPO" && CARGO_TARGET_DIR=$TARGET/envoy-module cargo build --release -q --target wasm32-wasip1 -p waypoint-wasm) ;;
esac

RUN=$SCRATCH/run-$(date -u +%Y%m%dT%H%M%S)
mkdir -p "$RUN/nginx-tmp"
ENVOY_PID="" NGINX_PID=""
cleanup() { [ -z "$ENVOY_PID" ] || stop_pid "$ENVOY_PID"; [ -z "$NGINX_PID" ] || stop_pid "$NGINX_PID"; }
trap cleanup EXIT

. "$HERE/upstream.sh"
write_nginx_conf "$RUN"
"$NGINX" -c "$RUN/nginx.conf" >"$RUN/nginx.log" 2>&1 &
NGINX_PID=$!
wait_port 18082 "$NGINX_PID" "$RUN/nginx.log"

HOST_HDR="reviews.default.svc.cluster.local:9080"
ALLOWED="spiffe://cluster.local/ns/default/sa/productpage"
send() { # send COUNT: COUNT requests on one keep-alive connection; prints the number of 200s
  local urls=() i
  for i in $(seq "$1"); do urls+=(http://127.0.0.1:18000/); done
  curl -s -o /dev/null -m 600 -H "host: $HOST_HDR" -H "x-bench-principal: $ALLOWED" -w '%{http_code}\n' "${urls[@]}" | grep -cx 200 || true
}

declare -A IR NS
for v in $VARIANTS; do
  out=$RUN/callgrind-$v.out
  config=$HERE/envoy-$v.yaml
  if [ "$v" = wasm ]; then
    config=$RUN/envoy-wasm.yaml
    python3 "$HERE/wasm-config.py" "$HERE/envoy-module.yaml" "$WASM" "$HERE/config" >"$config"
  fi
  (cd "$REPO" && ENVOY_DYNAMIC_MODULES_SEARCH_PATH=$MODULE_DIR exec valgrind --tool=callgrind \
    --instr-atstart=no --callgrind-out-file="$out" "$ENVOY" -c "$config" \
    --concurrency 1 --disable-hot-restart --log-level warn --base-id $((RANDOM % 1000 + 100)) \
    >"$RUN/envoy-$v.log" 2>&1) &
  ENVOY_PID=$!
  wait_port 18000 "$ENVOY_PID" "$RUN/envoy-$v.log"
  ok=$(send "$WARM"); log "$v: warm-up $ok/$WARM ok"
  callgrind_control -i on "$ENVOY_PID" >/dev/null
  ok=$(send "$N")
  callgrind_control -i off "$ENVOY_PID" >/dev/null
  callgrind_control -d "$ENVOY_PID" >/dev/null
  stop_pid "$ENVOY_PID"; ENVOY_PID=""
  [ "$ok" = "$N" ] || { log "$v: only $ok of $N requests returned 200"; exit 1; }
  # Sum the totals of every dump part of this run.
  total=$(callgrind_total "$out")
  IR[$v]=$total NS[$v]=$N
  callgrind_annotate --inclusive=yes "$out"* 2>/dev/null | grep -E 'waypoint' | head -25 >"$RUN/top-$v.txt" || true
  log "$v: $((total / N)) instructions per request"
done

instr_table variant native module
if [ -n "${IR[wasm]:-}" ] && [ -n "${IR[module]:-}" ]; then
  awk -v b="${IR[module]}" -v o="${IR[wasm]}" -v nb="${NS[module]}" -v no="${NS[wasm]}" \
    'BEGIN { printf "wasm/module instructions per request: %.3f\n", (o / no) / (b / nb) }'
fi
echo "(requests per variant: $N after $WARM warm-up; scratch: $RUN)"

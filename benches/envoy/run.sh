#!/usr/bin/env bash
# benches/envoy/run.sh — Envoy 1.40 with no filter vs the same decisions in native Envoy config
# vs our dynamic module (issue 3 §6). All on 127.0.0.1, plaintext HTTP/1.1, one upstream.
#
#   wrk (-t1 -cCONNS, cpu 0) -> Envoy :18000 (--concurrency 1, cpu 1) -> nginx :18081/:18082 (cpu 0)
#
# Variants (fresh Envoy per run; the order rotates every round):
#   plain   envoy-plain.yaml:  router only, one cluster
#   native  envoy-native.yaml: set_filter_state (principal from x-bench-principal) + RBAC ALLOW on
#           that principal + weighted_clusters v1 90 / v2 10
#   module  envoy-module.yaml: set_filter_state as above + libwaypoint.so deciding from
#           config/waypoint.yaml (Service reviews, VirtualService 90/10, ALLOW AuthorizationPolicy)
# Before measuring, native and module must pass: 400 requests all 200 with 4-18 % on v2, and a
# request with another principal gets 403. Each run: warm-up, then DURATION s of `wrk --latency`;
# Envoy's CPU is read from /proc/PID/stat around the measured window.
# Output: the Markdown table on stdout and in benches/envoy/results-<UTC date>[-N].md (--out FILE),
# raw wrk output under the scratch dir.
#
# Options (defaults in brackets): --rounds N [5]  --duration S [10]  --warmup S [2]  --conns N [32]
#   --envoy-cpus LIST [1]  --load-cpus LIST [0]  --no-pin  --no-build  --out FILE
#   --scratch DIR [${TMPDIR:-/tmp}/waypoint-envoy-bench]
# Environment: WAYPOINT_ENVOY (envoy binary; default: scripts/install-envoy.sh),
#   CARGO_TARGET_DIR (where `cargo build --release -p waypoint-envoy` puts libwaypoint.so).
# Installs wrk and nginx-light with apt-get when they are missing (needs root then).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)

ROUNDS=5 DURATION=10 WARMUP=2 CONNS=32 ENVOY_CPUS=1 LOAD_CPUS=0 PIN=1 BUILD=1 OUT=""
SCRATCH=${TMPDIR:-/tmp}/waypoint-envoy-bench
while [ $# -gt 0 ]; do
  case $1 in
    --rounds) ROUNDS=$2; shift ;;
    --duration) DURATION=$2; shift ;;
    --warmup) WARMUP=$2; shift ;;
    --conns) CONNS=$2; shift ;;
    --envoy-cpus) ENVOY_CPUS=$2; shift ;;
    --load-cpus) LOAD_CPUS=$2; shift ;;
    --no-pin) PIN=0 ;;
    --no-build) BUILD=0 ;;
    --out) OUT=$2; shift ;;
    --scratch) SCRATCH=$2; shift ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "run.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
if [ -z "$OUT" ]; then # never over an earlier run's file: results-<date>.md, then -2, -3, ...
  OUT=$HERE/results-$(date -u +%Y-%m-%d).md n=2
  while [ -e "$OUT" ]; do OUT=$HERE/results-$(date -u +%Y-%m-%d)-$n.md n=$((n + 1)); done
fi
log() { echo "[$(date -u +%T)] $*" >&2; }

# ------------------------------------------------------------------ tools
need_apt=()
command -v wrk >/dev/null || need_apt+=(wrk)
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || need_apt+=(nginx-light)
if [ ${#need_apt[@]} -gt 0 ]; then
  log "installing ${need_apt[*]} with apt-get"
  apt-get install -y "${need_apt[@]}" >/dev/null 2>&1 ||
    { apt-get update >/dev/null && apt-get install -y "${need_apt[@]}" >/dev/null; }
fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
ENVOY=${WAYPOINT_ENVOY:-}
if [ -z "$ENVOY" ]; then ENVOY=$("$REPO/scripts/install-envoy.sh"); fi
[ -x "$ENVOY" ] || { echo "run.sh: envoy not executable: $ENVOY" >&2; exit 2; }
TARGET=${CARGO_TARGET_DIR:-$REPO/target}
if [ "$BUILD" = 1 ]; then
  log "cargo build --release -p waypoint-envoy"
  (cd "$REPO" && cargo build --release -q -p waypoint-envoy)
fi
MODULE_DIR=$TARGET/release
[ -f "$MODULE_DIR/libwaypoint.so" ] || { echo "run.sh: $MODULE_DIR/libwaypoint.so missing" >&2; exit 2; }
if [ "$PIN" = 1 ]; then TS_ENVOY=(taskset -c "$ENVOY_CPUS") TS_LOAD=(taskset -c "$LOAD_CPUS")
else TS_ENVOY=() TS_LOAD=(); ENVOY_CPUS=any LOAD_CPUS=any; fi

# ------------------------------------------------------------------ processes we start
RUN=$SCRATCH/run-$(date -u +%Y%m%dT%H%M%S)
mkdir -p "$RUN/nginx-tmp"
ENVOY_PID="" NGINX_PID=""
stop_pid() { # TERM, wait up to 5 s, KILL
  local p=$1 i
  kill -TERM "$p" 2>/dev/null || return 0
  for i in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$p" 2>/dev/null || true
  wait "$p" 2>/dev/null || true
}
cleanup() {
  [ -z "$ENVOY_PID" ] || stop_pid "$ENVOY_PID"
  [ -z "$NGINX_PID" ] || stop_pid "$NGINX_PID"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
listening() { ss -ltnH "sport = :$1" | grep -q .; }
wait_port() { # wait_port PORT PID LOG
  local i
  for i in $(seq 200); do
    listening "$1" && return 0
    kill -0 "$2" 2>/dev/null || break
    sleep 0.1
  done
  log "nothing listening on :$1; log tail:"; tail -20 "$3" >&2; return 1
}
for p in 18000 18081 18082 18901; do
  if listening $p; then echo "run.sh: port $p is in use" >&2; exit 2; fi
done

# ------------------------------------------------------------------ upstream: nginx, one worker
. "$HERE/upstream.sh"
write_nginx_conf "$RUN"
"${TS_LOAD[@]}" "$NGINX" -c "$RUN/nginx.conf" >"$RUN/nginx.log" 2>&1 &
NGINX_PID=$!
wait_port 18081 "$NGINX_PID" "$RUN/nginx.log"
wait_port 18082 "$NGINX_PID" "$RUN/nginx.log"

# ------------------------------------------------------------------ envoy per variant
HOST_HDR="reviews.default.svc.cluster.local:9080"
ALLOWED="spiffe://cluster.local/ns/default/sa/productpage"
DENIED="spiffe://cluster.local/ns/default/sa/ratings"
start_envoy() { # start_envoy VARIANT
  local logf=$RUN/envoy-$1.log
  echo "=== $(date -u +%T)" >>"$logf"
  (cd "$REPO" && ENVOY_DYNAMIC_MODULES_SEARCH_PATH=$MODULE_DIR exec "${TS_ENVOY[@]}" "$ENVOY" \
    -c "$HERE/envoy-$1.yaml" --concurrency 1 --disable-hot-restart --log-level warn \
    --base-id $((RANDOM % 1000 + 100)) >>"$logf" 2>&1) &
  ENVOY_PID=$!
  wait_port 18000 "$ENVOY_PID" "$logf"
}
stop_envoy() { [ -z "$ENVOY_PID" ] || stop_pid "$ENVOY_PID"; ENVOY_PID=""; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

check_variant() { # check_variant VARIANT: split and RBAC must behave (module and native only)
  local v=$1 urls=() i out n1 n2 ok code
  for i in $(seq 400); do urls+=(http://127.0.0.1:18000/); done
  out=$(curl -s -m 60 -H "host: $HOST_HDR" -H "x-bench-principal: $ALLOWED" -w '%{http_code}\n' "${urls[@]}" || true)
  n1=$(grep -c '^reviews-v1 ' <<<"$out" || true); n2=$(grep -c '^reviews-v2 ' <<<"$out" || true)
  ok=$(grep -cx 200 <<<"$out" || true)
  code=$(curl -s -o /dev/null -m 10 -H "host: $HOST_HDR" -H "x-bench-principal: $DENIED" \
    -w '%{http_code}' http://127.0.0.1:18000/ || true)
  log "check $v: 400 requests -> 200s=$ok v1=$n1 v2=$n2; other principal -> HTTP $code"
  CHECKS+="| $v | $ok/400 | $n1 / $n2 | $code |"$'\n'
  if [ "$ok" != 400 ] || [ "$n2" -lt 16 ] || [ "$n2" -gt 72 ] || [ "$code" != 403 ]; then
    log "check failed for $v (see $RUN/envoy-$v.log)"; return 1
  fi
}

to_ms() { # wrk latency "1.23ms" / "850.00us" / "1.02s" -> ms
  awk -v x="$1" 'BEGIN { n = x + 0; if (x ~ /us$/) n /= 1000; else if (x ~ /ms$/) n += 0; else if (x ~ /s$/) n *= 1000; printf "%.3f", n }'
}
declare -A RPS P99 CPU NON2XX
# wrk: "Host" must be capitalised, or wrk adds its own Host header next to ours.
run_variant() { # run_variant VARIANT ROUND
  local v=$1 r=$2 out=$RUN/wrk-r$2-$1.txt t0 t1 rps p99 non2xx
  start_envoy "$v"
  curl -s -o /dev/null -H "host: $HOST_HDR" -H "x-bench-principal: $ALLOWED" http://127.0.0.1:18000/
  "${TS_LOAD[@]}" wrk -t1 -c"$CONNS" -d"${WARMUP}s" -H "Host: $HOST_HDR" \
    -H "x-bench-principal: $ALLOWED" http://127.0.0.1:18000/ >/dev/null
  t0=$(cpu_ticks "$ENVOY_PID")
  "${TS_LOAD[@]}" wrk -t1 -c"$CONNS" -d"${DURATION}s" --latency -H "Host: $HOST_HDR" \
    -H "x-bench-principal: $ALLOWED" http://127.0.0.1:18000/ >"$out"
  t1=$(cpu_ticks "$ENVOY_PID")
  stop_envoy
  rps=$(awk '/^Requests\/sec:/ {print $2}' "$out")
  p99=$(to_ms "$(awk '$1 == "99%" {print $2}' "$out")")
  non2xx=$(awk '/Non-2xx/ {print $NF}' "$out")
  NON2XX[$v,$r]=${non2xx:-0}
  [ -z "$non2xx" ] || log "WARNING: $v round $r had $non2xx non-2xx responses"
  # Envoy CPU µs per request (ticks are 10 ms)
  CPU[$v,$r]=$(awk -v a="$t0" -v b="$t1" -v rps="$rps" -v d="$DURATION" \
    'BEGIN { printf "%.0f", (b - a) * 10000 / (rps * d) }')
  RPS[$v,$r]=$rps P99[$v,$r]=$p99
  log "round $r $v: ${rps} req/s, p99 ${p99} ms, envoy ${CPU[$v,$r]} µs CPU/req"
}
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR] = $1} END { if (NR % 2) print a[(NR + 1) / 2]; else printf "%.3f\n", (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
range() { printf '%s\n' "$@" | sort -g | awk 'NR == 1 {lo = $1} {hi = $1} END {print lo "–" hi}'; }

# ------------------------------------------------------------------ main
VARIANTS=(plain native module)
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
log "scratch: $RUN; envoy: $ENVOY; module: $MODULE_DIR/libwaypoint.so; load average $LOAD_BEFORE"
CHECKS=""
for v in native module; do start_envoy "$v"; check_variant "$v" || { stop_envoy; exit 1; }; stop_envoy; done
for ((r = 1; r <= ROUNDS; r++)); do
  for ((k = 0; k < 3; k++)); do run_variant "${VARIANTS[$(((r - 1 + k) % 3))]}" "$r"; done
done
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)

declare -A MRPS MP99
table=$'| variant | req/s median [min–max] | p99 ms median [min–max] | Envoy CPU µs/req median |\n|---|---|---|---|\n'
for v in "${VARIANTS[@]}"; do
  rs=() ps=() cs=()
  for ((r = 1; r <= ROUNDS; r++)); do rs+=("${RPS[$v,$r]}"); ps+=("${P99[$v,$r]}"); cs+=("${CPU[$v,$r]}"); done
  MRPS[$v]=$(median "${rs[@]}") MP99[$v]=$(median "${ps[@]}")
  table+="| $v | ${MRPS[$v]} [$(range "${rs[@]}")] | ${MP99[$v]} [$(range "${ps[@]}")] | $(median "${cs[@]}") |"$'\n'
done
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", a / b }'; }
rounds=$'| round | plain req/s | native req/s | module req/s | module/native req/s | module/native p99 | Envoy CPU µs/req (plain/native/module) | non-2xx (plain/native/module) |\n|---|---|---|---|---|---|---|---|\n'
for ((r = 1; r <= ROUNDS; r++)); do
  rounds+="| $r | ${RPS[plain,$r]} | ${RPS[native,$r]} | ${RPS[module,$r]} | $(ratio "${RPS[module,$r]}" "${RPS[native,$r]}") | $(ratio "${P99[module,$r]}" "${P99[native,$r]}") | ${CPU[plain,$r]}/${CPU[native,$r]}/${CPU[module,$r]} | ${NON2XX[plain,$r]}/${NON2XX[native,$r]}/${NON2XX[module,$r]} |"$'\n'
done
RATIO_RPS=$(ratio "${MRPS[module]}" "${MRPS[native]}")
RATIO_P99=$(ratio "${MP99[module]}" "${MP99[native]}")
RATIO_PLAIN=$(ratio "${MRPS[module]}" "${MRPS[plain]}")
declare -A MCPU
for v in "${VARIANTS[@]}"; do
  cs=(); for ((r = 1; r <= ROUNDS; r++)); do cs+=("${CPU[$v,$r]}"); done
  MCPU[$v]=$(median "${cs[@]}")
done
RATIO_CPU=$(ratio "${MCPU[native]}" "${MCPU[module]}")
TARGET_MET=$(awk -v x="$RATIO_RPS" 'BEGIN { print (x >= 0.97) ? "met" : "NOT met" }')

report=$(
  cat <<EOF
# Envoy module benchmark, $(date -u +'%Y-%m-%d %H:%M UTC')

Command: \`benches/envoy/run.sh --rounds $ROUNDS --duration $DURATION --conns $CONNS\` (see benches/README.md).

**module/native req/s = $RATIO_RPS** (target ≥ 0.97: $TARGET_MET), module/native p99 = $RATIO_P99,
module/plain req/s = $RATIO_PLAIN; native/module Envoy CPU per request = $RATIO_CPU
(the req/s ratio Envoy would reach if it alone limited throughput).

$table
Per round (the variant order rotates every round; a fresh Envoy for every run):

$rounds
Checks before measuring (400 requests with the allowed principal; one with another principal):

| variant | 200s | v1 / v2 | other principal |
|---|---|---|---|
$CHECKS
Setup: Envoy $("$ENVOY" --version 2>/dev/null | grep -o '[0-9]*\.[0-9]*\.[0-9]*/[A-Za-z]*/[A-Z]*' | head -1),
\`--concurrency 1\` on cpu $ENVOY_CPUS; wrk $(wrk -v 2>&1 | awk 'NR == 1 {print $2}') (\`-t1 -c$CONNS\`, ${WARMUP} s warm-up +
${DURATION} s measured) and nginx $("$NGINX" -v 2>&1 | sed 's|.*/||') (one worker, 128-byte body) on cpu $LOAD_CPUS;
plaintext HTTP/1.1 keep-alive on 127.0.0.1; Host \`$HOST_HDR\`. Machine: $(nproc) CPUs,
$(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo), kernel $(uname -r). Load average
before/after: $LOAD_BEFORE / $LOAD_AFTER (other processes on the machine share these CPUs, so
only the ratios between variants of this run mean anything).
Envoy CPU µs/req = Envoy's utime+stime over the measured window (10 ms ticks) ÷ requests.
EOF
)
echo "$report" | tee "$OUT"
log "written: $OUT (raw wrk output: $RUN)"

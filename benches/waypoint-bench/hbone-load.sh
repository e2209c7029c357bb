#!/usr/bin/env bash
# benches/waypoint-bench/hbone-load.sh — the host and the anchor driven by our HBONE load
# generator (`hbone-load`, benches/src/bin) instead of wrk + a client Envoy: one HBONE
# connection (or --conns) with N CONNECT streams, exactly ztunnel's shape, so that the load side
# is not the limit (the harness's client Envoy tops out near 12-13k req/s on cpu 0).
# Same layout as ../shared/bench/waypoint-bench.sh, whose pieces it reuses unchanged: its
# nginx upstream config, its anchor (anchor-waypoint.sh) and the waypoint contract (our host
# through host.sh). The waypoint runs alone on cpu 1; hbone-load and nginx share cpu 0.
# Variants are interleaved round by round (order rotating); hbone-load-paired.py prints the
# medians and the per-round host/anchor ratios.
# Usage: benches/waypoint-bench/hbone-load.sh [--variants host,anchor] [--modes sat,rate]
#          (variant host-NAME: the host binary in $HOST_BIN_NAME, e.g. an older build)
#          [--rounds 3] [--duration 10] [--warmup 2] [--conns 1] [--streams 64]
#          [--rate 1000] [--rate-streams 16] [--out DIR] [--no-build]
# Needs root for a private network namespace (else the host's loopback, port 15008 must be
# free), nginx, openssl, taskset, ss, and ../shared/bench (else SKIP). ENVOY_BIN as run.sh.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
shared=$(dirname "${WAYPOINT_BENCH:-$repo/../shared/bench/waypoint-bench.sh}")
if [ ! -x "$shared/anchor-waypoint.sh" ]; then
  echo "SKIP: $shared not present (the shared bench harness is not part of the product)" >&2
  exit 0
fi
VARIANTS=host,anchor MODES=sat ROUNDS=3 DURATION=10 WARMUP=2 CONNS=1 STREAMS=64
RATE=1000 RATE_STREAMS=16 OUT="" BUILD=1 NETNS=auto
ORIG_ARGS=("$@")
while [ $# -gt 0 ]; do
  case $1 in
    --variants) VARIANTS=$2; shift ;;
    --modes) MODES=$2; shift ;;
    --rounds) ROUNDS=$2; shift ;;
    --duration) DURATION=$2; shift ;;
    --warmup) WARMUP=$2; shift ;;
    --conns) CONNS=$2; shift ;;
    --streams) STREAMS=$2; shift ;;
    --rate) RATE=$2; shift ;;
    --rate-streams) RATE_STREAMS=$2; shift ;;
    --out) OUT=$2; shift ;;
    --no-build) BUILD=0 ;;
    --no-netns) NETNS=no ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "hbone-load.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
target=${CARGO_TARGET_DIR:-$repo/target}
if [ "$BUILD" = 1 ] && [ -z "${WPBENCH_IN_NETNS:-}" ]; then
  (cd "$repo" && cargo build --release -q -p waypoint-cli && cargo build --release -q -p waypoint-benches --bin hbone-load)
fi
export ENVOY_BIN=${ENVOY_BIN:-$("$repo/scripts/install-envoy.sh")}
if [ "$NETNS" = auto ] && [ -z "${WPBENCH_IN_NETNS:-}" ] && [ "$(id -u)" = 0 ] && unshare -n true 2>/dev/null; then
  exec unshare -n env WPBENCH_IN_NETNS=1 bash "$0" "${ORIG_ARGS[@]}" --no-build
fi
[ -n "${WPBENCH_IN_NETNS:-}" ] && ip link set lo up
LOAD=$target/release/hbone-load
export HOST_BIN=$target/release/waypoint

OUT=${OUT:-${TMPDIR:-/tmp}/wpbench/hbone-load-$(date -u +%Y%m%dT%H%M%S)}
export RUN_DIR=$OUT/run CERT_DIR=$OUT/certs BODY_BYTES=128
mkdir -p "$RUN_DIR/nginx-tmp" "$OUT/logs" "$CERT_DIR"
RESULTS=$OUT/results.jsonl
: >"$RESULTS"
export TRUST_DOMAIN=cluster.local SERVICE_VIP=10.96.0.10:9080
export WAYPOINT_ADDR=127.0.0.1 WAYPOINT_PORT=15008 WAYPOINT_ADMIN_PORT=15000
export WAYPOINT_PRINCIPAL=spiffe://cluster.local/ns/default/sa/waypoint
export CLIENT_PRINCIPAL=spiffe://cluster.local/ns/default/sa/productpage
export UPSTREAM_V1=127.0.0.1:28081 UPSTREAM_V2=127.0.0.1:28082
export WAYPOINT_CPUS=1 WAYPOINT_CONCURRENCY=1
log() { printf '[%s] %s\n' "$(date +%T)" "$*" >&2; }

declare -a GROUPS_STARTED=()
stop_group() { # TERM the process group, KILL after 5 s
  local g=$1 i
  kill -TERM -- "-$g" 2>/dev/null || true
  for i in $(seq 50); do kill -0 -- "-$g" 2>/dev/null || break; sleep 0.1; done
  kill -KILL -- "-$g" 2>/dev/null || true
  wait "$g" 2>/dev/null || true
}
cleanup() { local g; for g in "${GROUPS_STARTED[@]}"; do stop_group "$g"; done; }
trap cleanup EXIT
trap 'exit 130' INT TERM
listener_pid() { ss -ltnpH "sport = :$1" | grep -o 'pid=[0-9]*' | head -1 | cut -d= -f2; }
wait_port() { # wait_port PORT PID LOG
  local i
  for i in $(seq 300); do
    [ -n "$(listener_pid "$1")" ] && return 0
    kill -0 "$2" 2>/dev/null || { log "exited before listening on :$1"; tail -20 "$3" >&2; return 1; }
    sleep 0.1
  done
  log "not listening on :$1 after 30 s"; tail -20 "$3" >&2; return 1
}

# Certificates as the shared harness makes them (EC P-256, PKCS#8, URI SANs).
d=$CERT_DIR
openssl ecparam -name prime256v1 -genkey -noout -out "$d/root.key" 2>/dev/null
openssl req -x509 -new -key "$d/root.key" -days 2 -subj "/O=$TRUST_DOMAIN/CN=wpbench root" \
  -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign \
  -out "$d/root.pem" 2>/dev/null
for name in waypoint client; do
  case $name in waypoint) uri=$WAYPOINT_PRINCIPAL ;; client) uri=$CLIENT_PRINCIPAL ;; esac
  openssl ecparam -name prime256v1 -genkey -noout 2>/dev/null | openssl pkcs8 -topk8 -nocrypt -out "$d/$name.key"
  openssl req -new -key "$d/$name.key" -subj "/O=$TRUST_DOMAIN" -out "$d/$name.csr" 2>/dev/null
  printf '%s\n' "basicConstraints=critical,CA:FALSE" "keyUsage=critical,digitalSignature,keyEncipherment" \
    "extendedKeyUsage=serverAuth,clientAuth" "subjectAltName=critical,URI:$uri" >"$d/$name.ext"
  openssl x509 -req -in "$d/$name.csr" -CA "$d/root.pem" -CAkey "$d/root.key" -CAcreateserial \
    -days 1 -extfile "$d/$name.ext" -out "$d/$name.crt" 2>/dev/null
  rm -f "$d/$name.csr" "$d/$name.ext"
done

# The upstream: the shared harness's nginx config (no /bulk file needed here).
body() { local s="reviews-$1 "; while [ ${#s} -lt $((BODY_BYTES - 1)) ]; do s+=x; done; printf '%s\\n' "${s:0:$((BODY_BYTES - 1))}"; }
export BULK_FILE=/dev/null BODY_V1 BODY_V2
BODY_V1=$(body v1) BODY_V2=$(body v2)
python3 "$shared/lib/benchlib.py" render "$shared/configs/upstream-nginx.conf" >"$RUN_DIR/nginx.conf"
setsid taskset -c 0 nginx -c "$RUN_DIR/nginx.conf" -e "$RUN_DIR/nginx-error.log" >"$OUT/logs/nginx.log" 2>&1 &
GROUPS_STARTED+=($!)
wait_port 28081 "$!" "$OUT/logs/nginx.log"

waypoint_cmd() {
  case $1 in
    host) echo "exec \"$here/host.sh\"" ;;
    # Another build of the host, for before/after comparisons: HOST_BIN_<NAME>=path.
    host-*) local var="HOST_BIN_${1#host-}"; echo "HOST_BIN=\"${!var:?$var not set}\" exec \"$here/host.sh\"" ;;
    anchor) echo "exec \"$shared/anchor-waypoint.sh\"" ;;
    *) log "unknown variant $1"; return 1 ;;
  esac
}

run_one() { # run_one VARIANT MODE ROUND
  local v=$1 mode=$2 round=$3 logf="$OUT/logs/waypoint-$1.log" g pid args line
  echo "=== round $round $mode" >>"$logf"
  setsid taskset -c "$WAYPOINT_CPUS" bash -c "$(waypoint_cmd "$v")" >>"$logf" 2>&1 &
  g=$!; GROUPS_STARTED+=("$g")
  wait_port "$WAYPOINT_PORT" "$g" "$logf"
  pid=$(listener_pid "$WAYPOINT_PORT")
  sleep 0.5   # config loaded, listeners up
  if [ "$mode" = sat ]; then args=(--conns "$CONNS" --streams "$STREAMS")
  else args=(--conns 1 --streams "$RATE_STREAMS" --rate "$RATE"); fi
  line=$(taskset -c 0 "$LOAD" --cert-dir "$CERT_DIR" --expect "$WAYPOINT_PRINCIPAL" \
    --duration "$DURATION" --warmup "$WARMUP" --watch-pid "$pid" "${args[@]}" 2>>"$OUT/logs/hbone-load.log")
  stop_group "$g"
  python3 -c 'import json,sys; r=json.loads(sys.argv[1]); r.update(variant=sys.argv[2], round=int(sys.argv[3]), wp_pid=int(sys.argv[4])); print(json.dumps(r))' \
    "$line" "$v" "$round" "$pid" >>"$RESULTS"
  log "r$round $mode $v: $(python3 "$here/hbone-load-paired.py" --last "$RESULTS")"
}

IFS=, read -r -a VLIST <<<"$VARIANTS"
IFS=, read -r -a MLIST <<<"$MODES"
log "out: $OUT  load average $(cut -d' ' -f1-3 /proc/loadavg)"
for ((round = 1; round <= ROUNDS; round++)); do
  for mode in "${MLIST[@]}"; do
    k=${#VLIST[@]}
    for ((i = 0; i < k; i++)); do run_one "${VLIST[$(((round - 1 + i) % k))]}" "$mode" "$round"; done
  done
done
python3 "$here/hbone-load-paired.py" "$RESULTS" | tee "$OUT/table.md"

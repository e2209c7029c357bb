#!/usr/bin/env bash
# benches/waypoint-bench/instructions.sh — the waypoint's instructions per request in the HBONE
# layout of ../shared/bench/waypoint-bench.sh, counted by valgrind's callgrind, for the anchor
# (stock Envoy shaped as Istio's waypoint) and for Envoy + our module (envoy-module.sh). The
# harness's CPU-per-request figure moves ±10 % between runs on a shared VM; instruction counts
# repeat to a fraction of a percent, so they show where the module layout spends more.
#
#   curl (one keep-alive connection, N requests) -> client Envoy (HBONE, mTLS) ->
#   WAYPOINT under callgrind :15008 -> nginx (reviews-v1 :28081 / v2 :28082)
#
# Per variant: warm-up requests, instrumentation on, N requests, off, dump; the figure is the
# dump's total Ir ÷ N (the client Envoy, curl and nginx are not counted). Also writes each
# variant's top inclusive functions under the scratch dir (callgrind_annotate).
# Options: --requests N [2000]  --warm N [300]  --variants "anchor envoy-module" (or host: the
#                       standalone host, host.sh, under callgrind; envoy-wasm: Envoy with the
#                       proxy-wasm filter, filter/wasm, on V8, from `bootstrap --filter wasm`)
#          --floor (variants "anchor anchor+retry anchor+noop anchor+noop+retry envoy-module":
#                       the anchor's config edited by anchor-edit.py with Istio's default retry
#                       policy and/or a dynamic-module filter that returns at once, built with
#                       --features bench-noop: what any module waypoint pays before deciding)
#          --bootstrap FILE (envoy-module: use this bootstrap instead of generating one)
#          --scratch DIR [${TMPDIR:-/tmp}/waypoint-layout-instr]  --no-build
#          --cache-sim (also simulate caches and branches: estimated cycles per request;
#                       CACHE_SIM_ARGS adds valgrind cache options, e.g. a small --LL)
#          --conns C --seconds S (measure C concurrent connections driven by wrk for S seconds
#                       instead of N sequential requests: saturation-like batching)
# Environment: WAYPOINT_BENCH (as run.sh), ENVOY_BIN, CARGO_TARGET_DIR. Prints a SKIP line and
# exits 0 when the shared harness (not part of the product) is absent.
set -euo pipefail
# V8 compiles the .wasm (Liftoff, then TurboFan) under valgrind before Envoy listens.
case "$*" in *wasm*) export WAIT_PORT_TRIES=${WAIT_PORT_TRIES:-9000} ;; esac
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
bench=${WAYPOINT_BENCH:-$repo/../shared/bench/waypoint-bench.sh}
shared=$(dirname "$bench")
N=2000 WARM=300 VARIANTS="anchor envoy-module" BUILD=1 BOOTSTRAP="" SIM="" CONNS=1 SECONDS_=20
SCRATCH=${TMPDIR:-/tmp}/waypoint-layout-instr
while [ $# -gt 0 ]; do
  case $1 in
    --requests) N=$2; shift ;;
    --warm) WARM=$2; shift ;;
    --variants) VARIANTS=$2; shift ;;
    --floor) VARIANTS="anchor anchor+retry anchor+noop anchor+noop+retry envoy-module" ;;
    --bootstrap) BOOTSTRAP=$(realpath "$2"); shift ;;
    --scratch) SCRATCH=$2; shift ;;
    --no-build) BUILD=0 ;;
    --conns) CONNS=$2; shift ;;
    --seconds) SECONDS_=$2; shift ;;
    --cache-sim) SIM="--cache-sim=yes --branch-sim=yes ${CACHE_SIM_ARGS:-}" ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "instructions.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
if [ ! -f "$shared/configs/client.yaml" ] || [ ! -f "$shared/anchor-waypoint.sh" ]; then
  echo "SKIP: $shared not present (the shared bench harness is not part of the product)" >&2
  exit 0
fi
log() { echo "[$(date -u +%T)] $*" >&2; }
. "$(dirname "${BASH_SOURCE[0]}")/../callgrind-lib.sh"
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || apt-get install -y nginx-light >/dev/null
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
REAL_ENVOY=${ENVOY_BIN:-$("$repo/scripts/install-envoy.sh")}
target=${CARGO_TARGET_DIR:-$repo/target}
if [ "$BUILD" = 1 ]; then
  # One at a time: both crates name their library `waypoint`.
  (cd "$repo" && cargo build --release -q -p waypoint-cli && cargo build --release -q -p waypoint-envoy)
  case $VARIANTS in *wasm*)
    (cd "$repo" && CARGO_TARGET_DIR=$target/envoy-module cargo build --release -q --target wasm32-wasip1 -p waypoint-wasm) ;;
  esac
  case $VARIANTS in *noop*)
    (cd "$repo" && CARGO_TARGET_DIR=$target/bench-noop cargo build --release -q -p waypoint-envoy --features bench-noop) ;;
  esac
fi

RUN=$SCRATCH/run-$(date -u +%Y%m%dT%H%M%S)
mkdir -p "$RUN"
export RUN_DIR=$RUN CERT_DIR=$RUN/certs TRUST_DOMAIN=cluster.local SERVICE_VIP=10.96.0.10:9080
export WAYPOINT_ADDR=127.0.0.1 WAYPOINT_PORT=15008 WAYPOINT_CONCURRENCY=1
export WAYPOINT_PRINCIPAL=spiffe://cluster.local/ns/default/sa/waypoint
export CLIENT_PRINCIPAL=spiffe://cluster.local/ns/default/sa/productpage
export UPSTREAM_V1=127.0.0.1:28081 UPSTREAM_V2=127.0.0.1:28082
export UPSTREAM_V1_HOST=127.0.0.1 UPSTREAM_V1_PORT=28081
export HOST_BIN=$target/release/waypoint MODULE_DIR=$target/release
export CLIENT_CERT_NAME=client CLIENT_ADMIN_PORT=19100 CLIENT_HBONE_PORT=19101 CLIENT_TCP_PORT=19102

pids=()
cleanup() { local p; for p in "${pids[@]}"; do stop_pid "$p"; done; }
trap cleanup EXIT

# Certificates as the harness's contract describes them: EC P-256, PKCS#8, SPIFFE URI SANs.
mkdir -p "$CERT_DIR"
openssl ecparam -name prime256v1 -genkey -noout -out "$CERT_DIR/root.key" 2>/dev/null
openssl req -x509 -new -key "$CERT_DIR/root.key" -days 1 -subj "/O=$TRUST_DOMAIN/CN=instr root" \
  -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign \
  -out "$CERT_DIR/root.pem" 2>/dev/null
for pair in "waypoint $WAYPOINT_PRINCIPAL" "client $CLIENT_PRINCIPAL"; do
  set -- $pair
  openssl ecparam -name prime256v1 -genkey -noout 2>/dev/null | openssl pkcs8 -topk8 -nocrypt -out "$CERT_DIR/$1.key"
  openssl req -new -key "$CERT_DIR/$1.key" -subj "/O=$TRUST_DOMAIN" -out "$RUN/$1.csr" 2>/dev/null
  printf '%s\n' "basicConstraints=critical,CA:FALSE" "keyUsage=critical,digitalSignature" \
    "extendedKeyUsage=serverAuth,clientAuth" "subjectAltName=critical,URI:$2" >"$RUN/$1.ext"
  openssl x509 -req -in "$RUN/$1.csr" -CA "$CERT_DIR/root.pem" -CAkey "$CERT_DIR/root.key" \
    -CAcreateserial -days 1 -extfile "$RUN/$1.ext" -out "$CERT_DIR/$1.crt" 2>/dev/null
done

# Upstream: the repository's bench nginx, moved to the harness's ports.
. "$repo/benches/envoy/upstream.sh"
write_nginx_conf "$RUN"
sed -i 's/127.0.0.1:18081/127.0.0.1:28081/; s/127.0.0.1:18082/127.0.0.1:28082/' "$RUN/nginx.conf"
"$NGINX" -c "$RUN/nginx.conf" >"$RUN/nginx.log" 2>&1 &
pids+=($!)
wait_port 28081 "$!" "$RUN/nginx.log"

# The waypoint scripts exec $ENVOY_BIN: point it at a wrapper that runs Envoy under callgrind.
cat >"$RUN/envoy-callgrind.sh" <<EOF
#!/bin/sh
exec valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="\$CALLGRIND_OUT" $SIM "$REAL_ENVOY" "\$@" --base-id \$((\$\$ % 1000 + 100))
EOF
chmod +x "$RUN/envoy-callgrind.sh"
# Floor variants: the anchor script renders its config and execs $ENVOY_BIN -c FILE; this
# wrapper edits FILE first ($EDITS: noop, retry) and loads the no-op module.
cat >"$RUN/envoy-callgrind-edit.sh" <<EOF
#!/bin/sh
python3 "$here/anchor-edit.py" "\$2" \$EDITS || exit 1
export ENVOY_DYNAMIC_MODULES_SEARCH_PATH=$target/bench-noop/release
exec "$RUN/envoy-callgrind.sh" "\$@"
EOF
chmod +x "$RUN/envoy-callgrind-edit.sh"
if [ -n "$BOOTSTRAP" ]; then
  cat >"$RUN/envoy-module-given.sh" <<EOF
#!/bin/sh
export ENVOY_DYNAMIC_MODULES_SEARCH_PATH=$MODULE_DIR
exec "\$ENVOY_BIN" -c "$BOOTSTRAP" --concurrency 1 --disable-hot-restart --log-level warn
EOF
  chmod +x "$RUN/envoy-module-given.sh"
fi

python3 "$shared/lib/benchlib.py" render "$shared/configs/client.yaml" >"$RUN/client.yaml"
"$REAL_ENVOY" -c "$RUN/client.yaml" --concurrency 1 --disable-hot-restart --log-level warn \
  --base-id 77 >"$RUN/client.log" 2>&1 &
pids+=($!)
wait_port "$CLIENT_HBONE_PORT" "$!" "$RUN/client.log"

send() { # send COUNT: COUNT requests on one keep-alive connection; prints the number of 200s
  local urls=() i
  for i in $(seq "$1"); do urls+=("http://127.0.0.1:$CLIENT_HBONE_PORT/"); done
  curl -s -o /dev/null -m 900 -w '%{http_code}\n' "${urls[@]}" | grep -cx 200 || true
}

declare -A IR NS CY
for v in $VARIANTS; do
  wrapper=$RUN/envoy-callgrind.sh hostbin=$HOST_BIN
  case $v in
    anchor) cmd=$shared/anchor-waypoint.sh ;;
    host)
      cmd=$here/host.sh hostbin=$RUN/host-callgrind.sh
      cat >"$RUN/host-callgrind.sh" <<EOF
#!/bin/sh
exec valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="\$CALLGRIND_OUT" $SIM "$target/release/waypoint" "\$@"
EOF
      chmod +x "$RUN/host-callgrind.sh" ;;
    anchor+*)
      cmd=$shared/anchor-waypoint.sh wrapper=$RUN/envoy-callgrind-edit.sh
      EDITS=$(echo "${v#anchor+}" | tr + ' ')
      export EDITS ;;
    envoy-module) cmd=$here/envoy-module.sh; [ -z "$BOOTSTRAP" ] || cmd=$RUN/envoy-module-given.sh ;;
    envoy-wasm) cmd=$here/envoy-module.sh
      export WASM_FILE=${WAYPOINT_WASM:-$target/envoy-module/wasm32-wasip1/release/waypoint_wasm.wasm} ;;
    *) echo "instructions.sh: unknown variant $v" >&2; exit 2 ;;
  esac
  export CALLGRIND_OUT=$RUN/callgrind-$v.out
  HOST_BIN=$hostbin ENVOY_BIN=$wrapper "$cmd" >"$RUN/waypoint-$v.log" 2>&1 &
  wp=$!
  unset WASM_FILE
  pids+=("$wp")
  wait_port "$WAYPOINT_PORT" "$wp" "$RUN/waypoint-$v.log"
  ok=$(send "$WARM"); log "$v: warm-up $ok/$WARM ok"
  callgrind_control -i on "$wp" >/dev/null
  if [ "$CONNS" -gt 1 ]; then
    wrk -t1 -c"$CONNS" -d"${SECONDS_}s" --timeout 30s "http://127.0.0.1:$CLIENT_HBONE_PORT/" >"$RUN/wrk-$v.txt"
    N=$(awk '/requests in/ {print $1}' "$RUN/wrk-$v.txt") ok=$N
    ! grep -q 'Non-2xx\|Socket errors' "$RUN/wrk-$v.txt" || { log "$v: errors: $(cat "$RUN/wrk-$v.txt")"; exit 1; }
  else
    ok=$(send "$N")
  fi
  callgrind_control -i off "$wp" >/dev/null
  callgrind_control -d "$wp" >/dev/null
  stop_pid "$wp"
  [ "$ok" = "$N" ] || { log "$v: only $ok of $N requests returned 200"; exit 1; }
  NS[$v]=$N
  total=$(callgrind_total "$CALLGRIND_OUT")
  IR[$v]=$total
  [ -z "$SIM" ] || CY[$v]=$(callgrind_cycles "$CALLGRIND_OUT")
  callgrind_annotate --inclusive=yes "$CALLGRIND_OUT"* 2>/dev/null | head -80 >"$RUN/top-$v.txt" || true
  log "$v: $((total / N)) instructions per request ($N requests)"
done

instr_table waypoint anchor envoy-module
for other in envoy-module anchor; do
  if [ -n "${IR[envoy-wasm]:-}" ] && [ -n "${IR[$other]:-}" ]; then
    awk -v b="${IR[$other]}" -v o="${IR[envoy-wasm]}" -v nb="${NS[$other]}" -v no="${NS[envoy-wasm]}" \
      -v name="envoy-wasm/$other" 'BEGIN { printf "%s instructions per request: %.3f\n", name, (o / no) / (b / nb) }'
  fi
done
if [ -n "$SIM" ]; then
  echo
  echo "| waypoint | estimated cycles / request | / anchor |"
  echo "|---|---|---|"
  for v in $VARIANTS; do
    awk -v c="${CY[$v]}" -v n="${NS[$v]}" -v a="${CY[anchor]:-0}" -v na="${NS[anchor]:-1}" -v v="$v" \
      'BEGIN { r = a > 0 ? sprintf("%.3f", (c / n) / (a / na)) : "-"; printf "| %s | %.0f | %s |\n", v, c / n, r }'
  done
fi
if [ "$CONNS" -gt 1 ]; then
  echo "(wrk, $CONNS connections for ${SECONDS_} s after $WARM warm-up requests; requests:$(for v in $VARIANTS; do printf ' %s %s' "$v" "${NS[$v]}"; done); scratch: $RUN)"
else
  echo "(requests per variant: $N after $WARM warm-up, one keep-alive connection = one CONNECT stream; scratch: $RUN)"
fi

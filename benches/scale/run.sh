#!/usr/bin/env bash
# benches/scale/run.sh — memory and start-up with N services (default 10000), each with one
# pod, one HTTPRoute and one ALLOW AuthorizationPolicy (benches/src/scale_mesh.rs):
#   host       `waypoint run`: seconds to ready (/healthz/ready), RSS held after start-up
#   bootstrap  `waypoint bootstrap`: seconds, peak RSS, size of the Envoy YAML
#   anchor     stock Envoy with an Istio-shaped waypoint config for the same services (no
#              module; benches/examples/scale_mesh.rs writes it): seconds to ready, RSS
#   envoy      stock Envoy + libwaypoint.so on our bootstrap: seconds to ready, RSS
#   explain    `waypoint explain` of one request: seconds, peak RSS
# Reported, never asserted. Runs in a private network namespace (root or user namespaces),
# so nothing else holds the ports; prints a Markdown table and the load average.
# Options: --services N, --only "host bootstrap anchor envoy explain", --settle SECONDS
# (wait after ready before reading RSS, default 3), --no-build, --keep (keep the work dir).
# Env: CARGO_TARGET_DIR (default target/), ENVOY_BIN (default scripts/install-envoy.sh),
# SCALE_GEN (the scale_mesh example binary, default the release one).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
n=10000 only="host bootstrap anchor envoy explain" settle=3 build=1 keep=0
while [ $# -gt 0 ]; do
  case $1 in
    --services) n=$2; shift 2 ;;
    --only) only=$2; shift 2 ;;
    --settle) settle=$2; shift 2 ;;
    --no-build) build=0; shift ;;
    --keep) keep=1; shift ;;
    *) sed -n '2,16p' "$0"; exit 2 ;;
  esac
done
target=${CARGO_TARGET_DIR:-$root/target}
if [ "$build" = 1 ]; then
  (cd "$root" && cargo build --release -p waypoint-cli -p waypoint-envoy &&
    cargo build --release -p waypoint-benches --example scale_mesh) >&2
fi
bin=$target/release/waypoint gen=${SCALE_GEN:-$target/release/examples/scale_mesh}
envoy=${ENVOY_BIN:-$("$root/scripts/install-envoy.sh")}

# Everything below in a private network namespace: the default ports are ours.
if [ -z "${SCALE_NETNS:-}" ]; then
  unshare=(unshare -n)
  [ "$(id -u)" = 0 ] || unshare=(unshare -rn)
  exec "${unshare[@]}" env SCALE_NETNS=1 ENVOY_BIN="$envoy" SCALE_GEN="$gen" "$0" --services "$n" \
    --only "$only" --settle "$settle" --no-build $([ "$keep" = 1 ] && echo --keep)
fi
ip link set lo up 2>/dev/null || true

work=$(mktemp -d "${TMPDIR:-/tmp}/waypoint-scale.XXXXXX")
[ "$keep" = 1 ] && echo "work dir: $work" >&2 || trap 'rm -rf "$work"' EXIT
certs=$work/certs
mkdir -p "$certs"
( cd "$certs"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
    -subj /O=scale-ca -keyout ca.key -out root.pem 2>/dev/null
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /O=waypoint \
    -keyout waypoint.key -out waypoint.csr 2>/dev/null
  printf 'subjectAltName=URI:spiffe://cluster.local/ns/default/sa/waypoint\n' >ext
  openssl x509 -req -in waypoint.csr -CA root.pem -CAkey ca.key -CAcreateserial -days 2 \
    -extfile ext -out waypoint.crt 2>/dev/null
  ln -s waypoint.crt waypoint.pem; ln -s waypoint.key waypoint-key.pem; ln -s root.pem ca.pem )
"$gen" "$n" "$work" "$certs"
yaml_mb=$(du -m "$work/mesh/mesh.yaml" | cut -f1)
m() { python3 "$here/measure.py" "$@"; }
field() { python3 -c 'import json,sys; d=json.loads(sys.argv[1]); print(d.get(sys.argv[2]))' "$1" "$2"; }
mb() { awk -v b="$1" 'BEGIN { printf "%.1f", b / 1048576 }'; }
declare -A res

for part in $only; do
  case $part in
    host)
      res[host]=$(m serve http://127.0.0.1:15021/healthz/ready "$settle" "$bin" run \
        --config "$work/mesh" --waypoint default/waypoint --cert "$certs/waypoint.crt" \
        --key "$certs/waypoint.key" --roots "$certs/root.pem" --threads 1) ;;
    bootstrap)
      res[bootstrap]=$(m run "$bin" bootstrap --config "$work/mesh" --waypoint default/waypoint \
        --certs "$certs")
      "$bin" bootstrap --config "$work/mesh" --waypoint default/waypoint --certs "$certs" \
        >"$work/envoy-module.yaml" ;;
    anchor)
      res[anchor]=$(m serve http://127.0.0.1:15000/ready "$settle" "$envoy" -c "$work/anchor.yaml" \
        --concurrency 1 --disable-hot-restart --log-level error) ;;
    envoy)
      [ -s "$work/envoy-module.yaml" ] || "$bin" bootstrap --config "$work/mesh" \
        --waypoint default/waypoint --certs "$certs" >"$work/envoy-module.yaml"
      res[envoy]=$(ENVOY_DYNAMIC_MODULES_SEARCH_PATH=$target/release m serve \
        http://127.0.0.1:15000/ready "$settle" "$envoy" -c "$work/envoy-module.yaml" \
        --concurrency 1 --disable-hot-restart --log-level error) ;;
    explain)
      res[explain]=$(m run "$bin" explain --config "$work/mesh" --waypoint default/waypoint \
        --request "GET http://svc$((n - 1)):80/api/x" \
        --source-principal spiffe://cluster.local/ns/default/sa/sleep) ;;
    *) echo "unknown part $part" >&2; exit 2 ;;
  esac
  echo "$part: ${res[$part]}" >&2
done

echo
echo "Scale: $n services (one pod, one HTTPRoute, one AuthorizationPolicy each; ${yaml_mb} MB of YAML)," \
  "$(date -u +%Y-%m-%dT%H:%MZ), load average $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) CPUs"
echo
echo "| what | ready / run time (CPU time) | RSS after start-up | peak RSS | output |"
echo "|---|---|---|---|---|"
row() { # label key
  local j=${res[$2]:-}
  [ -n "$j" ] || return 0
  local t c r p o=""
  t=$(field "$j" ready_seconds); [ "$t" != None ] || t=$(field "$j" seconds)
  c=$(field "$j" cpu_seconds)
  r=$(field "$j" rss_mb); p=$(field "$j" peak_rss_mb)
  [ "$(field "$j" stdout_bytes)" = None ] || o="$(mb "$(field "$j" stdout_bytes)") MB"
  echo "| $1 | ${t} s (${c} s) | ${r/None/–} MB | ${p} MB | ${o} |"
}
row '`waypoint run` (1 thread)' host
row '`waypoint bootstrap`' bootstrap
row 'anchor: stock Envoy, Istio-shaped config' anchor
row 'Envoy + module on our bootstrap' envoy
row '`waypoint explain` (one request)' explain
if [ -n "${res[anchor]:-}" ]; then
  a=$(field "${res[anchor]}" rss_mb)
  for k in host envoy; do
    [ -n "${res[$k]:-}" ] || continue
    echo "$k RSS / anchor RSS: $(awk -v x="$(field "${res[$k]}" rss_mb)" -v a="$a" 'BEGIN { printf "%.2f", x / a }')"
  done
fi

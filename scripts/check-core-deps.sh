#!/usr/bin/env bash
# Fails if the pure policy core depends (directly or not) on async/network runtimes or on any
# adapter crate. The core must stay synchronous and I/O-free.
set -euo pipefail
cd "$(dirname "$0")/.."
forbidden='^(tokio|tokio-[a-z-]+|hyper|hyper-[a-z-]+|h2|tonic|tonic-[a-z-]+|mio|async-std|reqwest|kube-client|waypoint|waypoint-envoy|waypoint-loader|waypoint-tests|waypoint-benches) '
tree=$(cargo tree -p waypoint-core -e normal,build --prefix none --offline 2>/dev/null || cargo tree -p waypoint-core -e normal,build --prefix none)
bad=$(printf '%s\n' "$tree" | sort -u | grep -E "$forbidden" || true)
if [ -n "$bad" ]; then
  echo "FAIL: waypoint-core depends on forbidden crates:" >&2
  printf '  %s\n' $bad >&2
  exit 1
fi
echo "ok: waypoint-core has no runtime or adapter dependencies ($(printf '%s\n' "$tree" | sort -u | wc -l) crates)"

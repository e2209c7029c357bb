#!/usr/bin/env bash
# benches/core-instructions.sh [N]: instructions per core decision (bookinfo, reviews, jason)
# under callgrind: (total at N decisions − total at 0) / N. Repeatable to a few instructions,
# unlike wall-clock time on a shared machine. Reported, never asserted.
set -euo pipefail
cd "$(dirname "$0")/.."
source benches/callgrind-lib.sh
n=${1:-20000}
cargo build --release -q -p waypoint-core --example decide_loop
bin=target/release/examples/decide_loop
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
valgrind --tool=callgrind --callgrind-out-file="$tmp/zero" "$bin" 0 >/dev/null 2>&1
valgrind --tool=callgrind --callgrind-out-file="$tmp/n" "$bin" "$n" >/dev/null 2>&1
zero=$(callgrind_total "$tmp/zero")
full=$(callgrind_total "$tmp/n")
echo "core decision (bookinfo reviews jason): $(( (full - zero) / n )) instructions per decision ($n decisions)"

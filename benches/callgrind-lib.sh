# benches/callgrind-lib.sh — sourced by the instruction-counting scripts (benches/envoy/ and
# benches/waypoint-bench/instructions.sh): valgrind, process and port helpers, dump totals.

command -v valgrind >/dev/null || { apt-get install -y valgrind >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get install -y valgrind >/dev/null; }; }

# stop_pid PID: TERM, wait up to 20 s, then KILL.
stop_pid() { kill -TERM "$1" 2>/dev/null || return 0; for _ in $(seq 100); do kill -0 "$1" 2>/dev/null || break; sleep 0.2; done; kill -KILL "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }
listening() { ss -ltnH "sport = :$1" | grep -q .; }
# wait_port PORT PID LOG: until PORT listens (up to 3 min, or WAIT_PORT_TRIES × 0.2 s: Envoy
# starts slowly under valgrind, and compiling a .wasm takes far longer), or PID exits (then
# LOG's tail is shown).
wait_port() { for _ in $(seq "${WAIT_PORT_TRIES:-900}"); do listening "$1" && return 0; kill -0 "$2" 2>/dev/null || break; sleep 0.2; done; echo "nothing on :$1" >&2; tail -20 "$3" >&2; return 1; }
# callgrind_total OUT: the instructions (first event) of every dump part OUT* summed.
callgrind_total() {
  local f t total=0
  for f in "$1"*; do
    t=$(awk '/^totals:/ {print $2}' "$f"); total=$((total + ${t:-0}))
  done
  echo "$total"
}
# callgrind_cycles OUT: estimated cycles of every dump part OUT* summed, from a run with
# --cache-sim=yes --branch-sim=yes: Ir + 10 per L1 miss + 100 per last-level miss + 20 per
# mispredicted branch (the weights callgrind_annotate's documentation suggests).
callgrind_cycles() {
  cat "$1"* | awk '
    /^events:/ { for (i = 2; i <= NF; i++) col[$i] = i }
    /^totals:/ {
      t += $col["Ir"] + 10 * ($col["I1mr"] + $col["D1mr"] + $col["D1mw"]) \
         + 100 * ($col["ILmr"] + $col["DLmr"] + $col["DLmw"]) + 20 * ($col["Bcm"] + $col["Bim"])
    }
    END { printf "%.0f\n", t }'
}
# instr_table FIRST_COLUMN BASE OTHER: a Markdown table of IR[v] / NS[v] (the caller's
# instruction totals and request counts) for each of $VARIANTS, then OTHER / BASE per request.
instr_table() {
  local v
  echo "| $1 | instructions / request |"
  echo "|---|---|"
  for v in $VARIANTS; do echo "| $v | $((IR[$v] / NS[$v])) |"; done
  if [ -n "${IR[$2]:-}" ] && [ -n "${IR[$3]:-}" ]; then
    awk -v b="${IR[$2]}" -v o="${IR[$3]}" -v nb="${NS[$2]}" -v no="${NS[$3]}" -v name="$3/$2" \
      'BEGIN { printf "\n%s instructions per request: %.3f\n", name, (o / no) / (b / nb) }'
  fi
}

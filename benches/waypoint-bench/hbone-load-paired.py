#!/usr/bin/env python3
"""Table of one hbone-load.sh run: per mode and variant the median [min-max] over rounds of
req/s, latency, errors, the waypoint's CPU (share of its core) and both cores' busy share, then
the per-round host/anchor ratios (same round, so the machine's drift cancels) and their median.

Usage: hbone-load-paired.py OUT_DIR/results.jsonl
       hbone-load-paired.py --last OUT_DIR/results.jsonl   (one line: the last run)
"""
import collections
import json
import statistics
import sys


def fig(r):
    lat = r["latency_ms"]
    cpu = r["cpu"]
    busy = cpu.get("cpu_busy", [])
    wp = cpu["pids"].get(str(r["wp_pid"]))
    return {
        "rps": r["rps"],
        "p50": lat["p50"],
        "p99": lat["p99"],
        "p999": lat["p999"],
        "errors": r["errors"] + r["non_200"],
        "wp": wp,
        "cpu0": busy[0] if len(busy) > 0 else None,
        "cpu1": busy[1] if len(busy) > 1 else None,
        # µs of waypoint CPU per request
        "wp_us": wp / r["rps"] * 1e6 if wp and r["rps"] else None,
    }


def cell(vals, nd):
    vals = [v for v in vals if v is not None]
    if not vals:
        return "-"
    f = lambda v: f"{v:,.{nd}f}"
    return f"{f(statistics.median(vals))} [{f(min(vals))}–{f(max(vals))}]"


def main(path):
    runs = [json.loads(l) for l in open(path, encoding="utf-8") if l.strip()]
    by = collections.defaultdict(list)
    for r in runs:
        by[(r["mode"], r["variant"])].append(r)
    cols = [("rps", "req/s", 0), ("p50", "p50 ms", 3), ("p99", "p99 ms", 3), ("p999", "p99.9 ms", 3),
            ("errors", "errors", 0), ("wp", "wp busy", 2), ("wp_us", "wp µs/req", 1),
            ("cpu0", "cpu0 busy", 2), ("cpu1", "cpu1 busy", 2)]
    for mode in sorted({m for m, _ in by}):
        r0 = next(r for (m, _), rs in by.items() if m == mode for r in rs)
        shape = f"{r0['conns']} connection(s) x {r0['streams_per_conn']} streams"
        if mode == "rate":
            shape += f", {r0['target_rps']:.0f} req/s offered"
        print(f"\n### {mode}: {shape} (median [min–max] over rounds)\n")
        print("| variant | " + " | ".join(c[1] for c in cols) + " |")
        print("|---" * (len(cols) + 1) + "|")
        for (m, v), rs in sorted(by.items()):
            if m != mode:
                continue
            fs = [fig(r) for r in rs]
            print(f"| {v} | " + " | ".join(cell([f[k] for f in fs], nd) for k, _, nd in cols) + " |")
        rounds = collections.defaultdict(dict)
        for (m, v), rs in by.items():
            if m == mode:
                for r in rs:
                    rounds[r["round"]][v] = fig(r)
        ratios = collections.defaultdict(list)
        for vs in rounds.values():
            if "host" in vs and "anchor" in vs:
                for k in ("rps", "p50", "p99", "wp_us"):
                    a, h = vs["anchor"][k], vs["host"][k]
                    if a and h is not None:
                        ratios[k].append(h / a)
        if ratios:
            print("\nhost / anchor, per round (median): " + ", ".join(
                f"{k} {statistics.median(v):.3f} ({' '.join(f'{x:.2f}' for x in v)})"
                for k, v in ratios.items()))


def last(path):
    lines = [l for l in open(path, encoding="utf-8") if l.strip()]
    r = json.loads(lines[-1])
    f = fig(r)
    print(f"{f['rps']:.0f} req/s, p50 {f['p50']} p99 {f['p99']} ms, errors {f['errors']}, "
          f"wp busy {f['wp']}, cpu0 {f['cpu0']} cpu1 {f['cpu1']}")


if __name__ == "__main__":
    if sys.argv[1] == "--last":
        last(sys.argv[2])
    else:
        main(sys.argv[1])

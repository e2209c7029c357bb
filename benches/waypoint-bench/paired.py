#!/usr/bin/env python3
"""Paired ratios of one waypoint-bench run: per round and mode, our waypoint's figure divided
by the anchor's from the same round (the harness interleaves them), then the median over rounds.
On a shared VM the machine's speed drifts between rounds; a ratio within one round cancels
most of that drift, so its median is steadier than the ratio of the two medians.

Usage: paired.py OUT_DIR/results.jsonl [...]   (the harness's --out directory holds it)
"""
import collections
import json
import statistics
import sys

FIGURES = [  # (results key, label, lower is better)
    ("wp_cpu_s_per_10k", "CPU per request", True),
    ("p99_ms", "p99", True),
    ("wp_hwm_mib", "peak RSS", True),
    ("rps", "req/s", False),
]


def main(paths):
    for path in paths:
        runs = []
        with open(path, encoding="utf-8") as f:
            for line in f:
                rec = json.loads(line)
                if rec.get("kind") == "run":
                    runs.append(rec)
        rounds = collections.defaultdict(dict)
        for r in runs:
            rounds[(r["mode"], r["round"])][r["variant"]] = r
        print(f"## paired ratios to the anchor: {path}\n")
        print("| mode | waypoint | figure | per-round ratios | median |")
        print("|---|---|---|---|---|")
        for mode in sorted({m for m, _ in rounds}):
            per_round = [v for (m, _), v in sorted(rounds.items()) if m == mode]
            ours = sorted({k for d in per_round for k in d if k != "anchor"})
            for wp in ours:
                for key, label, _ in FIGURES:
                    ratios = [
                        d[wp][key] / d["anchor"][key]
                        for d in per_round
                        if wp in d and "anchor" in d and d["anchor"].get(key)
                        and d[wp].get(key) is not None
                    ]
                    if not ratios:
                        continue
                    cells = ", ".join(f"{x:.3f}" for x in ratios)
                    print(f"| {mode} | {wp} | {label} | {cells} | **{statistics.median(ratios):.3f}** |")
        print()


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    main(sys.argv[1:])

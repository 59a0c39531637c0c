#!/usr/bin/env python3
"""Pool several runs of bench/nbd-server-bench.py into one table.

One run of three reps is at the mercy of a slow minute of the machine; the
same code run several times is the better measure.  For every row this
prints A/B as the ratio of medians in each run, then over all runs pooled:
the ratio of the medians of every rep, and the median of the rep-by-rep
ratios (the two servers of a rep ran one after the other).

Usage: nbd-server-pool.py [--a r3map] [--b nbdkit] [--goal 1.2] RUN.json...
"""

import argparse
import json
import statistics
import sys


def row_key(row):
    return (row["workload"], row["transport"])


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--a", default="r3map", help="server in the numerator")
    ap.add_argument("--b", default="nbdkit", help="server in the denominator")
    ap.add_argument("--goal", type=float, default=1.2,
                    help="count the runs whose ratio reaches this")
    ap.add_argument("runs", nargs="+", metavar="RUN.json",
                    help="JSON files that nbd-server-bench.py wrote")
    args = ap.parse_args()

    order, cells = [], {}
    names = []
    for path in args.runs:
        try:
            with open(path) as f:
                run = json.load(f)
        except (OSError, ValueError) as e:
            sys.exit(f"nbd-server-pool: {path}: {e}")
        names.append(run.get("meta", {}).get("date", path))
        for row in run["rows"]:
            if args.a not in row or args.b not in row:
                sys.exit(f"nbd-server-pool: {path}: no {args.a} or {args.b} "
                         f"in row {row['workload']} {row['transport']}")
            key = row_key(row)
            if key not in cells:
                order.append(key)
                cells[key] = []
            cells[key].append((row[args.a]["runs_mbs"], row[args.b]["runs_mbs"]))

    ratio = f"{args.a}/{args.b}"
    print(f"{len(args.runs)} runs: {', '.join(names)}; * = under {args.goal}x\n")
    print(f"| workload | transport | {ratio} per run | runs at {args.goal}x or more "
          f"| pooled: medians of every rep | pooled: {ratio} | pooled pairs |")
    print("|---|---|---|---|---|---|---|")
    for key in order:
        runs = cells[key]
        per_run = [statistics.median(a) / statistics.median(b) for a, b in runs]
        all_a = [x for a, _ in runs for x in a]
        all_b = [x for _, b in runs for x in b]
        pairs = [x / y for a, b in runs for x, y in zip(a, b)]
        hits = sum(r >= args.goal for r in per_run)
        # A run under the goal is starred: 1.20x may be 1.197x.
        print(f"| {key[0]} | {key[1]} | "
              + ", ".join(f"{r:.2f}x" + ("" if r >= args.goal else "*")
                          for r in per_run)
              + f" | {hits} of {len(runs)} | {statistics.median(all_a):.0f} / "
              f"{statistics.median(all_b):.0f} MB/s | "
              f"{statistics.median(all_a) / statistics.median(all_b):.3f}x | "
              f"{statistics.median(pairs):.3f}x ({len(pairs)}) |")


if __name__ == "__main__":
    main()

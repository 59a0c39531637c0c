#!/usr/bin/python3
"""r3map copy against the tools that set its ceiling, side by side.

Copies the same SIZE bytes (the pattern nbdkit's pattern plugin makes)
with each contender, REPS times in rounds (each round runs every contender
once, so noise from other work on the machine spreads over all of them),
and reports the median wall time, the rate, the ratio to cp, and the
median CPU time (user + system, which a busy machine disturbs less).  Files
live in a tmpfs directory (default: under /dev/shm) so the figures are
about the copying, not a disk.  Writes a markdown table to stdout and the
raw numbers to bench/results/copy.json.

Usage: bench/copy.py [--size 1G] [--reps 5] [--r3map build/tools/r3map/r3map]
                     [--dir /dev/shm] [--chunk-size 64K ...]
"""
import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def parse_size(s):
    units = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    s = s.upper().rstrip("B").rstrip("I")
    return int(s[:-1]) * units[s[-1]] if s[-1] in units \
        else int(s)


def timed(cmd):
    """Wall seconds and CPU seconds (user + system) of one run.  On a
    shared machine the CPU time moves much less than the wall time."""
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.PIPE)
    wall = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", default="1G")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--r3map", default=os.path.join(ROOT, "build/tools/r3map/r3map"))
    ap.add_argument("--dir", default="/dev/shm")
    ap.add_argument("--chunk-size", action="append", default=[],
                    help="also run r3map copy file->file with this chunk size")
    ap.add_argument("--out", default=os.path.join(ROOT, "bench/results/copy.json"))
    a = ap.parse_args()
    size = parse_size(a.size)
    r3map = a.r3map
    load_before = os.getloadavg()
    work = tempfile.mkdtemp(prefix="r3map-bench-copy.", dir=a.dir)
    src, dst = os.path.join(work, "src"), os.path.join(work, "dst")
    try:
        subprocess.run([r3map, "copy", "-q", f"pattern:{size}", f"file:{src}"],
                       check=True)
        q = [r3map, "copy", "--no-progress", "-q"]
        contenders = [
            ("cp", ["cp", src, dst], True),
            ("dd bs=1M conv=fdatasync",
             ["dd", f"if={src}", f"of={dst}", "bs=1M", "conv=fdatasync",
              "status=none"], True),
            ("nbdcopy (libnbd)", ["nbdcopy", src, dst], True),
            ("r3map copy file->file", q + [f"file:{src}", f"file:{dst}"], True),
            ("r3map copy pattern->file", q + [f"pattern:{size}", f"file:{dst}"], True),
            ("r3map copy pattern->memory", q + [f"pattern:{size}", f"memory:{size}"], False),
            ("r3map compare file file", [r3map, "compare", "-q", f"file:{src}",
                                         f"file:{src}"], False),
        ]
        for c in a.chunk_size:
            contenders.append((f"r3map copy file->file --chunk-size {c}",
                               q + ["--chunk-size", c, f"file:{src}", f"file:{dst}"],
                               True))
            contenders.append((f"r3map copy pattern->memory --chunk-size {c}",
                               q + ["--chunk-size", c, f"pattern:{size}",
                                    f"memory:{size}"], False))
        if not shutil.which("nbdcopy"):
            contenders = [c for c in contenders if c[1][0] != "nbdcopy"]
        times = {name: [] for name, _, _ in contenders}
        cpu = {name: [] for name, _, _ in contenders}
        for _ in range(a.reps):
            for name, cmd, writes_dst in contenders:
                if writes_dst and os.path.exists(dst):
                    os.unlink(dst)
                wall, used = timed(cmd)
                times[name].append(wall)
                cpu[name].append(used)
                if writes_dst and name != "cp" and \
                        subprocess.run(["cmp", "-s", src, dst]).returncode:
                    sys.exit(f"bench: {name} produced a wrong copy")
        base = statistics.median(times["cp"])
        base_cpu = statistics.median(cpu["cp"])
        rows = []
        for name, _, _ in contenders:
            med = statistics.median(times[name])
            rows.append({"name": name, "median_s": med, "runs_s": times[name],
                         "gib_per_s": size / med / (1 << 30),
                         "vs_cp": base / med,
                         "cpu_median_s": statistics.median(cpu[name]),
                         "cpu_vs_cp": statistics.median(cpu[name]) / base_cpu,
                         "cpu_runs_s": cpu[name]})
    finally:
        shutil.rmtree(work, ignore_errors=True)

    load_after = os.getloadavg()
    print(f"Copy of {a.size} ({size} bytes) in tmpfs ({a.dir}), "
          f"median of {a.reps} rounds; {os.cpu_count()} CPUs, load average "
          f"{load_before[0]:.1f} before, {load_after[0]:.1f} after.\n")
    print("| contender | median wall | GiB/s | speed vs cp "
          "| median CPU (user+sys) | CPU vs cp |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['name']} | {r['median_s']:.2f} s | {r['gib_per_s']:.2f} "
              f"| {r['vs_cp']:.2f}x | {r['cpu_median_s']:.2f} s "
              f"| {r['cpu_vs_cp']:.2f}x |")
    os.makedirs(os.path.dirname(a.out), exist_ok=True)
    with open(a.out, "w") as f:
        json.dump({"benchmark": "copy", "size": size, "reps": a.reps,
                   "dir": a.dir, "host": platform.node(),
                   "kernel": platform.release(), "cpus": os.cpu_count(),
                   "loadavg_before": load_before, "loadavg_after": load_after,
                   "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                   "results": rows}, f, indent=1)
        f.write("\n")
    print(f"\nraw numbers: {os.path.relpath(a.out, ROOT)}")


if __name__ == "__main__":
    main()

#!/usr/bin/python3
"""Reads through our FUSE mount against libnbd's nbdfuse and tmpfs.

One run, side by side: a 1 GiB region served by `r3map serve` (memory:)
over a Unix socket, read through
  - r3map mount (--frontend fuse, default options: a memory cache and two
    background pull workers), reading as soon as the file appears,
  - r3map mount --pull-workers 0 (only what is read is fetched),
  - r3map mount --cache none (no cache: every read goes to the server, as
    with nbdfuse),
  - r3map mount --pull-first (the file appears once everything is local:
    the reads measure the FUSE path over a full cache),
  - nbdfuse (libnbd's FUSE client, its default options) over the same
    server,
  - the same bytes in a tmpfs file (the ceiling),
with three workloads (bench/fuse_read.c): sequential pread of 1 MiB, an
mmap scan (8 bytes of every page, in order), and random 4 KiB preads from
several threads.  Every (system, workload, repetition) gets a fresh mount,
so both FUSE clients start with an empty page cache and r3map (except
r3map-pulled) with an empty region cache: cold reads from the server.  The median of
--repeat runs is reported, with the ratio to nbdfuse and to tmpfs, and
the CPU time the reader, the FUSE client and the server spent per GB read
(less sensitive than MB/s to other load on the machine).  Each read waits
--settle seconds first (freed memory goes back to the host on these VMs,
so no reader inherits its predecessor's freed memory), then touches and
frees --prewarm bytes (default 4G), so that the pages the read needs (our
cache, the kernel's page cache) come from memory the host still backs
whoever needs more of them; and the order of the systems
alternates between repetitions.  --baseline R3MAP adds every r3map system
once more with another binary (SYSTEM@base): an A/B under the same load.

Run as root from the repository root after scripts/build.sh build:
  /usr/bin/python3 bench/fuse_vs_nbdfuse.py --json bench/results/fuse_read.json
It re-runs itself in a private mount namespace, so no mount outlives it.
"""
import argparse
import json
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from prewarm import prewarm, size_bytes  # noqa: E402  (bench/prewarm.py)
LOAD_BEFORE = os.getloadavg()
ROOT = os.path.dirname(HERE)


def wait_for(path, proc, what, seconds=30):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if os.path.exists(path):
            return
        if proc is not None and proc.poll() is not None:
            sys.exit("%s exited early with status %s" % (what, proc.returncode))
        time.sleep(0.02)
    sys.exit("%s did not become ready" % what)


def stop(proc, seconds=60):
    try:
        proc.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


class Mount:
    """A fresh FUSE mount of the server by one client, as a context."""

    def __init__(self, kind, args, tmp, uri):
        self.kind, self.args, self.tmp, self.uri = kind, args, tmp, uri
        self.dir = os.path.join(tmp, "mnt")
        self.proc = None

    def __enter__(self):
        os.makedirs(self.dir, exist_ok=True)
        pid = os.path.join(self.tmp, "mount.pid")
        if os.path.exists(pid):
            os.unlink(pid)
        if self.kind.startswith("r3map"):
            binary = self.args.r3map
            if self.kind.endswith("@base"):
                binary = self.args.baseline
                self.kind = self.kind[:-len("@base")]
            cmd = [binary, "mount", "--quiet", "--pid-file", pid,
                   "--at", self.dir, self.uri]
            if self.kind == "r3map-ondemand":
                cmd[2:2] = ["--pull-workers", "0"]
            if self.kind == "r3map-pulled":
                cmd[2:2] = ["--pull-first"]
            if self.kind == "r3map-direct":
                cmd[2:2] = ["--cache", "none"]
            cmd[2:2] = self.args.r3map_args.split()
            self.file = os.path.join(self.dir, "region")
        else:
            cmd = ["nbdfuse", "-P", pid, self.dir, self.uri]
            self.file = os.path.join(self.dir, "nbd")
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
        wait_for(pid, self.proc, self.kind)
        return self.file

    def __exit__(self, *exc):
        subprocess.run(["fusermount3", "-u", self.dir], check=False)
        stop(self.proc)


TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    """User + system CPU time of a live process, in seconds."""
    if pid is None:
        return 0.0
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def read(args, mode, path, pids):
    """Run one workload; returns (MB/s, checksum, CPU seconds per GB spent
    by the reader, the FUSE client and the server together)."""
    cmd = [args.fuse_read, mode, path]
    if mode == "rand":
        cmd += [str(args.rand_threads), str(args.rand_reads)]
    before = sum(cpu_seconds(p) for p in pids)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        sys.exit("fuse_read %s %s failed" % (mode, path))
    spent = usage.ru_utime + usage.ru_stime
    spent += sum(cpu_seconds(p) for p in pids) - before
    _, nbytes, secs, rate, check = out.split()
    return float(rate), check, spent / (int(nbytes) / 1e9)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", default="1G", help="region size (default 1G)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--rand-threads", type=int, default=4)
    ap.add_argument("--rand-reads", type=int, default=8192,
                    help="random reads per thread (default 8192)")
    ap.add_argument("--systems",
                    default="tmpfs,nbdfuse,r3map,r3map-ondemand,r3map-direct,"
                    "r3map-pulled")
    ap.add_argument("--workloads", default="seq,mmap,rand")
    ap.add_argument("--r3map", default=os.path.join(ROOT, "build/tools/r3map/r3map"))
    ap.add_argument("--fuse-read", default=os.path.join(ROOT, "build/bench/fuse_read"))
    ap.add_argument("--r3map-args", default="",
                    help="extra options for r3map mount (to explore)")
    ap.add_argument("--serve-args", default="",
                    help="extra options for the r3map serve that every "
                    "FUSE client reads from (e.g. --busy-poll 0)")
    ap.add_argument("--settle", type=float, default=3.0,
                    help="seconds to wait before each read (default 3): "
                    "on a VM that returns freed memory to its host (free "
                    "page reporting), memory freed by the previous mount "
                    "is cold again by then, so every reader starts alike")
    ap.add_argument("--prewarm", default="4G", metavar="SIZE",
                    help="after the settle, touch and free SIZE (e.g. 3G) "
                    "of memory: on these VMs the first touch of memory "
                    "the host has taken back costs about 1.4 s per GiB "
                    "more than memory freed a moment ago, and a client "
                    "that keeps a cache needs more fresh memory than one "
                    "that does not (docs/benchmarks.md); default 4G, 0: off")
    ap.add_argument("--baseline", metavar="R3MAP",
                    help="another r3map binary (e.g. a build of main): "
                    "each r3map system also runs with it, as SYSTEM@base, "
                    "in the same loop (A/B on the same load)")
    ap.add_argument("--json", help="write the results here")
    args = ap.parse_args()
    try:
        args.prewarm_bytes = size_bytes(args.prewarm)
    except ValueError:
        ap.error("--prewarm %r is not a size (e.g. 4G, or 0)" % args.prewarm)

    if os.environ.get("R3M_BENCH_NS") != "1":
        if os.geteuid() != 0:
            sys.exit("fuse_vs_nbdfuse: needs root (FUSE mounts, sysfs)")
        env = dict(os.environ, R3M_BENCH_NS="1")
        os.execvpe("unshare", ["unshare", "-m", "--propagation", "private",
                               sys.executable] + sys.argv, env)

    systems = args.systems.split(",")
    if args.baseline:
        systems += [s + "@base" for s in systems if s.startswith("r3map")]
    workloads = args.workloads.split(",")
    tmp = tempfile.mkdtemp(prefix="r3m-fusebench-")
    shm = tempfile.mkdtemp(prefix="r3m-fusebench-", dir="/dev/shm")
    data = os.path.join(shm, "data")
    sock = os.path.join(tmp, "s.sock")
    uri = "nbd+unix:///?socket=" + sock
    subprocess.run(["head", "-c", args.size, "/dev/urandom"],
                   stdout=open(data, "wb"), check=True)
    spid = os.path.join(tmp, "serve.pid")
    server = subprocess.Popen([args.r3map, "serve", "--quiet", "--pid-file",
                               spid, "--listen", uri]
                              + shlex.split(args.serve_args)
                              + ["memory:" + args.size],
                              stdout=subprocess.DEVNULL)
    try:
        wait_for(spid, server, "r3map serve")
        subprocess.run(["nbdcopy", data, uri], check=True)
        med, cpu = run_all(args, systems, workloads, tmp, uri, data, server)
    finally:
        server.terminate()
        stop(server)
        os.unlink(data)
        os.rmdir(shm)
        shutil.rmtree(tmp, ignore_errors=True)
    report(args, systems, workloads, med, cpu)


def run_all(args, systems, workloads, tmp, uri, data, server):
    rates = {(s, w): [] for s in systems for w in workloads}
    cpus = {(s, w): [] for s in systems for w in workloads}
    checks = {}
    for rep in range(args.repeat):
        for w in workloads:
            # Alternate the order between repetitions, so that no system
            # always follows the same neighbour.
            for s in (systems if rep % 2 == 0 else systems[::-1]):
                time.sleep(args.settle)
                prewarm(args.prewarm_bytes)
                if s == "tmpfs":
                    rate, check, cpu = read(args, w, data, [])
                else:
                    m = Mount(s, args, tmp, uri)
                    with m as path:
                        rate, check, cpu = read(args, w, path,
                                                [m.proc.pid, server.pid])
                rates[(s, w)].append(rate)
                cpus[(s, w)].append(cpu)
                if checks.setdefault(w, check) != check:
                    sys.exit("%s returned different data for %s" % (s, w))
                print("rep %d %-15s %-5s %8.1f MB/s %6.2f CPU s/GB"
                      % (rep + 1, s, w, rate, cpu), file=sys.stderr,
                      flush=True)
    return ({k: statistics.median(v) for k, v in rates.items()},
            {k: statistics.median(v) for k, v in cpus.items()})


NAMES = {"seq": "sequential pread 1 MiB", "mmap": "mmap scan",
         "rand": "random pread 4 KiB"}


def report(args, systems, workloads, med, cpu):
    ours = [s for s in systems if s.startswith("r3map")]
    print("| workload | " + " | ".join(systems) + " |")
    print("|---" * (len(systems) + 1) + "|")
    rows = []
    for w in workloads:
        row = {"workload": w, "mb_s": {s: med[(s, w)] for s in systems},
               "cpu_s_per_gb": {s: cpu[(s, w)] for s in systems},
               "vs_nbdfuse": {}, "vs_tmpfs": {}}
        cells = []
        for s in systems:
            cell = "%.0f" % med[(s, w)]
            if s in ours and "nbdfuse" in systems:
                row["vs_nbdfuse"][s] = med[(s, w)] / med[("nbdfuse", w)]
                cell += " (%.2fx)" % row["vs_nbdfuse"][s]
            if s in ours and "tmpfs" in systems:
                row["vs_tmpfs"][s] = med[(s, w)] / med[("tmpfs", w)]
            cells.append(cell)
        print("| %s | %s |" % (NAMES.get(w, w), " | ".join(cells)))
        rows.append(row)
    print("\nMB/s = 10^6 bytes/s, median of %d; (x) = against nbdfuse; "
          "random: %d threads x %d reads; memory pre-warmed before each "
          "read: %s." % (args.repeat, args.rand_threads, args.rand_reads,
                         args.prewarm if args.prewarm_bytes else "no"))
    print("\nCPU seconds per GB read (reader + FUSE client + server):\n")
    print("| workload | " + " | ".join(systems) + " |")
    print("|---" * (len(systems) + 1) + "|")
    for w in workloads:
        print("| %s | %s |" % (NAMES.get(w, w), " | ".join(
            "%.2f" % cpu[(s, w)] for s in systems)))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"benchmark": "fuse_read", "size": args.size,
                       "repeat": args.repeat,
                       "rand_threads": args.rand_threads,
                       "rand_reads": args.rand_reads, "unit": "MB/s",
                       "r3map_args": args.r3map_args,
                       "settle_s": args.settle, "prewarm": args.prewarm,
                       "load_before": LOAD_BEFORE,
                       "load_after": os.getloadavg(),
                       "date": time.strftime("%Y-%m-%d %H:%M"),
                       "results": rows}, f, indent=1)
            f.write("\n")


if __name__ == "__main__":
    main()

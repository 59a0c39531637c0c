#!/usr/bin/python3
"""Compare r3map serve with nbdkit and qemu-nbd under fio's nbd engine.

Servers (started and stopped here, all three in one run):
  r3map    r3map serve memory:SIZE
  nbdkit   nbdkit memory SIZE
  qemu-nbd qemu-nbd on a raw file in a tmpfs directory (/dev/shm)
and with --null build/bench/nbd-null-server, the ceiling:
  null      a server that does no work: keeps no data, answers each
            batch of requests with one writev, sleeps in recv
  null-spin the same, polling the socket instead of sleeping
  null-hold the same, polling up to 20 us for more requests before it
            answers a batch (fewer, larger batches)
Where fio is the bottleneck, no server can beat fio against the ceiling;
the table adds the fastest null server / nbdkit and r3map / that.
Transports: Unix socket and TCP on 127.0.0.1 (port picked at run time).
Workloads (fio --ioengine=nbd, one job and connection; --jobs N: N of
each, so that one fio process is not the bottleneck):
  seq-read   1 MiB reads,  depth 16      rand-read   4 KiB reads,  depth 32
  seq-write  1 MiB writes, depth 16      rand-write  4 KiB writes, depth 32
Every server gets a full sequential write first (warm-up: memory pages are
allocated before anything is timed).  Each cell is run --reps times,
interleaved (rep 1 of every cell, then rep 2, ...) so that drift on a
shared machine spreads evenly; the table shows medians in MB/s and the
ratio r3map/nbdkit.  It also shows the server's CPU time per GiB moved
(user + system of the server process during the run, from /proc): on a
busy machine throughput mostly measures the neighbours, CPU per GiB much
less so.  Writes bench/results/nbd-server-<stamp>.json and .md.

Usage: bench/nbd-server-bench.py --r3map build/tools/r3map/r3map
       [--size 1G] [--runtime 5] [--reps 3] [--only r3map,nbdkit] [--jobs 1]
       [--r3map-base OTHER-R3MAP] [--null build/bench/nbd-null-server]
"""
import argparse
import datetime
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

WORKLOADS = [
    ("seq-read", "read", "1M", 16),
    ("rand-read", "randread", "4k", 32),
    ("seq-write", "write", "1M", 16),
    ("rand-write", "randwrite", "4k", 32),
]


# The ceiling's three ways of waiting for requests (bench/nbd_null_server.c).
NULLS = {"null": [], "null-spin": ["--spin"], "null-hold": ["--hold", "20"]}

TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK   # utime + stime


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(check, proc, what, timeout=20):
    end = time.time() + timeout
    while time.time() < end:
        if proc.poll() is not None:
            sys.exit(f"{what} exited early (status {proc.returncode})")
        if check():
            return
        time.sleep(0.05)
    sys.exit(f"{what} did not start")


def port_open(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


class Server:
    def __init__(self, name, args, sock, port, tmp):
        self.name, self.sock, self.port = name, sock, port
        log = open(os.path.join(tmp, name + ".log"), "w")
        self.proc = subprocess.Popen(args, stdout=log, stderr=log)
        wait_ready(lambda: os.path.exists(sock) and port_open(port),
                   self.proc, name)

    def uri(self, transport):
        if transport == "unix":
            return f"nbd+unix:///?socket={self.sock}"
        return f"nbd://127.0.0.1:{self.port}/"

    def pid(self, transport):
        return self.proc.pid

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def start_servers(which, binaries, size, tmp):
    servers = []
    for name in which:
        sock, port = os.path.join(tmp, name + ".sock"), free_port()
        if name in NULLS:
            servers.append(Server(name, [binaries["null"], size, sock,
                                         str(port)] + NULLS[name],
                                  sock, port, tmp))
        elif name in binaries:
            servers.append(Server(name, [
                binaries[name], "serve", "-q", "--listen",
                f"nbd+unix:///?socket={sock}", "--listen",
                f"nbd://127.0.0.1:{port}", f"memory:{size}"],
                sock, port, tmp))
        else:
            servers.append(PairServer(name, size, sock, port, tmp))
    return servers


class PairServer:
    """nbdkit and qemu-nbd listen on one address per process: run one
    process per transport (each with its own memory or image file)."""

    shm = None

    def __init__(self, name, size, sock, port, tmp):
        self.name, self.sock, self.port = name, sock, port
        self.procs = []
        if name == "nbdkit":
            # -f: stay in the foreground so we own the process.
            unix = ["nbdkit", "-f", "-U", sock, "memory", size]
            tcp = ["nbdkit", "-f", "-i", "127.0.0.1", "-p", str(port),
                   "memory", size]
        else:
            imgs = [os.path.join(self.shm, f"img-{t}") for t in ("u", "t")]
            for img in imgs:
                subprocess.run(["truncate", "-s", size, img], check=True)
            common = ["qemu-nbd", "-f", "raw", "--persistent",
                      "--shared=0", "-x", ""]
            unix = common + ["-k", sock, imgs[0]]
            tcp = common + ["-b", "127.0.0.1", "-p", str(port), imgs[1]]
        self.procs.append(self._start(unix, tmp, "unix",
                                      lambda: os.path.exists(sock)))
        self.procs.append(self._start(tcp, tmp, "tcp",
                                      lambda: port_open(port)))

    def _start(self, args, tmp, tag, ready):
        log = open(os.path.join(tmp, f"{self.name}-{tag}.log"), "w")
        p = subprocess.Popen(args, stdout=log, stderr=log)
        wait_ready(ready, p, f"{self.name} ({tag})")
        return p

    def uri(self, transport):
        if transport == "unix":
            return f"nbd+unix:///?socket={self.sock}"
        return f"nbd://127.0.0.1:{self.port}/"

    def pid(self, transport):
        return self.procs[0 if transport == "unix" else 1].pid

    def stop(self):
        for p in self.procs:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def fio(uri, rw, bs, depth, size, runtime, tmp, pid=None, jobs=1):
    """Returns (MB/s, server CPU ms per GiB, fio CPU ms per GiB), summed
    over the jobs."""
    out = os.path.join(tmp, "fio.json")
    args = ["fio", "--name=b", "--ioengine=nbd", f"--uri={uri}",
            f"--rw={rw}", f"--bs={bs}", f"--iodepth={depth}",
            f"--size={size}", f"--numjobs={jobs}", "--output-format=json",
            f"--output={out}"]
    if runtime:
        args += ["--time_based", f"--runtime={runtime}"]
    before = cpu_seconds(pid) if pid else 0
    subprocess.run(args, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    after = cpu_seconds(pid) if pid else 0
    with open(out) as f:
        all_jobs = json.load(f)["jobs"]
    kib = nbytes = fio_cpu = 0
    for job in all_jobs:
        kib += job["read"]["bw"] + job["write"]["bw"]
        nbytes += job["read"]["io_bytes"] + job["write"]["io_bytes"]
        fio_cpu += ((job["usr_cpu"] + job["sys_cpu"]) / 100
                    * job["job_runtime"])
    gib = max(nbytes / (1 << 30), 1e-9)
    return kib * 1024 / 1e6, 1000 * (after - before) / gib, fio_cpu / gib


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--r3map", required=True)
    ap.add_argument("--r3map-base", help="a second r3map binary (e.g. a "
                    "build of main), run as server 'r3map-base' for A/B")
    ap.add_argument("--null", help="build/bench/nbd-null-server: run "
                    "the ceiling (a server that does no work) as servers "
                    "'null' (sleeps in recv), 'null-spin' (polls) and "
                    "'null-hold' (polls up to 20 us for more requests "
                    "before it answers a batch)")
    ap.add_argument("--workloads", default=",".join(w[0] for w in WORKLOADS))
    ap.add_argument("--size", default="1G")
    ap.add_argument("--runtime", type=int, default=5)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--only", default="r3map,nbdkit,qemu-nbd")
    ap.add_argument("--transports", default="unix,tcp")
    ap.add_argument("--jobs", type=int, default=1,
                    help="fio jobs (each its own connection) per run")
    ap.add_argument("--out", default=os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "results"))
    a = ap.parse_args()
    for prog in ("fio", "nbdkit", "qemu-nbd"):
        if not shutil.which(prog):
            sys.exit(f"{prog} is not installed (scripts/deps.sh test)")
    which = a.only.split(",")
    binaries = {"r3map": os.path.abspath(a.r3map)}
    if a.r3map_base:
        binaries["r3map-base"] = os.path.abspath(a.r3map_base)
        if "r3map-base" not in which:
            which.insert(1, "r3map-base")
    if a.null:
        binaries["null"] = os.path.abspath(a.null)
        which += [n for n in NULLS if n not in which]
    workloads = [w for w in WORKLOADS if w[0] in a.workloads.split(",")]
    transports = a.transports.split(",")
    a.load_start = os.getloadavg()
    # SIGTERM ends the run like ^C: the servers and scratch files go too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("terminated"))
    tmp = tempfile.mkdtemp(prefix="r3m-bench-")
    PairServer.shm = tempfile.mkdtemp(prefix="r3m-bench-", dir="/dev/shm")
    servers = start_servers(which, binaries, a.size, tmp)
    results = {}
    try:
        for s in servers:
            for t in transports:
                fio(s.uri(t), "write", "1M", 16, a.size, 0, tmp)  # warm-up
        for rep in range(a.reps):
            for wl, rw, bs, depth in workloads:
                for t in transports:
                    # Rotate the order each rep: no server always runs
                    # right after the same neighbour.
                    k = rep % len(servers)
                    for s in servers[k:] + servers[:k]:
                        mbs, scpu, ccpu = fio(s.uri(t), rw, bs, depth,
                                              a.size, a.runtime, tmp,
                                              s.pid(t), a.jobs)
                        results.setdefault(f"{wl}/{t}/{s.name}",
                                           []).append((mbs, scpu, ccpu))
                        print(f"rep {rep + 1}: {wl:10} {t:4} {s.name:8} "
                              f"{mbs:8.0f} MB/s  server {scpu:6.0f} ms/GiB"
                              f"  fio {ccpu:6.0f} ms/GiB", file=sys.stderr)
    finally:
        for s in servers:
            s.stop()
        shutil.rmtree(PairServer.shm, ignore_errors=True)
        shutil.rmtree(tmp, ignore_errors=True)
    report(a, which, workloads, transports, results)


def pair_ratio(a, b):
    """Median of the rep-by-rep ratios: the two ran next to each other, so
    a slow stretch of the machine hits both and cancels out."""
    return statistics.median(x / max(y, 1e-9) for x, y in zip(a, b))


def report(a, which, workloads, transports, results):
    rows = []
    for wl, rw, bs, depth in workloads:
        for t in transports:
            row = {"workload": wl, "transport": t, "bs": bs, "depth": depth}
            for name in which:
                runs = results[f"{wl}/{t}/{name}"]
                row[name] = {
                    "median_mbs": statistics.median(r[0] for r in runs),
                    "median_server_cpu_ms_per_gib":
                        statistics.median(r[1] for r in runs),
                    "median_fio_cpu_ms_per_gib":
                        statistics.median(r[2] for r in runs),
                    "runs_mbs": [r[0] for r in runs]}
            if "r3map" in which and "nbdkit" in which:
                row["ratio_vs_nbdkit"] = (row["r3map"]["median_mbs"]
                                          / row["nbdkit"]["median_mbs"])
                row["ratio_vs_nbdkit_pairs"] = pair_ratio(
                    row["r3map"]["runs_mbs"], row["nbdkit"]["runs_mbs"])
                row["cpu_ratio_nbdkit_vs_r3map"] = (
                    row["nbdkit"]["median_server_cpu_ms_per_gib"]
                    / max(row["r3map"]["median_server_cpu_ms_per_gib"], 1))
            if "r3map-base" in which:
                row["ratio_vs_base"] = (row["r3map"]["median_mbs"]
                                        / row["r3map-base"]["median_mbs"])
                row["ratio_vs_base_pairs"] = pair_ratio(
                    row["r3map"]["runs_mbs"], row["r3map-base"]["runs_mbs"])
                row["pairs_ahead"] = sum(
                    n > b for n, b in zip(row["r3map"]["runs_mbs"],
                                          row["r3map-base"]["runs_mbs"]))
            nulls = [n for n in NULLS if n in which]
            if nulls and "nbdkit" in which:
                best = max(row[n]["median_mbs"] for n in nulls)
                row["ceiling_vs_nbdkit"] = best / row["nbdkit"]["median_mbs"]
                per_rep = [max(v) for v in zip(*(row[n]["runs_mbs"]
                                                 for n in nulls))]
                row["ceiling_vs_nbdkit_pairs"] = pair_ratio(
                    per_rep, row["nbdkit"]["runs_mbs"])
                if "r3map" in which:
                    row["r3map_vs_ceiling"] = row["r3map"]["median_mbs"] / best
            rows.append(row)
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    meta = {"date": stamp, "host": platform.node(), "cpus": os.cpu_count(),
            "kernel": platform.release(), "size": a.size,
            "runtime_s": a.runtime, "reps": a.reps, "jobs": a.jobs,
            "load_start": a.load_start, "load_end": os.getloadavg()}
    os.makedirs(a.out, exist_ok=True)
    with open(os.path.join(a.out, f"nbd-server-{stamp}.json"), "w") as f:
        json.dump({"meta": meta, "rows": rows}, f, indent=2)
    ratios = "ratio_vs_nbdkit" in rows[0]
    base = "ratio_vs_base" in rows[0]
    head = "| workload | transport | " + " | ".join(
        f"{n} MB/s" for n in which)
    sep = "|---|---|" + "---|" * len(which)
    if ratios:
        head += " | r3map/nbdkit"
        sep += "---|"
    if base:
        head += " | r3map/r3map-base"
        sep += "---|"
    ceiling = "ceiling_vs_nbdkit" in rows[0]
    if ceiling:
        # The ceiling: the fastest of the servers that do no work.
        head += " | ceiling/nbdkit"
        sep += "---|"
        if "r3map_vs_ceiling" in rows[0]:
            head += " | r3map/ceiling"
            sep += "---|"
    head += " | " + " | ".join(f"{n} CPU ms/GiB" for n in which)
    sep += "---|" * len(which)
    if ratios:
        head += " | CPU nbdkit/r3map"
        sep += "---|"
    lines = [head + " |", sep]
    for r in rows:
        cells = [r["workload"], r["transport"]] + [
            f"{r[n]['median_mbs']:.0f}" for n in which]
        if ratios:
            cells.append(f"{r['ratio_vs_nbdkit']:.2f}x (pairs "
                         f"{r['ratio_vs_nbdkit_pairs']:.2f}x)")
        if base:
            cells.append(f"{r['ratio_vs_base']:.2f}x (pairs "
                         f"{r['ratio_vs_base_pairs']:.2f}x, ahead in "
                         f"{r['pairs_ahead']}/{a.reps})")
        if ceiling:
            cells.append(f"{r['ceiling_vs_nbdkit']:.2f}x (pairs "
                         f"{r['ceiling_vs_nbdkit_pairs']:.2f}x)")
            if "r3map_vs_ceiling" in r:
                cells.append(f"{r['r3map_vs_ceiling']:.2f}x")
        cells += [f"{r[n]['median_server_cpu_ms_per_gib']:.0f}"
                  for n in which]
        if ratios:
            cells.append(f"{r['cpu_ratio_nbdkit_vs_r3map']:.2f}x")
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Every rep, MB/s (min-max of the reps in brackets):", "",
              "| workload | transport | " + " | ".join(which) + " |",
              "|---|---|" + "---|" * len(which)]
    for r in rows:
        lines.append("| " + " | ".join(
            [r["workload"], r["transport"]] + [
                " ".join(f"{v:.0f}" for v in r[n]["runs_mbs"])
                + f" [{min(r[n]['runs_mbs']):.0f}-"
                f"{max(r[n]['runs_mbs']):.0f}]" for n in which]) + " |")
    lines += ["", "The client: fio's CPU ms per GiB (median) and the cores that "
              "makes at the median rate (1.00 = fio is the bottleneck):", "",
              "| workload | transport | " + " | ".join(which) + " |",
              "|---|---|" + "---|" * len(which)]
    for r in rows:
        cells = []
        for n in which:
            ms = r[n]["median_fio_cpu_ms_per_gib"]
            cores = ms / 1000 * r[n]["median_mbs"] * 1e6 / (1 << 30)
            cells.append(f"{ms:.0f} ({cores:.2f})")
        lines.append("| " + " | ".join([r["workload"], r["transport"]]
                                       + cells) + " |")
    md = "\n".join(lines) + "\n"
    with open(os.path.join(a.out, f"nbd-server-{stamp}.md"), "w") as f:
        f.write(f"fio nbd engine, {a.jobs} job(s), {a.size}, {a.runtime} s x {a.reps} reps, "
                f"medians; {os.cpu_count()} CPUs, load average "
                f"{meta['load_start'][0]:.1f} at the start, "
                f"{meta['load_end'][0]:.1f} at the end\n\n" + md)
    print(md)


if __name__ == "__main__":
    main()

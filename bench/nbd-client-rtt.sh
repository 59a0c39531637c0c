#!/usr/bin/env bash
# Bulk read of an export through delay-proxy at several round-trip times:
# r3map's NBD client against libnbd's nbdcopy, same server (nbdkit memory,
# filled with data so nothing is a hole), same sink, same proxy.  Wall time
# of the whole command, so connecting and handshakes count for both.
#   CLIENT=copy    (default) r3map copy URI file:TMPFS with its default
#                  options (plus COPY_FLAGS, if set) against nbdcopy URI
#                  TMPFS: the user command, through the region engine, into
#                  a file in /dev/shm
#   CLIENT=copy-tuned  the same with --chunk-size 1M --window 128 (the
#                  hand-tuned flags this benchmark used before the engine
#                  coalesced requests), for comparison
#   CLIENT=reader  bench/nbd-client-read (the backend alone, bytes dropped)
#                  against nbdcopy URI null:
#
#   bench/nbd-client-rtt.sh [BUILD_DIR]
#   env: RTTS="0 2 10 40" (ms)  REPS=3  SIZE=1G
#        CONNECTIONS=N (passed to both clients; unset = both use their
#        default, which is 4 for each)
#        SERVER=nbdkit (nbdkit memory) or r3map (r3map serve memory:SIZE)
#        PREWARM=2G: before every copy, touch and free this much memory, so
#        that both clients write their 1 GiB into memory the host still
#        backs (on these VMs memory the host took back costs 1.6-3.2 s per
#        GiB to touch again, docs/benchmarks.md "Warm and cold memory");
#        0 = off
#        CLIENT=copy, copy-tuned or reader (above); COPY_FLAGS="-r 2M"
#
# Prints a markdown table and writes
# bench/results/nbd-client-rtt-SERVER-CLIENT.json.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
rtts=${RTTS:-0 2 10 40}
reps=${REPS:-3}
size=${SIZE:-1G}
conns=${CONNECTIONS:-}
server=${SERVER:-nbdkit}
client=${CLIENT:-copy}
copy_flags=${COPY_FLAGS:-}
prewarm=${PREWARM:-2G}
case $client in
  copy) ;;
  copy-tuned) copy_flags="--chunk-size 1M --window 128 $copy_flags" ;;
  reader) ;;
  *) echo "CLIENT must be copy, copy-tuned or reader" >&2; exit 2 ;;
esac
# URI query and nbdcopy option for CONNECTIONS; empty: the defaults.
conn_q= ; conn_opt=()
if [ -n "$conns" ]; then conn_q="&connections=$conns"; conn_opt=(--connections="$conns"); fi
shm=${SHM:-/dev/shm}
reader=$build/bench/nbd-client-read
proxy=$build/bench/proxy/delay-proxy
for p in "$reader" "$proxy"; do
  [ -x "$p" ] || { echo "missing $p: run scripts/build.sh $build" >&2; exit 1; }
done
for p in nbdkit nbdcopy; do
  command -v $p >/dev/null || { echo "missing $p (scripts/deps.sh test)" >&2; exit 1; }
done

T=$(mktemp -d /tmp/r3m-rtt-XXXXXX)
pids=()
cleanup () {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$T"
}
trap cleanup EXIT
wait_for () { for _ in $(seq 300); do [ -s "$1" ] && return 0; sleep 0.1; done; echo "timeout: $1" >&2; exit 1; }

if [ "$server" = r3map ]; then
  "$build/tools/r3map/r3map" serve -q --listen "nbd+unix:///?socket=$T/nbd.sock" \
    --pid-file "$T/nbd.pid" "memory:$size" >"$T/server.log" 2>&1 &
else
  nbdkit -f -U "$T/nbd.sock" -P "$T/nbd.pid" memory "$size" >"$T/server.log" 2>&1 &
fi
pids+=($!)
wait_for "$T/nbd.pid"
# Real data everywhere: an unwritten memory export is one big hole, which
# nbdcopy would skip.
nbdcopy -- [ nbdkit pattern "$size" ] "nbd+unix:///?socket=$T/nbd.sock"

now () { date +%s%N; }
prewarm_mem () { /usr/bin/python3 bench/prewarm.py "$prewarm"; }
results=$T/results.txt
: > "$results"
run_rtt () {   # run_rtt RTT_MS URI LABEL
  local rtt=$1 uri=$2 label=$3
  for rep in $(seq "$reps"); do
    local t0 t1 out
    prewarm_mem
    if [ "$client" != reader ]; then
      t0=$(now)
      # shellcheck disable=SC2086 # COPY_FLAGS is a list of options
      "$build/tools/r3map/r3map" copy -q $copy_flags \
        "$uri$conn_q" "file:$shm/r3m-rtt-$$.img" \
        || { echo "r3map copy failed" >&2; exit 1; }
      t1=$(now)
      out='{}'
      rm -f "$shm/r3m-rtt-$$.img"
    else
      t0=$(now)
      out=$("$reader" "$uri$conn_q" 2>&1) || { echo "r3map failed: $out" >&2; exit 1; }
      t1=$(now)
    fi
    echo "$label r3map $rep $((t1 - t0)) $out" >> "$results"
    local sink=null:
    [ "$client" != reader ] && sink=$shm/nbdcopy-rtt-$$.img
    prewarm_mem
    t0=$(now)
    nbdcopy "${conn_opt[@]}" "$uri" "$sink" \
      || { echo "nbdcopy failed" >&2; exit 1; }
    t1=$(now)
    rm -f "$shm/nbdcopy-rtt-$$.img"
    echo "$label nbdcopy $rep $((t1 - t0))" >> "$results"
  done
}

# Reference: straight to the Unix socket, no proxy.
run_rtt 0 "nbd+unix:///?socket=$T/nbd.sock" direct
for rtt in $rtts; do
  rm -f "$T/proxy.ready"
  half=$(/usr/bin/python3 -c "print($rtt / 2)")
  "$proxy" --target "unix:$T/nbd.sock" --delay "${half}ms" \
    --ready-file "$T/proxy.ready" >/dev/null &
  pids+=($!)
  wait_for "$T/proxy.ready"
  addr=$(cat "$T/proxy.ready")
  # nbd:// needs a query separator for &connections.
  run_rtt "$rtt" "nbd://$addr/?" "$rtt"
  kill "${pids[-1]}"
done

mkdir -p bench/results
/usr/bin/python3 - "$results" "$size" "$reps" "${conns:-default}" "$(nproc)" "$server" "$client" "$copy_flags" \
  "$(cut -d' ' -f1-3 /proc/loadavg)" "$prewarm" <<'PY'
import json, statistics, sys, re, datetime
path, size, reps, conns, ncpu, server, client, copy_flags, load, prewarm = sys.argv[1:]
runs, inner = {}, {}
for line in open(path):
    f = line.split(None, 4)
    label, who, ns = f[0], f[1], int(f[3])
    runs.setdefault(label, {}).setdefault(who, []).append(ns / 1e9)
    if who == "r3map":
        inner.setdefault(label, []).append(json.loads(f[4]))
units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
nbytes = int(size[:-1]) * units[size[-1]] if size[-1] in units else int(size)
rows = []
for label, r in runs.items():
    ours = statistics.median(r["r3map"])
    theirs = statistics.median(r["nbdcopy"])
    rows.append({
        "rtt_ms": None if label == "direct" else float(label),
        "path": "unix socket, no proxy" if label == "direct" else "delay-proxy (TCP)",
        "r3map_s": r["r3map"], "nbdcopy_s": r["nbdcopy"],
        "r3map_GBps": nbytes / ours / 1e9, "nbdcopy_GBps": nbytes / theirs / 1e9,
        "ratio": theirs / ours,
        "r3map_open_s_median": None if client != "reader" else
            statistics.median(x["open_s"] for x in inner[label]),
        "r3map_read_only_GBps_median": None if client != "reader" else
            statistics.median(x["read_GBps"] for x in inner[label]),
    })
zero = next((x for x in rows if x["rtt_ms"] == 0.0), None)
print("| RTT | path | r3map client | nbdcopy | r3map / nbdcopy | r3map vs its 0 ms |")
print("|---:|---|---:|---:|---:|---:|")
for x in rows:
    rel = "" if not zero or x["rtt_ms"] is None else "%.0f%%" % (100 * x["r3map_GBps"] / zero["r3map_GBps"])
    print("| %s | %s | %.2f GB/s | %.2f GB/s | %.2fx | %s |" % (
        "-" if x["rtt_ms"] is None else "%g ms" % x["rtt_ms"], x["path"],
        x["r3map_GBps"], x["nbdcopy_GBps"], x["ratio"], rel))
out = {
    "benchmark": "nbd-client-rtt", "date": datetime.datetime.now().isoformat(),
    "server": server, "client": client, "copy_flags": copy_flags.strip(),
    "bytes": nbytes, "reps": int(reps),
    "connections": conns, "prewarm": prewarm,
    "cpus": int(ncpu), "loadavg_at_end": load,
    "note": "median wall time of the whole command (connect + read); sink: "
            + ("bytes dropped" if client == "reader" else "a file in /dev/shm"),
    "rows": rows,
}
name = "bench/results/nbd-client-rtt-%s-%s.json" % (server, client)
json.dump(out, open(name, "w"), indent=2)
print("\nserver: %s, client: %s %s; memory pre-warmed before each copy: %s; "
      "wrote %s (load average %s on %s CPUs)" % (
    server, client, copy_flags.strip(), prewarm, name, load, ncpu))
PY

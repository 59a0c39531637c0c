#!/usr/bin/env bash
# r3map copy --verify over a delayed link, two builds alternating (A/B):
# nbdkit pattern behind bench/proxy/delay-proxy, copied into a file in
# /dev/shm.  Records the wall time of the command and the copy and verify
# times of its summary line; prints medians as a markdown table.
#
#   bench/verify-rtt.sh OLD_R3MAP NEW_R3MAP [BUILD_DIR]
#   env: RTT=40 (ms)  SIZES="64M 256M"  REPS=3
#
# Writes bench/results/verify-rtt.json.
set -euo pipefail
cd "$(dirname "$0")/.."
old=${1:?usage: $0 OLD_R3MAP NEW_R3MAP [BUILD_DIR]}
new=${2:?usage: $0 OLD_R3MAP NEW_R3MAP [BUILD_DIR]}
build=${3:-build}
rtt=${RTT:-40}
sizes=${SIZES:-64M 256M}
reps=${REPS:-3}
proxy=$build/bench/proxy/delay-proxy
[ -x "$proxy" ] || { echo "missing $proxy: run scripts/build.sh $build" >&2; exit 1; }
command -v nbdkit >/dev/null || { echo "missing nbdkit (scripts/deps.sh test)" >&2; exit 1; }

T=$(mktemp -d /tmp/r3m-vrtt-XXXXXX)
pids=()
cleanup () {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$T" "/dev/shm/r3m-vrtt-$$.img"
}
trap cleanup EXIT
wait_for () { for _ in $(seq 300); do [ -s "$1" ] && return 0; sleep 0.1; done; echo "timeout: $1" >&2; exit 1; }
now () { date +%s%N; }

results=$T/results.txt
: > "$results"
half=$(/usr/bin/python3 -c "print($rtt / 2)")
for size in $sizes; do
  nbdkit -f -U "$T/nbd-$size.sock" -P "$T/nbd-$size.pid" pattern "$size" \
    >"$T/server-$size.log" 2>&1 &
  pids+=($!)
  wait_for "$T/nbd-$size.pid"
  "$proxy" --target "unix:$T/nbd-$size.sock" --delay "${half}ms" \
    --ready-file "$T/proxy-$size.ready" >/dev/null &
  pids+=($!)
  wait_for "$T/proxy-$size.ready"
  uri="nbd://$(cat "$T/proxy-$size.ready")/"
  for rep in $(seq "$reps"); do
    for which in old new; do
      bin=$old; [ $which = new ] && bin=$new
      rm -f "/dev/shm/r3m-vrtt-$$.img"
      t0=$(now)
      "$bin" copy --no-progress --verify "$uri" "file:/dev/shm/r3m-vrtt-$$.img" \
        2>"$T/err" || { cat "$T/err" >&2; exit 1; }
      t1=$(now)
      echo "$size $which $rep $((t1 - t0)) $(tail -n 1 "$T/err")" >> "$results"
    done
  done
  kill "${pids[-1]}" "${pids[-2]}"
done

mkdir -p bench/results
/usr/bin/python3 - "$results" "$rtt" "$reps" "$(cut -d' ' -f1-3 /proc/loadavg)" <<'PY'
import json, re, statistics, sys, datetime
path, rtt, reps, load = sys.argv[1:]
def secs(text):   # cli_format_duration: "0.84 s", "12.3 s", "1m22s", "1h05m"
    m = re.fullmatch(r"([\d.]+) s", text)
    if m:
        return float(m.group(1))
    m = re.fullmatch(r"(\d+)m(\d+)s", text)
    if m:
        return int(m.group(1)) * 60 + int(m.group(2))
    m = re.fullmatch(r"(\d+)h(\d+)m", text)
    return int(m.group(1)) * 3600 + int(m.group(2)) * 60
runs = {}
for line in open(path):
    size, which, rep, ns, summary = line.split(None, 4)
    m = re.search(r"copied .* in (.+?) \(.*verified in (.+)$", summary.strip())
    runs.setdefault((size, which), []).append(
        {"wall_s": int(ns) / 1e9, "copy_s": secs(m.group(1)),
         "verify_s": secs(m.group(2))})
print("| size | build | wall | copy | verify | runs (wall) |")
print("|---|---|---:|---:|---:|---|")
rows = []
for (size, which), r in runs.items():
    med = {k: statistics.median(x[k] for x in r) for k in ("wall_s", "copy_s", "verify_s")}
    rows.append({"size": size, "build": which, "runs": r, **{k + "_median": v for k, v in med.items()}})
    print("| %s | %s | %.1f s | %.2f s | %.2f s | %s |" % (
        size, which, med["wall_s"], med["copy_s"], med["verify_s"],
        ", ".join("%.1f" % x["wall_s"] for x in r)))
json.dump({"benchmark": "verify-rtt", "date": datetime.datetime.now().isoformat(),
           "rtt_ms": float(rtt), "reps": int(reps), "loadavg_at_end": load,
           "rows": rows}, open("bench/results/verify-rtt.json", "w"), indent=2)
print("\nRTT %s ms; wrote bench/results/verify-rtt.json (load average %s)" % (rtt, load))
PY

"""Reads meson testlog.json files and prints one verdict per test, the
reasons of skipped tests, and the final "N passed, N failed" line.
Exit status 1 if anything failed."""
import json
import os
import sys

ci = os.environ.get("R3M_CI") == "1"
passed = failed = 0
skips = []
fails = []
for path in sys.argv[1:]:
    build = path.split("/")[0]
    try:
        lines = open(path).read().splitlines()
    except OSError:
        fails.append(f"{build}: no test log (build or setup failed)")
        failed += 1
        continue
    for line in lines:
        t = json.loads(line)
        name = f"{build}: {t['name']}"
        res = t["result"]
        if res in ("OK", "EXPECTEDFAIL"):
            passed += 1
        elif res == "SKIP":
            out = [l for l in (t.get("stdout") or "").splitlines() if l.strip()]
            why = out[-1] if out else "(the test gave no reason)"
            skips.append(f"{name}: {why}")
            if ci:
                failed += 1
                fails.append(f"{name}: skipped on CI: {why}")
        else:
            failed += 1
            fails.append(f"{name}: {res}")

for s in skips:
    print(f"SKIP {s}")
for f in fails:
    print(f"FAIL {f}")
print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed else 0)

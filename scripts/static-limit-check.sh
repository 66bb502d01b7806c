#!/usr/bin/env bash
# Issue 5's static-limit check: move one large partition with a static
# migration rate (default 5 MB/s, adaptive off) and report the copy's
# achieved rate (bytes copied over time spent COPYING) against the limit.
#
#   scripts/static-limit-check.sh [OUT_DIR]
#
# LIMIT (bytes/s, default 5000000), KEYS (default 1000000, 100 B values) on
# 8 partitions (about 16 MB each), and LOAD (ops/s of a concurrent bench,
# default 0 = idle) change the run; BULK_CPU_PERCENT (default 0 = none)
# sets the nodes' CPU ceiling on migration work (cluster.bulk_cpu_percent),
# which also holds the copy back when it is the smaller limit. Needs a
# release build. Ports 6392/7092.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-/tmp/evenkeel-static-limit}
BIN=${EVENKEEL_BIN:-target/release/evenkeel}
ADMIN=127.0.0.1:7092
LIMIT=${LIMIT:-5000000}
rm -rf "$OUT" && mkdir -p "$OUT"
printf '[cluster]\nbulk_cpu_percent = %s\n' "${BULK_CPU_PERCENT:-0}" > "$OUT/evenkeel.toml"
"$BIN" up --config "$OUT/evenkeel.toml" --partitions 8 --data-dir "$OUT/data" --listen 127.0.0.1:6392 --admin "$ADMIN" > "$OUT/up.log" 2>&1 &
UP=$!
LOADER=
# The concurrent bench (LOAD) goes too, or it outlives the script.
trap 'kill $LOADER $UP 2>/dev/null; wait $LOADER $UP 2>/dev/null || true' EXIT
for _ in $(seq 100); do "$BIN" cluster status --admin "$ADMIN" > /dev/null 2>&1 && break; sleep 0.2; done
"$BIN" bench --target redis://127.0.0.1:6392 --rate 1000 --seconds 1 --keys "${KEYS:-1000000}" --value-size 100 --preload --quiet > "$OUT/preload.txt"
"$BIN" throttle set --adaptive off --migration-rate "$LIMIT" --admin "$ADMIN" > /dev/null
if [ "${LOAD:-0}" -gt 0 ]; then
  "$BIN" bench --target redis://127.0.0.1:6392 --rate "$LOAD" --seconds 600 --keys "${KEYS:-1000000}" --value-size 100 --quiet > "$OUT/load.txt" 2>&1 &
  LOADER=$!
fi
# Partition 0 is on node 1 (the first third); move it to node 2.
"$BIN" move 0 2 --wait --admin "$ADMIN" > "$OUT/move.txt"
"$BIN" migrations --json --admin "$ADMIN" > "$OUT/migrations.json"
python3 - "$OUT/migrations.json" "$LIMIT" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))["migrations"][0]
limit = float(sys.argv[2])
tr = m["transitions"]
copying = sum((tr[i + 1]["at_ms"] if i + 1 < len(tr) else m["finished_ms"]) - t["at_ms"] for i, t in enumerate(tr) if t["state"] == "COPYING")
rate = m["bytes_copied"] * 1000.0 / copying
print(f"moved partition {m['partition']}: {m['bytes_copied']} bytes in {copying} ms of COPYING = {rate/1e6:.2f} MB/s, "
      f"{rate/limit:.3f}x the {limit/1e6:.2f} MB/s limit ({'within' if abs(rate/limit-1) <= 0.10 else 'OUTSIDE'} ±10%); final state {m['state']}")
PY

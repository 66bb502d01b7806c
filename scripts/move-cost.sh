#!/usr/bin/env bash
# What a move costs apart from its bytes: rebalance a cluster whose
# partitions are empty (3 nodes, add a 4th: 32 moves of 128 partitions by
# default) and print, per move, the CPU of the `up` process's threads by
# group (the idle cluster's own CPU over the same time taken away) and the
# metadata store's work (records logged, bytes, fsyncs and their time, from
# `/metrics`). The per-move control plane: phase changes, routing changes,
# locks, fences and their fsyncs, verification of nothing, the drop.
#
#   scripts/move-cost.sh [OUT_DIR]
#
# IDLE (default 20) seconds of the idle cluster are measured first;
# PARTITIONS (default 128) sets the cluster's partitions. Needs a release
# build and an otherwise quiet machine (it measures CPU, not latency).
# Ports 6393/7093.
#
# KEYS=N (default 0) SETs N keys of VALUE_SIZE (default 100) bytes first
# (`evenkeel bench --preload`, the acceptance scenario's data with
# KEYS=1000000) and waits SETTLE (default 30) seconds for the engine's
# flushes and compactions: the moves then copy data, and the figures add
# the CPU per MB copied (the bytes the coordinator counts), the copy's
# cost per byte beside the per-move cost the empty run measures.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-/tmp/evenkeel-move-cost}
BIN=${EVENKEEL_BIN:-target/release/evenkeel}
ADMIN=127.0.0.1:7093
IDLE=${IDLE:-20}
rm -rf "$OUT" && mkdir -p "$OUT"
"$BIN" up --partitions "${PARTITIONS:-128}" --data-dir "$OUT/data" --listen 127.0.0.1:6393 --admin "$ADMIN" > "$OUT/up.log" 2>&1 &
UP=$!
trap 'kill $UP 2>/dev/null; wait $UP 2>/dev/null || true' EXIT
for _ in $(seq 100); do "$BIN" cluster status --admin "$ADMIN" > /dev/null 2>&1 && break; sleep 0.2; done
"$BIN" node add --admin "$ADMIN" > /dev/null
if [ "${KEYS:-0}" -gt 0 ]; then
  "$BIN" bench --target redis://127.0.0.1:6393 --keys "$KEYS" --value-size "${VALUE_SIZE:-100}" --preload \
    --rate 100 --seconds 1 --recovery-seconds 0 --quiet > "$OUT/preload.txt" 2>&1
  sleep "${SETTLE:-30}"
fi
# Let the new node's start-up work settle before the idle reading.
sleep 3
# One reading: wall clock, each thread group's CPU (schedstat run time,
# group = thread name without its trailing number) and the metadata
# store's counters.
cat > "$OUT/reading.py" <<'PY'
import os, re, sys, time, urllib.request
pid, admin = int(sys.argv[1]), sys.argv[2]
groups = {}
for tid in os.listdir(f"/proc/{pid}/task"):
    try:
        run_ns = int(open(f"/proc/{pid}/task/{tid}/schedstat").read().split()[0])
        name = open(f"/proc/{pid}/task/{tid}/comm").read().strip()
    except OSError:
        continue  # the thread ended between listing and reading
    group = re.sub(r"[-_]?\d+(-\d+)?$", "", name)
    groups[group] = groups.get(group, 0) + run_ns
meta = {}
with urllib.request.urlopen(f"http://{admin}/metrics", timeout=5) as r:
    for line in r.read().decode().splitlines():
        m = re.match(r"(evenkeel_meta_\w+) ([\d.e+-]+)$", line)
        if m:
            meta[m.group(1)] = float(m.group(2))
print(f"t {time.time()}")
for k, v in sorted(groups.items()):
    print(f"cpu {k} {v}")
for k, v in sorted(meta.items()):
    print(f"meta {k} {v}")
PY
python3 "$OUT/reading.py" $UP "$ADMIN" > "$OUT/idle-start.txt"
sleep "$IDLE"
python3 "$OUT/reading.py" $UP "$ADMIN" > "$OUT/idle-end.txt"
"$BIN" rebalance start --wait --admin "$ADMIN" > "$OUT/rebalance.txt" 2>&1
python3 "$OUT/reading.py" $UP "$ADMIN" > "$OUT/rebalance-end.txt"
"$BIN" migrations --json --admin "$ADMIN" > "$OUT/migrations.json"
python3 - "$OUT" <<'PY' | tee "$OUT/move-cost.txt"
import json, sys
out = sys.argv[1]
def reading(name):
    r = {"cpu": {}, "meta": {}}
    for line in open(f"{out}/{name}.txt"):
        kind, *rest = line.split()
        if kind == "t":
            r["t"] = float(rest[0])
        else:
            r[kind][rest[0]] = float(rest[1])
    return r
a, b, c = reading("idle-start"), reading("idle-end"), reading("rebalance-end")
moves = [m for m in json.load(open(f"{out}/migrations.json"))["migrations"] if m["state"] == "DONE"]
n = len(moves)
if n == 0:
    sys.exit("no move finished: see rebalance.txt")
idle_s, reb_s = b["t"] - a["t"], c["t"] - b["t"]
def delta(x, y, kind, k):
    return y[kind].get(k, 0.0) - x[kind].get(k, 0.0)
mb = sum(m.get("bytes_copied", 0) for m in moves) / 1e6
what = f"copying {mb:.1f} MB" if mb > 0 else "of empty partitions"
print(f"{n} moves {what} in {reb_s:.1f} s; idle cluster measured for {idle_s:.1f} s")
per_mb = lambda ms: f" {ms / mb:9.2f}" if mb > 0 else ""
print(f"{'thread group':22s} {'idle ms/s':>10s} {'rebalance ms':>13s} {'beyond idle':>12s} {'per move':>9s}" + (f" {'per MB':>9s}" if mb > 0 else ""))
total_idle = total_reb = total_extra = 0.0
for g in sorted(set(b["cpu"]) | set(c["cpu"]), key=lambda g: -delta(b, c, "cpu", g)):
    idle_rate = delta(a, b, "cpu", g) / 1e6 / idle_s
    reb = delta(b, c, "cpu", g) / 1e6
    extra = reb - idle_rate * reb_s
    total_idle, total_reb, total_extra = total_idle + idle_rate, total_reb + reb, total_extra + extra
    if reb >= 0.5 or idle_rate >= 0.05:
        print(f"{g:22s} {idle_rate:10.2f} {reb:13.1f} {extra:12.1f} {extra / n:9.2f}" + per_mb(extra))
print(f"{'all':22s} {total_idle:10.2f} {total_reb:13.1f} {total_extra:12.1f} {total_extra / n:9.2f}" + per_mb(total_extra))
def meta(k):
    return delta(b, c, "meta", k) - delta(a, b, "meta", k) / idle_s * reb_s
records = meta("evenkeel_meta_wal_records_total")
fsyncs = meta("evenkeel_meta_wal_fsync_seconds_count")
fsync_ms = meta("evenkeel_meta_wal_fsync_seconds_sum") * 1e3
print(f"metadata store beyond idle, per move: {records / n:.1f} records logged ({meta('evenkeel_meta_wal_bytes_total') / n / 1024:.1f} KiB), "
      f"{fsyncs / n:.1f} fsyncs taking {fsync_ms / n:.2f} ms; idle: {delta(a, b, 'meta', 'evenkeel_meta_wal_records_total') / idle_s:.1f} records/s")
PY

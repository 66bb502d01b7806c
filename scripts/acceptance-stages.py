#!/usr/bin/env python3
"""Where in a rebalance the acceptance run's latency went.

    scripts/acceptance-stages.py OUT_DIR

OUT_DIR is a scripts/rebalance-acceptance.sh output directory. Splits the
load's seconds into stages by the migrations' transitions (before; copy:
first COPYING to last COMPLETED; bake; cleanup: first CLEANING_UP to last
DONE; after; copy and cleanup overlap when moves run in waves, and then bake
is empty) and prints each stage's median per-second p99 (the bench's
"typical second"; the bench report's "by stage of the moves" line now
gives the same table for every run, against the before window's typical
second). With SAMPLES=1 (OUT_DIR/samples.csv) it also splits the
copy stage's requests by what their partition was doing: copying, already
moved, or neither (on a node that was a copy's source at the time, or not),
with p50/p99/p99.9 of their service time (sent to completed). A tail that
rises in every class is the process, not the moving partitions' nodes.
"""
import collections, csv, json, os, statistics, sys

out = sys.argv[1]
r = json.load(open(f"{out}/report.json"))
start_ms = r["started_unix_ms"]
migs = json.load(open(f"{out}/migrations.json"))["migrations"]
ph = {p["name"]: p for p in r["timeline"]["phases"]}
moves = {}
for m in migs:
    at = {t["state"]: (t["at_ms"] - start_ms) / 1000 for t in m["transitions"]}
    if "COPYING" in at:
        moves[m["partition"]] = (m["source"], at["COPYING"], at.get("COMPLETED", float("inf")), at.get("CLEANING_UP"), at.get("DONE"))
if not moves:
    sys.exit("no migration copied in this run")
c0, c1 = min(v[1] for v in moves.values()), max(v[2] for v in moves.values())
cleaning = [v[3] for v in moves.values() if v[3] is not None]
done = [v[4] for v in moves.values() if v[4] is not None]
k0, k1 = (min(cleaning), max(done)) if cleaning and done else (c1 + 1, c1 + 1)
stages = {"before": (ph["before"]["start_s"], ph["before"]["end_s"]), "copy": (c0, c1 + 1), "bake": (c1 + 1, k0), "cleanup": (k0, k1 + 1), "after": (k1 + 1, float("inf"))}
seconds = r["timeline"]["seconds"]
print("median per-second p99 (seconds):")
for name, (lo, hi) in stages.items():
    xs = [s["p99_us"] for s in seconds if lo <= s["t"] and s["t"] + 1 <= hi]
    print(f"  {name:8s} " + (f"{statistics.median(xs):6.0f} µs ({len(xs)})" if xs else "     - (overlapped)"))

if not os.path.exists(f"{out}/samples.csv"):
    sys.exit(0)

def crc16(data):  # CRC-16/XMODEM, Redis Cluster's key slot hash
    crc = 0
    for b in data:
        crc ^= b << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) & 0xFFFF if crc & 0x8000 else (crc << 1) & 0xFFFF
    return crc

def slot_key(key):  # {hash tags} as in evenkeel_types::slot::key_slot
    i = key.find("{")
    if i >= 0:
        j = key.find("}", i + 1)
        if j > i + 1:
            return key[i + 1:j]
    return key

cluster = json.load(open(f"{out}/cluster.json"))
n = cluster["num_partitions"]
owner = {p["id"]: p["owner"] for p in cluster["partitions"]}
partition = {}
classes = collections.defaultdict(list)
b0, b1 = stages["before"]
for row in csv.DictReader(open(f"{out}/samples.csv")):
    t = int(row["intended_us"]) / 1e6
    svc = int(row["completed_us"]) - int(row["sent_us"])
    if b0 <= t < b1:
        classes["before (all)"].append(svc)
        continue
    key = row["key"]
    if not (c0 <= t < c1 + 1) or not key:
        continue
    if key not in partition:
        partition[key] = (crc16(slot_key(key).encode()) & 16383) * n // 16384
    p = partition[key]
    if p in moves and moves[p][1] <= t < moves[p][2]:
        c = "copy: partition copying"
    elif p in moves and t >= moves[p][2]:
        c = "copy: partition already moved"
    else:
        node = moves[p][0] if p in moves else owner[p]
        sources = {s for s, a, b, _, _ in moves.values() if a <= t < b}
        c = "copy: other, its node a source now" if node in sources else "copy: other, its node not a source"
    classes[c].append(svc)

def pct(xs, q):
    return xs[min(len(xs) - 1, int(len(xs) * q))]

print("service time (sent to completed) by what the request's partition was doing:")
for c in sorted(classes):
    xs = sorted(classes[c])
    print(f"  {c:36s} n={len(xs):7d}  p50 {pct(xs, .5):5d}  p99 {pct(xs, .99):6d}  p99.9 {pct(xs, .999):6d} µs")

#!/usr/bin/env python3
"""Which seconds of a rebalance cost the load its latency: those in which a
move changed state, or the others.

    scripts/acceptance-events.py OUT_DIR...

Each OUT_DIR is a scripts/rebalance-acceptance.sh output directory. Every
second of the "during" window is put in one group by the migration
transitions that fell in it (from `migrations --json`): `cutover` (a move
entered CUTTING_OVER), else `prepare` (a move entered PREPARING), else
`other` (any other transition), else `none`. Prints, per group, how many
seconds it has and their median per-second p99 over the before window's
(the bench's "typical second" ratio), and how many seconds of the during
window had a p99 over 3x the before window's median (stalls).
"""
import json, statistics, sys

for out in sys.argv[1:]:
    r = json.load(open(f"{out}/report.json"))
    start_ms = r["started_unix_ms"]
    ph = {p["name"]: p for p in r["timeline"]["phases"]}
    seconds = r["timeline"]["seconds"]
    states = {}
    for m in json.load(open(f"{out}/migrations.json"))["migrations"]:
        for t in m["transitions"]:
            states.setdefault(int((t["at_ms"] - start_ms) / 1000), set()).add(t["state"])
    def within(name, s):
        return ph[name]["start_s"] <= s["t"] < ph[name]["end_s"]
    base = statistics.median(s["p99_us"] for s in seconds if within("before", s))
    groups, stalls, during = {}, 0, 0
    for s in seconds:
        if not within("during", s):
            continue
        during += 1
        stalls += s["p99_us"] > 3 * base
        seen = states.get(int(s["t"]), set())
        group = "cutover" if "CUTTING_OVER" in seen else "prepare" if "PREPARING" in seen else "other" if seen else "none"
        groups.setdefault(group, []).append(s["p99_us"])
    cells = "  ".join(f"{g} {len(v)} s {statistics.median(v) / base:.2f}x" for g, v in sorted(groups.items()))
    print(f"{out}: before median p99 {base} us; {cells}; {stalls} of {during} s over 3x")

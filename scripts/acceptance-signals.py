#!/usr/bin/env python3
"""Which of the cluster's own latency figures moved with what the clients
saw: the throttle's candidate signals against the bench's typical second.

    scripts/acceptance-signals.py OUT_DIR...

Each OUT_DIR is a scripts/rebalance-acceptance.sh output directory. From its
throttle-timeline.txt (the coordinator's view, once a second) it takes the
routers' p99 (parse to reply: the adaptive throttle's signal by default),
their p99 from arrival (kernel receive timestamp to reply:
`aimd.signal_from_arrival`) and the runtime's scheduling-delay p99 (see
`aimd.signal_includes_sched`), and prints each one's median over the
before, during and after windows of the bench's report, with during/before
and after/before ratios, next to the bench's typical second (the median of
its per-second p99s). A signal the throttle can steer by rises in the
rebalance runs about as the bench does and stays put in the no-rebalance
control (mode none).
"""
import datetime
import json
import re
import statistics
import sys

SIGNALS = ("router", "arrival", "sched")
FOREGROUND = re.compile(r"p99 (\d+) µs\s+from arrival (\d+) µs\s+sched (\d+) µs")


def timeline(out, t0):
    """(run-relative second, (router, arrival, sched) p99 µs) per poll with traffic."""
    day = datetime.datetime.fromtimestamp(t0, datetime.timezone.utc).date()
    rows, t = [], None
    for line in open(f"{out}/throttle-timeline.txt"):
        if line.startswith("--- "):
            hh, mm, ss = map(int, line.split()[1].split(":"))
            at = datetime.datetime(day.year, day.month, day.day, hh, mm, ss, tzinfo=datetime.timezone.utc).timestamp()
            if at < t0 - 43200:  # the run crossed midnight (UTC)
                at += 86400
            t = at - t0
        elif line.startswith("foreground") and t is not None:
            m = FOREGROUND.search(line)
            if m and int(m.group(1)) > 0:
                rows.append((t, tuple(map(int, m.groups()))))
    return rows


def ratio(x, base):
    return f"{x / base:.2f}x" if base else "-"


for out in sys.argv[1:]:
    r = json.load(open(f"{out}/report.json"))
    t0 = r["started_unix_ms"] / 1000
    phases = {p["name"]: (p["start_s"], p["end_s"]) for p in r["timeline"]["phases"]}
    rows = timeline(out, t0)
    medians = {}
    for name, (a, b) in phases.items():
        inside = [v for t, v in rows if a <= t < b]
        typical = [s["p99_us"] for s in r["timeline"]["seconds"] if a <= s["t"] < b - 1 and s["requests"] > 0]
        if inside and typical:
            medians[name] = [statistics.median(v[i] for v in inside) for i in range(3)] + [statistics.median(typical)]
    if "before" not in medians or "during" not in medians:
        print(f"{out}: no foreground figures in both the before and during windows")
        continue
    cols = []
    for i, label in enumerate(SIGNALS + ("bench typical second",)):
        b, d = medians["before"][i], medians["during"][i]
        a = medians.get("after", [None] * 4)[i]
        after = f", after {a:.0f} ({ratio(a, b)})" if a is not None else ""
        cols.append(f"{label} {b:.0f} → {d:.0f} µs ({ratio(d, b)}){after}")
    print(f"{out}: " + "; ".join(cols))

#!/usr/bin/env python3
"""Summarizes acceptance series: per mode, and each mode against the control.

    scripts/series-summary.py SERIES_TXT... [--budget 1.10] [--control none]

Reads the per-run lines `scripts/acceptance-series.sh` writes to
series.txt (several files pool their runs, e.g. the same day's series in
both orders) and prints, per mode: runs, the median and range of the
window p99 ratio (during / before), of the typical second's ratio
(median per-second p99), and of the after window's; how many runs were
within the budget on the window ratio; and the median typical second
before and during in µs. On a 2-vCPU VM the before window itself moves
between runs, so the absolute figures sit beside the ratios.

Then each mode against the control (mode `none`, no rebalance: the same
load on the same cluster, what the machine does on its own): a
Mann-Whitney U test, exact, two-sided, on each figure. A p-value is the
chance of runs at least this far apart if the mode's figure and the
control's came from one distribution: small (under 0.05) says the
rebalance moved the figure beyond the machine's own run-to-run swing;
large says these runs cannot tell the two apart. With three runs a side
the smallest possible p is 0.1, so a series needs about five runs a mode
for the test to be able to say anything.
"""
import math
import re
import sys

LINE = re.compile(
    r"(\S+)\s+round \d+: p99 (\d+) -> (\d+) us = [\d.]+x  typical second (\d+) -> (\d+) us = [\d.]+x, after (\d+) us"
)


def median(xs):
    s = sorted(xs)
    n = len(s)
    return s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2


def mann_whitney_p(a, b):
    """Exact two-sided p of the rank-sum (Mann-Whitney) test, ties given
    their mean rank: the share of all ways to pick len(a) of the pooled
    runs whose rank sum lies at least as far from its mean as a's does.
    Counted by dynamic programming over rank sums, not by listing the
    ways (26 runs have 9.7 million), so a series of any length answers
    at once."""
    pooled = sorted(a + b)
    # Twice each run's mean rank, so tied runs keep whole numbers.
    rank2, i = {}, 0
    while i < len(pooled):
        j = i
        while j < len(pooled) and pooled[j] == pooled[i]:
            j += 1
        rank2[pooled[i]] = i + j + 1
        i = j
    n, total = len(a), sum(rank2[x] for x in pooled)
    # ways[k][s]: picks of k runs whose doubled ranks sum to s.
    ways = [[0] * (total + 1) for _ in range(n + 1)]
    ways[0][0] = 1
    for r in (rank2[x] for x in pooled):
        for k in range(n, 0, -1):
            row, fewer = ways[k], ways[k - 1]
            for s in range(total, r - 1, -1):
                row[s] += fewer[s - r]
    centre = n * (len(pooled) + 1)
    far = abs(sum(rank2[x] for x in a) - centre)
    extreme = sum(w for s, w in enumerate(ways[n]) if abs(s - centre) >= far)
    return extreme / math.comb(len(pooled), n)


def main(argv):
    budget, control, files = 1.10, "none", []
    it = iter(argv)
    for arg in it:
        if arg == "--budget":
            budget = float(next(it))
        elif arg == "--control":
            control = next(it)
        else:
            files.append(arg)
    if not files:
        sys.exit(__doc__)
    runs = {}
    for path in files:
        for line in open(path):
            m = LINE.match(line)
            if not m:
                continue
            mode = m.group(1)
            pb, pd, tb, td, ta = (float(m.group(i)) for i in range(2, 7))
            runs.setdefault(mode, []).append({
                "window": pd / pb, "typical": td / max(tb, 1), "after": ta / max(tb, 1),
                "typical before": tb, "typical during": td,
            })
    if not runs:
        sys.exit("no run lines found in " + ", ".join(files))
    for mode, rs in runs.items():
        def fig(k):
            xs = [r[k] for r in rs]
            return f"{median(xs):.2f}x ({min(xs):.2f}-{max(xs):.2f})"
        within = sum(r["window"] <= budget for r in rs)
        print(f"{mode}: {len(rs)} runs; window p99 {fig('window')}, {within} of {len(rs)} within {budget:.2f}x; "
              f"typical second {fig('typical')}; after {fig('after')}; "
              f"typical second before {median([r['typical before'] for r in rs]):.0f} µs, during {median([r['typical during'] for r in rs]):.0f} µs")
    if control not in runs:
        return
    base = runs[control]
    for mode, rs in runs.items():
        if mode == control:
            continue
        parts = []
        for k in ("window", "typical", "after", "typical before", "typical during"):
            a, b = [r[k] for r in rs], [r[k] for r in base]
            parts.append(f"{k} p={mann_whitney_p(a, b):.2f}")
        print(f"{mode} against {control} ({len(rs)} and {len(base)} runs, Mann-Whitney, two-sided): " + ", ".join(parts))


if __name__ == "__main__":
    main(sys.argv[1:])

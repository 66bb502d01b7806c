#!/usr/bin/env bash
# Runs scripts/rebalance-acceptance.sh several times and prints each run's
# figures and their medians. On a small shared machine one run's window p99
# swings with the machine (the same bench against a plain redis-server,
# with nothing happening, gives window-to-window p99 ratios from 0.5x to
# 3x), so a single run's ratio says little; the median of several, next to
# the median "typical second" ratio, is the figure to quote.
#
#   scripts/acceptance-series.sh [RUNS] [MODE...]
#
# RUNS (default 5) rounds; each round runs every MODE (default: default)
# once, interleaved, so slow drift of the machine hits every mode alike.
# Output directories are /tmp/evenkeel-series/<mode>-<round>; each run's
# data directory is removed after it (by rebalance-acceptance.sh, unless
# KEEP_DATA=1), its report is kept.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-5}
shift || true
MODES=("$@")
[ ${#MODES[@]} -eq 0 ] && MODES=(default)
ROOT=/tmp/evenkeel-series
mkdir -p "$ROOT"
for round in $(seq "$RUNS"); do
  for mode in "${MODES[@]}"; do
    out="$ROOT/$mode-$round"
    scripts/rebalance-acceptance.sh "$mode" "$out" > "$out.log" 2>&1 || { echo "$mode round $round failed: see $out.log" >&2; exit 1; }
    python3 - "$out" "$mode" "$round" <<'PY'
import json, sys
out, mode, rnd = sys.argv[1:]
r = json.load(open(f"{out}/report.json"))
ph = {p["name"]: p for p in r["timeline"]["phases"]}
b, d = ph["before"]["latency"], ph["during"]["latency"]
# The typical second (median per-second p99) of each window, as the report
# prints it. The after window's is there when it held 20 whole seconds or
# more: as slow as during means what raised "during" outlasted the moves
# (the machine, or the rebalanced cluster).
t = r.get("typical_second") or {}
tb, td, ta = t.get("before_us", 0), t.get("during_us", 0), t.get("after_us") or 0
c = r["correctness"]
# The p99 outside host freezes (bench --host-probe), when there was one.
hp = {p["name"]: p for p in (r.get("host") or {}).get("phases", [])}
fb, fd = hp.get("before", {}), hp.get("during", {})
froze = fb.get("freezes", 0) + fd.get("freezes", 0)
outside = f"  outside {froze} host freezes {fd['p99_outside_freezes_us'] / max(fb['p99_outside_freezes_us'], 1):.2f}x" if froze else ""
# How busy the machine's CPUs were before (bench --host-probe): above about
# 70% on a 2-core machine, queueing for a core shapes p99 and ratios are
# draws (docs/disruption-budget.md, "A second kind of test VM").
busy = (fb.get("cpu") or {}).get("busy_pct")
outside += f"  machine {busy:.0f}% busy before" if busy is not None else ""
# The probe's wake-up lateness p99, during over before: what the machine
# added to every thread's wake-up.
if fb.get("wake_p99_us") and fd.get("wake_p99_us"):
    outside += f"  wake-up p99 {fd['wake_p99_us'] / fb['wake_p99_us']:.2f}x"
# Requests to the moving partitions against the rest (bench report's "by
# partition"): above 1 the moving partitions' path cost more.
split = r.get("partitions")
if split and split["rest"]["p99_us"]:
    outside += f"  moving/rest p99 {split['moving']['p99_us'] / split['rest']['p99_us']:.2f}x"
# The storage engines' time compacting per window (bench --admin): a
# window their own cycle landed in is slower whether or not anything moved.
eng = {p["name"]: sum(p["by_node"].values()) / 1e3 for p in (r.get("engine") or {}).get("phases", [])}
if eng:
    outside += f"  compacting {eng.get('before', 0):.1f}/{eng.get('during', 0):.1f}/{eng.get('after', 0):.1f} s"
# What the run found: free memory, page cache and the 1-minute load
# (rebalance-acceptance.sh's start-state.txt).
try:
    st = open(f"{out}/start-state.txt").read().split("\n")
    mem = {l.split(":")[0]: int(l.split()[1]) for l in st if l.startswith(("MemFree:", "Cached:"))}
    outside += f"  found free {mem['MemFree'] / 2**20:.1f} GiB, cache {mem['Cached'] / 2**20:.1f} GiB, load {st[1].split()[0]}"
except (OSError, IndexError, KeyError, ValueError):
    pass
print(f"{mode:8s} round {rnd}: p99 {b['p99_us']} -> {d['p99_us']} us = {d['p99_us'] / b['p99_us']:.2f}x  typical second {tb} -> {td} us = {td / max(tb, 1):.2f}x, after {ta} us = {ta / max(tb, 1):.2f}x  "
      f"during {ph['during']['end_s'] - ph['during']['start_s']:.0f} s  errors {r['errors']['errors'] + r['errors']['timeouts']}  anomalies {sum(a['count'] for a in c['anomalies'])}{outside}", flush=True)
PY
  done
done | tee "$ROOT/series.txt"
# Per mode: medians, ranges, runs within the budget; each mode against the
# control (mode none) with a rank test, when the series ran one.
python3 scripts/series-summary.py "$ROOT/series.txt" | tee -a "$ROOT/series.txt"

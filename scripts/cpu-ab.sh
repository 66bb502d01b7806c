#!/usr/bin/env bash
# Compares what two builds cost per request: CPU and system calls of the
# `up` process under the acceptance load with no rebalance, in interleaved
# runs. On a small shared VM one run's p99 says little about a change that
# saves a few percent of CPU, and the CPU a run costs drifts with the host
# by +-10% from run to run; the bench's own CPU in the same window (its
# work is the same whichever build serves it) is printed next to it as the
# host's speed at the time. Quote medians over several pairs.
#
#   scripts/cpu-ab.sh BIN_A BIN_B [PAIRS] [OUT_DIR]
#
# PAIRS (default 3) rounds of A then B (ORDER="B A" flips it). Each run is
# scripts/rebalance-acceptance.sh in mode none with the bench binary and the
# cluster from the same build; after WARMUP (default 60) seconds of load and
# the 20 s baseline window, the up process's CPU (utime+stime from
# /proc/PID/stat), the bench's, and, where perf is installed, the up
# process's system calls and context switches are counted over WINDOW
# (default 20) seconds. Copy a build aside first (cp target/release/evenkeel
# /tmp/evenkeel-A): cargo overwrites target/release. Needs root for perf.
# EXTRA_TOML_A and EXTRA_TOML_B (printf escapes allowed) are appended to
# each arm's configuration (rebalance-acceptance.sh's EXTRA_TOML): one
# binary with a setting on and off is the comparison with no difference
# in code layout, e.g. EXTRA_TOML_A='[cluster]\nrow_cache_mib = 0' and the
# same binary as BIN_A and BIN_B.
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 2 ] || { sed -n 2,18p "$0" >&2; exit 2; }
A=$(realpath "$1"); B=$(realpath "$2"); PAIRS=${3:-3}; OUT=${4:-/tmp/evenkeel-cpu-ab}
for bin in "$A" "$B"; do [ -x "$bin" ] || { echo "not an executable: $bin" >&2; exit 2; }; done
[ "$A" != "$B" ] || [ "${EXTRA_TOML_A:-}" != "${EXTRA_TOML_B:-}" ] || { echo "BIN_A and BIN_B are the same file, with the same EXTRA_TOML" >&2; exit 2; }
WINDOW=${WINDOW:-20}
mkdir -p "$OUT"
: > "$OUT/summary.txt"
# The window's measuring command, run by the bench as its during command.
cat > "$OUT/measure.sh" <<'SH'
#!/usr/bin/env bash
set -euo pipefail
up=$(pgrep -f -- "$EK_BIN up --config" | head -1)
bench=$(pgrep -f -- "$EK_BIN bench " | head -1)
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
u0=$(ticks "$up"); b0=$(ticks "$bench")
if command -v perf > /dev/null; then
  perf stat -x, -e raw_syscalls:sys_enter,context-switches -p "$up" -o "$EK_OUT.perf" -- sleep "$EK_WINDOW" > /dev/null 2>&1 || sleep "$EK_WINDOW"
else
  sleep "$EK_WINDOW"
fi
u1=$(ticks "$up"); b1=$(ticks "$bench")
echo "$((u1 - u0)) $((b1 - b0)) $(getconf CLK_TCK)" > "$EK_OUT.ticks"
SH
chmod +x "$OUT/measure.sh"
for round in $(seq "$PAIRS"); do
  for v in ${ORDER:-A B}; do
    bin=$A; extra=${EXTRA_TOML_A:-}
    [ "$v" = B ] && { bin=$B; extra=${EXTRA_TOML_B:-}; }
    run="$OUT/$v$round"
    rm -f "$run.ticks" "$run.perf"
    EXTRA_TOML=$extra EK_BIN=$bin EK_OUT=$run EK_WINDOW=$WINDOW EVENKEEL_BIN=$bin WARMUP=${WARMUP:-60} SECONDS_LOAD=$((WINDOW + 25)) BASELINE=20 RECOVERY=5 \
      NONE_DURING="$OUT/measure.sh" scripts/rebalance-acceptance.sh none "$OUT/run" > "$run.log" 2>&1 \
      || { echo "run $v$round failed: see $run.log" >&2; exit 1; }
    [ -s "$run.ticks" ] || { echo "run $v$round measured nothing: see $run.log" >&2; exit 1; }
    python3 - "$run" "$v" "$round" "$WINDOW" <<'PY' | tee -a "$OUT/summary.txt"
import json, os, sys
run, v, rnd, window = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
up, bench, hz = (int(x) for x in open(f"{run}.ticks").read().split())
calls = switches = None
if os.path.exists(f"{run}.perf"):
    for line in open(f"{run}.perf"):
        f = line.strip().split(",")
        if len(f) > 2 and f[0].isdigit():
            if f[2] == "raw_syscalls:sys_enter": calls = int(f[0]) / window
            if f[2] == "context-switches": switches = int(f[0]) / window
r = json.load(open(os.path.join(os.path.dirname(run), "run", "report.json")))
ph = {p["name"]: p for p in r["timeline"]["phases"]}
busy = next((p.get("cpu") or {} for p in (r.get("host") or {}).get("phases", []) if p["name"] == "during"), {}).get("busy_pct")
fmt = lambda x, spec: "-" if x is None else format(x, spec)
print(f"{v} round {rnd}: up {up / hz / window * 100:.1f}% of a core  bench {bench / hz / window * 100:.1f}%  "
      f"syscalls/s {fmt(calls, '.0f')}  switches/s {fmt(switches, '.0f')}  p50 {ph['during']['latency']['p50_us']} us  "
      f"machine {fmt(busy, '.0f')}% busy", flush=True)
PY
  done
done
python3 - "$OUT/summary.txt" <<'PY'
import collections, re, sys
runs = collections.defaultdict(lambda: collections.defaultdict(list))
for line in open(sys.argv[1]):
    m = re.match(r"(\S) round", line)
    if not m:
        continue
    for key, val in re.findall(r"(up|bench|syscalls/s|switches/s|p50) ([\d.]+)", line):
        runs[m.group(1)][key].append(float(val))
med = lambda xs: sorted(xs)[len(xs) // 2]
for v in sorted(runs):
    print(f"{v}: {len(runs[v]['up'])} runs, medians: " + "  ".join(f"{k} {med(xs):.1f}" for k, xs in runs[v].items()))
PY

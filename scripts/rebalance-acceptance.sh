#!/usr/bin/env bash
# The rebalance acceptance run (issues 4 and 5): 1M keys of 100 bytes on 3
# nodes, add a 4th, and rebalance while `evenkeel bench` sends 10,000 ops/s
# (half reads). Prints the bench's before/during/after report.
#
#   scripts/rebalance-acceptance.sh [default|off|static|nolane|arrival|none] [OUT_DIR]
#
# default: the shipped settings (adaptive throttle, background lane)
# off:     throttling off (adaptive off, no limits), lane still on
# static:  adaptive off, a static limit per migration of STATIC_RATE bytes/s
#          (default 5000000)
# nolane:  default throttle, node background lane off
# arrival: default throttle steering by the routers' p99 from arrival
#          (aimd.signal_from_arrival, experimental)
# none:    no rebalance at all: the "during" window is NONE_SECONDS (default
#          120) of the same load on the same 4 nodes, the control for what
#          the cluster does on its own (engine flushes, compactions);
#          NONE_DURING replaces the sleep with any command, e.g. an
#          external CPU hog, to see what work the machine does outside the
#          cluster costs the same load
#
# RATE (default 10000) and SECONDS_LOAD (default 120) change the load;
# WARMUP (default 90) seconds of load run after the preload and before the
# baseline window, so the baseline is the loaded cluster's steady state, not
# the preload's flush and compaction backlog. It was 30: with no rebalance
# at all (mode none, 90 s), the nodes' p99 was 113-131 µs in that window
# and 145-187 µs in every later 15 s, and the during/before ratios of the
# no-rebalance control ranged 0.99-1.38x (typical second, 3 runs); with 90
# they were 0.97-0.98x (2 runs). BASELINE (default 60) is the "before"
# window and RECOVERY (default 60) the shortest "after" window, in
# seconds. Both were shorter (20 and 5): on a shared 2-vCPU VM the load's
# own CPU cost drifts by a third over tens of seconds with nothing
# happening (runtime workers 54-90% of a core per 10 s at the same 10,000
# ops/s, with the bench's p99 following, 385-2,043 µs), so a 20 s baseline
# was whichever stretch it landed on. A minute either side of the moves
# shows whether what raised "during" outlasted it: in three default runs
# with a 60 s after window the after window's typical second was 0.80,
# 1.01 and 1.01x during's (the report says so when it happens).
# HALT_POLL_NS sets the guest's halt polling (cpuidle haltpoll's
# guest_halt_poll_ns, root; refused where the cpuidle driver is not
# haltpoll, since nothing else reads it) for the run and puts the old
# value back after:
# on a VM whose idle vCPUs halt without polling, waking one is a trip
# through the hypervisor, and the median moves in a 60 µs step with any
# extra work on an idle vCPU (docs/disruption-budget.md, "Host freezes"). The bench
# report's "machine:" line says which setting a run had.
# BENCH_NICE (default 0) runs the bench at that nice value; negative (root)
# gives it the CPU first. Measured once at -10: the bench's p99 did not come
# closer to the router's (the cluster's runtime then waited longer for a
# core instead), so the acceptance figures use 0.
# The report's "host noise" line (bench --host-probe) says how much the
# machine itself stalled in each window; compare it before reading much
# into a during/before ratio. Its "host freezes" line (only when the
# probe woke 10 ms or more late before or during) gives the p99 of the
# requests not in flight during one: see docs/disruption-budget.md, "Host freezes".
# scripts/freeze-trace.py, started alongside, traces what the CPUs did in
# each freeze.
# SAMPLES=1 also writes every request of the load to OUT_DIR/samples.csv
# (bench --samples: about 45 MB), to find out when the slow ones were sent.
# THREADS=1 samples every thread on the machine once a second
# (scripts/thread-sample.py, OUT_DIR/threads.txt, about 3 MB) and writes
# OUT_DIR/threads-by-stage.txt (scripts/acceptance-threads.py): each
# stage's machine busy time, context switches and page faults, and each
# thread group's CPU, run-queue wait and faults.
# EXTRA_TOML (printf escapes allowed) is appended to the configuration, for
# experiments: EXTRA_TOML='[migration]\nreverse_interval_ms = 1000'.
# The run's data (OUT_DIR/data, about 1.3 GB) is removed at the end unless
# KEEP_DATA=1; the reports stay. A run needs 15% of its filesystem free
# (MIN_FREE_PERCENT): below 10% the nodes' health gate pauses migrations
# (`throttle.health.pause_disk_free_ratio`), and a series of runs that kept
# their data once filled the disk that far, so the rebalance measured a
# pause (status "PAUSED ... disk 9.5% free < 10.0%"), not a move.
# Needs a release build (cargo build --release). Uses ports 6395 and 7095.
set -euo pipefail
cd "$(dirname "$0")/.."
MODE=${1:-default}
OUT=${2:-/tmp/evenkeel-acceptance-$MODE}
BIN=${EVENKEEL_BIN:-target/release/evenkeel}
ADMIN=127.0.0.1:7095
rm -rf "$OUT" && mkdir -p "$OUT"
FREE=$(df --output=avail,size -k "$OUT" | awk 'NR==2 {printf "%d", 100 * $1 / $2}')
if [ "$FREE" -lt "${MIN_FREE_PERCENT:-15}" ]; then
  echo "only $FREE% of the filesystem under $OUT is free (need ${MIN_FREE_PERCENT:-15}%): the nodes would pause migrations for disk below 10%; remove old runs' data directories (OUT_DIR/data)" >&2
  exit 1
fi
# The machine as the run found it: memory, page cache, disk, load, and
# whether the previous run's cluster had just freed its memory and data
# (the control runs' baselines were slower than the rebalancing runs' in
# a whole series with the same configuration: docs/disruption-budget.md, "A
# third kind of test VM"; this is to compare what the two kinds found).
{
  date -u +%FT%TZ
  cat /proc/loadavg
  grep -E '^(MemFree|Cached|Dirty|AnonPages|Shmem):' /proc/meminfo
  df -k --output=avail,used "$OUT" | tail -1
} > "$OUT/start-state.txt"
CONFIG="$OUT/evenkeel.toml"
case "$MODE" in
  default) printf '[throttle]\n' > "$CONFIG" ;;
  off) printf '[throttle]\nadaptive = false\n' > "$CONFIG" ;;
  static) printf '[throttle]\nadaptive = false\nmigration_rate_bytes_per_s = %s\n' "${STATIC_RATE:-5000000}" > "$CONFIG" ;;
  nolane) printf '[cluster]\nbackground_lane = false\n[throttle]\n' > "$CONFIG" ;;
  arrival) printf '[throttle]\n[throttle.aimd]\nsignal_from_arrival = true\n' > "$CONFIG" ;;
  none) printf '[throttle]\n' > "$CONFIG" ;;
  *) echo "unknown mode $MODE" >&2; exit 2 ;;
esac
if [ -n "${EXTRA_TOML:-}" ]; then printf '%b\n' "$EXTRA_TOML" >> "$CONFIG"; fi
# Another run's cluster on these ports would answer in this one's place
# (its data, its run id: the checker then reports every key as an anomaly).
if "$BIN" cluster status --admin "$ADMIN" > /dev/null 2>&1; then
  echo "a cluster already answers on $ADMIN: is another acceptance run going?" >&2
  exit 1
fi
# Set before anything starts, so a refusal leaves nothing running; the old
# value goes back on any exit.
POLL=/sys/module/haltpoll/parameters/guest_halt_poll_ns
RESTORE=:
if [ -n "${HALT_POLL_NS:-}" ]; then
  [[ "$HALT_POLL_NS" =~ ^[0-9]+$ ]] || { echo "HALT_POLL_NS must be a number of nanoseconds, not '$HALT_POLL_NS'" >&2; exit 2; }
  [ -w "$POLL" ] || { echo "HALT_POLL_NS: $POLL is not writable here (root, cpuidle haltpoll)" >&2; exit 1; }
  # The parameter exists wherever the haltpoll module is loaded, but only
  # the haltpoll cpuidle driver reads it: elsewhere setting it does nothing.
  DRIVER=$(cat /sys/devices/system/cpu/cpuidle/current_driver 2>/dev/null || echo unknown)
  [ "$DRIVER" = haltpoll ] || { echo "HALT_POLL_NS: the cpuidle driver here is '$DRIVER', not haltpoll: guest halt polling would not apply" >&2; exit 1; }
  RESTORE="echo $(cat "$POLL") > $POLL"
  trap 'eval "$RESTORE"' EXIT
  echo "$HALT_POLL_NS" > "$POLL"
fi
"$BIN" up --config "$CONFIG" --data-dir "$OUT/data" --listen 127.0.0.1:6395 --admin "$ADMIN" > "$OUT/up.log" 2>&1 &
UP=$!
trap 'kill $UP 2>/dev/null || true; wait $UP 2>/dev/null || true; eval "$RESTORE"' EXIT
for _ in $(seq 100); do
  "$BIN" cluster status --admin "$ADMIN" > /dev/null 2>&1 && break
  sleep 0.2
done
"$BIN" node add --admin "$ADMIN"
DURING="$BIN rebalance start --wait --admin $ADMIN"
[ "$MODE" = none ] && DURING="${NONE_DURING:-sleep ${NONE_SECONDS:-120}}"
# The throttle's view each second (rate, why, baseline) and each node's
# engine debt and p99, to explain a slow second. One long-lived poller: a
# process started every second would itself be a burst of CPU on the
# machine the bench measures.
cat > "$OUT/timeline.py" <<'PY'
import json, os, sys, time, urllib.request
admin, up = sys.argv[1], int(sys.argv[2])
def get(path):
    with urllib.request.urlopen(f"http://{admin}{path}", timeout=2) as r:
        return json.load(r)
def us(v):
    return "-" if v is None else f"{v} µs"
last_miss = {}
while True:
    time.sleep(1 - time.time() % 1)
    try:
        os.kill(up, 0)
    except OSError:
        break
    try:
        t, c = get("/v1/throttle"), get("/v1/cluster")
    except Exception:
        continue
    print("---", time.strftime("%T"))
    print(f"rate per migration {t['rate_bytes_per_s'] / 1048576:.1f} MiB/s  ({t['migrations_moving']} moving)")
    print("why:", t["reason"])
    ratio = "-" if t["p99_ratio"] is None else f"{t['p99_ratio']:.2f}x"
    print(f"foreground ({t['signal']}): p99 {us(t['p99_us'])}  from arrival {us(t.get('arrival_p99_us'))}  sched {us(t['sched_p99_us'])}  baseline {us(t['baseline_p99_us'])}  ratio {ratio}")
    # Row-cache misses in the last second: reads that went to the engine.
    miss = {n["id"]: n.get("row_cache_misses_total", 0) for n in c["nodes"]}
    step = {k: v - last_miss[k] if k in last_miss else "-" for k, v in miss.items()}
    last_miss = miss
    print("nodes:", " ".join(f"n{n['id']}:l0={n.get('l0_tables')},sealed={n.get('sealed_memtables')},p99={n.get('p99_us')}us,compacting={n.get('compactions_active')},miss={step[n['id']]}" for n in c["nodes"]), flush=True)
PY
python3 "$OUT/timeline.py" "$ADMIN" $UP > "$OUT/throttle-timeline.txt" 2>&1 &
TIMELINE=$!
trap 'kill $UP $TIMELINE 2>/dev/null || true; wait $UP 2>/dev/null || true; eval "$RESTORE"' EXIT
# Ends by itself once the cluster's process has.
[ "${THREADS:-0}" = 1 ] && python3 scripts/thread-sample.py $UP "$OUT/threads.txt" &
nice -n "${BENCH_NICE:-0}" "$BIN" bench --target redis://127.0.0.1:6395 --rate "${RATE:-10000}" --seconds "${SECONDS_LOAD:-120}" --keys 1000000 --value-size 100 \
  --mix get=50,set=45,incr=3,del=1,mget=1 --preload --warmup-seconds "${WARMUP:-90}" --quiet --admin "$ADMIN" \
  --baseline-seconds "${BASELINE:-60}" --during-cmd "$DURING" --recovery-seconds "${RECOVERY:-60}" --host-probe \
  --json "$OUT/report.json" --html "$OUT/report.html" ${SAMPLES:+--samples "$OUT/samples.csv"} | tee "$OUT/bench.txt"
"$BIN" migrations --admin "$ADMIN" > "$OUT/migrations.txt"
"$BIN" migrations --json --admin "$ADMIN" > "$OUT/migrations.json"
"$BIN" cluster status --json --admin "$ADMIN" > "$OUT/cluster.json" || true
"$BIN" throttle show --admin "$ADMIN" > "$OUT/throttle.txt" || true
# The process's counters (offloaded reads and writes, memtables freed, ...).
curl -sf "http://$ADMIN/metrics" > "$OUT/metrics.txt" || true
kill $UP $TIMELINE 2>/dev/null || true
wait $UP 2>/dev/null || true
if [ "${THREADS:-0}" = 1 ]; then
  wait
  python3 scripts/acceptance-threads.py "$OUT" > "$OUT/threads-by-stage.txt" || echo "thread analysis failed: see $OUT/threads.txt" >&2
fi
[ "${KEEP_DATA:-0}" = 1 ] || rm -rf "$OUT/data"
echo "report: $OUT/report.html"
